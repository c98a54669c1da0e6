//! `vouch serve` end to end: the real binary, real targets, real scrapes.
use crate::support;

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::certs::self_signed;
use support::dnsmasq::Dnsmasq;
use support::http_server::{Reply, TestServer};
use support::vouch::{Daemon, VERDICT_WAIT};
use support::{closed_port, wait_until, write_config};

/// The value of the sample `name{labels}` in an exposition, labels given as
/// `key="value"` fragments that must all be present.
fn sample(exposition: &str, name: &str, labels: &[&str]) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|line| {
            let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
            let bare = series.split('{').next().unwrap();
            bare == name && labels.iter().all(|l| series.contains(l))
        })
        .and_then(|line| line.rsplit_once(' ').unwrap().1.parse().ok())
}

fn promtool_check_metrics(exposition: &str) -> (bool, String) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test.sh installs Debian's prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn metrics_follow_the_contract_and_pass_promtool() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::json(200, serde_json::json!({"status": "ok"})));
    server.route("/bad", Reply::text(503, "down"));
    let tls_server = TestServer::https(self_signed(&["localhost"])).await;
    let dns_a = Dnsmasq::start(&["--address=/api.test/10.1.2.3"]);
    let dns_b = Dnsmasq::start(&["--address=/api.test/10.1.2.3"]);
    let config = write_config(&format!(
        r#"
defaults: {{ interval: 2s, timeout: 1s }}
checks:
  - name: passing
    section: post-deploy/api
    severity: critical
    labels: {{ team: platform }}
    http: {{ url: "{ok}", expect: {{ json: {{ "$.status": ok }} }} }}
  - name: failing
    section: post-deploy/web
    http: {{ url: "{bad}" }}
  - name: refused
    section: post-deploy/web
    severity: info
    http: {{ url: "http://127.0.0.1:{port}/" }}
  - name: certificate
    section: infrastructure/tls
    tls: {{ host: localhost, connect_to: 127.0.0.1, port: {tls_port}, insecure_skip_verify: true }}
  - name: propagated
    section: infrastructure/dns
    dns: {{ name: api.test, servers: ["{dns_a}", "{dns_b}"], propagation: true }}
"#,
        ok = server.url("/ok"),
        bad = server.url("/bad"),
        port = closed_port(),
        tls_port = tls_server.addr.port(),
        dns_a = dns_a.server(),
        dns_b = dns_b.server(),
    ));
    let daemon = Daemon::start(&config.path).await;
    // The exposition is taken once every check shows its expected verdict
    // in it (awaited: on a loaded machine one run may time out), and all
    // that follows is read from that one scrape.
    let expected = [
        ("passing", 1.0),
        ("failing", 0.0),
        ("refused", 0.0),
        ("certificate", 1.0),
        ("propagated", 1.0),
    ];
    let scrape = std::cell::RefCell::new(String::new());
    wait_until(
        "every check's expected verdict on /metrics",
        VERDICT_WAIT,
        || async {
            let text = daemon.get_ok("/metrics").await;
            let seen = expected.iter().all(|(check, value)| {
                sample(
                    &text,
                    "vouch_check_success",
                    &[&format!("check=\"{check}\"")],
                ) == Some(*value)
            });
            *scrape.borrow_mut() = text;
            seen
        },
    )
    .await;
    let text = scrape.into_inner();

    let (ok, output) = promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics:\n{output}\n{text}");

    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition parses");
    assert!(parsed
        .samples
        .iter()
        .any(|s| s.metric == "vouch_check_success"));

    let success = |check: &str| {
        sample(
            &text,
            "vouch_check_success",
            &[&format!("check=\"{check}\"")],
        )
    };
    assert_eq!(success("passing"), Some(1.0));
    assert_eq!(success("failing"), Some(0.0));
    assert_eq!(success("refused"), Some(0.0));
    assert!(sample(
        &text,
        "vouch_check_success",
        &[
            "check=\"passing\"",
            "kind=\"http\"",
            "severity=\"critical\""
        ]
    )
    .is_some());
    assert!(
        sample(
            &text,
            "vouch_check_runs_total",
            &["check=\"failing\"", "result=\"fail\"", "reason=\"status\""]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &text,
            "vouch_check_runs_total",
            &[
                "check=\"refused\"",
                "result=\"error\"",
                "reason=\"connection_refused\""
            ]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(
            &text,
            "vouch_check_info",
            &[
                "check=\"passing\"",
                "section=\"post-deploy/api\"",
                "label_team=\"platform\""
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "vouch_check_info",
            &["check=\"failing\"", "label_team=\"\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "vouch_http_status_code", &["check=\"failing\""]),
        Some(503.0)
    );
    assert!(sample(
        &text,
        "vouch_http_duration_seconds",
        &["check=\"passing\"", "phase=\"connect\""]
    )
    .is_some());
    assert!(
        sample(
            &text,
            "vouch_check_last_success_timestamp_seconds",
            &["check=\"passing\""]
        )
        .unwrap()
            > 1.7e9
    );
    assert!(sample(
        &text,
        "vouch_check_last_success_timestamp_seconds",
        &["check=\"failing\""]
    )
    .is_none());
    assert!(sample(&text, "vouch_build_info", &["version=\""]).is_some());
    assert_eq!(
        sample(&text, "vouch_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert!(sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 0.0);

    // Every family of the contract is exposed (measures only where a
    // check measured them: here the http kind's, all of which were; each
    // other kind's measures are checked by its own kind tests).
    // A rollout gauge appears once a followed rollout is seen, the watch
    // gauge once a Kubernetes watch runs (both tested with the Kubernetes
    // fake); nothing here follows a rollout or watches.
    let after_events = [
        "vouch_check_last_rollout_timestamp_seconds",
        "vouch_kube_watch_synced",
        // Only checks configured with a limit export one.
        "vouch_check_threshold",
    ];
    for (family, _) in vouch::output::metrics::FAMILIES
        .iter()
        .filter(|(family, _)| !after_events.contains(family))
    {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
    for measure in vouch::result::Measure::ALL
        .iter()
        .filter(|m| m.name().starts_with("vouch_http_"))
    {
        assert!(
            text.contains(&format!("# TYPE {} ", measure.name())),
            "{} missing",
            measure.name()
        );
    }
    // No sample carries a timestamp: "name{labels} value" and nothing more.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let after_labels = line.rsplit_once('}').map(|(_, rest)| rest).unwrap_or(line);
        assert_eq!(
            after_labels.split_whitespace().count(),
            if line.contains('}') { 1 } else { 2 },
            "{line}"
        );
    }
}

#[tokio::test]
async fn the_json_api_shows_every_check_with_its_latest_result() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "fine"));
    let config = write_config(&format!(
        "defaults: {{interval: 1s, timeout: 1s}}\nchecks:\n  - name: ok\n    section: s\n    http: {{url: \"{}\"}}\n  - name: later\n    interval: 1h\n    http: {{url: \"{}\"}}\n",
        server.url("/ok"),
        server.url("/ok")
    ));
    let daemon = Daemon::start(&config.path).await;
    // A pass awaited (one run on a loaded machine may time out); the entry
    // read is the one that showed it.
    let entry = std::cell::RefCell::new(serde_json::Value::Null);
    wait_until("a pass of ok", VERDICT_WAIT, || async {
        let check = daemon.check("ok").await;
        let passed = check["state"] == "pass";
        *entry.borrow_mut() = check;
        passed
    })
    .await;
    let ok = entry.into_inner();
    assert_eq!(ok["section"], "s");
    assert_eq!(ok["kind"], "http");
    assert_eq!(ok["last_run"]["verdict"], "pass");
    assert_eq!(ok["last_run"]["reason"], "ok");
    assert!(ok["last_run"]["message"]
        .as_str()
        .unwrap()
        .starts_with("status 200"));
    assert!(ok["next_run_at"].is_string());
    assert!(ok["last_success_at"].is_string());
    let statuses: Vec<_> = ok["last_run"]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "vouch_http_status_code")
        .collect();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0]["value"], 200.0);

    // A check whose first run is minutes away is pending, not failed. The
    // first run's offset into the interval is stable per name, so `later`
    // is known to wait that long.
    let offset = vouch::scheduler::first_run_offset("later", Duration::from_secs(3600));
    assert!(offset > Duration::from_secs(300), "{offset:?}");
    let all = daemon.checks().await;
    assert_eq!(all["summary"]["total"], 2);
    assert_eq!(all["summary"]["pending"], 1, "{all}");
    let later = daemon.check("later").await;
    assert_eq!(later["state"], "pending");
    assert!(later["last_run"].is_null());
    let landing = daemon.get_ok("/").await;
    assert!(landing.contains("href=\"metrics\""));
    assert_eq!(daemon.get("/readyz").await.unwrap().0, 200);
    assert_eq!(daemon.get("/livez").await.unwrap().0, 200);
    assert_eq!(daemon.get("/nope").await.unwrap().0, 404);
}

