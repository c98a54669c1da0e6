//! The series of one check, kept as exposition text.
//!
//! A check's series change only when one of its runs ends (or it is
//! skipped, or a rollout is seen), while a scrape reads all of them: so
//! each check renders its own lines when they change, and a scrape only
//! copies text. Gathering the same series through the `prometheus`
//! crate's registry built a protobuf message per series on every scrape,
//! which at 10,000 checks (about 300,000 series) took over 200 ms.

use std::fmt::Write as _;

use super::check_config::{thresholds, Threshold};
use crate::plan::PlannedCheck;
use crate::result::{Measure, Measurement, Verdict};
use crate::runner::RunRecord;

/// Upper bounds of `vouch_check_duration_seconds`'s buckets.
pub const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The same bounds as `le` label values, spelled once, and the bucket
/// above them all.
const DURATION_LE: [&str; DURATION_BUCKETS.len() + 1] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60",
    "+Inf",
];

/// The per-check families, in the order a scrape writes them; the
/// measurement families ([`Measure::ALL`]) follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckFamily {
    Success,
    LastRunSuccess,
    Duration,
    LastRun,
    LastSuccess,
    LastRollout,
    Runs,
    Info,
    Interval,
    Skipped,
    State,
    Timeout,
    Threshold,
}

impl CheckFamily {
    pub const ALL: [CheckFamily; 13] = [
        CheckFamily::Success,
        CheckFamily::LastRunSuccess,
        CheckFamily::Duration,
        CheckFamily::LastRun,
        CheckFamily::LastSuccess,
        CheckFamily::LastRollout,
        CheckFamily::Runs,
        CheckFamily::Info,
        CheckFamily::Interval,
        CheckFamily::Skipped,
        CheckFamily::State,
        CheckFamily::Timeout,
        CheckFamily::Threshold,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckFamily::Success => "vouch_check_success",
            CheckFamily::LastRunSuccess => "vouch_check_last_run_success",
            CheckFamily::Duration => "vouch_check_duration_seconds",
            CheckFamily::LastRun => "vouch_check_last_run_timestamp_seconds",
            CheckFamily::LastSuccess => "vouch_check_last_success_timestamp_seconds",
            CheckFamily::LastRollout => "vouch_check_last_rollout_timestamp_seconds",
            CheckFamily::Runs => "vouch_check_runs_total",
            CheckFamily::Info => "vouch_check_info",
            CheckFamily::Interval => "vouch_check_interval_seconds",
            CheckFamily::Skipped => "vouch_scheduler_skipped_runs_total",
            CheckFamily::State => "vouch_check_state",
            CheckFamily::Timeout => "vouch_check_timeout_seconds",
            CheckFamily::Threshold => "vouch_check_threshold",
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            CheckFamily::Duration => "histogram",
            CheckFamily::Runs | CheckFamily::Skipped => "counter",
            _ => "gauge",
        }
    }
}

/// Index of a family in a scrape's order: the fixed families, then one
/// per measure.
pub fn family_count() -> usize {
    CheckFamily::ALL.len() + Measure::ALL.len()
}

fn measure_slot(measure: Measure) -> usize {
    CheckFamily::ALL.len() + measure as usize
}

/// The family at a slot: its name, type and help text.
pub fn family_at(
    slot: usize,
    help_of: impl Fn(&str) -> &'static str,
) -> (&'static str, &'static str, &'static str) {
    match CheckFamily::ALL.get(slot) {
        Some(family) => (family.name(), family.type_name(), help_of(family.name())),
        None => {
            let measure = Measure::ALL[slot - CheckFamily::ALL.len()];
            (measure.name(), "gauge", measure.help())
        }
    }
}

/// Appends `value` as a label value: backslash, double quote and newline
/// escaped as the text format requires.
pub fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends a sample value as the text format spells it. Most values are
/// whole numbers (counts, status codes, verdicts): those take the integer
/// path, far cheaper than the float formatter, which was the largest item
/// of a run's instruction profile once each run renders its lines.
pub fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        // Below 2^53 every whole f64 is an exact i64.
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(value));
    }
}

#[derive(Default)]
struct DurationHistogram {
    /// Runs per bucket, not cumulative; the last slot is above every bound.
    counts: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
}

impl DurationHistogram {
    fn observe(&mut self, seconds: f64) {
        let slot = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += seconds;
    }
}

