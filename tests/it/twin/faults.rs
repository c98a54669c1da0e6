//! The fault matrix: each fault injected into the running twin flips
//! exactly its checks (with the reason it must give, for some), and its
//! repair makes every check pass again (docs/twin.md has the table).
use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::inject::{inject, repair, Held};
use super::{not_passed, skip_args, STARTING};
use support::twin::Twin;

/// A fault: how to inject it, how to repair it, and the checks it must
/// flip (exactly those).
pub(super) struct Fault {
    pub(super) name: &'static str,
    pub(super) flips: &'static [&'static str],
}

/// The fault matrix (docs/twin.md has its table). `short` faults run in
/// CI.
pub(super) const FAULTS: &[(Fault, bool)] = &[
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
                // Prometheus' scrape of the API fails: the target is down
                // and its series go stale. Rates over [5m] still see the
                // samples before, so the latency and error-rate checks
                // keep passing for those minutes.
                "prometheus-targets-up",
                "prometheus-custom-metrics",
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
            name: "redis-memory-95-percent-evicting",
            flips: &["redis-metrics"],
        },
        false,
    ),
    (
        Fault {
            name: "redis-maxmemory-unlimited",
            flips: &["redis-metrics"],
        },
        false,
    ),
    (
        Fault {
            name: "secret-past-rotation",
            flips: &["key-vault-secrets-critical"],
        },
        true,
    ),
    (
        Fault {
            name: "image-tag-missing",
            flips: &["api-image"],
        },
        true,
    ),
    // The defect the shipped config had: the current tag was counted, so
    // "3 previous versions" passed with 2.
    (
        Fault {
            name: "two-rollback-tags",
            flips: &["api-image"],
        },
        false,
    ),
    // The workload identity loses its AcrPull role: ACR still exchanges
    // its Entra ID token, but the repository tokens grant nothing.
    (
        Fault {
            name: "acr-pull-revoked",
            flips: &["api-image", "web-image"],
        },
        false,
    ),
    // Entra ID refuses the projected service account token (the
    // federated credential deleted, or its subject no longer matching):
    // every check signing in with the workload identity fails.
    (
        Fault {
            name: "federated-token-refused",
            flips: &[
                "key-vault-secrets-critical",
                "key-vault-secrets-high-medium",
                "key-vault-secrets-low",
                "api-image",
                "web-image",
            ],
        },
        false,
    ),
    (
        Fault {
            name: "backup-30-hours-old",
            flips: &["database-backup"],
        },
        true,
    ),
    (
        Fault {
            name: "backup-shrank-70-percent",
            flips: &["database-backup"],
        },
        false,
    ),
    // The defect the shipped config had: sentry-dsn was optional, so a
    // vault without it passed.
    (
        Fault {
            name: "sentry-dsn-missing",
            flips: &["key-vault-secrets-low"],
        },
        false,
    ),
    // The defect the shipped config had: only login.windows.net was
    // accepted in the challenge. A vault naming the other sign-in host is
    // healthy: nothing may flip.
    (
        Fault {
            name: "vault-challenge-names-login-microsoftonline",
            flips: &[],
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
    // Last: the Deployment then runs a commit that is not the platform's
    // current tag (the faults above name that tag).
    (
        Fault {
            name: "wrong-commit-after-rollout",
            flips: &["api-version"],
        },
        false,
    ),
];

/// Whether a fault runs: `TWIN_FAULTS` unset, the short list (CI); `all`,
/// every fault; else the comma-separated fault names.
pub(super) fn selected(name: &str, short: bool) -> bool {
    match std::env::var("TWIN_FAULTS") {
        Err(_) => short,
        Ok(list) if list == "all" => true,
        Ok(list) => list.split(',').any(|n| n.trim() == name),
    }
}

/// The faults `TWIN_FAULTS` names that the matrix does not have.
fn unknown_faults() -> Vec<String> {
    let list = std::env::var("TWIN_FAULTS").unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "all")
        .filter(|n| FAULTS.iter().all(|(f, _)| f.name != *n))
        .map(str::to_string)
        .collect()
}

