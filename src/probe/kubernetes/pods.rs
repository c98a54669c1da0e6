//! Pods of a selector: waiting reasons that mean trouble, readiness, and
//! container restarts within a window.
//!
//! Restarts within the window: the API only gives a lifetime
//! `restartCount` per container, so the window's count is derived:
//! - a container whose pod started within the window restarted
//!   `restartCount` times within it;
//! - otherwise, when an earlier run of this check saw the container at or
//!   before the window's start, the count is the difference between now and
//!   the last count seen then;
//! - otherwise (vouch has not watched it that long) the difference since
//!   the first count seen, and at least 1 if `lastState.terminated
//!   .finishedAt` lies within the window (it did restart in the window).
//!
//! So right after vouch starts, restarts older than the window but after
//! the pod's start are not counted, and a burst of restarts inside the
//! window before vouch started counts as 1: a lower bound, exact once vouch
//! has watched for one window.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::selector::Selector;
use super::unix_of;
use crate::config::format_duration;
use crate::kube::{typed, Snapshot};
use crate::result::{Measure, Measurement, Outcome, Reason};

/// What the selected pods must look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRules {
    pub max_restarts: Option<u32>,
    pub window: Duration,
    pub min_pods: u32,
}

/// Restart counts seen by earlier runs, per container.
#[derive(Debug, Default)]
pub struct RestartHistory {
    /// (pod uid, container) → (time seen, restartCount), oldest first.
    seen: HashMap<(String, String), Vec<(f64, i64)>>,
}

impl RestartHistory {
    /// Records `count` for a container at `now` and returns its restarts
    /// within `[now - window, now]` (see the module comment).
    fn restarts_in_window(
        &mut self,
        key: (String, String),
        count: i64,
        pod_started: Option<f64>,
        last_finished: Option<f64>,
        now: f64,
        window: f64,
    ) -> i64 {
        let start = now - window;
        let seen = self.seen.entry(key).or_default();
        seen.push((now, count));
        // Keep the last observation at or before the window's start (the
        // baseline) and everything after it.
        let baseline = seen.iter().rposition(|(t, _)| *t <= start);
        if let Some(index) = baseline {
            seen.drain(..index);
        }
        if pod_started.is_some_and(|t| t >= start) {
            return count;
        }
        let earliest = seen.first().map(|(_, c)| *c).unwrap_or(count);
        let delta = (count - earliest).max(0);
        if baseline.is_some() {
            return delta;
        }
        let restarted_recently = count > 0 && last_finished.is_some_and(|t| t >= start);
        delta.max(i64::from(restarted_recently))
    }

    /// Forgets containers of pods that are gone.
    fn retain_pods(&mut self, uids: &[String]) {
        self.seen.retain(|(uid, _), _| uids.contains(uid));
    }
}

/// The trouble a container is in, if any.
fn trouble(status: &ContainerStatus) -> Option<(Reason, String)> {
    let state = status.state.as_ref()?;
    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or("");
        let word = match reason {
            "CrashLoopBackOff" => Reason::CrashLoop,
            "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => Reason::ImagePull,
            "CreateContainerConfigError" | "CreateContainerError" => Reason::ContainerConfig,
            _ => return None,
        };
        return Some((word, reason.to_string()));
    }
    if let Some(terminated) = &state.terminated {
        if terminated.reason.as_deref() == Some("Error") {
            return Some((
                Reason::CrashLoop,
                format!("terminated with Error (exit code {})", terminated.exit_code),
            ));
        }
    }
    None
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn evaluate(
    snapshot: &Snapshot,
    namespace: &str,
    selector: &Selector,
    rules: &PodRules,
    now: f64,
    history: &mut RestartHistory,
) -> Outcome {
    let mut pods = Vec::new();
    for object in snapshot.in_namespace(Some(namespace)) {
        if !selector.matches(object.metadata.labels.as_ref()) {
            continue;
        }
        match typed::<Pod>(object) {
            Ok(pod) => pods.push(pod),
            Err(message) => return Outcome::error(Reason::Protocol, message),
        }
    }
    judge(&pods, namespace, selector, rules, now, history)
}

