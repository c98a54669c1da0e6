//! The shared Kubernetes client and watch cache.
//!
//! One [`KubeCache`] per process (in [`crate::probe::Clients`]). The
//! client is created on first use, so a config without Kubernetes checks
//! never connects, and `vouch validate` never does. Each check holds a
//! [`Lease`] per resource type and namespace it reads; the first read of a
//! key starts one watch (list, then watch from its resource version) that
//! every lease of the same key shares. Checks read the watch's store: once
//! it has synced, a round of checks makes no request at all, however many
//! checks there are. A watch lives as long as some lease holds it: after a
//! reload, kept checks keep theirs, new checks start what they need, and
//! watches no check reads any more stop.
//!
//! For cross-checks other kinds can use:
//! - [`KubeCache::ingress_addresses`]: the load-balancer addresses (IPs and
//!   host names) Ingress `ns/name` reports;
//! - [`KubeCache::container_image`]: the image (and tag) container `C` of
//!   Deployment `ns/name` runs;
//! - [`KubeCache::certificate_not_after`]: the not-after time of
//!   cert-manager Certificate `ns/name`;
//! - [`KubeCache::subscribe_rollouts`] (the same feed as
//!   `Clients::rollouts`): a [`Rollout`] each time a watched Deployment,
//!   StatefulSet or Argo Rollout gets a new `metadata.generation` with a
//!   new pod template (scaling is no rollout). Only watched objects are
//!   seen: [`KubeCache::follow_rollouts`] starts the watches of the
//!   workloads' namespaces (`serve` does so for `after_rollout_of`).

pub mod connection;
pub mod error;
pub mod lookup;
pub mod resource;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use kube::api::DynamicObject;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::lock::lock;
use crate::plan::{Rollout, WorkloadRef};

pub use connection::{ConnectionSettings, KubeConnectionConfig, DEFAULT_MAX_OBJECTS_PER_WATCH};
pub use error::KubeError;
pub use lookup::ImageRef;
pub use resource::ResourceType;
pub use watch::{Objects, WatchKey, WatchState};

use watch::Shared;

/// The process's Kubernetes client and its watches.
pub struct KubeCache {
    /// `--kubeconfig`, which wins over the config file.
    flag: Option<PathBuf>,
    /// Resolved from the config in force when the client was built (or
    /// will be).
    settings: Mutex<Option<ConnectionSettings>>,
    client: tokio::sync::Mutex<ClientSlot>,
    watches: Mutex<HashMap<WatchKey, Weak<Watch>>>,
    rollouts: broadcast::Sender<Rollout>,
    /// Most objects one watch holds; read by every watch at each object,
    /// so a reload's new value applies to running watches too.
    max_objects: Arc<AtomicUsize>,
}

/// The client once built, or its load still running.
#[derive(Default)]
struct ClientSlot {
    built: Option<(ConnectionSettings, kube::Client)>,
    pending: Option<connection::PendingLoad>,
}

/// A running watch; stops when the last [`Lease`] holding it is dropped.
pub struct Watch {
    key: WatchKey,
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watch {
    /// The store once synced; waits up to `left` (of a run's `wait`, which
    /// messages name) for the first sync.
    async fn read(&self, wait: Duration, left: Duration) -> Result<Snapshot, KubeError> {
        let mut states = self.shared.subscribe();
        let waited = tokio::time::timeout(
            left,
            states.wait_for(|state| *state != WatchState::Starting),
        )
        .await;
        let state = match waited {
            Ok(Ok(state)) => state.clone(),
            _ => self.shared.state(),
        };
        match state {
            WatchState::Synced => Ok(Snapshot {
                resource: self.key.resource,
                objects: self.shared.objects(),
            }),
            WatchState::Failing(err) => Err(err),
            WatchState::Starting => Err(KubeError::not_synced(
                &self.key.resource,
                self.key.namespace.as_deref(),
                wait,
            )),
        }
    }
}

/// A check's hold on the watch of one key: started on the first read,
/// kept while the lease lives.
pub struct Lease {
    key: WatchKey,
    held: Mutex<Option<Arc<Watch>>>,
}

impl Lease {
    pub fn new(key: WatchKey) -> Self {
        Lease {
            key,
            held: Mutex::new(None),
        }
    }

    pub fn key(&self) -> &WatchKey {
        &self.key
    }