/// What a flipped check's message must say for some faults: fault, check,
/// words of the reason.
const REASONS: &[(&str, &str, &str)] = &[
    (
        "image-tag-missing",
        "api-image",
        "not found on broxivaprodacr.azurecr.io (no manifest for the tag)",
    ),
    (
        "two-rollback-tags",
        "api-image",
        "at least 3 needed for a rollback",
    ),
    (
        "acr-pull-revoked",
        "api-image",
        "refused the realm's token for repository:broxiva-api:pull (401, insufficient_scope)",
    ),
    (
        "acr-pull-revoked",
        "web-image",
        "the identity needs pull rights on the repository (AcrPull)",
    ),
    (
        "federated-token-refused",
        "api-image",
        "refused workload identity 5e2ab6b1-9f3c-4c1e-a8a5-vouch0000001 (401 Unauthorized): invalid_client (AADSTS700213)",
    ),
    (
        "federated-token-refused",
        "web-image",
        "refused workload identity",
    ),
    (
        "federated-token-refused",
        "key-vault-secrets-critical",
        "refused workload identity",
    ),
];

/// Runs the served checks until `done` holds for the report (the twin's
/// servers take a moment to notice a change): the checks that did not
/// pass and the time it took, or after `limit` the last ones seen.
async fn check_until(
    twin: &Twin,
    limit: Duration,
    done: impl Fn(&BTreeMap<String, (String, String)>) -> bool,
) -> Result<(BTreeMap<String, (String, String)>, Duration), BTreeMap<String, (String, String)>> {
    let started = Instant::now();
    loop {
        let (_, report) = twin.check(&skip_args()).await;
        let failing = not_passed(&report);
        if done(&failing) {
            return Ok((failing, started.elapsed()));
        }
        if started.elapsed() >= limit {
            return Err(failing);
        }
    }
}

/// One row of the fault matrix: the fault flips exactly its checks, and
/// its repair makes every check pass again. The table row, or what went
/// wrong (the matrix goes on with the next fault either way).
async fn fault_row(twin: &mut Twin, fault: &Fault) -> Result<String, String> {
    let expected: BTreeSet<String> = fault.flips.iter().map(|s| s.to_string()).collect();
    let mut held = Held::default();
    inject(twin, fault.name, &mut held).await;
    let flipped = check_until(twin, Duration::from_secs(60), |failing| {
        failing.keys().cloned().collect::<BTreeSet<_>>() == expected
    })
    .await;
    repair(twin, fault.name, &mut held).await;
    let repaired = check_until(twin, Duration::from_secs(90), |failing| failing.is_empty()).await;
    let (failing, to_verdict) = flipped.map_err(|failing| {
        format!(
            "{}: expected exactly {expected:?} to flip, after 60s: {failing:#?}",
            fault.name
        )
    })?;
    let (_, to_repair) = repaired
        .map_err(|failing| format!("{}: after the repair, after 90s: {failing:#?}", fault.name))?;
    let reasons: Vec<String> = failing
        .iter()
        .map(|(name, (verdict, message))| format!("{name}: {verdict}: {message}"))
        .collect();
    for (_, check, words) in REASONS.iter().filter(|(f, _, _)| *f == fault.name) {
        let message = &failing[*check].1;
        if !message.contains(words) {
            return Err(format!(
                "{}: {check} failed saying {message:?}, not {words:?}",
                fault.name
            ));
        }
    }
    eprintln!(
        "fault {}: flipped {expected:?} in {to_verdict:?}; repaired in {to_repair:?}\n  {}",
        fault.name,
        reasons.join("\n  ")
    );
    let flips: Vec<String> = expected.iter().map(|n| format!("`{n}`")).collect();
    Ok(format!(
        "| {} | {} | {:.1}s | {:.1}s |",
        fault.name,
        if flips.is_empty() {
            "none".to_string()
        } else {
            flips.join(", ")
        },
        to_verdict.as_secs_f64(),
        to_repair.as_secs_f64()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_flips_exactly_its_checks_and_repair_restores_them() {
    assert!(
        unknown_faults().is_empty(),
        "TWIN_FAULTS names faults the matrix does not have: {:?}",
        unknown_faults()
    );
    let starting = STARTING.lock().await;
    let mut twin = Twin::start().await;
    let (code, report) = twin.check(&skip_args()).await;
    drop(starting);
    assert!(
        code == 0,
        "healthy before the faults: {:#?}",
        not_passed(&report)
    );
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for (fault, short) in FAULTS {
        if !selected(fault.name, *short) {
            continue;
        }
        match fault_row(&mut twin, fault).await {
            Ok(row) => table.push(row),
            Err(problem) => {
                eprintln!("FAULT ROW WRONG: {problem}");
                wrong.push(problem);
            }
        }
    }
    eprintln!("| fault | checks that flipped (exactly) | fault → verdict | repair → all pass |");
    for row in table {
        eprintln!("{row}");
    }
    assert!(
        wrong.is_empty(),
        "fault rows not as expected:\n{}",
        wrong.join("\n")
    );
}
