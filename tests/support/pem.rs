//! Generated identities written as PEM files, for servers that read their
//! certificate and key from disk (PostgreSQL, redis-server).

use std::path::{Path, PathBuf};

use base64::Engine;

use super::certs::Identity;

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap());
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// Writes `identity` as `server.crt` and `server.key` (PKCS#8) into `dir`,
/// the key readable by its owner only; returns both paths.
pub fn write_identity(identity: &Identity, dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let chain: String = identity
        .chain
        .iter()
        .map(|c| pem("CERTIFICATE", c.as_ref()))
        .collect();
    std::fs::write(&cert, chain).unwrap();
    std::fs::write(&key, pem("PRIVATE KEY", &identity.key_der)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}
