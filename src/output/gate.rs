//! `GET /api/v1/gate`: is the selected part of the checklist passing right
//! now? 200 when every selected check's reported verdict is pass (and has
//! run since a given time, if asked), 503 with the checks holding it up
//! otherwise. Made for progressive delivery (an Argo Rollouts `web` metric,
//! a Flagger webhook) during a rollout.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::status::{CheckStatus, StatusSnapshot};
use crate::config::Severity;

/// Query parameters; lists are comma-separated.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateQuery {
    /// Sections (or section prefixes) to include.
    pub section: Option<String>,
    /// Check names to include.
    pub check: Option<String>,
    /// Lowest severity to include (`critical`, `warning`, `info`); by
    /// default `warning`, the threshold of `vouch check --fail-on`, so the
    /// endpoint, the CLI gate and the status page give one answer.
    pub severity: Option<String>,
    /// Require a run that started at or after this time: RFC 3339 or Unix
    /// seconds (the rollout's start).
    pub since: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Holdup {
    pub name: String,
    pub state: &'static str,
    /// Why the check holds the gate: its verdict, or that it has not run
    /// since the given time.
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct GateAnswer {
    pub passed: bool,
    /// The lowest severity the answer includes (the query's, or the default).
    pub severity: Severity,
    pub selected: usize,
    pub passing: Vec<String>,
    pub holding: Vec<Holdup>,
}

fn list(text: &Option<String>) -> Vec<&str> {
    text.as_deref()
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Ok(UNIX_EPOCH + Duration::from_secs_f64(seconds));
        }
    }
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        format!("since={text:?}: expected RFC 3339 (2026-01-31T12:00:00Z) or Unix seconds")
    })
}

fn severity(text: &str) -> Result<Severity, String> {
    match text {
        "critical" => Ok(Severity::Critical),
        "warning" => Ok(Severity::Warning),
        "info" => Ok(Severity::Info),
        _ => Err(format!(
            "severity={text:?}: expected critical, warning or info"
        )),
    }
}

fn selected(status: &CheckStatus, sections: &[&str], checks: &[&str], minimum: Severity) -> bool {
    let section = status.check.section.as_str();
    let in_section = sections.is_empty()
        || sections.iter().any(|s| {
            let s = s.trim_end_matches('/');
            section == s
                || section
                    .strip_prefix(s)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
    let named = checks.is_empty() || checks.contains(&status.check.name.as_str());
    in_section && named && status.check.severity >= minimum
}

/// Evaluates the gate; `Err` is a bad query.
pub fn evaluate(snapshot: &StatusSnapshot, query: &GateQuery) -> Result<GateAnswer, String> {
    let minimum = query
        .severity
        .as_deref()
        .map(severity)
        .transpose()?
        .unwrap_or(crate::round::DEFAULT_FAIL_ON);
    let since = query.since.as_deref().map(parse_since).transpose()?;
    let sections = list(&query.section);
    let names = list(&query.check);
    for name in &names {
        if !snapshot.checks.iter().any(|c| c.check.name == *name) {
            return Err(format!("check={name}: no such check"));
        }
    }
    let chosen: Vec<&CheckStatus> = snapshot
        .checks
        .iter()
        .filter(|c| selected(c, &sections, &names, minimum))
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "no check matches the selection (severity {} and above)",
            minimum.as_str()
        ));
    }
    let mut answer = GateAnswer {
        passed: true,
        severity: minimum,
        selected: chosen.len(),
        passing: Vec::new(),
        holding: Vec::new(),
    };
    for status in chosen {
        let last_start = status
            .last_run
            .as_ref()
            .and_then(|r| humantime::parse_rfc3339(&r.started_at).ok());
        let why = if status.state != "pass" {
            Some(match &status.last_run {
                None => "has not run yet".to_string(),
                Some(run) => format!(
                    "{} ({}): {}",
                    status.state,
                    run.reason.as_str(),
                    run.message
                ),
            })
        } else {
            match (since, last_start) {
                (Some(since), Some(start)) if start < since => Some(format!(
                    "has not run since {}",
                    humantime::format_rfc3339_seconds(since)
                )),
                _ => None,
            }
        };
        match why {
            None => answer.passing.push(status.check.name.clone()),
            Some(why) => {
                answer.passed = false;
                answer.holding.push(Holdup {
                    name: status.check.name.clone(),
                    state: status.state,
                    why,
                });
            }
        }
    }
    Ok(answer)
}
