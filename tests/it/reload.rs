//! Hot reload: SIGHUP and POST /-/reload swap a valid config in (unchanged
//! checks keep schedule and history, removed checks leave /metrics, new
//! ones start) and reject an invalid one while the old keeps running.
use crate::support;

use std::path::Path;
use std::time::Duration;

use support::http_server::{Reply, TestServer};
use support::vouch::{http_post, Daemon};
use support::{wait_until, write_config};

fn config(server: &TestServer, names: &[&str], changed: bool) -> String {
    let mut yaml = String::from("defaults: { interval: 1s, timeout: 1s }\nchecks:\n");
    for name in names {
        let path = if changed && *name == "changing" {
            "/other"
        } else {
            "/ok"
        };
        yaml.push_str(&format!(
            "  - name: {name}\n    section: s\n    http: {{ url: \"{}\" }}\n",
            server.url(path)
        ));
    }
    yaml
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

async fn recent_runs(daemon: &Daemon, name: &str) -> usize {
    daemon.check(name).await["recent"].as_array().unwrap().len()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn sighup_swaps_in_a_valid_config_keeping_unchanged_checks() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    server.route("/other", Reply::text(200, "other"));
    let dir = write_config(&config(&server, &["steady", "changing", "leaving"], false));
    let daemon = Daemon::start(&dir.path).await;
    daemon.wait_for_runs(2, Duration::from_secs(10)).await;
    let steady_before = recent_runs(&daemon, "steady").await;

    write(
        &dir.path,
        &config(&server, &["steady", "changing", "arriving"], true),
    );
    daemon.signal("HUP");
    wait_until(
        "the new check to appear",
        Duration::from_secs(10),
        || async { daemon.check_names().await.iter().any(|n| n == "arriving") },
    )
    .await;
    let names = daemon.check_names().await;
    assert_eq!(names, ["steady", "changing", "arriving"]);
    // The unchanged check kept its history; the changed one started afresh.
    assert!(recent_runs(&daemon, "steady").await >= steady_before);
    assert!(recent_runs(&daemon, "changing").await < steady_before + 1);

    wait_until(
        "the changed and new checks to run",
        Duration::from_secs(10),
        || async {
            daemon.check("arriving").await["state"] == "pass"
                && daemon.check("changing").await["state"] == "pass"
        },
    )
    .await;
    let metrics = daemon.get_ok("/metrics").await;
    assert!(
        !metrics.contains("check=\"leaving\""),
        "the removed check's series remain:\n{metrics}"
    );
    assert!(metrics.contains("vouch_check_success{check=\"arriving\""));
    assert_eq!(
        sample(&metrics, "vouch_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(
        server.seen().iter().any(|r| r.target == "/other"),
        "the changed check uses its new URL"
    );
    assert!(daemon.logs().contains("config reloaded"));
}

#[tokio::test]
async fn an_invalid_config_is_rejected_and_the_old_one_keeps_running() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    let dir = write_config(&config(&server, &["first"], false));
    let daemon = Daemon::start_with_args(&dir.path, &["--web.enable-reload"]).await;
    daemon
        .wait_for_result("first", Duration::from_secs(10))
        .await;

    write(
        &dir.path,
        "checks:\n  - name: broken\n    http: {url: \"http://x\", bogus: 1}\n",
    );
    let (status, body) = http_post(daemon.addr, "/-/reload").await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("vouch.yaml:3: checks[0].http.bogus: unknown key")
            || body.contains("vouch.yaml:3: checks[0].http: unknown field `bogus`"),
        "{body}"
    );
    let metrics = daemon.get_ok("/metrics").await;
    assert_eq!(
        sample(&metrics, "vouch_config_last_reload_successful"),
        Some(0.0)
    );
    // Still the old config: `first` keeps running.
    let runs_before = recent_runs(&daemon, "first").await;
    wait_until(
        "another run of the old config",
        Duration::from_secs(10),
        || async { recent_runs(&daemon, "first").await > runs_before },
    )
    .await;
    assert!(daemon.logs().contains("config reload rejected"));

    write(&dir.path, &config(&server, &["first", "second"], false));
    let (status, body) = http_post(daemon.addr, "/-/reload").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("1 checks kept, 1 started"), "{body}");
    let metrics = daemon.get_ok("/metrics").await;
    assert_eq!(
        sample(&metrics, "vouch_config_last_reload_successful"),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_reload_whose_selector_panics_the_parser_is_rejected_and_serve_lives_on() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    let dir = write_config(&config(&server, &["first"], false));
    let daemon = Daemon::start_with_args(&dir.path, &["--web.enable-reload"]).await;
    daemon
        .wait_for_result("first", Duration::from_secs(10))
        .await;

    // The JSONPath library panics on this selector (found by fuzzing); the
    // panic is caught while compiling the plan, both over HTTP and SIGHUP.
    let poisoned = format!(
        "checks:\n  - name: first\n    http:\n      url: \"{}\"\n      expect:\n        json:\n          '$[\"a}}\\\"\\u0000000000\\u': up\n",
        server.url("/ok")
    );
    write(&dir.path, &poisoned);
    let (status, body) = http_post(daemon.addr, "/-/reload").await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("the parser gave up"), "{body}");
    daemon.signal("HUP");
    wait_until(
        "the SIGHUP reload to be rejected too",
        Duration::from_secs(10),
        || async { daemon.logs().matches("config reload rejected").count() >= 2 },
    )
    .await;

    let runs_before = recent_runs(&daemon, "first").await;
    wait_until(
        "another run of the old config",
        Duration::from_secs(10),
        || async { recent_runs(&daemon, "first").await > runs_before },
    )
    .await;
    let metrics = daemon.get_ok("/metrics").await;
    assert_eq!(
        sample(&metrics, "vouch_config_last_reload_successful"),
        Some(0.0)
    );
}

