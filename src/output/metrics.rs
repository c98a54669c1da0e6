//! Every metric family vouch exports, declared in one place, and the code
//! that turns run records into samples.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::plan::PlannedCheck;
use crate::result::{Measure, Verdict};
use crate::runner::RunRecord;

/// The names of the families not derived from [`Measure`], with their help
/// text: the reference the README and the rule/dashboard tests check.
pub const FAMILIES: &[(&str, &str)] = &[
    (
        "vouch_check_success",
        "1 if the check's reported verdict is pass, 0 if fail or error (after flap thresholds).",
    ),
    (
        "vouch_check_last_run_success",
        "1 if the last run of the check passed, before flap thresholds apply.",
    ),
    ("vouch_check_duration_seconds", "Duration of check runs."),
    (
        "vouch_check_last_run_timestamp_seconds",
        "When the last run of the check ended (Unix time).",
    ),
    (
        "vouch_check_last_success_timestamp_seconds",
        "When the check last passed (Unix time).",
    ),
    (
        "vouch_check_runs_total",
        "Check runs by result (pass, fail, error) and reason word.",
    ),
    (
        "vouch_check_info",
        "Static facts about each check, for joins; always 1.",
    ),
    (
        "vouch_check_last_rollout_timestamp_seconds",
        "When a rollout of a workload in the check's after_rollout_of was last seen (Unix time).",
    ),
    (
        "vouch_check_interval_seconds",
        "The check's configured interval, for staleness alerts.",
    ),
    (
        "vouch_build_info",
        "vouch's version and source revision; always 1.",
    ),
    (
        "vouch_config_last_reload_successful",
        "1 if the config in use loaded without problems.",
    ),
    (
        "vouch_config_last_reload_success_timestamp_seconds",
        "When the config in use was loaded (Unix time).",
    ),
    (
        "vouch_scheduler_lateness_seconds",
        "Time between a run's planned start and its actual start.",
    ),
    (
        "vouch_scheduler_skipped_runs_total",
        "Planned runs skipped because the previous run of the check had not finished.",
    ),
    (
        "vouch_scheduler_check_loops",
        "Check loops alive in the scheduler: one per configured check once a reload has settled.",
    ),
    (
        "vouch_scheduler_runs_in_flight",
        "Check runs executing now.",
    ),
    (
        "vouch_kube_watch_synced",
        "1 if the Kubernetes watch of a resource type (`resource`, e.g. deployments.apps) in a namespace (empty: cluster-wide) holds a full, current list; 0 while starting or failing.",
    ),
];

fn help(name: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, h)| *h)
        .expect("every family is listed in FAMILIES")
}

/// One measurement series of a check: the measure and its label values.
type EmittedSeries = (Measure, Vec<String>);

pub struct Metrics {
    registry: Registry,
    success: IntGaugeVec,
    last_run_success: IntGaugeVec,
    duration: HistogramVec,
    last_run: GaugeVec,
    last_success: GaugeVec,
    last_rollout: GaugeVec,
    runs: IntCounterVec,
    lateness: Histogram,
    skipped: IntCounterVec,
    in_flight: IntGauge,
    info: Mutex<IntGaugeVec>,
    interval: GaugeVec,
    reload_ok: IntGauge,
    reload_time: Gauge,
    check_loops: IntGauge,
    loop_source: Mutex<Option<Arc<AtomicUsize>>>,
    watch_synced: IntGaugeVec,
    watch_source: Mutex<Option<Arc<crate::kube::KubeCache>>>,
    /// The checks of the config in force, with the labels that identify
    /// their current series; series of other checks (removed, or changed
    /// since) are left out of the exposition.
    active: RwLock<HashMap<String, [String; 3]>>,
    measures: HashMap<Measure, GaugeVec>,
    /// Label sets each check's measurements had after its last run, so a
    /// run that measures less removes what it no longer measures (a stale
    /// status code after a timeout would lie).
    emitted: Mutex<HashMap<String, Vec<EmittedSeries>>>,
}

/// Whether a series belongs to the config in force: series without a
/// `check` label always do; others only if their check is configured and
/// its identifying labels are the current ones.
fn is_current(
    labels: &[prometheus::proto::LabelPair],
    active: &HashMap<String, [String; 3]>,
) -> bool {
    let Some(check) = labels.iter().find(|l| l.name() == "check") else {
        return true;
    };
    let Some([kind, severity, section]) = active.get(check.value()) else {
        return false;
    };
    labels.iter().all(|label| match label.name() {
        "kind" => label.value() == kind,
        "severity" => label.value() == severity,
        "section" => label.value() == section,
        _ => true,
    })
}

fn label_keys(checks: &[Arc<PlannedCheck>]) -> BTreeSet<&str> {
    checks
        .iter()
        .flat_map(|c| c.labels.keys().map(String::as_str))
        .collect()
}

/// `vouch_check_info`, whose label set includes `label_<key>` for every
/// label key any check has (empty where a check has none): one family
/// needs one label set.
fn info_vec(checks: &[Arc<PlannedCheck>]) -> IntGaugeVec {
    let mut names = vec![
        "check".to_string(),
        "kind".into(),
        "severity".into(),
        "section".into(),
    ];
    names.extend(label_keys(checks).iter().map(|k| format!("label_{k}")));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    IntGaugeVec::new(opts("vouch_check_info"), &refs).unwrap()
}