#[tokio::test]
async fn readiness_follows_the_scheduler_not_the_targets() {
    use tower::ServiceExt;
    let ready = Arc::new(AtomicBool::new(false));
    let app = vouch::output::server::router(vouch::output::server::AppState {
        metrics: Arc::new(vouch::output::metrics::Metrics::new(&[])),
        status: Arc::new(vouch::output::status::StatusBoard::new(&[])),
        ready: ready.clone(),
        reload: None,
        kube: None,
        peers: None,
    });
    let get = |path: &'static str| {
        axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let answer = app.clone().oneshot(get("/readyz")).await.unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(
        app.clone().oneshot(get("/livez")).await.unwrap().status(),
        200
    );
    ready.store(true, Ordering::Release);
    assert_eq!(app.oneshot(get("/readyz")).await.unwrap().status(), 200);

    // And a daemon whose only check fails is still ready.
    let config = write_config(&format!(
        "checks:\n  - name: down\n    interval: 1s\n    timeout: 1s\n    http: {{url: \"http://127.0.0.1:{}/\"}}\n",
        closed_port()
    ));
    let daemon = Daemon::start(&config.path).await;
    assert_eq!(
        daemon
            .wait_for_result("down", Duration::from_secs(10))
            .await["state"],
        "error"
    );
    assert_eq!(daemon.get("/readyz").await.unwrap().0, 200);
}

