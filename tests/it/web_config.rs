//! `vouch serve --web.config.file`: TLS, client certificates and basic
//! auth on every endpoint, end to end against the real binary with a real
//! TLS client.
use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};

use support::certs::{Identity, TestCa, Validity};
use support::vouch::{http_get, run, Daemon};
use support::{wait_until, write_config, ConfigDir};

const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];
const LIMIT: Duration = Duration::from_secs(20);

fn valid() -> Validity {
    Validity::ValidFor { days: 30 }
}

/// A vouch config with one check that touches nothing but a closed local
/// port (`serve` refuses a config without checks), and a directory for
/// the web config and its files.
fn setup() -> ConfigDir {
    write_config("checks:\n  - name: api\n    http: {url: \"http://127.0.0.1:1/\"}\n")
}

/// Writes `contents` to `dir/name` by renaming a complete temporary file
/// over it, as a secret volume or cert-manager does.
fn put(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.new"));
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(&temporary, &path).unwrap();
    path
}

fn key_pem(identity: &Identity) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(&identity.key_der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// Writes the server's certificate and key as `server.crt`/`server.key`.
fn put_server_identity(dir: &Path, identity: &Identity) {
    put(dir, "server.key", &key_pem(identity));
    put(dir, "server.crt", &identity.chain_pem);
}

/// A TLS client: which CA it trusts, the certificate it presents, the
/// versions it speaks, the credentials it sends.
struct Client {
    trusts: CertificateDer<'static>,
    identity: Option<(Vec<CertificateDer<'static>>, Vec<u8>)>,
    tls12_only: bool,
    credentials: Option<(String, String)>,
}

impl Client {
    fn trusting(ca: &TestCa) -> Self {
        Client {
            trusts: ca.der(),
            identity: None,
            tls12_only: false,
            credentials: None,
        }
    }

    fn presenting(mut self, identity: &Identity) -> Self {
        self.identity = Some((identity.chain.clone(), identity.key_der.clone()));
        self
    }

    fn tls12_only(mut self) -> Self {
        self.tls12_only = true;
        self
    }

    fn with_credentials(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    fn config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.trusts.clone()).unwrap();
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS12, &rustls::version::TLS13]
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
        Arc::new(match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(
                    chain.clone(),
                    rustls::pki_types::PrivateKeyDer::Pkcs8(key.clone().into()),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    /// GET `path` over a fresh TLS connection.
    async fn get(&self, addr: SocketAddr, path: &str) -> Result<Answer, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(self.config());
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let server_certificate = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http handshake: {e}"))?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .uri(path)
            .header("Host", "localhost");
        if let Some((user, password)) = &self.credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header("Authorization", format!("Basic {token}"));
        }
        let response = sender
            .send_request(request.body(Empty::<Bytes>::new()).unwrap())
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        driver.abort();
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            server_certificate,
        })
    }

    async fn status(&self, addr: SocketAddr, path: &str) -> Result<u16, String> {
        self.get(addr, path).await.map(|a| a.status)
    }
}

struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
    server_certificate: CertificateDer<'static>,
}

/// A running daemon with a web config in `config.dir`.
async fn start(config: &ConfigDir, web_yaml: &str) -> Daemon {
    let web = put(config.dir.path(), "web.yml", web_yaml);
    Daemon::start_with_args(&config.path, &["--web.config.file", web.to_str().unwrap()]).await
}

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

#[tokio::test]
async fn basic_auth_guards_every_endpoint_over_tls() {
    let config = setup();
    let ca = TestCa::new("vouch test server CA");
    put_server_identity(config.dir.path(), &ca.issue(&NAMES, valid()));
    let web = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
         http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
         basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
        bcrypt_hash("alice's password"),
        bcrypt_hash("bob's password"),
    );
    let daemon = start(&config, &web).await;
    let addr = daemon.addr;
    let alice = Client::trusting(&ca).with_credentials("alice", "alice's password");

    // (path, status with credentials): the gate answers 503 (its one
    // check, of a closed port, is pending or erroring), but only to
    // someone it lets in.
    let endpoints = [
        ("/", 200),
        ("/api/v1/checks", 200),
        ("/api/v1/gate", 503),
        ("/metrics", 200),
        ("/livez", 200),
        ("/readyz", 200),
    ];
    for (path, status) in endpoints {
        let answer = alice.get(addr, path).await.unwrap();
        assert_eq!(answer.status, status, "{path} with alice's credentials");
        assert_eq!(answer.headers["x-frame-options"], "deny");

        let answer = Client::trusting(&ca).get(addr, path).await.unwrap();
        assert_eq!(answer.status, 401, "{path} without credentials");
        assert_eq!(
            answer.headers["www-authenticate"],
            "Basic realm=\"vouch\", charset=\"UTF-8\""
        );
        assert_eq!(answer.headers["x-frame-options"], "deny");
    }
    let metrics = alice.get(addr, "/metrics").await.unwrap().body;
    assert!(metrics.contains("vouch_build_info"), "{metrics}");

    let wrong = [
        ("alice", "bob's password"),
        ("alice", "alice's passwor"),
        ("bob", "alice's password"),
        ("carol", "alice's password"),
        ("", ""),
    ];
    for (user, password) in wrong {
        let client = Client::trusting(&ca).with_credentials(user, password);
        assert_eq!(
            client.status(addr, "/metrics").await,
            Ok(401),
            "{user}:{password}"
        );
    }
    // A wrong attempt leaves nothing behind that lets a later one in, and
    // bob's right password is still right after alice's wrong ones.
    let bob = Client::trusting(&ca).with_credentials("bob", "bob's password");
    assert_eq!(bob.status(addr, "/metrics").await, Ok(200));

    // TLS is required: plain HTTP to the port gets no HTTP answer.
    assert_eq!(http_get(addr, "/livez").await, None);
}