/// What identifies a check's series and never changes between its runs.
struct Identity {
    fingerprint: String,
    /// `check="name"`, escaped once: every series starts with it.
    check_label: String,
    kind: &'static str,
    severity: &'static str,
    /// The labels of `vouch_check_info`: `check`, `kind`, the
    /// `label_<key>` pairs, `section`, `severity`.
    info_labels: String,
    interval_seconds: f64,
    timeout_seconds: f64,
    /// The limits of the check's config its alerts judge against.
    thresholds: Vec<Threshold>,
}

/// One check's state and its rendered series.
pub struct CheckSeries {
    identity: Identity,
    /// Reported verdict (after flap thresholds); None until the first run
    /// of the config in force ends (`pending`).
    reported: Option<Verdict>,
    last_run_success: Option<bool>,
    duration: Option<DurationHistogram>,
    last_run: Option<f64>,
    last_success: Option<f64>,
    last_rollout: Option<f64>,
    /// Runs by (result, reason), in order of first appearance.
    runs: Vec<(&'static str, &'static str, u64)>,
    skipped: u64,
    /// The last run's measurements, in family order: a run that measures
    /// less drops what it no longer measures (a stale status code after a
    /// timeout would lie).
    measurements: Vec<Measurement>,
    text: String,
    /// Where each family's lines sit in `text`: (slot, start, end).
    spans: Vec<(u16, u32, u32)>,
}

impl CheckSeries {
    pub fn new(check: &PlannedCheck, info_keys: &[&str]) -> Self {
        let mut series = CheckSeries {
            identity: identity(check, info_keys),
            reported: None,
            last_run_success: None,
            duration: None,
            last_run: None,
            last_success: None,
            last_rollout: None,
            runs: Vec::new(),
            skipped: 0,
            measurements: Vec::new(),
            text: String::new(),
            spans: Vec::new(),
        };
        series.render();
        series
    }

    /// Follows a reload that kept a check of this name: history stays, the
    /// identifying labels follow the new config.
    pub fn reconfigure(&mut self, check: &PlannedCheck, info_keys: &[&str]) {
        let before = std::mem::replace(&mut self.identity, identity(check, info_keys));
        if (before.kind, before.severity) != (self.identity.kind, self.identity.severity) {
            // The verdict series carried the old labels; the next run sets
            // it under the new ones.
            self.reported = None;
        }
        self.render();
    }

    /// Whether `check` is the config this series follows (a run of a
    /// previous config can end after a reload).
    pub fn follows(&self, check: &PlannedCheck) -> bool {
        self.identity.fingerprint == check.fingerprint
    }

    pub fn run_finished(&mut self, record: &RunRecord, reported: Verdict) {
        let outcome = &record.outcome;
        let passed = outcome.verdict == Verdict::Pass;
        self.reported = Some(reported);
        self.last_run_success = Some(passed);
        self.duration
            .get_or_insert_with(DurationHistogram::default)
            .observe(record.duration.as_secs_f64());
        let ended = unix_seconds(record.started_at + record.duration);
        self.last_run = Some(ended);
        if passed {
            self.last_success = Some(ended);
        }
        let (result, reason) = (outcome.verdict.as_str(), outcome.reason.as_str());
        match self
            .runs
            .iter_mut()
            .find(|(r, w, _)| *r == result && *w == reason)
        {
            Some((_, _, count)) => *count += 1,
            None => self.runs.push((result, reason, 1)),
        }
        self.measurements.clear();
        self.measurements
            .extend(outcome.measurements.iter().cloned());
        // Stable: several series of one measure keep the probe's order.
        self.measurements.sort_by_key(|m| m.measure);
        self.render();
    }

    pub fn run_skipped(&mut self) {
        self.skipped += 1;
        self.render();
    }

    pub fn rollout_seen(&mut self, at: f64) {
        self.last_rollout = Some(at);
        self.render();
    }

    /// Each family's lines of this check, in slot order.
    pub fn families(&self) -> impl Iterator<Item = (usize, &str)> {
        self.spans.iter().map(|(slot, start, end)| {
            (
                usize::from(*slot),
                &self.text[*start as usize..*end as usize],
            )
        })
    }

