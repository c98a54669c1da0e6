//! One watch: a kube-runtime watcher for one resource type in one
//! namespace (or cluster-wide), feeding a store that checks read.
//!
//! The store is replaced atomically at the end of every full list
//! (`InitDone`), so a check never sees half a list. Any error ends the
//! watcher; the loop records it for the checks (they report `error` until
//! the next full list succeeds), waits with a growing backoff and lists
//! again. A 410 Gone re-lists at once and is not an error for the checks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{broadcast, watch};

use super::error::{classify_watch_error, scope_text, KubeError, WatchFailure};
use super::resource::{ResourceType, ARGO_ROLLOUTS, DEPLOYMENTS, SECRETS, STATEFULSETS};
use crate::lock::{read, write};
use crate::plan::{Rollout, WorkloadRef};

/// What a watch is of. Equal keys share one watch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchKey {
    pub resource: ResourceType,
    /// None for cluster-scoped types or every namespace.
    pub namespace: Option<String>,
    /// Metadata only (`PartialObjectMetadata`): labels, annotations,
    /// timestamps, no spec, status or data.
    pub metadata_only: bool,
}

impl WatchKey {
    pub fn new(resource: ResourceType, namespace: Option<&str>) -> Self {
        WatchKey {
            resource,
            namespace: namespace.filter(|_| resource.namespaced).map(String::from),
            metadata_only: false,
        }
    }

    pub fn metadata(resource: ResourceType, namespace: Option<&str>) -> Self {
        WatchKey {
            metadata_only: true,
            ..Self::new(resource, namespace)
        }
    }
}

/// The state checks see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchState {
    /// No full list yet.
    Starting,
    /// The store holds a full list and every change since.
    Synced,
    /// The last attempt failed; the store may be stale.
    Failing(KubeError),
}

/// `namespace`, `name` → object. Namespace is empty for cluster objects.
pub type Objects = BTreeMap<(String, String), Arc<DynamicObject>>;

/// What the watch task and the readers share.
pub(crate) struct Shared {
    objects: RwLock<Arc<Objects>>,
    state: watch::Sender<WatchState>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            objects: RwLock::new(Arc::new(Objects::new())),
            state: watch::Sender::new(WatchState::Starting),
        }
    }

    pub(crate) fn objects(&self) -> Arc<Objects> {
        read(&self.objects).clone()
    }

    pub(crate) fn state(&self) -> WatchState {
        self.state.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<WatchState> {
        self.state.subscribe()
    }

    fn set_state(&self, state: WatchState) {
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    fn replace(&self, objects: Objects) {
        *write(&self.objects) = Arc::new(objects);
    }

    /// Inserts `object`; returns the one it replaced, or Err when a new
    /// object would make the store hold more than `limit` (nothing is
    /// inserted then).
    fn upsert(
        &self,
        object: DynamicObject,
        limit: usize,
    ) -> Result<Option<Arc<DynamicObject>>, TooMany> {
        let mut guard = write(&self.objects);
        let key = object_key(&object);
        if guard.len() >= limit && !guard.contains_key(&key) {
            return Err(TooMany);
        }
        Ok(Arc::make_mut(&mut guard).insert(key, Arc::new(object)))
    }

    fn remove(&self, object: &DynamicObject) {
        let mut guard = write(&self.objects);
        Arc::make_mut(&mut guard).remove(&object_key(object));
    }
}

fn object_key(object: &DynamicObject) -> (String, String) {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

/// Drops what no check reads and what must not be kept: managed fields,
/// the `last-applied-configuration` annotation (for a Secret it holds the
/// values), and the values of a Secret's `data` and `stringData` (their
/// key names stay).
///
/// One exception for the metadata-only watches of Secrets, which
/// `secret_age` reads: of the managed fields only the time of the last
/// write of the Secret's data is kept ([`last_data_write`]), as a single
/// entry with that time and no field set, so a Secret costs one small
/// entry instead of every manager's field set (which lists each key).
pub(crate) fn sanitize(key: &WatchKey, mut object: DynamicObject) -> DynamicObject {
    let resource = &key.resource;
    let managed = object.metadata.managed_fields.take();
    if key.metadata_only && *resource == SECRETS {
        object.metadata.managed_fields = managed
            .as_deref()
            .and_then(last_data_write)
            .map(|time| vec![data_write_entry(time)]);
    }
    if let Some(annotations) = object.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    if *resource == SECRETS {
        for field in ["data", "stringData"] {
            if let Some(map) = object.data.get_mut(field).and_then(|v| v.as_object_mut()) {
                for value in map.values_mut() {
                    *value = serde_json::Value::String(String::new());
                }
            }
        }
    }
    object
}

/// The time of the newest managed-fields entry of an `Update` or `Apply`
/// that owns the Secret's `data` or `stringData`: when its values were
/// last written (by the manager that owns them; the API server keeps one
/// entry per manager and operation, and its time moves whenever that
/// manager changes any field it owns). None when no entry says so.
pub fn last_data_write(entries: &[ManagedFieldsEntry]) -> Option<Time> {
    entries
        .iter()
        .filter(|e| matches!(e.operation.as_deref(), Some("Update" | "Apply")))
        .filter(|e| {
            e.fields_v1.as_ref().is_some_and(|fields| {
                fields
                    .0
                    .as_object()
                    .is_some_and(|f| f.contains_key("f:data") || f.contains_key("f:stringData"))
            })
        })
        .filter_map(|e| e.time.clone())
        .max_by_key(|t| t.0)
}

/// The one entry kept for a Secret: its last data write, in a shape
/// [`last_data_write`] reads back.
fn data_write_entry(time: Time) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        operation: Some("Update".to_string()),
        time: Some(time),
        fields_type: Some("FieldsV1".to_string()),
        fields_v1: Some(FieldsV1(serde_json::json!({"f:data": {}}))),
        ..ManagedFieldsEntry::default()
    }
}

