//! TLS client configuration shared by every kind that speaks TLS, and the
//! mapping of handshake failures to reasons.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error_chain;
use crate::file_read;
use crate::lock::lock;
use crate::result::Reason;

/// The system's trust roots, loaded once, and the client configs and the
/// certificate verifier built from them.
pub struct TlsClients {
    roots: Arc<RootCertStore>,
    verified: Arc<ClientConfig>,
    /// Built once: a config holds its own session cache and provider, and
    /// one per PostgreSQL check cost about 10 KiB each.
    insecure: Arc<ClientConfig>,
    /// The verifier of every check without a `ca_file`, built once: a copy
    /// of the system roots per check cost about 80 KiB of memory each.
    system_policy: Result<TlsPolicy, String>,
    /// The system roots plus a CA file, by the file's contents: checks
    /// naming the same CA share one store (1,000 checks with one `ca_file`
    /// held 1,000 copies of the system roots, about 30 MB). Weak, so a store
    /// no check uses any more after a reload is freed; keyed by contents,
    /// so a changed file gives a new store.
    stores_with_ca: Mutex<HashMap<Vec<u8>, Weak<RootCertStore>>>,
}

impl TlsClients {
    /// Loads the system roots (honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    /// A machine without roots still works for checks that bring a CA file.
    pub fn from_system() -> Self {
        let loaded = rustls_native_certs::load_native_certs();
        for err in &loaded.errors {
            tracing::warn!(error = %err, "could not load some system trust roots");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
        tracing::debug!(added, ignored, "loaded system trust roots");
        Self::with_roots(roots)
    }

    pub fn with_roots(roots: RootCertStore) -> Self {
        install_default_provider();
        let roots = Arc::new(roots);
        let verified = Arc::new(client_config(roots.clone()));
        let system_policy = policy_for(roots.clone(), false);
        let insecure = Arc::new(insecure_config(roots.clone()));
        TlsClients {
            roots,
            verified,
            insecure,
            system_policy,
            stores_with_ca: Mutex::default(),
        }
    }

    /// System roots, verification on.
    pub fn verified(&self) -> Arc<ClientConfig> {
        self.verified.clone()
    }

    /// System roots plus every certificate in a PEM file.
    pub fn with_extra_ca(&self, pem: &Path) -> Result<Arc<ClientConfig>, String> {
        Ok(Arc::new(client_config(self.roots_with(pem)?.0)))
    }

    /// The system roots plus every certificate of a PEM file (which must
    /// hold at least one), and the file's contents. Checks are built off
    /// the async workers, but the file may still block (a hung mount) or
    /// never end: the read is capped and given up after
    /// [`file_read::BUILD_WAIT`].
    fn roots_with(&self, pem: &Path) -> Result<(Arc<RootCertStore>, Vec<u8>), String> {
        let data = file_read::read_within(pem, file_read::MAX_PEM_BYTES, file_read::BUILD_WAIT)
            .map_err(|err| err.to_string())?;
        let mut stores = lock(&self.stores_with_ca);
        if let Some(roots) = stores.get(&data).and_then(Weak::upgrade) {
            return Ok((roots, data));
        }
        let mut roots = (*self.roots).clone();
        if add_pem(&mut roots, &data, pem)? == 0 {
            return Err(format!("{} holds no PEM certificate", pem.display()));
        }
        let roots = Arc::new(roots);
        stores.retain(|_, store| store.strong_count() > 0);
        stores.insert(data.clone(), Arc::downgrade(&roots));
        Ok((roots, data))
    }

    /// The way a check judges certificates: the system roots, plus the
    /// certificates of `ca_file` if given; `skip` makes verification not
    /// required (it is still computed, for the measurements).
    pub fn policy(&self, ca_file: Option<&Path>, skip: bool) -> Result<TlsPolicy, String> {
        let Some(pem) = ca_file else {
            // The system roots alone: share the verifier built once.
            return self.system_policy.clone().map(|policy| TlsPolicy {
                required: !skip,
                ..policy
            });
        };
        let (roots, data) = self.roots_with(pem)?;
        policy_for(roots, skip).map(|policy| TlsPolicy {
            pinned: pinned_certificates(&data),
            ..policy
        })
    }

    /// Verification off: any certificate is accepted (handshake signatures
    /// are still checked). Only for an explicit `insecure_skip_verify`.
    pub fn insecure(&self) -> Arc<ClientConfig> {
        self.insecure.clone()
    }
}

fn insecure_config(roots: Arc<RootCertStore>) -> ClientConfig {
    let provider = Arc::new(provider());
    let mut config = client_config(roots);
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)));
    config
}

