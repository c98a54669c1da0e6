//! The fake's etcd: objects by type, one global resourceVersion, a bounded
//! history of changes (for watches and paged lists), and the request log.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::rbac::Rule;

/// A resource type the fake serves (built in, or a CRD a test installed).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// Has a `status` subresource.
    pub status: bool,
    /// `metadata.generation` counts changes outside metadata and status.
    pub generation: bool,
    pub short_names: Vec<String>,
    /// Built-in types drop apiVersion/kind from list items, as the real
    /// server does; custom resources (served unstructured) keep them.
    pub builtin: bool,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn group_version(&self) -> (String, String) {
        (self.group.clone(), self.version.clone())
    }

    pub(crate) fn key(&self) -> TypeKey {
        (self.group.clone(), self.plural.clone())
    }
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (String, String) {
    match api_version.split_once('/') {
        Some((group, version)) => (group.to_string(), version.to_string()),
        None => (String::new(), api_version.to_string()),
    }
}

pub(crate) type TypeKey = (String, String);
/// (namespace or "", name): the order of etcd keys.
pub(crate) type ObjectKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One write, as etcd's watch reports it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub type_key: TypeKey,
    pub key: ObjectKey,
    pub kind: ChangeKind,
    /// The object after the change (for a delete: the object as deleted,
    /// carrying the delete's resourceVersion).
    pub object: Value,
    /// The object before the change.
    pub previous: Option<Value>,
}

/// What live watches hear.
#[derive(Clone, Debug)]
pub(crate) enum Note {
    Change(Arc<Change>),
    Bookmark,
}

/// One request the fake answered.
#[derive(Clone, Debug, PartialEq)]
pub struct KubeRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// `list`, `watch`, `get`, `discovery`, or the method in lower case for
    /// anything else.
    pub verb: String,
    /// API group of the resource (`""` for core).
    pub group: String,
    /// Resource plural (empty for discovery).
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// Asked for PartialObjectMetadata(List) in the Accept header.
    pub metadata_only: bool,
    pub status: u16,
}

pub(crate) struct State {
    pub rv: u64,
    /// Watches from a resourceVersion below this get 410 Expired.
    pub compacted: u64,
    pub history_limit: usize,
    pub history: VecDeque<Arc<Change>>,
    pub types: Vec<ResourceType>,
    pub objects: BTreeMap<TypeKey, BTreeMap<ObjectKey, Value>>,
    pub rules: Option<Vec<Rule>>,
    pub user: String,
    pub requests: Vec<KubeRequest>,
    pub delay: std::time::Duration,
    pub bookmark_interval: std::time::Duration,
    pub uid_counter: u64,
    /// Resource plural (or `*`) → the status code every request on it gets.
    pub failures: std::collections::HashMap<String, u16>,
}

fn builtin(
    api_version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    status: bool,
    generation: bool,
    short_names: &[&str],
) -> ResourceType {
    let (group, version) = split_api_version(api_version);
    ResourceType {
        group,
        version,
        kind: kind.to_string(),
        plural: plural.to_string(),
        namespaced,
        status,
        generation,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        builtin: true,
    }
}

