//! The `http` kind against real local servers: every expectation passing and
//! failing, the faults real targets show, TLS verification, measurements and
//! the config problems of an `http:` block. Checks run in-process through
//! the plan and the runner, exactly as `vouch check` runs them.
use crate::support;

use support::kind::{self, expect, CLIENTS};

use std::path::Path;
use std::time::Duration;

use support::certs::{self_signed, unix_now, TestCa, Validity, DAY};
use support::http_server::{Reply, TestServer};
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::{run_once, RunRecord};

fn config_yaml(timeout: &str, http: &str) -> String {
    kind::one_check_yaml("http", timeout, http)
}

/// Plans the check (relative paths resolve against `dir`) and runs it once.
async fn run_check(dir: &Path, timeout: &str, http: &str) -> RunRecord {
    let yaml = config_yaml(timeout, http);
    let check = kind::plan(&yaml, dir);
    run_once(check, CLIENTS.clone()).await
}

/// Runs an `http:` block with a 10s timeout; relative paths are not used.
async fn run(http: &str) -> Outcome {
    run_check(Path::new("."), "10s", http).await.outcome
}

/// The config error of a `http:` block that must not decode or plan.
fn config_error(http: &str) -> String {
    kind::config_error(&config_yaml("10s", http))
}

/// The value of measurement `name` (with `phase`, for the duration).
fn measured(outcome: &Outcome, name: &str, phase: Option<&str>) -> Option<f64> {
    outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == name && phase.is_none_or(|p| m.label_values() == [p]))
        .map(|m| m.value)
}

const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

// ---------------------------------------------------------------- status

#[tokio::test]
async fn status_list_passes_and_fails_naming_the_code() {
    let server = TestServer::http().await;
    server.route("/up", Reply::text(200, "up"));
    server.route("/down", Reply::text(503, "down"));
    let block = |path: &str| format!("url: {}\nexpect:\n  status: [200]", server.url(path));

    let pass = run(&block("/up")).await;
    expect(&pass, Verdict::Pass, Reason::Ok, "status 200");
    let fail = run(&block("/down")).await;
    expect(
        &fail,
        Verdict::Fail,
        Reason::Status,
        "status 503, expected 200",
    );
}

#[tokio::test]
async fn status_class_accepts_the_whole_class() {
    let server = TestServer::http().await;
    server.route("/created", Reply::status(201));
    server.route("/gone", Reply::text(410, "gone"));
    let block = |path: &str| format!("url: {}\nexpect:\n  status: [2xx, 404]", server.url(path));

    expect(
        &run(&block("/created")).await,
        Verdict::Pass,
        Reason::Ok,
        "status 201",
    );
    expect(
        &run(&block("/gone")).await,
        Verdict::Fail,
        Reason::Status,
        "status 410, expected 2xx, 404",
    );
}

#[tokio::test]
async fn status_range_accepts_codes_within_it() {
    let server = TestServer::http().await;
    server.route("/accepted", Reply::status(202));
    server.route("/broken", Reply::text(500, "oops"));
    let block = |path: &str| format!("url: {}\nexpect:\n  status: [200-299]", server.url(path));

    expect(
        &run(&block("/accepted")).await,
        Verdict::Pass,
        Reason::Ok,
        "status 202",
    );
    expect(
        &run(&block("/broken")).await,
        Verdict::Fail,
        Reason::Status,
        "status 500, expected 200-299",
    );
}

#[tokio::test]
async fn default_expectation_is_any_2xx() {
    let server = TestServer::http().await;
    server.route("/empty", Reply::status(204));
    server.route("/teapot", Reply::text(418, "short and stout"));

    let pass = run(&format!("url: {}", server.url("/empty"))).await;
    expect(&pass, Verdict::Pass, Reason::Ok, "status 204");
    let fail = run(&format!("url: {}", server.url("/teapot"))).await;
    expect(
        &fail,
        Verdict::Fail,
        Reason::Status,
        "status 418, expected 2xx",
    );
}

// ---------------------------------------------------------------- body

#[tokio::test]
async fn body_matches_requires_every_pattern() {
    let server = TestServer::http().await;
    server.route("/page", Reply::text(200, "<title>Shop</title> build 4.2.1"));
    let block = |pattern: &str| {
        format!(
            "url: {}\nexpect:\n  body_matches: ['<title>Shop</title>', '{pattern}']",
            server.url("/page")
        )
    };

    expect(
        &run(&block(r"build 4\.\d+")).await,
        Verdict::Pass,
        Reason::Ok,
        "status 200",
    );
    expect(
        &run(&block(r"build 5\.\d+")).await,
        Verdict::Fail,
        Reason::Body,
        r"body does not match /build 5\.\d+/",
    );
}

#[tokio::test]
async fn body_not_matches_forbids_patterns() {
    let server = TestServer::http().await;
    server.route("/clean", Reply::text(200, "all fine"));
    server.route(
        "/leaky",
        Reply::text(200, "Traceback (most recent call last):"),
    );
    let block = |path: &str| {
        format!(
            "url: {}\nexpect:\n  body_not_matches: [Traceback, 'Fatal error']",
            server.url(path)
        )
    };

    expect(
        &run(&block("/clean")).await,
        Verdict::Pass,
        Reason::Ok,
        "status 200",
    );
    expect(
        &run(&block("/leaky")).await,
        Verdict::Fail,
        Reason::Body,
        "body matches forbidden /Traceback/",
    );
}

