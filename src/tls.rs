//! TLS client configuration shared by every kind that speaks TLS, and the
//! mapping of handshake failures to reasons.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::result::Reason;

/// The system's trust roots, loaded once, and the client configs and the
/// certificate verifier built from them.
pub struct TlsClients {
    roots: Arc<RootCertStore>,
    verified: Arc<ClientConfig>,
    /// The verifier of every check without a `ca_file`, built once: a copy
    /// of the system roots per check cost about 80 KiB of memory each.
    system_policy: Result<TlsPolicy, String>,
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
        TlsClients {
            roots,
            verified,
            system_policy,
        }
    }

    /// System roots, verification on.
    pub fn verified(&self) -> Arc<ClientConfig> {
        self.verified.clone()
    }

    /// System roots plus every certificate in a PEM file.
    pub fn with_extra_ca(&self, pem: &Path) -> Result<Arc<ClientConfig>, String> {
        Ok(Arc::new(client_config(self.roots_with(pem)?)))
    }

    /// The system roots plus every certificate of a PEM file (which must
    /// hold at least one).
    fn roots_with(&self, pem: &Path) -> Result<Arc<RootCertStore>, String> {
        let mut roots = (*self.roots).clone();
        if add_pem_file(&mut roots, pem)? == 0 {
            return Err(format!("{} holds no PEM certificate", pem.display()));
        }
        Ok(Arc::new(roots))
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
        policy_for(self.roots_with(pem)?, skip)
    }

    /// Verification off: any certificate is accepted (handshake signatures
    /// are still checked). Only for an explicit `insecure_skip_verify`.
    pub fn insecure(&self) -> Arc<ClientConfig> {
        let provider = Arc::new(provider());
        let mut config = client_config(self.roots.clone());
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)));
        Arc::new(config)
    }
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
    })
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

fn add_pem_file(roots: &mut RootCertStore, pem: &Path) -> Result<usize, String> {
    let data = std::fs::read(pem).map_err(|err| format!("cannot read {}: {err}", pem.display()))?;
    let mut added = 0;
    for cert in rustls_pemfile::certs(&mut data.as_slice()) {
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
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
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
        verifier
            .verify_server_cert(leaf, intermediates, name, &[], UnixTime::now())
            .map(|_| ())
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
        *self.recorder.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Presented {
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
        assert_eq!(add_pem_file(&mut roots, &demo_ca()).unwrap(), 1);
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
    fn a_ca_file_gets_its_own_verifier() {
        let clients = clients_trusting_demo_ca();
        let shared = clients.policy(None, false).unwrap();
        let own = clients.policy(Some(&demo_ca()), false).unwrap();
        assert!(!Arc::ptr_eq(verifier(&shared), verifier(&own)));
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
