//! Runs every check on its own interval. First runs are spread over the
//! interval by a stable per-name offset; a run never overlaps the previous
//! run of the same check; a global limit bounds runs in flight; shutdown
//! lets runs in flight finish within a grace period.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use tokio::sync::{broadcast, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::plan::{PlannedCheck, Rollout};
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
    /// `missed` planned runs of the check were not made because the
    /// process was stalled past their slots (suspended, starved of CPU).
    fn slots_missed(&self, _check: &PlannedCheck, _missed: u64, _stalled: Duration) {}
    /// A rollout of a workload the check follows was seen; the check runs
    /// now and then on its rollout interval.
    fn rollout_seen(&self, check: &PlannedCheck, rollout: &Rollout);
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
    /// Every first-run phase counts from here, also for checks added by a
    /// reload, so a check keeps its phase across reloads.
    origin: Instant,
    clients: Arc<Clients>,
    observer: Arc<dyn Observer>,
    limit: Arc<Semaphore>,
    running: HashMap<String, RunningCheck>,
    live_loops: Arc<AtomicUsize>,
    /// Whether the first set of loops has started: later ones were
    /// started by a reload.
    started: bool,
}

struct RunningCheck {
    check: Arc<PlannedCheck>,
    stop: CancellationToken,
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub kept: usize,
    pub started: usize,
    pub stopped: usize,
}

impl Scheduler {
    pub fn start(
        checks: &[Arc<PlannedCheck>],
        clients: Arc<Clients>,
        observer: Arc<dyn Observer>,
        max_concurrent_runs: usize,
    ) -> Scheduler {
        let mut scheduler = Scheduler {
            stop: CancellationToken::new(),
            loops: TaskTracker::new(),
            runs: TaskTracker::new(),
            origin: Instant::now(),
            clients,
            observer,
            limit: Arc::new(Semaphore::new(max_concurrent_runs.max(1))),
            running: HashMap::new(),
            live_loops: Arc::default(),
            started: false,
        };
        scheduler.reconcile(checks);
        scheduler.started = true;
        scheduler
    }

    /// Brings the running loops in line with `checks`: a check whose
    /// fingerprint is unchanged keeps its loop (schedule, run in flight);
    /// a changed one is restarted; a removed one stopped; a new one started.
    pub fn reconcile(&mut self, checks: &[Arc<PlannedCheck>]) -> Reconciled {
        let mut summary = Reconciled::default();
        let wanted: HashMap<&str, &Arc<PlannedCheck>> =
            checks.iter().map(|c| (c.name.as_str(), c)).collect();
        self.running.retain(|name, running| {
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|new| new.fingerprint == running.check.fingerprint);
            if !keep {
                running.stop.cancel();
                summary.stopped += 1;
            }
            keep
        });
        for check in checks {
            if self.running.contains_key(&check.name) {
                summary.kept += 1;
                continue;
            }
            let stop = self.stop.child_token();
            let context = LoopContext {
                check: check.clone(),
                clients: self.clients.clone(),
                observer: self.observer.clone(),
                limit: self.limit.clone(),
                runs: self.runs.clone(),
                stop: stop.clone(),
                live_loops: self.live_loops.clone(),
            };
            self.loops.spawn(context.run(self.origin, self.started));
            self.running.insert(
                check.name.clone(),
                RunningCheck {
                    check: check.clone(),
                    stop,
                },
            );
            summary.started += 1;
        }
        summary
    }

    /// Check loops alive now (stopped loops leave once they notice).
    pub fn live_loops(&self) -> Arc<AtomicUsize> {
        self.live_loops.clone()
    }

    /// Stops planning runs and waits up to `grace` for runs in flight.
    /// Returns whether all of them finished in time.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.stop.cancel();
        self.loops.close();
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
    live_loops: Arc<AtomicUsize>,
}

/// Counts a loop as live while it exists.
struct LiveLoop(Arc<AtomicUsize>);

