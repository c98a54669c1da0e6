//! Deployments, StatefulSets and DaemonSets (rollout and replicas),
//! HorizontalPodAutoscalers, and a Deployment's retained revisions.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

use super::selector::Selector;
use super::{ObjectRef, WorkloadKind};
use crate::kube::{typed, Snapshot};
use crate::result::{Measure, Measurement, Outcome, Reason};

/// Replica counts of a workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: i64,
    pub ready: i64,
    pub available: i64,
    pub updated: i64,
}

impl Counts {
    fn text(&self) -> String {
        let d = self.desired;
        format!(
            "{}/{d} ready, {}/{d} updated, {}/{d} available",
            self.ready, self.updated, self.available
        )
    }

    fn measurements(&self, generation: i64, generation_lag: i64) -> Vec<Measurement> {
        let mut m: Vec<Measurement> = [
            ("desired", self.desired),
            ("ready", self.ready),
            ("available", self.available),
            ("updated", self.updated),
        ]
        .iter()
        .map(|(state, value)| Measurement::labelled(Measure::KubeReplicas, &[state], *value as f64))
        .collect();
        m.push(Measurement::new(
            Measure::KubeObservedGenerationLag,
            generation_lag.max(0) as f64,
        ));
        m.push(Measurement::new(Measure::KubeGeneration, generation as f64));
        m
    }
}

/// What `kubectl rollout status` would say: None when complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    Complete,
    /// Still in progress; the text says what it waits for.
    Waiting(String),
    /// The Deployment's Progressing condition says ProgressDeadlineExceeded.
    DeadlineExceeded,
}

/// A workload's state, as the evaluation needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadState {
    pub counts: Counts,
    /// metadata.generation: it grows with every change of the spec, so a
    /// rollout is a new value (label-safe, unlike an image tag).
    pub generation: i64,
    pub generation_lag: i64,
    pub rollout: Rollout,
    /// Why the rollout was not judged (OnDelete strategy), if so.
    pub note: Option<String>,
}

fn n(value: Option<i32>) -> i64 {
    i64::from(value.unwrap_or(0))
}

/// kubectl's DeploymentStatusViewer.
pub fn deployment_state(d: &Deployment) -> WorkloadState {
    let spec_replicas = d.spec.as_ref().and_then(|s| s.replicas);
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    let counts = Counts {
        desired: i64::from(spec_replicas.unwrap_or(1)),
        ready: n(status.ready_replicas),
        available: n(status.available_replicas),
        updated: n(status.updated_replicas),
    };
    let deadline_exceeded = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    let rollout = if generation > observed {
        Rollout::Waiting("waiting for the deployment spec update to be observed".into())
    } else if deadline_exceeded {
        Rollout::DeadlineExceeded
    } else if spec_replicas.is_some() && counts.updated < counts.desired {
        Rollout::Waiting(format!(
            "{} of {} new replicas updated",
            counts.updated, counts.desired
        ))
    } else if n(status.replicas) > counts.updated {
        Rollout::Waiting(format!(
            "{} old replicas pending termination",
            n(status.replicas) - counts.updated
        ))
    } else if counts.available < counts.updated {
        Rollout::Waiting(format!(
            "{} of {} updated replicas available",
            counts.available, counts.updated
        ))
    } else {
        Rollout::Complete
    };
    WorkloadState {
        counts,
        generation,
        generation_lag: generation - observed,
        rollout,
        note: None,
    }
}

/// kubectl's StatefulSetStatusViewer.
pub fn statefulset_state(s: &StatefulSet) -> WorkloadState {
    let spec = s.spec.clone().unwrap_or_default();
    let status = s.status.clone().unwrap_or_default();
    let generation = s.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    let counts = Counts {
        desired: i64::from(spec.replicas.unwrap_or(1)),
        ready: n(status.ready_replicas),
        available: n(status.available_replicas),
        updated: n(status.updated_replicas),
    };
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let on_delete = strategy.type_.as_deref() == Some("OnDelete");
    let partition = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.partition)
        .map(i64::from);
    let rollout = if on_delete {
        Rollout::Complete
    } else if observed == 0 || generation > observed {
        Rollout::Waiting("waiting for the statefulset spec update to be observed".into())
    } else if spec.replicas.is_some() && counts.ready < counts.desired {
        Rollout::Waiting(format!(
            "waiting for {} pods to be ready",
            counts.desired - counts.ready
        ))
    } else if let (Some(partition), true) = (partition, spec.replicas.is_some()) {
        if counts.updated < counts.desired - partition {
            Rollout::Waiting(format!(
                "partitioned rollout: {} of {} new pods updated",
                counts.updated,
                counts.desired - partition
            ))
        } else {
            Rollout::Complete
        }
    } else if status.update_revision != status.current_revision {
        Rollout::Waiting(format!(
            "rolling update to revision {} not complete",
            status.update_revision.as_deref().unwrap_or("?")
        ))
    } else {
        Rollout::Complete
    };
    WorkloadState {
        counts,
        generation,
        generation_lag: generation - observed,
        rollout,
        note: on_delete.then(|| "OnDelete update strategy: rollout not judged".to_string()),
    }
}

