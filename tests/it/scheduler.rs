//! The scheduler's promises, on tokio's paused clock so they are exact:
//! first runs spread by name, no overlap, the concurrency limit, panic
//! isolation, and the shutdown grace period.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::time::Instant;
use vouch::config::{Kind, Severity};
use vouch::plan::{PlannedCheck, Rollout, RolloutLink, WorkloadRef};
use vouch::probe::{Clients, Probe, ProbeContext};
use vouch::result::{Outcome, Reason, Verdict};
use vouch::runner::RunRecord;
use vouch::scheduler::{first_run_offset, Observer, Reconciled, Scheduler};

/// What a test probe does when run.
#[derive(Clone, Copy)]
enum Act {
    /// Pass after taking this long.
    Take(Duration),
    Panic,
    /// Fail this many runs (counted across the probe's life), then pass.
    FailFirst(usize),
}

/// A probe that counts how many of its runs are in flight at once, across
/// every probe sharing the same `Gauge`.
struct TestProbe {
    act: Act,
    gauge: Arc<Gauge>,
    runs: AtomicUsize,
}

#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Probe for TestProbe {
    fn run<'a>(&'a self, _ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        async move {
            let now = self.gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.gauge.max.fetch_max(now, Ordering::SeqCst);
            // Decrement even when the runner aborts the probe on timeout.
            struct Leave<'g>(&'g Gauge);
            impl Drop for Leave<'_> {
                fn drop(&mut self) {
                    self.0.now.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _leave = Leave(&self.gauge);
            match self.act {
                Act::Take(duration) => {
                    tokio::time::sleep(duration).await;
                    Outcome::pass("done")
                }
                Act::Panic => panic!("probe bug"),
                Act::FailFirst(n) => {
                    if self.runs.fetch_add(1, Ordering::SeqCst) < n {
                        Outcome::fail(Reason::Status, "status 503, expected 200")
                    } else {
                        Outcome::pass("status 200")
                    }
                }
            }
        }
        .boxed()
    }
}

fn check(
    name: &str,
    interval: Duration,
    timeout: Duration,
    act: Act,
    gauge: &Arc<Gauge>,
) -> Arc<PlannedCheck> {
    Arc::new(planned(name, interval, timeout, act, gauge))
}

fn planned(
    name: &str,
    interval: Duration,
    timeout: Duration,
    act: Act,
    gauge: &Arc<Gauge>,
) -> PlannedCheck {
    PlannedCheck {
        name: name.to_string(),
        section: "test".into(),
        severity: Severity::Warning,
        kind: Kind::Http,
        interval,
        timeout,
        failures_before_fail: 1,
        successes_before_pass: 1,
        interval_when_failing: None,
        rollout: None,
        labels: BTreeMap::new(),
        config_yaml: String::new(),
        fingerprint: name.to_string(),
        probe: Arc::new(TestProbe {
            act,
            gauge: gauge.clone(),
            runs: AtomicUsize::new(0),
        }),
    }
}

#[derive(Debug, Clone)]
enum Event {
    Started {
        check: String,
        at: Instant,
        lateness: Duration,
    },
    Finished {
        check: String,
        verdict: Verdict,
        reason: Reason,
        message: String,
    },
    Skipped {
        check: String,
    },
    Rollout {
        check: String,
        rollout: Rollout,
    },
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn starts(&self, name: &str) -> Vec<Instant> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Started { check, at, .. } if check == name => Some(at),
                _ => None,
            })
            .collect()
    }

    fn finished(&self, name: &str) -> Vec<(Verdict, Reason, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Finished {
                    check,
                    verdict,
                    reason,
                    message,
                } if check == name => Some((verdict, reason, message)),
                _ => None,
            })
            .collect()
    }

    fn skipped(&self, name: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Skipped { check } if check == name))
            .count()
    }
}

impl Observer for Recorder {
    fn run_started(&self, check: &PlannedCheck, lateness: Duration) {
        self.events.lock().unwrap().push(Event::Started {
            check: check.name.clone(),
            at: Instant::now(),
            lateness,
        });
    }

