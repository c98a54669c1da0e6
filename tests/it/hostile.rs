//! Hostile input: what a client, a file or a target sends must never
//! freeze, crash or starve the daemon. Each test names the case of issue 20
//! it covers.
use crate::support;

use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use support::http_server::{Reply, TestServer};
use support::vouch::{Daemon, VERDICT_WAIT};
use support::{closed_port, write_config};

/// How long /livez may take to answer while checks are stuck: a frozen
/// daemon never answers, a busy machine may take seconds.
const LIVEZ_WAIT: Duration = Duration::from_secs(10);

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
    // `since` is compared with the last run of passing checks only.
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    let config = write_config(&format!(
        "checks:\n  - name: passing\n    interval: 1s\n    http: {{ url: \"{}\" }}\n",
        server.url("/ok")
    ));
    let daemon = Daemon::start(&config.path).await;
    // Awaited, not read from the first run: on a loaded machine one run
    // may time out.
    support::wait_until("a pass of the check", VERDICT_WAIT, || async {
        daemon.check("passing").await["state"] == "pass"
    })
    .await;
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

/// Sets this process's soft open-file limit (children inherit it).
fn set_open_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        assert!(
            limit.rlim_max >= wanted,
            "hard open-file limit {}",
            limit.rlim_max
        );
        limit.rlim_cur = wanted;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Opens `count` connections that send nothing (or, with `trickle`, one
/// header byte at a time: slowloris) and keeps them open until dropped.
async fn hold_connections(
    addr: std::net::SocketAddr,
    count: usize,
    trickle: bool,
) -> tokio::task::JoinSet<()> {
    use tokio::io::AsyncWriteExt;
    let mut held = tokio::task::JoinSet::new();
    for _ in 0..count {
        let connect = tokio::net::TcpStream::connect(addr);
        let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
            // The daemon no longer accepts: the scrape will tell.
            break;
        };
        held.spawn(async move {
            if !trickle {
                std::future::pending::<()>().await;
            }
            for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "
                .iter()
                .cycle()
            {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    held
}

/// A plain-HTTP daemon had no header-read or idle timeout and no
/// connection limit: 2,000 idle sockets ran it out of file descriptors,
/// so /metrics went unanswered and every check errored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_slowloris_leave_room_for_a_scrape() {
    // The daemon gets the usual open-file limit; this process needs more.
    let config = one_check();
    set_open_file_limit(1_024);
    let daemon = Daemon::start(&config.path).await;
    set_open_file_limit(4_096);
    let _idle = hold_connections(daemon.addr, 2_000, false).await;
    let _slow = hold_connections(daemon.addr, 200, true).await;
    // Generous bounds: the machine running the tests may be busy.
    for _ in 0..3 {
        let scrape = tokio::time::timeout(Duration::from_secs(5), daemon.get("/metrics")).await;
        assert!(
            matches!(scrape, Ok(Some((200, _)))),
            "{scrape:?}\n{}",
            daemon.logs()
        );
    }
    let checks = daemon.checks().await;
    let message = checks["checks"][0]["last_run"]["message"].to_string();
    assert!(!message.contains("Too many open files"), "{message}");
}

#[tokio::test]
async fn the_connection_limit_closes_idle_connections_and_says_so() {
    let config = one_check();
    let daemon = Daemon::start_with_args(&config.path, &["--web.max-connections", "20"]).await;
    let _idle = hold_connections(daemon.addr, 40, false).await;
    let metrics = daemon.get_ok("/metrics").await;
    let shed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vouch_http_connections_shed_total "))
        .unwrap_or_else(|| panic!("no shed counter:\n{metrics}"));
    assert!(shed.parse::<f64>().unwrap() >= 20.0, "{shed}");
    assert_eq!(
        daemon.logs().matches("connection limit reached").count(),
        1,
        "{}",
        daemon.logs()
    );
}

/// Plain mode spoke HTTP/2 with prior knowledge (h2c); vouch serves
/// HTTP/1.1 only, in both modes.
#[tokio::test]
async fn h2c_prior_knowledge_is_not_spoken() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = one_check();
    let daemon = Daemon::start(&config.path).await;
    let mut stream = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    // An HTTP/2 server answers with a SETTINGS frame (type 4 in byte 3).
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// The web config's files were looked at by the accept loop: a web config
/// replaced by a FIFO stopped every connection until something wrote to it.
#[tokio::test]
async fn a_blocking_web_config_file_does_not_stop_the_accept_loop() {
    let config = one_check();
    let web = config.dir.path().join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n",
    )
    .unwrap();
    let daemon =
        Daemon::start_with_args(&config.path, &["--web.config.file", web.to_str().unwrap()]).await;
    std::fs::remove_file(&web).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&web)
        .status()
        .unwrap();
    assert!(status.success());
    // Several connections, spread over more than one look at the files.
    for _ in 0..5 {
        let answer = tokio::time::timeout(Duration::from_secs(5), daemon.get("/livez")).await;
        assert!(matches!(answer, Ok(Some((200, _)))), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Unblock the look at the FIFO so the daemon can stop.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&web);
}

/// GET `path` with basic-auth credentials over plain HTTP; the status.
async fn get_as(addr: std::net::SocketAddr, path: &str, user: &str, password: &str) -> Option<u16> {
    use base64::Engine;
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    let driver = tokio::spawn(connection);
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let request = hyper::Request::get(path)
        .header("Host", addr.to_string())
        .header("Authorization", format!("Basic {credentials}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    driver.abort();
    Some(status)
}

/// bcrypt ran uncached behind a semaphore of core count: 150 clients with a
/// wrong password pushed a correct scrape past Prometheus' 10 s timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_flood_does_not_hold_up_a_known_scraper() {
    let config = one_check();
    let web = config.dir.path().join("web.yml");
    let hash = bcrypt::hash("right", 8).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let daemon =
        Daemon::start_with_args(&config.path, &["--web.config.file", web.to_str().unwrap()]).await;
    let addr = daemon.addr;
    assert_eq!(
        get_as(addr, "/metrics", "prometheus", "right").await,
        Some(200)
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (stop, refused) = (stop.clone(), refused.clone());
        flood.spawn(async move {
            while !stop.is_cancelled() {
                match get_as(addr, "/metrics", "prometheus", &format!("wrong{i}")).await {
                    Some(401) => refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    other => panic!("a wrong password got {other:?}"),
                };
            }
        });
    }
    // Scrape once the flood is being refused.
    support::wait_until(
        "the flood to be refused",
        Duration::from_secs(30),
        || async { refused.load(std::sync::atomic::Ordering::Relaxed) >= 10 },
    )
    .await;
    for _ in 0..5 {
        // Generous: the bound the issue asks is a second on a quiet machine.
        let scrape = tokio::time::timeout(
            Duration::from_secs(3),
            get_as(addr, "/metrics", "prometheus", "right"),
        )
        .await;
        assert_eq!(scrape, Ok(Some(200)));
    }
    stop.cancel();
    while let Some(result) = flood.join_next().await {
        result.unwrap();
    }
}

/// Scheduled runs and those that started within a second of their slot,
/// from the lateness histogram of an exposition.
fn runs_and_timely(metrics: &str) -> (f64, f64) {
    runs_and_within(metrics, "1")
}

/// Scheduled runs and those that started within `le` seconds of their
/// slot (a bucket bound of vouch_scheduler_lateness_seconds).
fn runs_and_within(metrics: &str, le: &str) -> (f64, f64) {
    let value = |prefix: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {prefix}in\n{metrics}"))
    };
    (
        value("vouch_scheduler_lateness_seconds_count "),
        value(&format!(
            "vouch_scheduler_lateness_seconds_bucket{{le=\"{le}\"}} "
        )),
    )
}

/// The status page, the JSON API and the gate rendered on the async
/// workers that also run the checks' timers: a flood of page requests made
/// scheduled runs seconds late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_page_requests_leaves_the_schedule_on_time() {
    let port = closed_port();
    let mut yaml = "defaults: { interval: 5s, timeout: 1s }\nchecks:\n".to_string();
    for i in 0..1_000 {
        yaml.push_str(&format!(
            "  - name: check-{i}\n    section: s{}\n    http: {{ url: \"http://127.0.0.1:{port}/\" }}\n",
            i % 10
        ));
    }
    let config = write_config(&yaml);
    let daemon = Daemon::start(&config.path).await;
    daemon.wait_for_runs(1, Duration::from_secs(30)).await;
    let before_metrics = daemon.get_ok("/metrics").await;
    let before = runs_and_timely(&before_metrics);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut flood = tokio::task::JoinSet::new();
    let paths = [
        "/",
        "/api/v1/checks",
        "/api/v1/gate?section=s1",
        "/checks/check-7",
    ];
    for i in 0..40 {
        let (stop, addr, path) = (stop.clone(), daemon.addr, paths[i % paths.len()]);
        flood.spawn(async move {
            while !stop.is_cancelled() {
                let _ = support::vouch::http_get(addr, path).await;
            }
        });
    }
    // Two rounds of every check under the flood.
    let flooded = support::wait_until(
        "two rounds under the flood",
        Duration::from_secs(60),
        || async {
            let now = runs_and_timely(&daemon.get_ok("/metrics").await);
            now.0 - before.0 >= 2_000.0
        },
    );
    flooded.await;
    stop.cancel();
    while flood.join_next().await.is_some() {}
    // Counted against the 5 s bucket, not the 1 s one: on a quiet machine
    // p99 is a few milliseconds (see the note of issue 20), but with 40
    // flooders, 1,000 checks and other builds on 2 shared cores, more than
    // 5 % of runs were over a second late in 1 of 4 runs of this test
    // (issue 22: no margin a loaded machine can break). Here only that the
    // flood does not push runs several seconds late.
    let (before_runs, before_within) = runs_and_within(&before_metrics, "5");
    let after = runs_and_within(&daemon.get_ok("/metrics").await, "5");
    let (runs, within) = (after.0 - before_runs, after.1 - before_within);
    assert!(
        within >= 0.95 * runs,
        "{} of {runs} runs under the flood were over 5 s late",
        runs - within
    );
}

/// Checks added by a reload fired at once, recording up to an interval of
/// lateness for slots that passed before they existed.
#[tokio::test]
async fn checks_added_by_a_reload_join_their_next_slot() {
    let port = closed_port();
    let check = |name: &str| {
        format!("  - name: {name}\n    http: {{ url: \"http://127.0.0.1:{port}/\" }}\n")
    };
    let head = "defaults: { interval: 10s, timeout: 1s }\nchecks:\n";
    let config = write_config(&format!("{head}{}", check("first")));
    let daemon = Daemon::start(&config.path).await;
    daemon.wait_for_runs(1, Duration::from_secs(20)).await;
    let added: Vec<String> = (0..5).map(|i| format!("added-{i}")).collect();
    let all: String = std::iter::once("first".to_string())
        .chain(added.iter().cloned())
        .map(|name| check(&name))
        .collect();
    std::fs::write(&config.path, format!("{head}{all}")).unwrap();
    daemon.signal("HUP");
    daemon.wait_for_runs(1, Duration::from_secs(30)).await;
    // The exact promise (on the slot, no lateness) is asserted on the
    // paused clock: tests/it/scheduler.rs
    // checks_added_by_a_reconcile_join_their_next_slot_on_time. Here, with
    // a margin a stalled host cannot reach: the bug recorded up to the
    // 10 s interval for each of the five added checks, so at least one
    // over 5 s late but for a 1-in-32 chance.
    let (runs, within) = runs_and_within(&daemon.get_ok("/metrics").await, "5");
    assert_eq!(runs, within, "runs over 5 s late after the reload");
}

/// After SIGSTOP/CONT the slots that passed were logged and counted as
/// "the previous run has not finished".
#[tokio::test]
async fn slots_missed_in_a_stall_are_counted_as_such() {
    let config = one_check();
    let daemon = Daemon::start(&config.path).await;
    daemon.wait_for_runs(1, Duration::from_secs(20)).await;
    daemon.signal("STOP");
    // The stall itself: three slots of the 1 s check pass meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.signal("CONT");
    support::wait_until(
        "the missed slots to be counted",
        Duration::from_secs(20),
        || async {
            let metrics = daemon.get_ok("/metrics").await;
            metrics
                .lines()
                .find_map(|l| l.strip_prefix("vouch_scheduler_missed_slots_total "))
                .is_some_and(|v| v.parse::<f64>().unwrap() >= 1.0)
        },
    )
    .await;
    let logs = daemon.logs();
    assert!(
        logs.contains("planned runs missed: the process was stalled"),
        "{logs}"
    );
    assert!(
        !logs.contains("the previous run has not finished"),
        "{logs}"
    );
}

/// A secret file that blocks (a FIFO here, a hung secrets mount in real
/// life) froze the whole daemon, and `/dev/zero` as a secret grew memory
/// without bound. Now: `error` naming the file, every other check on
/// schedule, /livez answering, and `vouch check` exits at its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_and_endless_secret_files_stop_only_their_own_check() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("token.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let url = server.url("/ok");
    let config = write_config(&format!(
        "defaults: {{ interval: 1s, timeout: 1s }}\nchecks:\n\
         \x20 - name: steady\n    http: {{ url: \"{url}\" }}\n\
         \x20 - name: fifo-token\n    http: {{ url: \"{url}\", bearer_token_file: \"{}\" }}\n\
         \x20 - name: endless-token\n    http: {{ url: \"{url}\", bearer_token_file: /dev/zero }}\n",
        fifo.display()
    ));
    let daemon = Daemon::start(&config.path).await;
    // Three rounds of the steady check, each with /livez answering.
    for runs in 1..=3 {
        daemon.wait_for_runs(runs, Duration::from_secs(20)).await;
        let livez = tokio::time::timeout(LIVEZ_WAIT, daemon.get("/livez")).await;
        assert!(matches!(livez, Ok(Some((200, _)))), "{livez:?}");
    }
    support::wait_until("a pass of the steady check", VERDICT_WAIT, || async {
        daemon.check("steady").await["state"] == "pass"
    })
    .await;
    let fifo_token = daemon.check("fifo-token").await;
    assert_eq!(fifo_token["state"], "error", "{fifo_token}");
    let message = fifo_token["last_run"]["message"].as_str().unwrap();
    assert!(
        message.contains(&fifo.display().to_string()) || message.contains("reading secret files"),
        "{message}"
    );
    let endless = daemon.check("endless-token").await;
    let message = endless["last_run"]["message"].as_str().unwrap();
    assert!(
        message.contains("/dev/zero") && message.contains("larger than"),
        "{message}"
    );

    // The gate: its report at the deadline, and then the process ends.
    let check = tokio::time::timeout(
        Duration::from_secs(20),
        support::vouch::run(&["check", "--config", config.path.to_str().unwrap()]),
    )
    .await
    .expect("vouch check exits despite the blocked read");
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    // Unblock the reads still waiting on the FIFO.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
}

