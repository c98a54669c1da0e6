//! The command line as users and CI run it: `vouch validate`, `vouch check`
//! (exit codes, `--only`, `--fail-on`, every report format, `--output`) and
//! `vouch --version`, through the real binary against local servers.
use crate::support;

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::http_server::{Reply, TestServer};
use support::{vouch, write_config, ConfigDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

fn path_of(config: &ConfigDir) -> &str {
    config.path.to_str().expect("a UTF-8 temporary path")
}

/// `vouch check --config CONFIG EXTRA...`.
async fn check(config: &ConfigDir, extra: &[&str]) -> Output {
    let mut args = vec!["check", "--config", path_of(config)];
    args.extend_from_slice(extra);
    vouch::run(&args).await
}

/// `vouch check ... --format json`, asserting the exit code; the report.
async fn check_json(config: &ConfigDir, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let out = check(config, &args).await;
    assert_exit(&out, code);
    serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", stdout(&out)))
}

/// The names of the checks in a JSON report, in report order.
fn names(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .map(|c| c["name"].as_str().expect("a name").to_string())
        .collect()
}

/// The entry of `name` in a JSON report.
fn entry<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// The request paths a server saw, sorted.
fn seen_paths(server: &TestServer) -> Vec<String> {
    let mut paths: Vec<String> = server.seen().into_iter().map(|r| r.target).collect();
    paths.sort();
    paths
}

/// One check in config syntax.
fn http_check(name: &str, section: &str, severity: &str, url: &str, expect: &str) -> String {
    format!(
        "  - name: {name}\n    section: {section}\n    severity: {severity}\n    http:\n      url: {url}\n      expect: {expect}\n"
    )
}

fn checks_config(checks: &[String]) -> ConfigDir {
    write_config(&format!("checks:\n{}", checks.concat()))
}

/// A server whose `/ok` answers 200 and `/down` 503.
async fn ok_and_down_server() -> TestServer {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    server.route("/down", Reply::text(503, "maintenance"));
    server
}

// ---------------------------------------------------------------- validate

#[tokio::test]
async fn validate_accepts_a_good_config_without_touching_any_target() {
    let server = ok_and_down_server().await;
    let config = checks_config(&[
        http_check(
            "up",
            "smoke",
            "critical",
            &server.url("/ok"),
            "{status: [200]}",
        ),
        http_check("down", "smoke", "info", &server.url("/down"), "{}"),
    ]);
    let out = vouch::run(&["validate", "--config", path_of(&config)]).await;
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out),
        format!("{}: ok, 2 checks\n", path_of(&config))
    );
    assert_eq!(stderr(&out), "");
    assert!(server.seen().is_empty(), "validate sent requests");
}

#[tokio::test]
async fn validate_counts_one_check_in_the_singular() {
    let config = checks_config(&[http_check(
        "up",
        "smoke",
        "critical",
        "http://127.0.0.1:9/",
        "{}",
    )]);
    let out = vouch::run(&["validate", "--config", path_of(&config)]).await;
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), format!("{}: ok, 1 check\n", path_of(&config)));
}

#[tokio::test]
async fn a_reload_to_a_config_without_checks_is_rejected_and_the_old_one_stays() {
    let server = ok_and_down_server().await;
    let config = checks_config(&[http_check(
        "up",
        "smoke",
        "warning",
        &server.url("/ok"),
        "{}",
    )]);
    let daemon = vouch::Daemon::start_with_args(&config.path, &["--web.enable-reload"]).await;
    daemon.wait_for_result("up", Duration::from_secs(10)).await;
    std::fs::write(&config.path, "checks: []\n").unwrap();
    let (status, body) = vouch::http_post(daemon.addr, "/-/reload").await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(":1: checks: no checks given: add at least one"),
        "{body}"
    );
    let checks = daemon.checks().await;
    assert_eq!(checks["checks"][0]["name"], "up", "{checks}");
}