// ---------------------------------------------------------------- json

/// A health endpoint answering `{"status": <status>, "checks": [{"db": "up"}]}`.
async fn health_server(status: &str) -> TestServer {
    let server = TestServer::http().await;
    server.route(
        "/health",
        Reply::json(
            200,
            serde_json::json!({"status": status, "checks": [{"db": "up"}], "replicas": 3}),
        ),
    );
    server
}

fn json_block(server: &TestServer, expectations: &str) -> String {
    format!(
        "url: {}\nexpect:\n  json:\n{}",
        server.url("/health"),
        expectations
            .lines()
            .map(|l| format!("    {}\n", l.trim()))
            .collect::<String>()
    )
}

#[tokio::test]
async fn json_path_and_pointer_select_the_expected_values() {
    let server = health_server("ok").await;
    let outcome = run(&json_block(
        &server,
        "\"$.status\": ok\n\"/status\": ok\n\"$.checks[0].db\": up\n\"/checks/0/db\": up\n\"/replicas\": 3.0",
    ))
    .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 200");
}

#[tokio::test]
async fn json_wrong_value_names_the_selector_and_both_values() {
    let server = health_server("degraded").await;

    let by_path = run(&json_block(&server, "\"$.status\": ok")).await;
    expect(
        &by_path,
        Verdict::Fail,
        Reason::Json,
        r#"$.status is "degraded", expected "ok""#,
    );
    let by_pointer = run(&json_block(&server, "\"/status\": ok")).await;
    expect(
        &by_pointer,
        Verdict::Fail,
        Reason::Json,
        r#"/status is "degraded", expected "ok""#,
    );
}

#[tokio::test]
async fn json_missing_field_fails() {
    let server = health_server("ok").await;

    let by_path = run(&json_block(&server, "\"$.version\": \"1.2\"")).await;
    expect(
        &by_path,
        Verdict::Fail,
        Reason::Json,
        r#"$.version is missing, expected "1.2""#,
    );
    let by_pointer = run(&json_block(&server, "\"/checks/1/db\": up")).await;
    expect(
        &by_pointer,
        Verdict::Fail,
        Reason::Json,
        r#"/checks/1/db is missing, expected "up""#,
    );
}

#[tokio::test]
async fn json_numbers_compare_by_value_inside_objects_and_arrays() {
    let server = TestServer::http().await;
    server.route(
        "/health",
        Reply::json(
            200,
            serde_json::json!({"limits": {"max": 5.0, "steps": [1.0, 2]}}),
        ),
    );
    let pass = run(&json_block(
        &server,
        "\"$.limits\": {max: 5, steps: [1, 2.0]}",
    ))
    .await;
    expect(&pass, Verdict::Pass, Reason::Ok, "status 200");
    let fail = run(&json_block(
        &server,
        "\"$.limits\": {max: 6, steps: [1, 2]}",
    ))
    .await;
    expect(&fail, Verdict::Fail, Reason::Json, "$.limits is ");
}

