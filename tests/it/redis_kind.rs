//! The `redis` kind against a real redis-server started by the test: every
//! expectation passing and failing (memory, the hit-ratio and eviction
//! window, persistence, role), the faults (stopped, restarted, wrong
//! password, a paused server), TLS, and the config problems of a `redis:`
//! block. Checks run in-process through the plan and the runner; a check
//! run several times is one planned check, as in the daemon.
use crate::support;

use support::kind::{self, expect, CLIENTS};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use support::certs::{TestCa, Validity};
use support::redis::Redis;
use support::vouch::VERDICT_WAIT;
use support::wait_until;
use vouch::plan::PlannedCheck;
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::run_once;

fn config_yaml(timeout: &str, block: &str) -> String {
    kind::one_check_yaml("redis", timeout, block)
}

/// A planned check reading its URL from the file `url` (holding `url`) in
/// `dir`, plus the keys of `block`.
fn plan_check(dir: &Path, url: &str, timeout: &str, block: &str) -> Arc<PlannedCheck> {
    std::fs::write(dir.join("url"), format!("{url}\n")).unwrap();
    let yaml = config_yaml(timeout, &format!("url_file: url\n{block}"));
    kind::plan(&yaml, dir)
}

/// One planned check against `redis`, kept for several runs.
struct Check {
    check: Arc<PlannedCheck>,
    _dir: tempfile::TempDir,
}

impl Check {
    fn new(redis: &Redis, block: &str) -> Check {
        Self::with_url(&redis.url(), "10s", block)
    }

    fn with_url(url: &str, timeout: &str, block: &str) -> Check {
        let dir = tempfile::tempdir().unwrap();
        Check {
            check: plan_check(dir.path(), url, timeout, block),
            _dir: dir,
        }
    }

    async fn run(&self) -> Outcome {
        run_once(self.check.clone(), CLIENTS.clone()).await.outcome
    }
}

/// The config error of a `redis:` block that must not decode or plan.
fn config_error(block: &str) -> String {
    kind::config_error(&config_yaml("10s", block))
}

fn measured(outcome: &Outcome, name: &str) -> Option<f64> {
    outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == name)
        .map(|m| m.value)
}

async fn info_field(connection: &mut redis::aio::MultiplexedConnection, key: &str) -> String {
    let info: String = redis::cmd("INFO").query_async(connection).await.unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

async fn command(connection: &mut redis::aio::MultiplexedConnection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let _: redis::Value = cmd.query_async(connection).await.unwrap();
}

/// GETs `key` `times` times.
async fn lookups(connection: &mut redis::aio::MultiplexedConnection, key: &str, times: usize) {
    for _ in 0..times {
        let _: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(connection)
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------- healthy

#[tokio::test]
async fn a_healthy_server_passes_with_every_measurement() {
    let redis = Redis::start_new();
    let outcome = Check::new(&redis, "max_memory_used: 90%").run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "PONG in ");
    // maxmemory 0 means unlimited: said, never divided by.
    assert!(
        outcome
            .message
            .contains("maxmemory 0 (unlimited): max_memory_used 90% not judged"),
        "{}",
        outcome.message
    );
    assert_eq!(measured(&outcome, "vouch_redis_up"), Some(1.0));
    assert_eq!(
        measured(&outcome, "vouch_redis_memory_max_bytes"),
        Some(0.0)
    );
    assert_eq!(measured(&outcome, "vouch_redis_memory_used_ratio"), None);
    assert!(measured(&outcome, "vouch_redis_memory_used_bytes").unwrap() > 0.0);
    assert!(measured(&outcome, "vouch_redis_ping_seconds").is_some());
    assert_eq!(
        measured(&outcome, "vouch_redis_connected_clients"),
        Some(1.0)
    );
    assert_eq!(measured(&outcome, "vouch_redis_blocked_clients"), Some(0.0));
    assert_eq!(measured(&outcome, "vouch_redis_aof_enabled"), Some(0.0));
    assert_eq!(measured(&outcome, "vouch_redis_loading"), Some(0.0));
    let role = outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == "vouch_redis_role_info")
        .unwrap();
    assert_eq!(role.label_values(), ["master"]);
}

// ---------------------------------------------------------------- memory

#[tokio::test]
async fn memory_filled_past_the_limit_fails_with_both_sizes() {
    let redis = Redis::with_args(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let check = Check::new(&redis, "max_memory_used: 90%");
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "of maxmemory 4MiB");

    let mut connection = redis.connection(None).await;
    let value = "x".repeat(16 * 1024);
    for i in 0..400 {
        let written: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("fill:{i}"))
            .arg(&value)
            .query_async(&mut connection)
            .await;
        let used: f64 = info_field(&mut connection, "used_memory")
            .await
            .parse()
            .unwrap();
        if written.is_err() || used > 0.93 * 4_194_304.0 {
            break;
        }
    }
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Memory,
        "of maxmemory 4MiB (",
    );
    assert!(
        outcome.message.ends_with("limit 90%"),
        "{}",
        outcome.message
    );
    assert!(measured(&outcome, "vouch_redis_memory_used_ratio").unwrap() > 0.9);
    assert_eq!(
        measured(&outcome, "vouch_redis_memory_max_bytes"),
        Some(4_194_304.0)
    );
}