    fn render(&mut self) {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        let id = &self.identity;
        let mut spans = std::mem::take(&mut self.spans);
        spans.clear();
        let mut section = |text: &mut String, slot: usize, write: &mut dyn FnMut(&mut String)| {
            let start = text.len();
            write(text);
            if text.len() > start {
                spans.push((slot as u16, start as u32, text.len() as u32));
            }
        };
        let gauge = |text: &mut String, family: CheckFamily, value: Option<f64>| {
            if let Some(value) = value {
                sample(text, family.name(), "", &id.check_label, value);
            }
        };

        section(&mut text, CheckFamily::Success as usize, &mut |t| {
            write_success(t, id, self.reported)
        });
        section(&mut text, CheckFamily::LastRunSuccess as usize, &mut |t| {
            gauge(
                t,
                CheckFamily::LastRunSuccess,
                self.last_run_success.map(|p| f64::from(u8::from(p))),
            )
        });
        section(&mut text, CheckFamily::Duration as usize, &mut |t| {
            if let Some(histogram) = &self.duration {
                write_duration(t, id, histogram);
            }
        });
        section(&mut text, CheckFamily::LastRun as usize, &mut |t| {
            gauge(t, CheckFamily::LastRun, self.last_run)
        });
        section(&mut text, CheckFamily::LastSuccess as usize, &mut |t| {
            gauge(t, CheckFamily::LastSuccess, self.last_success)
        });
        section(&mut text, CheckFamily::LastRollout as usize, &mut |t| {
            gauge(t, CheckFamily::LastRollout, self.last_rollout)
        });
        section(&mut text, CheckFamily::Runs as usize, &mut |t| {
            write_runs(t, id, &self.runs)
        });
        section(&mut text, CheckFamily::Info as usize, &mut |t| {
            sample(t, CheckFamily::Info.name(), "", &id.info_labels, 1.0)
        });
        section(&mut text, CheckFamily::Interval as usize, &mut |t| {
            gauge(t, CheckFamily::Interval, Some(id.interval_seconds))
        });
        section(&mut text, CheckFamily::Skipped as usize, &mut |t| {
            // Present from the start, so rate() sees the first skip.
            gauge(t, CheckFamily::Skipped, Some(self.skipped as f64))
        });
        section(&mut text, CheckFamily::State as usize, &mut |t| {
            write_states(t, id, self.reported)
        });
        section(&mut text, CheckFamily::Timeout as usize, &mut |t| {
            gauge(t, CheckFamily::Timeout, Some(id.timeout_seconds))
        });
        section(&mut text, CheckFamily::Threshold as usize, &mut |t| {
            write_thresholds(t, id)
        });
        let mut rest = self.measurements.as_slice();
        while let Some(first) = rest.first() {
            let measure = first.measure;
            let count = rest.iter().take_while(|m| m.measure == measure).count();
            let (same, next) = rest.split_at(count);
            section(&mut text, measure_slot(measure), &mut |t| {
                write_measurements(t, id, measure, same)
            });
            rest = next;
        }
        self.text = text;
        self.spans = spans;
    }
}

#[inline]
fn write_success(t: &mut String, id: &Identity, reported: Option<Verdict>) {
    if let Some(reported) = reported {
        open(t, CheckFamily::Success.name(), "", &id.check_label);
        let _ = write!(t, ",kind=\"{}\",severity=\"{}\"", id.kind, id.severity);
        close(t, f64::from(u8::from(reported == Verdict::Pass)));
    }
}

#[inline]
fn write_duration(t: &mut String, id: &Identity, histogram: &DurationHistogram) {
    let name = CheckFamily::Duration.name();
    let mut cumulative = 0;
    for (le, count) in DURATION_LE.iter().zip(histogram.counts) {
        cumulative += count;
        open(t, name, "_bucket", &id.check_label);
        t.push_str(",le=\"");
        t.push_str(le);
        t.push('"');
        close(t, cumulative as f64);
    }
    sample(t, name, "_sum", &id.check_label, histogram.sum);
    sample(t, name, "_count", &id.check_label, cumulative as f64);
}

#[inline]
fn write_runs(t: &mut String, id: &Identity, runs: &[(&'static str, &'static str, u64)]) {
    for (result, reason, count) in runs {
        open(t, CheckFamily::Runs.name(), "", &id.check_label);
        let _ = write!(t, ",reason=\"{reason}\",result=\"{result}\"");
        close(t, *count as f64);
    }
}

#[inline]
fn write_states(t: &mut String, id: &Identity, reported: Option<Verdict>) {
    // Every state has a series (1 for the current one), so a dashboard can
    // count pending checks and an alert can tell a check that never
    // finished a run from one that is absent.
    let current = reported.map_or("pending", Verdict::as_str);
    for state in ["pass", "fail", "error", "pending"] {
        open(t, CheckFamily::State.name(), "", &id.check_label);
        let _ = write!(t, ",severity=\"{}\",state=\"{state}\"", id.severity);
        close(t, f64::from(u8::from(state == current)));
    }
}

