//! The `backup` kind against real storage started by the tests: a local
//! directory whose files' modification times the test sets, Azurite
//! (Microsoft's Azure Blob emulator) and s3rver (an S3-compatible server
//! that checks signatures and reports a file's modification time as the
//! object's Last-Modified). Fresh, stale, tiny, shrunk, too few, missing
//! and empty prefixes, pattern filtering; storage down, a wrong key and a
//! wrong SAS token; no key in any output of the daemon.
use crate::support;

use support::kind::{self, expect, CLIENTS};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use support::azurite::Azurite;
use support::http_server::{Reply, TestServer};
use support::s3::S3;
use support::wait_until;
use vouch::plan::PlannedCheck;
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::run_once;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// One planned check; `dir` holds the files its config names.
struct Check {
    check: Arc<PlannedCheck>,
    _dir: tempfile::TempDir,
}

impl Check {
    /// A check with `block` (the `backup:` keys), timeout `timeout`, and
    /// the secret files `files` (name, content) beside the config.
    fn new(timeout: &str, block: &str, files: &[(&str, &str)]) -> Check {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), format!("{content}\n")).unwrap();
        }
        let yaml = kind::one_check_yaml("backup", timeout, block);
        Check {
            check: kind::plan(&yaml, dir.path()),
            _dir: dir,
        }
    }

    async fn run(&self) -> Outcome {
        run_once(self.check.clone(), CLIENTS.clone()).await.outcome
    }
}

fn measured(outcome: &Outcome, name: &str) -> Option<f64> {
    outcome
        .measurements
        .iter()
        .find(|m| m.measure.name() == name)
        .map(|m| m.value)
}

fn bytes(n: usize) -> Vec<u8> {
    vec![b'x'; n]
}

// ---------------------------------------------------------------- local path

/// Writes `name` under `dir` with `size` bytes, modified `age` ago.
fn backup_file(dir: &Path, name: &str, size: usize, age: Duration) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes(size)).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

fn file_check(dir: &Path, block: &str) -> Check {
    let url = format!("url: file://{}\n", dir.display());
    Check::new("10s", &format!("{url}{block}"), &[])
}

#[tokio::test]
async fn a_local_directory_with_a_fresh_backup_passes_with_every_measurement() {
    let dir = tempfile::tempdir().unwrap();
    backup_file(dir.path(), "pg-01.sql.gz", 3_000_000, 2 * DAY + HOUR);
    backup_file(dir.path(), "pg-02.sql.gz", 2_000_000, DAY + HOUR);
    backup_file(dir.path(), "pg-03.sql.gz", 1_500_000, HOUR);
    let check = file_check(
        dir.path(),
        "max_age: 24h\nmin_size: 1MB\nmin_count: 3\nmax_shrink: 50%",
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "newest pg-03.sql.gz (1.4MiB, 1h",
    );
    assert!(outcome.message.contains("3 objects"), "{}", outcome.message);
    assert!(
        outcome.message.contains("previous 1.9MiB"),
        "{}",
        outcome.message
    );
    let age = measured(&outcome, "vouch_backup_age_seconds").unwrap();
    assert!((3590.0..3700.0).contains(&age), "{age}");
    assert_eq!(
        measured(&outcome, "vouch_backup_size_bytes"),
        Some(1_500_000.0)
    );
    assert_eq!(
        measured(&outcome, "vouch_backup_previous_size_bytes"),
        Some(2_000_000.0)
    );
    assert_eq!(measured(&outcome, "vouch_backup_objects"), Some(3.0));
    assert_eq!(
        measured(&outcome, "vouch_backup_objects_size_bytes"),
        Some(6_500_000.0)
    );
    let modified = measured(&outcome, "vouch_backup_last_modified_timestamp_seconds").unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - modified - age).abs() < 60.0, "{modified} {age}");
}

