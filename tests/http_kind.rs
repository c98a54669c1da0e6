//! The `http` kind against a real local server.
mod support;

use std::time::Duration;

use support::http_server::{Reply, TestServer};
use support::vouch;

#[tokio::test]
async fn smoke_pass_and_fail() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::json(200, serde_json::json!({"status": "ok"})));
    let config = support::write_config(&format!(
        "checks:\n  - name: ok\n    http:\n      url: {}\n      expect: {{json: {{\"$.status\": ok}}}}\n",
        server.url("/ok")
    ));
    let out = vouch::run(&["check", "--config", config.path.to_str().unwrap()]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = Duration::ZERO;
}