#[tokio::test]
async fn maxmemory_must_be_the_expected_size_and_unlimited_fails_it() {
    // Redis's `1gb` is 1024³ bytes: `1GiB` in vouch's sizes.
    let redis = Redis::with_args(&["--maxmemory", "1gb"]);
    let check = Check::new(&redis, "maxmemory: 1GiB\nmax_memory_used: 90%");
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "of maxmemory 1GiB");

    let mut connection = redis.connection(None).await;
    command(&mut connection, &["CONFIG", "SET", "maxmemory", "512mb"]).await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Memory,
        "maxmemory 512MiB, expected 1GiB",
    );

    // Unlimited is not "nothing to judge": max_memory_used cannot be
    // judged then, and maxmemory says so with a failure.
    command(&mut connection, &["CONFIG", "SET", "maxmemory", "0"]).await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Memory,
        "maxmemory 0 (unlimited), expected 1GiB",
    );

    command(&mut connection, &["CONFIG", "SET", "maxmemory", "1gb"]).await;
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "of maxmemory 1GiB",
    );
}

// ---------------------------------------------------------------- hit ratio window

#[tokio::test]
async fn the_hit_ratio_is_judged_over_the_window_since_the_previous_run() {
    let redis = Redis::start_new();
    let mut connection = redis.connection(None).await;
    command(&mut connection, &["SET", "present", "1"]).await;
    let check = Check::new(&redis, "min_hit_ratio: 0.8\nmin_lookups: 10");

    // The first window is the server's lifetime so far: 20 hits.
    lookups(&mut connection, "present", 20).await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "hit ratio 100% over the window (20 hits, 0 misses)",
    );
    assert_eq!(measured(&outcome, "vouch_redis_hit_ratio"), Some(1.0));

    // A window of misses fails, although the lifetime ratio is 20/40.
    lookups(&mut connection, "absent", 20).await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::HitRatio,
        "hit ratio 0% over the window (0 hits, 20 misses), minimum 80%",
    );
    assert_eq!(measured(&outcome, "vouch_redis_hit_ratio"), Some(0.0));

    // Too few lookups to judge: no flap, and no ratio exported.
    lookups(&mut connection, "absent", 3).await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "hit ratio not judged: 3 lookups in the window, fewer than min_lookups 10",
    );
    assert_eq!(measured(&outcome, "vouch_redis_hit_ratio"), None);

    // A good window passes again.
    lookups(&mut connection, "present", 9).await;
    lookups(&mut connection, "absent", 1).await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "hit ratio 90% over the window (9 hits, 1 misses)",
    );
}