/// kubectl's DaemonSetStatusViewer.
pub fn daemonset_state(d: &DaemonSet) -> WorkloadState {
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    let counts = Counts {
        desired: i64::from(status.desired_number_scheduled),
        ready: i64::from(status.number_ready),
        available: n(status.number_available),
        updated: n(status.updated_number_scheduled),
    };
    let on_delete = d
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete");
    let rollout = if on_delete {
        Rollout::Complete
    } else if generation > observed {
        Rollout::Waiting("waiting for the daemonset spec update to be observed".into())
    } else if counts.updated < counts.desired {
        Rollout::Waiting(format!(
            "{} of {} new pods updated",
            counts.updated, counts.desired
        ))
    } else if counts.available < counts.desired {
        Rollout::Waiting(format!(
            "{} of {} updated pods available",
            counts.available, counts.desired
        ))
    } else {
        Rollout::Complete
    };
    WorkloadState {
        counts,
        generation,
        generation_lag: generation - observed,
        rollout,
        note: on_delete.then(|| "OnDelete update strategy: rollout not judged".to_string()),
    }
}

/// Judges a workload state against `min_ready`.
pub fn judge(
    kind: WorkloadKind,
    o: &ObjectRef,
    state: &WorkloadState,
    min_ready: Option<u32>,
) -> Outcome {
    let counts = state.counts.text();
    let mut failures = Vec::new();
    match &state.rollout {
        Rollout::Complete => {}
        Rollout::DeadlineExceeded => failures.push((
            Reason::Rollout,
            format!(
                "{} {o} exceeded its progress deadline (ProgressDeadlineExceeded): {counts}",
                kind.as_str()
            ),
        )),
        Rollout::Waiting(what) => failures.push((
            Reason::Rollout,
            format!(
                "{} {o} rollout in progress ({what}): {counts}",
                kind.as_str()
            ),
        )),
    }
    if let Some(min) = min_ready {
        if state.counts.ready < i64::from(min) {
            failures.push((
                Reason::Replicas,
                format!("{} ready, at least {min} required", state.counts.ready),
            ));
        }
    }
    let outcome = Outcome::from_failures(failures.iter().map(|(r, m)| (*r, m.as_str())))
        .unwrap_or_else(|| {
            let note = state
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            Outcome::pass(format!("{} {o} rolled out: {counts}{note}", kind.as_str()))
        });
    outcome.with_measurements(
        state
            .counts
            .measurements(state.generation, state.generation_lag),
    )
}

fn not_found(what: &str, o: &ObjectRef) -> Outcome {
    Outcome::fail(Reason::NotFound, format!("{what} {o} not found"))
}

fn decode_error(message: String) -> Outcome {
    Outcome::error(Reason::Protocol, message)
}

pub fn evaluate(
    kind: WorkloadKind,
    snapshot: &Snapshot,
    o: &ObjectRef,
    min_ready: Option<u32>,
) -> Outcome {
    let Some(object) = snapshot.get(&o.namespace, &o.name) else {
        return not_found(kind.as_str(), o);
    };
    let state = match kind {
        WorkloadKind::Deployment => typed::<Deployment>(object).map(|d| deployment_state(&d)),
        WorkloadKind::StatefulSet => typed::<StatefulSet>(object).map(|s| statefulset_state(&s)),
        WorkloadKind::DaemonSet => typed::<DaemonSet>(object).map(|d| daemonset_state(&d)),
    };
    match state {
        Ok(state) => judge(kind, o, &state, min_ready),
        Err(message) => decode_error(message),
    }
}

/// The pod selector of workload `o`, or the outcome to report.
pub fn selector_of(
    kind: WorkloadKind,
    snapshot: &Snapshot,
    o: &ObjectRef,
) -> Result<Selector, Outcome> {
    let object = snapshot
        .get(&o.namespace, &o.name)
        .ok_or_else(|| not_found(kind.as_str(), o))?;
    let selector = match kind {
        WorkloadKind::Deployment => typed::<Deployment>(object).map(|d| d.spec.map(|s| s.selector)),
        WorkloadKind::StatefulSet => {
            typed::<StatefulSet>(object).map(|s| s.spec.map(|s| s.selector))
        }
        WorkloadKind::DaemonSet => typed::<DaemonSet>(object).map(|d| d.spec.map(|s| s.selector)),
    }
    .map_err(decode_error)?
    .ok_or_else(|| decode_error(format!("{} {o} has no spec", kind.as_str())))?;
    Selector::from_label_selector(&selector).map_err(decode_error)
}