    /// The objects of the watch, waiting up to `wait` for its first sync
    /// (then `not_synced`). A failing watch answers its error at once.
    pub async fn read(&self, cache: &KubeCache, wait: Duration) -> Result<Snapshot, KubeError> {
        let started = std::time::Instant::now();
        let held = lock(&self.held).clone();
        let watch = match held {
            Some(watch) => watch,
            None => {
                let watch = cache.watch_within(&self.key, wait).await?;
                *lock(&self.held) = Some(watch.clone());
                watch
            }
        };
        // Starting the client (reading its files) came out of the same wait.
        watch
            .read(wait, wait.saturating_sub(started.elapsed()))
            .await
    }
}

/// The objects of one watch at one moment.
#[derive(Clone)]
pub struct Snapshot {
    pub resource: ResourceType,
    pub objects: Arc<Objects>,
}

impl Snapshot {
    pub fn get(&self, namespace: &str, name: &str) -> Option<&DynamicObject> {
        self.objects
            .get(&(namespace.to_string(), name.to_string()))
            .map(Arc::as_ref)
    }

    /// Objects of `namespace` (every object for a cluster-wide watch when
    /// None).
    pub fn in_namespace<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a DynamicObject> + 'a {
        self.objects
            .iter()
            .filter(move |((ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(_, object)| object.as_ref())
    }
}

/// A stored object as its k8s-openapi type.
pub fn typed<K: DeserializeOwned>(object: &DynamicObject) -> Result<K, String> {
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|err| {
            format!(
                "{} {}: unexpected shape: {err}",
                object
                    .types
                    .as_ref()
                    .map(|t| t.kind.as_str())
                    .unwrap_or("object"),
                object.metadata.name.as_deref().unwrap_or("?")
            )
        })
}

/// One watch as the metrics and /readyz show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchStatus {
    /// `deployments.apps`, `pods`.
    pub resource: String,
    /// Empty for cluster-wide watches.
    pub namespace: String,
    pub metadata_only: bool,
    pub state: WatchState,
}

impl KubeCache {
    /// A cache that publishes the rollouts it sees on `rollouts` (the
    /// feed of [`crate::probe::Clients`]).
    pub fn new(kubeconfig_flag: Option<PathBuf>, rollouts: broadcast::Sender<Rollout>) -> Self {
        KubeCache {
            flag: kubeconfig_flag,
            settings: Mutex::new(None),
            client: tokio::sync::Mutex::new(ClientSlot::default()),
            watches: Mutex::new(HashMap::new()),
            rollouts,
            max_objects: Arc::new(AtomicUsize::new(DEFAULT_MAX_OBJECTS_PER_WATCH)),
        }
    }

    /// The most objects one watch may hold (`kubernetes.max_objects_per_watch`).
    pub fn set_max_objects_per_watch(&self, limit: usize) {
        self.max_objects.store(limit.max(1), Ordering::Relaxed);
    }

    /// The `--kubeconfig` flag, if given.
    pub fn kubeconfig_flag(&self) -> Option<&Path> {
        self.flag.as_deref()
    }

    /// Uses the connection settings of a config put in force. A client
    /// already built keeps its settings until restart (watches would have
    /// to move between clusters); the change is logged.
    pub fn configure(&self, settings: ConnectionSettings) {
        if let Ok(client) = self.client.try_lock() {
            if let Some((built, _)) = client.built.as_ref() {
                if *built != settings {
                    tracing::warn!("the Kubernetes connection settings changed; they take effect at the next restart");
                }
            }
        }
        *lock(&self.settings) = Some(settings);
    }

    /// The client, built on first use; waits at most `wait` for its
    /// files (a later call picks up a load that outlived its wait).
    async fn client(&self, wait: Duration) -> Result<kube::Client, KubeError> {
        let mut slot = self.client.lock().await;
        if let Some((_, client)) = slot.built.as_ref() {
            return Ok(client.clone());
        }
        let settings = lock(&self.settings).clone().unwrap_or_else(|| {
            ConnectionSettings::resolve(
                self.flag.as_deref(),
                None,
                Path::new("."),
                std::env::var("KUBECONFIG").ok(),
            )
        });
        let built = settings
            .client(&mut slot.pending, wait)
            .await
            .map_err(KubeError::Client)?;
        slot.built = Some((settings, built.clone()));
        Ok(built)
    }

