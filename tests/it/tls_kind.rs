//! The `tls` kind against real TLS servers with generated chains: valid,
//! expired, not yet valid, self-signed, for another name, an intermediate
//! expiring before its leaf, a leaf expiring within `min_valid_for`; PEM
//! files; refused and hung servers. Every certificate has validity to the
//! second, and each test checks the exact dates measured, whatever the
//! verdict. Checks run in-process through the plan and the runner.
use crate::support;

use support::kind::{self, expect, CLIENTS};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use support::certs::{self_signed_with, unix_now, Identity, TestCa, Validity, DAY};
use support::closed_port;
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::run_once;

/// A TLS server that completes handshakes with `identity` (offering only
/// `versions`) and then waits for the client to close. Stops when dropped.
struct TlsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    async fn start(identity: &Identity) -> TlsServer {
        Self::with_versions(identity, rustls::DEFAULT_VERSIONS).await
    }

    async fn with_versions(
        identity: &Identity,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsServer {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key())
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let mut sink = Vec::new();
                        let _ = tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut sink).await;
                    }
                });
            }
        });
        TlsServer { addr, task }
    }
}

fn config_yaml(timeout: &str, tls: &str) -> String {
    kind::one_check_yaml("tls", timeout, tls)
}

async fn run_in(dir: &Path, timeout: &str, tls: &str) -> Outcome {
    let yaml = config_yaml(timeout, tls);
    let check = kind::plan(&yaml, dir);
    run_once(check, CLIENTS.clone()).await.outcome
}

/// The config error of a `tls:` block that must not decode or plan.
fn config_error(tls: &str) -> String {
    kind::config_error(&config_yaml("10s", tls))
}

fn measured(outcome: &Outcome, name: &str) -> Option<f64> {
    outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == name)
        .map(|m| m.value)
}

/// The earliest expiry in the chain: (position, index, Unix time).
fn earliest(outcome: &Outcome) -> Option<(String, String, f64)> {
    outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == "vouch_tls_chain_earliest_not_after_timestamp_seconds")
        .map(|m| {
            let labels = m.label_values();
            (labels[0].to_string(), labels[1].to_string(), m.value)
        })
}

/// Asserts the leaf dates and verification flag measured.
#[track_caller]
fn assert_leaf(outcome: &Outcome, not_before: i64, not_after: i64, verified: bool) {
    assert_eq!(
        measured(outcome, "vouch_tls_cert_not_before_timestamp_seconds"),
        Some(not_before as f64),
        "{outcome:?}"
    );
    assert_eq!(
        measured(outcome, "vouch_tls_cert_not_after_timestamp_seconds"),
        Some(not_after as f64),
        "{outcome:?}"
    );
    assert_eq!(
        measured(outcome, "vouch_tls_verification_success"),
        Some(if verified { 1.0 } else { 0.0 }),
        "{outcome:?}"
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time, as messages print it.
fn date(unix: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64),
    )
    .to_string()
}

/// A root CA written to `dir/ca.pem`, and an intermediate below it valid
/// for two years.
fn pki(dir: &Path) -> (TestCa, TestCa) {
    let root = TestCa::new("Vouch Test Root");
    root.write_pem(dir);
    let now = unix_now();
    let intermediate = root.intermediate(
        "Vouch Test Intermediate R1",
        Validity::Between {
            not_before: now - 10 * DAY,
            not_after: now + 730 * DAY,
        },
    );
    (root, intermediate)
}

const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The server listens on 127.0.0.1 only: `connect_to` keeps a `::1` that
/// `localhost` may also resolve to (another process's port there) out of
/// the test, while the certificate is still checked for `localhost`.
fn block(server: &TlsServer, extra: &str) -> String {
    format!(
        "host: localhost\nconnect_to: 127.0.0.1\nport: {}\n{extra}",
        server.addr.port()
    )
}

