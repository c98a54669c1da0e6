//! The latest result of every check, kept for the JSON API (and the status
//! page to come), and the JSON shape shared with the gate report.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{Kind, Severity};
use crate::lock::{read, write};
use crate::plan::{PlannedCheck, Rollout};
use crate::result::{Measurement, Reason, Verdict};
use crate::runner::RunRecord;

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// One run as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    pub verdict: Verdict,
    pub reason: Reason,
    pub message: String,
    pub started_at: String,
    pub duration_seconds: f64,
    pub measurements: Vec<Measurement>,
}

impl From<&RunRecord> for RunView {
    fn from(record: &RunRecord) -> Self {
        RunView {
            verdict: record.outcome.verdict,
            reason: record.outcome.reason,
            message: record.outcome.message.clone(),
            started_at: rfc3339(record.started_at),
            duration_seconds: record.duration.as_secs_f64(),
            measurements: record.outcome.measurements.clone(),
        }
    }
}

/// A check's static facts as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct CheckView {
    pub name: String,
    pub section: String,
    pub kind: Kind,
    pub severity: Severity,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl From<&PlannedCheck> for CheckView {
    fn from(check: &PlannedCheck) -> Self {
        CheckView {
            name: check.name.clone(),
            section: check.section.clone(),
            kind: check.kind,
            severity: check.severity,
            interval_seconds: check.interval.as_secs_f64(),
            timeout_seconds: check.timeout.as_secs_f64(),
            labels: check.labels.clone(),
        }
    }
}

/// Runs kept per check, in memory only.
pub const HISTORY_LEN: usize = 60;

/// One past run, as the history shows it.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryView {
    pub verdict: Verdict,
    pub reason: Reason,
    pub message: String,
    pub started_at: String,
    pub duration_seconds: f64,
}

/// A check with its latest state, as `/api/v1/checks` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct CheckStatus {
    #[serde(flatten)]
    pub check: CheckView,
    /// `pending` until the first run ends, then the reported verdict (the
    /// last run's, once flap thresholds agree).
    pub state: &'static str,
    /// The last run as it was, before flap thresholds.
    pub last_run: Option<RunView>,
    /// Verdicts of the most recent runs, oldest first (at most
    /// [`HISTORY_LEN`]).
    pub recent: Vec<Verdict>,
    pub last_success_at: Option<String>,
    pub consecutive_failures: u32,
    /// When the current run of non-passing results began (the start of
    /// its first run); absent while the last run passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    /// The next planned run; before the first, when the schedule plans it.
    pub next_run_at: Option<String>,
    /// The last rollout of a workload in the check's `after_rollout_of`,
    /// so "verified since rollout X" can be read off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rollout: Option<RolloutView>,
}

impl CheckStatus {
    /// A check run once by `vouch check`: the same shape as
    /// `/api/v1/checks`, its state the run's verdict (no flap thresholds
    /// apply to a single run) and nothing planned after it.
    pub fn of_single_run(record: &RunRecord) -> Self {
        let passed = record.outcome.verdict == Verdict::Pass;
        CheckStatus {
            check: CheckView::from(record.check.as_ref()),
            state: record.outcome.verdict.as_str(),
            last_run: Some(RunView::from(record)),
            recent: vec![record.outcome.verdict],
            last_success_at: passed.then(|| rfc3339(record.started_at + record.duration)),
            consecutive_failures: u32::from(!passed),
            failing_since: (!passed).then(|| rfc3339(record.started_at)),
            next_run_at: None,
            last_rollout: None,
        }
    }
}