#[tokio::test]
async fn a_target_that_never_answers_times_out_while_other_checks_keep_their_schedule() {
    let server = TestServer::http().await;
    server.route("/hang", Reply::Hang);
    server.route("/quick", Reply::text(200, "ok"));
    let config = write_config(&format!(
        r#"
checks:
  - name: hung
    interval: 3s
    timeout: 2s
    http: {{ url: "{hang}" }}
  - name: quick
    interval: 1s
    timeout: 1s
    http: {{ url: "{quick}" }}
"#,
        hang = server.url("/hang"),
        quick = server.url("/quick")
    ));
    let daemon = Daemon::start(&config.path).await;
    let hung = daemon
        .wait_for_result("hung", Duration::from_secs(10))
        .await;
    assert_eq!(hung["last_run"]["verdict"], "error");
    assert_eq!(hung["last_run"]["reason"], "timeout");
    assert!(hung["last_run"]["message"]
        .as_str()
        .unwrap()
        .contains("waiting for response headers"));
    // The target never answers, so any finished run was ended by the
    // timeout; the bounds only say it was this timeout and not the next
    // interval's (generous above: a loaded host may stall the runtime).
    // Only the lower bound is asserted: a timeout that never fired would
    // have left the run unfinished and the wait above would have failed;
    // an upper bound would only measure how busy the machine is.
    let took = hung["last_run"]["duration_seconds"].as_f64().unwrap();
    assert!(took >= 2.0, "a 2s timeout ended the run after {took}s");

    // While runs of `hung` hang, `quick` keeps running every second.
    let quick_runs = |text: &str| {
        sample(
            text,
            "vouch_check_runs_total",
            &["check=\"quick\"", "result=\"pass\""],
        )
        .unwrap_or(0.0)
    };
    let before = quick_runs(&daemon.get_ok("/metrics").await);
    wait_until("three more runs of quick", VERDICT_WAIT, || async {
        quick_runs(&daemon.get_ok("/metrics").await) >= before + 3.0
    })
    .await;
    // Punctuality (no run of `quick` delayed by the hung one) is a verdict
    // about time, asserted on the paused clock in tests/it/scheduler.rs
    // (a_hung_probe_times_out_without_delaying_other_checks). Here: the
    // lateness of every run is recorded, and `quick` went on passing while
    // `hung` was still timing out.
    let text = daemon.get_ok("/metrics").await;
    let count = sample(&text, "vouch_scheduler_lateness_seconds_count", &[]).unwrap();
    assert!(count >= before + 3.0, "lateness of {count} runs recorded");
    assert_eq!(daemon.check("hung").await["last_run"]["reason"], "timeout");
    wait_until("quick passing on /metrics", VERDICT_WAIT, || async {
        sample(
            &daemon.get_ok("/metrics").await,
            "vouch_check_success",
            &["check=\"quick\""],
        ) == Some(1.0)
    })
    .await;
}

