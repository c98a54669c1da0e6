//! The alerts: `vouch serve` of the shipped config against the twin, scraped
//! by a real Prometheus evaluating the shipped rules (alerts/vouch.rules.yml),
//! alerting through a real Alertmanager with the shipped inhibit rules
//! (alerts/alertmanager-inhibit.yml) to a webhook the test reads.
use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::twin::Twin;

use super::faults::{selected, FAULTS};
use super::inject::{inject, repair, Held};
use super::{config_check_names, skip_args, NOT_SERVED, STARTING};

/// How long the healthy twin must stay silent once every served check has
/// passed: 5 scaled minutes beyond the longest `for` of the shipped rules
/// (15m), so an alert that went pending at the start would have fired.
fn quiet_window() -> Duration {
    let longest_for = longest_for_in_rules();
    Duration::from_secs_f64((longest_for + 300.0) / support::twin::TIME_SCALE)
}

fn longest_for_in_rules() -> f64 {
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&support::twin::shipped_rules()).unwrap();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["for"].as_str())
        .map(support::monitoring::parse_duration)
        .fold(0.0, f64::max)
}

/// The daemon's state of every check, by name.
async fn daemon_states(daemon: &support::vouch::Daemon) -> BTreeMap<String, String> {
    daemon.checks().await["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// Polls the daemon's states until `done` holds: how long that took, or
/// after `limit` the checks not passing then.
async fn daemon_until(
    daemon: &support::vouch::Daemon,
    limit: Duration,
    done: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Result<Duration, Vec<(String, String)>> {
    let started = Instant::now();
    loop {
        let states = daemon_states(daemon).await;
        if done(&states) {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= limit {
            return Err(states.into_iter().filter(|(_, s)| s != "pass").collect());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An alert as it reached the webhook: name, severity and check.
type Page = (String, String, String);

fn page_of(alert: &Value) -> Page {
    let label = |name: &str| alert["labels"][name].as_str().unwrap_or("").to_string();
    (label("alertname"), label("severity"), label("check"))
}

/// An intended page: alert name, severity, check.
type Intended = (&'static str, &'static str, &'static str);

/// The pages each fault of the matrix (FAULTS) must cause, exactly these,
/// derived from the shipped rules (alerts/vouch.rules.yml) and inhibit
/// rules: for each check the fault flips, the kind alert whose condition
/// the fault meets, with the check's severity, else the generic
/// `VouchCheckFailing` of the check's severity (none for an `info` check:
/// the generic alert exists for critical and warning only). Inhibition
/// must leave one page per check. `true`: in CI's short list.
const ALERT_FAULTS: &[(&str, &[Intended], bool)] = &[
    (
        "redis-down",
        &[
            ("VouchRedisUnreachable", "critical", "redis-ready"),
            ("VouchRedisUnreachable", "warning", "redis-persistence"),
            ("VouchRedisUnreachable", "critical", "redis-metrics"),
            ("VouchCheckFailing", "critical", "api-health-ready"),
        ],
        false,
    ),
    (
        "postgres-down",
        &[
            (
                "VouchDatabaseUnreachable",
                "critical",
                "postgres-accessible",
            ),
            (
                "VouchDatabaseUnreachable",
                "critical",
                "postgres-migrations",
            ),
            ("VouchDatabaseUnreachable", "critical", "postgres-metrics"),
            ("VouchDatabaseUnreachable", "warning", "postgres-users"),
            ("VouchCheckFailing", "critical", "api-health-ready"),
        ],
        false,
    ),
    (
        "api-stopped",
        // api-docs is info: no page.
        &[
            ("VouchCheckFailing", "critical", "api-health-live-internal"),
            ("VouchCheckFailing", "critical", "api-health-live"),
            ("VouchCheckFailing", "critical", "api-health-ready"),
            ("VouchCheckFailing", "warning", "api-version"),
            ("VouchCheckFailing", "critical", "prometheus-targets-up"),
            ("VouchCheckFailing", "warning", "prometheus-custom-metrics"),
        ],
        false,
    ),
    (
        "www-not-redirecting",
        &[("VouchCheckFailing", "warning", "web-www-redirect")],
        true,
    ),
    (
        "cluster-issuer-not-ready",
        &[("VouchCheckFailing", "warning", "cluster-issuer-ready")],
        false,
    ),
    (
        "external-secret-stale",
        // Not VouchExternalSecretStale: the shipped check sets no
        // max_sync_age, so that rule has no threshold to compare with.
        &[("VouchCheckFailing", "critical", "external-secrets-synced")],
        false,
    ),
    (
        "snapshot-8-days-old",
        &[(
            "VouchVolumeSnapshotStale",
            "warning",
            "pvc-snapshots-recent",
        )],
        false,
    ),
    (
        "hpa-pinned-at-max",
        &[("VouchCheckFailing", "warning", "api-hpa")],
        false,
    ),
    (
        "servicemonitor-missing",
        &[("VouchCheckFailing", "warning", "web-servicemonitor")],
        false,
    ),
    (
        "configmap-port-wrong",
        &[("VouchCheckFailing", "warning", "app-config-values")],
        false,
    ),
    (
        "pending-migration",
        &[("VouchCheckFailing", "critical", "postgres-migrations")],
        false,
    ),
    (
        "rollout-stuck-3-of-5",
        &[("VouchWorkloadReplicasLow", "critical", "api-rollout")],
        false,
    ),
    // A kind alert and the generic VouchCheckFailing of one check, which
    // must page once (before the generic alerts moved to the end of their
    // rule group, both paged: docs/twin.md).
    (
        "pod-crash-looping",
        &[("VouchPodsCrashLooping", "critical", "api-pods")],
        true,
    ),
    (
        "certificate-10-days-left",
        // Inside min_valid_for (30d) the expiry alerts fire at the check's
        // severity (expiryAlert in the mixin) and mute its generic page:
        // critical for the two critical checks, warning for the others
        // (10 days is past the 7-day escalation of warning checks).
        &[
            ("VouchCertificateExpiring", "warning", "api-tls-secret"),
            ("VouchCertificateExpiring", "critical", "api-certificate"),
            (
                "VouchKubeCertificateExpiring",
                "critical",
                "api-certificate-ready",
            ),
            (
                "VouchCertificateExpiring",
                "warning",
                "api-certificate-at-ingress",
            ),
        ],
        false,
    ),
    (
        "served-certificate-not-cert-managers",
        // Both certificates are far from expiry: only the generic page.
        &[("VouchCheckFailing", "critical", "api-certificate")],
        false,
    ),
    (
        "certificate-not-ready",
        &[("VouchCheckFailing", "critical", "api-certificate-ready")],
        false,
    ),
    (
        "dns-old-address",
        // api-dns asks one resolver (no agreement series): generic page;
        // the propagation check's servers all disagree with the Ingress.
        &[
            ("VouchCheckFailing", "critical", "api-dns"),
            ("VouchDnsServersDisagree", "warning", "api-dns-propagated"),
        ],
        false,
    ),
    (
        "connections-85-percent",
        &[(
            "VouchPostgresConnectionsHigh",
            "critical",
            "postgres-metrics",
        )],
        false,
    ),
    (
        "query-10s",
        &[("VouchPostgresLongQuery", "critical", "postgres-metrics")],
        false,
    ),
    (
        "redis-memory-95-percent-evicting",
        // The fault also meets VouchRedisEvicting's condition for one run
        // (evictions since the previous run); VouchRedisMemoryHigh mutes it.
        &[("VouchRedisMemoryHigh", "critical", "redis-metrics")],
        false,
    ),
    (
        "redis-maxmemory-unlimited",
        // No memory ratio without maxmemory: the generic page.
        &[("VouchCheckFailing", "critical", "redis-metrics")],
        false,
    ),
    (
        "secret-past-rotation",
        &[(
            "VouchSecretRotationOverdue",
            "critical",
            "key-vault-secrets-critical",
        )],
        false,
    ),
    (
        "image-tag-missing",
        &[("VouchRegistryTagMissing", "critical", "api-image")],
        false,
    ),
    (
        "two-rollback-tags",
        &[("VouchRegistryRollbackTagsLow", "critical", "api-image")],
        false,
    ),
    (
        "acr-pull-revoked",
        // The checks give error before any registry series: generic pages.
        &[
            ("VouchCheckFailing", "critical", "api-image"),
            ("VouchCheckFailing", "critical", "web-image"),
        ],
        false,
    ),
    (
        "federated-token-refused",
        // Sign-in fails before any secret or registry series; the info
        // check key-vault-secrets-low pages nothing.
        &[
            (
                "VouchCheckFailing",
                "critical",
                "key-vault-secrets-critical",
            ),
            (
                "VouchCheckFailing",
                "warning",
                "key-vault-secrets-high-medium",
            ),
            ("VouchCheckFailing", "critical", "api-image"),
            ("VouchCheckFailing", "critical", "web-image"),
        ],
        false,
    ),
    (
        "backup-30-hours-old",
        &[("VouchBackupTooOld", "critical", "database-backup")],
        false,
    ),
    (
        "backup-shrank-70-percent",
        &[("VouchBackupShrunk", "critical", "database-backup")],
        false,
    ),
    (
        "sentry-dsn-missing",
        // An info check: no generic alert, but the kind alert has an info
        // rule (vouch_secret_present == 0), and the twin's route delivers
        // every severity.
        &[("VouchSecretMissing", "info", "key-vault-secrets-low")],
        false,
    ),
    // Flip nothing (faults.rs), so page nothing.
    ("vault-challenge-names-login-microsoftonline", &[], false),
    ("hsts-missing", &[], false),
    (
        "wrong-commit-after-rollout",
        &[("VouchCheckFailing", "warning", "api-version")],
        false,
    ),
];

/// Faults `TWIN_FAULTS=all` leaves out of the alert run (named, they
/// run): the daemon keeps the workload identity's tokens, so it sees these
/// faults only when it renews them, far beyond a row's bounds. `vouch
/// check` (the fault matrix) signs in anew on every run and catches them.
const TOKEN_CACHED: &[(&str, &str)] = &[
    (
        "federated-token-refused",
        "the daemon keeps each Entra ID token until 5 minutes before it expires (the fake issues them for an hour, as Entra ID does): the refusal surfaces at the next renewal, up to 55 minutes later",
    ),
    (
        "acr-pull-revoked",
        "the daemon keeps ACR's repository tokens until shortly before their exp (75 minutes, as ACR issues them) and the registry honours them until then: the revoked role surfaces at the next renewal, up to 70 minutes later",
    ),
];

/// Checks whose run must have come while a fault that flips nothing was in
/// place, so "nothing paged" means something.
fn witnesses(fault: &str) -> &'static [&'static str] {
    match fault {
        "vault-challenge-names-login-microsoftonline" => {
            &["key-vault-reachable", "key-vault-secrets-high-medium"]
        }
        "hsts-missing" => &["web-homepage"],
        _ => &[],
    }
}

/// Parts of the twin a fault changes beyond its checks: faults sharing a
/// part (or a flipped check) are never in place together.
fn parts(fault: &str) -> &'static [&'static str] {
    match fault {
        "redis-down" | "redis-maxmemory-unlimited" => &["redis"],
        // Filling Redis and opening 170 sessions both load the machine.
        "redis-memory-95-percent-evicting" => &["redis", "heavy"],
        "connections-85-percent" => &["postgres", "heavy"],
        "postgres-down" | "pending-migration" | "query-10s" => &["postgres"],
        "api-stopped" => &["api-process"],
        "www-not-redirecting" | "hsts-missing" => &["nginx"],
        "certificate-10-days-left" => &["nginx", "api-certificate"],
        "served-certificate-not-cert-managers" | "certificate-not-ready" => &["api-certificate"],
        "rollout-stuck-3-of-5" | "pod-crash-looping" => &["api-deployment"],
        "image-tag-missing" | "two-rollback-tags" => &["api-tags"],
        "acr-pull-revoked" => &["azure-auth"],
        "federated-token-refused" => &["azure-auth", "vault-auth"],
        "vault-challenge-names-login-microsoftonline" => &["vault-auth"],
        _ => &[],
    }
}

/// Runs last, alone: the Deployment then runs a commit the other faults'
/// tags do not name.
const LAST: &str = "wrong-commit-after-rollout";

/// At most this many faults in place at once (the machine has 2 cores).
const MAX_IN_PLACE: usize = 8;

/// Each check's interval in the shipped config, in seconds.
fn check_intervals() -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(support::twin::CONFIG).unwrap();
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let default = config["defaults"]["interval"].as_str().unwrap_or("30s");
    config["checks"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                support::monitoring::parse_duration(c["interval"].as_str().unwrap_or(default)),
            )
        })
        .collect()
}

/// Each check's severity in the shipped config.
fn check_severities() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(support::twin::CONFIG).unwrap();
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let default = config["defaults"]["severity"].as_str().unwrap_or("warning");
    config["checks"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["severity"].as_str().unwrap_or(default).to_string(),
            )
        })
        .collect()
}

