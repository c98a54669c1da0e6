//! The shipped config (deploy/overlays/broxiva-production/vouch.yaml) run
//! unchanged against a twin of the broxiva platform (tests/support/twin):
//! healthy, every check it can serve passes; each injected fault flips
//! exactly the checks it should, and repair brings them back.
//!
//! The checks the twin cannot serve yet are listed in [`NOT_SERVED`] with
//! the reason (docs/twin.md); every other check of the config must pass.
//! `TWIN_FAULTS=all` runs the whole fault matrix; by default (CI) a short
//! list runs.
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::twin::{cluster, Twin};

/// Checks of the shipped config the twin does not serve, and why.
const NOT_SERVED: &[(&str, &str)] = &[
    (
        "key-vault-reachable",
        "Key Vault fake serves only its own name (localhost) in TLS",
    ),
    ("key-vault-secrets-critical", "as key-vault-reachable"),
    ("key-vault-secrets-high-medium", "as key-vault-reachable"),
    ("key-vault-secrets-low", "as key-vault-reachable"),
    (
        "database-backup",
        "the backup kind's Azure client is not reached by --connect-to",
    ),
    ("acr-reachable", "ACR's token realm is not in the twin yet"),
    ("api-image", "as acr-reachable"),
    ("web-image", "as acr-reachable"),
    (
        "postgres-disk-space",
        "kubelet volume metrics: no kubelet here",
    ),
    (
        "prometheus-targets-up",
        "the twin has no Prometheus in monitoring yet",
    ),
    ("prometheus-custom-metrics", "as prometheus-targets-up"),
    ("prometheus-rules-loaded", "as prometheus-targets-up"),
    (
        "alertmanager-healthy",
        "the twin has no Alertmanager in monitoring yet",
    ),
    ("alertmanager-receivers", "as alertmanager-healthy"),
    ("grafana-health", "Grafana does not install here"),
    ("grafana-dashboards", "Grafana does not install here"),
    ("api-latency-p50", "as prometheus-targets-up"),
    ("api-latency-p95", "as prometheus-targets-up"),
    ("api-latency-p99", "as prometheus-targets-up"),
    ("api-error-rate", "as prometheus-targets-up"),
    ("api-request-rate-stable", "as prometheus-targets-up"),
    ("api-error-rate-high", "as prometheus-targets-up"),
    ("api-latency-p95-high", "as prometheus-targets-up"),
    ("node-cpu-usage", "node-exporter series: no nodes here"),
    ("node-memory-usage", "as node-cpu-usage"),
    ("node-disk-usage", "as node-cpu-usage"),
    (
        "volume-disk-usage",
        "kubelet volume metrics: no kubelet here",
    ),
    (
        "postgres-cpu",
        "cAdvisor and kube-state-metrics series: no kubelet here",
    ),
    ("postgres-memory", "as postgres-cpu"),
    ("stripe-api-reachable", "third-party service; not imitated"),
    (
        "sendgrid-api-reachable",
        "third-party service; not imitated",
    ),
    ("openai-api-reachable", "third-party service; not imitated"),
];

fn skip_args() -> Vec<String> {
    NOT_SERVED
        .iter()
        .flat_map(|(name, _)| ["--skip".to_string(), name.to_string()])
        .collect()
}

