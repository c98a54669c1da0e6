//! The `postgres` kind against a real PostgreSQL started by the test: every
//! expectation passing and failing, the faults (stopped, restarted, wrong
//! password, a lock that hangs the check's query), the measurements, and
//! the config problems of a `postgres:` block. Checks run in-process
//! through the plan and the runner, as `vouch check` runs them.
use crate::support;

use support::kind::{self, expect, CLIENTS};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use support::certs::{TestCa, Validity};
use support::postgres::{Postgres, PASSWORD};
use support::wait_until;
use vouch::config::SourcedConfig;
use vouch::plan::{Plan, PlannedCheck};
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::{run_once, RunRecord};

fn config_yaml(timeout: &str, block: &str) -> String {
    kind::one_check_yaml("postgres", timeout, block)
}

/// A planned check whose URL file (`url` in `dir`) holds `url`.
fn plan_check(dir: &Path, url: &str, timeout: &str, block: &str) -> Arc<PlannedCheck> {
    std::fs::write(dir.join("url"), format!("{url}\n")).unwrap();
    let yaml = config_yaml(
        timeout,
        &format!("url_file: url\ntls: disable\n{}", kind::unindent(block)),
    );
    kind::plan(&yaml, dir)
}

/// Runs a `postgres:` block against `pg` once with a 10s timeout.
async fn run(pg: &Postgres, block: &str) -> Outcome {
    run_record(pg, "10s", block).await.outcome
}

async fn run_record(pg: &Postgres, timeout: &str, block: &str) -> RunRecord {
    let dir = tempfile::tempdir().unwrap();
    let check = plan_check(dir.path(), &pg.url(), timeout, block);
    run_once(check, CLIENTS.clone()).await
}

/// The config error of a `postgres:` block that must not decode or plan.
fn config_error(block: &str) -> String {
    kind::config_error(&config_yaml("10s", block))
}

fn measured(outcome: &Outcome, name: &str, labels: &[&str]) -> Option<f64> {
    outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == name && (labels.is_empty() || m.label_values() == labels))
        .map(|m| m.value)
}

/// Waits until `pg_stat_activity` shows a session (not `observer`'s) in
/// `state` for longer than `seconds`, matched by its query text.
async fn wait_for_session(
    observer: &tokio_postgres::Client,
    query_like: &str,
    state: &str,
    seconds: f64,
) {
    wait_until(
        &format!("a session {state} for {seconds}s running {query_like}"),
        Duration::from_secs(20),
        || async {
            observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE query LIKE $1 AND state = $2 AND pid <> pg_backend_pid() \
                     AND extract(epoch FROM clock_timestamp() - coalesce(xact_start, query_start))::float8 > $3",
                    &[&query_like, &state, &seconds],
                )
                .await
                .map(|row| row.get::<_, i64>(0) > 0)
                .unwrap_or(false)
        },
    )
    .await;
}

// ---------------------------------------------------------------- healthy

#[tokio::test]
async fn a_healthy_server_passes_with_every_measurement() {
    let pg = Postgres::start_new();
    let outcome = run(
        &pg,
        "max_connections_used: 80%\nmax_query_age: 1s\nmax_transaction_age: 1s\nmax_database_size: 1GB",
    )
    .await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "PostgreSQL 1");
    assert_eq!(measured(&outcome, "vouch_postgres_up", &[]), Some(1.0));
    assert_eq!(
        measured(&outcome, "vouch_postgres_max_connections", &[]),
        Some(100.0)
    );
    // The check's own session is the only one, and it is active.
    assert_eq!(
        measured(&outcome, "vouch_postgres_connections", &["active"]),
        Some(1.0)
    );
    assert_eq!(
        measured(&outcome, "vouch_postgres_connections", &["idle"]),
        Some(0.0)
    );
    assert_eq!(
        measured(&outcome, "vouch_postgres_connections_used_ratio", &[]),
        Some(0.01)
    );
    assert!(measured(&outcome, "vouch_postgres_database_size_bytes", &[]).unwrap() > 1e6);
    let version = outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == "vouch_postgres_version_info")
        .expect("a version");
    assert!(
        version.label_values()[0].starts_with("1"),
        "{:?}",
        version.labels
    );
}