/// The built-in types served from the start.
#[rustfmt::skip]
pub(crate) fn builtin_types() -> Vec<ResourceType> {
    vec![
        builtin("v1", "Namespace", "namespaces", false, true, false, &["ns"]),
        builtin("v1", "Node", "nodes", false, true, false, &["no"]),
        builtin("v1", "Pod", "pods", true, true, false, &["po"]),
        builtin("v1", "Service", "services", true, true, false, &["svc"]),
        builtin("v1", "Endpoints", "endpoints", true, false, false, &["ep"]),
        builtin("v1", "ConfigMap", "configmaps", true, false, false, &["cm"]),
        builtin("v1", "Secret", "secrets", true, false, false, &[]),
        builtin("v1", "Event", "events", true, false, false, &["ev"]),
        builtin("v1", "ServiceAccount", "serviceaccounts", true, false, false, &["sa"]),
        builtin("v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, true, false, &["pvc"]),
        builtin("apps/v1", "Deployment", "deployments", true, true, true, &["deploy"]),
        builtin("apps/v1", "StatefulSet", "statefulsets", true, true, true, &["sts"]),
        builtin("apps/v1", "DaemonSet", "daemonsets", true, true, true, &["ds"]),
        builtin("apps/v1", "ReplicaSet", "replicasets", true, true, true, &["rs"]),
        builtin("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, true, false, &["hpa"]),
        builtin("batch/v1", "Job", "jobs", true, true, true, &[]),
        builtin("batch/v1", "CronJob", "cronjobs", true, true, true, &["cj"]),
        builtin("networking.k8s.io/v1", "Ingress", "ingresses", true, true, true, &["ing"]),
        builtin("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", true, false, false, &[]),
        builtin("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", true, true, true, &["pdb"]),
        builtin("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", false, true, true, &["crd", "crds"]),
    ]
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("an object");
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
        } else {
            merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The object without metadata and status: what a generation counts.
fn desired_part(object: &Value) -> Value {
    let mut rest = object.clone();
    if let Some(map) = rest.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    rest
}

/// The object without its resourceVersion: what decides a no-op write.
fn without_rv(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    copy
}

impl State {
    pub fn new(user: &str) -> State {
        State {
            rv: 1,
            compacted: 0,
            history_limit: 10_000,
            history: VecDeque::new(),
            types: builtin_types(),
            objects: BTreeMap::new(),
            rules: None,
            user: user.to_string(),
            requests: Vec::new(),
            delay: std::time::Duration::ZERO,
            bookmark_interval: std::time::Duration::from_secs(1),
            uid_counter: 0,
            failures: std::collections::HashMap::new(),
        }
    }

    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn type_of_kind(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        let (group, version) = split_api_version(api_version);
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            std::process::id(),
            (self.rv & 0xffff) as u16,
            self.uid_counter
        )
    }

    fn record(&mut self, change: Change, notes: &tokio::sync::broadcast::Sender<Note>) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = self.compacted.max(dropped.rv);
            }
        }
        let _ = notes.send(Note::Change(change));
    }
}

/// What a test says the API server recorded of an object's writes.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// RFC 3339; applies when the object is created.
    pub creation_timestamp: Option<String>,
    /// The `metadata.managedFields` array.
    pub managed_fields: Option<Value>,
}

impl State {
    /// Creates or replaces an object, as the API server plus controllers
    /// would leave it: uid and creationTimestamp kept across replaces,
    /// generation bumped when anything outside metadata and status changed,
    /// a new resourceVersion unless nothing changed.
    pub fn put(
        &mut self,
        object: Value,
        notes: &tokio::sync::broadcast::Sender<Note>,
    ) -> Result<Value, String> {
        self.put_recorded(object, None, notes)
    }