#[tokio::test]
async fn a_stale_local_backup_fails_with_its_age_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    backup_file(dir.path(), "pg.sql.gz", 2_000_000, 2 * DAY);
    let outcome = file_check(dir.path(), "max_age: 24h").run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupAge,
        "newest backup pg.sql.gz is 2d old, limit 1d",
    );
    assert!(measured(&outcome, "vouch_backup_age_seconds").unwrap() >= 2.0 * 86400.0);
}

#[tokio::test]
async fn a_tiny_local_backup_fails_with_its_size_and_the_minimum() {
    let dir = tempfile::tempdir().unwrap();
    backup_file(dir.path(), "pg.sql.gz", 512, HOUR);
    let outcome = file_check(dir.path(), "min_size: 1MB").run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupSize,
        "newest backup pg.sql.gz is 512B, minimum 1MB",
    );
}

#[tokio::test]
async fn a_shrunk_local_backup_fails_with_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    backup_file(dir.path(), "pg-1.sql.gz", 4_000_000, DAY + HOUR);
    backup_file(dir.path(), "pg-2.sql.gz", 1_000_000, HOUR);
    let check = file_check(dir.path(), "min_size: 1kB\nmax_shrink: 50%");
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupShrunk,
        "newest backup pg-2.sql.gz is 976.6KiB, 75% smaller than the previous pg-1.sql.gz (3.8MiB), limit 50%",
    );
    // Shrinking within the limit passes.
    backup_file(dir.path(), "pg-2.sql.gz", 3_000_000, HOUR);
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "previous 3.8MiB",
    );
}

#[tokio::test]
async fn too_few_local_backups_fail_and_one_backup_is_not_judged_for_shrink() {
    let dir = tempfile::tempdir().unwrap();
    backup_file(dir.path(), "pg-1.sql.gz", 1000, HOUR);
    let outcome = file_check(dir.path(), "min_count: 3").run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupCount,
        "1 object under file://",
    );
    assert!(
        outcome.message.ends_with("minimum 3"),
        "{}",
        outcome.message
    );
    let outcome = file_check(dir.path(), "max_shrink: 10%").run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "only one backup: shrink not judged",
    );
    assert_eq!(measured(&outcome, "vouch_backup_previous_size_bytes"), None);
}

#[tokio::test]
async fn the_pattern_chooses_among_names_below_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    backup_file(dir.path(), "daily/pg-2024-03-01.sql.gz", 2_000_000, 2 * DAY);
    // Newer, but not a database dump.
    backup_file(dir.path(), "daily/pg-2024-03-02.log", 100, HOUR);
    backup_file(dir.path(), "notes.txt", 100, HOUR);
    let check = file_check(
        dir.path(),
        "pattern: '^daily/pg-.*\\.sql\\.gz$'\nmax_age: 24h",
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupAge,
        "newest backup daily/pg-2024-03-01.sql.gz is 2d old",
    );
    assert_eq!(measured(&outcome, "vouch_backup_objects"), Some(1.0));

    let none = file_check(dir.path(), "pattern: '\\.dump$'").run().await;
    expect(
        &none,
        Verdict::Fail,
        Reason::BackupMissing,
        "no object matching \"\\\\.dump$\" under file://",
    );
    assert!(
        none.message.contains("(3 listed, none matching)"),
        "{}",
        none.message
    );
    assert_eq!(measured(&none, "vouch_backup_objects"), Some(0.0));
    assert_eq!(measured(&none, "vouch_backup_age_seconds"), None);
}

#[tokio::test]
async fn an_empty_or_missing_directory_has_no_backup() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = file_check(dir.path(), "max_age: 24h").run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupMissing,
        "no object under file://",
    );
    let missing = dir.path().join("not-mounted");
    let outcome = file_check(&missing, "max_age: 24h").run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupMissing,
        "not-mounted is not a directory (not mounted?)",
    );
}

// ---------------------------------------------------------------- Azurite

/// A check of `container/prefix` on `azurite` with the account key from
/// a file, plus `block`.
fn azure_check(azurite: &Azurite, url: &str, timeout: &str, block: &str) -> Check {
    Check::new(
        timeout,
        &format!(
            "url: {url}\naccount: {}\nendpoint: {}\naccount_key_file: key\n{block}",
            azurite.account,
            azurite.endpoint()
        ),
        &[("key", &azurite.key)],
    )
}