impl Drop for LiveLoop {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LoopContext {
    async fn run(self, origin: Instant, by_reload: bool) {
        self.live_loops.fetch_add(1, Ordering::AcqRel);
        let _live = LiveLoop(self.live_loops.clone());
        let interval = self.check.interval;
        let when_failing = self.check.interval_when_failing;
        let state = Arc::new(RunState::default());
        let mut planned = origin + first_run_offset(&self.check.name, interval);
        // A loop started by a reload joins its check's phase at the next
        // slot still ahead, rather than firing a slot that passed before
        // it existed (and counting the time since as lateness).
        if by_reload {
            planned = next_slot_after(planned, interval, Instant::now());
        }
        let mut last_tick = planned;
        let mut rollouts = self
            .check
            .rollout
            .as_ref()
            .map(|_| self.clients.rollouts.subscribe());
        // Until when the check runs on its rollout interval.
        let mut rollout_until: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep_until(planned) => {}
                seen = next_rollout(&mut rollouts) => {
                    let Some(link) = &self.check.rollout else { continue };
                    let relevant = match &seen {
                        Ok(rollout) => link.workloads.contains(&rollout.workload),
                        // Rollouts were missed: one of them may be ours,
                        // and an extra run costs less than a missed one.
                        Err(broadcast::error::RecvError::Lagged(_)) => true,
                        Err(broadcast::error::RecvError::Closed) => {
                            rollouts = None;
                            false
                        }
                    };
                    if relevant {
                        if let Ok(rollout) = &seen {
                            self.observer.rollout_seen(&self.check, rollout);
                        }
                        let now = Instant::now();
                        rollout_until = Some(now + link.window);
                        planned = planned.min(now);
                    }
                    continue;
                }
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
            let rollout_step = self
                .check
                .rollout
                .as_ref()
                .filter(|_| rollout_until.is_some_and(|until| Instant::now() < until))
                .map(|link| link.interval);
            if state.in_flight.swap(true, Ordering::AcqRel) {
                self.observer.run_skipped(&self.check);
            } else {
                self.spawn_run(planned, state.clone(), rollout_step);
            }
            let step = next_step(
                &self.check,
                state.last_failed.load(Ordering::Acquire),
                rollout_step,
            );
            planned += step;
            // After a stall (suspended process, overloaded host) the
            // slots that passed meanwhile are counted as missed, not fired
            // in a burst; the loop goes on at the next slot ahead.
            let now = Instant::now();
            if planned < now {
                let ahead = next_slot_after(planned, step, now);
                let missed = ((ahead - planned).as_nanos() / step.as_nanos().max(1)) as u64;
                self.observer.slots_missed(
                    &self.check,
                    missed,
                    now.saturating_duration_since(planned),
                );
                planned = ahead;
            }
        }
    }

    fn spawn_run(&self, planned: Instant, state: Arc<RunState>, rollout_step: Option<Duration>) {
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
            let step = next_step(&check, failed, rollout_step);
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

/// Time to the check's next run: its interval, or its failing interval
/// after a run that did not pass, or the rollout interval inside a rollout
/// window, whichever is shortest.
fn next_step(check: &PlannedCheck, failed: bool, rollout_step: Option<Duration>) -> Duration {
    let step = match check.interval_when_failing {
        Some(fast) if failed => fast,
        _ => check.interval,
    };
    rollout_step.map_or(step, |fast| step.min(fast))
}

/// The first slot of the series `planned + k * step` (k ≥ 0) that is not
/// before `now`, computed without stepping through every slot.
fn next_slot_after(planned: Instant, step: Duration, now: Instant) -> Instant {
    if planned >= now {
        return planned;
    }
    let step_nanos = step.as_nanos().max(1);
    let behind = (now - planned).as_nanos();
    let steps = behind.div_ceil(step_nanos);
    planned + Duration::from_nanos((steps * step_nanos).min(u64::MAX as u128) as u64)
}

/// The next rollout from the feed, or never when the check follows none.
async fn next_rollout(
    feed: &mut Option<broadcast::Receiver<Rollout>>,
) -> Result<Rollout, broadcast::error::RecvError> {
    match feed {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
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
    fn the_next_slot_is_the_first_not_in_the_past() {
        let start = Instant::now();
        let step = Duration::from_secs(10);
        assert_eq!(next_slot_after(start, step, start), start);
        let later = start + Duration::from_secs(25);
        assert_eq!(
            next_slot_after(start, step, later),
            start + Duration::from_secs(30)
        );
        let on_a_slot = start + Duration::from_secs(20);
        assert_eq!(next_slot_after(start, step, on_a_slot), on_a_slot);
        assert_eq!(next_slot_after(later, step, start), later);
    }

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
