//! What a certificate chain says: validity dates, issuer, names, and the
//! measurements every kind that sees a chain reports (the `tls` kind and
//! HTTPS requests of the `http` kind), from this one place.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::result::{Measure, Measurement};

/// The facts of one certificate vouch looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Subject distinguished name, RFC 4514 style (`CN=api.example.com`).
    pub subject: String,
    /// Issuer distinguished name (`C=US, O=Let's Encrypt, CN=R11`).
    pub issuer: String,
    /// DNS names and IP addresses of the subject alternative names.
    pub sans: Vec<String>,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|err| format!("cannot parse the certificate: {err}"))?;
        let validity = cert.validity();
        let mut sans = Vec::new();
        if let Ok(Some(extension)) = cert.subject_alternative_name() {
            for name in &extension.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => sans.push(dns.to_ascii_lowercase()),
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            sans.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(CertInfo {
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            sans,
        })
    }

    fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }
}

/// A parsed chain, leaf first, as presented (or as read from a file).
#[derive(Clone, Debug)]
pub struct Chain {
    pub certs: Vec<CertInfo>,
}

impl Chain {
    /// Parses every certificate; a chain needs at least the leaf.
    pub fn parse(ders: &[CertificateDer<'_>]) -> Result<Chain, String> {
        if ders.is_empty() {
            return Err("no certificate".into());
        }
        let certs = ders
            .iter()
            .enumerate()
            .map(|(i, der)| CertInfo::parse(der).map_err(|err| format!("chain index {i}: {err}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Chain { certs })
    }

    pub fn leaf(&self) -> &CertInfo {
        &self.certs[0]
    }

    /// `leaf` (index 0), `root` (a self-issued last certificate after the
    /// leaf) or `intermediate`.
    pub fn position(&self, index: usize) -> &'static str {
        if index == 0 {
            "leaf"
        } else if index + 1 == self.certs.len() && self.certs[index].self_issued() {
            "root"
        } else {
            "intermediate"
        }
    }

    /// The index of the certificate that expires first (the leaf on a tie).
    pub fn earliest_expiry(&self) -> usize {
        let mut earliest = 0;
        for (i, cert) in self.certs.iter().enumerate() {
            if cert.not_after < self.certs[earliest].not_after {
                earliest = i;
            }
        }
        earliest
    }

    /// "the leaf", "the intermediate (chain index 1)".
    pub fn describe(&self, index: usize) -> String {
        match self.position(index) {
            "leaf" => "the leaf certificate".to_string(),
            position => format!("the {position} certificate (chain index {index})"),
        }
    }

    /// The certificate measurements: leaf dates, the earliest expiry in
    /// the chain and which certificate it is, and whether the chain
    /// verified (when verification was attempted).
    pub fn measurements(&self, verified: Option<bool>) -> Vec<Measurement> {
        let leaf = self.leaf();
        let earliest = self.earliest_expiry();
        let index = earliest.to_string();
        let mut measurements = vec![
            Measurement::new(Measure::TlsCertNotBefore, leaf.not_before as f64),
            Measurement::new(Measure::TlsCertNotAfter, leaf.not_after as f64),
            Measurement::labelled(
                Measure::TlsChainEarliestNotAfter,
                &[self.position(earliest), &index],
                self.certs[earliest].not_after as f64,
            ),
        ];
        if let Some(verified) = verified {
            measurements.push(Measurement::new(
                Measure::TlsVerificationSuccess,
                if verified { 1.0 } else { 0.0 },
            ));
        }
        measurements
    }
}

/// Unix seconds as `2026-11-27T08:00:00Z`.
pub fn format_timestamp(unix: i64) -> String {
    let time = if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Seconds from now until `unix` (negative when past).
pub fn seconds_until(unix: i64, now: SystemTime) -> f64 {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    unix as f64 - now
}

/// A span of seconds as days with one decimal: `9.9 days`.
pub fn format_days(seconds: f64) -> String {
    format!("{:.1} days", seconds.abs() / 86_400.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1_798_761_600), "2027-01-01T00:00:00Z");
    }

    #[test]
    fn days_have_one_decimal() {
        assert_eq!(format_days(10.0 * 86_400.0 - 30.0), "10.0 days");
        assert_eq!(format_days(-1.5 * 86_400.0), "1.5 days");
    }
}