/// A self-signed certificate made the usual way (`openssl req -x509`
/// marks it CA:TRUE); returns the identity and its PEM path.
fn openssl_self_signed(dir: &std::path::Path, name: &str) -> (support::certs::Identity, String) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    let chain_pem = std::fs::read_to_string(&cert).unwrap();
    let chain = rustls_pemfile::certs(&mut chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key_pem = std::fs::read(&key).unwrap();
    let key_der = match rustls_pemfile::private_key(&mut key_pem.as_slice()).unwrap() {
        Some(rustls::pki_types::PrivateKeyDer::Pkcs8(key)) => key.secret_pkcs8_der().to_vec(),
        other => panic!("openssl wrote a key that is not PKCS#8: {other:?}"),
    };
    let identity = support::certs::Identity {
        chain,
        key_der,
        chain_pem,
    };
    (identity, cert.display().to_string())
}

/// A server pinned by its own self-signed certificate as `ca_file` was
/// refused as "a CA certificate as its own" (CaUsedAsEndEntity).
#[tokio::test]
async fn a_pinned_self_signed_certificate_is_accepted_and_only_where_it_fits() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, pinned) = openssl_self_signed(dir.path(), "server");
    let (_, other) = openssl_self_signed(dir.path(), "other");
    let server = TestServer::https(identity).await;
    server.route("/ok", Reply::text(200, "ok"));
    let port = server.addr.port();
    let config = write_config(&format!(
        "defaults: {{ interval: 2s, timeout: 2s }}\nchecks:\n\
         \x20 - name: pinned\n    http: {{ url: \"https://localhost:{port}/ok\", ca_file: \"{pinned}\" }}\n\
         \x20 - name: wrong-name\n    http: {{ url: \"https://127.0.0.1:{port}/ok\", ca_file: \"{pinned}\" }}\n\
         \x20 - name: other-pin\n    http: {{ url: \"https://localhost:{port}/ok\", ca_file: \"{other}\" }}\n\
         \x20 - name: system-roots\n    http: {{ url: \"https://localhost:{port}/ok\" }}\n"
    ));
    let daemon = Daemon::start(&config.path).await;
    // Each verdict awaited (one run on a loaded machine may time out), and
    // each refusal by its reason and words, not merely "not a pass". A
    // certificate pinned elsewhere, or trusted nowhere, is refused for what
    // `openssl req -x509` made it: a CA certificate served as the leaf.
    for (name, verdict, reason, words) in [
        ("pinned", "pass", "ok", "status 200"),
        ("wrong-name", "error", "tls_hostname", "NotValidForName"),
        ("other-pin", "error", "tls", "CaUsedAsEndEntity"),
        ("system-roots", "error", "tls", "CaUsedAsEndEntity"),
    ] {
        support::wait_until(
            &format!("{name}: {verdict} ({reason}, {words})"),
            VERDICT_WAIT,
            || async {
                let run = daemon.check(name).await["last_run"].clone();
                run["verdict"] == verdict
                    && run["reason"] == reason
                    && run["message"].as_str().is_some_and(|m| m.contains(words))
            },
        )
        .await;
    }
}

