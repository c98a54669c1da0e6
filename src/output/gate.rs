//! `GET` or `POST /api/v1/gate`: is the selected part of the checklist
//! passing right now? 200 when every selected check's reported verdict is
//! pass (and has run since a given time, or since the last rollout vouch
//! saw, if asked), 503 with the checks holding it up otherwise. Made for
//! progressive delivery during a rollout:
//!
//! - Flagger calls webhooks with `POST` and a JSON payload (canary name,
//!   namespace, phase, checksum, metadata) and counts any status above 202
//!   as a failed check, reading nothing else. The payload is logged and
//!   otherwise ignored.
//! - Argo Rollouts' `web` provider sends `GET`, records any non-2xx answer
//!   as a measurement *error* (retried, and only
//!   `consecutiveErrorLimit` errors in a row end the analysis) and
//!   evaluates its condition on the body only after a 2xx. With
//!   `held_status=200` a held gate answers 200 with `"passed": false`, so
//!   Argo records a real failed measurement that counts against
//!   `failureLimit`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::server::AppState;
use super::status::{CheckStatus, StatusSnapshot};
use crate::config::Severity;

/// The largest request body the gate reads: Flagger's payload is a few
/// hundred bytes plus the webhook's metadata.
pub const BODY_LIMIT: usize = 64 * 1024;

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
    /// `true`: every selected check that follows rollouts
    /// (`after_rollout_of`) must also have run since the last rollout vouch
    /// saw of one of its workloads.
    pub since_rollout: Option<String>,
    /// The status of a held gate: `503` (default) or `200` (the body still
    /// says `"passed": false`; for callers that read the body, as Argo
    /// Rollouts does, and never for Flagger, which reads only the status).
    pub held_status: Option<String>,
    /// `true`: this replica's checks only, in a sharded install.
    pub local: Option<String>,
}

