//! Objects as a cluster holds them, and the changes controllers make to
//! them (a rollout, a crash loop, a renewal), built as real JSON.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::store::now_rfc3339;
use super::FakeKube;

const REVISION: &str = "deployment.kubernetes.io/revision";

/// A Deployment of `replicas` pods of one container `image`, selected by
/// `app: NAME`, as just created (no status yet).
pub fn deployment(namespace: &str, name: &str, replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst"
                }
            }
        }
    })
}

/// A StatefulSet of `replicas` pods of `image`, selected by `app: NAME`,
/// as just created (no status yet).
pub fn statefulset(namespace: &str, name: &str, replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]}
            }
        }
    })
}

/// A DaemonSet of `image`, selected by `app: NAME`, as just created.
pub fn daemonset(namespace: &str, name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]}
            }
        }
    })
}

/// A core/v1 Event about an object (`involved`: apiVersion, kind, name),
/// of `event_type` Normal or Warning, counted once, seen now.
pub fn event(
    namespace: &str,
    involved: (&str, &str, &str),
    event_type: &str,
    reason: &str,
    message: &str,
) -> Value {
    let (api_version, kind, name) = involved;
    let now = now_rfc3339();
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(name), "namespace": namespace},
        "involvedObject": {"apiVersion": api_version, "kind": kind, "name": name, "namespace": namespace},
        "type": event_type,
        "reason": reason,
        "message": message,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "kubelet"},
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1"
    })
}

/// `NAME.HEX` as the kubelet and controllers name events (the hex of a
/// nanosecond clock, here made unique per process).
fn event_name(involved: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or_default();
    let unique = now.max(previous + 1);
    format!("{involved}.{unique:x}")
}

/// One `metadata.managedFields` entry: `manager` wrote (operation
/// `Update` or `Apply`) the fields of `fields_v1` at `time` (RFC 3339).
pub fn managed_fields_entry(manager: &str, operation: &str, time: &str, fields_v1: Value) -> Value {
    json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1
    })
}

/// A Running, Ready pod with one container `app` of `image`.
pub fn ready_pod(namespace: &str, name: &str, labels: Value, image: &str) -> Value {
    let now = now_rfc3339();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "containers": [{"name": "app", "image": image}],
            "restartPolicy": "Always",
            "nodeName": "node-1"
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now}
            ],
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.10",
            "startTime": now,
            "containerStatuses": [{
                "name": "app",
                "image": image,
                "imageID": "",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}}
            }]
        }
    })
}

/// A cert-manager Certificate for `dns_names`, Ready until `not_after`.
pub fn certificate(
    namespace: &str,
    name: &str,
    dns_names: &[&str],
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "secretName": name,
            "dnsNames": dns_names,
            "issuerRef": {"name": "issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"}
        },
        "status": certificate_status(not_before, not_after, 1)
    })
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn certificate_status(not_before: DateTime<Utc>, not_after: DateTime<Utc>, revision: i64) -> Value {
    // cert-manager renews at 2/3 of the lifetime by default.
    let renewal = not_before + (not_after - not_before) * 2 / 3;
    json!({
        "conditions": [{
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": "Certificate is up to date and has not expired",
            "lastTransitionTime": now_rfc3339(),
            "observedGeneration": 1
        }],
        "notBefore": rfc3339(not_before),
        "notAfter": rfc3339(not_after),
        "renewalTime": rfc3339(renewal),
        "revision": revision
    })
}

/// Replica counts of a Deployment's status.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DeploymentNumbers {
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let now = now_rfc3339();
    json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now
    })
}

