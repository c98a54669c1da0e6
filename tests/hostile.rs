//! Hostile input: what a client, a file or a target sends must never
//! freeze, crash or starve the daemon. Each test names the case of issue 20
//! it covers.
mod support;

use std::time::Duration;

use support::vouch::Daemon;
use support::{closed_port, write_config};

/// One http check against a port nothing listens on: it errors at once,
/// which is all these tests need from a check.
fn one_check() -> support::ConfigDir {
    write_config(&format!(
        "defaults: {{ interval: 1s, timeout: 1s }}\n\
         checks:\n  - name: nothing-listens\n    http: {{ url: \"http://127.0.0.1:{}/\" }}\n",
        closed_port()
    ))
}

/// `since` values that overflowed the clock arithmetic panicked the
/// handler (an empty reply and a multi-line panic per request).
#[tokio::test]
async fn out_of_range_gate_queries_are_a_400_not_a_panic() {
    let config = one_check();
    let daemon = Daemon::start(&config.path).await;
    for since in ["1e18", "1e19", "1e20", "-1", "NaN", "inf", "-inf", "1e308"] {
        let path = format!("/api/v1/gate?since={since}");
        let answer = daemon.get(&path).await;
        let Some((400, body)) = &answer else {
            panic!("{path}: {answer:?}\n{}", daemon.logs());
        };
        assert!(body.contains("since="), "{path}: {body}");
    }
    assert!(!daemon.logs().contains("panicked"), "{}", daemon.logs());
    assert_eq!(daemon.get_ok("/livez").await, "ok\n");
}

/// 60 KB of `- ` nested 30,000 deep under a check: the recursive line
/// indexer overflowed the stack (SIGABRT) in validate, at start-up, and in
/// a running daemon on SIGHUP or POST /-/reload.
fn deeply_nested() -> String {
    format!("checks:\n  - {}x\n", "- ".repeat(30_000))
}

async fn vouch(args: &[&str]) -> (Option<i32>, String) {
    let out = support::vouch::run(args).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_deeply_nested_config_is_refused_with_its_line_by_validate_and_serve() {
    let config = write_config(&deeply_nested());
    let path = config.path.to_str().unwrap();
    let expected = format!("{path}:2: nested more than 64 levels deep");
    for command in ["validate", "serve"] {
        let (code, stderr) = vouch(&[command, "--config", path]).await;
        assert_eq!(code, Some(2), "{command}: {stderr}");
        assert!(stderr.contains(&expected), "{command}: {stderr}");
    }
}

#[tokio::test]
async fn a_running_daemon_keeps_its_config_when_a_reload_is_deeply_nested() {
    let config = one_check();
    let daemon = Daemon::start_with_args(&config.path, &["--web.enable-reload"]).await;
    std::fs::write(&config.path, deeply_nested()).unwrap();
    let (status, body) = support::vouch::http_post(daemon.addr, "/-/reload")
        .await
        .unwrap_or_else(|| panic!("no answer to the reload:\n{}", daemon.logs()));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(":2: nested more than 64 levels deep"),
        "{body}"
    );
    daemon.signal("HUP");
    support::wait_until(
        "the SIGHUP reload to be rejected",
        Duration::from_secs(20),
        || async { daemon.logs().matches("config reload rejected").count() >= 2 },
    )
    .await;
    assert_eq!(daemon.get_ok("/livez").await, "ok\n");
    assert_eq!(daemon.check_names().await, ["nothing-listens"]);
}

#[tokio::test]
async fn a_deeply_nested_web_config_rotation_keeps_the_old_one() {
    let config = one_check();
    let web = config.dir.path().join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n",
    )
    .unwrap();
    let daemon =
        Daemon::start_with_args(&config.path, &["--web.config.file", web.to_str().unwrap()]).await;
    // 16 KB nested 8,000 deep; renamed over the file as a secret volume does.
    let next = config.dir.path().join(".web.yml.new");
    std::fs::write(
        &next,
        format!("basic_auth_users:\n  a: {}x\n", "[".repeat(8_000)),
    )
    .unwrap();
    std::fs::rename(&next, &web).unwrap();
    support::wait_until(
        "the nested web config to be refused",
        Duration::from_secs(20),
        || async {
            let _ = daemon.get("/livez").await;
            daemon.logs().contains("web config not reloaded")
        },
    )
    .await;
    assert!(
        daemon
            .logs()
            .contains("web.yml:2: nested more than 64 levels deep"),
        "{}",
        daemon.logs()
    );
    assert_eq!(daemon.get_ok("/livez").await, "ok\n");
}

/// Problems the decoder reports without a line, or on the wrong one.
#[tokio::test]
async fn nul_bytes_bad_utf8_and_alias_bombs_name_their_line() {
    let cases: [(&[u8], &str); 3] = [
        (
            b"checks: []\n# a comment\nfoo: \"a\0b\"\n",
            ":3: the control character U+0000",
        ),
        (
            b"checks: []\n# caf\xe9\n",
            ":2: cannot read config: not UTF-8",
        ),
        (&[b'#'; 40 << 20], ": cannot read config: larger than"),
    ];
    for (text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vouch.yaml");
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        let (code, stderr) = vouch(&["validate", "--config", path]).await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{path}{expected}")),
            "{expected}: {stderr}"
        );
    }
}

/// Aliases expanding past the decoder's repetition limit, in a web config
/// key that takes any YAML: reported at the first alias.
#[tokio::test]
async fn an_alias_bomb_in_the_web_config_names_its_line() {
    let config = one_check();
    let web = config.dir.path().join("web.yml");
    let mut bomb = "rate_limit:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n".to_string();
    for (name, previous) in [
        ("b", "a"),
        ("c", "b"),
        ("d", "c"),
        ("e", "d"),
        ("f", "e"),
        ("g", "f"),
    ] {
        let items = vec![format!("*{previous}"); 10].join(", ");
        bomb.push_str(&format!("  {name}: &{name} [{items}]\n"));
    }
    std::fs::write(&web, bomb).unwrap();
    let (code, stderr) = vouch(&[
        "validate",
        "--config",
        config.path.to_str().unwrap(),
        "--web.config.file",
        web.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3: repetition limit exceeded", web.display())),
        "{stderr}"
    );
}