/// A rollout a check followed.
#[derive(Clone, Debug, Serialize)]
pub struct RolloutView {
    /// `namespace/name` of the Deployment or StatefulSet.
    pub workload: String,
    pub generation: i64,
    pub seen_at: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub total: usize,
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub pending: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct StatusSnapshot {
    pub summary: Summary,
    pub checks: Vec<CheckStatus>,
    /// Set while the config running is an older one because the last
    /// reload was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_reload: Option<RejectedReload>,
}

/// A reload that was refused: when, and every problem (`file:line: key:
/// message`).
#[derive(Clone, Debug, Serialize)]
pub struct RejectedReload {
    pub at: String,
    pub problems: Vec<String>,
}

/// One past run as a check keeps it: a check holds [`HISTORY_LEN`] of
/// these, so they stay small (no formatted time; a message equal to the
/// run before's is shared, as repeated failures' messages are).
struct PastRun {
    started_at: SystemTime,
    duration: Duration,
    verdict: Verdict,
    reason: Reason,
    message: Arc<str>,
}

impl PastRun {
    fn view(&self) -> HistoryView {
        HistoryView {
            verdict: self.verdict,
            reason: self.reason,
            message: self.message.to_string(),
            started_at: rfc3339(self.started_at),
            duration_seconds: self.duration.as_secs_f64(),
        }
    }
}

struct Entry {
    check: Arc<PlannedCheck>,
    reported: Option<Verdict>,
    history: VecDeque<PastRun>,
    last: Option<RunRecord>,
    last_success: Option<SystemTime>,
    consecutive_failures: u32,
    failing_since: Option<SystemTime>,
    next_run: Option<SystemTime>,
    last_rollout: Option<RolloutView>,
}

/// Latest state per check, in config order.
pub struct StatusBoard {
    entries: RwLock<Vec<Entry>>,
    index: RwLock<HashMap<String, usize>>,
    /// When the schedule started: first runs are planned from here (see
    /// [`crate::scheduler::first_run_offset`]).
    origin: SystemTime,
    rejected_reload: RwLock<Option<RejectedReload>>,
}

/// When a check that has not run yet is planned to: its phase after
/// `origin`, joined at the slot in progress as the scheduler does for a
/// check a reload added.
fn planned_first_run(check: &PlannedCheck, origin: SystemTime, now: SystemTime) -> SystemTime {
    let mut planned = origin + crate::scheduler::first_run_offset(&check.name, check.interval);
    while planned + check.interval <= now {
        planned += check.interval;
    }
    planned
}

impl StatusBoard {
    pub fn new(checks: &[Arc<PlannedCheck>]) -> Self {
        let board = StatusBoard {
            entries: RwLock::default(),
            index: RwLock::default(),
            origin: SystemTime::now(),
            rejected_reload: RwLock::default(),
        };
        board.reconfigure(checks);
        board
    }

    /// Makes `checks` the config in force, in their order. A check whose
    /// fingerprint is unchanged keeps its state and history; a changed or
    /// new one starts empty; a removed one is dropped.
    pub fn reconfigure(&self, checks: &[Arc<PlannedCheck>]) {
        *write(&self.rejected_reload) = None;
        let now = SystemTime::now();
        let mut entries = write(&self.entries);
        let mut old: HashMap<String, Entry> = entries
            .drain(..)
            .map(|entry| (entry.check.name.clone(), entry))
            .collect();
        *entries = checks
            .iter()
            .map(|check| match old.remove(&check.name) {
                Some(entry) if entry.check.fingerprint == check.fingerprint => Entry {
                    check: check.clone(),
                    ..entry
                },
                _ => Entry {
                    check: check.clone(),
                    reported: None,
                    history: VecDeque::with_capacity(HISTORY_LEN),
                    last: None,
                    last_success: None,
                    consecutive_failures: 0,
                    failing_since: None,
                    next_run: Some(planned_first_run(check, self.origin, now)),
                    last_rollout: None,
                },
            })
            .collect();
        *write(&self.index) = checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
    }

