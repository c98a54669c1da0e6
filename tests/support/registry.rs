//! Debian's `docker-registry` (the CNCF distribution server, 2.8) on a
//! random loopback port with filesystem storage in a temporary directory;
//! killed on drop. Optionally behind htpasswd basic auth (a bcrypt hash of
//! a generated password) or token auth: the registry then trusts a
//! generated signing certificate, and [`TokenIssuer`] signs the ES256 JWTs
//! (with the certificate in `x5c`) that the test's token realm serves.
//!
//! Images are pushed through the registry's HTTP API: a config blob and a
//! layer blob (POST then PUT of the upload), then an OCI manifest PUT under
//! each tag.
//!
//! Start-up, spawn until `/v2/` answers: 11–23 ms per start on the 2-core
//! test machine with the registry tests running in parallel (printed by
//! every start).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::free_port;

pub const SERVICE: &str = "vouch-test-registry";
pub const ISSUER: &str = "vouch-test-issuer";

/// How clients authenticate to the registry.
pub enum Auth {
    None,
    /// htpasswd with one user.
    Basic {
        user: String,
        password: String,
    },
    /// Bearer tokens from `realm`, signed by `issuer`.
    Token {
        realm: String,
        issuer: Box<TokenIssuer>,
    },
}

pub struct Registry {
    dir: tempfile::TempDir,
    pub port: u16,
    auth: Auth,
    child: Option<Child>,
    /// Certificate and key files when serving HTTPS.
    tls: Option<(PathBuf, PathBuf)>,
    /// How long the last start took until `/v2/` answered.
    pub started_in: Duration,
}