#[tokio::test]
async fn a_valid_chain_passes_with_its_dates_version_and_handshake_time() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, intermediate) = pki(dir.path());
    let now = unix_now();
    let (not_before, not_after) = (now - DAY, now + 90 * DAY);
    let leaf = intermediate.issue(
        &NAMES,
        Validity::Between {
            not_before,
            not_after,
        },
    );
    let server = TlsServer::start(&leaf).await;
    let outcome = run_in(
        dir.path(),
        "10s",
        &block(
            &server,
            "ca_file: ca.pem\nmin_valid_for: 30d\nissuer: Vouch Test Intermediate\nsans: [localhost, 127.0.0.1]\nmin_version: 1.3",
        ),
    )
    .await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        &format!("certificate valid until {}", date(not_after)),
    );
    expect(&outcome, Verdict::Pass, Reason::Ok, "TLS 1.3");
    assert_leaf(&outcome, not_before, not_after, true);
    assert_eq!(
        earliest(&outcome),
        Some(("leaf".into(), "0".into(), not_after as f64))
    );
    let version = outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == "vouch_tls_version_info")
        .expect("a version is measured");
    assert_eq!(version.label_values(), ["TLS1.3"]);
    let handshake = measured(&outcome, "vouch_tls_handshake_duration_seconds").unwrap();
    assert!(handshake > 0.0);
    println!("loopback TLS handshake: {:.3} ms", handshake * 1000.0);
}

#[tokio::test]
async fn an_expired_leaf_fails_and_still_reports_its_dates() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, intermediate) = pki(dir.path());
    let now = unix_now();
    let (not_before, not_after) = (now - 100 * DAY, now - 3 * DAY);
    let leaf = intermediate.issue(
        &NAMES,
        Validity::Between {
            not_before,
            not_after,
        },
    );
    let server = TlsServer::start(&leaf).await;
    let outcome = run_in(dir.path(), "10s", &block(&server, "ca_file: ca.pem")).await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TlsExpired,
        &format!(
            "the leaf certificate expired at {} (3.0 days ago)",
            date(not_after)
        ),
    );
    assert_leaf(&outcome, not_before, not_after, false);
    assert_eq!(
        earliest(&outcome),
        Some(("leaf".into(), "0".into(), not_after as f64))
    );
}

#[tokio::test]
async fn a_not_yet_valid_leaf_fails_naming_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, intermediate) = pki(dir.path());
    let now = unix_now();
    let (not_before, not_after) = (now + 2 * DAY, now + 92 * DAY);
    let leaf = intermediate.issue(
        &NAMES,
        Validity::Between {
            not_before,
            not_after,
        },
    );
    let server = TlsServer::start(&leaf).await;
    let outcome = run_in(dir.path(), "10s", &block(&server, "ca_file: ca.pem")).await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TlsNotYetValid,
        &format!(
            "the leaf certificate is not valid before {}",
            date(not_before)
        ),
    );
    assert_leaf(&outcome, not_before, not_after, false);
}

#[tokio::test]
async fn a_self_signed_leaf_is_an_unknown_issuer() {
    let now = unix_now();
    let (not_before, not_after) = (now - DAY, now + 365 * DAY);
    let leaf = self_signed_with(
        &NAMES,
        Validity::Between {
            not_before,
            not_after,
        },
    );
    let server = TlsServer::start(&leaf).await;
    let outcome = run_in(Path::new("."), "10s", &block(&server, "")).await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TlsUnknownIssuer,
        "the certificate is self-signed (CN=Vouch Self-Signed localhost) and not trusted",
    );
    assert_leaf(&outcome, not_before, not_after, false);

    // Skipped verification passes, saying so, and still measures it as failed.
    let skipped = run_in(
        Path::new("."),
        "10s",
        &block(&server, "insecure_skip_verify: true"),
    )
    .await;
    expect(
        &skipped,
        Verdict::Pass,
        Reason::Ok,
        "not verified (insecure_skip_verify)",
    );
    assert_leaf(&skipped, not_before, not_after, false);
}