#[tokio::test]
async fn serve_refuses_a_config_without_checks_as_validate_does() {
    for config in ["checks: []\n", "# nothing yet\n"] {
        let dir = write_config(config);
        let serve = tokio::process::Command::new(vouch::bin())
            .args(["serve", "--config", path_of(&dir)])
            .args(["--web.listen-address", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        // A daemon that starts anyway never exits on its own: the bound
        // only keeps the test from hanging then.
        let out = tokio::time::timeout(Duration::from_secs(60), serve)
            .await
            .unwrap_or_else(|_| panic!("{config:?}: serve started instead of refusing"))
            .expect("run the vouch binary");
        assert_exit(&out, 2);
        let line = if config.starts_with("checks") {
            ":1"
        } else {
            ""
        };
        assert_eq!(
            stderr(&out),
            format!(
                "{}{line}: checks: no checks given: add at least one (examples/ has one of each kind)\n",
                path_of(&dir)
            ),
            "{config:?}"
        );
        assert_eq!(stdout(&out), "");
    }
}

#[tokio::test]
async fn validate_lists_every_problem_of_a_bad_config_on_stderr() {
    let fixture = "tests/fixtures/invalid/many_problems.yaml";
    let expected: Vec<String> = std::fs::read_to_string(fixture)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .map(str::to_string)
        .collect();
    assert!(expected.len() > 5, "the fixture lists several problems");
    let out = vouch::run(&["validate", "--config", fixture]).await;
    assert_exit(&out, 2);
    assert_eq!(stderr(&out).lines().collect::<Vec<_>>(), expected);
    assert_eq!(stdout(&out), "");
}

#[tokio::test]
async fn validate_of_a_missing_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let out = vouch::run(&["validate", "--config", missing.to_str().unwrap()]).await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).starts_with(&format!("{}: cannot read config: ", missing.display())),
        "{}",
        stderr(&out)
    );
}

// ------------------------------------------------------- check: exit codes

#[tokio::test]
async fn check_exits_0_when_every_check_passes() {
    let server = ok_and_down_server().await;
    let config = checks_config(&[
        http_check(
            "a",
            "smoke",
            "critical",
            &server.url("/ok"),
            "{status: [200]}",
        ),
        http_check(
            "b",
            "smoke",
            "warning",
            &server.url("/ok"),
            "{body_matches: [ok]}",
        ),
    ]);
    let out = check(&config, &[]).await;
    assert_exit(&out, 0);
    assert_eq!(seen_paths(&server), ["/ok", "/ok"]);
}