#[tokio::test]
async fn json_expectation_on_a_non_json_body_fails() {
    let server = TestServer::http().await;
    server.route("/health", Reply::text(200, "<html>maintenance</html>"));
    let outcome = run(&json_block(&server, "\"$.status\": ok")).await;
    expect(&outcome, Verdict::Fail, Reason::Json, "body is not JSON");
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn header_expectations_check_presence_and_value() {
    let server = TestServer::http().await;
    server.route(
        "/static/app.3f9a.js",
        Reply::text(200, "console.log(1)")
            .header("Cache-Control", "public, max-age=31536000, immutable")
            .header("X-Request-Id", "abc123"),
    );
    server.route(
        "/index.html",
        Reply::text(200, "<html></html>").header("Cache-Control", "no-cache"),
    );
    let block = |path: &str| {
        format!(
            "url: {}\nexpect:\n  headers:\n    Cache-Control: 'max-age=\\d{{6,}}'\n    X-Request-Id: ''",
            server.url(path)
        )
    };

    let pass = run(&block("/static/app.3f9a.js")).await;
    expect(&pass, Verdict::Pass, Reason::Ok, "status 200");
    let fail = run(&block("/index.html")).await;
    expect(
        &fail,
        Verdict::Fail,
        Reason::Header,
        r#"header cache-control is "no-cache", expected to match /max-age=\d{6,}/"#,
    );
    assert!(
        fail.message.contains("header x-request-id is missing"),
        "{}",
        fail.message
    );
}

#[tokio::test]
async fn headers_absent_forbids_headers() {
    let server = TestServer::http().await;
    server.route("/quiet", Reply::text(200, "ok"));
    server.route(
        "/chatty",
        Reply::text(200, "ok").header("X-Powered-By", "PHP/5.6"),
    );
    let block = |path: &str| {
        format!(
            "url: {}\nexpect:\n  headers_absent: [X-Powered-By, X-Debug-Token]",
            server.url(path)
        )
    };

    expect(
        &run(&block("/quiet")).await,
        Verdict::Pass,
        Reason::Ok,
        "status 200",
    );
    expect(
        &run(&block("/chatty")).await,
        Verdict::Fail,
        Reason::Header,
        "header x-powered-by is present, expected absent",
    );
}

// ---------------------------------------------------------------- redirects

#[tokio::test]
async fn redirect_location_checks_the_first_response_without_following() {
    // `localhost` plays www, `127.0.0.1` the apex.
    let server = TestServer::http().await;
    let port = server.addr.port();
    let apex = format!("http://127.0.0.1:{port}/");
    server.route("/", Reply::redirect(301, &apex));
    server.route("/wrong", Reply::redirect(301, "/login"));
    server.route("/stays", Reply::text(200, "no redirect here"));
    let block = |path: &str| {
        format!(
            "url: http://localhost:{port}{path}\nfollow_redirects: false\nexpect:\n  status: [301, 308]\n  redirect_location: {apex}"
        )
    };

    let pass = run(&block("/")).await;
    expect(&pass, Verdict::Pass, Reason::Ok, "status 301");
    assert_eq!(server.seen().len(), 1, "the redirect was followed");

    let wrong = run(&block("/wrong")).await;
    expect(
        &wrong,
        Verdict::Fail,
        Reason::Redirect,
        &format!("redirects to http://localhost:{port}/login, expected {apex}"),
    );

    let none = run(&format!(
        "url: http://localhost:{port}/stays\nfollow_redirects: false\nexpect:\n  redirect_location: {apex}"
    ))
    .await;
    expect(
        &none,
        Verdict::Fail,
        Reason::Redirect,
        &format!("no redirect, expected one to {apex}"),
    );
}

#[tokio::test]
async fn a_listed_redirect_status_is_checked_not_followed() {
    let server = TestServer::http().await;
    let target = server.url("/new");
    server.route("/old", Reply::redirect(308, &target));
    server.route("/new", Reply::text(200, "new"));
    let outcome = run(&format!(
        "url: {}\nexpect:\n  status: [308]\n  redirect_location: {target}",
        server.url("/old")
    ))
    .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 308");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_redirect_chain_is_followed_and_counted() {
    let server = TestServer::http().await;
    server.route("/r1", Reply::redirect(302, "/r2"));
    server.route("/r2", Reply::redirect(301, &server.url("/r3")));
    server.route("/r3", Reply::redirect(307, "final?from=r3"));
    server.route("/final", Reply::text(200, "landed"));

    let outcome = run(&format!(
        "url: {}\nexpect:\n  body_matches: [landed]",
        server.url("/r1")
    ))
    .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 200");
    assert_eq!(measured(&outcome, "vouch_http_redirects", None), Some(3.0));
    assert_eq!(
        measured(&outcome, "vouch_http_status_code", None),
        Some(200.0)
    );
    let targets: Vec<String> = server.seen().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/r1", "/r2", "/r3", "/final?from=r3"]);
}

#[tokio::test]
async fn see_other_turns_a_post_into_a_get_and_307_repeats_it() {
    let server = TestServer::http().await;
    server.route("/form", Reply::redirect(303, "/done"));
    server.route("/moved", Reply::redirect(307, "/done"));
    server.route("/done", Reply::text(200, "thanks"));
    let block = |path: &str| {
        format!(
            "url: {}\nmethod: POST\nheaders:\n  Content-Type: application/x-www-form-urlencoded\nbody: name=vouch",
            server.url(path)
        )
    };

    expect(
        &run(&block("/form")).await,
        Verdict::Pass,
        Reason::Ok,
        "status 200",
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/form")
    );
    assert_eq!(seen[0].body, b"name=vouch");
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("GET", "/done")
    );
    assert!(seen[1].body.is_empty(), "{:?}", seen[1]);
    assert_eq!(seen[1].header("Content-Length"), None, "{:?}", seen[1]);

    expect(
        &run(&block("/moved")).await,
        Verdict::Pass,
        Reason::Ok,
        "status 200",
    );
    let seen = server.seen();
    assert_eq!(
        (seen[3].method.as_str(), seen[3].target.as_str()),
        ("POST", "/done")
    );
    assert_eq!(seen[3].body, b"name=vouch");
}

#[tokio::test]
async fn see_other_keeps_a_head_request_a_head() {
    let server = TestServer::http().await;
    server.route("/file", Reply::redirect(303, "/mirror/file"));
    server.route("/mirror/file", Reply::text(200, "content"));
    let outcome = run(&format!("url: {}\nmethod: HEAD", server.url("/file"))).await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 200");
    let methods: Vec<String> = server.seen().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["HEAD", "HEAD"]);
}

#[tokio::test]
async fn redirect_loop_is_an_error() {
    let server = TestServer::http().await;
    server.route("/a", Reply::redirect(302, "/b"));
    server.route("/b", Reply::redirect(302, "/a"));
    let outcome = run(&format!("url: {}", server.url("/a"))).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::RedirectLoop,
        &format!(
            "redirect loop: {} leads back to {}",
            server.url("/b"),
            server.url("/a")
        ),
    );
    assert!(outcome.measurements.is_empty(), "{outcome:?}");
}

#[tokio::test]
async fn more_redirects_than_allowed_is_an_error() {
    let server = TestServer::http().await;
    for hop in 0..6 {
        server.route(
            &format!("/hop/{hop}"),
            Reply::redirect(302, &format!("/hop/{}", hop + 1)),
        );
    }
    server.route("/hop/6", Reply::text(200, "far away"));
    let outcome = run(&format!("url: {}\nmax_redirects: 3", server.url("/hop/0"))).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TooManyRedirects,
        "stopped after 3 redirects (limit 3)",
    );
    assert_eq!(server.seen().len(), 4, "vouch went further than the limit");
}

// ---------------------------------------------------------------- latency