    /// Records a run; `reported` is its check's verdict after flap
    /// thresholds.
    pub fn record(&self, record: &RunRecord, reported: Verdict, next_run: Option<SystemTime>) {
        let mut entries = write(&self.entries);
        let index = read(&self.index);
        let Some(&i) = index.get(&record.check.name) else {
            return;
        };
        let entry = &mut entries[i];
        if entry.check.fingerprint != record.check.fingerprint {
            // A run of a check's previous config, finished after a reload.
            return;
        }
        if record.outcome.verdict == Verdict::Pass {
            entry.last_success = Some(record.started_at + record.duration);
            entry.consecutive_failures = 0;
            entry.failing_since = None;
        } else {
            entry.consecutive_failures += 1;
            entry.failing_since.get_or_insert(record.started_at);
        }
        let message = match entry.history.back() {
            Some(previous) if *previous.message == *record.outcome.message => {
                previous.message.clone()
            }
            _ => Arc::from(record.outcome.message.as_str()),
        };
        if entry.history.len() == HISTORY_LEN {
            entry.history.pop_front();
        }
        entry.history.push_back(PastRun {
            started_at: record.started_at,
            duration: record.duration,
            verdict: record.outcome.verdict,
            reason: record.outcome.reason,
            message,
        });
        entry.reported = Some(reported);
        entry.last = Some(record.clone());
        entry.next_run = next_run;
    }

    /// Notes a rollout the check follows.
    pub fn rollout_seen(&self, check: &PlannedCheck, rollout: &Rollout) {
        let mut entries = write(&self.entries);
        let index = read(&self.index);
        let Some(&i) = index.get(&check.name) else {
            return;
        };
        if entries[i].check.fingerprint == check.fingerprint {
            entries[i].last_rollout = Some(RolloutView {
                workload: rollout.workload.to_string(),
                generation: rollout.generation,
                seen_at: rfc3339(SystemTime::now()),
            });
        }
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let entries = read(&self.entries);
        let mut summary = Summary {
            total: entries.len(),
            ..Summary::default()
        };
        let checks = entries
            .iter()
            .map(|entry| {
                let state = match entry.reported {
                    None => {
                        summary.pending += 1;
                        "pending"
                    }
                    Some(verdict) => {
                        match verdict {
                            Verdict::Pass => summary.pass += 1,
                            Verdict::Fail => summary.fail += 1,
                            Verdict::Error => summary.error += 1,
                        }
                        verdict.as_str()
                    }
                };
                CheckStatus {
                    check: CheckView::from(entry.check.as_ref()),
                    state,
                    last_run: entry.last.as_ref().map(RunView::from),
                    recent: entry.history.iter().map(|h| h.verdict).collect(),
                    last_success_at: entry.last_success.map(rfc3339),
                    consecutive_failures: entry.consecutive_failures,
                    failing_since: entry.failing_since.map(rfc3339),
                    next_run_at: entry.next_run.map(rfc3339),
                    last_rollout: entry.last_rollout.clone(),
                }
            })
            .collect();
        let rejected_reload = read(&self.rejected_reload).clone();
        StatusSnapshot {
            summary,
            checks,
            rejected_reload,
        }
    }

    /// Notes a rejected reload: the config in force is now older than the
    /// file. A successful reload ([`Self::reconfigure`]) clears it.
    pub fn reload_rejected(&self, problems: Vec<String>) {
        *write(&self.rejected_reload) = Some(RejectedReload {
            at: rfc3339(SystemTime::now()),
            problems,
        });
    }

    /// One check's recent runs, oldest first; None for an unknown name.
    pub fn history(&self, name: &str) -> Option<Vec<HistoryView>> {
        let entries = read(&self.entries);
        let i = *read(&self.index).get(name)?;
        Some(entries[i].history.iter().map(PastRun::view).collect())
    }

    /// The planned check named `name`.
    pub fn check(&self, name: &str) -> Option<Arc<PlannedCheck>> {
        let entries = read(&self.entries);
        let i = *read(&self.index).get(name)?;
        Some(entries[i].check.clone())
    }
}