#[tokio::test]
async fn a_measurement_the_last_run_did_not_make_is_not_exported() {
    let server = TestServer::http().await;
    server.route("/flip", Reply::text(200, "ok"));
    let config = write_config(&format!(
        "checks:\n  - name: flip\n    interval: 1s\n    timeout: 1s\n    http: {{url: \"{}\"}}\n",
        server.url("/flip")
    ));
    let daemon = Daemon::start(&config.path).await;
    // Awaited: on a loaded machine one run may time out.
    wait_until(
        "a status code of flip on /metrics",
        VERDICT_WAIT,
        || async {
            sample(
                &daemon.get_ok("/metrics").await,
                "vouch_http_status_code",
                &["check=\"flip\""],
            ) == Some(200.0)
        },
    )
    .await;

    server.route("/flip", Reply::CloseMidBody);
    wait_until("flip to error", VERDICT_WAIT, || async {
        daemon.check("flip").await["state"] == "error"
    })
    .await;
    let text = daemon.get_ok("/metrics").await;
    assert_eq!(
        sample(&text, "vouch_check_success", &["check=\"flip\""]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "vouch_http_status_code", &["check=\"flip\""]),
        None,
        "{text}"
    );
    assert_eq!(
        sample(&text, "vouch_http_duration_seconds", &["check=\"flip\""]),
        None
    );
}

#[tokio::test]
async fn sigterm_lets_runs_in_flight_finish_within_the_grace_period_and_exits_zero() {
    let server = TestServer::http().await;
    server.route("/hang", Reply::Hang);
    let config = write_config(&format!(
        "shutdown_grace: 1s\nchecks:\n  - name: hung\n    interval: 1s\n    timeout: 1s\n    http: {{url: \"{}\"}}\n",
        server.url("/hang")
    ));
    let mut daemon = Daemon::start(&config.path).await;
    wait_until("a run in flight", Duration::from_secs(10), || async {
        !server.seen().is_empty()
    })
    .await;
    daemon.signal("TERM");
    let status = daemon
        .wait_exit(Duration::from_secs(4))
        .await
        .unwrap_or_else(|| panic!("no exit within the 1s grace + 3s:\n{}", daemon.logs()));
    assert!(status.success(), "{status}:\n{}", daemon.logs());
    assert!(daemon.logs().contains("SIGTERM"));
}

#[tokio::test]
async fn sigint_exits_zero() {
    let config = write_config("checks:\n  - name: api\n    http: {url: \"http://127.0.0.1:1/\"}\n");
    let mut daemon = Daemon::start(&config.path).await;
    daemon.signal("INT");
    let status = daemon
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exit after SIGINT");
    assert!(status.success());
}