#[tokio::test]
async fn a_leaf_for_another_name_is_a_hostname_mismatch_unless_connected_by_address() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, intermediate) = pki(dir.path());
    let now = unix_now();
    let (not_before, not_after) = (now - DAY, now + 90 * DAY);
    let leaf = intermediate.issue(
        &["api.example.com", "www.example.com"],
        Validity::Between {
            not_before,
            not_after,
        },
    );
    let server = TlsServer::start(&leaf).await;
    let outcome = run_in(dir.path(), "10s", &block(&server, "ca_file: ca.pem")).await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TlsHostname,
        "the certificate is not valid for localhost (it names api.example.com, www.example.com)",
    );
    assert_leaf(&outcome, not_before, not_after, false);

    // The same server reached by address with the right SNI name passes.
    let by_address = run_in(
        dir.path(),
        "10s",
        &format!(
            "host: api.example.com\nconnect_to: {}\nca_file: ca.pem\nsans: [www.example.com]",
            server.addr
        ),
    )
    .await;
    expect(&by_address, Verdict::Pass, Reason::Ok, &date(not_after));
    assert_leaf(&by_address, not_before, not_after, true);
}

#[tokio::test]
async fn an_intermediate_expiring_before_the_leaf_is_the_earliest_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let root = TestCa::new("Vouch Test Root");
    root.write_pem(dir.path());
    let now = unix_now();
    let intermediate_not_after = now + 5 * DAY;
    let intermediate = root.intermediate(
        "Vouch Short Intermediate",
        Validity::Between {
            not_before: now - 300 * DAY,
            not_after: intermediate_not_after,
        },
    );
    let (not_before, not_after) = (now - DAY, now + 60 * DAY);
    let leaf = intermediate.issue(
        &NAMES,
        Validity::Between {
            not_before,
            not_after,
        },
    );
    let server = TlsServer::start(&leaf).await;

    // Verification passes (the intermediate is still valid) ...
    let plain = run_in(dir.path(), "10s", &block(&server, "ca_file: ca.pem")).await;
    expect(&plain, Verdict::Pass, Reason::Ok, &date(not_after));
    assert_leaf(&plain, not_before, not_after, true);
    assert_eq!(
        earliest(&plain),
        Some((
            "intermediate".into(),
            "1".into(),
            intermediate_not_after as f64
        ))
    );
    // ... but min_valid_for judges the whole chain.
    let outcome = run_in(
        dir.path(),
        "10s",
        &block(&server, "ca_file: ca.pem\nmin_valid_for: 30d"),
    )
    .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TlsExpiring,
        &format!(
            "the intermediate certificate (chain index 1) expires in 5.0 days (at {}), less than min_valid_for 30d",
            date(intermediate_not_after)
        ),
    );
}

#[tokio::test]
async fn an_expired_intermediate_is_tls_expired_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = TestCa::new("Vouch Test Root");
    root.write_pem(dir.path());
    let now = unix_now();
    let intermediate_not_after = now - DAY;
    let intermediate = root.intermediate(
        "Vouch Lapsed Intermediate",
        Validity::Between {
            not_before: now - 300 * DAY,
            not_after: intermediate_not_after,
        },
    );
    let (not_before, not_after) = (now - 2 * DAY, now + 60 * DAY);
    let leaf = intermediate.issue(
        &NAMES,
        Validity::Between {
            not_before,
            not_after,
        },
    );
    let server = TlsServer::start(&leaf).await;
    let outcome = run_in(dir.path(), "10s", &block(&server, "ca_file: ca.pem")).await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TlsExpired,
        &format!(
            "the intermediate certificate (chain index 1) expired at {} (1.0 days ago)",
            date(intermediate_not_after)
        ),
    );
    assert_leaf(&outcome, not_before, not_after, false);
    assert_eq!(
        earliest(&outcome),
        Some((
            "intermediate".into(),
            "1".into(),
            intermediate_not_after as f64
        ))
    );
}