async fn put(store: &dyn ObjectStore, name: &str, size: usize) -> SystemTime {
    let path = StorePath::from(name);
    store.put(&path, bytes(size).into()).await.unwrap();
    store.head(&path).await.unwrap().last_modified.into()
}

#[tokio::test]
async fn azurite_fresh_shrunk_and_pattern_cases() {
    let azurite = Azurite::start();
    azurite.create_container("backups");
    let store = azurite.store("backups");
    put(store.as_ref(), "postgres/pg-1.sql.gz", 2_000_000).await;
    put(store.as_ref(), "postgres/pg-2.sql.gz", 1_500_000).await;
    put(store.as_ref(), "postgres/pg-2.log", 10).await;
    put(store.as_ref(), "redis/dump.rdb", 10).await;

    let check = azure_check(
        &azurite,
        "az://backups/postgres",
        "10s",
        "pattern: '\\.sql\\.gz$'\nmax_age: 1h\nmin_size: 1MB\nmin_count: 2\nmax_shrink: 50%",
    );
    let outcome = check.run().await;
    // Equal upload seconds are ordered by name: pg-2 is the newest.
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "newest pg-2.sql.gz (1.4MiB",
    );
    assert_eq!(measured(&outcome, "vouch_backup_objects"), Some(2.0));
    assert_eq!(
        measured(&outcome, "vouch_backup_size_bytes"),
        Some(1_500_000.0)
    );
    assert_eq!(
        measured(&outcome, "vouch_backup_previous_size_bytes"),
        Some(2_000_000.0)
    );

    // A truncated dump uploaded later (Last-Modified has whole seconds).
    let second = store
        .head(&StorePath::from("postgres/pg-2.sql.gz"))
        .await
        .unwrap()
        .last_modified;
    let second: SystemTime = second.into();
    wait_until(
        "a later second than the last upload",
        Duration::from_secs(5),
        || async {
            SystemTime::now()
                .duration_since(second)
                .is_ok_and(|d| d >= Duration::from_secs(1))
        },
    )
    .await;
    put(store.as_ref(), "postgres/pg-3.sql.gz", 300_000).await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupSize,
        "newest backup pg-3.sql.gz is 293KiB, minimum 1MB",
    );
    assert!(
        outcome
            .message
            .contains("80% smaller than the previous pg-2.sql.gz (1.4MiB), limit 50%"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn azurite_stale_by_a_limit_shorter_than_the_time_since_upload() {
    // Azurite sets Last-Modified at upload; the test waits until the
    // backup is older than a one-second limit instead of faking times.
    let azurite = Azurite::start();
    azurite.create_container("backups");
    let store = azurite.store("backups");
    let uploaded = put(store.as_ref(), "pg.sql.gz", 2_000).await;
    wait_until(
        "the backup to be 2s old",
        Duration::from_secs(10),
        || async {
            SystemTime::now()
                .duration_since(uploaded)
                .is_ok_and(|age| age >= Duration::from_secs(2))
        },
    )
    .await;
    let outcome = azure_check(&azurite, "az://backups", "10s", "max_age: 1s")
        .run()
        .await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupAge,
        "newest backup pg.sql.gz is ",
    );
    assert!(
        outcome.message.ends_with("old, limit 1s"),
        "{}",
        outcome.message
    );
    let fresh = azure_check(&azurite, "az://backups", "10s", "max_age: 1h")
        .run()
        .await;
    expect(&fresh, Verdict::Pass, Reason::Ok, "newest pg.sql.gz");
}

#[tokio::test]
async fn azurite_empty_prefix_and_missing_container_have_no_backup() {
    let azurite = Azurite::start();
    azurite.create_container("backups");
    let store = azurite.store("backups");
    put(store.as_ref(), "redis/dump.rdb", 10).await;
    let empty = azure_check(&azurite, "az://backups/postgres", "10s", "")
        .run()
        .await;
    expect(
        &empty,
        Verdict::Fail,
        Reason::BackupMissing,
        "no object under az://backups/postgres",
    );
    // `postgres` is a folder: `postgres-old/...` is not under it.
    put(store.as_ref(), "postgres-old/pg.sql.gz", 10).await;
    expect(
        &azure_check(&azurite, "az://backups/postgres", "10s", "")
            .run()
            .await,
        Verdict::Fail,
        Reason::BackupMissing,
        "",
    );
    let missing = azure_check(&azurite, "az://nosuchcontainer/postgres", "10s", "")
        .run()
        .await;
    expect(
        &missing,
        Verdict::Fail,
        Reason::BackupMissing,
        "az://nosuchcontainer/postgres: the container does not exist (the store answered 404",
    );
    assert!(
        missing.message.contains("ContainerNotFound"),
        "{}",
        missing.message
    );
}

#[tokio::test]
async fn azurite_sas_tokens_right_and_wrong() {
    let azurite = Azurite::start();
    azurite.create_container("backups");
    put(azurite.store("backups").as_ref(), "pg.sql.gz", 2_000).await;
    let block = |token_file: &str| {
        format!(
            "url: az://backups\naccount: {}\nendpoint: {}\nsas_token_file: {token_file}\nmin_size: 1kB",
            azurite.account,
            azurite.endpoint()
        )
    };
    let sas = azurite.account_sas("rl");
    let check = Check::new("10s", &block("sas"), &[("sas", &sas)]);
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "newest pg.sql.gz",
    );

    // The same token with another signature.
    let signature = sas.split("sig=").nth(1).unwrap().to_string();
    let wrong_signature = "Wr0ngSignatureWr0ngSignatureWr0ngSignature1234%3D";
    let wrong = sas.replace(&signature, wrong_signature);
    let outcome = Check::new("10s", &block("sas"), &[("sas", &wrong)])
        .run()
        .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        "the store answered 403",
    );
    let json = serde_json::to_string(&outcome).unwrap();
    for part in [&signature, "Wr0ngSignatureWr0ng", &wrong] {
        assert!(!json.contains(part), "{part} leaked: {json}");
    }
}