#[tokio::test]
async fn reload_over_http_is_off_unless_asked_for() {
    let dir = write_config("checks:\n  - name: api\n    http: {url: \"http://127.0.0.1:1/\"}\n");
    let daemon = Daemon::start(&dir.path).await;
    let (status, _) = http_post(daemon.addr, "/-/reload").await.unwrap();
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_storm_keeps_an_unchanged_check_running_and_leaks_no_loop() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    server.route("/other", Reply::text(200, "other"));
    let configs = [
        config(&server, &["steady", "changing", "a"], false),
        "checks: [ {name: bad} ]\n".to_string(),
        config(&server, &["steady", "changing", "b"], true),
    ];
    let dir = write_config(&configs[0]);
    let daemon = Daemon::start_with_args(&dir.path, &["--web.enable-reload"]).await;
    daemon
        .wait_for_result("steady", Duration::from_secs(10))
        .await;
    let runs = |text: &str| {
        sample(
            text,
            "vouch_check_runs_total{check=\"steady\",reason=\"ok\",result=\"pass\"}",
        )
        .unwrap_or(0.0)
    };
    let runs_before = runs(&daemon.get_ok("/metrics").await);
    let history_before = recent_runs(&daemon, "steady").await;

    let mut ok = 0;
    let mut rejected = 0;
    for i in 0..300 {
        write(&dir.path, &configs[i % 3]);
        let (status, body) = http_post(daemon.addr, "/-/reload").await.unwrap();
        match status {
            200 => ok += 1,
            400 => rejected += 1,
            other => panic!("reload answered {other}: {body}"),
        }
        // `steady` is the one check every swap keeps (the first reload
        // changes nothing): its loop, and so its schedule, is never
        // restarted.
        if status == 200 {
            let kept = if i == 0 {
                "reloaded: 3 checks kept, 0 started, 0 stopped"
            } else {
                "reloaded: 1 checks kept, 2 started, 2 stopped"
            };
            assert_eq!(body.trim_end(), kept, "reload {i}");
        }
    }
    assert_eq!((ok, rejected), (200, 100));
    // End on a known config and let the scheduler settle.
    write(&dir.path, &configs[0]);
    assert_eq!(http_post(daemon.addr, "/-/reload").await.unwrap().0, 200);
    wait_until("three check loops", Duration::from_secs(10), || async {
        sample(
            &daemon.get_ok("/metrics").await,
            "vouch_scheduler_check_loops",
        ) == Some(3.0)
    })
    .await;
    // `steady` kept its history and goes on running. That no round is lost
    // or skipped is a verdict about time, asserted on the paused clock in
    // tests/it/scheduler.rs (a_reconcile_keeps_the_schedule_of_an_unchanged_check):
    // here a stalled host would rightly count skipped runs.
    assert!(recent_runs(&daemon, "steady").await >= history_before);
    wait_until(
        "two more runs of steady",
        Duration::from_secs(20),
        || async { runs(&daemon.get_ok("/metrics").await) >= runs_before + 2.0 },
    )
    .await;
    let metrics = daemon.get_ok("/metrics").await;
    assert!(!metrics.contains("check=\"b\""));
    wait_until("no run in flight", Duration::from_secs(10), || async {
        sample(
            &daemon.get_ok("/metrics").await,
            "vouch_scheduler_runs_in_flight",
        ) == Some(0.0)
    })
    .await;
}