fn from_metadata(
    resource: &ResourceType,
    version: &str,
    meta: PartialObjectMeta<DynamicObject>,
) -> DynamicObject {
    let ar = resource.api_resource(version);
    DynamicObject {
        types: Some(kube::core::TypeMeta {
            api_version: ar.api_version,
            kind: ar.kind,
        }),
        metadata: meta.metadata,
        data: serde_json::Value::Null,
    }
}

/// What a rollout changes: the pod template, a Deployment's,
/// StatefulSet's or Argo Rollout's `spec.template` (whose hash names the
/// ReplicaSet or revision the controller rolls out; a Rollout may instead
/// take a Deployment's template through `spec.workloadRef`). Scaling
/// (`spec.replicas`, as an HPA, `kubectl scale` or Flagger does) moves
/// `metadata.generation` on but leaves the template, and starts no new
/// pods.
fn pod_template(object: &DynamicObject) -> [serde_json::Value; 2] {
    let spec = &object.data["spec"];
    [spec["template"].clone(), spec["workloadRef"].clone()]
}

/// Backoff after the `failures`-th consecutive failure: 250 ms doubling
/// up to `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(250);
    base.saturating_mul(1u32 << failures.min(10).saturating_sub(1))
        .min(max)
}

/// Retry at most this far apart while the API server is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// … and this far apart while it refuses (forbidden, type not served):
/// such answers change only when someone changes the cluster.
const MAX_BACKOFF_REFUSED: Duration = Duration::from_secs(30);

/// How long the API server keeps one watch request open (`timeoutSeconds`),
/// well under [`super::connection::READ_TIMEOUT`].
pub const WATCH_TIMEOUT_SECONDS: u32 = 55;

type EventStream =
    futures::stream::BoxStream<'static, Result<Event<DynamicObject>, watcher::Error>>;