#[tokio::test]
async fn client_certificates_are_required_and_verified() {
    let config = setup();
    let server_ca = TestCa::new("vouch test server CA");
    let client_ca = TestCa::new("vouch test client CA");
    let other_ca = TestCa::new("someone else's CA");
    put_server_identity(config.dir.path(), &server_ca.issue(&NAMES, valid()));
    put(config.dir.path(), "client-ca.crt", &client_ca.pem());
    let daemon = start(
        &config,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n",
    )
    .await;
    let addr = daemon.addr;

    let prometheus = client_ca.issue(&["prometheus"], valid());
    let right = Client::trusting(&server_ca).presenting(&prometheus);
    assert_eq!(right.status(addr, "/metrics").await, Ok(200));
    assert_eq!(right.status(addr, "/readyz").await, Ok(200));

    let none = Client::trusting(&server_ca).status(addr, "/metrics").await;
    assert!(none.is_err(), "no client certificate: {none:?}");

    let stranger = other_ca.issue(&["prometheus"], valid());
    let foreign = Client::trusting(&server_ca)
        .presenting(&stranger)
        .status(addr, "/metrics")
        .await;
    assert!(foreign.is_err(), "certificate of another CA: {foreign:?}");

    let expired = client_ca.issue(&["prometheus"], Validity::Expired);
    let stale = Client::trusting(&server_ca)
        .presenting(&expired)
        .status(addr, "/metrics")
        .await;
    assert!(stale.is_err(), "expired client certificate: {stale:?}");
}