#[tokio::test]
async fn a_leaf_expiring_in_ten_days_fails_min_valid_for_with_the_days_left() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, intermediate) = pki(dir.path());
    let now = unix_now();
    let (not_before, not_after) = (now - 80 * DAY, now + 10 * DAY);
    let leaf = intermediate.issue(
        &NAMES,
        Validity::Between {
            not_before,
            not_after,
        },
    );
    let server = TlsServer::start(&leaf).await;
    let outcome = run_in(
        dir.path(),
        "10s",
        &block(&server, "ca_file: ca.pem\nmin_valid_for: 30d"),
    )
    .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TlsExpiring,
        &format!(
            "the leaf certificate expires in 10.0 days (at {}), less than min_valid_for 30d",
            date(not_after)
        ),
    );
    assert_leaf(&outcome, not_before, not_after, true);
    // 9 days is enough for a 7-day minimum.
    let lenient = run_in(
        dir.path(),
        "10s",
        &block(&server, "ca_file: ca.pem\nmin_valid_for: 7d"),
    )
    .await;
    expect(&lenient, Verdict::Pass, Reason::Ok, "10.0 days left");
}

#[tokio::test]
async fn issuer_names_and_version_expectations_fail_with_their_own_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, intermediate) = pki(dir.path());
    let now = unix_now();
    let leaf = intermediate.issue(
        &NAMES,
        Validity::Between {
            not_before: now - DAY,
            not_after: now + 90 * DAY,
        },
    );
    let server = TlsServer::start(&leaf).await;
    let issuer = run_in(
        dir.path(),
        "10s",
        &block(&server, "ca_file: ca.pem\nissuer: \"Let's Encrypt\""),
    )
    .await;
    expect(
        &issuer,
        Verdict::Fail,
        Reason::TlsIssuer,
        "issuer \"CN=Vouch Test Intermediate R1\" does not match \"Let's Encrypt\"",
    );
    let sans = run_in(
        dir.path(),
        "10s",
        &block(
            &server,
            "ca_file: ca.pem\nsans: [localhost, api.example.com]",
        ),
    )
    .await;
    expect(
        &sans,
        Verdict::Fail,
        Reason::TlsSan,
        "subject alternative names lack api.example.com (the certificate names localhost, 127.0.0.1)",
    );

    let old = TlsServer::with_versions(&leaf, &[&rustls::version::TLS12]).await;
    let version = run_in(
        dir.path(),
        "10s",
        &block(&old, "ca_file: ca.pem\nmin_version: \"1.3\""),
    )
    .await;
    expect(
        &version,
        Verdict::Fail,
        Reason::TlsVersion,
        "negotiated TLS 1.2, the minimum is TLS 1.3",
    );
    let label = version
        .measurements
        .iter()
        .find(|m| m.measure.name() == "vouch_tls_version_info")
        .map(|m| m.label_values()[0].to_string());
    assert_eq!(label.as_deref(), Some("TLS1.2"));
}

