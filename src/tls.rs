//! TLS client configuration shared by every kind that speaks TLS, and the
//! mapping of handshake failures to reasons.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::result::Reason;

/// The system's trust roots, loaded once, and the client configs built
/// from them.
pub struct TlsClients {
    roots: Arc<RootCertStore>,
    verified: Arc<ClientConfig>,
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
        let roots = Arc::new(roots);
        let verified = Arc::new(client_config(roots.clone()));
        TlsClients { roots, verified }
    }

    /// System roots, verification on.
    pub fn verified(&self) -> Arc<ClientConfig> {
        self.verified.clone()
    }

    /// System roots plus every certificate in a PEM file.
    pub fn with_extra_ca(&self, pem: &Path) -> Result<Arc<ClientConfig>, String> {
        let mut roots = (*self.roots).clone();
        let added = add_pem_file(&mut roots, pem)?;
        if added == 0 {
            return Err(format!("{} holds no PEM certificate", pem.display()));
        }
        Ok(Arc::new(client_config(Arc::new(roots))))
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
    let Some(rustls_error) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return Reason::Tls;
    };
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
