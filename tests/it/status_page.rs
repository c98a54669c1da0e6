//! The living checklist: the status page (in a real headless Chromium),
//! per-check history and detail, flap thresholds and the gate endpoint,
//! against targets that fail and recover.
use crate::support;

use std::process::Command;
use std::time::Duration;

use support::http_server::{Reply, TestServer};
use support::vouch::{Daemon, VERDICT_WAIT};
use support::{closed_port, wait_until, write_config};

fn chromium() -> &'static str {
    if Command::new("chromium").arg("--version").output().is_ok() {
        "chromium"
    } else {
        panic!("chromium is not installed (scripts/test.sh installs Debian's chromium)")
    }
}

/// Waits until each check of [`config`] shows the verdict its target
/// gives (awaited: on a loaded machine one run may time out).
async fn await_expected_states(daemon: &Daemon) {
    for (name, state) in [
        ("api-health-live", "pass"),
        ("web-homepage", "fail"),
        ("nothing-listens", "error"),
    ] {
        wait_until(&format!("{name} to be {state}"), VERDICT_WAIT, || async {
            daemon.check(name).await["state"] == state
        })
        .await;
    }
}

/// Runs headless Chromium on `url` with extra arguments; returns stdout.
fn headless(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn config(server: &TestServer) -> support::ConfigDir {
    write_config(&format!(
        r#"
defaults: {{ interval: 1s, timeout: 1s }}
checks:
  - name: api-health-live
    section: post-deploy/api
    severity: critical
    http:
      url: "{ok}"
      headers: {{ X-Vouch-Session-Token: not-for-your-eyes }}
      expect: {{ json: {{ "$.status": ok }} }}
  - name: web-homepage
    section: post-deploy/web
    http: {{ url: "{broken}" }}
  - name: nothing-listens
    section: post-deploy/web
    severity: info
    http: {{ url: "http://127.0.0.1:{port}/" }}
"#,
        ok = server.url("/ok"),
        broken = server.url("/broken"),
        port = closed_port()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_checklist_in_a_real_browser() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::json(200, serde_json::json!({"status": "ok"})));
    server.route("/broken", Reply::text(503, "down"));
    let config = config(&server);
    let daemon = Daemon::start(&config.path).await;
    daemon.wait_for_runs(2, Duration::from_secs(15)).await;
    await_expected_states(&daemon).await;
    let url = format!("http://{}/", daemon.addr);
    let dom = tokio::task::spawn_blocking({
        let url = url.clone();
        move || headless(&url, &["--dump-dom"])
    })
    .await
    .unwrap();

    // The headline is the gate's answer at its default threshold, naming
    // the severities it counts (the page has three checks, the gate two);
    // the info check that errors is counted beside it.
    assert!(
        dom.contains(
            "Gate failing (warning and above): 1 of 2 warning and critical checks do not pass \u{b7} 1 info check failing"
        ),
        "{dom}"
    );
    assert!(
        dom.contains("<title>vouch: gate failing (warning and above)</title>"),
        "{dom}"
    );
    for text in [
        "passing <b>1</b>",
        "failing <b>1</b>",
        "erroring <b>1</b>",
        "✔ PASS",
        "✘ FAIL",
        "! ERROR",
        "<code>status</code> status 503, expected 2xx",
        "<code>connection_refused</code>",
        "href=\"checks/api-health-live\"",
        "class=\"s-fail\"",
        "in memory only",
    ] {
        assert!(dom.contains(text), "page lacks {text:?}:\n{dom}");
    }
    // Needs attention first: every check that does not pass, the warning
    // before the info one, each with its section and since when; the chips
    // link there.
    let attention = dom
        .find("Needs attention (2)")
        .expect("the attention block");
    let sections = dom.find("<h2>post-deploy/api</h2>").unwrap();
    assert!(attention < sections, "{dom}");
    let block = &dom[attention..sections];
    assert!(
        block.find("web-homepage").unwrap() < block.find("nothing-listens").unwrap(),
        "{block}"
    );
    assert!(block.contains(" ago</span>"), "since when: {block}");
    assert!(!block.contains("api-health-live"), "{block}");
    assert!(
        dom.contains("<a href=\"#attention\">✘ failing <b>1</b></a>"),
        "{dom}"
    );
    // A section whose checks all pass is folded to one line; one with a
    // failure is open.
    assert!(
        dom.contains(
            "<details><summary><h2>post-deploy/api</h2> <span class=\"muted\">✔ all 1 pass</span>"
        ),
        "{dom}"
    );
    assert!(
        dom.contains("<details open=\"\"><summary><h2>post-deploy/web</h2>"),
        "{dom}"
    );
    // Sections keep config order: api before web.
    assert!(dom.find("<h2>post-deploy/api").unwrap() < dom.find("<h2>post-deploy/web").unwrap());
    assert!(!dom.contains("not-for-your-eyes"));

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (name, size) in [
        ("status-page.png", "1280,720"),
        ("status-page-phone.png", "390,844"),
    ] {
        let path = shots.join(name);
        let _ = std::fs::remove_file(&path);
        let url = url.clone();
        let arg = format!("--screenshot={}", path.display());
        let window = format!("--window-size={size}");
        tokio::task::spawn_blocking(move || headless(&url, &[&arg, &window]))
            .await
            .unwrap();
        let png = std::fs::read(&path).expect("chromium wrote the screenshot");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        eprintln!("screenshot: {}", path.display());
    }

    // The detail page: facts, config with the secret-looking header value
    // redacted, and the recent runs.
    let detail = daemon.get_ok("/checks/api-health-live").await;
    assert!(
        detail.contains("X-Vouch-Session-Token: &apos;[redacted]&apos;"),
        "{detail}"
    );
    assert!(!detail.contains("not-for-your-eyes"));
    assert!(detail.contains("Recent runs"));
    assert!(detail.matches("✔ PASS").count() >= 2, "{detail}");
    assert_eq!(daemon.get("/checks/no-such-check").await.unwrap().0, 404);
    let json: serde_json::Value =
        serde_json::from_str(&daemon.get_ok("/api/v1/checks/web-homepage").await).unwrap();
    let history = json["history"].as_array().unwrap();
    assert!(history.len() >= 2);
    assert_eq!(history[0]["verdict"], "fail");
    assert_eq!(history[0]["reason"], "status");
}

#[tokio::test]
async fn flap_thresholds_hold_the_reported_verdict_while_the_raw_result_shows() {
    let server = TestServer::http().await;
    server.route("/flaky", Reply::text(200, "ok"));
    let config = write_config(&format!(
        "checks:\n  - name: flaky\n    interval: 1s\n    timeout: 1s\n    failures_before_fail: 4\n    successes_before_pass: 2\n    http: {{url: \"{}\"}}\n",
        server.url("/flaky")
    ));
    let daemon = Daemon::start(&config.path).await;
    daemon
        .wait_for_result("flaky", Duration::from_secs(10))
        .await;
    server.route("/flaky", Reply::text(503, "down"));

    // While fewer than 4 runs in a row failed, the check is still reported
    // as passing, with the failing run visible.
    wait_until("a failed run", Duration::from_secs(10), || async {
        daemon.check("flaky").await["last_run"]["verdict"] == "fail"
    })
    .await;
    let saw_held = std::sync::atomic::AtomicBool::new(false);
    wait_until(
        "the reported verdict to fail",
        Duration::from_secs(15),
        || async {
            let check = daemon.check("flaky").await;
            let failures = check["consecutive_failures"].as_u64().unwrap();
            if failures < 4 {
                assert_eq!(check["state"], "pass", "{check}");
                saw_held.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            check["state"] == "fail"
        },
    )
    .await;
    assert!(
        saw_held.load(std::sync::atomic::Ordering::Relaxed),
        "a failing run was seen while the verdict was held"
    );
    let check = daemon.check("flaky").await;
    assert!(check["consecutive_failures"].as_u64().unwrap() >= 4);
    let metrics = daemon.get_ok("/metrics").await;
    assert!(metrics
        .contains("vouch_check_success{check=\"flaky\",kind=\"http\",severity=\"warning\"} 0"));
    assert!(metrics.contains("vouch_check_last_run_success{check=\"flaky\"} 0"));

    // Recovery needs two passes in a row.
    server.route("/flaky", Reply::text(200, "ok"));
    wait_until(
        "the reported verdict to pass",
        Duration::from_secs(15),
        || async { daemon.check("flaky").await["state"] == "pass" },
    )
    .await;
    let recent = daemon.check("flaky").await["recent"].clone();
    let recent: Vec<&str> = recent
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&recent[recent.len() - 2..], ["pass", "pass"], "{recent:?}");
}

#[tokio::test]
async fn the_gate_endpoint_follows_failing_and_recovering_targets() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::json(200, serde_json::json!({"status": "ok"})));
    server.route("/broken", Reply::text(503, "down"));
    let config = config(&server);
    let daemon = Daemon::start(&config.path).await;
    await_expected_states(&daemon).await;

    let (status, body) = daemon
        .get("/api/v1/gate?section=post-deploy/api")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["passed"], true);
    assert_eq!(answer["passing"][0], "api-health-live");

    let (status, body) = daemon
        .get("/api/v1/gate?section=post-deploy&severity=info")
        .await
        .unwrap();
    assert_eq!(status, 503);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["passed"], false);
    assert_eq!(answer["severity"], "info");
    let holding: Vec<&str> = answer["holding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(holding, ["web-homepage", "nothing-listens"]);
    assert!(answer["holding"][0]["why"]
        .as_str()
        .unwrap()
        .contains("status 503, expected 2xx"));

    // By default the gate includes warning and above, as `vouch check`
    // does, and says so: the info check does not hold it.
    let (status, body) = daemon.get("/api/v1/gate").await.unwrap();
    assert_eq!(status, 503, "web-homepage (warning) still fails");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["severity"], "warning");
    assert_eq!(answer["selected"], 2);
    assert_eq!(answer["holding"][0]["name"], "web-homepage");
    assert_eq!(answer["holding"].as_array().unwrap().len(), 1);
    server.route("/broken", Reply::text(200, "fixed"));
    wait_until("the gate to open", Duration::from_secs(10), || async {
        daemon.get("/api/v1/gate").await.unwrap().0 == 200
    })
    .await;

    // One answer: the endpoint, the page's headline and `vouch check`
    // agree while the info check still errors.
    let page = daemon.get_ok("/").await;
    assert!(
        page.contains("Gate passing (warning and above) \u{b7} 1 info check failing"),
        "{page}"
    );
    let check = tokio::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["check", "--config"])
        .arg(&config.path)
        .output()
        .await
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // `since`: a run must have started after the given time. No run can
    // have started an hour from now; one starts soon after now.
    let hour_ahead = std::time::SystemTime::now() + Duration::from_secs(3600);
    let ahead = humantime::format_rfc3339_millis(hour_ahead).to_string();
    let (status, body) = daemon
        .get(&format!("/api/v1/gate?check=web-homepage&since={ahead}"))
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("has not run since"), "{body}");
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let path = format!("/api/v1/gate?check=web-homepage&since={now}");
    wait_until(
        "a run since the rollout",
        Duration::from_secs(10),
        || async { daemon.get(&path).await.unwrap().0 == 200 },
    )
    .await;

    for bad in [
        "/api/v1/gate?severity=urgent",
        "/api/v1/gate?check=nope",
        "/api/v1/gate?since=yesterday",
        "/api/v1/gate?section=nowhere",
        "/api/v1/gate?bogus=1",
    ] {
        assert_eq!(daemon.get(bad).await.unwrap().0, 400, "{bad}");
    }
}

