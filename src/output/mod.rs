//! Where results go: Prometheus metrics, the status board behind the JSON
//! API, logs, and the gate report.

pub mod auth_cache;
pub mod check_config;
pub mod check_series;
pub mod gate;
pub mod listener;
pub mod metrics;
pub mod page;
pub mod page_shards;
pub mod peers;
mod render_thread;
pub mod report;
pub mod server;
pub mod status;
pub mod web_config;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::flap::Debounce;
use crate::lock::{lock, read, write};

use crate::plan::{PlannedCheck, Rollout};
use crate::result::{Reason, Verdict};
use crate::runner::RunRecord;
use crate::scheduler::Observer;

use self::metrics::Metrics;
use self::status::StatusBoard;

/// The daemon's outputs, fed by the scheduler.
pub struct Outputs {
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusBoard>,
    /// The reported verdict of each check, debounced by its flap settings.
    debounce: Mutex<HashMap<String, Debounce>>,
    /// Fingerprint of each check of the config in force: results of a
    /// check's previous config, finishing after a reload, are dropped.
    current: RwLock<HashMap<String, String>>,
    /// Each check's last run's verdict and reason, so logs say what changed.
    last_results: Mutex<HashMap<String, (Verdict, Reason)>>,
}

impl Outputs {
    pub fn new(checks: &[Arc<PlannedCheck>]) -> Self {
        Outputs {
            metrics: Arc::new(Metrics::new(checks)),
            status: Arc::new(StatusBoard::new(checks)),
            debounce: Mutex::default(),
            current: RwLock::new(fingerprints(checks)),
            last_results: Mutex::default(),
        }
    }

    /// Follows a successful reload.
    pub fn reconfigure(&self, checks: &[Arc<PlannedCheck>]) {
        let fingerprints = fingerprints(checks);
        let mut current = write(&self.current);
        // A changed or removed check starts its flap state afresh.
        lock(&self.debounce).retain(|name, _| {
            current.get(name).is_some() && current.get(name) == fingerprints.get(name)
        });
        *current = fingerprints;
        drop(current);
        self.metrics.reconfigure(checks);
        self.status.reconfigure(checks);
    }

    fn is_current(&self, check: &PlannedCheck) -> bool {
        read(&self.current)
            .get(&check.name)
            .is_some_and(|f| *f == check.fingerprint)
    }
}

fn fingerprints(checks: &[Arc<PlannedCheck>]) -> HashMap<String, String> {
    checks
        .iter()
        .map(|c| (c.name.clone(), c.fingerprint.clone()))
        .collect()
}

/// Groups `items` by section: sections in the order they first appear
/// (the config's, which follows the checklist), items in their order.
pub fn in_sections<'a, T>(
    items: &'a [T],
    section_of: impl Fn(&'a T) -> &'a str,
) -> Vec<(&'a str, Vec<&'a T>)> {
    let mut sections: Vec<(&str, Vec<&T>)> = Vec::new();
    for item in items {
        let section = section_of(item);
        match sections.iter_mut().find(|(s, _)| *s == section) {
            Some((_, list)) => list.push(item),
            None => sections.push((section, vec![item])),
        }
    }
    sections
}

/// One log line per run, at a level that says whether it is news: a run
/// whose verdict or reason differs from the check's previous run logs at
/// WARN (failing) or INFO (recovered); a repeat of the same result, or a
/// pass after passes, at DEBUG. A check failing for hours so logs once,
/// not every interval. `previous` is the check's previous run's result.
pub fn log_run(record: &RunRecord, previous: Option<(Verdict, Reason)>) {
    let outcome = &record.outcome;
    let check = record.check.name.as_str();
    let duration_ms = record.duration.as_millis() as u64;
    let changed = previous != Some((outcome.verdict, outcome.reason));
    match outcome.verdict {
        Verdict::Pass if changed && previous.is_some() => {
            tracing::info!(check, duration_ms, "recovered: {}", outcome.message)
        }
        Verdict::Pass => tracing::debug!(check, duration_ms, "pass: {}", outcome.message),
        verdict if changed => tracing::warn!(
            check,
            duration_ms,
            verdict = verdict.as_str(),
            reason = outcome.reason.as_str(),
            "{}",
            outcome.message
        ),
        verdict => tracing::debug!(
            check,
            duration_ms,
            verdict = verdict.as_str(),
            reason = outcome.reason.as_str(),
            "still: {}",
            outcome.message
        ),
    }
}

impl Observer for Outputs {
    fn run_started(&self, _check: &PlannedCheck, lateness: Duration) {
        self.metrics.run_started(lateness);
    }

    fn run_finished(&self, record: &RunRecord, next_run: SystemTime) {
        let previous = lock(&self.last_results).insert(
            record.check.name.clone(),
            (record.outcome.verdict, record.outcome.reason),
        );
        log_run(record, previous);
        if !self.is_current(&record.check) {
            self.metrics.run_abandoned();
            return;
        }
        let check = &record.check;
        let reported = lock(&self.debounce)
            .entry(check.name.clone())
            .or_default()
            .observe(
                record.outcome.verdict,
                check.failures_before_fail,
                check.successes_before_pass,
            );
        self.metrics.run_finished(record, reported, true);
        self.status.record(record, reported, Some(next_run));
    }

    fn run_skipped(&self, check: &PlannedCheck) {
        if !self.is_current(check) {
            return;
        }
        tracing::warn!(check = %check.name, "run skipped: the previous run has not finished");
        self.metrics.run_skipped(check);
    }

    fn slots_missed(&self, check: &PlannedCheck, missed: u64, stalled: Duration) {
        // Every check misses its slots in the same stall: one warning per
        // stall (at most one a minute), the details at debug.
        static LAST_WARNING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = LAST_WARNING.load(std::sync::atomic::Ordering::Acquire);
        let stalled_ms = stalled.as_millis() as u64;
        if now >= last + 60
            && LAST_WARNING
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::AcqRel,
                    std::sync::atomic::Ordering::Acquire,
                )
                .is_ok()
        {
            tracing::warn!(
                check = %check.name,
                missed,
                stalled_ms,
                "planned runs missed: the process was stalled (suspended or starved of CPU) past their slots; vouch_scheduler_missed_slots_total counts them for every check"
            );
        } else {
            tracing::debug!(check = %check.name, missed, stalled_ms, "planned runs missed after a stall");
        }
        self.metrics.slots_missed(missed);
    }

    fn rollout_seen(&self, check: &PlannedCheck, rollout: &Rollout) {
        if !self.is_current(check) {
            return;
        }
        tracing::info!(
            check = %check.name,
            workload = %rollout.workload,
            generation = rollout.generation,
            "rollout seen: running the check now and on its rollout interval"
        );
        self.metrics.rollout_seen(check);
        self.status.rollout_seen(check, rollout);
    }
}