#[tokio::test]
async fn min_version_tls13_refuses_a_tls12_client() {
    let config = setup();
    let ca = TestCa::new("vouch test server CA");
    put_server_identity(config.dir.path(), &ca.issue(&NAMES, valid()));
    let daemon = start(
        &config,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n",
    )
    .await;
    let modern = Client::trusting(&ca).status(daemon.addr, "/livez").await;
    assert_eq!(modern, Ok(200));
    let old = Client::trusting(&ca)
        .tls12_only()
        .status(daemon.addr, "/livez")
        .await;
    assert!(old.is_err(), "a TLS 1.2-only client: {old:?}");
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_restart() {
    let config = setup();
    let ca = TestCa::new("vouch test server CA");
    let first = ca.issue(&NAMES, valid());
    put_server_identity(config.dir.path(), &first);
    let daemon = start(
        &config,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .await;
    let client = Client::trusting(&ca);
    let answer = client.get(daemon.addr, "/livez").await.unwrap();
    assert_eq!(answer.server_certificate, first.chain[0]);

    let second = ca.issue(&NAMES, valid());
    put_server_identity(config.dir.path(), &second);
    wait_until("the rotated certificate", LIMIT, || async {
        matches!(
            client.get(daemon.addr, "/livez").await,
            Ok(answer) if answer.server_certificate == second.chain[0]
        )
    })
    .await;
    assert!(
        daemon.logs().contains("web config reloaded"),
        "{}",
        daemon.logs()
    );
}

#[tokio::test]
async fn a_broken_new_web_config_keeps_the_old_one_serving() {
    let config = setup();
    let ca = TestCa::new("vouch test server CA");
    put_server_identity(config.dir.path(), &ca.issue(&NAMES, valid()));
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let alice_hash = bcrypt_hash("alice's password");
    let daemon = start(
        &config,
        &format!("{tls}basic_auth_users:\n  alice: '{alice_hash}'\n"),
    )
    .await;
    let addr = daemon.addr;
    let alice = Client::trusting(&ca).with_credentials("alice", "alice's password");
    let bob = Client::trusting(&ca).with_credentials("bob", "bob's password");
    assert_eq!(alice.status(addr, "/metrics").await, Ok(200));
    assert_eq!(bob.status(addr, "/metrics").await, Ok(401));

    // A good change is picked up: bob is let in.
    put(
        config.dir.path(),
        "web.yml",
        &format!(
            "{tls}basic_auth_users:\n  alice: '{alice_hash}'\n  bob: '{}'\n",
            bcrypt_hash("bob's password")
        ),
    );
    wait_until("bob to be let in", LIMIT, || async {
        bob.status(addr, "/metrics").await == Ok(200)
    })
    .await;

    // A broken one is logged and changes nothing.
    put(
        config.dir.path(),
        "web.yml",
        &format!("{tls}basic_auth_users:\n  alice: not-a-hash\n"),
    );
    wait_until("the broken web config to be reported", LIMIT, || async {
        let _ = alice.status(addr, "/livez").await;
        daemon.logs().contains("web config not reloaded")
    })
    .await;
    let logs = daemon.logs();
    assert!(
        logs.contains("web.yml:5: basic_auth_users.alice: not a bcrypt hash"),
        "{logs}"
    );
    assert_eq!(bob.status(addr, "/metrics").await, Ok(200));
    assert_eq!(alice.status(addr, "/metrics").await, Ok(200));
    assert_eq!(
        Client::trusting(&ca).status(addr, "/metrics").await,
        Ok(401)
    );

    // A key file gone while running: the loaded key keeps serving.
    std::fs::remove_file(config.dir.path().join("server.key")).unwrap();
    assert_eq!(bob.status(addr, "/metrics").await, Ok(200));
}

/// `vouch ARGS`: exit code and standard error.
async fn vouch(args: &[&str]) -> (Option<i32>, String, String) {
    let out = run(args).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn invalid_web_configs_exit_2_naming_file_line_and_key() {
    let config = setup();
    let dir = config.dir.path();
    let ca = TestCa::new("vouch test server CA");
    put_server_identity(dir, &ca.issue(&NAMES, valid()));
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let cases = [
        (
            format!("{tls}  cipher_suitez: []\n"),
            "4: tls_server_config: unknown field `cipher_suitez`, expected one of",
        ),
        (
            format!("{tls}  client_auth_type: Sometimes\n"),
            "4: tls_server_config.client_auth_type: unknown variant `Sometimes`, expected one of",
        ),
        (
            format!("{tls}  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
            "4: tls_server_config.cipher_suites: not supported by vouch: rustls offers only \
             modern cipher suites and curves, in its own order",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: missing.key\n".to_string(),
            &format!(
                "3: tls_server_config.key_file: cannot read {}: No such file or directory (os error 2)",
                dir.join("missing.key").display()
            ),
        ),
        (
            format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
            "4: tls_server_config.client_auth_type: RequireAndVerifyClientCert needs \
             client_ca_file, the CA that signs client certificates",
        ),
        (
            "basic_auth_users:\n  alice: hunter2\n".to_string(),
            "2: basic_auth_users.alice: not a bcrypt hash",
        ),
    ];
    // `validate` refuses a config without checks: give it one (no target
    // is touched) so that only the web config's problems show.
    std::fs::write(
        &config.path,
        "checks:\n  - name: api\n    http: {url: \"http://127.0.0.1:1/\"}\n",
    )
    .unwrap();
    let vouch_yaml = config.path.to_str().unwrap();
    for (yaml, expected) in &cases {
        let web = put(dir, "web.yml", yaml);
        let web = web.to_str().unwrap();
        let expected = format!("{web}:{expected}");
        for command in ["serve", "validate"] {
            let (code, _, stderr) = vouch(&[
                command,
                "--config",
                vouch_yaml,
                "--web.config.file",
                web,
                "--log-format",
                "text",
            ])
            .await;
            assert_eq!(code, Some(2), "{command} with\n{yaml}\n{stderr}");
            assert!(
                stderr.starts_with(&expected),
                "{command} with\n{yaml}\nexpected: {expected}\ngot: {stderr}"
            );
        }
    }

    let web = put(dir, "web.yml", tls);
    let (code, stdout, stderr) = vouch(&[
        "validate",
        "--config",
        vouch_yaml,
        "--web.config.file",
        web.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("{}: ok", web.display())),
        "{stdout}"
    );

    // The file may also come from VOUCH_WEB_CONFIG_FILE.
    let web = put(dir, "web.yml", "basic_auth_users:\n  alice: hunter2\n");
    let out = tokio::process::Command::new(support::vouch::bin())
        .args(["validate", "--config", vouch_yaml])
        .env("VOUCH_WEB_CONFIG_FILE", &web)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:2: basic_auth_users.alice:", web.display())),
        "{stderr}"
    );
}

#[tokio::test]
async fn without_the_flag_the_endpoints_stay_plain_http() {
    let config = setup();
    let daemon = Daemon::start(&config.path).await;
    assert_eq!(daemon.get("/livez").await, Some((200, "ok\n".to_string())));
}
