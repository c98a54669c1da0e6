//! Every metric family vouch exports, declared in one place, and the code
//! that turns run records into samples.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use super::check_series::{family_at, family_count, unix_seconds, CheckSeries};
use crate::lock::{lock, read, write};
use crate::plan::PlannedCheck;
use crate::result::Verdict;
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
        "vouch_check_state",
        "1 for the check's reported state (pass, fail, error after flap thresholds; pending until its first run ends), 0 for the others.",
    ),
    (
        "vouch_check_timeout_seconds",
        "The check's configured timeout, for the slow-check alert.",
    ),
    (
        "vouch_check_threshold",
        "A limit from the check's config (`threshold` is the key: max_age, min_size, min_valid_for, ...; `secret` the secret it applies to), in seconds, bytes, a 0-1 ratio or a count.",
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
        "vouch_config_reloads_total",
        "Config reloads by result (success, failure): SIGHUP, POST /-/reload, or a change of the mounted ConfigMap.",
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
        "vouch_scheduler_missed_slots_total",
        "Planned runs not made because the process was stalled (suspended, starved of CPU) past their slot.",
    ),
    (
        "vouch_http_connections_shed_total",
        "Connections closed (idle ones, oldest first) or refused because --web.max-connections were open.",
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
        "1 if the Kubernetes watch of a resource type (`resource`, e.g. deployments.apps) in a namespace (`watch_namespace`; empty: cluster-wide; not `namespace`, which Prometheus gives the scrape target) holds a full, current list; 0 while starting or failing.",
    ),
];

fn help(name: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, h)| *h)
        .expect("every family is listed in FAMILIES")
}

/// vouch's metrics. The process's own families live in a `prometheus`
/// registry; the per-check families are kept as text by each check's
/// [`CheckSeries`] and copied into the exposition at scrape time.
pub struct Metrics {
    registry: Registry,
    lateness: Histogram,
    in_flight: IntGauge,
    missed_slots: IntCounter,
    connections_shed: IntCounter,
    reload_ok: IntGauge,
    reload_time: Gauge,
    reloads: IntCounterVec,
    check_loops: IntGauge,
    loop_source: Mutex<Option<Arc<AtomicUsize>>>,
    watch_synced: IntGaugeVec,
    watch_source: Mutex<Option<Arc<crate::kube::KubeCache>>>,
    /// The checks of the config in force, by name (the exposition's
    /// order). The map is written only by a reload; a run ending locks
    /// just its own check, so scrapes and runs do not wait on each other.
    checks: RwLock<BTreeMap<String, Mutex<CheckSeries>>>,
    /// Size of each family's lines in the last exposition, to allocate
    /// the next one's buffers at once.
    last_sizes: Mutex<Vec<usize>>,
}

