//! Every metric family vouch exports, declared in one place, and the code
//! that turns run records into samples.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
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
        "vouch_scheduler_runs_in_flight",
        "Check runs executing now.",
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
    runs: IntCounterVec,
    lateness: Histogram,
    skipped: IntCounterVec,
    in_flight: IntGauge,
    measures: HashMap<Measure, GaugeVec>,
    /// Label sets each check's measurements had after its last run, so a
    /// run that measures less removes what it no longer measures (a stale
    /// status code after a timeout would lie).
    emitted: Mutex<HashMap<String, Vec<EmittedSeries>>>,
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
        let runs = register(
            &registry,
            IntCounterVec::new(
                opts("vouch_check_runs_total"),
                &["check", "result", "reason"],
            )
            .unwrap(),
        );
        // Check labels become `label_<key>` on the info metric; every check
        // carries every key (empty where it has none), as one family needs
        // one label set.
        let label_keys: BTreeSet<&str> = checks
            .iter()
            .flat_map(|c| c.labels.keys().map(String::as_str))
            .collect();
        let mut info_labels = vec![
            "check".to_string(),
            "kind".into(),
            "severity".into(),
            "section".into(),
        ];
        info_labels.extend(label_keys.iter().map(|k| format!("label_{k}")));
        let info_label_refs: Vec<&str> = info_labels.iter().map(String::as_str).collect();
        let info = register(
            &registry,
            IntGaugeVec::new(opts("vouch_check_info"), &info_label_refs).unwrap(),
        );
        let interval = register(
            &registry,
            GaugeVec::new(opts("vouch_check_interval_seconds"), &["check"]).unwrap(),
        );
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
        for check in checks {
            let mut values = vec![
                check.name.as_str(),
                check.kind.as_str(),
                check.severity.as_str(),
                check.section.as_str(),
            ];
            values.extend(
                label_keys
                    .iter()
                    .map(|k| check.labels.get(*k).map(String::as_str).unwrap_or("")),
            );
            info.with_label_values(&values).set(1);
            interval
                .with_label_values(&[&check.name])
                .set(check.interval.as_secs_f64());
            skipped.with_label_values(&[&check.name]).reset();
        }
        Metrics {
            registry,
            success,
            last_run_success,
            duration,
            last_run,
            last_success,
            runs,
            lateness,
            skipped,
            in_flight,
            measures,
            emitted: Mutex::new(HashMap::new()),
        }
    }

    pub fn run_started(&self, lateness: Duration) {
        self.lateness.observe(lateness.as_secs_f64());
        self.in_flight.inc();
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
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}