pub fn evaluate_hpa(snapshot: &Snapshot, o: &ObjectRef, fail_at_max: bool) -> Outcome {
    let Some(object) = snapshot.get(&o.namespace, &o.name) else {
        return not_found("HorizontalPodAutoscaler", o);
    };
    let hpa: HorizontalPodAutoscaler = match typed(object) {
        Ok(hpa) => hpa,
        Err(message) => return decode_error(message),
    };
    hpa_outcome(&hpa, o, fail_at_max)
}

pub fn hpa_outcome(hpa: &HorizontalPodAutoscaler, o: &ObjectRef, fail_at_max: bool) -> Outcome {
    let spec = hpa.spec.clone().unwrap_or_default();
    let status = hpa.status.clone().unwrap_or_default();
    let min = i64::from(spec.min_replicas.unwrap_or(1));
    let max = i64::from(spec.max_replicas);
    let current = n(status.current_replicas);
    let desired = i64::from(status.desired_replicas);
    let text = format!("{current} current, {desired} desired (min {min}, max {max})");
    let outcome = if current < min {
        Outcome::fail(
            Reason::Replicas,
            format!("HorizontalPodAutoscaler {o} below its minimum: {text}"),
        )
    } else if fail_at_max && max > 0 && (current >= max || desired > max) {
        Outcome::fail(
            Reason::ScalingLimit,
            format!("HorizontalPodAutoscaler {o} pinned at its maximum: {text}"),
        )
    } else {
        Outcome::pass(format!("HorizontalPodAutoscaler {o}: {text}"))
    };
    outcome.with_measurements(
        [
            ("current", current),
            ("desired", desired),
            ("min", min),
            ("max", max),
        ]
        .iter()
        .map(|(state, v)| Measurement::labelled(Measure::KubeHpaReplicas, &[state], *v as f64))
        .collect(),
    )
}

/// Revisions of Deployment `o` retained as ReplicaSets, newest first:
/// (revision, images, is current).
pub fn evaluate_rollback(
    deployments: &Snapshot,
    replicasets: &Snapshot,
    o: &ObjectRef,
    min_revisions: u32,
) -> Outcome {
    let Some(object) = deployments.get(&o.namespace, &o.name) else {
        return not_found("Deployment", o);
    };
    let deployment: Deployment = match typed(object) {
        Ok(d) => d,
        Err(message) => return decode_error(message),
    };
    let sets: Vec<ReplicaSet> = match replicasets
        .in_namespace(Some(&o.namespace))
        .map(typed::<ReplicaSet>)
        .collect::<Result<_, _>>()
    {
        Ok(sets) => sets,
        Err(message) => return decode_error(message),
    };
    rollback_outcome(&deployment, &sets, o, min_revisions)
}

