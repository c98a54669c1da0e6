//! `--web.config.file`: TLS and basic authentication for every endpoint, in
//! the Prometheus exporter-toolkit format.
//!
//! The file is decoded strictly: an unknown key is an error naming file,
//! line and key, and keys of the format that vouch does not implement are
//! rejected rather than ignored. The file and the certificate, key and CA
//! files it names are re-read when their modification time, size or inode
//! changes ([`WebConfigWatcher::refresh`], called every second off the
//! accept loop); a new file that does not load is logged and the previous
//! configuration keeps serving.
//!
//! `tls` builds the server's TLS configuration from the `tls_server_config`
//! block.

mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::config::{ConfigError, LineIndex, LocatedProblem, Problem};
use crate::lock::{lock, read, write};
use tls::build_tls;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    /// TLS for every endpoint; without it vouch serves plain HTTP.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub http_server_config: Option<HttpServerConfig>,
    /// User name → bcrypt hash of the password. When not empty, every
    /// request needs basic authentication.
    #[serde(default)]
    pub basic_auth_users: Option<BTreeMap<String, String>>,
    /// Not supported by vouch.
    #[serde(default)]
    pub rate_limit: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain, leaf first; relative to the web config's directory.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub client_auth_type: ClientAuthType,
    /// PEM CA certificates that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
    #[serde(default)]
    pub max_version: Option<TlsVersion>,
    // Keys of the format vouch does not implement: rejected, not ignored.
    pub cert: Option<serde_yaml_ng::Value>,
    pub key: Option<serde_yaml_ng::Value>,
    pub client_ca: Option<serde_yaml_ng::Value>,
    pub client_allowed_sans: Option<serde_yaml_ng::Value>,
    pub cipher_suites: Option<serde_yaml_ng::Value>,
    pub prefer_server_cipher_suites: Option<serde_yaml_ng::Value>,
    pub curve_preferences: Option<serde_yaml_ng::Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ClientAuthType {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// vouch serves HTTP/1.1 only; `true` is rejected.
    pub http2: Option<bool>,
    /// Headers added to every response.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The response headers the format allows.
const ALLOWED_HEADERS: [&str; 5] = [
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

/// The largest web config read (a few users and file names).
pub const MAX_WEB_CONFIG_BYTES: u64 = 1 << 20;

/// A loaded web config, ready to serve with.
pub struct WebConfig {
    /// None: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub users: Option<Arc<Users>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Every file this config was read from, for change detection.
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.as_ref().map(|u| u.hashes.len()))
            .field("files", &self.files)
            .finish()
    }
}

/// Basic-auth users and their bcrypt hashes.
pub struct Users {
    hashes: BTreeMap<String, String>,
    /// A hash of a random password at the users' highest cost: verified
    /// against for an unknown user, so the answer takes as long as for a
    /// known one.
    dummy: String,
    /// Credentials that passed bcrypt lately, so that a scraper's next
    /// request does not queue behind a flood of wrong passwords for the
    /// bcrypt slots. Belongs to this config: a rotation starts afresh.
    verified: super::auth_cache::VerifiedCredentials,
}

impl Users {
    /// Whether `user`/`password` is a configured user with that password.
    /// Spends one bcrypt verification unless the pair passed lately.
    /// Blocking (bcrypt takes tens of milliseconds at usual costs).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        if self.verified_lately(user, password) {
            return true;
        }
        let right = match self.hashes.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &self.dummy);
                false
            }
        };
        if right {
            self.verified.remember(user, password);
        }
        right
    }

    /// Whether the pair passed bcrypt lately (no bcrypt spent; a wrong
    /// pair is never remembered, so it always pays in full).
    pub fn verified_lately(&self, user: &str, password: &str) -> bool {
        self.verified.contains(user, password)
    }
}