#[tokio::test]
async fn check_exits_1_when_a_warning_or_critical_check_fails_or_errors() {
    let server = ok_and_down_server().await;
    let refused = format!("http://127.0.0.1:{}/", support::closed_port());
    let cases = [
        ("warning", server.url("/down")),
        ("critical", server.url("/down")),
        ("critical", refused.clone()),
        ("warning", refused),
    ];
    for (severity, url) in cases {
        let config = checks_config(&[
            http_check("fine", "smoke", "critical", &server.url("/ok"), "{}"),
            http_check("broken", "smoke", severity, &url, "{status: [200]}"),
        ]);
        let out = check(&config, &[]).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{severity} check against {url}:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn an_info_check_blocks_only_with_fail_on_info() {
    let server = ok_and_down_server().await;
    let config = checks_config(&[
        http_check("fine", "smoke", "critical", &server.url("/ok"), "{}"),
        http_check("nice-to-have", "smoke", "info", &server.url("/down"), "{}"),
    ]);
    assert_exit(&check(&config, &[]).await, 0);
    assert_exit(&check(&config, &["--fail-on", "warning"]).await, 0);
    assert_exit(&check(&config, &["--fail-on", "info"]).await, 1);
}

#[tokio::test]
async fn fail_on_critical_lets_a_failing_warning_check_pass_the_gate() {
    let server = ok_and_down_server().await;
    let config = checks_config(&[
        http_check("core", "smoke", "critical", &server.url("/ok"), "{}"),
        http_check("extra", "smoke", "warning", &server.url("/down"), "{}"),
    ]);
    assert_exit(&check(&config, &["--fail-on", "critical"]).await, 0);
    assert_exit(&check(&config, &[]).await, 1);
}

#[tokio::test]
async fn check_exits_2_on_a_bad_config_and_runs_nothing() {
    let server = ok_and_down_server().await;
    let config = write_config(&format!(
        "checks:\n  - name: a\n    http:\n      url: {}\n      expect:\n        status: 200\n",
        server.url("/ok")
    ));
    let out = check(&config, &[]).await;
    assert_exit(&out, 2);
    assert_eq!(
        stderr(&out),
        format!(
            "{}:6: checks[0].http.expect.status: invalid type: integer `200`, expected a list of status codes\n",
            path_of(&config)
        )
    );
    assert_eq!(stdout(&out), "");
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn check_exits_2_on_an_unknown_only_selector_and_runs_nothing() {
    let server = ok_and_down_server().await;
    let config = checks_config(&[http_check(
        "a",
        "post-deploy/api",
        "warning",
        &server.url("/ok"),
        "{}",
    )]);
    for selector in ["nope", "post", "post-deploy/ap"] {
        let out = check(&config, &["--only", "a", "--only", selector]).await;
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(selector), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let config = write_config("checks: []\n");
    // (arguments, a word the error must name)
    let cases: [(&[&str], &str); 5] = [
        (
            &["check", "--config", path_of(&config), "--bogus"],
            "--bogus",
        ),
        (
            &["check", "--config", path_of(&config), "--format", "yaml"],
            "yaml",
        ),
        (
            &["check", "--config", path_of(&config), "--fail-on", "never"],
            "never",
        ),
        (&["check"], "--config"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, named) in cases {
        let out = run_with_env(args, &[]).await;
        assert_exit(&out, 2);
        let text = stderr(&out);
        assert!(text.starts_with("error: "), "{args:?}: {text}");
        assert!(text.contains(named), "{args:?} names {named}: {text}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

#[tokio::test]
async fn a_gate_of_no_check_is_exit_2_unless_allowed() {
    let server = ok_and_down_server().await;
    let config = checks_config(&[http_check(
        "a",
        "smoke",
        "warning",
        &server.url("/ok"),
        "{}",
    )]);
    let empty = write_config("checks: []\n");
    // An empty config, and --skip leaving nothing, must not pass silently.
    for (config, extra) in [(&empty, &[][..]), (&config, &["--skip", "smoke"][..])] {
        let out = check(config, extra).await;
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains("no check selected"),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("--allow-empty"), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
    let args = ["--allow-empty", "--skip", "smoke"];
    let out = check(&config, &args).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("no check selected"),
        "{}",
        stdout(&out)
    );
    let report = check_json(&config, &args, 0).await;
    assert_eq!(report["summary"]["total"], 0);
    assert!(server.seen().is_empty());
}

#[test]
fn help_describes_every_flag_and_lists_exit_codes() {
    use clap::CommandFactory;
    let mut cli = ::vouch::cli::Cli::command();
    cli.build();
    for command in cli.get_subcommands() {
        assert!(command.get_about().is_some(), "{}", command.get_name());
        for arg in command.get_arguments() {
            assert!(
                arg.get_help().is_some(),
                "vouch {} --{} has no description",
                command.get_name(),
                arg.get_id()
            );
        }
    }
    let help = |command: &str| {
        let mut cli = ::vouch::cli::Cli::command();
        cli.build();
        cli.find_subcommand_mut(command)
            .unwrap()
            .render_long_help()
            .to_string()
    };
    let check = help("check");
    for code in [
        "0  the gate passed",
        "1  the gate failed",
        "2  bad config",
        "3  the report",
    ] {
        assert!(check.contains(code), "{check}");
    }
    let serve = help("serve");
    for text in ["status page (/)", "/api/v1/gate", "Exit codes"] {
        assert!(serve.contains(text), "{serve}");
    }
    assert!(help("validate").contains("Exit codes"));
}

// ------------------------------------------------------------------ --only

#[tokio::test]
async fn only_selects_by_name_section_and_section_prefix() {
    let cases: [(&[&str], &[&str]); 5] = [
        (&["--only", "web-home"], &["web-home"]),
        (&["--only", "post-deploy/api"], &["api-health", "api-ready"]),
        // A prefix selects whole sections below it, not "post-deployment".
        (
            &["--only", "post-deploy"],
            &["api-health", "api-ready", "web-home"],
        ),
        (
            &["--only", "post-deploy/"],
            &["api-health", "api-ready", "web-home"],
        ),
        (
            &["--only", "post-deployment/nightly", "--only", "api-ready"],
            &["api-ready", "nightly-ok"],
        ),
    ];
    for (selectors, expected) in cases {
        // A fresh server per case, so seen() holds this run's requests only.
        let server = TestServer::http().await;
        for path in ["/api-health", "/api-ready", "/web-home", "/nightly-ok"] {
            server.route(path, Reply::text(200, "ok"));
        }
        let url = |path: &str| server.url(path);
        let config = checks_config(&[
            http_check(
                "api-health",
                "post-deploy/api",
                "critical",
                &url("/api-health"),
                "{}",
            ),
            http_check(
                "api-ready",
                "post-deploy/api",
                "warning",
                &url("/api-ready"),
                "{}",
            ),
            http_check(
                "web-home",
                "post-deploy/web",
                "warning",
                &url("/web-home"),
                "{}",
            ),
            http_check(
                "nightly-ok",
                "post-deployment/nightly",
                "info",
                &url("/nightly-ok"),
                "{}",
            ),
        ]);
        let report = check_json(&config, selectors, 0).await;
        let mut got = names(&report);
        got.sort();
        assert_eq!(got, expected, "--only {selectors:?}");
        assert_eq!(report["summary"]["total"], expected.len());
        let expected_paths: Vec<String> = expected.iter().map(|n| format!("/{n}")).collect();
        assert_eq!(seen_paths(&server), expected_paths, "--only {selectors:?}");
    }
}

// ----------------------------------------------------------------- formats

/// Five checks over three sections: a pass, a blocking fail, a blocking
/// error, a non-blocking (info) fail and a non-blocking error.
async fn mixed_config(server: &TestServer) -> ConfigDir {
    let refused = format!("http://127.0.0.1:{}/", support::closed_port());
    checks_config(&[
        http_check(
            "api-up",
            "post-deploy/api",
            "critical",
            &server.url("/ok"),
            "{status: [200]}",
        ),
        http_check(
            "api-down",
            "post-deploy/api",
            "warning",
            &server.url("/down"),
            "{status: [200]}",
        ),
        http_check("db-gone", "post-deploy/db", "critical", &refused, "{}"),
        http_check(
            "teapot",
            "smoke",
            "info",
            &server.url("/ok"),
            "{status: [418]}",
        ),
        http_check("legacy", "smoke", "info", &refused, "{}"),
    ])
}

#[tokio::test]
async fn json_report_has_the_gate_summary_and_every_check() {
    let server = ok_and_down_server().await;
    let config = mixed_config(&server).await;
    let report = check_json(&config, &[], 1).await;
    assert_eq!(report["passed"], false);
    assert_eq!(report["fail_on"], "warning");
    let summary = &report["summary"];
    assert_eq!(summary["total"], 5, "{summary}");
    assert_eq!(summary["pass"], 1, "{summary}");
    assert_eq!(summary["fail"], 2, "{summary}");
    assert_eq!(summary["error"], 2, "{summary}");
    assert_eq!(
        names(&report),
        ["api-up", "api-down", "db-gone", "teapot", "legacy"],
        "config order"
    );
    let expectations = [
        ("api-up", "pass", "ok", false),
        ("api-down", "fail", "status", true),
        ("db-gone", "error", "connection_refused", true),
        ("teapot", "fail", "status", false),
        ("legacy", "error", "connection_refused", false),
    ];
    for (name, verdict, reason, blocks) in expectations {
        let check = entry(&report, name);
        let run = &check["last_run"];
        assert_eq!(check["state"], verdict, "{name}: {check:#}");
        assert_eq!(run["verdict"], verdict, "{name}: {check:#}");
        assert_eq!(run["reason"], reason, "{name}: {check:#}");
        assert_eq!(check["blocks_gate"], blocks, "{name}: {check:#}");
        assert!(run["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(run["duration_seconds"].as_f64().is_some_and(|d| d >= 0.0));
        assert_eq!(check["kind"], "http");
    }
    assert_eq!(
        entry(&report, "api-down")["last_run"]["message"],
        "status 503, expected 200"
    );
    assert_eq!(
        entry(&report, "teapot")["last_run"]["message"],
        "status 200, expected 418"
    );
    assert_eq!(entry(&report, "api-down")["section"], "post-deploy/api");
    assert_eq!(entry(&report, "api-down")["severity"], "warning");

    let lenient = check_json(&config, &["--fail-on", "critical"], 1).await;
    assert_eq!(lenient["fail_on"], "critical");
    assert_eq!(entry(&lenient, "api-down")["blocks_gate"], false);
    assert_eq!(entry(&lenient, "db-gone")["blocks_gate"], true);
}

#[tokio::test]
async fn a_passing_gate_says_so_in_json() {
    let server = ok_and_down_server().await;
    let config = checks_config(&[
        http_check("up", "smoke", "critical", &server.url("/ok"), "{}"),
        http_check("down", "smoke", "info", &server.url("/down"), "{}"),
    ]);
    let report = check_json(&config, &[], 0).await;
    assert_eq!(report["passed"], true);
    assert_eq!(entry(&report, "down")["state"], "fail");
    assert_eq!(entry(&report, "down")["blocks_gate"], false);
}

#[tokio::test]
async fn junit_report_has_a_suite_per_section_and_a_case_per_check() {
    let server = ok_and_down_server().await;
    let config = mixed_config(&server).await;
    let out = check(&config, &["--format", "junit"]).await;
    assert_exit(&out, 1);
    let xml = stdout(&out);
    let document =
        roxmltree::Document::parse(&xml).unwrap_or_else(|err| panic!("not XML ({err}):\n{xml}"));
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("5"));
    assert_eq!(root.attribute("failures"), Some("1"));
    assert_eq!(root.attribute("errors"), Some("1"));
    assert_eq!(root.attribute("skipped"), Some("2"));

    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let suite_names: Vec<_> = suites.iter().filter_map(|s| s.attribute("name")).collect();
    assert_eq!(suite_names, ["post-deploy/api", "post-deploy/db", "smoke"]);

    // (suite, case, what the case holds)
    let mut cases = Vec::new();
    for suite in &suites {
        let testcases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(
            suite.attribute("tests"),
            Some(testcases.len().to_string().as_str())
        );
        // When and where the gate ran, for CI views: ISO 8601, no zone.
        let timestamp = suite.attribute("timestamp").expect("a timestamp");
        assert!(
            humantime::parse_rfc3339(&format!("{timestamp}Z")).is_ok(),
            "{timestamp}"
        );
        assert!(!suite.attribute("hostname").unwrap_or("").is_empty());
        for case in testcases {
            let child: Vec<_> = case.children().filter(|n| n.is_element()).collect();
            assert!(child.len() <= 1, "{xml}");
            let held = child.first().map(|c| c.tag_name().name()).unwrap_or("");
            let message = child
                .first()
                .and_then(|c| c.attribute("message"))
                .unwrap_or("")
                .to_string();
            assert!(case.attribute("time").is_some());
            // The section is the class, so CI views group as the checklist.
            assert_eq!(case.attribute("classname"), suite.attribute("name"));
            cases.push((
                suite.attribute("name").unwrap().to_string(),
                case.attribute("name").unwrap().to_string(),
                held.to_string(),
                message,
            ));
        }
    }
    let held: Vec<(&str, &str, &str)> = cases
        .iter()
        .map(|(s, c, h, _)| (s.as_str(), c.as_str(), h.as_str()))
        .collect();
    assert_eq!(
        held,
        [
            ("post-deploy/api", "api-up", ""),
            ("post-deploy/api", "api-down", "failure"),
            ("post-deploy/db", "db-gone", "error"),
            ("smoke", "teapot", "skipped"),
            ("smoke", "legacy", "skipped"),
        ]
    );
    let message_of = |name: &str| cases.iter().find(|c| c.1 == name).unwrap().3.clone();
    assert!(message_of("api-down").contains("status 503, expected 200"));
    assert!(message_of("db-gone").contains("connection_refused"));
    assert!(message_of("teapot").contains("status 200, expected 418"));
    let smoke = suites
        .iter()
        .find(|s| s.attribute("name") == Some("smoke"))
        .unwrap();
    assert_eq!(smoke.attribute("failures"), Some("0"));
    assert_eq!(smoke.attribute("errors"), Some("0"));
    assert_eq!(smoke.attribute("skipped"), Some("2"));
    let db = suites
        .iter()
        .find(|s| s.attribute("name") == Some("post-deploy/db"))
        .unwrap();
    assert_eq!(db.attribute("errors"), Some("1"));
    assert_eq!(db.attribute("failures"), Some("0"));
}

#[tokio::test]
async fn junit_with_fail_on_info_reports_every_failure_and_error() {
    let server = ok_and_down_server().await;
    let config = mixed_config(&server).await;
    let out = check(&config, &["--format", "junit", "--fail-on", "info"]).await;
    assert_exit(&out, 1);
    let xml = stdout(&out);
    let document = roxmltree::Document::parse(&xml).unwrap();
    let count = |tag: &str| {
        document
            .descendants()
            .filter(|n| n.has_tag_name(tag))
            .count()
    };
    assert_eq!(
        (count("failure"), count("error"), count("skipped")),
        (2, 2, 0),
        "{xml}"
    );
}

#[tokio::test]
async fn table_groups_checks_by_section_with_verdict_reason_and_duration() {
    let server = ok_and_down_server().await;
    let config = mixed_config(&server).await;
    let out = check(&config, &[]).await;
    assert_exit(&out, 1);
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    // A header row names the columns.
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["VERDICT", "CHECK", "TIME", "SEVERITY", "REASON", "MESSAGE"],
        "{table}"
    );
    // Section headings at the margin, their checks indented below them.
    let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in &lines[1..] {
        if line.is_empty() {
            break;
        }
        match line.strip_prefix("  ") {
            None => sections.push((line, Vec::new())),
            Some(row) => sections
                .last_mut()
                .unwrap_or_else(|| panic!("a row before any section:\n{table}"))
                .1
                .push(row),
        }
    }
    let layout: Vec<(&str, Vec<&str>)> = sections
        .iter()
        .map(|(section, rows)| {
            (
                *section,
                rows.iter()
                    .map(|row| row.split_whitespace().nth(1).unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        layout,
        [
            ("post-deploy/api", vec!["api-up", "api-down"]),
            ("post-deploy/db", vec!["db-gone"]),
            ("smoke", vec!["teapot", "legacy"]),
        ],
        "{table}"
    );
    // verdict, name, duration, severity, reason, message
    let row = |name: &str| -> Vec<String> {
        let row = sections
            .iter()
            .flat_map(|(_, rows)| rows)
            .find(|row| row.split_whitespace().nth(1) == Some(name))
            .unwrap();
        row.split_whitespace().map(str::to_string).collect()
    };
    let expectations = [
        ("api-up", "PASS", "critical", "ok"),
        ("api-down", "FAIL", "warning", "status"),
        ("db-gone", "ERROR", "critical", "connection_refused"),
        ("teapot", "fail", "info", "status"),
        ("legacy", "error", "info", "connection_refused"),
    ];
    for (name, verdict, severity, reason) in expectations {
        let row = row(name);
        assert_eq!(row[0], verdict, "{name}:\n{table}");
        let duration = row[2].strip_suffix('s').expect("a duration in seconds");
        assert!(
            duration.parse::<f64>().is_ok(),
            "{name}: {}\n{table}",
            row[2]
        );
        assert_eq!(row[3], severity, "{name}:\n{table}");
        assert_eq!(row[4], reason, "{name}:\n{table}");
    }
    assert!(
        table.contains("status 503, expected 200"),
        "the message is shown:\n{table}"
    );
    // A legend says what the letter case means; the closing line names
    // the checks that block.
    assert!(
        table.contains("FAIL, ERROR: blocks the gate (severity warning or above)"),
        "{table}"
    );
    assert_eq!(
        *lines.last().unwrap(),
        "5 checks: 1 passed, 2 failed, 2 errors. Gate FAILED (fail-on warning), blocked by: api-down, db-gone.",
        "{table}"
    );
}

#[tokio::test]
async fn output_writes_the_report_to_the_file_and_nothing_to_stdout() {
    let server = ok_and_down_server().await;
    let config = mixed_config(&server).await;
    for format in ["json", "junit", "table"] {
        let report = config.dir.path().join(format!("report.{format}"));
        let out = check(
            &config,
            &["--format", format, "--output", report.to_str().unwrap()],
        )
        .await;
        assert_exit(&out, 1);
        assert_eq!(stdout(&out), "", "--format {format}");
        let text = std::fs::read_to_string(&report).unwrap();
        match format {
            "json" => {
                let value: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(value["summary"]["total"], 5);
            }
            "junit" => {
                roxmltree::Document::parse(&text).unwrap();
            }
            _ => assert!(text.contains("Gate FAILED"), "{text}"),
        }
    }
}

#[tokio::test]
async fn an_unwritable_output_file_has_its_own_exit_code_and_runs_nothing() {
    let server = ok_and_down_server().await;
    let config = checks_config(&[http_check(
        "up",
        "smoke",
        "critical",
        &server.url("/ok"),
        "{}",
    )]);
    let target = config.dir.path().join("no-such-dir").join("report.json");
    let out = check(&config, &["--output", target.to_str().unwrap()]).await;
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains(&target.display().to_string()),
        "{}",
        stderr(&out)
    );
    assert!(server.seen().is_empty(), "the checks did not run");
}

#[tokio::test]
async fn nothing_but_plain_text_on_a_pipe() {
    let server = ok_and_down_server().await;
    let config = mixed_config(&server).await;
    for format in ["table", "json", "junit"] {
        let out = check(&config, &["--format", format]).await;
        assert_exit(&out, 1);
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !bytes.contains(&0x1b),
                "escape codes on {stream} with --format {format}:\n{}",
                String::from_utf8_lossy(bytes)
            );
            assert!(
                !bytes.contains(&b'\r'),
                "a carriage return (progress redraw) on {stream} with --format {format}"
            );
        }
        assert!(
            !stderr(&out).contains("checks done"),
            "progress on a pipe:\n{}",
            stderr(&out)
        );
    }
}

// ------------------------------------------------------------- concurrency

/// A server that holds every answer until `expected` requests are open at
/// the same time, then answers each of them 200 `together`. A request that
/// waits longer than `guard` without meeting the others is answered 503
/// `alone`: without concurrency the first request would wait alone.
struct Rendezvous {
    addr: SocketAddr,
    arrived: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Requests waiting now, and whether `expected` of them ever waited at once.
#[derive(Clone, Copy, Default)]
struct Meeting {
    waiting: usize,
    met: bool,
}

impl Rendezvous {
    async fn start(expected: usize, guard: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrived = Arc::new(AtomicUsize::new(0));
        let (meeting, _) = tokio::sync::watch::channel(Meeting::default());
        let meeting = Arc::new(meeting);
        let task = {
            let arrived = arrived.clone();
            tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((mut stream, _)) = listener.accept().await {
                    let meeting = meeting.clone();
                    let arrived = arrived.clone();
                    connections.spawn(async move {
                        let mut head = Vec::new();
                        let mut buffer = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buffer[..n]),
                            }
                        }
                        arrived.fetch_add(1, Ordering::SeqCst);
                        let mut watch = meeting.subscribe();
                        meeting.send_modify(|m| {
                            m.waiting += 1;
                            m.met |= m.waiting >= expected;
                        });
                        let together = tokio::time::timeout(guard, watch.wait_for(|m| m.met))
                            .await
                            .is_ok_and(|r| r.is_ok());
                        meeting.send_modify(|m| m.waiting -= 1);
                        let (status, body) = if together {
                            ("200 OK", "together")
                        } else {
                            ("503 Service Unavailable", "alone")
                        };
                        let response = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                    while connections.try_join_next().is_some() {}
                }
            })
        };
        Rendezvous {
            addr,
            arrived,
            task,
        }
    }
}

#[tokio::test]
async fn checks_run_concurrently() {
    // The guard only bounds a broken (sequential) vouch; it stays well
    // inside the checks' timeout so the failure reads as a 503.
    let server = Rendezvous::start(3, Duration::from_secs(20)).await;
    let checks: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|name| {
            format!(
                "  - name: {name}\n    interval: 5m\n    timeout: 1m\n    http:\n      url: http://{}/{name}\n      expect: {{status: [200], body_matches: [together]}}\n",
                server.addr
            )
        })
        .collect();
    let config = checks_config(&checks);
    let report = check_json(&config, &[], 0).await;
    for name in ["one", "two", "three"] {
        let check = entry(&report, name);
        assert_eq!(check["state"], "pass", "{check:#}");
    }
    assert_eq!(server.arrived.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn max_concurrent_runs_bounds_the_checks_in_flight() {
    // With one run at a time the three requests can never meet: each is
    // answered alone once the guard runs out.
    let server = Rendezvous::start(3, Duration::from_millis(300)).await;
    let checks: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|name| {
            format!(
                "  - name: {name}\n    http:\n      url: http://{}/{name}\n      expect: {{status: [200]}}\n",
                server.addr
            )
        })
        .collect();
    let config = write_config(&format!(
        "max_concurrent_runs: 1\nchecks:\n{}",
        checks.concat()
    ));
    let report = check_json(&config, &[], 1).await;
    let messages: Vec<&str> = ["one", "two", "three"]
        .iter()
        .map(|name| {
            entry(&report, name)["last_run"]["message"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(
        messages.iter().all(|m| m.starts_with("status 503")),
        "{messages:?}"
    );
    assert_eq!(server.arrived.load(Ordering::SeqCst), 3);
}

// ----------------------------------------------------------------- secrets

/// `vouch ARGS` with extra environment variables, output captured.
async fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(vouch::bin())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("VOUCH_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the vouch binary")
}

#[tokio::test]
async fn a_bearer_token_from_the_environment_never_appears_in_any_output() {
    const SECRET: &str = "vouch-test-secret-5f1d2c9a";
    let server = TestServer::http().await;
    server.route(
        "/private",
        Reply::text(401, "bad credentials").header("WWW-Authenticate", "Bearer realm=\"api\""),
    );
    let config = write_config(&format!(
        "checks:\n  - name: private-api\n    severity: critical\n    http:\n      url: {}\n      bearer_token_env: VOUCH_TEST_TOKEN\n      expect:\n        status: [200]\n        body_matches: [welcome]\n        headers: {{X-Session: \"\"}}\n",
        server.url("/private")
    ));
    for format in ["table", "json", "junit"] {
        for log in ["info", "trace"] {
            let out = run_with_env(
                &["check", "--config", path_of(&config), "--format", format],
                &[("VOUCH_TEST_TOKEN", SECRET), ("RUST_LOG", log)],
            )
            .await;
            assert_exit(&out, 1);
            assert!(
                stdout(&out).contains("status 401, expected 200"),
                "the check ran and failed:\n{}",
                stdout(&out)
            );
            for (stream, text) in [("stdout", stdout(&out)), ("stderr", stderr(&out))] {
                assert!(
                    !text.contains(SECRET),
                    "the secret is on {stream} (--format {format}, RUST_LOG={log}):\n{text}"
                );
            }
        }
    }
    // The token was really sent, so its absence above means something.
    let seen = server.seen();
    assert_eq!(seen.len(), 6);
    for request in seen {
        assert_eq!(
            request.header("Authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
    }
}

#[tokio::test]
async fn an_unset_secret_variable_is_an_error_naming_the_variable() {
    let server = ok_and_down_server().await;
    let config = write_config(&format!(
        "checks:\n  - name: private-api\n    http:\n      url: {}\n      bearer_token_env: VOUCH_TEST_TOKEN_SURELY_UNSET\n",
        server.url("/ok")
    ));
    let report = check_json(&config, &[], 1).await;
    let check = entry(&report, "private-api");
    assert_eq!(check["state"], "error");
    assert_eq!(check["last_run"]["reason"], "secret");
    assert_eq!(
        check["last_run"]["message"],
        "environment variable VOUCH_TEST_TOKEN_SURELY_UNSET is not set"
    );
    assert!(
        server.seen().is_empty(),
        "no request without the credential"
    );
}

// ----------------------------------------------------------------- version

#[tokio::test]
async fn version_prints_the_package_version() {
    let out = vouch::run(&["--version"]).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("vouch {} (", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[tokio::test]
async fn skip_and_label_selectors_narrow_the_gate_and_sections_keep_config_order() {
    let server = TestServer::http().await;
    for path in ["/z1", "/a1", "/z2", "/pay"] {
        server.route(path, Reply::text(200, "ok"));
    }
    // Sections in checklist order, which is not alphabetical.
    let config = write_config(&format!(
        "checks:\n{}{}{}  - name: pay\n    section: pre-deploy/secrets\n    labels: {{team: payments}}\n    http: {{url: {}}}\n",
        http_check("z1", "zeta", "warning", &server.url("/z1"), "{}"),
        http_check("a1", "alpha", "warning", &server.url("/a1"), "{}"),
        http_check("z2", "zeta", "warning", &server.url("/z2"), "{}"),
        server.url("/pay"),
    ));
    let report = check_json(&config, &[], 0).await;
    assert_eq!(names(&report), ["z1", "a1", "z2", "pay"]);
    let table = stdout(&check(&config, &[]).await);
    let zeta = table.find("zeta").unwrap();
    let alpha = table.find("alpha").unwrap();
    assert!(zeta < alpha, "sections in config order:\n{table}");
    assert!(
        table.find("z2").unwrap() < alpha,
        "a section's checks stay together:\n{table}"
    );

    let report = check_json(&config, &["--skip", "zeta"], 0).await;
    assert_eq!(names(&report), ["a1", "pay"]);
    let report = check_json(&config, &["--only", "team=payments"], 0).await;
    assert_eq!(names(&report), ["pay"]);
    let report = check_json(&config, &["--only", "zeta", "--skip", "z2"], 0).await;
    assert_eq!(names(&report), ["z1"]);
    let out = check(&config, &["--skip", "team=nobody"]).await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--skip team=nobody: no check, section or label matches"),
        "{}",
        stderr(&out)
    );
}