/// A Unicode `\w` regex over a 50 MiB body (one that needs the slow
/// engines: a word boundary) reported the timeout on time
/// but held an async worker for many seconds more, and `vouch check` took
/// as long. Now the run ends at its timeout naming the stage, and the gate
/// exits right after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_over_a_huge_body_ends_with_the_timeout() {
    let server = TestServer::http().await;
    let body = "é".repeat(25 << 20);
    server.route("/big", Reply::text(200, &body));
    let config = write_config(&format!(
        "checks:\n  - name: big-body\n    timeout: 3s\n    http:\n      url: \"{}\"\n      \
         max_body_size: 64MiB\n      expect: {{ body_matches: ['^\\w+$\\b\\d'] }}\n",
        server.url("/big")
    ));
    let started = std::time::Instant::now();
    let out = support::vouch::run(&[
        "check",
        "--config",
        config.path.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    let elapsed = started.elapsed();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("evaluating the response"), "{report}");
    // Timeout + 1 s, plus a generous allowance for starting the binary on
    // a busy machine.
    assert!(
        elapsed < Duration::from_secs(6),
        "took {elapsed:?}: {report}"
    );
}

/// In the daemon, a run whose evaluation outlived its timeout is not
/// joined by the next run's (each would keep a core busy); the other
/// checks keep their schedule meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_still_running_is_not_joined_by_the_next_run() {
    let server = TestServer::http().await;
    server.route("/big", Reply::text(200, &"é".repeat(25 << 20)));
    server.route("/ok", Reply::text(200, "ok"));
    let config = write_config(&format!(
        "checks:\n  - name: big-body\n    interval: 4s\n    timeout: 3s\n    http:\n      url: \"{}\"\n      \
         max_body_size: 64MiB\n      expect: {{ body_matches: ['^\\w+$\\b\\d'] }}\n\
         \x20 - name: steady\n    interval: 1s\n    timeout: 1s\n    http: {{ url: \"{}\" }}\n",
        server.url("/big"),
        server.url("/ok")
    ));
    let daemon = Daemon::start(&config.path).await;
    support::wait_until(
        "a second run of big-body",
        Duration::from_secs(30),
        || async {
            daemon.check("big-body").await["recent"]
                .as_array()
                .unwrap()
                .len()
                >= 2
        },
    )
    .await;
    let big = daemon.check("big-body").await;
    let message = big["last_run"]["message"].as_str().unwrap();
    assert!(
        message.contains("evaluation of an earlier response is still running"),
        "{message}"
    );
    support::wait_until("a pass of the steady check", VERDICT_WAIT, || async {
        daemon.check("steady").await["state"] == "pass"
    })
    .await;
}