/// A policy trusting `roots`.
fn policy_for(roots: Arc<RootCertStore>, skip: bool) -> Result<TlsPolicy, String> {
    let provider = Arc::new(provider());
    // An empty store is refused by the builder; a machine without
    // system roots then verifies nothing as trusted.
    let verifier = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|err| format!("cannot use the trust roots: {err}"))?,
        )
    };
    Ok(TlsPolicy {
        verifier,
        provider,
        required: !skip,
        pinned: Arc::from([]),
    })
}

/// The certificates of a `ca_file`'s contents, for pinning (see
/// [`TlsPolicy::verify`]).
fn pinned_certificates(data: &[u8]) -> Arc<[CertificateDer<'static>]> {
    rustls_pemfile::certs(&mut &data[..])
        .filter_map(Result::ok)
        .collect()
}

/// Whether webpki refused a leaf for being a CA certificate.
fn is_ca_used_as_end_entity(err: &rustls::Error) -> bool {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// Verifies a leaf that is byte for byte one of the configured trust
/// anchors (a pinned self-signed certificate): valid now and for `name`.
/// Whoever completes the handshake holds its key, which is the pin.
fn verify_pinned(leaf: &CertificateDer<'_>, name: &ServerName<'_>) -> Result<(), rustls::Error> {
    let bad = |err: CertificateError| rustls::Error::InvalidCertificate(err);
    let parsed =
        webpki::EndEntityCert::try_from(leaf).map_err(|_| bad(CertificateError::BadEncoding))?;
    parsed
        .verify_is_valid_for_subject_name(name)
        .map_err(|_| bad(CertificateError::NotValidForName))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before {
        return Err(bad(CertificateError::NotValidYet));
    }
    if now > validity.not_after {
        return Err(bad(CertificateError::Expired));
    }
    Ok(())
}

/// object_store's cloud back-ends compile aws-lc-rs into rustls beside
/// ring; with two providers and no process default, every crate that calls
/// `ClientConfig::builder()` (the redis and kube clients among them) panics.
/// vouch uses ring everywhere, so ring is made the default once.
pub fn install_default_provider() {
    // Err only means a default is already installed, which is the goal.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn client_config(roots: Arc<RootCertStore>) -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Adds the certificates of `data`, read from `pem`, to `roots`.
fn add_pem(roots: &mut RootCertStore, mut data: &[u8], pem: &Path) -> Result<usize, String> {
    let mut added = 0;
    for cert in rustls_pemfile::certs(&mut data) {
        let cert = cert.map_err(|err| format!("{}: bad PEM: {err}", pem.display()))?;
        roots
            .add(cert)
            .map_err(|err| format!("{}: unusable certificate: {err}", pem.display()))?;
        added += 1;
    }
    Ok(added)
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The reason word for a failed handshake.
pub fn handshake_reason(err: &std::io::Error) -> Reason {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls_error) => certificate_reason(rustls_error),
        None => Reason::Tls,
    }
}

/// The reason word for a certificate verification error (`tls` for
/// anything that is not one of the distinct certificate problems).
pub fn certificate_reason(rustls_error: &rustls::Error) -> Reason {
    match rustls_error {
        rustls::Error::InvalidCertificate(cert_error) => match cert_error {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                Reason::TlsExpired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Reason::TlsNotYetValid
            }
            CertificateError::UnknownIssuer => Reason::TlsUnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Reason::TlsHostname
            }
            _ => Reason::Tls,
        },
        _ => Reason::Tls,
    }
}

/// Plain words for a TLS error, ending in the name rustls or webpki gives
/// the problem (to search for): "the server presented a CA certificate as
/// its own (CaUsedAsEndEntity)" rather than
/// `Other(OtherError(CaUsedAsEndEntity))`.
pub fn describe(err: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, Error as E};
    match err {
        E::InvalidCertificate(cert_error) => describe_certificate_error(cert_error),
        E::NoCertificatesPresented => "the server presented no certificate".into(),
        E::AlertReceived(alert) => {
            let words = match alert {
                Alert::HandshakeFailure => {
                    "the server refused the handshake: no TLS version or cipher suite in common, or it wants a client certificate"
                }
                Alert::ProtocolVersion => "the server refused the TLS versions offered",
                Alert::CertificateRequired => "the server requires a client certificate",
                Alert::UnrecognisedName => "the server does not serve this host name (SNI)",
                Alert::NoApplicationProtocol => {
                    "the server speaks none of the application protocols offered (ALPN)"
                }
                Alert::BadCertificate | Alert::UnknownCA | Alert::AccessDenied => {
                    "the server refused the client's certificate"
                }
                _ => "the server ended the handshake with an alert",
            };
            format!("{words} (alert {alert:?})")
        }
        E::InvalidMessage(what) => format!(
            "the server's answer is not TLS; is this port plain text? (InvalidMessage {what:?})"
        ),
        E::PeerIncompatible(why) => {
            format!("the server speaks no TLS version or cipher suite vouch accepts ({why:?})")
        }
        E::PeerMisbehaved(why) => format!("the server broke the TLS protocol ({why:?})"),
        E::DecryptError => "the server's messages could not be decrypted (DecryptError)".into(),
        E::PeerSentOversizedRecord => {
            "the server sent a TLS record larger than the protocol allows (PeerSentOversizedRecord)"
                .into()
        }
        other => other.to_string(),
    }
}