#[tokio::test]
async fn a_restarted_server_starts_a_new_window() {
    let mut redis = Redis::start_new();
    let check = Check::new(&redis, "min_hit_ratio: 0.8\nmin_lookups: 5");
    {
        let mut connection = redis.connection(None).await;
        command(&mut connection, &["SET", "present", "1"]).await;
        lookups(&mut connection, "present", 30).await;
    }
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "30 hits");
    redis.stop();
    redis.start();
    // Counters began again at 0; the window is not "negative".
    let mut connection = redis.connection(None).await;
    lookups(&mut connection, "absent", 6).await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::HitRatio,
        "(0 hits, 6 misses)",
    );
}

#[tokio::test]
async fn evictions_in_the_window_over_the_limit_fail() {
    let redis = Redis::with_args(&["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"]);
    let check = Check::new(&redis, "max_evictions: 0");
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "");

    let mut connection = redis.connection(None).await;
    let value = "x".repeat(16 * 1024);
    for i in 0..1000 {
        command(&mut connection, &["SET", &format!("fill:{i}"), &value]).await;
        if info_field(&mut connection, "evicted_keys").await != "0" {
            break;
        }
    }
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Evictions,
        "keys evicted in the window, limit 0",
    );
    assert!(measured(&outcome, "vouch_redis_evicted_keys").unwrap() >= 1.0);
    // Nothing evicted since: the next window is clean.
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "");
    assert_eq!(measured(&outcome, "vouch_redis_evicted_keys"), Some(0.0));
}

// ---------------------------------------------------------------- persistence

#[tokio::test]
async fn aof_required_but_off_fails_until_it_is_turned_on() {
    let redis = Redis::start_new();
    let check = Check::new(&redis, "aof: enabled");
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Persistence,
        "AOF is disabled, expected enabled",
    );
    assert_eq!(measured(&outcome, "vouch_redis_aof_enabled"), Some(0.0));

    let mut connection = redis.connection(None).await;
    command(&mut connection, &["CONFIG", "SET", "appendonly", "yes"]).await;
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "");
    assert_eq!(measured(&outcome, "vouch_redis_aof_enabled"), Some(1.0));
    assert_eq!(
        measured(&outcome, "vouch_redis_aof_last_write_success"),
        Some(1.0)
    );
}

#[tokio::test]
async fn an_old_rdb_save_fails_and_a_fresh_bgsave_passes() {
    let redis = Redis::start_new();
    let mut connection = redis.connection(None).await;
    // Without saves, the last save time is the server's start: wait until
    // that is more than a second ago.
    wait_until(
        "the server to be up for 2s",
        Duration::from_secs(10),
        || {
            let mut connection = connection.clone();
            async move {
                info_field(&mut connection, "uptime_in_seconds")
                    .await
                    .parse::<u64>()
                    .unwrap_or(0)
                    >= 2
            }
        },
    )
    .await;
    let check = Check::new(&redis, "max_last_save_age: 1s");
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Persistence,
        "ago, limit 1s",
    );
    assert!(measured(&outcome, "vouch_redis_last_save_age_seconds").unwrap() >= 1.0);

    let before = info_field(&mut connection, "rdb_last_save_time").await;
    command(&mut connection, &["BGSAVE"]).await;
    wait_until("the BGSAVE to finish", Duration::from_secs(20), || {
        let mut connection = connection.clone();
        let before = before.clone();
        async move {
            info_field(&mut connection, "rdb_bgsave_in_progress").await == "0"
                && info_field(&mut connection, "rdb_last_save_time").await != before
        }
    })
    .await;
    let outcome = Check::new(&redis, "max_last_save_age: 1h").run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "");
    assert_eq!(
        measured(&outcome, "vouch_redis_last_bgsave_success"),
        Some(1.0)
    );
}

// ---------------------------------------------------------------- replication