#[tokio::test]
async fn max_latency_fails_a_slow_answer() {
    let server = TestServer::http().await;
    server.route("/fast", Reply::text(200, "quick"));
    server.route(
        "/slow",
        Reply::text(200, "eventually").delay(Duration::from_millis(300)),
    );

    let pass = run(&format!(
        "url: {}\nexpect:\n  max_latency: 5s",
        server.url("/fast")
    ))
    .await;
    expect(&pass, Verdict::Pass, Reason::Ok, "status 200");
    let fail = run(&format!(
        "url: {}\nexpect:\n  max_latency: 100ms",
        server.url("/slow")
    ))
    .await;
    expect(&fail, Verdict::Fail, Reason::Latency, ", limit 100ms");
    assert!(fail.message.starts_with("took "), "{}", fail.message);
}

// ---------------------------------------------------------------- request

#[tokio::test]
async fn method_headers_and_body_arrive_at_the_server() {
    let server = TestServer::http().await;
    server.route("/api/items?dry_run=1", Reply::status(201));
    let outcome = run(&format!(
        r#"
        url: {}
        method: PUT
        headers:
          Content-Type: application/json
          X-Vouch-Probe: deploy-42
        body: '{{"name": "widget"}}'
        "#,
        server.url("/api/items?dry_run=1")
    ))
    .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 201");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.target, "/api/items?dry_run=1");
    assert_eq!(request.body, br#"{"name": "widget"}"#);
    assert_eq!(request.header("Content-Type"), Some("application/json"));
    assert_eq!(request.header("X-Vouch-Probe"), Some("deploy-42"));
    assert_eq!(request.header("Content-Length"), Some("18"));
    assert_eq!(
        request.header("Host"),
        Some(format!("127.0.0.1:{}", server.addr.port()).as_str())
    );
    assert!(
        request
            .header("User-Agent")
            .is_some_and(|ua| ua.starts_with("vouch/")),
        "{request:?}"
    );
    assert_eq!(request.header("Authorization"), None);
}

#[tokio::test]
async fn bearer_token_file_is_sent_as_authorization() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cr3t-t0ken\n").unwrap();
    let server = TestServer::http().await;
    server.route("/private", Reply::text(200, "welcome"));

    let record = run_check(
        dir.path(),
        "10s",
        &format!("url: {}\nbearer_token_file: token", server.url("/private")),
    )
    .await;
    expect(&record.outcome, Verdict::Pass, Reason::Ok, "status 200");
    assert!(!record.outcome.message.contains("s3cr3t"));
    assert_eq!(
        server.seen()[0].header("Authorization"),
        Some("Bearer s3cr3t-t0ken")
    );
}

#[tokio::test]
async fn a_credential_echoed_by_the_target_is_redacted_from_the_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "echo-me-t0ken\n").unwrap();
    let server = TestServer::http().await;
    server.route(
        "/echo",
        Reply::json(200, serde_json::json!({"token": "echo-me-t0ken"}))
            .header("X-Seen-Authorization", "Bearer echo-me-t0ken"),
    );
    let record = run_check(
        dir.path(),
        "10s",
        &format!(
            "url: {}\nbearer_token_file: token\nexpect:\n  headers: {{X-Seen-Authorization: '^none$'}}\n  json: {{\"$.token\": other}}",
            server.url("/echo")
        ),
    )
    .await;
    expect(&record.outcome, Verdict::Fail, Reason::Header, "[redacted]");
    assert!(
        !record.outcome.message.contains("echo-me-t0ken"),
        "{}",
        record.outcome.message
    );
}

#[tokio::test]
async fn basic_auth_password_env_is_sent_as_authorization() {
    const VAR: &str = "VOUCH_HTTP_KIND_TEST_BASIC_PASSWORD";
    std::env::set_var(VAR, "pa55word");
    let server = TestServer::http().await;
    server.route("/admin", Reply::text(200, "hello alice"));

    let outcome = run(&format!(
        "url: {}\nbasic_auth:\n  username: alice\n  password_env: {VAR}",
        server.url("/admin")
    ))
    .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 200");
    // base64("alice:pa55word")
    assert_eq!(
        server.seen()[0].header("Authorization"),
        Some("Basic YWxpY2U6cGE1NXdvcmQ=")
    );
}

#[tokio::test]
async fn a_missing_secret_is_an_error_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::http().await;
    server.route("/private", Reply::text(200, "welcome"));

    let file = run_check(
        dir.path(),
        "10s",
        &format!("url: {}\nbearer_token_file: token", server.url("/private")),
    )
    .await
    .outcome;
    expect(
        &file,
        Verdict::Error,
        Reason::Secret,
        "cannot read secret file",
    );
    assert!(
        file.message
            .contains(&dir.path().join("token").display().to_string()),
        "{}",
        file.message
    );

    let env = run(&format!(
        "url: {}\nbearer_token_env: VOUCH_HTTP_KIND_TEST_SURELY_UNSET",
        server.url("/private")
    ))
    .await;
    expect(
        &env,
        Verdict::Error,
        Reason::Secret,
        "environment variable VOUCH_HTTP_KIND_TEST_SURELY_UNSET is not set",
    );
    assert!(file.measurements.is_empty() && env.measurements.is_empty());
    assert!(
        server.seen().is_empty(),
        "a request went out without its secret"
    );
}

