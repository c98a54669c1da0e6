//! Runs every check on its own interval. First runs are spread over the
//! interval by a stable per-name offset; a run never overlaps the previous
//! run of the same check; a global limit bounds runs in flight; shutdown
//! lets runs in flight finish within a grace period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::plan::PlannedCheck;
use crate::probe::Clients;
use crate::result::Verdict;
use crate::runner::{run_once, RunRecord};

/// What the scheduler reports; outputs (metrics, status, logs) implement it.
pub trait Observer: Send + Sync + 'static {
    /// A run got its turn `lateness` after its planned start.
    fn run_started(&self, check: &PlannedCheck, lateness: Duration);
    /// A run ended; the next one is planned for `next_run`.
    fn run_finished(&self, record: &RunRecord, next_run: SystemTime);
    /// A planned run was skipped: the previous one had not finished.
    fn run_skipped(&self, check: &PlannedCheck);
}

/// A stable offset in `[0, interval)` from the check's name (FNV-1a), so
/// first runs spread out and land at the same phase after every restart.
pub fn first_run_offset(name: &str, interval: Duration) -> Duration {
    let hash = crate::plan::stable_hash(name.as_bytes());
    let nanos = interval.as_nanos().max(1);
    Duration::from_nanos((u128::from(hash) % nanos) as u64)
}

/// The running scheduler; dropping it does not stop it, [`Self::shutdown`] does.
pub struct Scheduler {
    stop: CancellationToken,
    loops: TaskTracker,
    runs: TaskTracker,
}

impl Scheduler {
    pub fn start(
        checks: &[Arc<PlannedCheck>],
        clients: Arc<Clients>,
        observer: Arc<dyn Observer>,
        max_concurrent_runs: usize,
    ) -> Scheduler {
        let scheduler = Scheduler {
            stop: CancellationToken::new(),
            loops: TaskTracker::new(),
            runs: TaskTracker::new(),
        };
        let limit = Arc::new(Semaphore::new(max_concurrent_runs.max(1)));
        let origin = Instant::now();
        for check in checks {
            let context = LoopContext {
                check: check.clone(),
                clients: clients.clone(),
                observer: observer.clone(),
                limit: limit.clone(),
                runs: scheduler.runs.clone(),
                stop: scheduler.stop.clone(),
            };
            scheduler.loops.spawn(context.run(origin));
        }
        scheduler.loops.close();
        scheduler
    }

    /// Stops planning runs and waits up to `grace` for runs in flight.
    /// Returns whether all of them finished in time.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.stop.cancel();
        self.loops.wait().await;
        self.runs.close();
        tokio::time::timeout(grace, self.runs.wait()).await.is_ok()
    }
}

struct LoopContext {
    check: Arc<PlannedCheck>,
    clients: Arc<Clients>,
    observer: Arc<dyn Observer>,
    limit: Arc<Semaphore>,
    runs: TaskTracker,
    stop: CancellationToken,
}

impl LoopContext {
    async fn run(self, origin: Instant) {
        let interval = self.check.interval;
        let when_failing = self.check.interval_when_failing;
        let state = Arc::new(RunState::default());
        let mut planned = origin + first_run_offset(&self.check.name, interval);
        let mut last_tick = planned;
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep_until(planned) => {}
                _ = state.failing_changed.notified() => {
                    // Only sent with interval_when_failing: a run started
                    // or stopped failing, so the next slot moves.
                    if let Some(fast) = when_failing {
                        planned = if state.last_failed.load(Ordering::Acquire) {
                            planned.min(Instant::now() + fast)
                        } else {
                            planned.max(last_tick + interval)
                        };
                    }
                    continue;
                }
            }
            last_tick = planned;
            if state.in_flight.swap(true, Ordering::AcqRel) {
                self.observer.run_skipped(&self.check);
            } else {
                self.spawn_run(planned, state.clone());
            }
            let step = match when_failing {
                Some(fast) if state.last_failed.load(Ordering::Acquire) => fast,
                _ => interval,
            };
            planned += step;
            // After a stall (suspended process, overloaded host) skip the
            // missed slots instead of firing them in a burst.
            let now = Instant::now();
            while planned + step <= now {
                self.observer.run_skipped(&self.check);
                planned += step;
            }
        }
    }

    fn spawn_run(&self, planned: Instant, state: Arc<RunState>) {
        let check = self.check.clone();
        let clients = self.clients.clone();
        let observer = self.observer.clone();
        let limit = self.limit.clone();
        let stop = self.stop.clone();
        self.runs.spawn(async move {
            let permit = tokio::select! {
                permit = limit.acquire_owned() => permit,
                _ = stop.cancelled() => {
                    state.in_flight.store(false, Ordering::Release);
                    return;
                }
            };
            let _permit = permit.expect("the semaphore is never closed");
            observer.run_started(&check, planned.elapsed());
            let record = run_once(check.clone(), clients).await;
            let failed = record.outcome.verdict != Verdict::Pass;
            let was_failed = state.last_failed.swap(failed, Ordering::AcqRel);
            let step = match check.interval_when_failing {
                Some(fast) if failed => fast,
                _ => check.interval,
            };
            let next = (planned + check.interval).min(Instant::now() + step);
            let next_run = SystemTime::now() + next.saturating_duration_since(Instant::now());
            observer.run_finished(&record, next_run);
            state.in_flight.store(false, Ordering::Release);
            if failed != was_failed && check.interval_when_failing.is_some() {
                state.failing_changed.notify_one();
            }
        });
    }
}

/// What a check's loop and its runs share.
#[derive(Default)]
struct RunState {
    in_flight: AtomicBool,
    last_failed: AtomicBool,
    failing_changed: Notify,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let interval = Duration::from_secs(30);
        let a = first_run_offset("api-health", interval);
        assert_eq!(a, first_run_offset("api-health", interval));
        assert!(a < interval);
        let offsets: Vec<_> = (0..200)
            .map(|i| first_run_offset(&format!("check-{i}"), interval))
            .collect();
        // Spread: every tenth of the interval receives some first runs.
        for bucket in 0..10 {
            let low = interval * bucket / 10;
            let high = interval * (bucket + 1) / 10;
            let count = offsets.iter().filter(|o| **o >= low && **o < high).count();
            assert!(count >= 5, "bucket {bucket} has {count} of 200");
        }
    }
}