pub fn judge(
    pods: &[Pod],
    namespace: &str,
    selector: &Selector,
    rules: &PodRules,
    now: f64,
    history: &mut RestartHistory,
) -> Outcome {
    let tally = tally(pods, rules, now, history);
    let failures = failures(&tally, namespace, selector, rules);
    let measurements = measurements(&tally, rules);
    let Tally {
        total,
        ready,
        restarts,
        ..
    } = tally;
    Outcome::from_failures(failures.iter().map(|(r, m)| (*r, m.as_str())))
        .unwrap_or_else(|| {
            Outcome::pass(format!(
                "{ready}/{total} pods ready ({selector} in {namespace}){}",
                if rules.max_restarts.is_some() {
                    format!(
                        ", {restarts} restarts within {}",
                        format_duration(rules.window)
                    )
                } else {
                    String::new()
                }
            ))
        })
        .with_measurements(measurements)
}

/// What the pods of one run show: readiness, container troubles, restarts.
struct Tally {
    total: usize,
    ready: usize,
    counts: HashMap<Reason, usize>,
    troubles: Vec<(Reason, String)>,
    not_ready: Vec<String>,
    restarts: i64,
    restart_notes: Vec<String>,
}

fn tally(pods: &[Pod], rules: &PodRules, now: f64, history: &mut RestartHistory) -> Tally {
    // Pods of finished Jobs are not running workloads.
    let pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded")
            )
        })
        .collect();
    let mut tally = Tally {
        total: pods.len(),
        ready: 0,
        counts: HashMap::new(),
        troubles: Vec::new(),
        not_ready: Vec::new(),
        restarts: 0,
        restart_notes: Vec::new(),
    };
    let window = rules.window.as_secs_f64();
    let mut uids = Vec::new();
    for pod in &pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let uid = pod.metadata.uid.clone().unwrap_or_else(|| name.to_string());
        uids.push(uid.clone());
        if is_ready(pod) {
            tally.ready += 1;
        } else {
            tally.not_ready.push(name.to_string());
        }
        let status = pod.status.clone().unwrap_or_default();
        let started = status.start_time.as_ref().map(unix_of);
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        let mut pod_troubles = Vec::new();
        for container in containers {
            if let Some((reason, text)) = trouble(container) {
                *tally.counts.entry(reason).or_default() += 1;
                pod_troubles.push((
                    reason,
                    format!("{name}: container {} {text}", container.name),
                ));
            }
            let finished = container
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.finished_at.as_ref())
                .map(unix_of);
            let in_window = history.restarts_in_window(
                (uid.clone(), container.name.clone()),
                i64::from(container.restart_count),
                started,
                finished,
                now,
                window,
            );
            if in_window > 0 {
                tally
                    .restart_notes
                    .push(format!("{name}/{}: {in_window}", container.name));
            }
            tally.restarts += in_window;
        }
        tally.troubles.extend(pod_troubles);
    }
    history.retain_pods(&uids);
    tally
}