/// A FIFO at `dir/name`: opening it for reading blocks until a writer
/// comes, as a read from a hung mount does.
fn fifo(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    assert!(std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap()
        .success());
    path
}

/// Lets readers still blocked on `fifo` return (end of file).
fn release(fifo: &std::path::Path) {
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo);
}

/// Waits until the steady check has run `more` times after now, with
/// /livez answering each time (within [`LIVEZ_WAIT`]).
async fn steady_keeps_running(daemon: &Daemon, more: usize) {
    let started = |check: serde_json::Value| check["last_run"]["started_at"].to_string();
    let mut last = started(daemon.check("steady").await);
    for next in 1..=more {
        support::wait_until(
            &format!("run {next} of the steady check from now"),
            Duration::from_secs(20),
            || async { started(daemon.check("steady").await) != last },
        )
        .await;
        last = started(daemon.check("steady").await);
        let livez = tokio::time::timeout(LIVEZ_WAIT, daemon.get("/livez")).await;
        assert!(matches!(livez, Ok(Some((200, _)))), "{livez:?}");
    }
}

/// `tls.pem_file` and a Key Vault check's `federated_token_file` were read
/// with blocking calls on the async workers: a FIFO there froze the
/// daemon, `/dev/zero` grew memory without bound. Now each run ends as
/// `error` naming the file while the rest keeps its schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_and_endless_pem_and_token_files_stop_only_their_own_check() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    let vault = support::key_vault::FakeKeyVault::start().await;
    let dir = tempfile::tempdir().unwrap();
    vault.write_ca(dir.path());
    let pem_fifo = fifo(dir.path(), "tls.crt");
    let token_fifo = fifo(dir.path(), "azure-identity-token");
    let key_vault = |token: &str| {
        format!(
            "{{ key_vault: {{ url: \"{url}\", ca_file: ca.pem, auth: workload_identity, tenant_id: {tenant}, client_id: {client}, authority_host: \"{url}\", federated_token_file: \"{token}\" }}, secrets: [{{ name: jwt-secret }}] }}",
            url = vault.url(),
            tenant = support::key_vault::TENANT,
            client = support::key_vault::CLIENT_ID,
        )
    };
    let config = dir.path().join("vouch.yaml");
    std::fs::write(
        &config,
        format!(
            "defaults: {{ interval: 1s, timeout: 1s }}\nchecks:\n\
             \x20 - name: steady\n    http: {{ url: \"{}\" }}\n\
             \x20 - name: pem-fifo\n    tls: {{ pem_file: \"{}\" }}\n\
             \x20 - name: pem-endless\n    tls: {{ pem_file: /dev/zero }}\n\
             \x20 - name: token-fifo\n    secret_age: {}\n\
             \x20 - name: token-endless\n    secret_age: {}\n",
            server.url("/ok"),
            pem_fifo.display(),
            key_vault(&token_fifo.display().to_string()),
            key_vault("/dev/zero"),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config).await;
    steady_keeps_running(&daemon, 3).await;
    support::wait_until("a pass of the steady check", VERDICT_WAIT, || async {
        daemon.check("steady").await["state"] == "pass"
    })
    .await;
    // A blocked read: the run's timeout names the file being read, later
    // runs fail at once naming it.
    let blocked = ["no result within 1s (reading", "a hung mount"];
    for (name, file, why) in [
        ("pem-fifo", pem_fifo.display().to_string(), &blocked[..]),
        ("pem-endless", "/dev/zero".to_string(), &["larger than"][..]),
        ("token-fifo", token_fifo.display().to_string(), &blocked[..]),
        (
            "token-endless",
            "/dev/zero".to_string(),
            &["larger than"][..],
        ),
    ] {
        let check = daemon.wait_for_result(name, VERDICT_WAIT).await;
        assert_eq!(check["state"], "error", "{check}");
        let message = check["last_run"]["message"].as_str().unwrap();
        assert!(
            message.contains(&file) && why.iter().any(|w| message.contains(w)),
            "{name}: {message}"
        );
    }
    release(&pem_fifo);
    release(&token_fifo);
}