/// A short, stable hash of a pod template, spelled like the
/// pod-template-hash label (FNV-1a over the JSON).
fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in template.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    (0..10)
        .map(|i| ALPHABET[((hash >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn int(value: &Value) -> i32 {
    value.as_i64().unwrap_or(0) as i32
}

impl FakeKube {
    fn deployment_object(&self, namespace: &str, name: &str) -> Value {
        self.get("apps/v1", "Deployment", Some(namespace), name)
            .unwrap_or_else(|| panic!("fake Kubernetes API: no Deployment {namespace}/{name}"))
    }

    /// Sets `spec.replicas` (a spec change: generation moves on, status
    /// does not).
    pub fn scale_deployment(&self, namespace: &str, name: &str, replicas: i32) -> Value {
        self.patch(
            "apps/v1",
            "Deployment",
            Some(namespace),
            name,
            json!({"spec": {"replicas": replicas}}),
        )
    }

    /// Sets a Deployment's status numbers as the controller would report
    /// them for its current generation, with Available and Progressing
    /// conditions that follow from them.
    pub fn set_deployment_status(
        &self,
        namespace: &str,
        name: &str,
        numbers: DeploymentNumbers,
    ) -> Value {
        let object = self.deployment_object(namespace, name);
        let desired = object["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
        let available = numbers.available >= desired;
        let mut status = json!({
            "observedGeneration": object["metadata"]["generation"],
            "replicas": numbers.replicas,
            "updatedReplicas": numbers.updated,
            "readyReplicas": numbers.ready,
            "availableReplicas": numbers.available,
            "conditions": [
                if available {
                    condition("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.")
                } else {
                    condition("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
                },
                if numbers.updated >= desired && available {
                    condition("Progressing", true, "NewReplicaSetAvailable", &format!("ReplicaSet \"{name}\" has successfully progressed."))
                } else {
                    condition("Progressing", true, "ReplicaSetUpdated", &format!("ReplicaSet \"{name}\" is progressing."))
                }
            ]
        });
        let unavailable = numbers.replicas - numbers.available;
        if unavailable > 0 {
            status["unavailableReplicas"] = json!(unavailable);
        }
        self.apply_status("apps/v1", "Deployment", namespace, name, status)
    }

    /// Replaces `status` as a whole.
    fn apply_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Value {
        let mut object = self
            .get(api_version, kind, Some(namespace), name)
            .unwrap_or_else(|| panic!("fake Kubernetes API: no {kind} {namespace}/{name}"));
        object["status"] = status;
        self.apply(object)
    }

    /// The ReplicaSet of the Deployment's current pod template, created
    /// (with the next revision, zero replicas) if there is none yet.
    fn current_replica_set(&self, namespace: &str, name: &str) -> Value {
        let deployment = self.deployment_object(namespace, name);
        let hash = template_hash(&deployment["spec"]["template"]);
        let rs_name = format!("{name}-{hash}");
        if let Some(existing) = self.get("apps/v1", "ReplicaSet", Some(namespace), &rs_name) {
            return existing;
        }
        let revision = self
            .replica_sets_of(&deployment)
            .iter()
            .filter_map(|rs| {
                rs["metadata"]["annotations"][REVISION]
                    .as_str()?
                    .parse::<i64>()
                    .ok()
            })
            .max()
            .unwrap_or(0)
            + 1;
        let mut template = deployment["spec"]["template"].clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = deployment["spec"]["selector"].clone();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let replica_set = self.apply(json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "labels": template["metadata"]["labels"],
                "annotations": {
                    REVISION: revision.to_string(),
                    "deployment.kubernetes.io/desired-replicas": deployment["spec"]["replicas"].as_i64().unwrap_or(1).to_string()
                },
                "ownerReferences": [{
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": name,
                    "uid": deployment["metadata"]["uid"],
                    "controller": true,
                    "blockOwnerDeletion": true
                }]
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
            "status": {"replicas": 0, "observedGeneration": 1}
        }));
        self.patch(
            "apps/v1",
            "Deployment",
            Some(namespace),
            name,
            json!({"metadata": {"annotations": {REVISION: revision.to_string()}}}),
        );
        replica_set
    }

    fn replica_sets_of(&self, deployment: &Value) -> Vec<Value> {
        let namespace = deployment["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let uid = &deployment["metadata"]["uid"];
        let state = self.inner.state.lock().unwrap();
        state
            .objects
            .get(&("apps".to_string(), "replicasets".to_string()))
            .map(|objects| {
                objects
                    .iter()
                    .filter(|((ns, _), rs)| {
                        ns == namespace
                            && rs["metadata"]["ownerReferences"]
                                .as_array()
                                .is_some_and(|owners| owners.iter().any(|o| o["uid"] == *uid))
                    })
                    .map(|(_, rs)| rs.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn set_replica_set_count(&self, replica_set: &Value, replicas: i32) {
        let namespace = replica_set["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let name = replica_set["metadata"]["name"].as_str().unwrap_or_default();
        self.patch(
            "apps/v1",
            "ReplicaSet",
            Some(namespace),
            name,
            json!({"spec": {"replicas": replicas}}),
        );
        let generation = self
            .get("apps/v1", "ReplicaSet", Some(namespace), name)
            .map(|rs| rs["metadata"]["generation"].clone())
            .unwrap_or(json!(1));
        self.apply_status(
            "apps/v1",
            "ReplicaSet",
            namespace,
            name,
            json!({
                "replicas": replicas,
                "fullyLabeledReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "observedGeneration": generation
            }),
        );
    }

    /// What the controllers leave once a Deployment has fully rolled out:
    /// its current ReplicaSet at `spec.replicas` ready pods, older ones at
    /// zero, status complete for the current generation.
    pub fn settle_deployment(&self, namespace: &str, name: &str) -> Value {
        let current = self.current_replica_set(namespace, name);
        let deployment = self.deployment_object(namespace, name);
        let desired = deployment["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
        for rs in self.replica_sets_of(&deployment) {
            let count = if rs["metadata"]["name"] == current["metadata"]["name"] {
                desired
            } else {
                0
            };
            self.set_replica_set_count(&rs, count);
        }
        self.set_deployment_status(
            namespace,
            name,
            DeploymentNumbers {
                replicas: desired,
                updated: desired,
                ready: desired,
                available: desired,
            },
        )
    }

    /// Starts rolling a Deployment out to a new image: the template
    /// changes (generation moves on), a new ReplicaSet with the next
    /// revision appears at zero replicas, and the status reports the new
    /// generation with no updated replicas yet. Returns the new
    /// ReplicaSet's name. [`FakeKube::rollout_step`] moves it on.
    pub fn start_rollout(&self, namespace: &str, name: &str, image: &str) -> String {
        // The ReplicaSet of the template in force before the change.
        self.current_replica_set(namespace, name);
        let mut deployment = self.deployment_object(namespace, name);
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        self.apply(deployment);
        let new_rs = self.current_replica_set(namespace, name);
        self.report_rollout(namespace, name, &new_rs);
        new_rs["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// One step of a rolling update: the new ReplicaSet gains a ready
    /// replica, an old one loses one, the Deployment's status follows.
    /// True once the rollout is complete.
    pub fn rollout_step(&self, namespace: &str, name: &str) -> bool {
        let new_rs = self.current_replica_set(namespace, name);
        let deployment = self.deployment_object(namespace, name);
        let desired = deployment["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
        let new_count = int(&new_rs["spec"]["replicas"]);
        if new_count < desired {
            self.set_replica_set_count(&new_rs, new_count + 1);
        }
        let old = self
            .replica_sets_of(&deployment)
            .into_iter()
            .filter(|rs| rs["metadata"]["name"] != new_rs["metadata"]["name"])
            .find(|rs| int(&rs["spec"]["replicas"]) > 0);
        if let Some(old) = old {
            self.set_replica_set_count(&old, int(&old["spec"]["replicas"]) - 1);
        }
        let new_rs = self.current_replica_set(namespace, name);
        self.report_rollout(namespace, name, &new_rs)
    }

    /// Sets the Deployment's status from its ReplicaSets; true when done.
    fn report_rollout(&self, namespace: &str, name: &str, new_rs: &Value) -> bool {
        let deployment = self.deployment_object(namespace, name);
        let desired = deployment["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
        let sets = self.replica_sets_of(&deployment);
        let total: i32 = sets.iter().map(|rs| int(&rs["status"]["replicas"])).sum();
        let ready: i32 = sets
            .iter()
            .map(|rs| int(&rs["status"]["readyReplicas"]))
            .sum();
        let updated = int(&new_rs["status"]["readyReplicas"]);
        self.set_deployment_status(
            namespace,
            name,
            DeploymentNumbers {
                replicas: total,
                updated,
                ready,
                available: ready,
            },
        );
        updated == desired && total == desired
    }

    /// A StatefulSet fully rolled out: every replica ready and updated,
    /// current and update revisions equal, for the current generation.
    pub fn settle_statefulset(&self, namespace: &str, name: &str) -> Value {
        let object = self
            .get("apps/v1", "StatefulSet", Some(namespace), name)
            .unwrap_or_else(|| panic!("fake Kubernetes API: no StatefulSet {namespace}/{name}"));
        let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
        let revision = format!("{name}-{}", template_hash(&object["spec"]["template"]));
        self.apply_status(
            "apps/v1",
            "StatefulSet",
            namespace,
            name,
            json!({
                "observedGeneration": object["metadata"]["generation"],
                "replicas": replicas,
                "readyReplicas": replicas,
                "currentReplicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0
            }),
        )
    }

    /// A DaemonSet fully rolled out on `nodes` nodes, for the current
    /// generation.
    pub fn settle_daemonset(&self, namespace: &str, name: &str, nodes: i32) -> Value {
        let object = self
            .get("apps/v1", "DaemonSet", Some(namespace), name)
            .unwrap_or_else(|| panic!("fake Kubernetes API: no DaemonSet {namespace}/{name}"));
        self.apply_status(
            "apps/v1",
            "DaemonSet",
            namespace,
            name,
            json!({
                "observedGeneration": object["metadata"]["generation"],
                "desiredNumberScheduled": nodes,
                "currentNumberScheduled": nodes,
                "updatedNumberScheduled": nodes,
                "numberReady": nodes,
                "numberAvailable": nodes,
                "numberMisscheduled": 0
            }),
        )
    }

    /// Makes a pod's container crash-loop: waiting in CrashLoopBackOff, one
    /// more restart, the last run terminated with exit code 1, the pod not
    /// Ready. Call again for each further crash.
    pub fn crash_loop_pod(&self, namespace: &str, name: &str, container: &str) -> Value {
        let mut pod = self
            .get("v1", "Pod", Some(namespace), name)
            .unwrap_or_else(|| panic!("fake Kubernetes API: no Pod {namespace}/{name}"));
        let now = now_rfc3339();
        let image = pod["spec"]["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == container))
            .map(|c| c["image"].clone())
            .unwrap_or(json!(""));
        if !pod["status"]["containerStatuses"].is_array() {
            pod["status"]["containerStatuses"] = json!([]);
        }
        let statuses = pod["status"]["containerStatuses"]
            .as_array_mut()
            .expect("an array");
        let index = match statuses.iter().position(|s| s["name"] == container) {
            Some(index) => index,
            None => {
                statuses.push(
                    json!({"name": container, "image": image, "imageID": "", "restartCount": 0}),
                );
                statuses.len() - 1
            }
        };
        let status = &mut statuses[index];
        let restarts = status["restartCount"].as_i64().unwrap_or(0) + 1;
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let status = &mut pod["status"]["containerStatuses"][index];
        status["restartCount"] = json!(restarts);
        status["ready"] = json!(false);
        status["started"] = json!(false);
        status["state"] = json!({"waiting": {
            "reason": "CrashLoopBackOff",
            "message": format!("back-off 10s restarting failed container={container} pod={name}_{namespace}({uid})")
        }});
        status["lastState"] = json!({"terminated": {
            "exitCode": 1,
            "reason": "Error",
            "startedAt": now,
            "finishedAt": now,
            "containerID": format!("containerd://{:064x}", restarts)
        }});
        pod["status"]["phase"] = json!("Running");
        let message = format!("containers with unready status: [{container}]");
        let mut conditions: Vec<Value> = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["type"] != "Ready" && c["type"] != "ContainersReady")
            .collect();
        for kind in ["ContainersReady", "Ready"] {
            conditions.push(json!({
                "type": kind,
                "status": "False",
                "reason": "ContainersNotReady",
                "message": message,
                "lastTransitionTime": now
            }));
        }
        pod["status"]["conditions"] = json!(conditions);
        self.apply(pod)
    }

    /// cert-manager renewed a Certificate: new validity, next revision,
    /// Ready.
    pub fn renew_certificate(
        &self,
        namespace: &str,
        name: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Value {
        let certificate = self
            .get("cert-manager.io/v1", "Certificate", Some(namespace), name)
            .unwrap_or_else(|| panic!("fake Kubernetes API: no Certificate {namespace}/{name}"));
        let revision = certificate["status"]["revision"].as_i64().unwrap_or(0) + 1;
        self.apply_status(
            "cert-manager.io/v1",
            "Certificate",
            namespace,
            name,
            certificate_status(not_before, not_after, revision),
        )
    }
}
