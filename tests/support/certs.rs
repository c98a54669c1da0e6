//! Certificates generated in the test: a private CA, intermediates below
//! it, leaves they sign (valid, expired, not yet valid, for other names,
//! with validity to the second) and self-signed ones.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// A certificate chain and its key, ready for a rustls server.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_der: Vec<u8>,
    /// The chain as PEM, leaf first (a `tls.crt` as cert-manager writes it).
    pub chain_pem: String,
}

impl Identity {
    /// Writes the chain as PEM into `dir`/`file`; returns the path.
    pub fn write_chain_pem(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.chain_pem).unwrap();
        path
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// Validity of a generated leaf.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// Valid from a day ago for `days` more days.
    ValidFor { days: i64 },
    /// Expired a day ago.
    Expired,
    /// Valid from tomorrow.
    NotYetValid,
    /// Exactly between two Unix times (whole seconds, so the test knows
    /// the dates the certificate carries).
    Between { not_before: i64, not_after: i64 },
}

/// Now as whole Unix seconds, for [`Validity::Between`].
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

pub const DAY: i64 = 86_400;

impl Validity {
    fn apply(self, params: &mut CertificateParams) {
        let now = OffsetDateTime::now_utc();
        let (from, to) = match self {
            Validity::ValidFor { days } => (now - Duration::days(1), now + Duration::days(days)),
            Validity::Expired => (now - Duration::days(30), now - Duration::days(1)),
            Validity::NotYetValid => (now + Duration::days(1), now + Duration::days(30)),
            Validity::Between {
                not_before,
                not_after,
            } => (
                OffsetDateTime::from_unix_timestamp(not_before).unwrap(),
                OffsetDateTime::from_unix_timestamp(not_after).unwrap(),
            ),
        };
        params.not_before = from;
        params.not_after = to;
    }
}

/// A private certificate authority.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// This CA's certificate and those above it up to (not including)
    /// the root, PEM and DER: what a server sends after its leaf.
    above: Vec<(CertificateDer<'static>, String)>,
}

fn ca_params(common_name: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    validity.apply(&mut params);
    params
}

impl TestCa {
    pub fn new(common_name: &str) -> Self {
        let params = ca_params(common_name, Validity::ValidFor { days: 3650 });
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert,
            key,
            above: Vec::new(),
        }
    }

    /// An intermediate CA signed by this one, valid as given.
    pub fn intermediate(&self, common_name: &str, validity: Validity) -> TestCa {
        let params = ca_params(common_name, validity);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let mut above = vec![(cert.der().clone(), cert.pem())];
        above.extend(self.above.iter().cloned());
        TestCa { cert, key, above }
    }

    /// This CA's own certificate (and those above it) with its key, as a
    /// server's identity: a CA certificate presented as a leaf, which
    /// verification refuses.
    pub fn as_server_identity(&self) -> Identity {
        let mut chain = vec![self.cert.der().clone()];
        let mut chain_pem = self.cert.pem();
        // `above` starts with this CA's own certificate.
        for (der, pem) in self.above.iter().skip(1) {
            chain.push(der.clone());
            chain_pem.push_str(pem);
        }
        Identity {
            chain,
            key_der: self.key.serialize_der(),
            chain_pem,
        }
    }

    /// The root's certificate as DER (to append to a chain).
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate as PEM into `dir`; returns the path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.pem()).unwrap();
        path
    }

    /// A leaf for `names` (DNS names or IP addresses) signed by this CA.
    pub fn issue(&self, names: &[&str], validity: Validity) -> Identity {
        self.issue_with(names, validity, |_| {})
    }

    /// A leaf as [`TestCa::issue`] makes it, with `adjust` applied to its
    /// parameters (key usages, extensions) before signing.
    pub fn issue_with(
        &self,
        names: &[&str],
        validity: Validity,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Identity {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        validity.apply(&mut params);
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let mut chain = vec![cert.der().clone()];
        let mut chain_pem = cert.pem();
        for (der, pem) in &self.above {
            chain.push(der.clone());
            chain_pem.push_str(pem);
        }
        Identity {
            chain,
            key_der: key.serialize_der(),
            chain_pem,
        }
    }
}

/// A self-signed leaf for `names`.
pub fn self_signed(names: &[&str]) -> Identity {
    self_signed_with(names, Validity::ValidFor { days: 90 })
}

/// A self-signed leaf for `names`, valid as given.
pub fn self_signed_with(names: &[&str], validity: Validity) -> Identity {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(
        DnType::CommonName,
        format!(
            "Vouch Self-Signed {}",
            names.first().copied().unwrap_or("leaf")
        ),
    );
    validity.apply(&mut params);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Identity {
        chain: vec![cert.der().clone()],
        key_der: key.serialize_der(),
        chain_pem: cert.pem(),
    }
}