#[tokio::test]
async fn role_and_replica_link_are_checked() {
    let mut primary = Redis::start_new();
    expect(
        &Check::new(&primary, "role: replica").run().await,
        Verdict::Fail,
        Reason::Role,
        "role master, expected replica",
    );
    expect(
        &Check::new(&primary, "role: master").run().await,
        Verdict::Pass,
        Reason::Ok,
        "",
    );

    let port = primary.port.to_string();
    let replica = Redis::with_args(&["--replicaof", "127.0.0.1", &port]);
    let mut connection = replica.connection(None).await;
    wait_until(
        "the replica's link to come up",
        Duration::from_secs(20),
        || {
            let mut connection = connection.clone();
            async move { info_field(&mut connection, "master_link_status").await == "up" }
        },
    )
    .await;
    let check = Check::new(&replica, "role: replica");
    let outcome = check.run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "");
    assert_eq!(measured(&outcome, "vouch_redis_master_link_up"), Some(1.0));

    primary.stop();
    wait_until(
        "the replica's link to go down",
        Duration::from_secs(20),
        || {
            let mut connection = connection.clone();
            async move { info_field(&mut connection, "master_link_status").await == "down" }
        },
    )
    .await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Role,
        "replica's link to its master is down",
    );
    let _ = info_field(&mut connection, "role").await;
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn a_stopped_server_is_refused_and_a_restarted_one_passes_again() {
    let mut redis = Redis::start_new();
    let check = Check::with_url(&redis.url(), "5s", "max_memory_used: 90%");
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "");

    redis.stop();
    let down = run_once(check.check.clone(), CLIENTS.clone()).await;
    expect(
        &down.outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        &format!("connection to 127.0.0.1:{} refused", redis.port),
    );
    // Refused at once, not after the 5s timeout.
    assert!(
        down.duration < Duration::from_secs(1),
        "{:?}",
        down.duration
    );
    assert_eq!(measured(&down.outcome, "vouch_redis_up"), Some(0.0));

    redis.start();
    let again = check.run().await;
    expect(&again, Verdict::Pass, Reason::Ok, "");
    assert_eq!(measured(&again, "vouch_redis_up"), Some(1.0));
}

#[tokio::test]
async fn a_server_loading_its_data_set_fails_as_loading() {
    // A real load: 3000 keys saved to the RDB, read back at 2ms a key
    // (redis-server's key-load-delay), serving clients between every
    // kilobyte read. PING answers -LOADING for those 6s; INFO answers.
    let mut redis = Redis::start_new();
    let mut connection = redis.connection(None).await;
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.set(format!("key:{i}"), i).ignore();
    }
    let () = pipe.query_async(&mut connection).await.unwrap();
    command(&mut connection, &["SAVE"]).await;
    redis.restart_with(&[
        "--key-load-delay",
        "2000",
        "--loading-process-events-interval-bytes",
        "1024",
    ]);
    let outcome = Check::new(&redis, "").run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Loading,
        "the server is loading its data set",
    );
    assert_eq!(measured(&outcome, "vouch_redis_loading"), Some(1.0));
    assert_eq!(measured(&outcome, "vouch_redis_up"), Some(1.0));
}

#[tokio::test]
async fn an_unreachable_address_is_a_connect_error() {
    // The kernel refuses TCP to a multicast address (ENETUNREACH).
    let outcome = Check::with_url("redis://224.0.0.1:6379/", "10s", "")
        .run()
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Connect,
        "cannot connect to 224.0.0.1:6379: Network is unreachable",
    );
}

#[tokio::test]
async fn a_server_that_does_not_speak_redis_is_a_protocol_error() {
    // Every connection is answered with a line that is no RESP reply.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        }
    });
    let outcome = Check::with_url(&format!("redis://127.0.0.1:{port}/"), "10s", "")
        .run()
        .await;
    expect(&outcome, Verdict::Error, Reason::Protocol, "Parse error");
    server.abort();
}