#[tokio::test]
async fn the_checks_own_session_never_counts_as_a_long_query() {
    let pg = Postgres::start_new();
    // Even a limit no running query could meet holds: the only query
    // running is the check's own.
    let outcome = run(&pg, "max_query_age: 1ms\nmax_transaction_age: 1ms").await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "longest query 0");
    assert_eq!(
        measured(&outcome, "vouch_postgres_longest_query_seconds", &[]),
        Some(0.0)
    );
}

// ---------------------------------------------------------------- thresholds

#[tokio::test]
async fn a_query_running_over_the_limit_fails_with_its_age() {
    let pg = Postgres::start_new();
    let sleeper = pg.session().await;
    let observer = pg.session().await;
    let sleeping = tokio::spawn(async move {
        let _ = sleeper.batch_execute("SELECT pg_sleep(60)").await;
        sleeper
    });
    wait_for_session(&observer, "SELECT pg_sleep%", "active", 1.2).await;

    let outcome = run(&pg, "max_query_age: 1s").await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::QueryAge,
        "longest running query ",
    );
    assert!(outcome.message.contains("limit 1s"), "{}", outcome.message);
    assert!(
        outcome.message.contains("1 queries over 1s"),
        "{}",
        outcome.message
    );
    assert!(measured(&outcome, "vouch_postgres_longest_query_seconds", &[]).unwrap() > 1.2);
    assert_eq!(
        measured(&outcome, "vouch_postgres_slow_queries", &[]),
        Some(1.0)
    );
    // A longer limit passes with the same session still running.
    let outcome = run(&pg, "max_query_age: 5m").await;
    expect(&outcome, Verdict::Pass, Reason::Ok, "");
    sleeping.abort();
}

#[tokio::test]
async fn a_transaction_open_over_the_limit_fails_with_its_age() {
    let pg = Postgres::start_new();
    let holder = pg.session().await;
    let observer = pg.session().await;
    holder
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .unwrap();
    wait_for_session(&observer, "BEGIN%", "idle in transaction", 1.2).await;

    let outcome = run(&pg, "max_transaction_age: 1s\nmax_query_age: 1s").await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::TransactionAge,
        "longest open transaction ",
    );
    assert!(measured(&outcome, "vouch_postgres_longest_transaction_seconds", &[]).unwrap() > 1.2);
    assert!(outcome.message.contains("limit 1s"), "{}", outcome.message);
    assert_eq!(
        measured(
            &outcome,
            "vouch_postgres_connections",
            &["idle_in_transaction"]
        ),
        Some(1.0)
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    expect(
        &run(&pg, "max_transaction_age: 1s").await,
        Verdict::Pass,
        Reason::Ok,
        "",
    );
}

#[tokio::test]
async fn connections_over_the_used_ratio_fail() {
    let pg = Postgres::with_settings(&[("max_connections", "10")]);
    let mut sessions = Vec::new();
    for _ in 0..2 {
        sessions.push(pg.session().await);
    }
    // 2 sessions and the check's own: 3 of 10.
    let outcome = run(&pg, "max_connections_used: 80%").await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "connections 3 of 10 (30%)",
    );

    for _ in 0..6 {
        sessions.push(pg.session().await);
    }
    // 8 sessions and the check's own: 9 of 10.
    let outcome = run(&pg, "max_connections_used: 80%").await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Connections,
        "connections 9 of max_connections 10 (90%), limit 80%",
    );
    assert_eq!(
        measured(&outcome, "vouch_postgres_connections_used_ratio", &[]),
        Some(0.9)
    );
    assert_eq!(
        measured(&outcome, "vouch_postgres_connections", &["idle"]),
        Some(8.0)
    );
}