impl WebConfig {
    /// Reads, decodes and validates `path` and every file it names.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let text = crate::config::spans::read_yaml(path, MAX_WEB_CONFIG_BYTES).map_err(|err| {
            ConfigError {
                problems: vec![LocatedProblem {
                    origin: path.display().to_string(),
                    line: err.line,
                    path: String::new(),
                    message: format!("cannot read web config: {}", err.message),
                }],
            }
        })?;
        Self::parse(&text, path)
    }

    /// Decodes and validates `text` as the web config at `path` (whose
    /// directory the files it names are relative to), reading those files.
    pub fn parse(text: &str, path: &Path) -> Result<WebConfig, ConfigError> {
        let origin = path.display().to_string();
        let single = |line, path: &str, message: String| ConfigError {
            problems: vec![LocatedProblem {
                origin: origin.clone(),
                line,
                path: path.to_string(),
                message,
            }],
        };
        let lines = LineIndex::build(text).map_err(|err| single(err.line, "", err.message))?;
        if let Some((key, line)) = lines.duplicate_keys().first() {
            return Err(single(Some(*line), key, "duplicate key".to_string()));
        }
        let file: WebConfigFile = if text.trim().is_empty() {
            WebConfigFile::default()
        } else {
            serde_yaml_ng::from_str(text)
                .map_err(|err| crate::config::decode_error(&origin, &err, &lines))?
        };
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        build(&file, base_dir, path).map_err(|problems| {
            let mut problems: Vec<LocatedProblem> = problems
                .into_iter()
                .map(|p| LocatedProblem {
                    origin: origin.clone(),
                    line: lines.line_of(&p.path),
                    path: p.path,
                    message: p.message,
                })
                .collect();
            problems.sort_by_key(|p| p.line);
            ConfigError { problems }
        })
    }

    /// Files whose change means the config must be re-read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

fn unsupported(problems: &mut Vec<Problem>, path: &str, present: bool, why: &str) {
    if present {
        problems.push(Problem::new(path, format!("not supported by vouch: {why}")));
    }
}

fn build(file: &WebConfigFile, base_dir: &Path, path: &Path) -> Result<WebConfig, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut files = vec![path.to_path_buf()];
    unsupported(
        &mut problems,
        "rate_limit",
        file.rate_limit.is_some(),
        "rate limiting (put a proxy in front of vouch)",
    );
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    let tls = match &file.tls_server_config {
        None => None,
        Some(tls) => build_tls(tls, &resolve, &mut problems, &mut files),
    };
    let mut headers = Vec::new();
    if let Some(http) = &file.http_server_config {
        if http.http2 == Some(true) {
            problems.push(Problem::new(
                "http_server_config.http2",
                "not supported by vouch: vouch serves HTTP/1.1 only (leave it out or set false)",
            ));
        }
        for (name, value) in &http.headers {
            let key = format!("http_server_config.headers.{name}");
            let Some(allowed) = ALLOWED_HEADERS
                .iter()
                .find(|a| a.eq_ignore_ascii_case(name))
            else {
                problems.push(Problem::new(
                    key,
                    format!(
                        "unknown header, expected one of {}",
                        ALLOWED_HEADERS.join(", ")
                    ),
                ));
                continue;
            };
            if value.is_empty() {
                continue;
            }
            match HeaderValue::from_str(value) {
                Ok(value) => headers.push((
                    HeaderName::from_bytes(allowed.as_bytes()).expect("a valid header name"),
                    value,
                )),
                Err(_) => problems.push(Problem::new(key, "not a valid header value")),
            }
        }
    }
    let users = match &file.basic_auth_users {
        Some(users) if !users.is_empty() => build_users(users, &mut problems).map(Arc::new),
        _ => None,
    };
    if problems.is_empty() {
        Ok(WebConfig {
            tls,
            users,
            headers,
            files,
        })
    } else {
        Err(problems)
    }
}

fn build_users(users: &BTreeMap<String, String>, problems: &mut Vec<Problem>) -> Option<Users> {
    let mut max_cost = 0;
    let before = problems.len();
    for (user, hash) in users {
        match hash.parse::<bcrypt::HashParts>() {
            Ok(parts) => max_cost = max_cost.max(parts.get_cost()),
            Err(_) => problems.push(Problem::new(
                format!("basic_auth_users.{user}"),
                "not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
            )),
        }
        if user.contains(':') {
            problems.push(Problem::new(
                format!("basic_auth_users.{user}"),
                "a user name cannot contain ':'",
            ));
        }
    }
    if problems.len() > before {
        return None;
    }
    let random: [u8; 16] = rand_bytes();
    let dummy = bcrypt::hash(random, max_cost).ok()?;
    Some(Users {
        hashes: users.clone(),
        dummy,
        verified: Default::default(),
    })
}

/// Sixteen unpredictable bytes from the TLS provider's random source.
fn rand_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let _ = rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes);
    bytes
}

/// What identifies a file's version: modification time, size, inode.
type Stamp = Option<(std::time::SystemTime, u64, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.modified().ok()?, meta.len(), meta.ino()))
        })
        .collect()
}

/// The files of the active config and their stamps when last looked at
/// (after a failed reload, the new stamps: a broken file is reported
/// once, not at every look).
struct Looked {
    files: Vec<PathBuf>,
    stamps: Vec<Stamp>,
}