fn alert_names_in_rules() -> BTreeSet<String> {
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&support::twin::shipped_rules()).unwrap();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn every_fault_has_its_intended_pages_one_per_check_it_flips() {
    let severities = check_severities();
    let alerts = alert_names_in_rules();
    let names: Vec<&str> = ALERT_FAULTS.iter().map(|(n, _, _)| *n).collect();
    let faults: Vec<&str> = FAULTS.iter().map(|(f, _)| f.name).collect();
    assert_eq!(names, faults, "ALERT_FAULTS follows FAULTS, fault by fault");
    for ((fault, _), (_, pages, _)) in FAULTS.iter().zip(ALERT_FAULTS) {
        let mut paged = BTreeSet::new();
        for (alert, severity, check) in *pages {
            assert!(alerts.contains(*alert), "{}: no rule {alert}", fault.name);
            assert!(
                fault.flips.contains(check),
                "{}: {check} is not flipped",
                fault.name
            );
            assert!(
                paged.insert(*check),
                "{}: two pages for {check}",
                fault.name
            );
            // Only the expiry alerts page below the check's severity.
            if !alert.ends_with("CertificateExpiring") {
                assert_eq!(severities[*check], *severity, "{}: {check}", fault.name);
            }
        }
        for check in fault.flips {
            assert!(
                paged.contains(check) || severities[*check] == "info",
                "{}: {check} flips and pages nothing",
                fault.name
            );
        }
        assert_eq!(
            fault.flips.is_empty(),
            !witnesses(fault.name).is_empty(),
            "{}: a fault that flips nothing names the checks that witness it",
            fault.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_stay_silent_on_the_healthy_twin_and_each_fault_pages_exactly_its_alert() {
    let starting = STARTING.lock().await;
    let mut twin = Twin::start_without_vouch().await;
    drop(starting);
    let daemon = twin.serve(&skip_args()).await;
    let served = config_check_names().len() - NOT_SERVED.len();

    // Healthy: every served check passes in the daemon (each first run
    // comes at its stable phase within its interval: up to 5 minutes).
    let to_all_passed = daemon_until(&daemon, Duration::from_secs(480), |states| {
        states.len() == served && states.values().all(|s| s == "pass")
    })
    .await
    .unwrap_or_else(|failing| panic!("healthy twin, in the daemon: {failing:?}"));
    // Prometheus sees them all (so silence is not a broken scrape).
    support::monitoring::wait_for_data(
        twin.monitoring.prometheus.addr,
        &format!("count(vouch_check_success == 1) == {served}"),
        Duration::from_secs(30),
    )
    .await;
    let quiet = quiet_window();
    let watch_from = Instant::now();
    while watch_from.elapsed() < quiet {
        // A fixed observation window: silence has no event to await.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            twin.monitoring.webhook.notifications().is_empty(),
            "healthy twin paged: {:#?}",
            twin.monitoring.webhook.alerts()
        );
    }
    let pending = twin.monitoring.prometheus_alerts().await;
    assert!(
        pending.is_empty(),
        "healthy twin, alerts pending or firing: {pending:#?}"
    );
    eprintln!(
        "healthy twin: every served check passed {to_all_passed:?} after serve started; silent for {quiet:?} more ({:.0} scaled minutes since the start)",
        (to_all_passed + quiet).as_secs_f64() * support::twin::TIME_SCALE / 60.0
    );

    let all = std::env::var("TWIN_FAULTS").is_ok_and(|list| list == "all");
    let rows: Vec<Row> = ALERT_FAULTS
        .iter()
        .filter(|(name, _, short)| selected(name, *short))
        .filter(
            |(name, _, _)| match TOKEN_CACHED.iter().find(|(n, _)| n == name) {
                Some((_, why)) if all => {
                    eprintln!("fault {name}: not in this run: {why}");
                    false
                }
                _ => true,
            },
        )
        .map(|(name, pages, _)| Row::new(name, pages))
        .collect();
    let matrix = run_matrix(&mut twin, &daemon, rows).await;
    eprintln!(
        "| fault | in place at | alerts that reached the webhook (exactly) | fault → verdict | fault → notification | repair → resolution |"
    );
    for row in &matrix.rows {
        eprintln!("{}", row.table_line());
    }
    eprintln!("matrix: {:.0}s", matrix.took.as_secs_f64());
    let mut wrong: Vec<String> = matrix
        .rows
        .iter()
        .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.name)))
        .collect();
    wrong.extend(matrix.strays);
    assert!(
        wrong.is_empty(),
        "alert rows not as expected:\n{}",
        wrong.join("\n")
    );
}