#[tokio::test]
async fn azurite_down_is_refused_promptly_and_a_wrong_key_is_an_auth_error() {
    let mut azurite = Azurite::start();
    azurite.create_container("backups");
    put(azurite.store("backups").as_ref(), "pg.sql.gz", 2_000).await;

    let wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=";
    let outcome = Check::new(
        "10s",
        &format!(
            "url: az://backups\naccount: {}\nendpoint: {}\naccount_key_file: key",
            azurite.account,
            azurite.endpoint()
        ),
        &[("key", wrong_key)],
    )
    .run()
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        "listing az://backups: the store answered 403 Forbidden (AuthorizationFailure)",
    );
    assert!(!serde_json::to_string(&outcome).unwrap().contains(wrong_key));

    let check = azure_check(&azurite, "az://backups", "10s", "");
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "");
    azurite.stop();
    let record = run_once(check.check.clone(), CLIENTS.clone()).await;
    // Refused, said as such, not cut off by the check's timeout.
    expect(
        &record.outcome,
        Verdict::Error,
        Reason::ConnectionRefused,
        "listing az://backups: connection refused (127.0.0.1:",
    );
}

#[tokio::test]
async fn azurite_down_then_back_up_passes_again() {
    let mut azurite = Azurite::start();
    azurite.create_container("backups");
    put(azurite.store("backups").as_ref(), "pg.sql.gz", 2_000).await;
    let check = azure_check(&azurite, "az://backups", "10s", "");
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "newest pg.sql.gz",
    );
    azurite.stop();
    expect(
        &check.run().await,
        Verdict::Error,
        Reason::ConnectionRefused,
        "listing az://backups: connection refused (127.0.0.1:",
    );
    // The same check, whose client may hold pooled connections of the
    // first server, reaches the restarted one.
    // Killed, Azurite forgets what it had not saved: the test puts it back.
    azurite.restart();
    azurite.create_container("backups");
    put(azurite.store("backups").as_ref(), "pg.sql.gz", 2_000).await;
    expect(
        &check.run().await,
        Verdict::Pass,
        Reason::Ok,
        "newest pg.sql.gz",
    );
}