/// The web config in force, re-read when its files change.
///
/// [`Self::current`] only clones a pointer; [`Self::refresh`] does the file
/// work (blocking) and is called by a task of its own, so that a file that
/// blocks (a FIFO, a hung network mount) stalls only the refresh.
pub struct WebConfigWatcher {
    path: PathBuf,
    active: std::sync::RwLock<Arc<WebConfig>>,
    looked: Mutex<Looked>,
}

impl WebConfigWatcher {
    pub fn new(path: PathBuf, initial: WebConfig) -> Self {
        let looked = Looked {
            stamps: stamps(initial.files()),
            files: initial.files().to_vec(),
        };
        WebConfigWatcher {
            path,
            active: std::sync::RwLock::new(Arc::new(initial)),
            looked: Mutex::new(looked),
        }
    }

    /// The config to serve a new connection with.
    pub fn current(&self) -> Arc<WebConfig> {
        read(&self.active).clone()
    }

    /// Looks at the files (one `stat` each) and re-reads them if they
    /// changed. A change that does not load is logged once and the
    /// previous config stays. Blocking.
    pub fn refresh(&self) {
        let files = lock(&self.looked).files.clone();
        let now = stamps(&files);
        if now == lock(&self.looked).stamps {
            return;
        }
        let loaded = WebConfig::load(&self.path);
        let mut looked = lock(&self.looked);
        match loaded {
            Ok(config) => {
                // Stamps taken before reading, so a change made while the
                // files were read is seen at the next look.
                looked.stamps = if config.files() == files.as_slice() {
                    now
                } else {
                    stamps(config.files())
                };
                looked.files = config.files().to_vec();
                *write(&self.active) = Arc::new(config);
                tracing::info!(file = %self.path.display(), "web config reloaded");
            }
            Err(err) => {
                looked.stamps = now;
                for problem in &err.problems {
                    tracing::error!("web config not reloaded, the previous one stays: {problem}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<WebConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        WebConfig::load(&path).map_err(|e| e.to_string().replace(&path.display().to_string(), "W"))
    }

    #[test]
    fn an_empty_file_means_no_protection() {
        let config = load("").unwrap();
        assert!(config.tls.is_none() && config.users.is_none());
    }

    #[test]
    fn unknown_and_unsupported_keys_name_their_line() {
        assert!(load("basic_auth_users: {}\nfoo: 1\n")
            .unwrap_err()
            .starts_with("W:2: unknown field `foo`"));
        assert_eq!(
            load("rate_limit:\n  burst: 3\n").unwrap_err(),
            "W:1: rate_limit: not supported by vouch: rate limiting (put a proxy in front of vouch)"
        );
        assert_eq!(
            load("http_server_config:\n  headers:\n    X-Custom: a\n").unwrap_err(),
            "W:3: http_server_config.headers.X-Custom: unknown header, expected one of \
             Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, X-XSS-Protection, Strict-Transport-Security"
        );
    }

    #[test]
    fn users_need_bcrypt_hashes() {
        assert_eq!(
            load("basic_auth_users:\n  alice: secret\n").unwrap_err(),
            "W:2: basic_auth_users.alice: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
        );
    }

    #[test]
    fn users_verify_against_their_own_hash_only() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let other = bcrypt::hash("bob's", 4).unwrap();
        let config = load(&format!(
            "basic_auth_users:\n  alice: '{hash}'\n  bob: '{other}'\n"
        ))
        .unwrap();
        let users = config.users.unwrap();
        assert!(users.verify("alice", "right"));
        assert!(!users.verify("alice", "wrong"));
        assert!(!users.verify("alice", "bob's"));
        assert!(!users.verify("carol", "right"));
        assert!(users.verify("bob", "bob's"));
        assert!(users.dummy.starts_with("$2b$04$"));
    }

    #[test]
    fn tls_versions_and_client_auth_are_checked() {
        let err = load("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: TLS13\n  max_version: TLS12\n  client_auth_type: RequireAndVerifyClientCert\n").unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines[0].starts_with("W:2: tls_server_config.cert_file: cannot read "),
            "{err}"
        );
        assert!(
            lines[1].starts_with("W:3: tls_server_config.key_file: cannot read "),
            "{err}"
        );
        assert_eq!(
            lines[2],
            "W:5: tls_server_config.max_version: TLS12 is below min_version TLS13"
        );
        assert_eq!(lines[3], "W:6: tls_server_config.client_auth_type: RequireAndVerifyClientCert needs client_ca_file, the CA that signs client certificates");
    }
}