#[tokio::test]
async fn an_unreadable_url_file_is_a_secret_error() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_yaml("10s", "url_file: absent-url");
    let outcome = run_once(kind::plan(&yaml, dir.path()), CLIENTS.clone())
        .await
        .outcome;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Secret,
        "cannot read secret file",
    );
    assert!(
        outcome.message.contains("absent-url"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn acl_user_and_password_pass_and_a_wrong_password_is_an_auth_error() {
    let redis = Redis::start_new();
    let mut admin = redis.connection(None).await;
    command(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "vouch",
            "on",
            ">Right-redis-pw",
            "+@all",
            "~*",
        ],
    )
    .await;
    command(&mut admin, &["ACL", "SETUSER", "default", "off"]).await;

    // User and password beside the URL.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "Right-redis-pw\n").unwrap();
    let check = plan_check(
        dir.path(),
        &redis.url(),
        "10s",
        "username: vouch\npassword_file: password",
    );
    let outcome = run_once(check, CLIENTS.clone()).await.outcome;
    expect(&outcome, Verdict::Pass, Reason::Ok, "");

    // In the URL.
    let url = format!("redis://vouch:Right-redis-pw@127.0.0.1:{}/", redis.port);
    expect(
        &Check::with_url(&url, "10s", "").run().await,
        Verdict::Pass,
        Reason::Ok,
        "",
    );

    // Wrong, in the URL and beside it.
    let wrong = "Wr0ng-redis-Passw0rd";
    let wrong_url = format!("redis://vouch:{wrong}@127.0.0.1:{}/", redis.port);
    let outcome = Check::with_url(&wrong_url, "10s", "").run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        "Password authentication failed",
    );
    let json = serde_json::to_string(&outcome).unwrap();
    assert!(
        !json.contains(wrong) && !json.contains(&wrong_url),
        "{json}"
    );
    std::fs::write(dir.path().join("password"), format!("{wrong}\n")).unwrap();
    let check = plan_check(
        dir.path(),
        &redis.url(),
        "10s",
        "username: vouch\npassword_file: password",
    );
    let outcome = run_once(check, CLIENTS.clone()).await.outcome;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        "Password authentication failed",
    );
    assert!(!outcome.message.contains(wrong), "{}", outcome.message);

    // No credentials at all, where the default user is off.
    expect(
        &Check::new(&redis, "").run().await,
        Verdict::Error,
        Reason::Auth,
        "NOAUTH",
    );

    // Through the binary: no output holds the password or the URL.
    let config = support::write_config(
        "checks:\n  - name: cache\n    redis:\n      url_env: VOUCH_REDIS_TEST_URL\n",
    );
    for format in ["json", "table"] {
        let out = tokio::process::Command::new(support::vouch::bin())
            .args(["check", "--config"])
            .arg(&config.path)
            .args(["--format", format])
            .env("VOUCH_REDIS_TEST_URL", &wrong_url)
            .env("RUST_LOG", "debug")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        assert!(stdout.contains("auth"), "{stdout}");
        for text in [&stdout, &stderr] {
            assert!(!text.contains(wrong), "the password leaked:\n{text}");
        }
    }
}

#[tokio::test]
async fn a_paused_server_times_out() {
    let redis = Redis::start_new();
    let mut admin = redis.connection(None).await;
    // A pause that outlasts the test; a 2s timeout leaves connecting (to
    // a listening loopback port) well inside it, so the stage named is
    // the command the paused server never answers.
    command(&mut admin, &["CLIENT", "PAUSE", "60000", "ALL"]).await;
    let check = Check::with_url(&redis.url(), "2s", "");
    let record = run_once(check.check.clone(), CLIENTS.clone()).await;
    expect(
        &record.outcome,
        Verdict::Error,
        Reason::Timeout,
        "no result within 2s (waiting for PING)",
    );
    // Ended by the check's timeout, not by the end of the pause.
    assert!(
        record.duration >= Duration::from_secs(2) && record.duration < Duration::from_secs(6),
        "{:?}",
        record.duration
    );
    // The server is killed when the test ends; UNPAUSE would itself wait
    // out the pause.
}