#[tokio::test]
async fn azurite_refusals_and_an_unreadable_key_are_errors_naming_why() {
    let azurite = Azurite::start();
    azurite.create_container("backups");
    let sas_check = |permissions: &str| {
        Check::new(
            "10s",
            &format!(
                "url: az://backups\naccount: {}\nendpoint: {}\nsas_token_file: sas",
                azurite.account,
                azurite.endpoint()
            ),
            &[("sas", &azurite.account_sas(permissions))],
        )
    };
    // A token that may read but not list.
    expect(
        &sas_check("r").run().await,
        Verdict::Error,
        Reason::Forbidden,
        "the store answered 403",
    );
    // A container name Azure refuses (upper case): 400.
    expect(
        &azure_check(&azurite, "az://Backups", "10s", "").run().await,
        Verdict::Error,
        Reason::Status,
        "the store answered 400",
    );
    let unreadable = Check::new(
        "10s",
        &format!(
            "url: az://backups\naccount: {}\nendpoint: {}\naccount_key_file: absent-key",
            azurite.account,
            azurite.endpoint()
        ),
        &[],
    );
    expect(
        &unreadable.run().await,
        Verdict::Error,
        Reason::Secret,
        "absent-key",
    );
}

#[tokio::test]
async fn tls_to_plain_azurite_and_an_unreachable_endpoint_are_errors() {
    let azurite = Azurite::start();
    let with_endpoint = |endpoint: &str| {
        Check::new(
            "10s",
            &format!(
                "url: az://backups\naccount: {}\nendpoint: {endpoint}\naccount_key_file: key",
                azurite.account
            ),
            &[("key", &azurite.key)],
        )
    };
    let https = azurite.endpoint().replace("http://", "https://");
    expect(
        &with_endpoint(&https).run().await,
        Verdict::Error,
        Reason::Tls,
        "127.0.0.1",
    );
    // The kernel refuses TCP to a multicast address (ENETUNREACH).
    let unreachable = with_endpoint("http://224.0.0.1:10000/vouchbackups")
        .run()
        .await;
    expect(
        &unreachable,
        Verdict::Error,
        Reason::Connect,
        "224.0.0.1:10000",
    );
}