#[inline]
fn write_thresholds(t: &mut String, id: &Identity) {
    for limit in &id.thresholds {
        open(t, CheckFamily::Threshold.name(), "", &id.check_label);
        if let Some(secret) = &limit.secret {
            t.push_str(",secret=\"");
            push_label_value(t, secret);
            t.push('"');
        }
        let _ = write!(t, ",threshold=\"{}\"", limit.threshold);
        close(t, limit.value);
    }
}

/// The run's measurements of one family.
#[inline]
fn write_measurements(t: &mut String, id: &Identity, measure: Measure, same: &[Measurement]) {
    for measurement in same {
        // Label names in order, as the `prometheus` crate wrote them (some
        // consumers match series as text).
        let mut labels: Vec<(&str, Option<&str>)> = measurement
            .labels
            .iter()
            .map(|(name, value)| (name.as_str(), Some(value.as_str())))
            .collect();
        labels.push(("check", None));
        labels.sort_by_key(|(name, _)| *name);
        t.push_str(measure.name());
        t.push('{');
        for (i, (name, value)) in labels.iter().enumerate() {
            if i > 0 {
                t.push(',');
            }
            match value {
                None => t.push_str(&id.check_label),
                Some(value) => {
                    t.push_str(name);
                    t.push_str("=\"");
                    push_label_value(t, value);
                    t.push('"');
                }
            }
        }
        close(t, measurement.value);
    }
}

/// One sample line: `name suffix {labels} value`.
fn sample(out: &mut String, name: &str, suffix: &str, labels: &str, value: f64) {
    open(out, name, suffix, labels);
    close(out, value);
}

/// Starts a sample line up to its first labels; more labels may follow.
fn open(out: &mut String, name: &str, suffix: &str, labels: &str) {
    out.push_str(name);
    out.push_str(suffix);
    out.push('{');
    out.push_str(labels);
}

/// Ends a sample line begun by [`open`].
fn close(out: &mut String, value: f64) {
    out.push_str("} ");
    push_value(out, value);
    out.push('\n');
}

fn identity(check: &PlannedCheck, info_keys: &[&str]) -> Identity {
    let mut check_label = String::from("check=\"");
    push_label_value(&mut check_label, &check.name);
    check_label.push('"');
    // Label names in order: check, kind, label_*, section, severity.
    let mut info_labels = check_label.clone();
    let _ = write!(info_labels, ",kind=\"{}\"", check.kind.as_str());
    for key in info_keys {
        let _ = write!(info_labels, ",label_{key}=\"");
        push_label_value(
            &mut info_labels,
            check.labels.get(*key).map(String::as_str).unwrap_or(""),
        );
        info_labels.push('"');
    }
    info_labels.push_str(",section=\"");
    push_label_value(&mut info_labels, &check.section);
    let _ = write!(info_labels, "\",severity=\"{}\"", check.severity.as_str());
    Identity {
        fingerprint: check.fingerprint.clone(),
        check_label,
        kind: check.kind.as_str(),
        severity: check.severity.as_str(),
        info_labels,
        interval_seconds: check.interval.as_secs_f64(),
        timeout_seconds: check.timeout.as_secs_f64(),
        thresholds: thresholds(check),
    }
}

pub fn unix_seconds(time: std::time::SystemTime) -> f64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_sit_in_their_declared_slots() {
        for (i, measure) in Measure::ALL.iter().enumerate() {
            assert_eq!(*measure as usize, i, "{}", measure.name());
        }
    }

    #[test]
    fn label_values_and_special_numbers_are_spelled_as_the_format_wants() {
        let mut out = String::new();
        push_label_value(&mut out, "a\"b\\c\nd");
        assert_eq!(out, r#"a\"b\\c\nd"#);
        for (value, text) in [
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (1.0, "1"),
            (0.25, "0.25"),
            (1_764_243_123.5, "1764243123.5"),
            (1_764_243_123.0, "1764243123"),
            (-3.0, "-3"),
            (0.000_012, "0.000012"),
        ] {
            let mut out = String::new();
            push_value(&mut out, value);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn bucket_bounds_and_their_labels_agree() {
        for (bound, le) in DURATION_BUCKETS.iter().zip(DURATION_LE) {
            assert_eq!(bound.to_string(), le);
        }
    }

    #[test]
    fn durations_fall_in_the_first_bucket_that_holds_them() {
        let mut histogram = DurationHistogram::default();
        for seconds in [0.005, 0.0051, 61.0] {
            histogram.observe(seconds);
        }
        assert_eq!(histogram.counts[0], 1);
        assert_eq!(histogram.counts[1], 1);
        assert_eq!(histogram.counts[DURATION_BUCKETS.len()], 1);
    }
}
