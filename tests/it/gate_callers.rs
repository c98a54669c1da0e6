//! The gate endpoint driven exactly as the progressive-delivery controllers
//! call it, against a running daemon:
//!
//! - Flagger (pkg/controller/webhook.go): `POST` with `Content-Type:
//!   application/json` and its `CanaryWebhookPayload` (name, namespace,
//!   phase, checksum, metadata); any status above 202 is a failed check,
//!   and the body is not read.
//! - Argo Rollouts' `web` provider (metricproviders/webmetric): `GET`
//!   without a body; a status outside 2xx is a measurement *Error*;
//!   after a 2xx the body is parsed as JSON, the metric's `jsonPath`
//!   (`{$.passed}`) picks the result and `successCondition: result ==
//!   true` decides Successful or Failed.
use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use support::http_server::{Reply, TestServer};
use support::vouch::Daemon;
use support::{wait_until, write_config};

/// One request over a fresh connection: status and body.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("Host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    driver.abort();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Flagger's payload for a canary in its analysis, as `json.Marshal`
/// writes it (field order of the Go struct, metadata omitted when empty).
fn flagger_payload(metadata: Option<serde_json::Value>) -> Vec<u8> {
    let mut payload = serde_json::json!({
        "name": "api",
        "namespace": "broxiva-production",
        "phase": "Progressing",
        "checksum": "5d8b6c4f9",
    });
    if let Some(metadata) = metadata {
        payload["metadata"] = metadata;
    }
    serde_json::to_vec(&payload).unwrap()
}

/// Flagger's verdict on a webhook answer: `r.StatusCode > 202` fails.
async fn flagger_calls(addr: SocketAddr, path: &str, body: Vec<u8>) -> (bool, u16, String) {
    let (status, text) = send(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body,
    )
    .await;
    (status <= 202, status, text)
}

#[derive(Debug, PartialEq, Eq)]
enum ArgoPhase {
    Successful,
    Failed,
    Error,
}

/// One Argo Rollouts `web` measurement with `jsonPath: "{$.passed}"` and
/// `successCondition: result == true`.
async fn argo_measures(addr: SocketAddr, path: &str) -> (ArgoPhase, u16) {
    let (status, body) = send(addr, "GET", path, &[], Vec::new()).await;
    if !(200..300).contains(&status) {
        return (ArgoPhase::Error, status);
    }
    let Ok(document) = serde_json::from_str::<serde_json::Value>(&body) else {
        // Argo evaluates a non-JSON body as a string: never `true`.
        return (ArgoPhase::Failed, status);
    };
    // Argo's `{$.passed}` (Kubernetes JSONPath) is `$.passed` in RFC 9535.
    let path = serde_json_path::JsonPath::parse("$.passed").unwrap();
    let Some(result) = path.query(&document).first() else {
        return (ArgoPhase::Error, status);
    };
    let phase = if *result == serde_json::Value::Bool(true) {
        ArgoPhase::Successful
    } else {
        ArgoPhase::Failed
    };
    (phase, status)
}

struct Setup {
    daemon: Daemon,
    _server: TestServer,
    _config: support::ConfigDir,
}

/// A daemon with a passing section (`post-deploy/api`) and a failing one
/// (`post-deploy/web`), every check run at least once.
async fn setup() -> Setup {
    let server = TestServer::http().await;
    server.route("/ok", Reply::json(200, serde_json::json!({"status": "ok"})));
    server.route("/broken", Reply::text(503, "down"));
    let config = write_config(&format!(
        r#"
defaults: {{ interval: 1s, timeout: 1s }}
checks:
  - name: api-health
    section: post-deploy/api
    severity: critical
    http: {{ url: "{ok}" }}
  - name: web-homepage
    section: post-deploy/web
    severity: critical
    http: {{ url: "{broken}" }}
"#,
        ok = server.url("/ok"),
        broken = server.url("/broken"),
    ));
    let daemon = Daemon::start(&config.path).await;
    wait_until("every check ran", Duration::from_secs(10), || async {
        daemon.checks().await["summary"]["pending"] == 0
    })
    .await;
    Setup {
        daemon,
        _server: server,
        _config: config,
    }
}

#[tokio::test]
async fn flagger_posts_its_payload_and_judges_only_the_status() {
    let setup = setup().await;
    let addr = setup.daemon.addr;

    let (ok, status, body) = flagger_calls(
        addr,
        "/api/v1/gate?section=post-deploy/api",
        flagger_payload(Some(serde_json::json!({"cmd": "vouch"}))),
    )
    .await;
    assert!(ok, "{status} {body}");
    assert_eq!(status, 200);

    let (ok, status, body) = flagger_calls(
        addr,
        "/api/v1/gate?section=post-deploy",
        flagger_payload(None),
    )
    .await;
    assert!(
        !ok,
        "a held gate must fail Flagger's check: {status} {body}"
    );
    assert_eq!(status, 503);
    assert!(body.contains("web-homepage"), "{body}");

    // Asking for 200 on a held gate would pass every Flagger analysis:
    // refused, and the refusal (400) is itself a failed check.
    let (ok, status, body) = flagger_calls(
        addr,
        "/api/v1/gate?section=post-deploy&held_status=200",
        flagger_payload(None),
    )
    .await;
    assert!(!ok);
    assert_eq!(status, 400);
    assert!(
        body.contains("Flagger reads only the status code"),
        "{body}"
    );

    // A body that is not Flagger's payload is ignored; an oversized one is
    // refused without being read whole.
    let (status, _) = send(
        addr,
        "POST",
        "/api/v1/gate?section=post-deploy/api",
        &[("Content-Type", "text/plain")],
        b"anything".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        addr,
        "POST",
        "/api/v1/gate?section=post-deploy/api",
        &[("Content-Type", "application/json")],
        vec![b' '; 100 * 1024],
    )
    .await;
    assert_eq!(status, 413);
    assert!(
        setup.daemon.logs().contains("gate asked by Flagger"),
        "the canary is logged"
    );
}

#[tokio::test]
async fn argo_gets_and_reads_passed_through_its_json_path() {
    let setup = setup().await;
    let addr = setup.daemon.addr;

    assert_eq!(
        argo_measures(addr, "/api/v1/gate?section=post-deploy/api").await,
        (ArgoPhase::Successful, 200)
    );
    // By default a held gate is an Argo *Error* (non-2xx): it only counts
    // against consecutiveErrorLimit, and any success resets that count.
    assert_eq!(
        argo_measures(addr, "/api/v1/gate?section=post-deploy").await,
        (ArgoPhase::Error, 503)
    );
    // With held_status=200 it is a real *Failed* measurement, counted
    // against failureLimit.
    assert_eq!(
        argo_measures(addr, "/api/v1/gate?section=post-deploy&held_status=200").await,
        (ArgoPhase::Failed, 200)
    );
    assert_eq!(
        argo_measures(addr, "/api/v1/gate?section=post-deploy/api&held_status=200").await,
        (ArgoPhase::Successful, 200)
    );
    // A bad query stays an error whatever held_status says.
    assert_eq!(
        argo_measures(addr, "/api/v1/gate?section=nowhere&held_status=200").await,
        (ArgoPhase::Error, 400)
    );
    assert_eq!(
        argo_measures(addr, "/api/v1/gate?held_status=204").await,
        (ArgoPhase::Error, 400)
    );
    // HEAD answers like GET, without a body.
    let (status, body) = send(
        addr,
        "HEAD",
        "/api/v1/gate?section=post-deploy",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!((status, body.as_str()), (503, ""));
}