/// Verdict of every check of a report, by name.
fn verdicts(report: &Value) -> BTreeMap<String, (String, String)> {
    report["checks"]
        .as_array()
        .expect("the report lists checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                (
                    c["verdict"].as_str().unwrap_or("?").to_string(),
                    c["message"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

fn not_passed(report: &Value) -> BTreeMap<String, (String, String)> {
    verdicts(report)
        .into_iter()
        .filter(|(_, (verdict, _))| verdict != "pass")
        .collect()
}

fn config_check_names() -> Vec<String> {
    let text = std::fs::read_to_string(support::twin::CONFIG).unwrap();
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    config["checks"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_not_served_list_names_only_checks_of_the_shipped_config() {
    let names: BTreeSet<String> = config_check_names().into_iter().collect();
    for (name, reason) in NOT_SERVED {
        assert!(names.contains(*name), "{name} is not a shipped check");
        assert!(!reason.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthy_twin_passes_every_shipped_check_it_serves() {
    let twin = Twin::start().await;
    eprintln!("twin started in {:?}", twin.started_in);
    let started = Instant::now();
    let (code, report) = twin.check(&skip_args()).await;
    eprintln!("vouch check against the twin took {:?}", started.elapsed());
    let ran = verdicts(&report);
    assert_eq!(
        ran.len(),
        config_check_names().len() - NOT_SERVED.len(),
        "every served check ran"
    );
    assert!(
        not_passed(&report).is_empty() && code == 0,
        "healthy twin, checks that did not pass: {:#?}",
        not_passed(&report)
    );
}

/// A fault: how to inject it, how to repair it, and the checks it must
/// flip (exactly those).
struct Fault {
    name: &'static str,
    flips: &'static [&'static str],
}

/// The fault matrix (docs/twin.md has its table). `short` faults run in
/// CI.
const FAULTS: &[(Fault, bool)] = &[
    (
        Fault {
            name: "redis-down",
            flips: &[
                "redis-ready",
                "redis-persistence",
                "redis-metrics",
                "api-health-ready",
            ],
        },
        true,
    ),
    (
        Fault {
            name: "postgres-down",
            flips: &[
                "postgres-accessible",
                "postgres-migrations",
                "postgres-metrics",
                "postgres-users",
                "api-health-ready",
            ],
        },
        false,
    ),
    (
        Fault {
            name: "api-stopped",
            flips: &[
                "api-health-live-internal",
                "api-health-live",
                "api-health-ready",
                "api-version",
                "api-docs",
            ],
        },
        true,
    ),
    (
        Fault {
            name: "www-not-redirecting",
            flips: &["web-www-redirect"],
        },
        true,
    ),
    (
        Fault {
            name: "cluster-issuer-not-ready",
            flips: &["cluster-issuer-ready"],
        },
        true,
    ),
    (
        Fault {
            name: "external-secret-stale",
            flips: &["external-secrets-synced"],
        },
        false,
    ),
    (
        Fault {
            name: "snapshot-8-days-old",
            flips: &["pvc-snapshots-recent"],
        },
        false,
    ),
    (
        Fault {
            name: "hpa-pinned-at-max",
            flips: &["api-hpa"],
        },
        false,
    ),
    (
        Fault {
            name: "servicemonitor-missing",
            flips: &["web-servicemonitor"],
        },
        false,
    ),
    (
        Fault {
            name: "configmap-port-wrong",
            flips: &["app-config-values"],
        },
        false,
    ),
    (
        Fault {
            name: "pending-migration",
            flips: &["postgres-migrations"],
        },
        false,
    ),
];

async fn inject(twin: &mut Twin, fault: &str) {
    match fault {
        "redis-down" => twin.redis.stop(),
        "postgres-down" => twin.postgres.stop(),
        "api-stopped" => twin.api.stop(),
        "www-not-redirecting" => {
            let mut spec = twin.ingress.spec.clone();
            spec.www_redirects = false;
            twin.ingress.reload(spec);
        }
        "cluster-issuer-not-ready" => {
            twin.kube.apply(cluster::cluster_issuer(false));
        }
        "external-secret-stale" => {
            twin.kube.apply(cluster::external_secret(3 * 3600));
        }
        "snapshot-8-days-old" => {
            twin.kube.apply(cluster::volume_snapshot(8 * 86_400));
        }
        "hpa-pinned-at-max" => {
            twin.kube.apply(cluster::hpa("broxiva-api", 5, 20, 20));
        }
        "servicemonitor-missing" => {
            twin.kube.delete(
                "monitoring.coreos.com/v1",
                "ServiceMonitor",
                Some(cluster::NAMESPACE),
                "broxiva-web",
            );
        }
        "configmap-port-wrong" => {
            let mut map = cluster::config_map();
            map["data"]["PORT"] = "3000".into();
            twin.kube.apply(map);
        }
        "pending-migration" => {
            // The release's newest migration is newer than the applied one:
            // the table as TypeORM leaves it after a failed migration run.
            twin.broxiva_session()
                .await
                .batch_execute("DELETE FROM migrations")
                .await
                .unwrap();
        }
        other => panic!("unknown fault {other}"),
    }
}

async fn repair(twin: &mut Twin, fault: &str) {
    match fault {
        "redis-down" => twin.redis.start(),
        "postgres-down" => twin.postgres.start(),
        "api-stopped" => {
            twin.api.start();
            twin.api
                .wait_for("/api/health/ready", 200, Duration::from_secs(60));
        }
        "www-not-redirecting" => {
            let mut spec = twin.ingress.spec.clone();
            spec.www_redirects = true;
            twin.ingress.reload(spec);
        }
        "cluster-issuer-not-ready" => {
            twin.kube.apply(cluster::cluster_issuer(true));
        }
        "external-secret-stale" => {
            twin.kube.apply(cluster::external_secret(600));
        }
        "snapshot-8-days-old" => {
            twin.kube.apply(cluster::volume_snapshot(86_400));
        }
        "hpa-pinned-at-max" => {
            twin.kube.apply(cluster::hpa("broxiva-api", 5, 20, 5));
        }
        "servicemonitor-missing" => {
            twin.kube.apply(cluster::service_monitor("broxiva-web"));
        }
        "configmap-port-wrong" => {
            twin.kube.apply(cluster::config_map());
        }
        "pending-migration" => {
            twin.broxiva_session()
                .await
                .batch_execute(
                    "INSERT INTO migrations (timestamp, name) VALUES (1735689600000, 'InitialSchema1735689600000')",
                )
                .await
                .unwrap();
        }
        other => panic!("unknown fault {other}"),
    }
}

/// Runs the served checks until `done` holds for the report (the twin's
/// servers take a moment to notice a change); the last report.
async fn check_until(
    twin: &Twin,
    what: &str,
    limit: Duration,
    done: impl Fn(&BTreeMap<String, (String, String)>) -> bool,
) -> (BTreeMap<String, (String, String)>, Duration) {
    let started = Instant::now();
    loop {
        let (_, report) = twin.check(&skip_args()).await;
        let failing = not_passed(&report);
        if done(&failing) {
            return (failing, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{what}: still not as expected after {limit:?}: {failing:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_flips_exactly_its_checks_and_repair_restores_them() {
    let all = std::env::var("TWIN_FAULTS").is_ok_and(|v| v == "all");
    let mut twin = Twin::start().await;
    let (code, report) = twin.check(&skip_args()).await;
    assert!(
        code == 0,
        "healthy before the faults: {:#?}",
        not_passed(&report)
    );
    let mut table = Vec::new();
    for (fault, short) in FAULTS {
        if !all && !short {
            continue;
        }
        let expected: BTreeSet<String> = fault.flips.iter().map(|s| s.to_string()).collect();
        inject(&mut twin, fault.name).await;
        let (failing, to_verdict) = check_until(
            &twin,
            &format!("fault {}", fault.name),
            Duration::from_secs(60),
            |failing| failing.keys().cloned().collect::<BTreeSet<_>>() == expected,
        )
        .await;
        repair(&mut twin, fault.name).await;
        let (_, to_repair) = check_until(
            &twin,
            &format!("repair of {}", fault.name),
            Duration::from_secs(90),
            |failing| failing.is_empty(),
        )
        .await;
        let reasons: Vec<String> = failing
            .iter()
            .map(|(name, (verdict, message))| format!("{name}: {verdict}: {message}"))
            .collect();
        eprintln!(
            "fault {}: flipped {:?} in {to_verdict:?}; repaired in {to_repair:?}\n  {}",
            fault.name,
            expected,
            reasons.join("\n  ")
        );
        table.push((fault.name, expected, to_verdict, to_repair));
    }
    eprintln!("| fault | checks flipped | fault → verdict | repair → pass |");
    for (name, flipped, to_verdict, to_repair) in table {
        eprintln!(
            "| {name} | {} | {:.1}s | {:.1}s |",
            flipped.into_iter().collect::<Vec<_>>().join(", "),
            to_verdict.as_secs_f64(),
            to_repair.as_secs_f64()
        );
    }
}