/// What a lying server answers to `INFO` (after answering every other
/// command as Redis would).
#[derive(Clone, Copy)]
enum Lie {
    /// A bulk string that says it is 64 MiB long, and is.
    HugeBulk,
    /// A simple string that never ends.
    Endless,
}

const HUGE: usize = 64 << 20;

/// A server on a random loopback port that speaks enough RESP to pass the
/// client's handshake and `PING`, then lies in its `INFO` answer. It counts
/// the bytes of the lie it got out before the client hung up.
struct Liar {
    port: u16,
    sent: Arc<std::sync::atomic::AtomicUsize>,
    ended: Arc<std::sync::atomic::AtomicBool>,
    _task: tokio::task::JoinHandle<()>,
}

impl Liar {
    async fn start(lie: Lie) -> Liar {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

        /// One command of the client (an array of bulk strings), upper-cased.
        async fn command<R: tokio::io::AsyncBufRead + Unpin>(
            reader: &mut R,
        ) -> Option<Vec<String>> {
            let mut line = String::new();
            if reader.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let count: usize = line.trim().strip_prefix('*')?.parse().ok()?;
            let mut args = Vec::new();
            for _ in 0..count {
                line.clear();
                reader.read_line(&mut line).await.ok()?;
                let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
                let mut data = vec![0; len + 2];
                reader.read_exact(&mut data).await.ok()?;
                args.push(String::from_utf8_lossy(&data[..len]).to_uppercase());
            }
            Some(args)
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicBool::new(false));
        let (sent_by_task, ended_by_task) = (sent.clone(), ended.clone());
        let task = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut read = BufReader::new(read);
            while let Some(args) = command(&mut read).await {
                match args.first().map(String::as_str) {
                    Some("PING") => write.write_all(b"+PONG\r\n").await.unwrap(),
                    Some("INFO") => break,
                    _ => write.write_all(b"+OK\r\n").await.unwrap(),
                }
            }
            let head: &[u8] = match lie {
                Lie::HugeBulk => b"$67108864\r\n",
                Lie::Endless => b"+",
            };
            let chunk = vec![b'x'; 64 << 10];
            if write.write_all(head).await.is_ok() {
                loop {
                    if matches!(lie, Lie::HugeBulk) && sent_by_task.load(Ordering::SeqCst) >= HUGE {
                        let _ = write.write_all(b"\r\n").await;
                        break;
                    }
                    if write.write_all(&chunk).await.is_err() {
                        break;
                    }
                    sent_by_task.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            }
            ended_by_task.store(true, Ordering::SeqCst);
        });
        Liar {
            port,
            sent,
            ended,
            _task: task,
        }
    }
}

#[tokio::test]
async fn a_lying_server_with_a_huge_or_endless_info_is_cut_off_at_the_limit() {
    use std::sync::atomic::Ordering;
    for lie in [Lie::HugeBulk, Lie::Endless] {
        let liar = Liar::start(lie).await;
        let check = Check::with_url(&format!("redis://127.0.0.1:{}/", liar.port), "20s", "");
        let outcome = check.run().await;
        expect(&outcome, Verdict::Error, Reason::TooLarge, "more than 1MiB");
        assert_eq!(measured(&outcome, "vouch_redis_up"), Some(0.0));
        // The client hung up long before the lie's end: what it read stayed
        // within the limit (what the liar got out includes the kernel's
        // socket buffers).
        wait_until(
            "the liar to see the client hang up",
            Duration::from_secs(10),
            || async { liar.ended.load(Ordering::SeqCst) },
        )
        .await;
        let sent = liar.sent.load(Ordering::SeqCst);
        assert!(sent < HUGE / 2, "the liar got {sent} bytes out");
    }
}

// ---------------------------------------------------------------- TLS