    fn run_finished(&self, record: &RunRecord, _next_run: SystemTime) {
        self.events.lock().unwrap().push(Event::Finished {
            check: record.check.name.clone(),
            verdict: record.outcome.verdict,
            reason: record.outcome.reason,
            message: record.outcome.message.clone(),
        });
    }

    fn run_skipped(&self, check: &PlannedCheck) {
        self.events.lock().unwrap().push(Event::Skipped {
            check: check.name.clone(),
        });
    }

    fn rollout_seen(&self, check: &PlannedCheck, rollout: &Rollout) {
        self.events.lock().unwrap().push(Event::Rollout {
            check: check.name.clone(),
            rollout: rollout.clone(),
        });
    }
}

fn start(checks: &[Arc<PlannedCheck>], limit: usize) -> (Scheduler, Arc<Recorder>) {
    start_with(checks, Arc::new(Clients::new()), limit)
}

fn start_with(
    checks: &[Arc<PlannedCheck>],
    clients: Arc<Clients>,
    limit: usize,
) -> (Scheduler, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let scheduler = Scheduler::start(checks, clients, recorder.clone(), limit);
    (scheduler, recorder)
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn first_runs_are_spread_by_a_stable_offset_per_name() {
    let gauge = Arc::new(Gauge::default());
    let interval = Duration::from_secs(10);
    let checks: Vec<_> = (0..12)
        .map(|i| {
            check(
                &format!("check-{i}"),
                interval,
                Duration::from_secs(1),
                Act::Take(MS),
                &gauge,
            )
        })
        .collect();
    let origin = Instant::now();
    let (scheduler, recorder) = start(&checks, 32);
    tokio::time::sleep(interval).await;
    let mut distinct = std::collections::BTreeSet::new();
    for check in &checks {
        let starts = recorder.starts(&check.name);
        assert_eq!(
            starts.len(),
            1,
            "{} ran once in its first interval",
            check.name
        );
        let offset = starts[0] - origin;
        let expected = first_run_offset(&check.name, interval);
        assert!(
            offset >= expected && offset < expected + 5 * MS,
            "{}: first run at {offset:?}, planned {expected:?}",
            check.name
        );
        distinct.insert(offset.as_millis() / 500);
    }
    assert!(distinct.len() >= 6, "first runs bunch up: {distinct:?}");
    assert!(scheduler.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn runs_keep_their_interval_after_the_first() {
    let gauge = Arc::new(Gauge::default());
    let interval = Duration::from_secs(2);
    let only = check(
        "steady",
        interval,
        Duration::from_secs(1),
        Act::Take(100 * MS),
        &gauge,
    );
    let (scheduler, recorder) = start(&[only], 32);
    tokio::time::sleep(Duration::from_secs(11)).await;
    let starts = recorder.starts("steady");
    assert!(starts.len() >= 5, "{} runs in 11s", starts.len());
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= interval - MS && gap <= interval + MS, "gap {gap:?}");
    }
    assert!(scheduler.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_run_never_overlaps_the_previous_run_of_its_check() {
    let gauge = Arc::new(Gauge::default());
    // The config forbids timeout > interval; built directly here to force
    // runs that outlast their interval.
    let slow = check(
        "slow",
        Duration::from_secs(1),
        Duration::from_secs(10),
        Act::Take(Duration::from_millis(2500)),
        &gauge,
    );
    let (scheduler, recorder) = start(&[slow], 32);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        gauge.max.load(Ordering::SeqCst),
        1,
        "two runs of one check overlapped"
    );
    let runs = recorder.finished("slow").len();
    let skipped = recorder.skipped("slow");
    assert!(runs >= 3, "{runs} runs");
    assert!(skipped >= 2 * runs - 2, "{skipped} skipped for {runs} runs");
    assert!(scheduler.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_limit_bounds_runs_in_flight() {
    let gauge = Arc::new(Gauge::default());
    let checks: Vec<_> = (0..8)
        .map(|i| {
            check(
                &format!("c{i}"),
                Duration::from_secs(60),
                Duration::from_secs(30),
                Act::Take(Duration::from_secs(5)),
                &gauge,
            )
        })
        .collect();
    let (scheduler, recorder) = start(&checks, 2);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(gauge.max.load(Ordering::SeqCst), 2);
    let finished: usize = checks
        .iter()
        .map(|c| recorder.finished(&c.name).len())
        .sum();
    assert!(
        finished >= 8,
        "every check ran despite the limit: {finished}"
    );
    let waited = recorder
        .events()
        .iter()
        .filter(
            |e| matches!(e, Event::Started { lateness, .. } if *lateness >= Duration::from_secs(1)),
        )
        .count();
    assert!(waited > 0, "runs that waited for a slot show lateness");
    assert!(scheduler.shutdown(Duration::from_secs(10)).await);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_probe_is_an_error_and_the_scheduler_goes_on() {
    let gauge = Arc::new(Gauge::default());
    let panicky = check(
        "panicky",
        Duration::from_secs(1),
        Duration::from_secs(1),
        Act::Panic,
        &gauge,
    );
    let healthy = check(
        "healthy",
        Duration::from_secs(1),
        Duration::from_secs(1),
        Act::Take(MS),
        &gauge,
    );
    let (scheduler, recorder) = start(&[panicky, healthy], 32);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let panics = recorder.finished("panicky");
    assert!(
        panics.len() >= 4,
        "the panicking check keeps being scheduled: {}",
        panics.len()
    );
    for (verdict, reason, message) in &panics {
        assert_eq!((*verdict, *reason), (Verdict::Error, Reason::Panic));
        assert!(message.contains("probe bug"), "{message}");
    }
    assert!(recorder.finished("healthy").len() >= 4);
    assert!(scheduler.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn a_hung_probe_times_out_without_delaying_other_checks() {
    let gauge = Arc::new(Gauge::default());
    let hung = check(
        "hung",
        Duration::from_secs(5),
        Duration::from_secs(2),
        Act::Take(Duration::from_secs(3600)),
        &gauge,
    );
    let quick = check(
        "quick",
        Duration::from_secs(1),
        Duration::from_secs(1),
        Act::Take(MS),
        &gauge,
    );
    let (scheduler, recorder) = start(&[hung, quick], 32);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let hung_runs = recorder.finished("hung");
    assert!(!hung_runs.is_empty());
    for (verdict, reason, message) in &hung_runs {
        assert_eq!((*verdict, *reason), (Verdict::Error, Reason::Timeout));
        assert!(message.starts_with("no result within 2s"), "{message}");
    }
    for event in recorder.events() {
        if let Event::Started {
            check, lateness, ..
        } = event
        {
            assert!(lateness < 5 * MS, "{check} started {lateness:?} late");
        }
    }
    assert!(recorder.starts("quick").len() >= 9);
    assert!(scheduler.shutdown(Duration::from_secs(1)).await);
}

/// The paused-clock half of tests/it/reload.rs's reload storm: a check every
/// reload keeps runs on its slots, none lost and none skipped, however
/// often the checks beside it are swapped, and no loop outlives its check.
#[tokio::test(start_paused = true)]
async fn a_reconcile_keeps_the_schedule_of_an_unchanged_check() {
    let gauge = Arc::new(Gauge::default());
    let interval = Duration::from_secs(1);
    // As in the live test: timeout equal to the interval, and runs that
    // take most of it, so reloads land while a run is in flight.
    let steady = check("steady", interval, interval, Act::Take(900 * MS), &gauge);
    let changing = |version: usize| {
        let mut planned = planned("changing", interval, interval, Act::Take(MS), &gauge);
        planned.fingerprint = format!("changing, version {version}");
        Arc::new(planned)
    };
    let other = |name: &str| check(name, interval, interval, Act::Take(MS), &gauge);
    let origin = Instant::now();
    let (mut scheduler, recorder) = start(&[steady.clone(), changing(0), other("a")], 32);
    for i in 0..300 {
        // Uneven moments, 5 to 65 ms apart: about 10 s of reloads.
        tokio::time::sleep(MS * (5 + 5 * (i % 13) as u32)).await;
        let beside = if i % 2 == 0 { "b" } else { "a" };
        let changes = scheduler.reconcile(&[steady.clone(), changing(i + 1), other(beside)]);
        let expected = Reconciled {
            kept: 1,
            started: 2,
            stopped: 2,
        };
        assert_eq!(changes, expected, "reload {i}");
    }
    let first = origin + first_run_offset("steady", interval);
    let slots = (Instant::now() - first).as_millis() as usize / 1000 + 1;
    let starts = recorder.starts("steady");
    assert_eq!(starts.len(), slots, "one run per slot: {starts:?}");
    for (k, started) in starts.iter().enumerate() {
        let planned = first + interval * k as u32;
        assert!(
            *started >= planned && *started < planned + 5 * MS,
            "run {k} started {:?} after the first, planned {:?}",
            *started - first,
            planned - first
        );
    }
    assert_eq!(recorder.skipped("steady"), 0);
    // The stopped loops leave once they notice: three remain.
    let live = scheduler.live_loops();
    tokio::time::sleep(10 * MS).await;
    assert_eq!(live.load(Ordering::SeqCst), 3);
    assert!(scheduler.shutdown(Duration::from_secs(2)).await);
}

/// The paused-clock half of tests/it/hostile.rs's
/// checks_added_by_a_reload_join_their_next_slot: a check added by a reload
/// first runs at its own next slot after the reload (its phase counted from
/// the scheduler's start), with no lateness recorded. Before, it fired at
/// once and recorded up to an interval of lateness for a slot that passed
/// before it existed.
#[tokio::test(start_paused = true)]
async fn checks_added_by_a_reconcile_join_their_next_slot_on_time() {
    let gauge = Arc::new(Gauge::default());
    let interval = Duration::from_secs(10);
    let of = |name: &str| {
        check(
            name,
            interval,
            Duration::from_secs(1),
            Act::Take(MS),
            &gauge,
        )
    };
    let origin = Instant::now();
    let (mut scheduler, recorder) = start(&[of("first")], 32);
    // Mid-interval, at an uneven moment: slots of the added checks passed.
    tokio::time::sleep(Duration::from_millis(25_300)).await;
    let reload = Instant::now();
    let added: Vec<String> = (0..5).map(|i| format!("added-{i}")).collect();
    let mut checks = vec![of("first")];
    checks.extend(added.iter().map(|name| of(name)));
    let changes = scheduler.reconcile(&checks);
    assert_eq!(
        changes,
        Reconciled {
            kept: 1,
            started: 5,
            stopped: 0
        }
    );
    tokio::time::sleep(interval * 2).await;
    for name in &added {
        let starts = recorder.starts(name);
        assert_eq!(starts.len(), 2, "{name}: one run per slot: {starts:?}");
        let phase = first_run_offset(name, interval);
        let mut planned = origin + phase;
        while planned < reload {
            planned += interval;
        }
        assert!(
            starts[0] >= planned && starts[0] < planned + 5 * MS,
            "{name}: first run {:?} after the reload, planned {:?}",
            starts[0] - reload,
            planned - reload
        );
        let lateness: Vec<Duration> = recorder
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Started {
                    check, lateness, ..
                } if check == *name => Some(lateness),
                _ => None,
            })
            .collect();
        assert!(
            lateness.iter().all(|l| *l < 5 * MS),
            "{name}: lateness {lateness:?}"
        );
    }
    assert!(scheduler.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_runs_in_flight_up_to_the_grace_period() {
    let gauge = Arc::new(Gauge::default());
    let short = check(
        "short",
        Duration::from_secs(60),
        Duration::from_secs(30),
        Act::Take(Duration::from_millis(500)),
        &gauge,
    );
    let (scheduler, recorder) = start(std::slice::from_ref(&short), 32);
    let first = first_run_offset("short", short.interval);
    tokio::time::sleep(first + 100 * MS).await;
    assert_eq!(gauge.now.load(Ordering::SeqCst), 1, "the run is in flight");
    assert!(
        scheduler.shutdown(Duration::from_secs(2)).await,
        "a 500ms run fits a 2s grace"
    );
    assert_eq!(
        recorder.finished("short").len(),
        1,
        "the run in flight was allowed to finish"
    );

    let long = check(
        "long",
        Duration::from_secs(60),
        Duration::from_secs(30),
        Act::Take(Duration::from_secs(20)),
        &gauge,
    );
    let (scheduler, recorder) = start(std::slice::from_ref(&long), 32);
    tokio::time::sleep(first_run_offset("long", long.interval) + 100 * MS).await;
    assert!(
        !scheduler.shutdown(Duration::from_secs(1)).await,
        "a 20s run does not fit a 1s grace"
    );
    assert!(recorder.finished("long").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_check_is_rerun_at_its_failing_interval_until_it_passes() {
    let gauge = Arc::new(Gauge::default());
    let recovering = Arc::new(PlannedCheck {
        interval_when_failing: Some(Duration::from_secs(2)),
        ..planned(
            "recovering",
            Duration::from_secs(30),
            Duration::from_secs(1),
            Act::FailFirst(3),
            &gauge,
        )
    });
    let (scheduler, recorder) = start(std::slice::from_ref(&recovering), 32);
    let first = first_run_offset("recovering", recovering.interval);
    tokio::time::sleep(first + Duration::from_secs(70)).await;
    let starts = recorder.starts("recovering");
    let gaps: Vec<u64> = starts.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    // Three failures re-run 2s apart, the pass at the third re-run, then
    // back to 30s.
    assert_eq!(&gaps[..3], &[2, 2, 2], "{gaps:?}");
    assert!(gaps[3..].iter().all(|g| *g == 30), "{gaps:?}");
    let verdicts: Vec<_> = recorder
        .finished("recovering")
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(
        &verdicts[..4],
        &[Verdict::Fail, Verdict::Fail, Verdict::Fail, Verdict::Pass]
    );
    assert!(scheduler.shutdown(Duration::from_secs(1)).await);
}

fn workload(text: &str) -> WorkloadRef {
    WorkloadRef::parse(text).expect("namespace/name")
}

#[tokio::test(start_paused = true)]
async fn a_rollout_runs_its_checks_at_once_then_faster_for_the_window() {
    let gauge = Arc::new(Gauge::default());
    let linked = |name: &str, to: &str| {
        Arc::new(PlannedCheck {
            rollout: Some(RolloutLink {
                workloads: vec![workload(to)],
                window: Duration::from_secs(20),
                interval: Duration::from_secs(5),
            }),
            ..planned(
                name,
                Duration::from_secs(60),
                Duration::from_secs(1),
                Act::Take(MS),
                &gauge,
            )
        })
    };
    let follower = linked("follower", "prod/api");
    let bystander = linked("bystander", "prod/other");
    let clients = Arc::new(Clients::new());
    let feed = clients.rollouts.clone();
    let (scheduler, recorder) = start_with(&[follower.clone(), bystander.clone()], clients, 32);
    // Past both first runs.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let before = recorder.starts("follower").len();
    let bystander_before = recorder.starts("bystander").len();

    let rolled_at = Instant::now();
    feed.send(Rollout {
        workload: workload("prod/api"),
        generation: 7,
    })
    .expect("the scheduler follows the feed");
    tokio::time::sleep(Duration::from_secs(100)).await;

    let after: Vec<Instant> = recorder.starts("follower")[before..].to_vec();
    assert!(
        after[0] - rolled_at < 5 * MS,
        "the linked check ran {:?} after the rollout, not at once",
        after[0] - rolled_at
    );
    let gaps: Vec<u64> = after.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    // 5s apart for the 20s window, then back to the 60s interval.
    assert_eq!(&gaps[..5], &[5, 5, 5, 5, 60], "{gaps:?}");
    // The check of another workload kept its own pace: 100s at 60s.
    let bystander_runs = recorder.starts("bystander").len() - bystander_before;
    assert!(bystander_runs <= 2, "bystander ran {bystander_runs} times");
    let seen: Vec<(String, Rollout)> = recorder
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Rollout { check, rollout } => Some((check, rollout)),
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        [(
            "follower".to_string(),
            Rollout {
                workload: workload("prod/api"),
                generation: 7
            }
        )]
    );
    assert!(scheduler.shutdown(Duration::from_secs(1)).await);
}