#[tokio::test]
async fn connections_of_other_roles_count_for_a_check_without_privileges() {
    // PostgreSQL hides the type and state of other roles' sessions from a
    // role without pg_read_all_stats; max_connections counts them all.
    let pg = Postgres::with_settings(&[
        ("max_connections", "10"),
        ("superuser_reserved_connections", "0"),
    ]);
    pg.create_role("checker").await;
    pg.create_role("app").await;
    let mut sessions = vec![pg.session().await];
    for _ in 0..7 {
        sessions.push(pg.session_as("app").await);
    }
    // 7 of app, 1 of the superuser, and the check's own: 9 of 10.
    let dir = tempfile::tempdir().unwrap();
    let check = plan_check(
        dir.path(),
        &pg.url_for("checker"),
        "10s",
        "max_connections_used: 80%",
    );
    let outcome = run_once(check, CLIENTS.clone()).await.outcome;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Connections,
        "connections 9 of max_connections 10 (90%), limit 80%",
    );
    assert_eq!(
        measured(&outcome, "vouch_postgres_connections", &["unknown"]),
        Some(8.0)
    );
    assert_eq!(
        measured(&outcome, "vouch_postgres_connections", &["active"]),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_database_over_the_size_limit_fails_with_both_sizes() {
    let pg = Postgres::start_new();
    let outcome = run(&pg, "max_database_size: 1MB").await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::DatabaseSize,
        "database size ",
    );
    assert!(
        outcome.message.ends_with(", limit 1MB"),
        "{}",
        outcome.message
    );
}

async fn migrations(pg: &Postgres) {
    pg.session()
        .await
        .batch_execute(
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY); \
             INSERT INTO schema_migrations VALUES (20240101120000), (20240215090000); \
             CREATE TABLE _prisma_migrations (id serial, migration_name text); \
             INSERT INTO _prisma_migrations (migration_name) VALUES ('0001_init'), ('0002_orders');",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn migration_state_from_a_table_equals_or_is_at_least_a_value() {
    let pg = Postgres::start_new();
    migrations(&pg).await;
    let block = |expectation: &str| {
        format!("migration:\n  table: public.schema_migrations\n  column: version\n  {expectation}")
    };

    expect(
        &run(&pg, &block("equals: 20240215090000")).await,
        Verdict::Pass,
        Reason::Ok,
        "",
    );
    expect(
        &run(&pg, &block("at_least: 20240101120000")).await,
        Verdict::Pass,
        Reason::Ok,
        "",
    );
    // The deploy expects a migration that has not been applied.
    expect(
        &run(&pg, &block("equals: 20240301000000")).await,
        Verdict::Fail,
        Reason::Migration,
        "latest migration \"20240215090000\", expected \"20240301000000\"",
    );
    expect(
        &run(&pg, &block("at_least: 20240301000000")).await,
        Verdict::Fail,
        Reason::Migration,
        "latest migration \"20240215090000\", expected at least \"20240301000000\"",
    );
}

#[tokio::test]
async fn migration_state_from_a_query() {
    let pg = Postgres::start_new();
    migrations(&pg).await;
    let block = |expectation: &str| {
        format!(
            "migration:\n  query: SELECT migration_name FROM _prisma_migrations ORDER BY id DESC;\n  {expectation}"
        )
    };
    expect(
        &run(&pg, &block("equals: 0002_orders")).await,
        Verdict::Pass,
        Reason::Ok,
        "",
    );
    expect(
        &run(&pg, &block("at_least: 0003_refunds")).await,
        Verdict::Fail,
        Reason::Migration,
        "latest migration \"0002_orders\", expected at least \"0003_refunds\"",
    );
    // No migration applied at all.
    pg.session()
        .await
        .batch_execute("DELETE FROM _prisma_migrations")
        .await
        .unwrap();
    expect(
        &run(&pg, &block("at_least: 0001_init")).await,
        Verdict::Fail,
        Reason::Migration,
        "no migration applied",
    );
}