#[tokio::test]
async fn an_unusable_secret_is_an_error_that_does_not_print_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "hunter2\u{7}\n").unwrap();
    let server = TestServer::http().await;
    let outcome = run_check(
        dir.path(),
        "10s",
        &format!("url: {}\nbearer_token_file: token", server.url("/")),
    )
    .await
    .outcome;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Secret,
        "the credential holds characters a header cannot carry",
    );
    assert!(!outcome.message.contains("hunter2"), "{}", outcome.message);
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn credentials_are_not_sent_to_another_origin_after_a_redirect() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cr3t-t0ken").unwrap();
    let api = TestServer::http().await;
    let elsewhere = TestServer::http().await;
    api.route("/same", Reply::redirect(302, "/landing"));
    api.route("/away", Reply::redirect(302, &elsewhere.url("/landing")));
    api.route("/landing", Reply::text(200, "here"));
    elsewhere.route("/landing", Reply::text(200, "there"));
    let block = |path: &str| format!("url: {}\nbearer_token_file: token", api.url(path));

    let same = run_check(dir.path(), "10s", &block("/same")).await.outcome;
    expect(&same, Verdict::Pass, Reason::Ok, "status 200");
    let seen = api.seen();
    assert_eq!(seen[1].target, "/landing");
    assert_eq!(seen[1].header("Authorization"), Some("Bearer s3cr3t-t0ken"));

    let away = run_check(dir.path(), "10s", &block("/away")).await.outcome;
    expect(&away, Verdict::Pass, Reason::Ok, "status 200");
    let seen = elsewhere.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("Authorization"), None, "{:?}", seen[0]);
}

#[tokio::test]
async fn secret_headers_are_sent_redacted_and_kept_to_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-key"), "k3y-abc-123\n").unwrap();
    let api = TestServer::http().await;
    let elsewhere = TestServer::http().await;
    api.route(
        "/echo",
        Reply::json(200, serde_json::json!({"key": "k3y-abc-123"})),
    );
    api.route("/away", Reply::redirect(302, &elsewhere.url("/landing")));
    elsewhere.route("/landing", Reply::text(200, "there"));
    let block = |path: &str, expect: &str| {
        format!(
            "url: {}\nsecret_headers:\n  X-Api-Key: {{value_file: api-key}}\n{expect}",
            api.url(path)
        )
    };

    let echoed = run_check(
        dir.path(),
        "10s",
        &block("/echo", "expect:\n  json: {\"$.key\": other}"),
    )
    .await
    .outcome;
    expect(&echoed, Verdict::Fail, Reason::Json, "[redacted]");
    assert!(!echoed.message.contains("k3y-abc"), "{}", echoed.message);
    assert_eq!(api.seen()[0].header("X-Api-Key"), Some("k3y-abc-123"));

    let away = run_check(dir.path(), "10s", &block("/away", ""))
        .await
        .outcome;
    expect(&away, Verdict::Pass, Reason::Ok, "status 200");
    assert_eq!(api.seen()[1].header("X-Api-Key"), Some("k3y-abc-123"));
    let seen = elsewhere.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("X-Api-Key"), None, "{:?}", seen[0]);
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn refused_connection_is_an_error() {
    let port = support::closed_port();
    let outcome = run(&format!("url: http://127.0.0.1:{port}/health")).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("connection to 127.0.0.1:{port} refused"),
    );
}

#[tokio::test]
async fn a_refused_target_that_comes_up_passes_on_the_next_run() {
    // One planned check, run again and again as the daemon does, against a
    // port held by the test: refusing, then listening on the same socket.
    let port = support::RefusingPort::bind();
    let url = format!("http://127.0.0.1:{}/health", port.port);
    let check = kind::plan(&config_yaml("10s", &format!("url: {url}")), Path::new("."));
    let down = run_once(check.clone(), CLIENTS.clone()).await;
    expect(
        &down.outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("connection to 127.0.0.1:{} refused", port.port),
    );
    // Refused at once, not after the 10s timeout.
    assert!(
        down.duration < Duration::from_secs(1),
        "{:?}",
        down.duration
    );

    let server = TestServer::http_on(port.listen()).await;
    server.route("/health", Reply::text(200, "ok"));
    let up = run_once(check.clone(), CLIENTS.clone()).await;
    expect(&up.outcome, Verdict::Pass, Reason::Ok, "status 200");

    // And down again: a pooled connection to the stopped server is no
    // stale pass.
    drop(server);
    let again = run_once(check, CLIENTS.clone()).await;
    assert_eq!(again.outcome.verdict, Verdict::Error, "{:?}", again.outcome);
}

#[tokio::test]
async fn an_unreachable_address_is_a_connect_error() {
    // The kernel refuses to open a TCP connection to a multicast address
    // (ENETUNREACH) before any packet leaves: unreachable, on any host.
    let outcome = run("url: http://224.0.0.1:8080/health").await;
    expect(&outcome, Verdict::Error, Reason::Connect, "224.0.0.1:8080");
}

#[tokio::test]
async fn a_server_that_does_not_speak_tls_is_a_tls_error() {
    // https:// to a server that answers the hello in plain HTTP: the
    // handshake fails, and not on any certificate (there is none).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let outcome = run(&format!("url: https://127.0.0.1:{port}/")).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Tls,
        "TLS handshake with 127.0.0.1",
    );
    server.abort();
}