fn event_stream(client: &kube::Client, key: &WatchKey, version: &str) -> EventStream {
    let ar = key.resource.api_resource(version);
    let config = watcher::Config::default().timeout(WATCH_TIMEOUT_SECONDS);
    if key.metadata_only {
        let api: Api<PartialObjectMeta<DynamicObject>> = match &key.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let resource = key.resource;
        let version = version.to_string();
        watcher::watcher(api, config)
            .map_ok(move |event| {
                let convert = |meta| from_metadata(&resource, &version, meta);
                match event {
                    Event::Apply(meta) => Event::Apply(convert(meta)),
                    Event::Delete(meta) => Event::Delete(convert(meta)),
                    Event::Init => Event::Init,
                    Event::InitApply(meta) => Event::InitApply(convert(meta)),
                    Event::InitDone => Event::InitDone,
                }
            })
            .boxed()
    } else {
        let api: Api<DynamicObject> = match &key.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        watcher::watcher(api, config).boxed()
    }
}

/// A watch brought more objects than it may hold.
struct TooMany;

/// Runs the watch of `key` until the task is aborted. It holds at most
/// `max_objects` objects (read at each one, so a reload's new limit
/// applies): past that, the list or watch is stopped, the store emptied
/// and the state set to `TooManyObjects`, and the watch lists again after
/// a backoff (the count changes only when the cluster or the limit does).
pub(crate) async fn run(
    client: kube::Client,
    key: WatchKey,
    shared: Arc<Shared>,
    rollouts: broadcast::Sender<Rollout>,
    max_objects: Arc<AtomicUsize>,
) {
    let too_many = |limit: usize| {
        WatchFailure::Failed(KubeError::TooManyObjects {
            resource: key.resource.rbac_name(),
            scope: scope_text(key.namespace.as_deref()),
            limit,
        })
    };
    let resource = key.resource;
    let namespace = key.namespace.as_deref();
    let tracks_rollouts = !key.metadata_only
        && (resource == DEPLOYMENTS || resource == STATEFULSETS || resource == ARGO_ROLLOUTS);
    let mut failures: u32 = 0;
    let mut version_index = 0usize;
    loop {
        let version = resource.versions[version_index];
        let mut events = event_stream(&client, &key, version);
        let mut listing: Option<Objects> = None;
        // Why this attempt ended; None: the stream ended, which a watcher
        // never does, but is treated like a drop.
        let mut ended_by: Option<WatchFailure> = None;
        while let Some(item) = events.next().await {
            match item {
                Ok(Event::Init) => listing = Some(Objects::new()),
                Ok(Event::InitApply(object)) => {
                    let object = sanitize(&key, object);
                    let limit = max_objects.load(Ordering::Relaxed);
                    let objects = listing.get_or_insert_with(Objects::new);
                    objects.insert(object_key(&object), Arc::new(object));
                    if objects.len() > limit {
                        ended_by = Some(too_many(limit));
                        break;
                    }
                }
                Ok(Event::InitDone) => {
                    shared.replace(listing.take().unwrap_or_default());
                    shared.set_state(WatchState::Synced);
                    failures = 0;
                    tracing::debug!(resource = %resource, namespace = ?namespace, version, "watch synced");
                }
                Ok(Event::Apply(object)) => {
                    let object = sanitize(&key, object);
                    let generation = object.metadata.generation;
                    let template = tracks_rollouts.then(|| pod_template(&object));
                    let key = object_key(&object);
                    let limit = max_objects.load(Ordering::Relaxed);
                    let Ok(before) = shared.upsert(object, limit) else {
                        ended_by = Some(too_many(limit));
                        break;
                    };
                    if let Some(template) = template {
                        if let (Some(before), Some(generation)) = (before, generation) {
                            // A new generation is any spec change, scaling
                            // included; a rollout is a new pod template.
                            if before.metadata.generation != Some(generation)
                                && pod_template(&before) != template
                            {
                                tracing::info!(resource = %resource, namespace = %key.0, name = %key.1, generation, "rollout seen");
                                let _ = rollouts.send(Rollout {
                                    workload: WorkloadRef {
                                        namespace: key.0,
                                        name: key.1,
                                    },
                                    generation,
                                });
                            }
                        }
                    }
                }
                Ok(Event::Delete(object)) => shared.remove(&object),
                Err(err) => {
                    ended_by = Some(classify_watch_error(&err, &resource, namespace));
                    break;
                }
            }
        }
        drop(events);
        // A cut-off list is not kept through the backoff.
        drop(listing);
        let max = match ended_by {
            Some(WatchFailure::Gone) => {
                tracing::debug!(resource = %resource, namespace = ?namespace, "resource version expired; listing again");
                continue;
            }
            Some(WatchFailure::NotServed) if version_index + 1 < resource.versions.len() => {
                version_index += 1;
                continue;
            }
            Some(WatchFailure::NotServed) => {
                version_index = 0;
                shared.set_state(WatchState::Failing(KubeError::NotInstalled {
                    resource: resource.rbac_name(),
                    versions: resource.versions.join(", "),
                }));
                MAX_BACKOFF_REFUSED
            }
            Some(WatchFailure::Failed(err)) => {
                let max = match err {
                    KubeError::Forbidden { .. }
                    | KubeError::Unauthorized(_)
                    | KubeError::TooManyObjects { .. } => MAX_BACKOFF_REFUSED,
                    _ => MAX_BACKOFF,
                };
                if let KubeError::TooManyObjects { .. } = err {
                    // Checks read nothing of a failing watch: free its store.
                    shared.replace(Objects::new());
                }
                tracing::warn!(resource = %resource, namespace = ?namespace, error = %err, "watch failed; retrying");
                shared.set_state(WatchState::Failing(err));
                max
            }
            None => MAX_BACKOFF,
        };
        failures = failures.saturating_add(1);
        tokio::time::sleep(backoff(failures, max)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resource::PODS;

    #[test]
    fn secret_values_and_last_applied_configuration_are_dropped() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "prod", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}",
                "team": "a"}},
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"token": "t0ken"}
        }))
        .unwrap();
        let clean = sanitize(&WatchKey::new(SECRETS, Some("prod")), object);
        let text = serde_json::to_string(&clean).unwrap();
        assert!(!text.contains("aHVudGVyMg"), "{text}");
        assert!(!text.contains("t0ken"), "{text}");
        assert!(text.contains("\"password\""), "{text}");
        assert!(text.contains("\"team\""), "{text}");
    }

    fn secret_with_managed_fields() -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "prod", "managedFields": [
                {"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                 "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:data": {"f:password": {}}, "f:type": {}}},
                {"manager": "external-secrets", "operation": "Apply", "apiVersion": "v1",
                 "time": "2026-03-01T00:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:data": {"f:password": {}}}},
                {"manager": "labeller", "operation": "Update", "apiVersion": "v1",
                 "time": "2026-05-01T00:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:team": {}}}}}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn metadata_only_secret_watches_keep_only_the_last_data_write() {
        let clean = sanitize(
            &WatchKey::metadata(SECRETS, Some("prod")),
            secret_with_managed_fields(),
        );
        let entries = clean.metadata.managed_fields.expect("one entry kept");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, None);
        // The label change of May is not a write of the data.
        assert_eq!(
            last_data_write(&entries).unwrap().0.to_string(),
            "2026-03-01T00:00:00Z"
        );
        // Full Secret watches and other types keep none.
        let full = sanitize(
            &WatchKey::new(SECRETS, Some("prod")),
            secret_with_managed_fields(),
        );
        assert!(full.metadata.managed_fields.is_none());
        let pods = sanitize(
            &WatchKey::metadata(PODS, Some("prod")),
            secret_with_managed_fields(),
        );
        assert!(pods.metadata.managed_fields.is_none());
    }

    #[test]
    fn other_objects_keep_their_data() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "data": {"x": "y"}
        }))
        .unwrap();
        let clean = sanitize(&WatchKey::new(PODS, Some("prod")), object);
        assert_eq!(clean.data["data"]["x"], "y");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1, MAX_BACKOFF), Duration::from_millis(250));
        assert_eq!(backoff(2, MAX_BACKOFF), Duration::from_millis(500));
        assert_eq!(backoff(30, MAX_BACKOFF), MAX_BACKOFF);
    }

    #[test]
    fn cluster_scoped_keys_have_no_namespace() {
        let key = WatchKey::new(crate::kube::resource::NAMESPACES, Some("prod"));
        assert_eq!(key.namespace, None);
        assert_eq!(
            WatchKey::new(PODS, Some("prod")).namespace.as_deref(),
            Some("prod")
        );
    }
}
