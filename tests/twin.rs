//! The shipped config (examples/broxiva/vouch.yaml) run
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
                    c["last_run"]["verdict"].as_str().unwrap_or("?").to_string(),
                    c["last_run"]["message"].as_str().unwrap_or("").to_string(),
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
    if std::env::var_os("TWIN_HOLD").is_some() {
        hold(&twin).await;
    }
}

/// scripts/twin.sh: prints how to point vouch at the running twin, then
/// keeps it up until Ctrl-C.
async fn hold(twin: &Twin) {
    let env: Vec<String> = twin
        .vouch_env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!(
        "\nThe twin is up. Try:\n  {} {} check --config {} {}\n(the API on 127.0.0.1:{}, the web tier on 127.0.0.1:{}, nginx on 127.0.0.1:{})\nCtrl-C stops it.",
        env.join(" "),
        support::vouch::bin(),
        support::twin::CONFIG,
        twin.vouch_args().join(" "),
        twin.api.port,
        twin.web.port,
        twin.ingress.port
    );
    let _ = tokio::signal::ctrl_c().await;
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
    (
        Fault {
            name: "rollout-stuck-3-of-5",
            flips: &["api-rollout"],
        },
        false,
    ),
    (
        Fault {
            name: "pod-crash-looping",
            flips: &["api-pods"],
        },
        false,
    ),
    (
        Fault {
            name: "certificate-10-days-left",
            flips: &[
                "api-tls-secret",
                "api-certificate",
                "api-certificate-ready",
                "api-certificate-at-ingress",
            ],
        },
        true,
    ),
    (
        Fault {
            name: "served-certificate-not-cert-managers",
            flips: &["api-certificate"],
        },
        false,
    ),
    (
        Fault {
            name: "certificate-not-ready",
            flips: &["api-certificate-ready"],
        },
        false,
    ),
    (
        Fault {
            name: "dns-old-address",
            flips: &["api-dns", "api-dns-propagated"],
        },
        false,
    ),
    (
        Fault {
            name: "connections-85-percent",
            flips: &["postgres-metrics"],
        },
        false,
    ),
    (
        Fault {
            name: "query-10s",
            flips: &["postgres-metrics"],
        },
        false,
    ),
    (
        Fault {
            name: "wrong-commit-after-rollout",
            flips: &["api-version"],
        },
        false,
    ),
    // Caught by nothing: the checklist lists no security headers, so the
    // shipped config has no check of them (docs/twin.md).
    (
        Fault {
            name: "hsts-missing",
            flips: &[],
        },
        false,
    ),
];

/// Sessions a fault holds until its repair.
#[derive(Default)]
struct Held {
    sessions: Vec<tokio_postgres::Client>,
}

async fn inject(twin: &mut Twin, fault: &str, held: &mut Held) {
    let ns = cluster::NAMESPACE;
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
                .batch_execute(
                    "UPDATE migrations SET timestamp = 1733011200000, name = 'Catalogue1733011200000'",
                )
                .await
                .unwrap();
        }
        "rollout-stuck-3-of-5" => {
            twin.kube.set_deployment_status(
                ns,
                "broxiva-api",
                support::kube_api::objects::DeploymentNumbers {
                    replicas: 5,
                    updated: 3,
                    ready: 3,
                    available: 3,
                },
            );
        }
        "pod-crash-looping" => {
            twin.kube.crash_loop_pod(ns, "broxiva-api-0", "app");
        }
        "certificate-10-days-left" => {
            twin.reissue_api_certificate(chrono::Utc::now() + chrono::Duration::days(10));
        }
        "served-certificate-not-cert-managers" => {
            // cert-manager renewed; the ingress still serves the old one.
            twin.kube.renew_certificate(
                ns,
                "broxiva-api-tls-production",
                twin.platform.cert_not_before,
                twin.platform.api_cert_not_after + chrono::Duration::days(30),
            );
        }
        "certificate-not-ready" => {
            let mut certificate = twin
                .kube
                .get(
                    "cert-manager.io/v1",
                    "Certificate",
                    Some(ns),
                    "broxiva-api-tls-production",
                )
                .unwrap();
            certificate["status"]["conditions"][0]["status"] = "False".into();
            certificate["status"]["conditions"][0]["reason"] = "Failed".into();
            twin.kube.apply(certificate);
        }
        "dns-old-address" => twin.answer_api_with("203.0.113.99"),
        "connections-85-percent" => {
            // As the application's role: sessions of other roles are not
            // visible to the check's role without pg_read_all_stats.
            for _ in 0..170 {
                held.sessions.push(twin.app_session().await);
            }
        }
        "query-10s" => {
            let session = twin.app_session().await;
            tokio::spawn(async move {
                let _ = session.batch_execute("SELECT pg_sleep(10)").await;
            });
        }
        "wrong-commit-after-rollout" => {
            let image = cluster::image("broxiva-api", "a1b2c3d005");
            twin.kube.start_rollout(ns, "broxiva-api", &image);
            while !twin.kube.rollout_step(ns, "broxiva-api") {}
            twin.kube.settle_deployment(ns, "broxiva-api");
        }
        "hsts-missing" => {
            let mut spec = twin.ingress.spec.clone();
            spec.hsts = false;
            twin.ingress.reload(spec);
        }
        other => panic!("unknown fault {other}"),
    }
}