impl Registry {
    pub fn start_new(auth: Auth) -> Registry {
        let mut registry = Registry {
            dir: tempfile::tempdir().expect("a temporary directory"),
            port: free_port(),
            auth,
            child: None,
            tls: None,
            started_in: Duration::ZERO,
        };
        registry.start();
        registry
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` with TLS.
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("http://127.0.0.1:{}", self.port),
            Some(_) => format!("https://localhost:{}", self.port),
        }
    }

    /// Serves HTTPS with `identity` from the next start (the test's own
    /// pushes speak plain HTTP: push first, then switch).
    pub fn set_tls(&mut self, identity: &super::certs::Identity) {
        let dir = self.dir.path().join("tls");
        std::fs::create_dir_all(&dir).unwrap();
        self.tls = Some(super::pem::write_identity(identity, &dir));
    }

    fn write_config(&self) -> PathBuf {
        let root = self.dir.path().join("storage");
        let auth = match &self.auth {
            Auth::None => String::new(),
            Auth::Basic { user, password } => {
                let hash = bcrypt::hash(password, 4).unwrap();
                let path = self.dir.path().join("htpasswd");
                std::fs::write(&path, format!("{user}:{hash}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: vouch-test\n    path: {}\n",
                    path.display()
                )
            }
            Auth::Token { realm, issuer } => {
                let path = self.dir.path().join("token-ca.pem");
                std::fs::write(&path, &issuer.cert_pem).unwrap();
                format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    path.display()
                )
            }
        };
        let config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{}\n  secret: vouch-test-secret\n{}\
             health:\n  storagedriver:\n    enabled: false\n\
             {auth}",
            root.display(),
            self.port,
            match &self.tls {
                None => String::new(),
                Some((cert, key)) => format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ),
            }
        );
        let path = self.dir.path().join("config.yml");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Starts the server and waits until `/v2/` answers (200, or 401 with
    /// auth).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let config = self.write_config();
        let started = Instant::now();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry (Debian package docker-registry)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // With TLS the listener accepting is the sign (the harness
            // speaks plain HTTP only).
            let ready = match self.tls {
                Some(_) => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
                None => matches!(self.raw("GET", "/v2/", &[], &[]), Ok((200 | 401, _, _))),
            };
            if ready {
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("docker-registry exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer /v2/"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.started_in = started.elapsed();
        eprintln!("docker-registry started in {:?}", self.started_in);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Replaces the auth (restart to apply).
    pub fn set_auth(&mut self, auth: Auth) {
        self.auth = auth;
    }

    /// The Authorization header the test itself pushes with.
    fn push_authorization(&self, repository: &str) -> Option<String> {
        match &self.auth {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Token { issuer, .. } => Some(format!(
                "Bearer {}",
                issuer.token(repository, &["pull", "push"], 600)
            )),
        }
    }

    /// One HTTP/1.1 exchange on a fresh connection: status, headers, body.
    pub fn raw(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<RawAnswer> {
        raw_exchange(self.port, method, target, headers, body)
    }

    fn push_blob(&self, repository: &str, auth: &Option<String>, content: &[u8]) -> String {
        let digest = sha256_digest(content);
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        let (status, answer_headers, body) = self
            .raw(
                "POST",
                &format!("/v2/{repository}/blobs/uploads/"),
                &headers,
                &[],
            )
            .unwrap();
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        let location = answer_headers
            .iter()
            .find(|(n, _)| n == "location")
            .map(|(_, v)| v.clone())
            .expect("an upload location");
        // The location may be absolute; the request target is its path.
        let target = match location.find("/v2/") {
            Some(at) => location[at..].to_string(),
            None => location,
        };
        let separator = if target.contains('?') { '&' } else { '?' };
        let mut put_headers = headers.clone();
        put_headers.push(("Content-Type", "application/octet-stream"));
        let (status, _, body) = self
            .raw(
                "PUT",
                &format!("{target}{separator}digest={digest}"),
                &put_headers,
                content,
            )
            .unwrap();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        digest
    }

    /// Pushes one small image (a config and a layer) and tags its manifest
    /// with every tag of `tags`.
    pub fn push_image(&self, repository: &str, tags: &[&str]) {
        self.push_layer(
            repository,
            tags,
            format!("layer of {repository}").into_bytes(),
        );
    }

    /// Pushes an image of its own under `tag` (a build of that commit):
    /// its manifest's digest is no other tag's, so [`Self::delete_tag`]
    /// removes only this tag.
    pub fn push_build(&self, repository: &str, tag: &str) {
        self.push_layer(
            repository,
            &[tag],
            format!("layer of {repository} at {tag}").into_bytes(),
        );
    }

    /// Deletes the manifest `tag` points at (the registry API deletes by
    /// digest; with [`Self::push_build`] only `tag` points at it).
    pub fn delete_tag(&self, repository: &str, tag: &str) {
        let auth = match &self.auth {
            Auth::Token { issuer, .. } => Some(format!(
                "Bearer {}",
                issuer.token(repository, &["pull", "push", "delete"], 600)
            )),
            _ => self.push_authorization(repository),
        };
        let mut headers: Vec<(&str, &str)> =
            vec![("Accept", "application/vnd.oci.image.manifest.v1+json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        let (status, answer_headers, _) = self
            .raw(
                "HEAD",
                &format!("/v2/{repository}/manifests/{tag}"),
                &headers,
                &[],
            )
            .unwrap();
        assert_eq!(status, 200, "manifest of {repository}:{tag}");
        let digest = answer_headers
            .iter()
            .find(|(name, _)| name == "docker-content-digest")
            .map(|(_, value)| value.clone())
            .expect("the registry names the manifest's digest");
        let (status, _, body) = self
            .raw(
                "DELETE",
                &format!("/v2/{repository}/manifests/{digest}"),
                &headers,
                &[],
            )
            .unwrap();
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    }

    fn push_layer(&self, repository: &str, tags: &[&str], layer: Vec<u8>) {
        let auth = self.push_authorization(repository);
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config_digest = self.push_blob(repository, &auth, config);
        let layer_digest = self.push_blob(repository, &auth, &layer);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer.len(),
            }],
        })
        .to_string();
        let mut headers: Vec<(&str, &str)> =
            vec![("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        for tag in tags {
            let (status, _, body) = self
                .raw(
                    "PUT",
                    &format!("/v2/{repository}/manifests/{tag}"),
                    &headers,
                    manifest.as_bytes(),
                )
                .unwrap();
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Status, headers (names in lowercase) and body of one answer.
pub type RawAnswer = (u16, Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.1 exchange with loopback `port` on a fresh connection.
pub fn raw_exchange(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawAnswer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&answer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, answer[head_end + 4..].to_vec()))
}

pub fn sha256_digest(content: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, content);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A token issuer: a P-256 key and a self-signed certificate for it, which
/// the registry's `rootcertbundle` holds.
pub struct TokenIssuer {
    key: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    cert_der: Vec<u8>,
    pub cert_pem: String,
}

impl TokenIssuer {
    pub fn new() -> TokenIssuer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let key_pair = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "vouch test token issuer");
        let cert = params.self_signed(&key_pair).unwrap();
        TokenIssuer {
            key,
            pkcs8: pkcs8.as_ref().to_vec(),
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
        }
    }

    /// The same key and certificate (for a token service the test runs
    /// beside the registry that trusts this issuer).
    pub fn same_key(&self) -> TokenIssuer {
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.pkcs8,
            &SystemRandom::new(),
        )
        .unwrap();
        TokenIssuer {
            key,
            pkcs8: self.pkcs8.clone(),
            cert_der: self.cert_der.clone(),
            cert_pem: self.cert_pem.clone(),
        }
    }

    /// A signed token granting `actions` on `repository`, valid for
    /// `lifetime_secs` (negative: expired that long ago).
    pub fn token(&self, repository: &str, actions: &[&str], lifetime_secs: i64) -> String {
        self.token_for(&[repository], actions, lifetime_secs)
    }

    /// [`Self::token`] for several repositories at once.
    pub fn token_for(&self, repositories: &[&str], actions: &[&str], lifetime_secs: i64) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = serde_json::json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&self.cert_der)],
        });
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": "vouch",
            "aud": SERVICE,
            "exp": now + lifetime_secs,
            "nbf": now - 10,
            "iat": now - 10,
            "jti": format!("{now}-{}", rand_suffix()),
            "access": repositories
                .iter()
                .map(|name| serde_json::json!({ "type": "repository", "name": name, "actions": actions }))
                .collect::<Vec<_>>(),
        });
        let signing_input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .unwrap();
        format!("{signing_input}.{}", b64.encode(signature.as_ref()))
    }
}

impl Default for TokenIssuer {
    fn default() -> Self {
        Self::new()
    }
}

fn rand_suffix() -> u64 {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}