#[tokio::test]
async fn pending_checks_show_their_planned_run_and_a_rejected_reload_shows_until_fixed() {
    let config = write_config(
        "checks:\n  - name: hourly\n    interval: 1h\n    timeout: 1s\n    http: { url: \"http://127.0.0.1:1/\" }\n",
    );
    let daemon = Daemon::start_with_args(&config.path, &["--web.enable-reload"]).await;
    // Not run yet, but planned: the JSON and the page say when. The first
    // run's offset into the interval is stable per name, so `hourly` is
    // known to wait minutes: pending is certain, not likely.
    let offset = vouch::scheduler::first_run_offset("hourly", Duration::from_secs(3600));
    assert!(offset > Duration::from_secs(300), "{offset:?}");
    let check = daemon.check("hourly").await;
    assert!(check["next_run_at"].is_string(), "{check}");
    assert_eq!(check["state"], "pending", "{check}");
    let page = daemon.get_ok("/").await;
    assert!(page.contains("planned <span title="), "{page}");
    assert!(page.contains("Gate waiting (warning and above)"), "{page}");

    // A broken reload: the old config keeps running, and the page says so
    // with the problem's file, line and key.
    std::fs::write(
        &config.path,
        "checks:\n  - name: hourly\n    interval: 1h\n    http: { url: \"http://127.0.0.1:1/\", bogus: 1 }\n",
    )
    .unwrap();
    let (status, _) = support::vouch::http_post(daemon.addr, "/-/reload")
        .await
        .unwrap();
    assert_eq!(status, 400);
    let page = daemon.get_ok("/").await;
    assert!(
        page.contains("The last config reload was rejected"),
        "{page}"
    );
    assert!(page.contains("vouch.yaml:4: checks[0].http"), "{page}");
    assert!(page.contains("bogus"), "{page}");
    let json = daemon.checks().await;
    assert!(json["rejected_reload"]["problems"][0]
        .as_str()
        .unwrap()
        .contains("bogus"));

    // Fixed and reloaded: the banner goes.
    std::fs::write(
        &config.path,
        "checks:\n  - name: hourly\n    interval: 1h\n    timeout: 1s\n    http: { url: \"http://127.0.0.1:2/\" }\n",
    )
    .unwrap();
    let (status, _) = support::vouch::http_post(daemon.addr, "/-/reload")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let page = daemon.get_ok("/").await;
    assert!(!page.contains("reload was rejected"), "{page}");
    assert!(daemon.checks().await.get("rejected_reload").is_none());
}

#[tokio::test]
async fn a_check_failing_run_after_run_logs_at_warn_once_and_its_recovery_once() {
    let server = TestServer::http().await;
    server.route("/flaky", Reply::text(503, "down"));
    let config = write_config(&format!(
        "checks:\n  - name: flaky\n    interval: 1s\n    timeout: 1s\n    http: {{url: \"{}\"}}\n",
        server.url("/flaky")
    ));
    let daemon = Daemon::start(&config.path).await;
    wait_until("three failing runs", Duration::from_secs(15), || async {
        daemon.check("flaky").await["consecutive_failures"]
            .as_u64()
            .unwrap_or(0)
            >= 3
    })
    .await;
    server.route("/flaky", Reply::text(200, "ok"));
    wait_until("recovery", Duration::from_secs(10), || async {
        daemon.check("flaky").await["state"] == "pass"
    })
    .await;
    let logs = daemon.logs();
    let warnings = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("flaky") && l.contains("status 503"))
        .count();
    assert_eq!(warnings, 1, "one WARN for three failing runs:\n{logs}");
    let recovered = logs
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("recovered"))
        .count();
    assert_eq!(recovered, 1, "{logs}");
}