#[derive(PartialEq, Clone, Copy)]
enum Stage {
    Pending,
    InPlace,
    Repaired,
    Done,
}

/// One fault through the alert stack, while other faults may be in place:
/// those never share a flipped check or a part of the twin with it, so
/// each page is this fault's by its `check` label.
struct Row {
    name: &'static str,
    flips: BTreeSet<String>,
    expected: BTreeSet<Page>,
    /// Longest interval of its flipped (or witness) checks.
    longest: Duration,
    stage: Stage,
    held: Held,
    injected: Instant,
    injected_wall: chrono::DateTime<chrono::Utc>,
    /// Since the matrix started.
    in_place_at: Duration,
    injection_took: Duration,
    /// Fault → verdict (the daemon's start of the first failing run), and
    /// when the test saw it.
    verdict: Option<(Duration, Instant)>,
    pages: BTreeSet<Page>,
    first_page: Option<Duration>,
    all_pages: Option<Duration>,
    last_page_at: Option<Instant>,
    repaired: Instant,
    got: BTreeSet<Page>,
    resolved: BTreeSet<Page>,
    resolution: Option<Duration>,
    /// Each notification of its checks, with when it came.
    events: Vec<String>,
    problems: Vec<String>,
}

impl Row {
    fn new(name: &'static str, pages: &[Intended]) -> Row {
        let fault = &FAULTS.iter().find(|(f, _)| f.name == name).unwrap().0;
        let intervals = check_intervals();
        let longest = fault
            .flips
            .iter()
            .chain(witnesses(name))
            .map(|c| intervals[*c])
            .fold(30.0, f64::max);
        Row {
            name,
            flips: fault.flips.iter().map(|s| s.to_string()).collect(),
            expected: pages
                .iter()
                .map(|(a, s, c)| (a.to_string(), s.to_string(), c.to_string()))
                .collect(),
            longest: Duration::from_secs_f64(longest),
            stage: Stage::Pending,
            held: Held::default(),
            injected: Instant::now(),
            injected_wall: chrono::Utc::now(),
            in_place_at: Duration::ZERO,
            injection_took: Duration::ZERO,
            verdict: None,
            pages: BTreeSet::new(),
            first_page: None,
            all_pages: None,
            last_page_at: None,
            repaired: Instant::now(),
            got: BTreeSet::new(),
            resolved: BTreeSet::new(),
            resolution: None,
            events: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn holds(&self) -> bool {
        matches!(self.stage, Stage::InPlace | Stage::Repaired)
    }

    fn table_line(&self) -> String {
        let seconds = |d: Option<Duration>| {
            d.map_or("never".to_string(), |d| format!("{:.0}s", d.as_secs_f64()))
        };
        let list = |pages: &BTreeSet<Page>| {
            if pages.is_empty() {
                return "none".to_string();
            }
            pages
                .iter()
                .map(|(a, s, c)| format!("`{a}` {s} (`{c}`)"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let pages = if self.got == self.expected {
            list(&self.got)
        } else {
            format!("**{}**; intended {}", list(&self.got), list(&self.expected))
        };
        let notification = match (self.first_page, self.all_pages) {
            (None, _) => "none".to_string(),
            (first, Some(all)) if self.expected.len() > 1 && Some(all) != first => {
                format!("{} (all: {})", seconds(first), seconds(Some(all)))
            }
            (first, _) => seconds(first),
        };
        let verdict = match (self.flips.is_empty(), self.verdict) {
            (true, Some((d, _))) => {
                format!("none flipped (witness ran at {:.0}s)", d.as_secs_f64())
            }
            (_, v) => seconds(v.map(|(d, _)| d)),
        };
        let resolution = if self.got.is_empty() {
            "—".to_string()
        } else {
            seconds(self.resolution)
        };
        format!(
            "| {} | {}:{:02} | {} | {} | {} | {} |{}",
            self.name,
            self.in_place_at.as_secs() / 60,
            self.in_place_at.as_secs() % 60,
            pages,
            verdict,
            notification,
            resolution,
            if self.problems.is_empty() {
                String::new()
            } else {
                format!(" WRONG: {}", self.problems.join("; "))
            }
        )
    }
}

struct Matrix {
    rows: Vec<Row>,
    /// Pages no fault in place explains, and checks that failed while no
    /// fault in place flips them.
    strays: Vec<String>,
    took: Duration,
}

/// The daemon's checks by name.
async fn daemon_checks(daemon: &support::vouch::Daemon) -> BTreeMap<String, Value> {
    daemon.checks().await["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

/// Says a stray as soon as it is seen.
fn stray(what: String) -> String {
    eprintln!("STRAY: {what}");
    what
}

fn time_of(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn since(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}

/// The faults through the alert stack, several in place at once: a fault
/// is injected once no fault in place shares a flipped check or a part of
/// the twin with it (the longest-interval faults first); it is repaired
/// once the daemon's verdicts flipped its checks, its pages came and a
/// window of the longest `for` of the rules passed after the last of
/// them; it is done once its checks pass and its pages are resolved.
/// Every time of a row counts from its own fault being in place.
async fn run_matrix(
    twin: &mut Twin,
    daemon: &support::vouch::Daemon,
    mut rows: Vec<Row>,
) -> Matrix {
    let settle = Duration::from_secs_f64(longest_for_in_rules() / support::twin::TIME_SCALE + 5.0);
    let page_limit = Duration::from_secs(240);
    let started = Instant::now();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|a, b| rows[*b].longest.cmp(&rows[*a].longest).then(a.cmp(b)));
    let mut seen = twin.monitoring.webhook.alerts().len();
    let mut strays = Vec::new();
    let mut stray_checks = BTreeSet::new();
    while rows.iter().any(|r| r.stage != Stage::Done) {
        let checks = daemon_checks(daemon).await;
        let state = |name: &str| {
            checks
                .get(name)
                .and_then(|c| c["state"].as_str())
                .unwrap_or("?")
                .to_string()
        };
        let now = Instant::now();
        let wall = chrono::Utc::now();

        // New notifications, each to the fault that holds its check.
        let alerts = twin.monitoring.webhook.alerts();
        for alert in &alerts[seen..] {
            let page = page_of(alert);
            let mut owner = rows
                .iter_mut()
                .find(|r| r.holds() && r.flips.contains(&page.2));
            if let Some(row) = &mut owner {
                let when = match row.stage {
                    Stage::Repaired => format!(
                        "{:.1}s after the repair",
                        (now - row.repaired).as_secs_f64()
                    ),
                    _ => format!("{:.1}s after the fault", (now - row.injected).as_secs_f64()),
                };
                row.events.push(format!(
                    "{} {}/{}/{} {when}",
                    alert["status"].as_str().unwrap_or("?"),
                    page.0,
                    page.1,
                    page.2
                ));
            }
            match (owner, alert["status"].as_str()) {
                (Some(row), Some("firing")) => {
                    if row.stage == Stage::Repaired && !row.got.contains(&page) {
                        row.problems
                            .push(format!("{page:?} paged after the repair"));
                    }
                    if row.pages.insert(page) {
                        let at = now - row.injected;
                        row.first_page.get_or_insert(at);
                        row.last_page_at = Some(now);
                        if row.pages.is_superset(&row.expected) && row.all_pages.is_none() {
                            row.all_pages = Some(at);
                        }
                    }
                }
                (Some(row), Some("resolved")) => {
                    row.resolved.insert(page);
                }
                (None, Some("firing")) => {
                    let holding: Vec<&str> =
                        rows.iter().filter(|r| r.holds()).map(|r| r.name).collect();
                    strays.push(stray(format!(
                        "page {page:?} at {:.0}s, no fault in place flips {} (in place: {holding:?})",
                        started.elapsed().as_secs_f64(),
                        page.2
                    )));
                }
                _ => {}
            }
        }
        seen = alerts.len();

        // Checks failing that no fault in place flips.
        let held: BTreeSet<String> = rows
            .iter()
            .filter(|r| r.holds())
            .flat_map(|r| r.flips.clone())
            .collect();
        for (name, _) in checks
            .iter()
            .filter(|(n, _)| state(n) != "pass" && !held.contains(*n))
        {
            if stray_checks.insert(name.clone()) {
                let holding: Vec<&str> =
                    rows.iter().filter(|r| r.holds()).map(|r| r.name).collect();
                strays.push(stray(format!(
                    "check {name} {} at {:.0}s, no fault in place flips it (in place: {holding:?})",
                    state(name),
                    started.elapsed().as_secs_f64()
                )));
            }
        }

        for row in rows.iter_mut() {
            match row.stage {
                Stage::InPlace => {
                    if row.verdict.is_none() {
                        if row.flips.is_empty() {
                            // Nothing to flip: the witnesses' runs since.
                            let runs: Option<Vec<_>> = witnesses(row.name)
                                .iter()
                                .map(|w| {
                                    time_of(&checks[*w]["last_run"]["started_at"])
                                        .filter(|t| *t > row.injected_wall)
                                })
                                .collect();
                            if let Some(runs) = runs {
                                let last = runs.into_iter().max().unwrap();
                                row.verdict = Some((since(row.injected_wall, last), now));
                            }
                        } else if row.flips.iter().all(|f| state(f) != "pass") {
                            let last = row
                                .flips
                                .iter()
                                .filter_map(|f| time_of(&checks[f]["failing_since"]))
                                .max()
                                .unwrap_or(wall);
                            row.verdict = Some((since(row.injected_wall, last), now));
                        } else if now - row.injected > row.longest + Duration::from_secs(90) {
                            let failing: Vec<String> = row
                                .flips
                                .iter()
                                .filter(|f| state(f) != "pass")
                                .cloned()
                                .collect();
                            row.problems.push(format!(
                                "flipped only {failing:?} of {:?} after {:.0}s",
                                row.flips,
                                (now - row.injected).as_secs_f64()
                            ));
                        }
                    }
                    let ready = match row.verdict {
                        Some((_, seen_at)) => {
                            let quiet = now - seen_at >= settle
                                && row.last_page_at.is_none_or(|t| now - t >= settle);
                            quiet
                                && (row.pages.is_superset(&row.expected)
                                    || now - seen_at >= page_limit)
                        }
                        None => !row.problems.is_empty(),
                    };
                    if ready {
                        row.got = row.pages.clone();
                        let repairing = Instant::now();
                        repair(twin, row.name, &mut row.held).await;
                        row.repaired = Instant::now();
                        eprintln!(
                            "fault {}: repaired at {:.0}s (took {:.1}s), pages {:?}",
                            row.name,
                            started.elapsed().as_secs_f64(),
                            (row.repaired - repairing).as_secs_f64(),
                            row.got
                        );
                        row.stage = Stage::Repaired;
                    }
                }
                Stage::Repaired => {
                    if row.resolution.is_none()
                        && !row.got.is_empty()
                        && row.resolved.is_superset(&row.got)
                    {
                        row.resolution = Some(now - row.repaired);
                    }
                    let passing = row.flips.iter().all(|f| state(f) == "pass");
                    let resolved = row.got.is_empty() || row.resolution.is_some();
                    if passing && resolved {
                        row.stage = Stage::Done;
                    } else if now - row.repaired > row.longest + Duration::from_secs(120) {
                        let failing: Vec<String> = row
                            .flips
                            .iter()
                            .filter(|f| state(f) != "pass")
                            .cloned()
                            .collect();
                        row.problems.push(format!(
                            "after the repair: failing {failing:?}, resolved {:?} of {:?}",
                            row.resolved, row.got
                        ));
                        row.stage = Stage::Done;
                    }
                    if row.stage == Stage::Done {
                        if row.verdict.is_none() && row.problems.is_empty() {
                            row.problems.push("no verdict".to_string());
                        }
                        if row.got != row.expected {
                            row.problems
                                .push(format!("pages {:?}, intended {:?}", row.got, row.expected));
                        }
                        eprintln!("{}\n  {}", row.table_line(), row.events.join("\n  "));
                    }
                }
                Stage::Pending | Stage::Done => {}
            }
        }

        // Faults to put in place.
        for &i in &order {
            if rows[i].stage != Stage::Pending {
                continue;
            }
            let name = rows[i].name;
            let in_place = rows.iter().filter(|r| r.holds()).count();
            let free = if name == LAST {
                rows.iter()
                    .all(|r| r.name == LAST || r.stage == Stage::Done)
            } else {
                in_place < MAX_IN_PLACE
                    && rows.iter().filter(|r| r.holds()).all(|r| {
                        r.flips.is_disjoint(&rows[i].flips)
                            && parts(r.name).iter().all(|p| !parts(name).contains(p))
                    })
            };
            // A 10 s query is seen only by a run while it lasts: it starts
            // a few seconds before postgres-metrics' next run.
            let timely = name != "query-10s"
                || time_of(&checks["postgres-metrics"]["next_run_at"]).is_some_and(|next| {
                    let ahead = (next - chrono::Utc::now()).num_milliseconds();
                    (1500..6000).contains(&ahead)
                });
            if !(free && timely) {
                continue;
            }
            let row = &mut rows[i];
            let injecting = Instant::now();
            inject(twin, name, &mut row.held).await;
            row.injected = Instant::now();
            row.injected_wall = chrono::Utc::now();
            row.injection_took = row.injected - injecting;
            row.in_place_at = started.elapsed();
            row.stage = Stage::InPlace;
            eprintln!(
                "fault {name}: in place at {:.0}s (injected in {:.1}s)",
                row.in_place_at.as_secs_f64(),
                row.injection_took.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Matrix {
        rows,
        strays,
        took: started.elapsed(),
    }
}