/// The words for a certificate the verifier refused.
fn describe_certificate_error(err: &CertificateError) -> String {
    use CertificateError as C;
    let time = |t: &UnixTime| crate::probe::tls::chain::format_timestamp(t.as_secs() as i64);
    let words = match err {
        C::Expired => "the server's certificate has expired".to_string(),
        C::ExpiredContext { not_after, .. } => {
            format!("the server's certificate expired at {}", time(not_after))
        }
        C::NotValidYet => "the server's certificate is not valid yet".to_string(),
        C::NotValidYetContext { not_before, .. } => format!(
            "the server's certificate is not valid before {}",
            time(not_before)
        ),
        C::UnknownIssuer => {
            "the server's certificate does not lead to a trusted root".to_string()
        }
        C::NotValidForName => "the server's certificate is not valid for this host".to_string(),
        C::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "the server's certificate is not valid for {} (it names {})",
            expected.to_str(),
            if presented.is_empty() {
                "no host".to_string()
            } else {
                presented.join(", ")
            }
        ),
        C::BadSignature => "a signature in the server's chain does not verify".to_string(),
        C::BadEncoding => "the server's certificate is not well-formed".to_string(),
        C::Revoked => "the server's certificate has been revoked".to_string(),
        C::UnhandledCriticalExtension => {
            "the server's certificate has a critical extension vouch does not know".to_string()
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the server's certificate is not meant for TLS servers (its extended key usage lacks server authentication)".to_string()
        }
        #[allow(deprecated)]
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "the server's chain is signed with an algorithm vouch does not support".to_string()
        }
        C::Other(other) => {
            return match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki_error) => describe_webpki_error(webpki_error),
                None => format!("the server's certificate was refused: {other}"),
            }
        }
        _ => "the server's certificate was refused".to_string(),
    };
    format!("{words} ({})", certificate_error_name(err))
}

/// The variant name of a certificate error, without its fields.
fn certificate_error_name(err: &CertificateError) -> String {
    let debug = format!("{err:?}");
    let end = debug.find([' ', '(', '{']).unwrap_or(debug.len());
    debug[..end].to_string()
}

/// The words for what webpki found wrong with a chain (what rustls passes
/// on as `CertificateError::Other`).
fn describe_webpki_error(err: &webpki::Error) -> String {
    use webpki::Error as W;
    let words = match err {
        W::CaUsedAsEndEntity => "the server presented a CA certificate as its own",
        W::EndEntityUsedAsCa => "the server's chain uses a server certificate as a CA",
        W::NameConstraintViolation => {
            "the server's certificate names a host its CA is not allowed to certify"
        }
        W::PathLenConstraintViolated => "the server's chain is longer than a CA in it allows",
        W::MaximumPathDepthExceeded => "the server's chain is too long to verify",
        W::MaximumSignatureChecksExceeded | W::MaximumPathBuildCallsExceeded => {
            "the server's chain took too many steps to verify"
        }
        W::UnsupportedCertVersion => "the server's certificate is not an X.509 v3 certificate",
        W::UnsupportedCriticalExtension => {
            "the server's certificate has a critical extension vouch does not know"
        }
        W::SignatureAlgorithmMismatch => {
            "the server's certificate names two different signature algorithms"
        }
        W::EmptyEkuExtension => {
            "the server's certificate is not meant for TLS servers (its extended key usage lacks server authentication)"
        }
        W::InvalidSerialNumber => "the server's certificate has an invalid serial number",
        W::MalformedExtensions | W::ExtensionValueInvalid | W::MalformedDnsIdentifier => {
            "the server's certificate has malformed extensions"
        }
        W::BadDer | W::BadDerTime | W::TrailingData(_) => {
            "the server's certificate is not well-formed"
        }
        W::CertDistrusted => "the server's certificate is distrusted",
        _ => "the server's certificate was refused",
    };
    let name = format!("{err:?}");
    let end = name.find([' ', '(', '{']).unwrap_or(name.len());
    format!("{words} ({})", &name[..end])
}

