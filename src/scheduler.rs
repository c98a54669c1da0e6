//! Runs every check on its own interval. First runs are spread over the
//! interval by a stable per-name offset; a run never overlaps the previous
//! run of the same check; a global limit bounds runs in flight; shutdown
//! lets runs in flight finish within a grace period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::plan::PlannedCheck;
use crate::probe::Clients;
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
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
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
        let in_flight = Arc::new(AtomicBool::new(false));
        let mut planned = origin + first_run_offset(&self.check.name, interval);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep_until(planned) => {}
            }
            if in_flight.swap(true, Ordering::AcqRel) {
                self.observer.run_skipped(&self.check);
            } else {
                self.spawn_run(planned, planned + interval, in_flight.clone());
            }
            planned += interval;
            // After a stall (suspended process, overloaded host) skip the
            // missed slots instead of firing them in a burst.
            let now = Instant::now();
            while planned + interval <= now {
                self.observer.run_skipped(&self.check);
                planned += interval;
            }
        }
    }

    fn spawn_run(&self, planned: Instant, next: Instant, in_flight: Arc<AtomicBool>) {
        let check = self.check.clone();
        let clients = self.clients.clone();
        let observer = self.observer.clone();
        let limit = self.limit.clone();
        let stop = self.stop.clone();
        self.runs.spawn(async move {
            let permit = tokio::select! {
                permit = limit.acquire_owned() => permit,
                _ = stop.cancelled() => {
                    in_flight.store(false, Ordering::Release);
                    return;
                }
            };
            let _permit = permit.expect("the semaphore is never closed");
            observer.run_started(&check, planned.elapsed());
            let record = run_once(check, clients).await;
            let next_run = SystemTime::now() + next.saturating_duration_since(Instant::now());
            observer.run_finished(&record, next_run);
            in_flight.store(false, Ordering::Release);
        });
    }
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