#[tokio::test]
async fn custom_assertions_pass_and_fail_and_are_measured() {
    let pg = Postgres::start_new();
    pg.session()
        .await
        .batch_execute(
            "CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 3);",
        )
        .await
        .unwrap();
    let block = |comparison: &str| {
        format!(
            "assertions:\n  - name: orders\n    query: SELECT count(*) FROM orders\n    expect: '{comparison}'\n  - name: no-negative-ids\n    query: SELECT count(*) FROM orders WHERE id < 0\n    expect: '== 0'"
        )
    };
    for passing in ["> 0", "== 3", "< 1000", ">= 3", "<= 3", "!= 4"] {
        let outcome = run(&pg, &block(passing)).await;
        expect(&outcome, Verdict::Pass, Reason::Ok, "");
        assert_eq!(
            measured(&outcome, "vouch_postgres_assertion_value", &["orders"]),
            Some(3.0)
        );
        assert_eq!(
            measured(
                &outcome,
                "vouch_postgres_assertion_value",
                &["no-negative-ids"]
            ),
            Some(0.0)
        );
    }
    let outcome = run(&pg, &block("> 5")).await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::Assertion,
        "assertion orders: value 3, expected > 5",
    );
    assert_eq!(
        measured(&outcome, "vouch_postgres_assertion_value", &["orders"]),
        Some(3.0)
    );
}

#[tokio::test]
async fn every_query_is_read_only() {
    let pg = Postgres::start_new();
    pg.session()
        .await
        .batch_execute("CREATE SEQUENCE s")
        .await
        .unwrap();
    let outcome = run(
        &pg,
        "assertions:\n  - name: writes\n    query: SELECT nextval('s')\n    expect: '> 0'",
    )
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Query,
        "read-only transaction",
    );
    // A data-modifying statement cannot even be given as a query.
    let outcome = run(
        &pg,
        "assertions:\n  - name: writes\n    query: WITH d AS (DELETE FROM pg_class RETURNING 1) SELECT count(*) FROM d\n    expect: '> 0'",
    )
    .await;
    expect(&outcome, Verdict::Error, Reason::Query, "");
}

#[tokio::test]
async fn an_assertion_returning_no_number_is_an_error() {
    let pg = Postgres::start_new();
    let outcome = run(
        &pg,
        "assertions:\n  - name: words\n    query: SELECT 'many'\n    expect: '> 0'",
    )
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Query,
        "assertion words: expected a number, the query returned \"many\"",
    );
    let outcome = run(
        &pg,
        "assertions:\n  - name: missing\n    query: SELECT count(*) FROM no_such_table\n    expect: '> 0'",
    )
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Query,
        "assertion missing: ERROR: relation \"no_such_table\" does not exist",
    );
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn a_stopped_server_is_refused_and_a_restarted_one_passes_again() {
    let mut pg = Postgres::start_new();
    let dir = tempfile::tempdir().unwrap();
    // One planned check, run again and again as the daemon does.
    let check = plan_check(dir.path(), &pg.url(), "5s", "max_connections_used: 80%");
    let first = run_once(check.clone(), CLIENTS.clone()).await;
    expect(&first.outcome, Verdict::Pass, Reason::Ok, "");

    pg.stop();
    let down = run_once(check.clone(), CLIENTS.clone()).await;
    expect(
        &down.outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        "onnection refused",
    );
    // Refused at once, not after the 5s timeout.
    assert!(
        down.duration < Duration::from_secs(1),
        "{:?}",
        down.duration
    );
    assert_eq!(measured(&down.outcome, "vouch_postgres_up", &[]), Some(0.0));

    pg.start();
    let again = run_once(check.clone(), CLIENTS.clone()).await;
    expect(&again.outcome, Verdict::Pass, Reason::Ok, "");
    assert_eq!(
        measured(&again.outcome, "vouch_postgres_up", &[]),
        Some(1.0)
    );
}