/// The rustls error in an error's chain (inside an `io::Error` or an
/// `Arc` too: see [`error_chain::walk`]).
pub fn find_rustls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    error_chain::find::<rustls::Error>(err)
}

/// `err`'s whole chain as one line ([`error_chain::text`]), the rustls
/// error in it, if any, in plain words.
pub fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    readable(&error_chain::text(err), err)
}

/// `text` (a message built from `err`'s chain) with the rustls error's
/// own text, if the chain holds one, replaced by plain words.
pub fn readable(text: &str, err: &(dyn std::error::Error + 'static)) -> String {
    match find_rustls_error(err) {
        Some(rustls_error) => text.replace(&rustls_error.to_string(), &describe(rustls_error)),
        None => text.to_string(),
    }
}

/// The words for a failed handshake: the TLS problem described, or the
/// error's own text when it is not one (a reset, an end of stream).
pub fn describe_handshake(err: &std::io::Error) -> String {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls_error) => describe(rustls_error),
        None => err.to_string(),
    }
}

/// The chain a server presented in one handshake and what verification
/// said of it (computed even when verification is not required).
#[derive(Clone, Debug)]
pub struct Presented {
    pub chain: Vec<CertificateDer<'static>>,
    pub verification: Result<(), rustls::Error>,
}

/// Where a handshake leaves the presented chain.
#[derive(Clone, Debug, Default)]
pub struct Recorder(Arc<Mutex<Option<Presented>>>);

impl Recorder {
    pub fn take(&self) -> Option<Presented> {
        lock(&self.0).take()
    }
}

/// How one check judges server certificates: its trust roots and whether
/// verification is required. Every connection gets its own client config
/// whose verifier records the chain, so measurements exist whatever the
/// verification said.
#[derive(Clone, Debug)]
pub struct TlsPolicy {
    /// None when there is no trust root at all.
    verifier: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    required: bool,
    /// The certificates of the check's `ca_file`: a server presenting one
    /// of them byte for byte as its leaf is accepted even though it is
    /// marked as a CA (as `openssl req -x509` makes them), as curl and
    /// blackbox_exporter accept a pinned self-signed certificate.
    pinned: Arc<[CertificateDer<'static>]>,
}

impl TlsPolicy {
    /// Whether a failed verification fails the check.
    pub fn required(&self) -> bool {
        self.required
    }

    /// A client config for one connection and the recorder its verifier
    /// fills. With `abort_on_failure`, a failed (required) verification
    /// aborts the handshake as clients do before sending anything;
    /// otherwise the handshake completes and the caller judges.
    pub fn connection(
        &self,
        alpn: &[&[u8]],
        abort_on_failure: bool,
    ) -> (Arc<ClientConfig>, Recorder) {
        let recorder = Recorder::default();
        let verifier = RecordingVerifier {
            policy: self.clone(),
            recorder: recorder.clone(),
            abort: abort_on_failure && self.required,
        };
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Every run must see and verify the certificate a full handshake
        // presents; a resumed session shows none. (A config per connection
        // already has its own empty session store; this also spares
        // allocating that store.)
        config.resumption = rustls::client::Resumption::disabled();
        (Arc::new(config), recorder)
    }

    /// Verifies a chain (leaf first) for `name` at the current time, as a
    /// server's chain would be in a handshake.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
    ) -> Result<(), rustls::Error> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        let Some(verifier) = &self.verifier else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        match verifier.verify_server_cert(leaf, intermediates, name, &[], UnixTime::now()) {
            Ok(_) => Ok(()),
            Err(err)
                if is_ca_used_as_end_entity(&err)
                    && self.pinned.iter().any(|pin| pin.as_ref() == leaf.as_ref()) =>
            {
                verify_pinned(leaf, name)
            }
            Err(err) => Err(err),
        }
    }
}