pub fn rollback_outcome(
    deployment: &Deployment,
    sets: &[ReplicaSet],
    o: &ObjectRef,
    min_revisions: u32,
) -> Outcome {
    let uid = deployment.metadata.uid.as_deref();
    let current = deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .and_then(|r| r.parse::<i64>().ok());
    let mut revisions: Vec<(i64, String)> = sets
        .iter()
        .filter(|rs| {
            rs.metadata.owner_references.iter().flatten().any(|owner| {
                owner.kind == "Deployment"
                    && owner.controller == Some(true)
                    && (Some(owner.uid.as_str()) == uid || (uid.is_none() && owner.name == o.name))
            })
        })
        .filter_map(|rs| {
            let revision = rs
                .metadata
                .annotations
                .as_ref()?
                .get("deployment.kubernetes.io/revision")?
                .parse::<i64>()
                .ok()?;
            let images: Vec<String> = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|s| {
                    s.containers
                        .iter()
                        .filter_map(|c| c.image.clone())
                        .collect()
                })
                .unwrap_or_default();
            Some((revision, images.join(",")))
        })
        .collect();
    revisions.sort_by_key(|(revision, _)| std::cmp::Reverse(*revision));
    let listed: Vec<String> = revisions
        .iter()
        .map(|(rev, images)| {
            let mark = if Some(*rev) == current {
                " (current)"
            } else {
                ""
            };
            format!("rev {rev}: {images}{mark}")
        })
        .collect();
    let count = revisions.len();
    let text = if listed.is_empty() {
        "none".to_string()
    } else {
        listed.join("; ")
    };
    let outcome = if count < min_revisions as usize {
        Outcome::fail(
            Reason::Revisions,
            format!(
                "Deployment {o} retains {count} revisions, at least {min_revisions} required: {text}"
            ),
        )
    } else {
        Outcome::pass(format!("Deployment {o} retains {count} revisions: {text}"))
    };
    outcome.with_measurements(vec![Measurement::new(
        Measure::KubeRollbackRevisions,
        count as f64,
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).unwrap()
    }

    fn api() -> ObjectRef {
        ObjectRef {
            namespace: "prod".into(),
            name: "api".into(),
        }
    }

    fn rolled(generation: i64, observed: i64, status: serde_json::Value) -> Deployment {
        let mut status = status;
        status["observedGeneration"] = json!(observed);
        deployment(json!({
            "metadata": {"name": "api", "namespace": "prod", "generation": generation},
            "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "api"}}, "template": {}},
            "status": status
        }))
    }

    #[test]
    fn a_complete_deployment_passes_with_its_numbers() {
        let d = rolled(
            3,
            3,
            json!({"replicas": 5, "readyReplicas": 5, "availableReplicas": 5, "updatedReplicas": 5}),
        );
        let outcome = judge(
            WorkloadKind::Deployment,
            &api(),
            &deployment_state(&d),
            Some(5),
        );
        assert_eq!(outcome.reason, Reason::Ok, "{}", outcome.message);
        assert!(
            outcome.message.contains("5/5 ready, 5/5 updated"),
            "{}",
            outcome.message
        );
        assert!(outcome.measurements.contains(&Measurement::labelled(
            Measure::KubeReplicas,
            &["ready"],
            5.0
        )));
    }

    #[test]
    fn a_rollout_in_progress_fails_with_numbers() {
        let d = rolled(
            3,
            3,
            json!({"replicas": 6, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 2}),
        );
        let outcome = judge(
            WorkloadKind::Deployment,
            &api(),
            &deployment_state(&d),
            None,
        );
        assert_eq!(outcome.reason, Reason::Rollout);
        assert!(
            outcome.message.contains("2 of 5 new replicas updated"),
            "{}",
            outcome.message
        );
        assert!(
            outcome.message.contains("3/5 ready, 2/5 updated"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn old_replicas_and_unavailable_updated_ones_keep_the_rollout_open() {
        let d = rolled(
            3,
            3,
            json!({"replicas": 6, "readyReplicas": 5, "availableReplicas": 5, "updatedReplicas": 5}),
        );
        let state = deployment_state(&d);
        assert_eq!(
            state.rollout,
            Rollout::Waiting("1 old replicas pending termination".into())
        );
        let d = rolled(
            3,
            3,
            json!({"replicas": 5, "readyReplicas": 4, "availableReplicas": 4, "updatedReplicas": 5}),
        );
        assert_eq!(
            deployment_state(&d).rollout,
            Rollout::Waiting("4 of 5 updated replicas available".into())
        );
    }

    #[test]
    fn an_unobserved_generation_is_a_rollout_in_progress() {
        let d = rolled(
            4,
            3,
            json!({"replicas": 5, "readyReplicas": 5, "availableReplicas": 5, "updatedReplicas": 5}),
        );
        let state = deployment_state(&d);
        assert_eq!(state.generation, 4);
        assert_eq!(state.generation_lag, 1);
        assert!(state
            .counts
            .measurements(state.generation, state.generation_lag)
            .contains(&Measurement::new(Measure::KubeGeneration, 4.0)));
        assert!(matches!(state.rollout, Rollout::Waiting(ref w) if w.contains("spec update")));
    }

    #[test]
    fn a_progress_deadline_fails_the_rollout() {
        let d = rolled(
            3,
            3,
            json!({"replicas": 5, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        let outcome = judge(
            WorkloadKind::Deployment,
            &api(),
            &deployment_state(&d),
            None,
        );
        assert_eq!(outcome.reason, Reason::Rollout);
        assert!(
            outcome.message.contains("ProgressDeadlineExceeded"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn too_few_ready_replicas_fail_even_when_rolled_out() {
        let d = rolled(
            3,
            3,
            json!({"replicas": 5, "readyReplicas": 5, "availableReplicas": 5, "updatedReplicas": 5}),
        );
        let outcome = judge(
            WorkloadKind::Deployment,
            &api(),
            &deployment_state(&d),
            Some(6),
        );
        assert_eq!(outcome.reason, Reason::Replicas);
        assert!(outcome.message.contains("5 ready, at least 6 required"));
    }

    #[test]
    fn statefulsets_follow_kubectl() {
        let sts = |status: serde_json::Value, partition: Option<i32>| -> StatefulSet {
            let mut strategy = json!({"type": "RollingUpdate"});
            if let Some(p) = partition {
                strategy["rollingUpdate"] = json!({"partition": p});
            }
            serde_json::from_value(json!({
                "metadata": {"name": "db", "generation": 2},
                "spec": {"replicas": 3, "selector": {}, "serviceName": "db", "template": {}, "updateStrategy": strategy},
                "status": status
            }))
            .unwrap()
        };
        let done = sts(
            json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "r2", "updateRevision": "r2"}),
            None,
        );
        assert_eq!(statefulset_state(&done).rollout, Rollout::Complete);
        let unready = sts(
            json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 2, "currentRevision": "r2", "updateRevision": "r2"}),
            None,
        );
        assert_eq!(
            statefulset_state(&unready).rollout,
            Rollout::Waiting("waiting for 1 pods to be ready".into())
        );
        let rolling = sts(
            json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "r1", "updateRevision": "r2"}),
            None,
        );
        assert!(
            matches!(statefulset_state(&rolling).rollout, Rollout::Waiting(ref w) if w.contains("r2"))
        );
        let partitioned = sts(
            json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "r1", "updateRevision": "r2"}),
            Some(2),
        );
        assert_eq!(statefulset_state(&partitioned).rollout, Rollout::Complete);
    }

    #[test]
    fn daemonsets_follow_kubectl() {
        let ds = |updated: i32, available: i32| -> DaemonSet {
            serde_json::from_value(json!({
                "metadata": {"name": "agent", "generation": 1},
                "spec": {"selector": {}, "template": {}},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 4, "currentNumberScheduled": 4,
                    "numberMisscheduled": 0, "numberReady": available, "numberAvailable": available,
                    "updatedNumberScheduled": updated}
            }))
            .unwrap()
        };
        assert_eq!(daemonset_state(&ds(4, 4)).rollout, Rollout::Complete);
        assert_eq!(
            daemonset_state(&ds(3, 4)).rollout,
            Rollout::Waiting("3 of 4 new pods updated".into())
        );
        assert_eq!(
            daemonset_state(&ds(4, 2)).rollout,
            Rollout::Waiting("2 of 4 updated pods available".into())
        );
    }

    fn hpa(current: i32, desired: i32) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": "api"},
            "spec": {"minReplicas": 2, "maxReplicas": 10, "scaleTargetRef": {"kind": "Deployment", "name": "api"}},
            "status": {"currentReplicas": current, "desiredReplicas": desired}
        }))
        .unwrap()
    }

    #[test]
    fn autoscalers_below_minimum_or_at_maximum_fail() {
        assert_eq!(hpa_outcome(&hpa(4, 4), &api(), true).reason, Reason::Ok);
        let below = hpa_outcome(&hpa(1, 2), &api(), true);
        assert_eq!(below.reason, Reason::Replicas);
        assert!(
            below
                .message
                .contains("1 current, 2 desired (min 2, max 10)"),
            "{}",
            below.message
        );
        assert_eq!(
            hpa_outcome(&hpa(10, 14), &api(), true).reason,
            Reason::ScalingLimit
        );
        assert_eq!(hpa_outcome(&hpa(10, 14), &api(), false).reason, Reason::Ok);
    }

    #[test]
    fn rollback_counts_owned_replicasets_and_names_their_images() {
        let d = deployment(json!({
            "metadata": {"name": "api", "namespace": "prod", "uid": "d1",
                "annotations": {"deployment.kubernetes.io/revision": "7"}},
            "spec": {"selector": {}, "template": {}}
        }));
        let rs = |name: &str, revision: &str, image: &str, owner: &str| -> ReplicaSet {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "prod",
                    "annotations": {"deployment.kubernetes.io/revision": revision},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": owner, "controller": true}]},
                "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}
            }))
            .unwrap()
        };
        let sets = vec![
            rs("api-7", "7", "api:1.4.2", "d1"),
            rs("api-6", "6", "api:1.4.1", "d1"),
            rs("other", "3", "other:1", "zz"),
        ];
        let outcome = rollback_outcome(&d, &sets, &api(), 3);
        assert_eq!(outcome.reason, Reason::Revisions);
        assert!(
            outcome
                .message
                .contains("rev 7: api:1.4.2 (current); rev 6: api:1.4.1"),
            "{}",
            outcome.message
        );
        assert_eq!(rollback_outcome(&d, &sets, &api(), 2).reason, Reason::Ok);
    }
}