#[tokio::test]
async fn a_config_error_stops_serve_with_exit_code_2() {
    let config =
        write_config("checks:\n  - name: a\n    http: {url: \"http://x\"}\n    bogus: 1\n");
    let out = support::vouch::run(&["serve", "--config", config.path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("vouch.yaml:4: checks[0]: unknown field `bogus`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_demo_config_serves_passing_failing_and_erroring_checks() {
    // The README's first command, on another port: the demo's checks
    // target 127.0.0.1:9847, so they are pointed at this daemon instead.
    let demo = std::fs::read_to_string("config/demo.yaml").unwrap();
    // Its certificate files are found beside the original. The port is
    // written into the config before the daemon binds it: if another
    // process takes it in between, the start is retried on another port.
    let (daemon, _config) = Daemon::start_on_free_port(|port| {
        write_config(
            &demo
                .replace("127.0.0.1:9847", &format!("127.0.0.1:{port}"))
                .replace(
                    "demo-tls/",
                    &format!("{}/config/demo-tls/", env!("CARGO_MANIFEST_DIR")),
                ),
        )
    })
    .await;
    // The demo bounds latency (`max_latency: 500ms` on vouch-livez, 1s on
    // the lookup): one slow run on a loaded host fails that run, and the
    // next run, 5s later, passes again. So the expected picture is awaited
    // rather than taken from the first round.
    let expected: [(&str, &str, &str); 7] = [
        ("vouch-livez", "pass", "ok"),
        ("vouch-checks-api", "pass", "ok"),
        ("vouch-metrics", "pass", "ok"),
        ("demo-certificate", "pass", "ok"),
        ("demo-localhost-resolves", "pass", "ok"),
        ("demo-expects-a-teapot", "fail", "status"),
        ("demo-nothing-listens", "error", "connection_refused"),
    ];
    let picture = || async {
        let checks = daemon.checks().await;
        let states: Vec<(String, String, String)> = checks["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let field = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
                (
                    field(&c["name"]),
                    field(&c["state"]),
                    field(&c["last_run"]["reason"]),
                )
            })
            .collect();
        (checks["summary"].clone(), states)
    };
    wait_until(
        "the demo's five passes, one failure and one error",
        Duration::from_secs(60),
        || async {
            let (summary, states) = picture().await;
            // The summary counts the same states as the list.
            let counted = [("pass", 5), ("fail", 1), ("error", 1), ("total", 7)]
                .iter()
                .all(|(key, n)| summary[key] == *n);
            let seen = counted
                && states
                    == expected
                        .iter()
                        .map(|(n, s, r)| (n.to_string(), s.to_string(), r.to_string()))
                        .collect::<Vec<_>>();
            if !seen {
                // Shown only if the wait fails (the harness captures output).
                eprintln!("not yet: {summary} {states:?}");
            }
            seen
        },
    )
    .await;
}

#[tokio::test]
async fn shards_split_the_checks_between_replicas_without_overlap() {
    let mut yaml = String::from("defaults: {interval: 1h, timeout: 1s}\nchecks:\n");
    for i in 0..12 {
        yaml.push_str(&format!(
            "  - name: check-{i}\n    http: {{url: \"http://127.0.0.1:1/\"}}\n"
        ));
    }
    let config = write_config(&yaml);
    let mut seen = Vec::new();
    for shard in ["0/2", "1/2"] {
        let daemon = Daemon::start_with_env(&config.path, &[("VOUCH_SHARD", shard)]).await;
        let names = daemon.check_names().await;
        assert!(
            !names.is_empty() && names.len() < 12,
            "shard {shard}: {names:?}"
        );
        assert!(daemon.logs().contains("running one shard of the checks"));
        seen.extend(names);
    }
    seen.sort();
    let mut all: Vec<String> = (0..12).map(|i| format!("check-{i}")).collect();
    all.sort();
    assert_eq!(seen, all, "every check in exactly one shard");

    let out = support::vouch::run(&[
        "serve",
        "--config",
        config.path.to_str().unwrap(),
        "--shard",
        "2/2",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid shard \"2/2\""));
}

/// One GET over a fresh connection with the given extra request headers:
/// the response's header block and its raw body bytes.
async fn raw_get(addr: std::net::SocketAddr, path: &str, extra: &str) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: vouch\r\nConnection: close\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    (head, answer[split + 4..].to_vec())
}

#[tokio::test]
async fn metrics_are_gzipped_for_scrapers_that_ask_and_plain_for_the_rest() {
    // A target that refuses: every run gives the same verdict at once, so
    // each of the scrapes below sees the same value, however busy the
    // machine is.
    let config = write_config(&format!(
        "defaults: {{ interval: 1s, timeout: 1s }}\nchecks:\n  - name: api\n    http: {{ url: \"http://127.0.0.1:{}/\" }}\n",
        closed_port()
    ));
    let vouch = Daemon::start(&config.path).await;
    vouch.wait_for_runs(1, Duration::from_secs(20)).await;

    // As Prometheus asks.
    let (head, body) = raw_get(vouch.addr, "/metrics", "Accept-Encoding: gzip\r\n").await;
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
        .expect("the body is not gzip");
    assert_eq!(
        sample(&text, "vouch_check_success", &["check=\"api\""]),
        Some(0.0)
    );
    assert!(
        body.len() * 3 < text.len(),
        "{} of {}",
        body.len(),
        text.len()
    );

    // A scraper that refuses gzip, or does not mention it, gets text.
    for extra in ["Accept-Encoding: gzip;q=0, identity\r\n", ""] {
        let (head, body) = raw_get(vouch.addr, "/metrics", extra).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("content-encoding"), "{extra}: {head}");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            sample(&text, "vouch_check_success", &["check=\"api\""]),
            Some(0.0)
        );
    }
}