#[tokio::test]
async fn a_wrong_key_never_reaches_the_daemons_output() {
    let azurite = Azurite::start();
    azurite.create_container("backups");
    put(azurite.store("backups").as_ref(), "pg.sql.gz", 2_000).await;
    // A valid-looking key of the test's own, and a SAS token beside it in
    // another check.
    let wrong_key = "TGVha01hcmtlcktleUxlYWtNYXJrZXJLZXlMZWFrTWFya2Vy";
    let wrong_sas = "sv=2021-08-06&ss=b&srt=sco&sp=rl&se=2099-01-01T00%3A00%3A00Z&spr=https,http&sig=LeakMarkerSignatureLeakMarkerSignature%3D";
    let config = support::write_config(&format!(
        "defaults: {{ interval: 1s, timeout: 1s }}\nchecks:\n  - name: db-backup\n    backup:\n      url: az://backups\n      account: {account}\n      endpoint: {endpoint}\n      account_key_env: VOUCH_TEST_BACKUP_KEY\n  - name: db-backup-sas\n    backup:\n      url: az://backups\n      account: {account}\n      endpoint: {endpoint}\n      sas_token_env: VOUCH_TEST_BACKUP_SAS\n",
        account = azurite.account,
        endpoint = azurite.endpoint()
    ));
    let daemon = support::vouch::Daemon::start_with_env(
        &config.path,
        &[
            ("VOUCH_TEST_BACKUP_KEY", wrong_key),
            ("VOUCH_TEST_BACKUP_SAS", wrong_sas),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    daemon.wait_for_runs(2, Duration::from_secs(30)).await;
    // Awaited, not read from a given run: on a loaded machine one run of
    // a 1 s timeout may end as a timeout.
    for name in ["db-backup", "db-backup-sas"] {
        support::wait_until(
            &format!("{name} to be an auth error"),
            support::vouch::VERDICT_WAIT,
            || async { daemon.check(name).await["last_run"]["reason"] == "auth" },
        )
        .await;
    }
    let metrics = daemon.get_ok("/metrics").await;
    assert!(
        metrics
            .contains(r#"vouch_check_runs_total{check="db-backup",reason="auth",result="error"}"#),
        "{metrics}"
    );
    // The gate, in every format, says auth and holds neither credential.
    for format in ["table", "json", "junit"] {
        let out = tokio::process::Command::new(support::vouch::bin())
            .args(["check", "--config"])
            .arg(&config.path)
            .args(["--format", format])
            .env("VOUCH_TEST_BACKUP_KEY", wrong_key)
            .env("VOUCH_TEST_BACKUP_SAS", wrong_sas)
            .env("RUST_LOG", "trace")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        assert!(stdout.contains("auth"), "{stdout}");
        for text in [&stdout, &stderr] {
            for marker in ["TGVha01hcmtlcktle", "LeakMarkerSignature"] {
                assert!(!text.contains(marker), "{marker} leaked:\n{text}");
            }
        }
    }
    // Down: the client's retry and transport logs (trace) must not carry
    // the token either.
    let mut azurite = azurite;
    azurite.stop();
    wait_until(
        "a refused run of both checks",
        Duration::from_secs(30),
        || async {
            let checks = daemon.checks().await;
            checks["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["last_run"]["reason"] == "connection_refused")
        },
    )
    .await;
    let outputs = [
        daemon.get_ok("/metrics").await,
        daemon.get_ok("/api/v1/checks").await,
        daemon.get_ok("/").await,
        daemon.get_ok("/checks/db-backup").await,
        daemon.get_ok("/checks/db-backup-sas").await,
        daemon.logs(),
    ];
    for text in &outputs {
        for marker in ["TGVha01hcmtlcktle", "LeakMarkerSignature", wrong_key] {
            assert!(!text.contains(marker), "{marker} leaked:\n{text}");
        }
    }
}

// ---------------------------------------------------------------- S3

fn s3_check(s3: &S3, url: &str, block: &str, secret: &str) -> Check {
    Check::new(
        "10s",
        &format!(
            "url: {url}\nendpoint: {}\nregion: us-east-1\naccess_key_id_file: id\nsecret_access_key_file: secret\n{block}",
            s3.endpoint()
        ),
        &[("id", support::s3::ACCESS_KEY_ID), ("secret", secret)],
    )
}

/// Sets the modification time of `key`'s file: the Last-Modified s3rver
/// reports for it.
fn age_object(s3: &S3, key: &str, age: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(s3.object_file(key))
        .unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn s3_fresh_stale_tiny_and_too_few() {
    let s3 = S3::start();
    let store = s3.store();
    put(store.as_ref(), "db/pg-1.sql.gz", 3_000_000).await;
    put(store.as_ref(), "db/pg-2.sql.gz", 2_500_000).await;
    age_object(&s3, "db/pg-1.sql.gz", DAY + 2 * HOUR);
    age_object(&s3, "db/pg-2.sql.gz", 2 * HOUR);
    // The prefix's own folder marker, empty and newest, is no backup.
    s3.put_folder_marker("db/");
    let secret = support::s3::SECRET_ACCESS_KEY;
    let check = s3_check(
        &s3,
        "s3://backups/db",
        "max_age: 24h\nmin_size: 1MB\nmax_shrink: 50%",
        secret,
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Pass,
        Reason::Ok,
        "newest pg-2.sql.gz (2.4MiB, 2h old)",
    );
    assert_eq!(measured(&outcome, "vouch_backup_objects"), Some(2.0));

    // The nightly job stopped: the newest is now 25h old.
    age_object(&s3, "db/pg-2.sql.gz", DAY + HOUR);
    expect(
        &check.run().await,
        Verdict::Fail,
        Reason::BackupAge,
        "newest backup pg-2.sql.gz is 1d 1h old, limit 1d",
    );

    // A tiny one, newest.
    put(store.as_ref(), "db/pg-3.sql.gz", 100).await;
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Fail,
        Reason::BackupSize,
        "newest backup pg-3.sql.gz is 100B, minimum 1MB",
    );
    assert!(
        outcome.message.contains("100% smaller"),
        "{}",
        outcome.message
    );

    expect(
        &s3_check(&s3, "s3://backups/db", "min_count: 5", secret)
            .run()
            .await,
        Verdict::Fail,
        Reason::BackupCount,
        "3 objects under s3://backups/db, minimum 5",
    );
}

#[tokio::test]
async fn s3_wrong_secret_missing_bucket_and_server_down() {
    let mut s3 = S3::start();
    put(s3.store().as_ref(), "pg.sql.gz", 2_000).await;
    // s3rver checks the access key id but not SigV4 signatures, so the
    // wrong credential here is the id (AWS also answers a wrong secret
    // with 403, SignatureDoesNotMatch).
    let wrong_id = "WR0NGACCESSKEYIDMARKER";
    let outcome = Check::new(
        "10s",
        &format!(
            "url: s3://backups\nendpoint: {}\naccess_key_id_file: id\nsecret_access_key_file: secret",
            s3.endpoint()
        ),
        &[("id", wrong_id), ("secret", support::s3::SECRET_ACCESS_KEY)],
    )
    .run()
    .await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::Auth,
        "listing s3://backups: the store answered 403 Forbidden (InvalidAccessKeyId)",
    );
    let json = serde_json::to_string(&outcome).unwrap();
    assert!(!json.contains(wrong_id), "{json}");

    let missing = s3_check(&s3, "s3://nosuchbucket", "", support::s3::SECRET_ACCESS_KEY)
        .run()
        .await;
    expect(
        &missing,
        Verdict::Fail,
        Reason::BackupMissing,
        "s3://nosuchbucket: the bucket does not exist (the store answered 404 Not Found (NoSuchBucket))",
    );

    let check = s3_check(&s3, "s3://backups", "", support::s3::SECRET_ACCESS_KEY);
    expect(&check.run().await, Verdict::Pass, Reason::Ok, "");
    s3.stop();
    let down = check.run().await;
    expect(
        &down,
        Verdict::Error,
        Reason::ConnectionRefused,
        "listing s3://backups: connection refused (127.0.0.1:",
    );
}

#[tokio::test]
async fn a_store_whose_listing_never_ends_is_cut_off_as_too_large() {
    // Answers every request with 200 and an endless chunked body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("10000\r\n{}\r\n", "<a>".repeat(0x10000 / 3) + "x");
                // Bounded: 64 MiB, twice the limit.
                for _ in 0..1024 {
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let check = Check::new(
        "10s",
        &format!(
            "url: s3://backups\nendpoint: {endpoint}\naccess_key_id_file: id\nsecret_access_key_file: secret"
        ),
        &[("id", "AKIDEXAMPLE"), ("secret", "not-used-secret")],
    );
    let outcome = check.run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::TooLarge,
        "listing s3://backups: the answer was larger than 32MiB",
    );
    served.abort();
}

#[tokio::test]
async fn a_store_that_accepts_but_never_answers_times_out_naming_the_listing() {
    // Connections are accepted (the backlog) and never answered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let check = Check::new(
        "2s",
        &format!(
            "url: s3://backups\nendpoint: {endpoint}\naccess_key_id_file: id\nsecret_access_key_file: secret"
        ),
        &[("id", "AKIDEXAMPLE"), ("secret", "not-used-secret")],
    );
    let record = run_once(check.check.clone(), CLIENTS.clone()).await;
    // The client's own request timeout ends it, before the runner's.
    expect(
        &record.outcome,
        Verdict::Error,
        Reason::Timeout,
        "listing s3://backups: no answer within 800ms (127.0.0.1:",
    );
    drop(listener);
}

#[tokio::test]
async fn a_listing_that_does_not_parse_is_a_protocol_error() {
    let server = TestServer::http().await;
    // A listing whose object has no size a number can be read from.
    server.route(
        "/backups",
        Reply::status(200).header("Content-Type", "application/xml").body(
            b"<ListBucketResult><Contents><Key>pg.sql.gz</Key><LastModified>yesterday</LastModified>\
              <Size>many</Size></Contents></ListBucketResult>",
        ),
    );
    let check = Check::new(
        "10s",
        &format!(
            "url: s3://backups\nendpoint: {}\naccess_key_id_file: id\nsecret_access_key_file: secret",
            server.url("")
        ),
        &[("id", "AKIDEXAMPLE"), ("secret", "not-used-secret")],
    );
    expect(
        &check.run().await,
        Verdict::Error,
        Reason::Protocol,
        "invalid list response",
    );
}

#[tokio::test]
async fn an_unresolvable_endpoint_is_a_dns_error() {
    // Through the binary, with a resolver that gives up after a second.
    let check = support::vouch::check_one(
        "checks:\n  - name: t\n    timeout: 10s\n    backup: { url: \"s3://backups\", endpoint: \"http://vouch-test.invalid:9000\", access_key_id_env: HOME, secret_access_key_env: HOME }\n",
        &[support::vouch::QUICK_RESOLVER],
    )
    .await;
    assert_eq!(
        (&check["last_run"]["verdict"], &check["last_run"]["reason"]),
        (&"error".into(), &Reason::Dns.as_str().into()),
        "{check:#}"
    );
}

#[tokio::test]
async fn a_directory_loop_is_a_file_error() {
    let dir = tempfile::tempdir().unwrap();
    backup_file(dir.path(), "pg.sql.gz", 2_000, HOUR);
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    let outcome = file_check(dir.path(), "").run().await;
    expect(
        &outcome,
        Verdict::Error,
        Reason::File,
        "File system loop found",
    );
}

// ---------------------------------------------------------------- config

fn config_error(block: &str) -> String {
    kind::config_error(&kind::one_check_yaml("backup", "10s", block))
}

#[test]
fn credentials_belong_to_their_scheme_and_come_one_at_a_time() {
    assert_eq!(
        config_error(
            "url: s3://b/p\naccount_key_file: key\naccess_key_id_env: A\nsecret_access_key_env: B"
        ),
        "test.yaml:6: checks[0].backup.account_key_file: only for az:// URLs, not s3://"
    );
    assert_eq!(
        config_error("url: az://c\naccount: a\naccount_key_env: K\nsas_token_env: S"),
        "test.yaml:8: checks[0].backup.sas_token_env: give one credential, not account_key_file/account_key_env and sas_token_file/sas_token_env (an account key, a SAS token or identity: environment)"
    );
    assert_eq!(
        config_error("url: az://c\naccount_key_env: K"),
        "test.yaml:5: checks[0].backup.url: az:// URLs need `account` (the storage account name)"
    );
    assert_eq!(
        config_error("url: file:///backups\nidentity: environment"),
        "test.yaml:6: checks[0].backup.identity: not for file:// URLs"
    );
    assert_eq!(
        config_error("url: s3://b\nendpoint: http://minio:Pa55word@minio:9000\nidentity: environment"),
        "test.yaml:6: checks[0].backup.endpoint: invalid endpoint \"http://minio:9000\": must not have a query or user information (credentials belong in *_file or *_env keys)"
    );
    assert_eq!(
        config_error("url: gs://b\nidentity: ambient"),
        "test.yaml:6: checks[0].backup.identity: unknown variant `ambient`, expected `environment`"
    );
}
