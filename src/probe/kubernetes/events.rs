//! Warning events of a namespace within a window.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;

use super::unix_of;
use crate::config::format_duration;
use crate::kube::{typed, Snapshot};
use crate::result::{Measure, Measurement, Outcome, Reason};

/// When the event last happened: its series' last occurrence, else its
/// last timestamp, event time, first timestamp or creation.
fn last_seen(event: &Event) -> Option<f64> {
    event
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0.as_millisecond() as f64 / 1000.0)
        .or_else(|| event.last_timestamp.as_ref().map(unix_of))
        .or_else(|| {
            event
                .event_time
                .as_ref()
                .map(|t| t.0.as_millisecond() as f64 / 1000.0)
        })
        .or_else(|| event.first_timestamp.as_ref().map(unix_of))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(unix_of))
}

pub fn evaluate(
    snapshot: &Snapshot,
    namespace: &str,
    max_warnings: u32,
    window: Duration,
    now: f64,
) -> Outcome {
    let mut events = Vec::new();
    for object in snapshot.in_namespace(Some(namespace)) {
        match typed::<Event>(object) {
            Ok(event) => events.push(event),
            Err(message) => return Outcome::error(Reason::Protocol, message),
        }
    }
    judge(&events, namespace, max_warnings, window, now)
}

pub fn judge(
    events: &[Event],
    namespace: &str,
    max_warnings: u32,
    window: Duration,
    now: f64,
) -> Outcome {
    let start = now - window.as_secs_f64();
    let mut recent: Vec<(f64, &Event)> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| last_seen(e).map(|t| (t, e)))
        .filter(|(t, _)| *t >= start)
        .collect();
    recent.sort_by(|a, b| b.0.total_cmp(&a.0));
    let count = recent.len();
    // The most frequent reasons, with the newest example of each.
    let mut by_reason: BTreeMap<&str, (usize, String)> = BTreeMap::new();
    for (_, event) in &recent {
        let reason = event.reason.as_deref().unwrap_or("Unknown");
        let entry = by_reason.entry(reason).or_insert_with(|| {
            let object = format!(
                "{}/{}",
                event.involved_object.kind.as_deref().unwrap_or("?"),
                event.involved_object.name.as_deref().unwrap_or("?")
            );
            let message: String = event
                .message
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(100)
                .collect();
            (0, format!("{object}: {message}"))
        });
        entry.0 += 1;
    }
    let mut reasons: Vec<(&str, (usize, String))> = by_reason.into_iter().collect();
    reasons.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let summary: Vec<String> = reasons
        .iter()
        .take(3)
        .map(|(reason, (n, example))| format!("{n}× {reason} ({example})"))
        .collect();
    let window_text = format_duration(window);
    let outcome = if count > max_warnings as usize {
        Outcome::fail(
            Reason::WarningEvents,
            format!(
                "{count} Warning events in {namespace} within {window_text} (max {max_warnings}): {}",
                summary.join("; ")
            ),
        )
    } else {
        Outcome::pass(format!(
            "{count} Warning events in {namespace} within {window_text}"
        ))
    };
    outcome.with_measurements(vec![Measurement::new(
        Measure::KubeWarningEvents,
        count as f64,
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_800_000_000.0;

    fn iso(unix: f64) -> String {
        k8s_openapi::jiff::Timestamp::from_second(unix as i64)
            .unwrap()
            .to_string()
    }

    fn event(name: &str, kind: &str, reason: &str, at: f64) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "prod"},
            "involvedObject": {"kind": "Pod", "name": "api-1"},
            "type": kind, "reason": reason, "message": "Back-off restarting failed container",
            "lastTimestamp": iso(at)
        }))
        .unwrap()
    }

    #[test]
    fn only_recent_warnings_count() {
        let events = vec![
            event("a", "Warning", "BackOff", NOW - 60.0),
            event("b", "Warning", "BackOff", NOW - 120.0),
            event("c", "Normal", "Pulled", NOW - 60.0),
            event("d", "Warning", "FailedMount", NOW - 7200.0),
        ];
        let window = Duration::from_secs(900);
        let outcome = judge(&events, "prod", 0, window, NOW);
        assert_eq!(outcome.reason, Reason::WarningEvents);
        assert!(
            outcome.message.starts_with(
                "2 Warning events in prod within 15m (max 0): 2× BackOff (Pod/api-1: Back-off"
            ),
            "{}",
            outcome.message
        );
        assert_eq!(judge(&events, "prod", 2, window, NOW).reason, Reason::Ok);
    }
}