fn label_keys(checks: &[Arc<PlannedCheck>]) -> BTreeSet<&str> {
    checks
        .iter()
        .flat_map(|c| c.labels.keys().map(String::as_str))
        .collect()
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

/// Appends a family's `# HELP` and `# TYPE` lines.
fn push_header(out: &mut String, name: &str, type_name: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(type_name);
    out.push('\n');
}

impl Metrics {
    pub fn new(checks: &[Arc<PlannedCheck>]) -> Metrics {
        let registry = Registry::new();
        let check_loops = register(
            &registry,
            IntGauge::with_opts(opts("vouch_scheduler_check_loops")).unwrap(),
        );
        let watch_synced = register(
            &registry,
            IntGaugeVec::new(
                opts("vouch_kube_watch_synced"),
                &["resource", "watch_namespace"],
            )
            .unwrap(),
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
        let reloads = register(
            &registry,
            IntCounterVec::new(opts("vouch_config_reloads_total"), &["result"]).unwrap(),
        );
        for result in ["success", "failure"] {
            // Both present from the start, so increase() sees the first.
            reloads.with_label_values(&[result]);
        }
        let lateness = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::from(opts("vouch_scheduler_lateness_seconds")).buckets(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0,
                ]),
            )
            .unwrap(),
        );
        let in_flight = register(
            &registry,
            IntGauge::with_opts(opts("vouch_scheduler_runs_in_flight")).unwrap(),
        );
        let missed_slots = register(
            &registry,
            IntCounter::with_opts(opts("vouch_scheduler_missed_slots_total")).unwrap(),
        );
        let connections_shed = register(
            &registry,
            IntCounter::with_opts(opts("vouch_http_connections_shed_total")).unwrap(),
        );
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
        let metrics = Metrics {
            registry,
            lateness,
            in_flight,
            missed_slots,
            connections_shed,
            reload_ok,
            reload_time,
            reloads,
            check_loops,
            loop_source: Mutex::new(None),
            watch_synced,
            watch_source: Mutex::new(None),
            checks: RwLock::default(),
            last_sizes: Mutex::new(vec![0; family_count()]),
        };
        metrics.apply_checks(checks);
        metrics
    }

    /// Makes `checks` the config in force (after a successful reload):
    /// static series follow it, removed checks' series leave the exposition.
    pub fn reconfigure(&self, checks: &[Arc<PlannedCheck>]) {
        self.apply_checks(checks);
        self.reloads.with_label_values(&["success"]).inc();
        self.reload_ok.set(1);
        self.reload_time.set(unix_seconds(SystemTime::now()));
    }

    /// A reload was rejected; the config in force stays.
    pub fn reload_failed(&self) {
        self.reloads.with_label_values(&["failure"]).inc();
        self.reload_ok.set(0);
    }

    /// Where to read the number of live check loops from at scrape time.
    pub fn count_loops_from(&self, source: Arc<AtomicUsize>) {
        *lock(&self.loop_source) = Some(source);
    }

    /// Where to read the Kubernetes watches' states from at scrape time.
    pub fn watch_states_from(&self, cache: Arc<crate::kube::KubeCache>) {
        *lock(&self.watch_source) = Some(cache);
    }

    fn apply_checks(&self, checks: &[Arc<PlannedCheck>]) {
        // `vouch_check_info` has a `label_<key>` for every label key any
        // check has (empty where a check has none): one family, one label
        // set.
        let keys: Vec<&str> = label_keys(checks).into_iter().collect();
        let mut table = write(&self.checks);
        let mut before = std::mem::take(&mut *table);
        for check in checks {
            let series = match before.remove(&check.name) {
                Some(series) => {
                    let mut series = series.into_inner().unwrap_or_else(|e| e.into_inner());
                    series.reconfigure(check, &keys);
                    series
                }
                None => CheckSeries::new(check, &keys),
            };
            table.insert(check.name.clone(), Mutex::new(series));
        }
    }

    /// Runs `update` on the series of `check` if `check` is the config in
    /// force for its name.
    fn update(&self, check: &PlannedCheck, update: impl FnOnce(&mut CheckSeries)) {
        let table = read(&self.checks);
        if let Some(series) = table.get(&check.name) {
            let mut series = lock(series);
            if series.follows(check) {
                update(&mut series);
            }
        }
    }

    pub fn run_started(&self, lateness: Duration) {
        self.lateness.observe(lateness.as_secs_f64());
        self.in_flight.inc();
    }

    /// Slots missed while the process was stalled.
    pub fn slots_missed(&self, count: u64) {
        self.missed_slots.inc_by(count);
    }

    /// A connection was closed or refused at the connection limit.
    pub fn connection_shed(&self) {
        self.connections_shed.inc();
    }

    /// A run ended whose check is no longer configured as it was.
    pub fn run_abandoned(&self) {
        self.in_flight.dec();
    }

    pub fn rollout_seen(&self, check: &PlannedCheck) {
        self.update(check, |series| {
            series.rollout_seen(unix_seconds(SystemTime::now()))
        });
    }

    pub fn run_skipped(&self, check: &PlannedCheck) {
        self.update(check, CheckSeries::run_skipped);
    }

    /// Records a finished run; `reported` is the verdict after flap
    /// thresholds. `in_flight` is decremented only for runs the scheduler
    /// started.
    pub fn run_finished(&self, record: &RunRecord, reported: Verdict, scheduled: bool) {
        if scheduled {
            self.in_flight.dec();
        }
        self.update(&record.check, |series| {
            series.run_finished(record, reported)
        });
    }

    /// The exposition in the Prometheus text format.
    pub fn encode(&self) -> String {
        if let Some(source) = &*lock(&self.loop_source) {
            self.check_loops.set(source.load(Ordering::Acquire) as i64);
        }
        if let Some(cache) = &*lock(&self.watch_source) {
            self.watch_synced.reset();
            // A metadata-only and a full watch of the same type and
            // namespace share a series: synced only if both are.
            let mut synced: BTreeMap<(String, String), bool> = BTreeMap::new();
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
        let mut own = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut own)
            .expect("encoding to a Vec cannot fail");

        // Each family's lines must be contiguous, while each check holds
        // its lines of every family: gather them per family, locking each
        // check once, then join.
        let mut last_sizes = lock(&self.last_sizes);
        let mut per_family: Vec<String> = last_sizes
            .iter()
            .map(|size| String::with_capacity(size + size / 8))
            .collect();
        {
            let table = read(&self.checks);
            for series in table.values() {
                let series = lock(series);
                for (slot, lines) in series.families() {
                    per_family[slot].push_str(lines);
                }
            }
        }
        let total: usize = per_family.iter().map(String::len).sum();
        let mut out = String::with_capacity(own.len() + total + 256 * per_family.len());
        out.push_str(std::str::from_utf8(&own).expect("the text format is UTF-8"));
        for (slot, lines) in per_family.iter().enumerate() {
            if lines.is_empty() {
                continue;
            }
            let (name, type_name, help_text) = family_at(slot, help);
            push_header(&mut out, name, type_name, help_text);
            out.push_str(lines);
        }
        for (size, lines) in last_sizes.iter_mut().zip(&per_family) {
            *size = lines.len();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourcedConfig;
    use crate::plan::Plan;
    use crate::probe::Clients;
    use crate::result::{Measure, Measurement, Outcome, Reason};

    fn plan(yaml: &str) -> Vec<Arc<PlannedCheck>> {
        let source = SourcedConfig::parse(yaml, "test.yaml", std::path::PathBuf::from("."))
            .expect("the test config parses");
        Plan::from_source(&source, &Clients::new(), |_| None)
            .expect("the test config is valid")
            .checks
    }

    fn http_check(name: &str, url: &str, severity: &str) -> String {
        format!(
            "  - name: {name}\n    severity: {severity}\n    labels: {{ team: core }}\n    http: {{ url: \"{url}\" }}\n"
        )
    }

    fn record(check: &Arc<PlannedCheck>, outcome: Outcome, millis: u64) -> RunRecord {
        RunRecord {
            check: Arc::clone(check),
            outcome,
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            duration: Duration::from_millis(millis),
        }
    }

    fn samples(text: &str) -> Vec<prometheus_parse::Sample> {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines)
            .expect("the exposition parses")
            .samples
    }

    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples(text)
            .into_iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("{name}: unexpected {other:?}"),
            })
    }

    #[test]
    fn runs_become_series_that_parse_back() {
        let checks = plan(&format!(
            "checks:\n{}",
            http_check("api", "http://127.0.0.1:9/", "critical")
        ));
        let metrics = Metrics::new(&checks);
        let before = metrics.encode();
        assert_eq!(
            value(
                &before,
                "vouch_check_info",
                &[("check", "api"), ("label_team", "core")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &before,
                "vouch_scheduler_skipped_runs_total",
                &[("check", "api")]
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&before, "vouch_check_success", &[("check", "api")]),
            None
        );

        let pass = Outcome::pass("ok").with_measurements(vec![
            Measurement::new(Measure::HttpStatusCode, 200.0),
            Measurement::labelled(Measure::HttpDurationSeconds, &["connect"], 0.001),
        ]);
        metrics.run_finished(&record(&checks[0], pass, 3), Verdict::Pass, false);
        let fail = Outcome::error(Reason::Timeout, "timed out");
        metrics.run_finished(&record(&checks[0], fail, 2_000), Verdict::Fail, false);
        let text = metrics.encode();

        assert_eq!(
            value(
                &text,
                "vouch_check_success",
                &[("check", "api"), ("kind", "http"), ("severity", "critical")]
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&text, "vouch_check_last_run_success", &[("check", "api")]),
            Some(0.0)
        );
        assert_eq!(
            value(
                &text,
                "vouch_check_runs_total",
                &[("check", "api"), ("result", "pass"), ("reason", "ok")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "vouch_check_runs_total",
                &[("check", "api"), ("result", "error"), ("reason", "timeout")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "vouch_check_last_success_timestamp_seconds",
                &[("check", "api")]
            ),
            Some(1_000.003)
        );
        assert_eq!(
            value(
                &text,
                "vouch_check_last_run_timestamp_seconds",
                &[("check", "api")]
            ),
            Some(1_002.0)
        );
        // The timed-out run measured nothing: the status code of the run
        // before must not stay.
        assert_eq!(
            value(&text, "vouch_http_status_code", &[("check", "api")]),
            None
        );
        let histogram = samples(&text)
            .into_iter()
            .find(|s| s.metric == "vouch_check_duration_seconds")
            .expect("the duration histogram is there");
        let prometheus_parse::Value::Histogram(buckets) = histogram.value else {
            panic!("not a histogram: {:?}", histogram.value)
        };
        let count_at = |le: f64| buckets.iter().find(|b| b.less_than == le).map(|b| b.count);
        assert_eq!(count_at(0.005), Some(1.0));
        assert_eq!(count_at(1.0), Some(1.0));
        assert_eq!(count_at(2.5), Some(2.0));
        assert_eq!(count_at(f64::INFINITY), Some(2.0));
    }

    #[test]
    fn a_reload_drops_removed_checks_and_ignores_runs_of_the_old_config() {
        let old = plan(&format!(
            "checks:\n{}{}",
            http_check("api", "http://127.0.0.1:9/", "critical"),
            http_check("leaving", "http://127.0.0.1:9/", "warning")
        ));
        let metrics = Metrics::new(&old);
        for check in &old {
            metrics.run_finished(&record(check, Outcome::pass("ok"), 1), Verdict::Pass, false);
        }
        let new = plan(&format!(
            "checks:\n{}",
            http_check("api", "http://127.0.0.1:10/", "warning")
        ));
        metrics.reconfigure(&new);
        // A run of the old `api` ends after the reload.
        metrics.run_finished(
            &record(&old[0], Outcome::pass("ok"), 1),
            Verdict::Pass,
            false,
        );
        metrics.run_finished(
            &record(&old[1], Outcome::pass("ok"), 1),
            Verdict::Pass,
            false,
        );
        let text = metrics.encode();
        assert!(!text.contains("check=\"leaving\""), "{text}");
        // History stays; the verdict series under the old severity is gone
        // until the new config's first run.
        assert_eq!(
            value(&text, "vouch_check_runs_total", &[("check", "api")]),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "vouch_check_success", &[("check", "api")]),
            None
        );
        assert_eq!(
            value(
                &text,
                "vouch_check_info",
                &[("check", "api"), ("severity", "warning")]
            ),
            Some(1.0)
        );

        metrics.run_finished(
            &record(&new[0], Outcome::pass("ok"), 1),
            Verdict::Pass,
            false,
        );
        let text = metrics.encode();
        assert_eq!(
            value(
                &text,
                "vouch_check_success",
                &[("check", "api"), ("severity", "warning")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "vouch_check_runs_total", &[("check", "api")]),
            Some(2.0)
        );
        // Every family is written once, with its help and type.
        let types = text
            .lines()
            .filter(|l| l.starts_with("# TYPE vouch_check_success "))
            .count();
        assert_eq!(types, 1);
    }
}