fn opts(name: &str) -> Opts {
    Opts::new(name, help(name))
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric families are registered once, with distinct names");
    metric
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Metrics {
    pub fn new(checks: &[Arc<PlannedCheck>]) -> Metrics {
        let registry = Registry::new();
        let success = register(
            &registry,
            IntGaugeVec::new(opts("vouch_check_success"), &["check", "kind", "severity"]).unwrap(),
        );
        let last_run_success = register(
            &registry,
            IntGaugeVec::new(opts("vouch_check_last_run_success"), &["check"]).unwrap(),
        );
        let duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::from(opts("vouch_check_duration_seconds")).buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ]),
                &["check"],
            )
            .unwrap(),
        );
        let last_run = register(
            &registry,
            GaugeVec::new(opts("vouch_check_last_run_timestamp_seconds"), &["check"]).unwrap(),
        );
        let last_success = register(
            &registry,
            GaugeVec::new(
                opts("vouch_check_last_success_timestamp_seconds"),
                &["check"],
            )
            .unwrap(),
        );
        let last_rollout = register(
            &registry,
            GaugeVec::new(
                opts("vouch_check_last_rollout_timestamp_seconds"),
                &["check"],
            )
            .unwrap(),
        );
        let runs = register(
            &registry,
            IntCounterVec::new(
                opts("vouch_check_runs_total"),
                &["check", "result", "reason"],
            )
            .unwrap(),
        );
        let interval = register(
            &registry,
            GaugeVec::new(opts("vouch_check_interval_seconds"), &["check"]).unwrap(),
        );
        let check_loops = register(
            &registry,
            IntGauge::with_opts(opts("vouch_scheduler_check_loops")).unwrap(),
        );
        let watch_synced = register(
            &registry,
            IntGaugeVec::new(opts("vouch_kube_watch_synced"), &["resource", "namespace"]).unwrap(),
        );
        let info = register(&registry, info_vec(checks));
        let build = register(
            &registry,
            IntGaugeVec::new(opts("vouch_build_info"), &["version", "revision"]).unwrap(),
        );
        let reload_ok = register(
            &registry,
            IntGauge::with_opts(opts("vouch_config_last_reload_successful")).unwrap(),
        );
        let reload_time = register(
            &registry,
            Gauge::with_opts(opts("vouch_config_last_reload_success_timestamp_seconds")).unwrap(),
        );
        let lateness = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::from(opts("vouch_scheduler_lateness_seconds")).buckets(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0,
                ]),
            )
            .unwrap(),
        );
        let skipped = register(
            &registry,
            IntCounterVec::new(opts("vouch_scheduler_skipped_runs_total"), &["check"]).unwrap(),
        );
        let in_flight = register(
            &registry,
            IntGauge::with_opts(opts("vouch_scheduler_runs_in_flight")).unwrap(),
        );
        let measures = Measure::ALL
            .iter()
            .map(|measure| {
                let mut labels = vec!["check"];
                labels.extend_from_slice(measure.label_names());
                let vec =
                    GaugeVec::new(Opts::new(measure.name(), measure.help()), &labels).unwrap();
                (*measure, register(&registry, vec))
            })
            .collect();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector is registered once");

        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::REVISION])
            .set(1);
        reload_ok.set(1);
        reload_time.set(unix_seconds(SystemTime::now()));
        Metrics {
            registry,
            success,
            last_run_success,
            duration,
            last_run,
            last_success,
            last_rollout,
            runs,
            lateness,
            skipped,
            in_flight,
            info: Mutex::new(info),
            interval,
            reload_ok,
            reload_time,
            check_loops,
            loop_source: Mutex::new(None),
            watch_synced,
            watch_source: Mutex::new(None),
            active: RwLock::default(),
            measures,
            emitted: Mutex::new(HashMap::new()),
        }
        .with_checks(checks)
    }

    fn with_checks(self, checks: &[Arc<PlannedCheck>]) -> Self {
        self.apply_checks(checks, false);
        self
    }

    /// Makes `checks` the config in force (after a successful reload):
    /// static series follow it, removed checks' series leave the exposition.
    pub fn reconfigure(&self, checks: &[Arc<PlannedCheck>]) {
        self.apply_checks(checks, true);
        self.reload_ok.set(1);
        self.reload_time.set(unix_seconds(SystemTime::now()));
    }

    /// A reload was rejected; the config in force stays.
    pub fn reload_failed(&self) {
        self.reload_ok.set(0);
    }

    /// Where to read the number of live check loops from at scrape time.
    pub fn count_loops_from(&self, source: Arc<AtomicUsize>) {
        *self.loop_source.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// Where to read the Kubernetes watches' states from at scrape time.
    pub fn watch_states_from(&self, cache: Arc<crate::kube::KubeCache>) {
        *self.watch_source.lock().unwrap_or_else(|e| e.into_inner()) = Some(cache);
    }

    fn apply_checks(&self, checks: &[Arc<PlannedCheck>], rebuild_info: bool) {
        let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
        if rebuild_info {
            // The label set may change with the checks' label keys, and a
            // family's label set is fixed: swap the family.
            let _ = self.registry.unregister(Box::new(info.clone()));
            *info = register(&self.registry, info_vec(checks));
        }
        self.interval.reset();
        let keys = label_keys(checks);
        let mut active = HashMap::new();
        for check in checks {
            let mut values = vec![
                check.name.as_str(),
                check.kind.as_str(),
                check.severity.as_str(),
                check.section.as_str(),
            ];
            values.extend(
                keys.iter()
                    .map(|k| check.labels.get(*k).map(String::as_str).unwrap_or("")),
            );
            info.with_label_values(&values).set(1);
            self.interval
                .with_label_values(&[&check.name])
                .set(check.interval.as_secs_f64());
            // Present from the start, so rate() sees the first skip.
            self.skipped.with_label_values(&[&check.name]).inc_by(0);
            active.insert(
                check.name.clone(),
                [
                    check.kind.as_str().to_string(),
                    check.severity.as_str().to_string(),
                    check.section.clone(),
                ],
            );
        }
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = active;
    }

    pub fn run_started(&self, lateness: Duration) {
        self.lateness.observe(lateness.as_secs_f64());
        self.in_flight.inc();
    }

    /// A run ended whose check is no longer configured as it was.
    pub fn run_abandoned(&self) {
        self.in_flight.dec();
    }

    pub fn rollout_seen(&self, check: &PlannedCheck) {
        self.last_rollout
            .with_label_values(&[&check.name])
            .set(unix_seconds(SystemTime::now()));
    }

    pub fn run_skipped(&self, check: &PlannedCheck) {
        self.skipped.with_label_values(&[&check.name]).inc();
    }

    /// Records a finished run; `reported` is the verdict after flap
    /// thresholds. `in_flight` is decremented only for runs the scheduler
    /// started.
    pub fn run_finished(&self, record: &RunRecord, reported: Verdict, scheduled: bool) {
        if scheduled {
            self.in_flight.dec();
        }
        let check = &record.check;
        let name = check.name.as_str();
        let outcome = &record.outcome;
        let passed = outcome.verdict == Verdict::Pass;
        self.success
            .with_label_values(&[name, check.kind.as_str(), check.severity.as_str()])
            .set(i64::from(reported == Verdict::Pass));
        self.last_run_success
            .with_label_values(&[name])
            .set(i64::from(passed));
        self.duration
            .with_label_values(&[name])
            .observe(record.duration.as_secs_f64());
        let ended = unix_seconds(record.started_at + record.duration);
        self.last_run.with_label_values(&[name]).set(ended);
        if passed {
            self.last_success.with_label_values(&[name]).set(ended);
        }
        self.runs
            .with_label_values(&[name, outcome.verdict.as_str(), outcome.reason.as_str()])
            .inc();

        let mut now_emitted = Vec::with_capacity(outcome.measurements.len());
        for measurement in &outcome.measurements {
            let mut values = vec![name];
            values.extend(measurement.label_values());
            self.measures[&measurement.measure]
                .with_label_values(&values)
                .set(measurement.value);
            now_emitted.push((
                measurement.measure,
                measurement
                    .label_values()
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
            ));
        }
        let mut emitted = self.emitted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(before) = emitted.insert(name.to_string(), now_emitted.clone()) {
            for (measure, labels) in before {
                if !now_emitted.contains(&(measure, labels.clone())) {
                    let mut values = vec![name];
                    values.extend(labels.iter().map(String::as_str));
                    let _ = self.measures[&measure].remove_label_values(&values);
                }
            }
        }
    }

    /// The exposition in the Prometheus text format.
    pub fn encode(&self) -> String {
        if let Some(source) = &*self.loop_source.lock().unwrap_or_else(|e| e.into_inner()) {
            self.check_loops.set(source.load(Ordering::Acquire) as i64);
        }
        if let Some(cache) = &*self.watch_source.lock().unwrap_or_else(|e| e.into_inner()) {
            self.watch_synced.reset();
            // A metadata-only and a full watch of the same type and
            // namespace share a series: synced only if both are.
            let mut synced: std::collections::BTreeMap<(String, String), bool> = Default::default();
            for status in cache.statuses() {
                let ok = status.state == crate::kube::WatchState::Synced;
                *synced
                    .entry((status.resource, status.namespace))
                    .or_insert(true) &= ok;
            }
            for ((resource, namespace), ok) in synced {
                self.watch_synced
                    .with_label_values(&[&resource, &namespace])
                    .set(i64::from(ok));
            }
        }
        let mut families = self.registry.gather();
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        for family in &mut families {
            let metrics = family.take_metric();
            let kept: Vec<_> = metrics
                .into_iter()
                .filter(|metric| is_current(metric.get_label(), &active))
                .collect();
            family.set_metric(kept);
        }
        families.retain(|family| !family.get_metric().is_empty());
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut buffer)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}