#[tokio::test]
async fn a_pem_file_is_verified_and_measured_without_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, intermediate) = pki(dir.path());
    let now = unix_now();
    let (not_before, not_after) = (now - 5 * DAY, now + 20 * DAY);
    let leaf = intermediate.issue(
        &["api.example.com"],
        Validity::Between {
            not_before,
            not_after,
        },
    );
    leaf.write_chain_pem(dir.path(), "tls.crt");

    let valid = run_in(
        dir.path(),
        "10s",
        "pem_file: tls.crt\nhost: api.example.com\nca_file: ca.pem",
    )
    .await;
    expect(&valid, Verdict::Pass, Reason::Ok, &date(not_after));
    assert_leaf(&valid, not_before, not_after, true);
    assert_eq!(
        measured(&valid, "vouch_tls_handshake_duration_seconds"),
        None
    );

    let soon = run_in(
        dir.path(),
        "10s",
        "pem_file: tls.crt\nca_file: ca.pem\nmin_valid_for: 30d",
    )
    .await;
    expect(
        &soon,
        Verdict::Fail,
        Reason::TlsExpiring,
        "the leaf certificate expires in 20.0 days",
    );

    let wrong_name = run_in(
        dir.path(),
        "10s",
        "pem_file: tls.crt\nhost: web.example.com\nca_file: ca.pem",
    )
    .await;
    expect(
        &wrong_name,
        Verdict::Fail,
        Reason::TlsHostname,
        "not valid for web.example.com",
    );

    let untrusted = run_in(dir.path(), "10s", "pem_file: tls.crt").await;
    expect(
        &untrusted,
        Verdict::Fail,
        Reason::TlsUnknownIssuer,
        "does not lead to a trusted root",
    );
    assert_leaf(&untrusted, not_before, not_after, false);

    let missing = run_in(dir.path(), "10s", "pem_file: absent.crt").await;
    expect(&missing, Verdict::Error, Reason::File, "cannot read");
    assert!(missing.measurements.is_empty());
}

#[tokio::test]
async fn a_refused_port_is_connection_refused() {
    let port = closed_port();
    let outcome = run_in(
        Path::new("."),
        "10s",
        &format!("host: localhost\nconnect_to: 127.0.0.1\nport: {port}"),
    )
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("connection to 127.0.0.1:{port} refused"),
    );
    assert!(outcome.measurements.is_empty());
}

#[tokio::test]
async fn a_refused_port_that_comes_up_passes_on_the_next_run() {
    let port = support::RefusingPort::bind();
    let number = port.port;
    let check = kind::plan(
        &config_yaml(
            "10s",
            &format!("host: localhost\nconnect_to: 127.0.0.1\nport: {number}\ninsecure_skip_verify: true"),
        ),
        Path::new("."),
    );
    let down = run_once(check.clone(), CLIENTS.clone()).await.outcome;
    expect(
        &down,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("connection to 127.0.0.1:{number} refused"),
    );
    let identity = support::certs::self_signed(&NAMES);
    let server = support::http_server::TestServer::https_on(identity, port.listen()).await;
    let up = run_once(check, CLIENTS.clone()).await.outcome;
    expect(&up, Verdict::Pass, Reason::Ok, "");
    assert!(measured(&up, "vouch_tls_handshake_duration_seconds").is_some());
    drop(server);
}

#[tokio::test]
async fn an_unreachable_address_is_a_connect_error() {
    // The kernel refuses TCP to a multicast address (ENETUNREACH) before
    // any packet leaves: unreachable on any host.
    let outcome = run_in(
        Path::new("."),
        "10s",
        "host: localhost\nconnect_to: 224.0.0.1\nport: 443",
    )
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Connect,
        "cannot connect to 224.0.0.1:443",
    );
}

#[tokio::test]
async fn an_unresolvable_host_is_a_dns_error() {
    // Through the binary, whose resolver gives up after one second: fails
    // as DNS online (NXDOMAIN) and offline (no name server) alike.
    let check = support::vouch::check_one(
        "checks:\n  - name: t\n    timeout: 10s\n    tls: { host: vouch-test.invalid, port: 443 }\n",
        &[support::vouch::QUICK_RESOLVER],
    )
    .await;
    assert_eq!(
        (&check["state"], &check["last_run"]["reason"]),
        (&"error".into(), &Reason::Dns.as_str().into()),
        "{check:#}"
    );
    assert!(
        check["last_run"]["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot resolve vouch-test.invalid: "),
        "{check:#}"
    );
}

#[tokio::test]
async fn a_server_that_never_completes_the_handshake_times_out() {
    // The kernel accepts the connection; nothing ever answers the hello.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // 3s, not 300ms: the stage named must be the handshake, so connecting
    // (immediate on loopback, unless a loaded host stalls the test) must
    // be well inside the timeout.
    let outcome = run_in(
        Path::new("."),
        "3s",
        &format!("host: localhost\nconnect_to: 127.0.0.1\nport: {port}"),
    )
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Timeout,
        "no result within 3s (in the TLS handshake)",
    );
    drop(listener);
}

