//! `vouch check`: every selected check once, all concurrently (within the
//! concurrency limit), with live progress on a terminal.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;

use crate::config::Severity;
use crate::lock::lock;
use crate::plan::PlannedCheck;
use crate::probe::Clients;
use crate::runner::{run_once, RunRecord};

/// The lowest severity whose failure fails the gate unless told otherwise:
/// of `vouch check --fail-on`, of `GET /api/v1/gate?severity=` and of the
/// status page's headline, so all three give the same answer.
pub const DEFAULT_FAIL_ON: Severity = Severity::Warning;

/// Runs `checks` once and returns their records in the order given.
pub async fn run_all(
    checks: Vec<Arc<PlannedCheck>>,
    clients: Arc<Clients>,
    max_concurrent_runs: usize,
    show_progress: bool,
) -> Vec<RunRecord> {
    let progress = if show_progress {
        ProgressBar::with_draw_target(Some(checks.len() as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} checks done  running: {msg}")
            .expect("the template is valid"),
    );
    progress.enable_steady_tick(Duration::from_millis(120));
    let running: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let limit = Arc::new(Semaphore::new(max_concurrent_runs.max(1)));
    let mut pending: FuturesUnordered<_> = checks
        .iter()
        .enumerate()
        .map(|(i, check)| {
            let check = check.clone();
            let clients = clients.clone();
            let limit = limit.clone();
            let running = running.clone();
            let progress = progress.clone();
            async move {
                let _permit = limit.acquire_owned().await.expect("never closed");
                update(&progress, &running, |set| set.insert(check.name.clone()));
                let record = run_once(check, clients).await;
                update(&progress, &running, |set| set.remove(&record.check.name));
                progress.inc(1);
                (i, record)
            }
        })
        .collect();
    let mut records: Vec<Option<RunRecord>> = vec![None; checks.len()];
    while let Some((i, record)) = pending.next().await {
        records[i] = Some(record);
    }
    progress.finish_and_clear();
    records
        .into_iter()
        .map(|r| r.expect("every check ran"))
        .collect()
}

fn update(
    progress: &ProgressBar,
    running: &Mutex<BTreeSet<String>>,
    change: impl FnOnce(&mut BTreeSet<String>) -> bool,
) {
    let mut set = lock(running);
    change(&mut set);
    let mut names: Vec<&str> = set.iter().map(String::as_str).take(4).collect();
    if set.len() > 4 {
        names.push("...");
    }
    progress.set_message(names.join(", "));
}