/// A TCP server on loopback that writes `answer` to every connection and
/// closes it (empty: says nothing and holds it open). Stops when dropped.
struct RawServer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    async fn start(answer: &'static [u8]) -> RawServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                if answer.is_empty() {
                    held.push(stream);
                } else {
                    use tokio::io::AsyncWriteExt;
                    let _ = stream.write_all(answer).await;
                }
            }
        });
        RawServer { port, task }
    }

    fn url(&self) -> String {
        format!("postgres://vouch:not-a-secret@127.0.0.1:{}/app", self.port)
    }
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_times_out() {
    // The connection is accepted and the startup message never answered.
    let silent = RawServer::start(b"").await;
    let dir = tempfile::tempdir().unwrap();
    let check = plan_check(dir.path(), &silent.url(), "2s", "");
    let record = run_once(check, CLIENTS.clone()).await;
    expect(
        &record.outcome,
        Verdict::Error,
        Reason::Timeout,
        "no result within 2s (connecting)",
    );
    assert!(
        record.duration >= Duration::from_secs(2) && record.duration < Duration::from_secs(6),
        "{:?}",
        record.duration
    );
}

#[tokio::test]
async fn a_server_that_breaks_the_startup_exchange_is_a_protocol_error() {
    // A well-formed message out of turn: ReadyForQuery ('Z', length 5,
    // idle) before any authentication.
    let liar = RawServer::start(b"Z\x00\x00\x00\x05I").await;
    let dir = tempfile::tempdir().unwrap();
    let check = plan_check(dir.path(), &liar.url(), "10s", "");
    let outcome = run_once(check, CLIENTS.clone()).await.outcome;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Protocol,
        "unexpected message from server",
    );
}

#[tokio::test]
async fn a_server_speaking_another_protocol_is_a_protocol_error() {
    // An HTTP server's answer to the startup message: the client reads
    // "HTTP" as a message tag and a length, and the connection ends with
    // those bytes unread.
    let http = RawServer::start(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let check = plan_check(dir.path(), &http.url(), "10s", "");
    let outcome = run_once(check, CLIENTS.clone()).await.outcome;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Protocol,
        "error communicating with the server",
    );
}

#[tokio::test]
async fn an_unreachable_address_is_a_connect_error() {
    // The kernel refuses TCP to a multicast address (ENETUNREACH).
    let dir = tempfile::tempdir().unwrap();
    let check = plan_check(
        dir.path(),
        "postgres://vouch:not-a-secret@224.0.0.1:5432/app",
        "10s",
        "",
    );
    let outcome = run_once(check, CLIENTS.clone()).await.outcome;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Connect,
        "error connecting to server: Network is unreachable",
    );
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_that_never_shows_the_password() {
    let pg = Postgres::start_new();
    let dir = tempfile::tempdir().unwrap();
    let wrong = "Wr0ng-pg-Passw0rd";
    let check = plan_check(dir.path(), &pg.url_with_password(wrong), "10s", "");
    let record = run_once(check, CLIENTS.clone()).await;
    expect(
        &record.outcome,
        Verdict::Error,
        Reason::Auth,
        "password authentication failed",
    );
    let json = serde_json::to_string(&record.outcome).unwrap();
    assert!(!json.contains(wrong), "{json}");
    assert!(!json.contains(PASSWORD), "{json}");

    // The same through the binary: report, JSON and logs.
    let yaml = "checks:\n  - name: db\n    postgres:\n      url_env: VOUCH_PG_TEST_URL\n      tls: disable\n";
    let config = support::write_config(yaml);
    let url = pg.url_with_password(wrong);
    for format in ["json", "table"] {
        let out = tokio::process::Command::new(support::vouch::bin())
            .args(["check", "--config"])
            .arg(&config.path)
            .args(["--format", format])
            .env("VOUCH_PG_TEST_URL", &url)
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
            assert!(!text.contains(&url), "the URL leaked:\n{text}");
        }
    }
}