#[test]
fn config_problems_name_the_key() {
    assert_eq!(
        config_error("port: 443"),
        "test.yaml:4: checks[0].tls: needs host (to connect to) or pem_file (to read a chain from)"
    );
    assert_eq!(
        config_error("pem_file: tls.crt\nport: 443"),
        "test.yaml:6: checks[0].tls.port: has no effect with pem_file (no connection is made)"
    );
    assert_eq!(
        config_error("host: example.com\nconnect_to: ingress"),
        "test.yaml:6: checks[0].tls.connect_to: invalid address \"ingress\": expected an IP address or IP:port"
    );
    assert_eq!(
        config_error("host: example.com\nmin_version: 1.1"),
        "test.yaml:6: checks[0].tls.min_version: invalid TLS version \"1.1\": expected 1.2 or 1.3"
    );
    assert_eq!(
        config_error("host: example.com\nissuer: \"(\""),
        "test.yaml:6: checks[0].tls.issuer: invalid regex: unclosed group"
    );
}

#[tokio::test]
async fn a_server_that_does_not_speak_tls_is_a_handshake_failure() {
    // Whatever the client sends, the server answers in plain HTTP and closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut stream,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            )
            .await;
        }
    });
    let outcome = run_in(
        Path::new("."),
        "10s",
        &format!(
            "host: localhost\nconnect_to: 127.0.0.1\nport: {}",
            addr.port()
        ),
    )
    .await;
    task.abort();
    expect(
        &outcome,
        Verdict::Error,
        Reason::Tls,
        &format!("TLS handshake with localhost ({addr}) failed: the server's answer is not TLS"),
    );
    assert!(outcome.measurements.is_empty(), "{outcome:?}");
}

/// Runs one `http` check of `url` trusting `ca_file` (in `dir`).
async fn http_outcome(dir: &Path, url: &str) -> Outcome {
    let yaml = kind::one_check_yaml("http", "10s", &format!("url: {url}\nca_file: ca.pem"));
    run_once(kind::plan(&yaml, dir), CLIENTS.clone())
        .await
        .outcome
}

#[tokio::test]
async fn a_ca_certificate_presented_as_the_leaf_is_named_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, intermediate) = pki(dir.path());
    let server = TlsServer::start(&intermediate.as_server_identity()).await;
    let words = "the server presented a CA certificate as its own (CaUsedAsEndEntity)";

    // The tls kind completes the handshake and judges the chain.
    let outcome = run_in(dir.path(), "10s", &block(&server, "ca_file: ca.pem")).await;
    expect(&outcome, Verdict::Fail, Reason::Tls, words);
    assert!(
        !outcome.message.contains("OtherError"),
        "{}",
        outcome.message
    );

    // The http kind aborts the handshake; its error says the same.
    let url = format!("https://localhost:{}/", server.addr.port());
    let outcome = http_outcome(dir.path(), &url).await;
    expect(&outcome, Verdict::Error, Reason::Tls, words);
    assert!(
        !outcome.message.contains("OtherError"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn a_leaf_only_for_client_authentication_is_refused_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, intermediate) = pki(dir.path());
    let leaf = intermediate.issue_with(&NAMES, Validity::ValidFor { days: 30 }, |params| {
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    });
    let server = TlsServer::start(&leaf).await;
    let words = "the server's certificate is not meant for TLS servers (its extended key usage lacks server authentication) (InvalidPurposeContext)";
    let outcome = run_in(dir.path(), "10s", &block(&server, "ca_file: ca.pem")).await;
    expect(&outcome, Verdict::Fail, Reason::Tls, words);
    let url = format!("https://localhost:{}/", server.addr.port());
    expect(
        &http_outcome(dir.path(), &url).await,
        Verdict::Error,
        Reason::Tls,
        words,
    );
}