/// A `ca_file` (read when a check is built) and a kubeconfig that block
/// or never end: `vouch validate` and `vouch serve` refuse them within
/// seconds naming the file and key; a reload naming them is rejected the
/// same way while the checks in force keep their schedule and /livez
/// answers (before: the reload, or validate, waited forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_and_endless_ca_files_and_kubeconfigs_are_config_problems() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    let dir = tempfile::tempdir().unwrap();
    let ca_fifo = fifo(dir.path(), "ca.pem");
    let kube_fifo = fifo(dir.path(), "kubeconfig");
    let steady = format!(
        "defaults: {{ interval: 1s, timeout: 1s }}\nchecks:\n  - name: steady\n    http: {{ url: \"{}\" }}\n",
        server.url("/ok")
    );
    let with_ca = |ca: &str| {
        format!(
            "{steady}  - name: pinned\n    http: {{ url: \"{}\", ca_file: \"{ca}\" }}\n",
            server.url("/ok")
        )
    };
    let with_kubeconfig = |kubeconfig: &str| {
        format!("kubernetes: {{ kubeconfig: \"{kubeconfig}\" }}\n{steady}  - name: api\n    kubernetes: {{ deployment: prod/api }}\n")
    };
    let cases = [
        (
            with_ca(&ca_fifo.display().to_string()),
            ca_fifo.display().to_string(),
            "checks[1].http.ca_file",
            "a hung mount",
        ),
        (
            with_ca("/dev/zero"),
            "/dev/zero".to_string(),
            "checks[1].http.ca_file",
            "larger than",
        ),
        (
            with_kubeconfig(&kube_fifo.display().to_string()),
            kube_fifo.display().to_string(),
            "kubernetes.kubeconfig",
            "a hung mount",
        ),
        (
            with_kubeconfig("/dev/zero"),
            "/dev/zero".to_string(),
            "kubernetes.kubeconfig",
            "larger than",
        ),
    ];
    let config = dir.path().join("vouch.yaml");
    for (yaml, file, key, why) in &cases {
        std::fs::write(&config, yaml).unwrap();
        for command in ["validate", "serve"] {
            let out = tokio::time::timeout(
                Duration::from_secs(30),
                vouch(&[command, "--config", config.to_str().unwrap()]),
            )
            .await
            .unwrap_or_else(|_| panic!("{command} did not end: {file}"));
            let (code, stderr) = out;
            assert_eq!(code, Some(2), "{command}: {stderr}");
            assert!(
                stderr.contains(key) && stderr.contains(file) && stderr.contains(why),
                "{command}: {stderr}"
            );
        }
    }

    std::fs::write(&config, &steady).unwrap();
    let daemon = Daemon::start(&config).await;
    for (rejected, (yaml, file, key, _)) in cases.iter().enumerate() {
        std::fs::write(&config, yaml).unwrap();
        daemon.signal("HUP");
        // The reload waits on the file; meanwhile the daemon runs on.
        steady_keeps_running(&daemon, 2).await;
        support::wait_until(
            "the reload to be rejected",
            Duration::from_secs(30),
            || async { daemon.logs().matches("config reload rejected").count() > rejected },
        )
        .await;
        let logs = daemon.logs();
        assert!(logs.contains(key) && logs.contains(file), "{logs}");
    }
    assert_eq!(daemon.check_names().await, ["steady"]);
    release(&ca_fifo);
    release(&kube_fifo);
}