#[tokio::test]
async fn a_query_stuck_on_a_lock_ends_by_statement_timeout() {
    let pg = Postgres::start_new();
    let holder = pg.session().await;
    holder
        .batch_execute("CREATE TABLE accounts (id int)")
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let record = run_record(
        &pg,
        "10s",
        "statement_timeout: 1s\nassertions:\n  - name: accounts\n    query: SELECT count(*) FROM accounts\n    expect: '>= 0'",
    )
    .await;
    expect(
        &record.outcome,
        Verdict::Error,
        Reason::Timeout,
        "query cancelled by statement_timeout 1s",
    );
    // Cancelled by the server after the statement's 1s, well before the
    // check's 10s.
    assert!(
        record.duration >= Duration::from_secs(1) && record.duration < Duration::from_secs(4),
        "{:?}",
        record.duration
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn tls_required_by_the_check_but_not_offered_is_a_tls_error() {
    let pg = Postgres::start_new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("url"), pg.url()).unwrap();
    for mode in ["require", "verify-full"] {
        let yaml = config_yaml("10s", &format!("url_file: url\ntls: {mode}"));
        let check = kind::plan(&yaml, dir.path());
        let record = run_once(check, CLIENTS.clone()).await;
        expect(&record.outcome, Verdict::Error, Reason::Tls, "TLS");
    }
}

/// Runs `tls_block` (with `url_file: url` added) against `pg`; `dir`
/// holds the CA as `ca.pem`.
async fn run_tls(pg: &Postgres, dir: &Path, tls_block: &str) -> Outcome {
    std::fs::write(dir.join("url"), pg.url()).unwrap();
    let yaml = config_yaml("10s", &format!("url_file: url\n{tls_block}"));
    let check = kind::plan(&yaml, dir);
    run_once(check, CLIENTS.clone()).await.outcome
}

#[tokio::test]
async fn tls_modes_against_a_server_with_a_private_ca() {
    let ca = TestCa::new("vouch postgres test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.write_pem(dir.path());
    let pg = Postgres::with_tls(&ca.issue(&["127.0.0.1"], Validity::ValidFor { days: 30 }));

    expect(
        &run_tls(&pg, dir.path(), "tls: verify-full\nca_file: ca.pem").await,
        Verdict::Pass,
        Reason::Ok,
        "",
    );
    // The default is verify-full, which does not trust a private CA.
    expect(
        &run_tls(&pg, dir.path(), "").await,
        Verdict::Error,
        Reason::TlsUnknownIssuer,
        "the server's certificate does not lead to a trusted root (UnknownIssuer)",
    );
    // require encrypts without verifying; disable does not encrypt.
    for mode in ["require", "disable"] {
        expect(
            &run_tls(&pg, dir.path(), &format!("tls: {mode}")).await,
            Verdict::Pass,
            Reason::Ok,
            "",
        );
    }
    // sslmode in the URL is used when tls is not given.
    std::fs::write(
        dir.path().join("url"),
        format!("{}?sslmode=require", pg.url()),
    )
    .unwrap();
    let yaml = config_yaml("10s", "url_file: url");
    let check = kind::plan(&yaml, dir.path());
    let outcome = run_once(check, CLIENTS.clone()).await.outcome;
    expect(&outcome, Verdict::Pass, Reason::Ok, "");
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_host() {
    let ca = TestCa::new("vouch postgres test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.write_pem(dir.path());
    let pg = Postgres::with_tls(&ca.issue(&["db.example.com"], Validity::ValidFor { days: 30 }));
    expect(
        &run_tls(&pg, dir.path(), "tls: verify-full\nca_file: ca.pem").await,
        Verdict::Error,
        Reason::TlsHostname,
        "",
    );
}

#[tokio::test]
async fn a_missing_url_file_is_a_secret_error() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = config_yaml("10s", "url_file: nowhere\ntls: disable");
    let check = kind::plan(&yaml, dir.path());
    let record = run_once(check, CLIENTS.clone()).await;
    expect(
        &record.outcome,
        Verdict::Error,
        Reason::Secret,
        "cannot read secret file",
    );
}

// ---------------------------------------------------------------- config

#[test]
fn url_file_and_env_together_is_a_config_error() {
    let err = config_error("url_file: pg-url\nurl_env: PG_URL");
    assert_eq!(
        err,
        "test.yaml:6: checks[0].postgres.url_env: give url_file or url_env, not both"
    );
    let err = config_error("tls: disable");
    assert_eq!(
        err,
        "test.yaml:4: checks[0].postgres: needs url_file or url_env (the connection URL is a secret)"
    );
}

#[test]
fn a_bad_ratio_is_a_config_error() {
    let err = config_error("url_env: PG_URL\nmax_connections_used: 80");
    assert!(
        err.starts_with("test.yaml:6: checks[0].postgres.max_connections_used: invalid ratio \"80\": expected a percentage from 0% to 100% (e.g. 80%) or a fraction from 0 to 1 (e.g. 0.8)"),
        "{err}"
    );
}

#[test]
fn a_bad_comparison_is_a_config_error() {
    let err = config_error(
        "url_env: PG_URL\nassertions:\n  - name: a\n    query: SELECT 1\n    expect: about 5",
    );
    assert_eq!(
        err,
        "test.yaml:9: checks[0].postgres.assertions[0].expect: invalid comparison \"about 5\": expected an operator (>, >=, <, <=, ==, !=) and a number, e.g. \"> 0\""
    );
}

#[test]
fn a_statement_timeout_not_shorter_than_the_check_timeout_is_a_config_error() {
    let err = config_error("url_env: PG_URL\nstatement_timeout: 10s");
    assert_eq!(
        err,
        "test.yaml:6: checks[0].postgres.statement_timeout: statement_timeout 10s must be shorter than the check's timeout 10s"
    );
}

#[test]
fn validation_never_reads_the_url() {
    // Neither the file nor the variable exists; the config is valid.
    let yaml = config_yaml("10s", "url_env: VOUCH_SURELY_UNSET_PG_URL");
    let source = SourcedConfig::parse(&yaml, "test.yaml", ".".into()).unwrap();
    assert!(Plan::from_source(&source, &CLIENTS, |_| None).is_ok());
}

// ---------------------------------------------------------------- daemon

#[tokio::test]
async fn the_daemon_exports_every_postgres_measure_and_no_secret() {
    let mut pg = Postgres::start_new();
    let config = support::write_config(
        "checks:\n  - name: db\n    interval: 2s\n    timeout: 1900ms\n    postgres:\n      url_env: VOUCH_PG_DAEMON_URL\n      tls: disable\n      assertions:\n        - { name: one, query: SELECT 1, expect: '== 1' }\n",
    );
    let url = pg.url();
    let daemon =
        support::vouch::Daemon::start_with_env(&config.path, &[("VOUCH_PG_DAEMON_URL", &url)])
            .await;
    // Awaited, not read from the first run: on a loaded machine one
    // connection may take longer than the timeout.
    wait_until("a passing run", Duration::from_secs(60), || async {
        daemon.check("db").await["state"] == "pass"
    })
    .await;
    let metrics = daemon.get_ok("/metrics").await;
    for measure in vouch::result::Measure::ALL
        .iter()
        .filter(|m| m.name().starts_with("vouch_postgres_"))
    {
        assert!(
            metrics.contains(&format!("# TYPE {} gauge", measure.name())),
            "{} missing:\n{metrics}",
            measure.name()
        );
    }
    // The server goes away and comes back; the daemon keeps running.
    pg.stop();
    wait_until("an error run", Duration::from_secs(20), || async {
        daemon.check("db").await["last_run"]["reason"] == "connection_refused"
    })
    .await;
    pg.start();
    wait_until("a passing run again", Duration::from_secs(60), || async {
        daemon.check("db").await["state"] == "pass"
    })
    .await;
    let everything = format!(
        "{}{}{}",
        daemon.get_ok("/metrics").await,
        daemon.get_ok("/api/v1/checks").await,
        daemon.logs()
    );
    assert!(!everything.contains(PASSWORD), "the password leaked");
    assert!(!everything.contains(&url), "the URL leaked");
}