#[tokio::test]
async fn unresolvable_name_is_a_dns_error() {
    // Through the binary, whose resolver is told to give up after one
    // second: offline, where the host's name server cannot be reached, the
    // lookup still fails as DNS rather than running into the timeout.
    let check = support::vouch::check_one(
        "checks:\n  - name: t\n    timeout: 10s\n    http: { url: \"http://vouch-test.invalid/health\" }\n",
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
async fn a_hung_server_times_out_naming_the_stage() {
    let server = TestServer::http().await;
    server.route("/hang", Reply::Hang);
    // 2s: connecting to the loopback server stays well inside it on a
    // loaded host, so the stage named is the wait for the headers.
    let record = run_check(
        Path::new("."),
        "2s",
        &format!("url: {}", server.url("/hang")),
    )
    .await;
    expect(
        &record.outcome,
        Verdict::Error,
        Reason::Timeout,
        "no result within 2s (waiting for response headers)",
    );
    assert!(
        record.duration >= Duration::from_secs(2) && record.duration < Duration::from_secs(6),
        "the 2s timeout took {:?}",
        record.duration
    );
    assert!(record.outcome.measurements.is_empty());
}

#[tokio::test]
async fn a_trickling_body_times_out_while_reading_it() {
    let server = TestServer::http().await;
    server.route(
        "/slow-body",
        Reply::Trickle {
            total: 100,
            every: Duration::from_millis(200),
        },
    );
    // 3s: the headers come at once and the body takes 20s, so the timeout
    // lands while reading it even on a loaded host.
    let record = run_check(
        Path::new("."),
        "3s",
        &format!("url: {}", server.url("/slow-body")),
    )
    .await;
    expect(
        &record.outcome,
        Verdict::Error,
        Reason::Timeout,
        "no result within 3s (reading the response body)",
    );
}

#[tokio::test]
async fn an_endless_body_is_too_large() {
    let server = TestServer::http().await;
    server.route("/stream", Reply::Endless);
    let outcome = run(&format!(
        "url: {}\nmax_body_size: 64KiB",
        server.url("/stream")
    ))
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TooLarge,
        "body is larger than the 64KiB read limit",
    );
    assert!(outcome.measurements.is_empty());
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_too_large_before_reading() {
    // The body would take 1000 s to arrive: only the declared length can
    // end this run before its timeout.
    let server = TestServer::http().await;
    server.route(
        "/big",
        Reply::Trickle {
            total: 1000,
            every: Duration::from_secs(1),
        },
    );
    let outcome = run_check(
        Path::new("."),
        "5s",
        &format!("url: {}\nmax_body_size: 100", server.url("/big")),
    )
    .await
    .outcome;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TooLarge,
        "body is larger than the 100B read limit",
    );
}

#[tokio::test]
async fn a_head_request_is_not_limited_by_the_length_it_announces() {
    let server = TestServer::http().await;
    server.route("/download.iso", Reply::text(200, &"x".repeat(4096)));
    let outcome = run(&format!(
        "url: {}\nmethod: HEAD\nmax_body_size: 1kB",
        server.url("/download.iso")
    ))
    .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 200");
    assert_eq!(
        measured(&outcome, "vouch_http_content_length_bytes", None),
        Some(0.0)
    );
}

#[tokio::test]
async fn closing_mid_headers_is_a_protocol_error() {
    let server = TestServer::http().await;
    server.route("/", Reply::CloseMidHeaders);
    let outcome = run(&format!("url: {}", server.url("/"))).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Protocol,
        "connection closed before a complete response",
    );
}

#[tokio::test]
async fn closing_mid_body_is_a_protocol_error() {
    let server = TestServer::http().await;
    server.route("/", Reply::CloseMidBody);
    let outcome = run(&format!("url: {}", server.url("/"))).await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Protocol,
        "connection broke after 10 bytes of body",
    );
    assert!(outcome.measurements.is_empty());
}

// ---------------------------------------------------------------- TLS

