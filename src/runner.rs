//! Runs one check once: the probe in its own task, its timeout enforced
//! from outside, a panic turned into an `error` verdict.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

// tokio's clock, so tests with paused time see consistent durations.
use tokio::time::Instant;

use crate::config::format_duration;
use crate::plan::PlannedCheck;
use crate::probe::{Clients, ProbeContext, Progress};
use crate::result::{Outcome, Reason};

/// One finished run.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub check: Arc<PlannedCheck>,
    pub outcome: Outcome,
    pub started_at: SystemTime,
    pub duration: Duration,
}

pub async fn run_once(check: Arc<PlannedCheck>, clients: Arc<Clients>) -> RunRecord {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let progress = Progress::default();
    let ctx = ProbeContext {
        clients,
        progress: progress.clone(),
    };
    let probe = check.probe.clone();
    let mut task = tokio::spawn(async move { probe.run(&ctx).await });
    let outcome = match tokio::time::timeout(check.timeout, &mut task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join_error)) if join_error.is_panic() => {
            let payload = join_error.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(check = %check.name, panic = %text, "probe panicked");
            Outcome::error(Reason::Panic, format!("probe panicked: {text}"))
        }
        Ok(Err(_cancelled)) => Outcome::error(Reason::Panic, "probe task was cancelled"),
        Err(_elapsed) => {
            task.abort();
            Outcome::error(
                Reason::Timeout,
                format!(
                    "no result within {} ({})",
                    format_duration(check.timeout),
                    progress.get()
                ),
            )
        }
    };
    RunRecord {
        check,
        outcome,
        started_at,
        duration: started.elapsed(),
    }
}