    /// The watch of `key`, started if no one holds it; waits at most
    /// [`crate::file_read::BUILD_WAIT`] for the client's files.
    pub async fn watch(&self, key: &WatchKey) -> Result<Arc<Watch>, KubeError> {
        self.watch_within(key, crate::file_read::BUILD_WAIT).await
    }

    /// [`Self::watch`] waiting at most `wait` for the client's files (a
    /// run's share of its timeout).
    pub async fn watch_within(
        &self,
        key: &WatchKey,
        wait: Duration,
    ) -> Result<Arc<Watch>, KubeError> {
        if let Some(watch) = self.running(key) {
            return Ok(watch);
        }
        let client = self.client(wait).await?;
        let mut watches = lock(&self.watches);
        if let Some(watch) = watches.get(key).and_then(Weak::upgrade) {
            return Ok(watch);
        }
        watches.retain(|_, watch| watch.strong_count() > 0);
        let shared = Arc::new(Shared::new());
        let task = tokio::spawn(watch::run(
            client,
            key.clone(),
            shared.clone(),
            self.rollouts.clone(),
            self.max_objects.clone(),
        ))
        .abort_handle();
        tracing::info!(resource = %key.resource, namespace = ?key.namespace, metadata_only = key.metadata_only, "watch started");
        let watch = Arc::new(Watch {
            key: key.clone(),
            shared,
            task,
        });
        watches.insert(key.clone(), Arc::downgrade(&watch));
        Ok(watch)
    }

    fn running(&self, key: &WatchKey) -> Option<Arc<Watch>> {
        lock(&self.watches).get(key).and_then(Weak::upgrade)
    }

    /// Every running watch and its state, sorted.
    pub fn statuses(&self) -> Vec<WatchStatus> {
        let watches = lock(&self.watches);
        let mut statuses: Vec<WatchStatus> = watches
            .values()
            .filter_map(Weak::upgrade)
            .map(|watch| WatchStatus {
                resource: watch.key.resource.rbac_name(),
                namespace: watch.key.namespace.clone().unwrap_or_default(),
                metadata_only: watch.key.metadata_only,
                state: watch.shared.state(),
            })
            .collect();
        statuses.sort_by(|a, b| {
            (&a.resource, &a.namespace, a.metadata_only).cmp(&(
                &b.resource,
                &b.namespace,
                b.metadata_only,
            ))
        });
        statuses
    }

    /// Rollouts of watched Deployments, StatefulSets and Argo Rollouts,
    /// as they are seen.
    pub fn subscribe_rollouts(&self) -> broadcast::Receiver<Rollout> {
        self.rollouts.subscribe()
    }

    /// Starts (or joins) the Deployment and StatefulSet watches of the
    /// namespaces of `workloads`, and their Argo Rollouts watches when the
    /// API server serves `rollouts.argoproj.io` (asked once here, at start
    /// and at each reload), so their rollouts reach the feed; they run
    /// while the returned watches are held. Watches that cannot start (no
    /// client) are logged and left out; once the watches have listed, a
    /// workload that is none of these objects is logged, naming whether
    /// Argo Rollouts is installed.
    pub async fn follow_rollouts(&self, workloads: &[WorkloadRef]) -> Vec<Arc<Watch>> {
        let namespaces: std::collections::BTreeSet<&str> =
            workloads.iter().map(|w| w.namespace.as_str()).collect();
        let argo = self.serves_argo_rollouts().await;
        let mut resources = vec![resource::DEPLOYMENTS, resource::STATEFULSETS];
        if argo {
            resources.push(resource::ARGO_ROLLOUTS);
        }
        let mut held = Vec::new();
        for namespace in namespaces {
            for resource in &resources {
                match self.watch(&WatchKey::new(*resource, Some(namespace))).await {
                    Ok(watch) => held.push(watch),
                    Err(err) => {
                        tracing::warn!(namespace, resource = %resource, error = %err, "cannot follow rollouts");
                    }
                }
            }
        }
        if !held.is_empty() {
            tokio::spawn(report_unknown_workloads(
                held.clone(),
                workloads.to_vec(),
                argo,
            ));
        }
        held
    }