#[tokio::test]
async fn rediss_with_a_private_ca_passes_and_without_it_is_an_unknown_issuer() {
    let ca = TestCa::new("vouch redis test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_path = ca.write_pem(dir.path());
    let (cert, key) = support::pem::write_identity(
        &ca.issue(&["localhost", "127.0.0.1"], Validity::ValidFor { days: 30 }),
        dir.path(),
    );
    let tls_port = support::free_port().to_string();
    let redis = Redis::with_args(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-ca-cert-file",
        ca_path.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ]);
    // 127.0.0.1, where the server listens (the certificate names it too).
    let url = format!("rediss://127.0.0.1:{tls_port}/");
    let with_ca = format!("ca_file: {}", ca_path.display());
    let outcome = Check::with_url(&url, "10s", &with_ca).run().await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "PONG");

    let outcome = Check::with_url(&url, "10s", "").run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TlsUnknownIssuer,
        "the server's certificate does not lead to a trusted root (UnknownIssuer)",
    );

    // ca_file with a plain URL is a mistake the run reports.
    let outcome = Check::new(&redis, &with_ca).run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Tls,
        "ca_file is given but the URL is not rediss://",
    );
}

// ---------------------------------------------------------------- config

#[test]
fn url_and_password_sources_are_exclusive() {
    assert_eq!(
        config_error("url_file: url\nurl_env: REDIS_URL"),
        "test.yaml:6: checks[0].redis.url_env: give url_file or url_env, not both"
    );
    assert_eq!(
        config_error("url_env: REDIS_URL\npassword_file: pw\npassword_env: REDIS_PASSWORD"),
        "test.yaml:7: checks[0].redis.password_env: give password_file or password_env, not both"
    );
    assert_eq!(
        config_error("max_memory_used: 90%"),
        "test.yaml:4: checks[0].redis: needs url_file or url_env (the URL may hold a password)"
    );
}

#[test]
fn bad_values_are_config_errors() {
    let err = config_error("url_env: REDIS_URL\nmin_hit_ratio: 1.5");
    assert!(
        err.starts_with("test.yaml:6: checks[0].redis.min_hit_ratio: invalid ratio \"1.5\""),
        "{err}"
    );
    let err = config_error("url_env: REDIS_URL\naof: yes");
    assert!(
        err.starts_with("test.yaml:6: checks[0].redis.aof: "),
        "{err}"
    );
    let err = config_error("url_env: REDIS_URL\nmaxmemory: lots");
    assert!(
        err.starts_with("test.yaml:6: checks[0].redis.maxmemory: "),
        "{err}"
    );
    let err = config_error("url_env: REDIS_URL\nrole: leader");
    assert!(
        err.starts_with("test.yaml:6: checks[0].redis.role: unknown variant `leader`"),
        "{err}"
    );
}

// ---------------------------------------------------------------- daemon

