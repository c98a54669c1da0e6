//! The reported verdict of a check: the raw verdict of its runs, changed
//! only after enough consecutive results agree (`failures_before_fail`,
//! `successes_before_pass`), so one blip neither pages nor clears a page.
//! The raw result stays visible beside it.

use crate::result::Verdict;

/// Per-check state of the reported verdict.
#[derive(Clone, Debug, Default)]
pub struct Debounce {
    reported: Option<Verdict>,
    /// Consecutive raw results that disagree with `reported`.
    against: u32,
}

impl Debounce {
    /// Takes one raw verdict; returns the verdict to report.
    pub fn observe(
        &mut self,
        raw: Verdict,
        failures_before_fail: u32,
        successes_before_pass: u32,
    ) -> Verdict {
        let Some(reported) = self.reported else {
            // Nothing to hold against the first result.
            self.reported = Some(raw);
            return raw;
        };
        let raw_passes = raw == Verdict::Pass;
        let reported_passes = reported == Verdict::Pass;
        if raw_passes == reported_passes {
            self.against = 0;
            // fail <-> error within a failing streak is reported as it comes.
            self.reported = Some(raw);
            return raw;
        }
        self.against += 1;
        let needed = if raw_passes {
            successes_before_pass
        } else {
            failures_before_fail
        };
        if self.against >= needed.max(1) {
            self.reported = Some(raw);
            self.against = 0;
        }
        self.reported.unwrap_or(raw)
    }

    pub fn reported(&self) -> Option<Verdict> {
        self.reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Error, Fail, Pass};

    fn run(sequence: &[Verdict], failures: u32, successes: u32) -> Vec<Verdict> {
        let mut state = Debounce::default();
        sequence
            .iter()
            .map(|v| state.observe(*v, failures, successes))
            .collect()
    }

    #[test]
    fn with_thresholds_of_one_the_raw_verdict_is_reported() {
        let raw = [Pass, Fail, Pass, Error, Error, Pass];
        assert_eq!(run(&raw, 1, 1), raw);
    }

    #[test]
    fn a_blip_shorter_than_the_threshold_is_not_reported() {
        assert_eq!(
            run(&[Pass, Fail, Pass, Fail, Fail, Fail, Pass], 3, 1),
            [Pass, Pass, Pass, Pass, Pass, Fail, Pass]
        );
    }

    #[test]
    fn recovery_needs_enough_consecutive_passes() {
        assert_eq!(
            run(&[Fail, Pass, Fail, Pass, Pass, Error], 1, 2),
            [Fail, Fail, Fail, Fail, Pass, Error]
        );
    }

    #[test]
    fn fail_and_error_alternate_freely_while_failing() {
        assert_eq!(run(&[Fail, Error, Fail], 2, 2), [Fail, Error, Fail]);
    }
}