async fn repair(twin: &mut Twin, fault: &str, held: &mut Held) {
    let ns = cluster::NAMESPACE;
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
                    "UPDATE migrations SET timestamp = 1735689600000, name = 'InitialSchema1735689600000'",
                )
                .await
                .unwrap();
        }
        "rollout-stuck-3-of-5" => {
            twin.kube.settle_deployment(ns, "broxiva-api");
        }
        "pod-crash-looping" => {
            let image = cluster::image("broxiva-api", twin.platform.api_tags.last().unwrap());
            twin.kube.apply(support::kube_api::objects::ready_pod(
                ns,
                "broxiva-api-0",
                serde_json::json!({"app": "broxiva-api"}),
                &image,
            ));
        }
        "certificate-10-days-left" => {
            let not_after = twin.platform.api_cert_not_after;
            twin.reissue_api_certificate(not_after);
        }
        "served-certificate-not-cert-managers" | "certificate-not-ready" => {
            twin.kube.renew_certificate(
                ns,
                "broxiva-api-tls-production",
                twin.platform.cert_not_before,
                twin.platform.api_cert_not_after,
            );
        }
        "dns-old-address" => twin.answer_api_with(cluster::API_INGRESS_IP),
        "connections-85-percent" => held.sessions.clear(),
        "query-10s" => {
            twin.broxiva_session()
                .await
                .batch_execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)'",
                )
                .await
                .unwrap();
        }
        "wrong-commit-after-rollout" => {
            // The API is redeployed with the new commit.
            twin.api.stop();
            twin.api.set_env("COMMIT", "a1b2c3d005");
            twin.api.start();
            twin.api
                .wait_for("/api/health/ready", 200, Duration::from_secs(60));
        }
        "hsts-missing" => {
            let mut spec = twin.ingress.spec.clone();
            spec.hsts = true;
            twin.ingress.reload(spec);
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
        let mut held = Held::default();
        inject(&mut twin, fault.name, &mut held).await;
        let (failing, to_verdict) = check_until(
            &twin,
            &format!("fault {}", fault.name),
            Duration::from_secs(60),
            |failing| failing.keys().cloned().collect::<BTreeSet<_>>() == expected,
        )
        .await;
        repair(&mut twin, fault.name, &mut held).await;
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

#[tokio::test]
async fn a_malformed_mapping_is_refused_naming_the_option() {
    for (option, value) in [
        ("--connect-to", "api.broxiva.com:443"),
        ("--connect-to", "api.broxiva.com:https:127.0.0.1:1"),
        ("--map-path", "/etc/vouch"),
    ] {
        let output =
            support::vouch::run(&["validate", "--config", support::twin::CONFIG, option, value])
                .await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{option} {value}: {stderr}");
        assert!(
            stderr.contains(option) && stderr.contains(value),
            "{option} {value}: {stderr}"
        );
    }
}