#[tokio::test]
async fn the_daemon_exports_every_redis_measure_and_keeps_the_window() {
    let password = "Daemon-redis-pw";
    let mut redis = Redis::with_args(&["--maxmemory", "64mb", "--requirepass", password]);
    let mut connection = redis.connection(Some(("default", password))).await;
    command(&mut connection, &["SET", "present", "1"]).await;
    lookups(&mut connection, "present", 5).await;
    let config = support::write_config(
        "checks:\n  - name: cache\n    interval: 1s\n    timeout: 900ms\n    redis:\n      url_env: VOUCH_REDIS_DAEMON_URL\n      password_env: VOUCH_REDIS_DAEMON_PASSWORD\n      min_hit_ratio: 0.8\n      min_lookups: 1\n",
    );
    let url = redis.url();
    let daemon = support::vouch::Daemon::start_with_env(
        &config.path,
        &[
            ("VOUCH_REDIS_DAEMON_URL", &url),
            ("VOUCH_REDIS_DAEMON_PASSWORD", password),
        ],
    )
    .await;
    // Awaited, not read from the first run: on a loaded machine one run
    // may take longer than its timeout.
    wait_until("a passing run", VERDICT_WAIT, || async {
        daemon.check("cache").await["state"] == "pass"
    })
    .await;
    let metrics = daemon.get_ok("/metrics").await;
    for measure in vouch::result::Measure::ALL
        .iter()
        // Only a replica has a link to its master.
        .filter(|m| {
            m.name().starts_with("vouch_redis_") && m.name() != "vouch_redis_master_link_up"
        })
    {
        assert!(
            metrics.contains(&format!("# TYPE {} gauge", measure.name())),
            "{} missing:\n{metrics}",
            measure.name()
        );
    }
    // Misses between two runs of the daemon fail the next window.
    lookups(&mut connection, "absent", 10).await;
    wait_until("a hit_ratio failure", VERDICT_WAIT, || async {
        daemon.check("cache").await["last_run"]["reason"] == "hit_ratio"
    })
    .await;
    // Stopped, then back: the daemon recovers by itself.
    redis.stop();
    wait_until("an error run", VERDICT_WAIT, || async {
        daemon.check("cache").await["last_run"]["reason"] == "connection_refused"
    })
    .await;
    redis.start();
    wait_until("a passing run again", VERDICT_WAIT, || async {
        daemon.check("cache").await["state"] == "pass"
    })
    .await;
    let everything = format!(
        "{}{}{}",
        daemon.get_ok("/metrics").await,
        daemon.get_ok("/api/v1/checks").await,
        daemon.logs()
    );
    assert!(!everything.contains(password), "the password leaked");
}

/// Runs of `check` counted on /metrics, every verdict and reason summed.
async fn runs_of(daemon: &support::vouch::Daemon, check: &str) -> f64 {
    let metrics = daemon.get_ok("/metrics").await;
    let label = format!("check=\"{check}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("vouch_check_runs_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_paused_server_times_out_while_other_checks_keep_their_schedule() {
    let paused = Redis::start_new();
    let healthy = Redis::start_new();
    let config = support::write_config(
        "defaults: { interval: 2s, timeout: 2s }\nchecks:\n  - name: paused\n    redis: { url_env: VOUCH_REDIS_PAUSED_URL }\n  - name: healthy\n    redis: { url_env: VOUCH_REDIS_HEALTHY_URL }\n",
    );
    let daemon = support::vouch::Daemon::start_with_env(
        &config.path,
        &[
            ("VOUCH_REDIS_PAUSED_URL", &paused.url()),
            ("VOUCH_REDIS_HEALTHY_URL", &healthy.url()),
        ],
    )
    .await;
    daemon
        .wait_for_result("paused", Duration::from_secs(20))
        .await;
    let mut admin = paused.connection(None).await;
    // Paused longer than the test can last: its last assertion must still
    // see the pause. Timeouts of 2s, not 500ms: the healthy server must
    // answer within one on a loaded host.
    command(&mut admin, &["CLIENT", "PAUSE", "120000", "ALL"]).await;
    wait_until("a timeout of the paused check", VERDICT_WAIT, || async {
        daemon.check("paused").await["last_run"]["reason"] == "timeout"
    })
    .await;
    // While the paused server hangs every run, the other check runs on
    // its interval and passes.
    let before = runs_of(&daemon, "healthy").await;
    wait_until(
        "two more runs of the healthy check",
        Duration::from_secs(20),
        || async { runs_of(&daemon, "healthy").await >= before + 2.0 },
    )
    .await;
    wait_until("the healthy check passing", VERDICT_WAIT, || async {
        daemon.check("healthy").await["state"] == "pass"
    })
    .await;
    let paused_check = daemon.check("paused").await;
    assert_eq!(
        paused_check["last_run"]["reason"], "timeout",
        "{paused_check}"
    );
    // The server is killed when the test ends; UNPAUSE would itself wait
    // out the pause.
}