/// The config itself on SIGHUP: a FIFO (a hung mount) and a file near the
/// size cap are read and parsed off the loop that answers signals, so
/// serving and the schedule go on, and SIGTERM still ends the daemon
/// while the reload is stuck (before: the loop blocked on the read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_or_huge_config_on_reload_stalls_nothing() {
    let server = TestServer::http().await;
    server.route("/ok", Reply::text(200, "ok"));
    let steady = format!(
        "defaults: {{ interval: 1s, timeout: 1s }}\nchecks:\n  - name: steady\n    http: {{ url: \"{}\" }}\n",
        server.url("/ok")
    );
    let config = write_config(&steady);
    let mut daemon = Daemon::start(&config.path).await;

    // 8 MiB of checks the decoder reads whole before it finds the one
    // unknown key at the end.
    let mut huge = steady.clone();
    let line = "  - { name: n, http: { url: \"http://127.0.0.1:1/\" } }\n";
    while huge.len() < 8 << 20 {
        huge.push_str(line);
    }
    huge.push_str("unknown_key: 1\n");
    std::fs::write(&config.path, &huge).unwrap();
    daemon.signal("HUP");
    steady_keeps_running(&daemon, 2).await;
    support::wait_until(
        "the huge reload to be rejected",
        Duration::from_secs(120),
        || async { daemon.logs().contains("config reload rejected") },
    )
    .await;

    std::fs::remove_file(&config.path).unwrap();
    let fifo = fifo(config.dir.path(), "vouch.yaml");
    daemon.signal("HUP");
    steady_keeps_running(&daemon, 3).await;
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", daemon.logs());
    release(&fifo);
}