#[derive(Debug)]
struct RecordingVerifier {
    policy: TlsPolicy,
    recorder: Recorder,
    abort: bool,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        let verification = self.policy.verify(&chain, server_name);
        let outcome = match (&verification, self.abort) {
            (Err(err), true) => Err(err.clone()),
            _ => Ok(ServerCertVerified::assertion()),
        };
        *lock(&self.recorder.0) = Some(Presented {
            chain,
            verification,
        });
        outcome
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.policy.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.policy.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.policy
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_ca() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-tls/ca.pem")
    }

    fn clients_trusting_demo_ca() -> TlsClients {
        let mut roots = RootCertStore::empty();
        let data = std::fs::read(demo_ca()).unwrap();
        assert_eq!(add_pem(&mut roots, &data, &demo_ca()).unwrap(), 1);
        TlsClients::with_roots(roots)
    }

    fn verifier(policy: &TlsPolicy) -> &Arc<WebPkiServerVerifier> {
        policy.verifier.as_ref().expect("a verifier")
    }

    #[test]
    fn checks_without_ca_file_share_one_verifier_of_the_system_roots() {
        let clients = clients_trusting_demo_ca();
        let a = clients.policy(None, false).unwrap();
        let b = clients.policy(None, true).unwrap();
        assert!(Arc::ptr_eq(verifier(&a), verifier(&b)));
        assert!(a.required());
        assert!(!b.required(), "insecure_skip_verify is kept per check");
    }

    #[test]
    fn the_unverified_config_is_built_once() {
        let clients = clients_trusting_demo_ca();
        assert!(Arc::ptr_eq(&clients.insecure(), &clients.insecure()));
    }

    #[test]
    fn a_ca_file_gets_its_own_verifier() {
        let clients = clients_trusting_demo_ca();
        let shared = clients.policy(None, false).unwrap();
        let own = clients.policy(Some(&demo_ca()), false).unwrap();
        assert!(!Arc::ptr_eq(verifier(&shared), verifier(&own)));
    }

    #[test]
    fn checks_naming_the_same_ca_share_one_store_until_none_holds_it() {
        let clients = clients_trusting_demo_ca();
        let a = clients.roots_with(&demo_ca()).unwrap().0;
        let b = clients.roots_with(&demo_ca()).unwrap().0;
        assert!(Arc::ptr_eq(&a, &b));
        // Another file with the same contents is the same trust.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("ca.pem");
        std::fs::copy(demo_ca(), &copy).unwrap();
        assert!(Arc::ptr_eq(&a, &clients.roots_with(&copy).unwrap().0));
        // Changed contents: a store of its own.
        let mut changed = std::fs::read(demo_ca()).unwrap();
        changed.extend_from_slice(b"\n");
        std::fs::write(&copy, changed).unwrap();
        assert!(!Arc::ptr_eq(&a, &clients.roots_with(&copy).unwrap().0));
        // Once no check holds it, it is freed and built again when asked.
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        assert_eq!(clients.roots_with(&demo_ca()).unwrap().0.len(), 2);
    }

    #[test]
    fn tls_errors_read_as_words_with_their_names() {
        let webpki = |e: webpki::Error| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(e),
            )))
        };
        assert_eq!(
            describe(&webpki(webpki::Error::CaUsedAsEndEntity)),
            "the server presented a CA certificate as its own (CaUsedAsEndEntity)"
        );
        assert_eq!(
            describe(&webpki(webpki::Error::PathLenConstraintViolated)),
            "the server's chain is longer than a CA in it allows (PathLenConstraintViolated)"
        );
        assert_eq!(
            describe(&rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            "the server's certificate does not lead to a trusted root (UnknownIssuer)"
        );
        assert_eq!(
            describe(&rustls::Error::InvalidCertificate(
                CertificateError::ExpiredContext {
                    time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
                    not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                        1_700_000_000
                    )),
                }
            )),
            "the server's certificate expired at 2023-11-14T22:13:20Z (ExpiredContext)"
        );
        assert_eq!(
            describe(&rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            )),
            "the server refused the handshake: no TLS version or cipher suite in common, or it wants a client certificate (alert HandshakeFailure)"
        );
        // Inside an io::Error, as a handshake fails, and inside a message
        // a client built from the error's chain.
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            webpki(webpki::Error::CaUsedAsEndEntity),
        );
        assert_eq!(
            describe_handshake(&io),
            "the server presented a CA certificate as its own (CaUsedAsEndEntity)"
        );
        let text = format!("error connecting: {io}");
        assert!(text.contains("OtherError"), "{text}");
        assert_eq!(
            readable(&text, &io),
            "error connecting: the server presented a CA certificate as its own (CaUsedAsEndEntity)"
        );
    }

    #[test]
    fn no_system_roots_and_no_ca_file_trusts_nothing() {
        let clients = TlsClients::with_roots(RootCertStore::empty());
        let policy = clients.policy(None, false).unwrap();
        assert!(policy.verifier.is_none());
        let name = ServerName::try_from("demo.vouch.test").unwrap();
        assert!(matches!(
            policy.verify(&[CertificateDer::from(vec![0u8; 4])], &name),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ));
    }
}