fn failures(
    tally: &Tally,
    namespace: &str,
    selector: &Selector,
    rules: &PodRules,
) -> Vec<(Reason, String)> {
    let Tally {
        total,
        ready,
        restarts,
        ..
    } = *tally;
    let mut failures: Vec<(Reason, String)> = Vec::new();
    if total < rules.min_pods as usize {
        failures.push((
            Reason::NotFound,
            format!(
                "{total} pods match {selector} in {namespace}, at least {} required",
                rules.min_pods
            ),
        ));
    }
    // Trouble words first, in a fixed order, each with up to 3 examples.
    for reason in [
        Reason::CrashLoop,
        Reason::ImagePull,
        Reason::ContainerConfig,
    ] {
        let examples: Vec<&str> = tally
            .troubles
            .iter()
            .filter(|(r, _)| *r == reason)
            .map(|(_, t)| t.as_str())
            .collect();
        if !examples.is_empty() {
            let more = examples.len().saturating_sub(3);
            let mut text = examples[..examples.len().min(3)].join(", ");
            if more > 0 {
                text.push_str(&format!(" and {more} more"));
            }
            failures.push((reason, text));
        }
    }
    if ready < total {
        let not_ready = &tally.not_ready;
        let shown = not_ready[..not_ready.len().min(3)].join(", ");
        failures.push((
            Reason::NotReady,
            format!(
                "{ready}/{total} pods ready (not ready: {shown}{})",
                if not_ready.len() > 3 { ", …" } else { "" }
            ),
        ));
    }
    if let Some(max) = rules.max_restarts {
        if restarts > i64::from(max) {
            failures.push((
                Reason::Restarts,
                format!(
                    "{restarts} restarts within {} (max {max}): {}",
                    format_duration(rules.window),
                    tally.restart_notes.join(", ")
                ),
            ));
        }
    }
    failures
}

