//! The gate's report of one round of checks: a table for people, JSON and
//! JUnit XML for CI systems.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Severity;
use crate::result::Verdict;
use crate::runner::RunRecord;

use super::status::{CheckView, RunView, Summary};

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

    /// One block per section, one row per check: verdict (upper case when
    /// it blocks the gate, lower case when it is below `--fail-on`), name,
    /// duration, severity, reason word and message; then the totals.
    fn table(&self) -> String {
        let width =
            |text: fn(&RunRecord) -> usize| self.records.iter().map(text).max().unwrap_or(0);
        let name_width = width(|r| r.check.name.chars().count());
        let reason_width = width(|r| r.outcome.reason.as_str().len());
        let mut out = String::new();
        for (section, records) in self.by_section() {
            let _ = writeln!(out, "{section}");
            for record in records {
                let outcome = &record.outcome;
                let mark = match (outcome.verdict, self.blocks(record)) {
                    (Verdict::Pass, _) => "PASS",
                    (Verdict::Fail, true) => "FAIL",
                    (Verdict::Error, true) => "ERROR",
                    (Verdict::Fail, false) => "fail",
                    (Verdict::Error, false) => "error",
                };
                let row = format!(
                    "  {mark:<5}  {:<name_width$}  {:>8}  {:<8}  {:<reason_width$}  {}",
                    record.check.name,
                    format!("{:.3}s", record.duration.as_secs_f64()),
                    record.check.severity.as_str(),
                    outcome.reason.as_str(),
                    outcome.message,
                );
                let _ = writeln!(out, "{}", row.trim_end());
            }
        }
        let summary = self.summary();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let _ = writeln!(
            out,
            "\n{}: {} passed, {} failed, {}. Gate {} (fail-on {}).",
            plural(summary.total, "check"),
            summary.pass,
            summary.fail,
            plural(summary.error, "error"),
            if self.passed() { "PASSED" } else { "FAILED" },
            self.fail_on
        );
        out
    }

    fn json(&self) -> String {
        #[derive(Serialize)]
        struct Entry {
            #[serde(flatten)]
            check: CheckView,
            blocks_gate: bool,
            #[serde(flatten)]
            run: RunView,
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
                    check: CheckView::from(record.check.as_ref()),
                    blocks_gate: self.blocks(record),
                    run: RunView::from(record),
                })
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&document).expect("report serializes");
        text.push('\n');
        text
    }

    /// One `<testsuite>` per section, one `<testcase>` per check. A check
    /// that does not block the gate (below `--fail-on`) is reported as
    /// skipped-with-message rather than failed, so CI views agree with the
    /// exit code.
    fn junit(&self) -> String {
        use quick_xml::escape::escape;
        let summary = self.summary();
        let total_time: f64 = self.records.iter().map(|r| r.duration.as_secs_f64()).sum();
        let blocking = self.records.iter().filter(|r| self.blocks(r)).count();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"vouch\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{total_time:.3}\">",
            summary.total, blocking
        );
        for (section, records) in self.by_section() {
            let failures = records.iter().filter(|r| self.blocks(r)).count();
            let skipped = records
                .iter()
                .filter(|r| r.outcome.verdict != Verdict::Pass && !self.blocks(r))
                .count();
            let time: f64 = records.iter().map(|r| r.duration.as_secs_f64()).sum();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
                escape(section),
                records.len()
            );
            for record in records {
                let outcome = &record.outcome;
                let _ = write!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
                    escape(&record.check.name),
                    escape(format!("vouch.{}", record.check.kind.as_str())),
                    record.duration.as_secs_f64()
                );
                let message = format!("{}: {}", outcome.reason, outcome.message);
                match (outcome.verdict, self.blocks(record)) {
                    (Verdict::Pass, _) => {}
                    (verdict, true) => {
                        let _ = write!(
                            out,
                            "<failure type=\"{}\" message=\"{}\">{} ({} severity {})</failure>",
                            verdict,
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
}
