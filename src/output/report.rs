//! The gate's report of one round of checks: a table for people, JSON and
//! JUnit XML for CI systems.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde::Serialize;

use crate::config::Severity;
use crate::result::Verdict;
use crate::runner::RunRecord;

use super::status::{CheckStatus, Summary};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Junit,
}

/// The outcome of a gate: every run, and whether the gate holds.
pub struct GateReport {
    pub records: Vec<RunRecord>,
    pub fail_on: Severity,
}

impl GateReport {
    /// Whether a run blocks the gate: it did not pass and its severity is
    /// at or above `fail_on`.
    pub fn blocks(&self, record: &RunRecord) -> bool {
        record.outcome.verdict != Verdict::Pass && record.check.severity >= self.fail_on
    }

    pub fn passed(&self) -> bool {
        !self.records.iter().any(|r| self.blocks(r))
    }

    fn summary(&self) -> Summary {
        let mut summary = Summary {
            total: self.records.len(),
            ..Summary::default()
        };
        for record in &self.records {
            match record.outcome.verdict {
                Verdict::Pass => summary.pass += 1,
                Verdict::Fail => summary.fail += 1,
                Verdict::Error => summary.error += 1,
            }
        }
        summary
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => self.json(),
            Format::Junit => self.junit(),
        }
    }

    fn by_section(&self) -> Vec<(&str, Vec<&RunRecord>)> {
        super::in_sections(&self.records, |r| r.check.section.as_str())
    }

    /// A header row, then one block per section, one row per check:
    /// verdict (upper case when it blocks the gate, lower case when it is
    /// below `--fail-on`), name, duration, severity, reason word and
    /// message; then a legend, the totals and the checks that block.
    fn table(&self) -> String {
        let width = |text: fn(&RunRecord) -> usize, header: &str| {
            self.records
                .iter()
                .map(text)
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        };
        let name_width = width(|r| r.check.name.chars().count(), "CHECK");
        let reason_width = width(|r| r.outcome.reason.as_str().len(), "REASON");
        let row = |mark: &str,
                   name: &str,
                   time: &str,
                   severity: &str,
                   reason: &str,
                   message: &str| {
            let line = format!(
                "  {mark:<7}  {name:<name_width$}  {time:>8}  {severity:<8}  {reason:<reason_width$}  {message}"
            );
            line.trim_end().to_string()
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            row("VERDICT", "CHECK", "TIME", "SEVERITY", "REASON", "MESSAGE")
        );
        for (section, records) in self.by_section() {
            let _ = writeln!(out, "{section}");
            for record in records {
                let outcome = &record.outcome;
                let _ = writeln!(
                    out,
                    "{}",
                    row(
                        self.mark(record),
                        &record.check.name,
                        &format!("{:.3}s", record.duration.as_secs_f64()),
                        record.check.severity.as_str(),
                        outcome.reason.as_str(),
                        &outcome.message,
                    )
                );
            }
        }
        let _ = writeln!(
            out,
            "\nFAIL, ERROR: blocks the gate (severity {} or above); fail, error: below --fail-on, reported only.",
            self.fail_on
        );
        let _ = writeln!(out, "{}", self.closing_line());
        out
    }

    /// The verdict as the table shows it: upper case when it blocks.
    fn mark(&self, record: &RunRecord) -> &'static str {
        match (record.outcome.verdict, self.blocks(record)) {
            (Verdict::Pass, _) => "PASS",
            (Verdict::Fail, true) => "FAIL",
            (Verdict::Error, true) => "ERROR",
            (Verdict::Fail, false) => "fail",
            (Verdict::Error, false) => "error",
        }
    }

    /// Totals, the gate's verdict, and the checks that decided it.
    fn closing_line(&self) -> String {
        let summary = self.summary();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let names = |blocking: bool| -> Vec<&str> {
            self.records
                .iter()
                .filter(|r| r.outcome.verdict != Verdict::Pass && self.blocks(r) == blocking)
                .map(|r| r.check.name.as_str())
                .collect()
        };
        let verdict = if self.records.is_empty() {
            format!(
                "Gate PASSED (fail-on {}): no check selected, allowed by --allow-empty.",
                self.fail_on
            )
        } else if self.passed() {
            let below = names(false);
            if below.is_empty() {
                format!("Gate PASSED (fail-on {}).", self.fail_on)
            } else {
                format!(
                    "Gate PASSED (fail-on {}); not blocking: {}.",
                    self.fail_on,
                    below.join(", ")
                )
            }
        } else {
            format!(
                "Gate FAILED (fail-on {}), blocked by: {}.",
                self.fail_on,
                names(true).join(", ")
            )
        };
        format!(
            "{}: {} passed, {} failed, {}. {verdict}",
            plural(summary.total, "check"),
            summary.pass,
            summary.fail,
            plural(summary.error, "error"),
        )
    }

    /// The shape of `/api/v1/checks` (a summary and one object per check,
    /// with `state` and `last_run`), plus the gate's verdict and, per
    /// check, whether it blocks.
    fn json(&self) -> String {
        #[derive(Serialize)]
        struct Entry {
            #[serde(flatten)]
            status: CheckStatus,
            blocks_gate: bool,
        }
        #[derive(Serialize)]
        struct Document {
            passed: bool,
            fail_on: Severity,
            summary: Summary,
            checks: Vec<Entry>,
        }
        let document = Document {
            passed: self.passed(),
            fail_on: self.fail_on,
            summary: self.summary(),
            checks: self
                .records
                .iter()
                .map(|record| Entry {
                    status: CheckStatus::of_single_run(record),
                    blocks_gate: self.blocks(record),
                })
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&document).expect("report serializes");
        text.push('\n');
        text
    }

    /// One `<testsuite>` per section (with `timestamp` and `hostname`), one
    /// `<testcase>` per check whose `classname` is its section, so CI views
    /// (GitLab, Jenkins) group checks as the checklist does. A blocking
    /// `fail` is a `<failure>`, a blocking `error` an `<error>` (the check
    /// could not be evaluated); a check below `--fail-on` is skipped with
    /// its message, so CI views agree with the exit code.
    fn junit(&self) -> String {
        use quick_xml::escape::escape;
        let total_time: f64 = self.records.iter().map(|r| r.duration.as_secs_f64()).sum();
        let (failures, errors, skipped) = self.counts(self.records.iter());
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"vouch\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{total_time:.3}\">",
            self.records.len(),
        );
        let host = hostname();
        for (section, records) in self.by_section() {
            let (failures, errors, skipped) = self.counts(records.iter().copied());
            let time: f64 = records.iter().map(|r| r.duration.as_secs_f64()).sum();
            let started = records
                .iter()
                .map(|r| r.started_at)
                .min()
                .unwrap_or_else(SystemTime::now);
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\" timestamp=\"{}\" hostname=\"{}\">",
                escape(section),
                records.len(),
                junit_timestamp(started),
                escape(&host),
            );
            for record in records {
                let outcome = &record.outcome;
                let _ = write!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
                    escape(&record.check.name),
                    escape(section),
                    record.duration.as_secs_f64()
                );
                let message = format!("{}: {}", outcome.reason, outcome.message);
                let element = match outcome.verdict {
                    Verdict::Fail => "failure",
                    _ => "error",
                };
                match (outcome.verdict, self.blocks(record)) {
                    (Verdict::Pass, _) => {}
                    (verdict, true) => {
                        let _ = write!(
                            out,
                            "<{element} type=\"{}\" message=\"{}\">{} ({} severity {})</{element}>",
                            outcome.reason,
                            escape(&message),
                            escape(&outcome.message),
                            verdict,
                            record.check.severity
                        );
                    }
                    (verdict, false) => {
                        let _ = write!(
                            out,
                            "<skipped message=\"{} below fail-on {}: {}\"/>",
                            verdict,
                            self.fail_on,
                            escape(&message)
                        );
                    }
                }
                out.push_str("</testcase>\n");
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }

    /// (blocking fails, blocking errors, non-blocking non-passes).
    fn counts<'a>(&self, records: impl Iterator<Item = &'a RunRecord>) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for record in records {
            match (record.outcome.verdict, self.blocks(record)) {
                (Verdict::Pass, _) => {}
                (Verdict::Fail, true) => counts.0 += 1,
                (Verdict::Error, true) => counts.1 += 1,
                (_, false) => counts.2 += 1,
            }
        }
        counts
    }
}

/// JUnit's `timestamp`: ISO 8601 without a zone (the schema's form), in UTC.
fn junit_timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .trim_end_matches('Z')
        .to_string()
}

/// The machine's name for JUnit's `hostname` (the CI runner's).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