/// An HTTPS server with a leaf from a private CA, and a directory holding
/// the CA as `ca.pem` (for `ca_file: ca.pem`).
async fn https_from_private_ca(
    names: &[&str],
    validity: Validity,
) -> (TestServer, tempfile::TempDir) {
    let ca = TestCa::new("vouch test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.write_pem(dir.path());
    let server = TestServer::https(ca.issue(names, validity)).await;
    server.route("/", Reply::text(200, "secure"));
    (server, dir)
}

async fn run_tls(dir: &Path, server: &TestServer, extra: &str) -> Outcome {
    run_check(dir, "10s", &format!("url: {}\n{extra}", server.url("/")))
        .await
        .outcome
}

const LOCAL_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

#[tokio::test]
async fn a_valid_certificate_from_a_trusted_ca_passes() {
    let (server, dir) = https_from_private_ca(&LOCAL_NAMES, Validity::ValidFor { days: 90 }).await;
    let outcome = run_tls(dir.path(), &server, "ca_file: ca.pem").await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 200");
    let tls = measured(&outcome, "vouch_http_duration_seconds", Some("tls"));
    assert!(tls.is_some_and(|t| t > 0.0), "tls phase: {tls:?}");
    assert_eq!(
        measured(&outcome, "vouch_tls_verification_success", None),
        Some(1.0)
    );
    assert!(
        measured(&outcome, "vouch_tls_cert_not_after_timestamp_seconds", None)
            .is_some_and(|t| t > 1.7e9),
        "{:?}",
        outcome.measurements
    );
}

#[tokio::test]
async fn a_self_signed_certificate_is_an_unknown_issuer() {
    let server = TestServer::https(self_signed(&LOCAL_NAMES)).await;
    server.route("/", Reply::text(200, "secure"));
    let outcome = run_tls(Path::new("."), &server, "").await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TlsUnknownIssuer,
        "TLS handshake with localhost failed: the server's certificate does not lead to a trusted root (UnknownIssuer)",
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn a_private_ca_without_ca_file_is_an_unknown_issuer() {
    let (server, dir) = https_from_private_ca(&LOCAL_NAMES, Validity::ValidFor { days: 90 }).await;
    let outcome = run_tls(dir.path(), &server, "").await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TlsUnknownIssuer,
        "TLS handshake with localhost failed",
    );
}

#[tokio::test]
async fn an_expired_certificate_is_tls_expired() {
    let now = unix_now();
    let (not_before, not_after) = (now - 40 * DAY, now - 2 * DAY);
    let (server, dir) = https_from_private_ca(
        &LOCAL_NAMES,
        Validity::Between {
            not_before,
            not_after,
        },
    )
    .await;
    let outcome = run_tls(dir.path(), &server, "ca_file: ca.pem").await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TlsExpired,
        "TLS handshake with localhost failed",
    );
    // The certificate is measured even though the handshake was refused,
    // by the same code as the `tls` kind: its dates, and a failed verification.
    for (name, value) in [
        ("vouch_tls_cert_not_before_timestamp_seconds", not_before),
        ("vouch_tls_cert_not_after_timestamp_seconds", not_after),
        (
            "vouch_tls_chain_earliest_not_after_timestamp_seconds",
            not_after,
        ),
    ] {
        assert_eq!(
            measured(&outcome, name, None),
            Some(value as f64),
            "{name}: {:?}",
            outcome.measurements
        );
    }
    assert_eq!(
        measured(&outcome, "vouch_tls_verification_success", None),
        Some(0.0)
    );
    assert_eq!(measured(&outcome, "vouch_http_status_code", None), None);
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn a_not_yet_valid_certificate_is_tls_not_yet_valid() {
    let (server, dir) = https_from_private_ca(&LOCAL_NAMES, Validity::NotYetValid).await;
    let outcome = run_tls(dir.path(), &server, "ca_file: ca.pem").await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TlsNotYetValid,
        "TLS handshake with localhost failed",
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_tls_hostname() {
    let (server, dir) =
        https_from_private_ca(&["api.example.com"], Validity::ValidFor { days: 90 }).await;
    let outcome = run_tls(dir.path(), &server, "ca_file: ca.pem").await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TlsHostname,
        "TLS handshake with localhost failed",
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_a_self_signed_certificate() {
    let server = TestServer::https(self_signed(&LOCAL_NAMES)).await;
    server.route("/", Reply::text(200, "secure"));
    let outcome = run_tls(Path::new("."), &server, "insecure_skip_verify: true").await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 200");
    assert_eq!(server.seen().len(), 1);
}

// ---------------------------------------------------------------- measurements

#[tokio::test]
async fn a_pass_measures_status_length_and_every_phase() {
    let server = TestServer::http().await;
    server.route("/health", Reply::text(200, "twelve bytes"));
    let outcome = run(&format!("url: {}", server.url("/health"))).await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "status 200");
    assert_eq!(
        measured(&outcome, "vouch_http_status_code", None),
        Some(200.0)
    );
    assert_eq!(
        measured(&outcome, "vouch_http_content_length_bytes", None),
        Some(12.0)
    );
    assert_eq!(measured(&outcome, "vouch_http_redirects", None), Some(0.0));
    for phase in PHASES {
        let value = measured(&outcome, "vouch_http_duration_seconds", Some(phase));
        assert!(
            value.is_some_and(|v| v >= 0.0),
            "phase {phase}: {value:?} in {:?}",
            outcome.measurements
        );
    }
    assert_eq!(
        measured(&outcome, "vouch_http_duration_seconds", Some("tls")),
        Some(0.0),
        "plain HTTP has no TLS phase"
    );
}

#[tokio::test]
async fn a_failure_still_measures_the_answer() {
    let server = TestServer::http().await;
    server.route("/down", Reply::text(503, "down"));
    let outcome = run(&format!("url: {}", server.url("/down"))).await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Status,
        "status 503, expected 2xx",
    );
    assert_eq!(
        measured(&outcome, "vouch_http_status_code", None),
        Some(503.0)
    );
}

#[tokio::test]
async fn an_error_measures_nothing() {
    let refused = run(&format!(
        "url: http://127.0.0.1:{}/",
        support::closed_port()
    ))
    .await;
    expect(
        &refused,
        Verdict::Error,
        Reason::ConnectionRefused,
        "refused",
    );
    assert!(
        refused.measurements.is_empty(),
        "{:?}",
        refused.measurements
    );

    let server = TestServer::http().await;
    server.route("/hang", Reply::Hang);
    let timeout = run_check(
        Path::new("."),
        "2s",
        &format!("url: {}", server.url("/hang")),
    )
    .await
    .outcome;
    expect(
        &timeout,
        Verdict::Error,
        Reason::Timeout,
        "no result within 2s (waiting for response headers)",
    );
    assert!(
        timeout.measurements.is_empty(),
        "{:?}",
        timeout.measurements
    );
}

// ---------------------------------------------------------------- config

#[test]
fn a_bad_regex_is_a_config_error() {
    let err = config_error("url: http://127.0.0.1:1/\nexpect:\n  body_matches: [ok, '(']");
    assert!(
        err.contains("test.yaml:7: checks[0].http.expect.body_matches[1]: invalid regex"),
        "{err}"
    );
}

#[test]
fn a_bad_json_path_is_a_config_error() {
    let err = config_error("url: http://127.0.0.1:1/\nexpect:\n  json:\n    '$[': ok");
    assert!(
        err.contains(r#"test.yaml:8: checks[0].http.expect.json.$[: invalid JSONPath "$[""#),
        "{err}"
    );
    let err = config_error("url: http://127.0.0.1:1/\nexpect:\n  json:\n    status: ok");
    assert!(
        err.contains("test.yaml:8: checks[0].http.expect.json.status: invalid JSON selector"),
        "{err}"
    );
}

#[test]
fn a_literal_authorization_header_is_a_config_error() {
    let err = config_error(
        "url: http://127.0.0.1:1/\nheaders:\n  Accept: application/json\n  Authorization: Bearer l1teral",
    );
    assert!(
        err.contains(
            "test.yaml:8: checks[0].http.headers.Authorization: Authorization is a secret"
        ),
        "{err}"
    );
    assert!(!err.contains("l1teral"), "{err}");
}

#[test]
fn bearer_token_file_and_env_together_is_a_config_error() {
    let err =
        config_error("url: http://127.0.0.1:1/\nbearer_token_file: token\nbearer_token_env: TOKEN");
    assert!(
        err.contains(
            "test.yaml:7: checks[0].http.bearer_token_env: give bearer_token_file or bearer_token_env, not both"
        ),
        "{err}"
    );
}

#[test]
fn a_non_http_url_is_a_config_error() {
    let err = config_error("url: ftp://files.example.com/release.tar.gz");
    assert!(
        err.contains(
            "test.yaml:5: checks[0].http.url: must be an http:// or https:// URL with a host"
        ),
        "{err}"
    );
    let err = config_error("url: not a url");
    assert!(
        err.contains("test.yaml:5: checks[0].http.url: invalid URL \"not a url\""),
        "{err}"
    );
}

// ---------------------------------------------------------------- keep-alive

/// Connections nginx saw for `uri`, in order of first use.
fn connections(nginx: &support::nginx::Nginx, uri: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    for (connection, _, path) in nginx.requests() {
        if path == uri && !seen.contains(&connection) {
            seen.push(connection);
        }
    }
    seen
}

#[tokio::test]
async fn keep_alive_reuses_one_connection_and_the_default_opens_one_per_run() {
    let nginx = support::nginx::Nginx::start("location / { return 200 'ok'; }");
    let kept = kind::plan(
        &config_yaml(
            "10s",
            &format!("url: {}\nkeep_alive: true", nginx.url("/kept")),
        ),
        Path::new("."),
    );
    let fresh = kind::plan(
        &config_yaml("10s", &format!("url: {}", nginx.url("/fresh"))),
        Path::new("."),
    );
    for _ in 0..3 {
        let run = run_once(kept.clone(), CLIENTS.clone()).await;
        expect(&run.outcome, Verdict::Pass, Reason::Ok, "status 200");
        let run = run_once(fresh.clone(), CLIENTS.clone()).await;
        expect(&run.outcome, Verdict::Pass, Reason::Ok, "status 200");
    }
    // nginx logs a request when it ends; the third is logged before the
    // run that made it returns its body.
    assert_eq!(
        connections(&nginx, "/kept").len(),
        1,
        "{:?}",
        nginx.requests()
    );
    assert_eq!(
        connections(&nginx, "/fresh").len(),
        3,
        "{:?}",
        nginx.requests()
    );
}

#[tokio::test]
async fn a_kept_connection_that_broke_is_replaced_or_gives_the_right_reason() {
    let mut nginx = support::nginx::Nginx::start("location / { return 200 'ok'; }");
    let url = nginx.url("/health");
    let check = kind::plan(
        &config_yaml("10s", &format!("url: {url}\nkeep_alive: true")),
        Path::new("."),
    );
    let run = run_once(check.clone(), CLIENTS.clone()).await;
    expect(&run.outcome, Verdict::Pass, Reason::Ok, "status 200");

    // The server restarts: the kept connection is dead, a fresh one passes.
    nginx.start_again();
    let run = run_once(check.clone(), CLIENTS.clone()).await;
    expect(&run.outcome, Verdict::Pass, Reason::Ok, "status 200");
    assert_eq!(connections(&nginx, "/health").len(), 1, "after the restart");

    // The server is gone: no stale pass over the kept connection, the
    // verdict of a fresh connection.
    nginx.stop();
    let run = run_once(check.clone(), CLIENTS.clone()).await;
    expect(
        &run.outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("connection to 127.0.0.1:{} refused", nginx.port),
    );
}

#[tokio::test]
async fn keep_alive_against_a_server_that_closes_every_connection_still_passes() {
    // The test server answers one request per connection and closes it.
    let server = TestServer::http().await;
    server.route("/health", Reply::text(200, "ok"));
    let check = kind::plan(
        &config_yaml(
            "10s",
            &format!("url: {}\nkeep_alive: true", server.url("/health")),
        ),
        Path::new("."),
    );
    for _ in 0..3 {
        let run = run_once(check.clone(), CLIENTS.clone()).await;
        expect(&run.outcome, Verdict::Pass, Reason::Ok, "status 200");
    }
    assert_eq!(server.seen().len(), 3);
}