fn measurements(tally: &Tally, rules: &PodRules) -> Vec<Measurement> {
    let mut measurements = vec![
        Measurement::labelled(Measure::KubePods, &["total"], tally.total as f64),
        Measurement::labelled(Measure::KubePods, &["ready"], tally.ready as f64),
    ];
    for (reason, state) in [
        (Reason::CrashLoop, "crash_loop"),
        (Reason::ImagePull, "image_pull"),
        (Reason::ContainerConfig, "container_config"),
    ] {
        measurements.push(Measurement::labelled(
            Measure::KubePods,
            &[state],
            tally.counts.get(&reason).copied().unwrap_or(0) as f64,
        ));
    }
    if rules.max_restarts.is_some() {
        measurements.push(Measurement::new(
            Measure::KubeRestartsInWindow,
            tally.restarts as f64,
        ));
    }
    measurements
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

    fn pod(
        name: &str,
        ready: bool,
        state: serde_json::Value,
        restarts: i32,
        extra: serde_json::Value,
    ) -> Pod {
        let mut container = json!({"name": "app", "image": "api:1", "imageID": "", "ready": ready,
            "restartCount": restarts, "state": state});
        if let Some(map) = extra.as_object() {
            for (k, v) in map {
                container[k] = v.clone();
            }
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "prod", "uid": format!("uid-{name}"), "labels": {"app": "api"}},
            "status": {"phase": "Running", "startTime": iso(NOW - 86_400.0),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": [container]}
        }))
        .unwrap()
    }

    fn running() -> serde_json::Value {
        json!({"running": {"startedAt": iso(NOW - 3600.0)}})
    }

    fn rules(max_restarts: Option<u32>) -> PodRules {
        PodRules {
            max_restarts,
            window: Duration::from_secs(3600),
            min_pods: 1,
        }
    }

    fn run(
        pods: &[Pod],
        max_restarts: Option<u32>,
        now: f64,
        history: &mut RestartHistory,
    ) -> Outcome {
        judge(
            pods,
            "prod",
            &Selector::parse("app=api").unwrap(),
            &rules(max_restarts),
            now,
            history,
        )
    }

    #[test]
    fn healthy_pods_pass() {
        let pods = vec![
            pod("a", true, running(), 0, json!({})),
            pod("b", true, running(), 0, json!({})),
        ];
        let outcome = run(&pods, Some(0), NOW, &mut RestartHistory::default());
        assert_eq!(outcome.reason, Reason::Ok, "{}", outcome.message);
        assert!(
            outcome.message.starts_with("2/2 pods ready"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn each_waiting_reason_has_its_word() {
        for (reason, word) in [
            ("CrashLoopBackOff", Reason::CrashLoop),
            ("ImagePullBackOff", Reason::ImagePull),
            ("ErrImagePull", Reason::ImagePull),
            ("CreateContainerConfigError", Reason::ContainerConfig),
        ] {
            let pods = vec![pod(
                "a",
                false,
                json!({"waiting": {"reason": reason}}),
                0,
                json!({}),
            )];
            let outcome = run(&pods, None, NOW, &mut RestartHistory::default());
            assert_eq!(outcome.reason, word, "{reason}");
            assert!(outcome.message.contains(reason), "{}", outcome.message);
            assert!(
                outcome.message.contains("0/1 pods ready"),
                "{}",
                outcome.message
            );
        }
        let pods = vec![pod(
            "a",
            false,
            json!({"terminated": {"reason": "Error", "exitCode": 2}}),
            0,
            json!({}),
        )];
        assert_eq!(
            run(&pods, None, NOW, &mut RestartHistory::default()).reason,
            Reason::CrashLoop
        );
    }

    #[test]
    fn unready_pods_and_missing_pods_fail() {
        let pods = vec![
            pod("a", true, running(), 0, json!({})),
            pod("b", false, running(), 0, json!({})),
        ];
        let outcome = run(&pods, None, NOW, &mut RestartHistory::default());
        assert_eq!(outcome.reason, Reason::NotReady);
        assert!(
            outcome.message.contains("1/2 pods ready (not ready: b)"),
            "{}",
            outcome.message
        );
        assert_eq!(
            run(&[], None, NOW, &mut RestartHistory::default()).reason,
            Reason::NotFound
        );
    }

    #[test]
    fn lifetime_restarts_long_ago_do_not_count() {
        // 40 restarts, the last one finished two days ago.
        let old = json!({"lastState": {"terminated": {"exitCode": 1, "finishedAt": iso(NOW - 172_800.0)}}});
        let pods = vec![pod("a", true, running(), 40, old)];
        let outcome = run(&pods, Some(0), NOW, &mut RestartHistory::default());
        assert_eq!(outcome.reason, Reason::Ok, "{}", outcome.message);
    }

    #[test]
    fn a_restart_within_the_window_counts_before_any_history() {
        let recent =
            json!({"lastState": {"terminated": {"exitCode": 1, "finishedAt": iso(NOW - 60.0)}}});
        let pods = vec![pod("a", true, running(), 7, recent)];
        let outcome = run(&pods, Some(0), NOW, &mut RestartHistory::default());
        assert_eq!(outcome.reason, Reason::Restarts);
        assert!(
            outcome
                .message
                .contains("1 restarts within 1h (max 0): a/app: 1"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn restarts_are_counted_from_observed_deltas_and_age_out() {
        let mut history = RestartHistory::default();
        let old = |n| {
            pod(
                "a",
                true,
                running(),
                n,
                json!({"lastState": {"terminated": {"exitCode": 1, "finishedAt": iso(NOW - 172_800.0)}}}),
            )
        };
        assert_eq!(
            run(&[old(5)], Some(2), NOW, &mut history).reason,
            Reason::Ok
        );
        // Three more restarts seen ten minutes later: 3 > 2.
        let outcome = run(&[old(8)], Some(2), NOW + 600.0, &mut history);
        assert_eq!(outcome.reason, Reason::Restarts, "{}", outcome.message);
        assert!(outcome
            .measurements
            .contains(&Measurement::new(Measure::KubeRestartsInWindow, 3.0)));
        // Two hours on, without new restarts, the window is clean again.
        let outcome = run(&[old(8)], Some(2), NOW + 7800.0, &mut history);
        assert_eq!(outcome.reason, Reason::Ok, "{}", outcome.message);
        let later = run(&[old(8)], Some(0), NOW + 7900.0, &mut history);
        assert_eq!(later.reason, Reason::Ok, "{}", later.message);
    }

    #[test]
    fn a_pod_started_within_the_window_counts_all_its_restarts() {
        let mut young = pod("a", true, running(), 4, json!({}));
        young.status.as_mut().unwrap().start_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second((NOW - 600.0) as i64).unwrap(),
            ));
        let outcome = run(&[young], Some(3), NOW, &mut RestartHistory::default());
        assert_eq!(outcome.reason, Reason::Restarts);
    }
}