    /// Whether the API server serves Argo Rollouts' `rollouts` (its CRD is
    /// installed). Discovery is open to every authenticated client.
    async fn serves_argo_rollouts(&self) -> bool {
        let Ok(client) = self.client(crate::file_read::BUILD_WAIT).await else {
            return false;
        };
        let api_version = resource::ARGO_ROLLOUTS.api_resource("v1alpha1").api_version;
        match client.list_api_group_resources(&api_version).await {
            Ok(list) => {
                let served = list
                    .resources
                    .iter()
                    .any(|r| r.name == resource::ARGO_ROLLOUTS.plural);
                if !served {
                    tracing::info!("{api_version} does not serve rollouts: after_rollout_of follows Deployments and StatefulSets only");
                }
                served
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                tracing::info!("Argo Rollouts is not installed (the API server does not serve {api_version}): after_rollout_of follows Deployments and StatefulSets only");
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot tell whether Argo Rollouts is installed; not following Argo Rollouts");
                false
            }
        }
    }

    /// The load-balancer addresses (IP or host name, in the order the
    /// Ingress lists them) of Ingress `namespace/name`, read through
    /// `lease` (a lease of `WatchKey::new(INGRESSES, Some(namespace))`).
    pub async fn ingress_addresses(
        &self,
        lease: &Lease,
        namespace: &str,
        name: &str,
        wait: Duration,
    ) -> Result<Vec<String>, LookupError> {
        let snapshot = lease.read(self, wait).await?;
        lookup::ingress_addresses(&snapshot, namespace, name).map_err(LookupError::Object)
    }

    /// `status.notAfter` (Unix seconds) of cert-manager Certificate
    /// `namespace/name`, read through `lease` (of
    /// `WatchKey::new(CERTIFICATES, Some(namespace))`): for comparing with
    /// the certificate a server presents.
    pub async fn certificate_not_after(
        &self,
        lease: &Lease,
        namespace: &str,
        name: &str,
        wait: Duration,
    ) -> Result<f64, LookupError> {
        let snapshot = lease.read(self, wait).await?;
        lookup::certificate_not_after(&snapshot, namespace, name).map_err(LookupError::Object)
    }

    /// The image container `container` of Deployment `namespace/name`
    /// runs, read through `lease` (of `WatchKey::new(DEPLOYMENTS, ..)`).
    pub async fn container_image(
        &self,
        lease: &Lease,
        namespace: &str,
        name: &str,
        container: &str,
        wait: Duration,
    ) -> Result<ImageRef, LookupError> {
        let snapshot = lease.read(self, wait).await?;
        lookup::container_image(&snapshot, namespace, name, container).map_err(LookupError::Object)
    }
}

/// Once the rollout watches have listed (or a minute has passed), warns
/// of each workload none of them holds: a rollout of it would go unseen.
async fn report_unknown_workloads(
    watches: Vec<Arc<Watch>>,
    workloads: Vec<WorkloadRef>,
    argo: bool,
) {
    let mut snapshots = Vec::new();
    // Watches that could not list (refused, say): what they would hold is
    // unknown, so a workload they do not show may still be one of theirs.
    let mut failed = Vec::new();
    for watch in &watches {
        match watch
            .read(Duration::from_secs(60), Duration::from_secs(60))
            .await
        {
            Ok(snapshot) => snapshots.push(snapshot),
            Err(err) => failed.push((watch.key.clone(), err)),
        }
    }
    for workload in workloads {
        let found = snapshots
            .iter()
            .any(|s| s.get(&workload.namespace, &workload.name).is_some());
        let unknown: Vec<String> = failed
            .iter()
            .filter(|(key, _)| {
                key.namespace
                    .as_deref()
                    .is_none_or(|ns| ns == workload.namespace)
            })
            .map(|(key, err)| format!("{}: {err}", key.resource.rbac_name()))
            .collect();
        if !found && !unknown.is_empty() {
            tracing::warn!(
                workload = %workload,
                "after_rollout_of names {workload}, which vouch cannot look for: {}; its rollouts will not be seen until that watch lists",
                unknown.join("; ")
            );
        } else if !found {
            tracing::warn!(
                workload = %workload,
                "after_rollout_of names {workload}, which is no Deployment or StatefulSet{}; its rollouts will not be seen",
                if argo {
                    " or Argo Rollout"
                } else {
                    " (and Argo Rollouts is not installed, so it cannot be a Rollout)"
                }
            );
        }
    }
}

/// Why a cross-check lookup has no value.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The cache could not answer (`reason()` gives the word).
    #[error(transparent)]
    Cache(#[from] KubeError),
    /// The object is missing or has no such value.
    #[error("{0}")]
    Object(String),
}