    /// As [`State::put`], then sets what the API server records of the
    /// writes (which `put` otherwise fills in or leaves out itself): the
    /// creationTimestamp (on creation only) and the managedFields.
    pub fn put_recorded(
        &mut self,
        mut object: Value,
        recorded: Option<&Recorded>,
        notes: &tokio::sync::broadcast::Sender<Note>,
    ) -> Result<Value, String> {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let resource_type = self
            .type_of_kind(&api_version, &kind)
            .ok_or_else(|| format!("no type {kind} in {api_version} is installed in the fake"))?;
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or("the object has no metadata.name")?
            .to_string();
        let namespace = if resource_type.namespaced {
            let ns = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string();
            self.ensure_namespace(&ns, notes)?;
            ns
        } else {
            String::new()
        };
        let key = (namespace.clone(), name);
        let type_key = resource_type.key();
        let previous = self
            .objects
            .get(&type_key)
            .and_then(|objects| objects.get(&key))
            .cloned();

        if !object.get("metadata").is_some_and(Value::is_object) {
            object["metadata"] = json!({});
        }
        let meta = object["metadata"].as_object_mut().expect("metadata object");
        if resource_type.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        match &previous {
            Some(old) => {
                for field in ["uid", "creationTimestamp"] {
                    meta.insert(field.into(), old["metadata"][field].clone());
                }
                if resource_type.generation {
                    let old_generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                    let changed = desired_part(&object) != desired_part(old);
                    let generation = old_generation + i64::from(changed);
                    object["metadata"]["generation"] = json!(generation);
                } else {
                    object["metadata"]
                        .as_object_mut()
                        .expect("metadata object")
                        .remove("generation");
                }
                if without_rv(&object) == without_rv(old) {
                    return Ok(old.clone());
                }
            }
            None => {
                let uid = self.next_uid();
                let meta = object["metadata"].as_object_mut().expect("metadata object");
                meta.insert("uid".into(), json!(uid));
                let created = recorded
                    .and_then(|r| r.creation_timestamp.clone())
                    .unwrap_or_else(now_rfc3339);
                meta.insert("creationTimestamp".into(), json!(created));
                if resource_type.generation {
                    meta.insert("generation".into(), json!(1));
                } else {
                    meta.remove("generation");
                }
            }
        }
        if let Some(fields) = recorded.and_then(|r| r.managed_fields.clone()) {
            object["metadata"]["managedFields"] = fields;
        }
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects
            .entry(type_key.clone())
            .or_default()
            .insert(key.clone(), object.clone());
        let kind = if previous.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.record(
            Change {
                rv: self.rv,
                type_key,
                key,
                kind,
                object: object.clone(),
                previous,
            },
            notes,
        );
        Ok(object)
    }

    fn ensure_namespace(
        &mut self,
        namespace: &str,
        notes: &tokio::sync::broadcast::Sender<Note>,
    ) -> Result<(), String> {
        let exists = self
            .objects
            .get(&(String::new(), "namespaces".to_string()))
            .is_some_and(|objects| objects.contains_key(&(String::new(), namespace.to_string())));
        if !exists {
            self.put(
                json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": namespace,
                        "labels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"}
                }),
                notes,
            )?;
        }
        Ok(())
    }

    pub fn get(&self, type_key: &TypeKey, key: &ObjectKey) -> Option<&Value> {
        self.objects
            .get(type_key)
            .and_then(|objects| objects.get(key))
    }

    pub fn delete(
        &mut self,
        type_key: &TypeKey,
        key: &ObjectKey,
        notes: &tokio::sync::broadcast::Sender<Note>,
    ) -> Option<Value> {
        let previous = self.objects.get_mut(type_key)?.remove(key)?;
        self.rv += 1;
        let mut object = previous.clone();
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(
            Change {
                rv: self.rv,
                type_key: type_key.clone(),
                key: key.clone(),
                kind: ChangeKind::Deleted,
                object: object.clone(),
                previous: Some(previous),
            },
            notes,
        );
        Some(object)
    }

    /// Forgets all history: the next watch from any resourceVersion seen so
    /// far gets 410. The compaction itself is a write (the API server
    /// records the compacted revision in etcd), so the global
    /// resourceVersion moves on and a fresh list gives a usable one.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.compacted = self.rv;
        self.history.clear();
    }

    /// The objects of one type as they were at `rv` (which must not be
    /// older than the retained history): the present, with every later
    /// change undone.
    pub fn snapshot(&self, type_key: &TypeKey, rv: u64) -> BTreeMap<ObjectKey, Value> {
        let mut objects = self.objects.get(type_key).cloned().unwrap_or_default();
        for change in self.history.iter().rev() {
            if change.rv <= rv {
                break;
            }
            if change.type_key != *type_key {
                continue;
            }
            match &change.previous {
                Some(previous) => {
                    objects.insert(change.key.clone(), previous.clone());
                }
                None => {
                    objects.remove(&change.key);
                }
            }
        }
        objects
    }
}
