//! The shipped config (examples/broxiva/vouch.yaml) run
//! unchanged against a twin of the broxiva platform (tests/support/twin):
//! healthy, every check it can serve passes; each injected fault flips
//! exactly the checks it should, and repair brings them back.
//!
//! The checks the twin cannot serve yet are listed in [`NOT_SERVED`] with
//! the reason (docs/twin.md); every other check of the config must pass.
//!
//! [`faults`] is the fault matrix (how each fault is injected and repaired:
//! [`inject`]), [`alerts`] the same twin under `vouch serve` with the
//! shipped alert rules.
//! `TWIN_FAULTS=all` runs the whole fault matrix, `TWIN_FAULTS=a,b` the
//! faults named; by default (CI) a short list runs.
use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::Value;
use support::twin::Twin;

mod alerts;
mod faults;
mod inject;

/// Checks of the shipped config the twin does not serve, and why.
const NOT_SERVED: &[(&str, &str)] = &[
    (
        "postgres-disk-space",
        "kubelet volume metrics: no kubelet here",
    ),
    (
        "volume-disk-usage",
        "kubelet volume metrics: no kubelet here",
    ),
    (
        "node-cpu-usage",
        "node-exporter series of the cluster's nodes: no nodes here (this shared machine's own load is no node of the platform)",
    ),
    ("node-memory-usage", "as node-cpu-usage"),
    ("node-disk-usage", "as node-cpu-usage"),
    (
        "postgres-cpu",
        "cAdvisor and kube-state-metrics series: no kubelet here",
    ),
    ("postgres-memory", "as postgres-cpu"),
    ("grafana-health", "Grafana does not install here"),
    ("grafana-dashboards", "Grafana does not install here"),
    ("stripe-api-reachable", "third-party service; not imitated"),
    (
        "sendgrid-api-reachable",
        "third-party service; not imitated",
    ),
    ("openai-api-reachable", "third-party service; not imitated"),
];

/// Held while a test starts its twin and runs its first check: the
/// tests of tests/it/twin/ run in parallel, and three twins starting at once
/// on a 2-core machine slow the API's first answers past the shipped 1 s
/// latency limit.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let starting = STARTING.lock().await;
    let twin = Twin::start().await;
    eprintln!("twin started in {:?}", twin.started_in);
    let started = Instant::now();
    let (code, report) = twin.check(&skip_args()).await;
    drop(starting);
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
    // The images were read with ACR tokens exchanged for the workload
    // identity's Entra ID token: one exchange per run is shared by both
    // repositories, each with its own repository token.
    let scopes: BTreeSet<String> = twin
        .acr
        .forms("/oauth2/token")
        .iter()
        .filter_map(|form| form.get("scope").cloned())
        .collect();
    assert_eq!(twin.acr.calls("/oauth2/exchange"), 1);
    assert_eq!(
        scopes,
        BTreeSet::from([
            "repository:broxiva-api:pull".to_string(),
            "repository:broxiva-web:pull".to_string()
        ])
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