/// What Flagger POSTs to a webhook (its `CanaryWebhookPayload`).
#[derive(Debug, Deserialize)]
pub struct FlaggerPayload {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    #[serde(default)]
    pub checksum: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct Holdup {
    pub name: String,
    /// The check's state, or `unreachable` for a shard that did not answer.
    pub state: String,
    /// Why the check holds the gate: its verdict, or that it has not run
    /// since the given time.
    pub why: String,
    /// In a sharded install, the shard that runs the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
}

/// What the gate reads of one check: from this replica's board, or from
/// a peer shard's `/api/v1/checks` (whose JSON has these fields).
#[derive(Debug, Deserialize)]
pub struct GateItem {
    pub name: String,
    pub section: String,
    pub severity: String,
    pub state: String,
    pub last_run: Option<ItemRun>,
    pub last_rollout: Option<ItemRollout>,
    #[serde(default)]
    pub shard: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct ItemRun {
    pub started_at: String,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct ItemRollout {
    pub workload: String,
    pub generation: i64,
    pub seen_at: String,
}

impl GateItem {
    pub fn of(status: &CheckStatus, shard: Option<u32>) -> GateItem {
        GateItem {
            name: status.check.name.clone(),
            section: status.check.section.clone(),
            severity: format!("{:?}", status.check.severity).to_ascii_lowercase(),
            state: status.state.to_string(),
            last_run: status.last_run.as_ref().map(|run| ItemRun {
                started_at: run.started_at.clone(),
                reason: run.reason.as_str().to_string(),
                message: run.message.clone(),
            }),
            last_rollout: status.last_rollout.as_ref().map(|r| ItemRollout {
                workload: r.workload.clone(),
                generation: r.generation,
                seen_at: r.seen_at.clone(),
            }),
            shard,
        }
    }
}

/// A peer shard that did not answer, and why.
#[derive(Debug)]
pub struct Unreachable {
    pub shard: u32,
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
    /// Shards that did not answer hold the gate, and nothing else does: the
    /// gate is unknown rather than held, which `held_status=200` does not
    /// turn into a 200 (for Argo that would be a Failed measurement for
    /// what is an Error: vouch could not be asked).
    #[serde(skip)]
    pub unanswered_only: bool,
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

/// The latest `since` accepted: the end of year 9999, as far as RFC 3339
/// goes. Larger Unix seconds would overflow the clock's arithmetic.
const LATEST_SINCE_SECONDS: f64 = 253_402_300_799.0;

fn parse_since(text: &str) -> Result<SystemTime, String> {
    let expected = "expected RFC 3339 (2026-01-31T12:00:00Z) or Unix seconds";
    if let Ok(seconds) = text.parse::<f64>() {
        // Range-checked before any arithmetic: `1e20`, `inf` or `-1` are
        // answered as a bad query, never a panic.
        if !(0.0..=LATEST_SINCE_SECONDS).contains(&seconds) {
            return Err(format!(
                "since={text:?}: out of range, {expected} from 0 to {LATEST_SINCE_SECONDS}"
            ));
        }
        return UNIX_EPOCH
            .checked_add(Duration::from_secs_f64(seconds))
            .ok_or_else(|| format!("since={text:?}: out of range"));
    }
    humantime::parse_rfc3339_weak(text).map_err(|_| format!("since={text:?}: {expected}"))
}

fn flag(key: &str, text: &str) -> Result<bool, String> {
    match text {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key}={text:?}: expected true or false")),
    }
}

/// The status a held gate answers with.
pub fn held_status(query: &GateQuery) -> Result<StatusCode, String> {
    match query.held_status.as_deref() {
        None | Some("503") => Ok(StatusCode::SERVICE_UNAVAILABLE),
        Some("200") => Ok(StatusCode::OK),
        Some(other) => Err(format!("held_status={other:?}: expected 503 or 200")),
    }
}

pub(super) fn severity(text: &str) -> Result<Severity, String> {
    match text {
        "critical" => Ok(Severity::Critical),
        "warning" => Ok(Severity::Warning),
        "info" => Ok(Severity::Info),
        _ => Err(format!(
            "severity={text:?}: expected critical, warning or info"
        )),
    }
}

fn selected(item: &GateItem, sections: &[&str], checks: &[&str], minimum: Severity) -> bool {
    let section = item.section.as_str();
    let in_section = sections.is_empty()
        || sections.iter().any(|s| {
            let s = s.trim_end_matches('/');
            section == s
                || section
                    .strip_prefix(s)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
    let named = checks.is_empty() || checks.contains(&item.name.as_str());
    // A peer's unknown severity word is never filtered out.
    let level = severity(&item.severity).unwrap_or(Severity::Critical);
    in_section && named && level >= minimum
}

/// Why a passing check still holds a `since_rollout` gate: its last run
/// started before the last rollout it follows was seen.
fn not_run_since_rollout(item: &GateItem, last_start: Option<SystemTime>) -> Option<String> {
    let rollout = item.last_rollout.as_ref()?;
    let seen = humantime::parse_rfc3339(&rollout.seen_at).ok()?;
    match last_start {
        Some(start) if start >= seen => None,
        _ => Some(format!(
            "has not run since the rollout of {} (generation {}) seen at {}",
            rollout.workload, rollout.generation, rollout.seen_at
        )),
    }
}

/// Evaluates the gate over this replica's checks; `Err` is a bad query.
pub fn evaluate(snapshot: &StatusSnapshot, query: &GateQuery) -> Result<GateAnswer, String> {
    let items: Vec<GateItem> = snapshot
        .checks
        .iter()
        .map(|c| GateItem::of(c, None))
        .collect();
    evaluate_items(&items, &[], query)
}

/// Evaluates the gate over the checks of every shard that answered; each
/// shard that did not holds it. `Err` is a bad query.
pub fn evaluate_items(
    items: &[GateItem],
    unreachable: &[Unreachable],
    query: &GateQuery,
) -> Result<GateAnswer, String> {
    let minimum = query
        .severity
        .as_deref()
        .map(severity)
        .transpose()?
        .unwrap_or(crate::round::DEFAULT_FAIL_ON);
    let since = query.since.as_deref().map(parse_since).transpose()?;
    let since_rollout = query
        .since_rollout
        .as_deref()
        .map(|t| flag("since_rollout", t))
        .transpose()?
        .unwrap_or(false);
    held_status(query)?;
    let sections = list(&query.section);
    let names = list(&query.check);
    // A shard that did not answer may hold the named checks.
    for name in names.iter().filter(|_| unreachable.is_empty()) {
        if !items.iter().any(|c| c.name == *name) {
            return Err(format!("check={name}: no such check"));
        }
    }
    let chosen: Vec<&GateItem> = items
        .iter()
        .filter(|c| selected(c, &sections, &names, minimum))
        .collect();
    if chosen.is_empty() && unreachable.is_empty() {
        return Err(format!(
            "no check matches the selection (severity {} and above)",
            minimum.as_str()
        ));
    }
    let mut answer = GateAnswer {
        passed: unreachable.is_empty(),
        severity: minimum,
        selected: chosen.len(),
        passing: Vec::new(),
        holding: unreachable
            .iter()
            .map(|peer| Holdup {
                name: format!("shard {}", peer.shard),
                state: "unreachable".into(),
                why: peer.why.clone(),
                shard: Some(peer.shard),
            })
            .collect(),
        unanswered_only: false,
    };
    for status in chosen {
        let last_start = status
            .last_run
            .as_ref()
            .and_then(|r| humantime::parse_rfc3339(&r.started_at).ok());
        let why = if status.state != "pass" {
            Some(match &status.last_run {
                None => "has not run yet".to_string(),
                Some(run) => format!("{} ({}): {}", status.state, run.reason, run.message),
            })
        } else {
            match (since, last_start) {
                (Some(since), Some(start)) if start < since => Some(format!(
                    "has not run since {}",
                    humantime::format_rfc3339_seconds(since)
                )),
                _ if since_rollout => not_run_since_rollout(status, last_start),
                _ => None,
            }
        };
        match why {
            None => answer.passing.push(status.name.clone()),
            Some(why) => {
                answer.passed = false;
                answer.holding.push(Holdup {
                    name: status.name.clone(),
                    state: status.state.clone(),
                    why,
                    shard: status.shard,
                });
            }
        }
    }
    answer.unanswered_only = !unreachable.is_empty() && answer.holding.len() == unreachable.len();
    Ok(answer)
}

/// The gate's HTTP handler, for `GET`, `HEAD` and `POST`. A POST body that
/// is Flagger's payload is logged; any other body is ignored.
pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    query: Result<Query<GateQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return (rejection.status(), format!("{rejection}\n")).into_response(),
    };
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            return (StatusCode::BAD_REQUEST, format!("{rejection}\n")).into_response()
        }
    };
    let flagger = (method == Method::POST)
        .then(|| serde_json::from_slice::<FlaggerPayload>(&body).ok())
        .flatten();
    if let Some(canary) = &flagger {
        tracing::debug!(canary = %format!("{}/{}", canary.namespace, canary.name), phase = %canary.phase, "gate asked by Flagger");
        if query.held_status.as_deref() == Some("200") {
            return (
                StatusCode::BAD_REQUEST,
                "held_status=200 with Flagger: Flagger reads only the status code, so a held gate would pass\n",
            )
                .into_response();
        }
    }
    match &state.peers {
        Some(peers) if !super::peers::is_local(query.local.as_deref()) => {
            let (items, unreachable) = peers.gate_items(&state.status.snapshot()).await;
            respond(evaluate_items(&items, &unreachable, &query), &query)
        }
        // Copied and evaluated off the async workers, as every page is.
        _ => {
            let status = state.status.clone();
            super::render_thread::render(move || answer(&status.snapshot(), &query)).await
        }
    }
}

/// The gate's answer over `snapshot`.
pub fn answer(snapshot: &StatusSnapshot, query: &GateQuery) -> Response {
    respond(evaluate(snapshot, query), query)
}

fn respond(evaluated: Result<GateAnswer, String>, query: &GateQuery) -> Response {
    match evaluated {
        Ok(answer) if answer.passed => Json(answer).into_response(),
        Ok(answer) if answer.unanswered_only => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(answer)).into_response()
        }
        Ok(answer) => {
            let status = held_status(query).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, Json(answer)).into_response()
        }
        Err(message) => (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Kind;
    use crate::output::status::{CheckView, RolloutView, RunView, Summary};
    use crate::result::{Reason, Verdict};

    fn passing(name: &str, started_at: &str, rollout_seen_at: Option<&str>) -> CheckStatus {
        CheckStatus {
            check: CheckView {
                name: name.into(),
                section: "post-deploy/api".into(),
                kind: Kind::Http,
                severity: Severity::Critical,
                interval_seconds: 60.0,
                timeout_seconds: 5.0,
                labels: Default::default(),
            },
            state: "pass",
            last_run: Some(RunView {
                verdict: Verdict::Pass,
                reason: Reason::Ok,
                message: "status 200".into(),
                started_at: started_at.into(),
                duration_seconds: 0.1,
                measurements: Vec::new(),
            }),
            recent: vec![Verdict::Pass],
            last_success_at: Some(started_at.into()),
            consecutive_failures: 0,
            next_run_at: None,
            last_rollout: rollout_seen_at.map(|seen_at| RolloutView {
                workload: "prod/api".into(),
                generation: 7,
                seen_at: seen_at.into(),
            }),
            failing_since: None,
        }
    }

    fn snapshot(checks: Vec<CheckStatus>) -> StatusSnapshot {
        StatusSnapshot {
            summary: Summary::default(),
            checks,
            rejected_reload: None,
        }
    }

    fn query(since_rollout: Option<&str>) -> GateQuery {
        GateQuery {
            since_rollout: since_rollout.map(str::to_string),
            ..GateQuery::default()
        }
    }

    #[test]
    fn since_rollout_holds_checks_that_last_ran_before_the_rollout() {
        let board = snapshot(vec![
            passing(
                "api-health",
                "2026-01-31T12:00:00.000Z",
                Some("2026-01-31T12:00:05.000Z"),
            ),
            passing(
                "api-version",
                "2026-01-31T12:00:06.000Z",
                Some("2026-01-31T12:00:05.000Z"),
            ),
            // Follows no rollout: judged on its verdict alone.
            passing("web-homepage", "2026-01-31T11:00:00.000Z", None),
        ]);
        let answer = evaluate(&board, &query(Some("true"))).unwrap();
        assert!(!answer.passed);
        assert_eq!(answer.passing, ["api-version", "web-homepage"]);
        assert_eq!(answer.holding.len(), 1);
        assert_eq!(
            answer.holding[0].why,
            "has not run since the rollout of prod/api (generation 7) seen at 2026-01-31T12:00:05.000Z"
        );
        // Without the flag the old pass counts.
        assert!(evaluate(&board, &query(None)).unwrap().passed);
        assert!(evaluate(&board, &query(Some("false"))).unwrap().passed);
        assert_eq!(
            evaluate(&board, &query(Some("yes"))).err().unwrap(),
            "since_rollout=\"yes\": expected true or false"
        );
    }

    #[test]
    fn a_held_gate_answers_503_unless_200_is_asked_for() {
        let mut held = passing("api-health", "2026-01-31T12:00:00.000Z", None);
        held.state = "fail";
        let board = snapshot(vec![held]);
        let status = |held_status: Option<&str>| {
            answer(
                &board,
                &GateQuery {
                    held_status: held_status.map(str::to_string),
                    ..GateQuery::default()
                },
            )
            .status()
        };
        assert_eq!(status(None), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(Some("503")), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(Some("200")), StatusCode::OK);
        assert_eq!(status(Some("204")), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn since_is_range_checked_before_any_arithmetic() {
        for bad in [
            "1e18",
            "1e19",
            "1e20",
            "1e308",
            "-1",
            "-0.5",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "253402300800",
        ] {
            let err = parse_since(bad).unwrap_err();
            assert!(err.starts_with(&format!("since={bad:?}: ")), "{err}");
        }
        assert_eq!(parse_since("0").unwrap(), UNIX_EPOCH);
        assert_eq!(
            parse_since("1767225600.5").unwrap(),
            UNIX_EPOCH + Duration::from_millis(1_767_225_600_500)
        );
        assert!(parse_since("253402300799").is_ok());
        assert!(parse_since("9999-12-31T23:59:59Z").is_ok());
        assert!(parse_since("yesterday").is_err());
    }
}
