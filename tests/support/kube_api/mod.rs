//! A protocol-faithful fake of the Kubernetes API server for tests (no real
//! kube-apiserver can run here). One place, one fake: every test that needs
//! a cluster starts a [`FakeKube`] and points a `kube::Client` (or vouch)
//! at the kubeconfig it writes.
//!
//! # What it imitates
//! - HTTP/1.1 on a random loopback port, plain ([`FakeKube::start`]:
//!   kube-client accepts an `http://` server URL) or HTTPS with a CA of its
//!   own ([`FakeKube::start_tls`]: certificate-authority-data in the
//!   kubeconfig); a kubeconfig with a cluster, a bearer-token user and a
//!   context; a request without that token gets 401 `Unauthorized`.
//! - Real paths: `/api/v1/...`, `/apis/{group}/{version}/...`, namespaced
//!   (`namespaces/{ns}/{plural}`) and all-namespaces collections, objects by
//!   name, the `status` subresource; `/version`.
//! - Discovery: `/api`, `/api/v1`, `/apis`, `/apis/{group}`,
//!   `/apis/{group}/{version}` (APIVersions, APIGroupList, APIGroup,
//!   APIResourceList), and aggregated discovery (APIGroupDiscoveryList
//!   apidiscovery.k8s.io/v2 at `/api` and `/apis` when the Accept header
//!   asks, as `Discovery::run_aggregated` does), listing the built-in types
//!   and the installed CRDs.
//! - Built-in types: core v1 namespaces, nodes, pods, services, endpoints,
//!   configmaps, secrets, events, serviceaccounts, persistentvolumeclaims;
//!   apps/v1 deployments, statefulsets, daemonsets, replicasets;
//!   autoscaling/v2 horizontalpodautoscalers; batch/v1 jobs, cronjobs;
//!   networking.k8s.io/v1 ingresses; discovery.k8s.io/v1 endpointslices;
//!   policy/v1 poddisruptionbudgets; apiextensions.k8s.io/v1
//!   customresourcedefinitions. Custom resources only once a test installs
//!   them ([`FakeKube::install_crd`], which also stores the CRD object).
//! - Real JSON: objects as stored (`apiVersion`, `kind`, `metadata` with
//!   uid, creationTimestamp, resourceVersion, generation), `{Kind}List`
//!   with `metadata.resourceVersion`; list items of built-in types without
//!   apiVersion/kind as the real server writes them.
//! - Errors as `Status` objects with the real reasons and messages:
//!   404 NotFound (`pods "x" not found`; `the server could not find the
//!   requested resource` for an unknown type or path), 403 Forbidden
//!   (`pods is forbidden: User "..." cannot list resource "pods" in API
//!   group "" in the namespace "prod"`, and `at the cluster scope`), 410
//!   Expired, 400 BadRequest (bad selectors, unsupported field labels).
//! - `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`),
//!   `fieldSelector` (`metadata.name`, `metadata.namespace`, and the
//!   per-type fields the real server supports, e.g. pods `status.phase`;
//!   others → 400 `field label not supported`), `limit`/`continue` paging
//!   with consistent snapshots (pages are served as of the first page's
//!   resourceVersion; a token older than the retained history → 410),
//!   `remainingItemCount`, `resourceVersionMatch=Exact`.
//! - Metadata-only answers for `Accept:
//!   application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (and
//!   `as=PartialObjectMetadata` for get and watch), as kube-runtime's
//!   `metadata_watcher` asks; each request records whether it was one.
//! - Watch (`watch=true|1`): chunked newline-delimited events
//!   ADDED/MODIFIED/DELETED/BOOKMARK/ERROR after the given resourceVersion,
//!   synthetic ADDED events for `resourceVersion` unset or `0`, selector
//!   transitions (an object that stops matching is DELETED), periodic and
//!   on-demand bookmarks when `allowWatchBookmarks=true`,
//!   `timeoutSeconds`, `sendInitialEvents=true` (initial ADDED events, then
//!   a bookmark annotated `k8s.io/initial-events-end`), and for a
//!   resourceVersion older than the retained history an `ERROR` event with
//!   a 410 Expired Status. One global, monotonically increasing
//!   resourceVersion, like etcd's revision.
//! - RBAC (optional): rules of verbs × API groups × resources (×
//!   resourceNames), cluster-wide or per namespace, loaded from
//!   Role/ClusterRole/RoleBinding/ClusterRoleBinding manifests or built in
//!   code, changeable at runtime. Discovery stays open (as the
//!   `system:discovery` role grants every authenticated user).
//! - Faults: dropping every open watch connection mid-stream, compacting
//!   history (next resume gets 410), stopping and restarting on the same
//!   port with the same state, delaying every answer, answering a
//!   resource's requests with 429/500/503/504 Status failures.
//! - A request log with counts per (verb, resource, namespace).
//! - What controllers write, on request only ([`objects`] and the
//!   conveniences on [`FakeKube`]): a Deployment settled, scaled or rolled
//!   out step by step through ReplicaSets with revisions and owner
//!   references; StatefulSet and DaemonSet settled; a pod crash-looping;
//!   a cert-manager Certificate renewed; kubelet-style Events.
//!
//! # What it does not imitate
//! - No writes through the API (POST/PUT/PATCH/DELETE answer 405): tests
//!   change the cluster through [`FakeKube`] methods, which stand for the
//!   API server plus the controllers (they may set `status` directly).
//! - No server-side apply, no managedFields of its own (only those a test
//!   records with [`FakeKube::apply_recorded`]), no field validation,
//!   defaulting,
//!   admission, finalizers or garbage collection (deleting a Deployment
//!   leaves its ReplicaSets; deleting a namespace leaves its objects).
//! - Namespaces are created on demand when a test applies an object in one.
//! - core/v1 and events.k8s.io/v1 Events are not two views of one store
//!   (only core/v1 events is served); no Table output, no protobuf, no
//!   HTTP/2, no client-certificate or exec authentication, no
//!   impersonation, no `watch` legacy paths.
//! - No controllers run by themselves: a Deployment gets no ReplicaSet or
//!   pods, a Service no Endpoints, unless the test calls a convenience or
//!   applies them.
//! - Only the `status` subresource; no logs, exec, scale, eviction.
//! - `resourceVersion` on a list other than with `Exact` reads the present;
//!   a watch from a resourceVersion newer than the present just waits
//!   (the real server answers "Too large resource version" after a while).
//!
//! Note for tests of failures: kube-client retries 429, 503 and 504 by
//! default (`Config::default_retry`, up to 15 times with growing backoff),
//! so against an injected 503 the default client keeps retrying (each
//! attempt is in the request log); with retries off the Status shows at
//! once.

pub mod objects;
mod rbac;
mod selectors;
mod server;
mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

#[allow(unused_imports)]
pub use objects::DeploymentNumbers;
#[allow(unused_imports)]
pub use rbac::{rules_bound_to, rules_of_roles, Rule};
#[allow(unused_imports)]
pub use store::{split_api_version, KubeRequest, Recorded, ResourceType};

use store::{Note, State};

/// The identity RBAC messages name by default: vouch's service account.
pub const DEFAULT_USER: &str = "system:serviceaccount:vouch:vouch";

pub(crate) struct Inner {
    pub state: Mutex<State>,
    pub notes: broadcast::Sender<Note>,
    pub drops: watch::Sender<u64>,
    pub token: String,
    pub server_address: String,
    pub open_watches: AtomicUsize,
    /// While true, every answer waits (a hanging API server, for as long
    /// as the test says rather than for a time).
    pub held: watch::Sender<bool>,
}

/// The running fake API server; stops when dropped.
pub struct FakeKube {
    inner: Arc<Inner>,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ca_pem: Option<String>,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

fn token() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("fake-kube-token-{}-{nanos:x}", std::process::id())
}

impl FakeKube {
    /// Starts the server (plain HTTP) on a random loopback port and writes
    /// its kubeconfig.
    pub async fn start() -> FakeKube {
        FakeKube::launch(None).await
    }

    /// Starts the server over HTTPS with a certificate for 127.0.0.1 from
    /// a CA of its own, whose PEM the kubeconfig carries as
    /// certificate-authority-data (as a real cluster's kubeconfig does).
    pub async fn start_tls() -> FakeKube {
        FakeKube::launch(Some(super::certs::TestCa::new("Fake Kubernetes API CA"))).await
    }

    async fn launch(ca: Option<super::certs::TestCa>) -> FakeKube {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Kubernetes API");
        let addr = listener.local_addr().expect("local address");
        let tls = ca.as_ref().map(|ca| {
            let identity = ca.issue(
                &["127.0.0.1", "localhost"],
                super::certs::Validity::ValidFor { days: 30 },
            );
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(identity.chain.clone(), identity.key())
            .expect("the fake API's certificate");
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let ca_pem = ca.as_ref().map(|ca| ca.pem());
        let (drops, _) = watch::channel(0);
        let (notes, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(DEFAULT_USER)),
            notes,
            drops,
            token: token(),
            server_address: addr.to_string(),
            open_watches: AtomicUsize::new(0),
            held: watch::channel(false).0,
        });
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(addr, &inner.token, ca_pem.as_deref()),
        )
        .expect("write the kubeconfig");
        let task = tokio::spawn(server::serve(listener, inner.clone(), tls.clone()));
        let fake = FakeKube {
            inner,
            addr,
            tls,
            ca_pem,
            _dir: dir,
            kubeconfig,
            task: Mutex::new(Some(task)),
        };
        fake.apply(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "default"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        }));
        fake
    }

    /// The PEM of the CA that signed the server certificate (HTTPS only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` after [`FakeKube::start_tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The bearer token the kubeconfig carries (a secret: never print it).
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// A kubeconfig file (context `fake`, cluster `fake`, user `vouch`,
    /// namespace `default`) for `KUBECONFIG` or `--kubeconfig`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The kubeconfig's text.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(self.addr, &self.inner.token, self.ca_pem.as_deref())
    }

    /// A `kube::Client` built from the kubeconfig, as a program would.
    pub async fn client(&self) -> kube::Client {
        // kube-client builds a rustls connector even for http:// servers.
        vouch::clients::tls_configs::install_default_provider();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("a kube config from the kubeconfig");
        kube::Client::try_from(config).expect("a kube client")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap()
    }

    // ---- types -------------------------------------------------------

    /// Serves a custom resource type from now on (and stores its
    /// CustomResourceDefinition object), with a status subresource.
    pub fn install_crd(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) {
        let resource_type = ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
            status: true,
            generation: true,
            short_names: Vec::new(),
            builtin: false,
        };
        {
            let mut state = self.state();
            if !state.types.contains(&resource_type) {
                state.types.push(resource_type);
            }
        }
        self.apply(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group,
                "names": {
                    "kind": kind,
                    "listKind": format!("{kind}List"),
                    "plural": plural,
                    "singular": kind.to_lowercase(),
                },
                "scope": if namespaced { "Namespaced" } else { "Cluster" },
                "versions": [{
                    "name": version,
                    "served": true,
                    "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                    "subresources": {"status": {}},
                }],
            },
            "status": {
                "acceptedNames": {"kind": kind, "plural": plural},
                "conditions": [
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
                ],
                "storedVersions": [version],
            },
        }));
    }

    /// Stops serving a custom resource type: its objects and CRD go away,
    /// open watches on it end, and its paths answer 404.
    pub fn uninstall_crd(&self, group: &str, plural: &str) {
        {
            let mut state = self.state();
            let notes = self.inner.notes.clone();
            let type_key = (group.to_string(), plural.to_string());
            let keys: Vec<_> = state
                .objects
                .get(&type_key)
                .map(|objects| objects.keys().cloned().collect())
                .unwrap_or_default();
            for key in keys {
                state.delete(&type_key, &key, &notes);
            }
            state
                .types
                .retain(|t| !(t.group == group && t.plural == plural));
        }
        self.delete(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            &format!("{plural}.{group}"),
        );
        self.drop_watches();
    }

    /// cert-manager.io/v1 Certificate, Issuer (namespaced), ClusterIssuer.
    pub fn install_cert_manager(&self) {
        self.install_crd("cert-manager.io", "v1", "Certificate", "certificates", true);
        self.install_crd("cert-manager.io", "v1", "Issuer", "issuers", true);
        self.install_crd(
            "cert-manager.io",
            "v1",
            "ClusterIssuer",
            "clusterissuers",
            false,
        );
    }

    /// external-secrets.io/v1 ExternalSecret, SecretStore, ClusterSecretStore.
    pub fn install_external_secrets(&self) {
        self.install_crd(
            "external-secrets.io",
            "v1",
            "ExternalSecret",
            "externalsecrets",
            true,
        );
        self.install_crd(
            "external-secrets.io",
            "v1",
            "SecretStore",
            "secretstores",
            true,
        );
        self.install_crd(
            "external-secrets.io",
            "v1",
            "ClusterSecretStore",
            "clustersecretstores",
            false,
        );
    }

    /// snapshot.storage.k8s.io/v1 VolumeSnapshot.
    pub fn install_volume_snapshots(&self) {
        self.install_crd(
            "snapshot.storage.k8s.io",
            "v1",
            "VolumeSnapshot",
            "volumesnapshots",
            true,
        );
    }

    /// monitoring.coreos.com/v1 ServiceMonitor, PrometheusRule.
    pub fn install_prometheus_operator(&self) {
        self.install_crd(
            "monitoring.coreos.com",
            "v1",
            "ServiceMonitor",
            "servicemonitors",
            true,
        );
        self.install_crd(
            "monitoring.coreos.com",
            "v1",
            "PrometheusRule",
            "prometheusrules",
            true,
        );
    }

    /// The types served now.
    pub fn resource_types(&self) -> Vec<ResourceType> {
        self.state().types.clone()
    }

    // ---- objects -----------------------------------------------------

    /// Creates or replaces an object given as JSON (apiVersion, kind,
    /// metadata.name, metadata.namespace for namespaced types — `default`
    /// when missing). Returns the stored object. Panics if its type is not
    /// served.
    pub fn apply(&self, object: Value) -> Value {
        let notes = self.inner.notes.clone();
        self.state()
            .put(object, &notes)
            .unwrap_or_else(|e| panic!("fake Kubernetes API: {e}"))
    }

    /// As [`FakeKube::apply`], with what the API server recorded of the
    /// object's writes given by the test (the fake writes no managedFields
    /// of its own, and stamps creation with the present): a past
    /// creationTimestamp and managedFields entries such as
    /// [`objects::managed_fields_entry`] builds.
    pub fn apply_recorded(&self, object: Value, recorded: Recorded) -> Value {
        let notes = self.inner.notes.clone();
        self.state()
            .put_recorded(object, Some(&recorded), &notes)
            .unwrap_or_else(|e| panic!("fake Kubernetes API: {e}"))
    }

    /// Creates or replaces a k8s-openapi object (or any serializable one
    /// carrying apiVersion and kind).
    pub fn apply_resource<K: serde::Serialize>(&self, object: &K) -> Value {
        self.apply(serde_json::to_value(object).expect("serialize the object"))
    }

    /// The stored object, if any.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let state = self.state();
        let resource_type = state.type_of_kind(api_version, kind)?;
        let key = (namespace.unwrap_or_default().to_string(), name.to_string());
        state.get(&resource_type.key(), &key).cloned()
    }

    /// Applies a JSON merge patch (RFC 7386) to a stored object. Panics if
    /// the object does not exist.
    pub fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        merge_patch: Value,
    ) -> Value {
        let mut object = self
            .get(api_version, kind, namespace, name)
            .unwrap_or_else(|| {
                panic!("fake Kubernetes API: no {kind} {namespace:?}/{name} to patch")
            });
        store::merge_patch(&mut object, &merge_patch);
        self.apply(object)
    }

    /// Merges `status_patch` into the object's `status`.
    pub fn patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status_patch: Value,
    ) -> Value {
        self.patch(
            api_version,
            kind,
            namespace,
            name,
            json!({"status": status_patch}),
        )
    }

    /// Deletes an object; false if there was none.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let notes = self.inner.notes.clone();
        let mut state = self.state();
        let Some(resource_type) = state.type_of_kind(api_version, kind) else {
            return false;
        };
        let key = (namespace.unwrap_or_default().to_string(), name.to_string());
        state.delete(&resource_type.key(), &key, &notes).is_some()
    }

    /// The newest resourceVersion (etcd's revision).
    pub fn resource_version(&self) -> u64 {
        self.state().rv
    }

    // ---- RBAC --------------------------------------------------------

    /// `None`: everything allowed (the default). `Some(rules)`: only what
    /// the rules grant, everything else 403.
    pub fn set_rules(&self, rules: Option<Vec<Rule>>) {
        self.state().rules = rules;
    }

    /// Adds rules (starting from nothing allowed if no rules were set).
    pub fn add_rules(&self, rules: Vec<Rule>) {
        self.state()
            .rules
            .get_or_insert_with(Vec::new)
            .extend(rules);
    }

    /// Grants what the manifests (Roles, ClusterRoles and their bindings)
    /// grant the current user; replaces earlier rules.
    pub fn set_rules_from_manifests(&self, yaml: &str, default_namespace: &str) {
        let user = self.user();
        self.set_rules(Some(rules_bound_to(yaml, default_namespace, &user)));
    }

    /// The user RBAC decisions and messages name.
    pub fn user(&self) -> String {
        self.state().user.clone()
    }

    pub fn set_user(&self, user: &str) {
        self.state().user = user.to_string();
    }

    // ---- faults ------------------------------------------------------

    /// Breaks every open watch connection mid-stream (the client sees the
    /// body end without its final chunk).
    pub fn drop_watches(&self) {
        self.inner.drops.send_modify(|generation| *generation += 1);
    }

    /// Forgets the change history: resuming a watch from any
    /// resourceVersion seen so far gets an ERROR event with 410 Expired, a
    /// continue token of an earlier list gets 410.
    pub fn compact(&self) {
        self.state().compact();
    }

    /// Keeps at most `changes` changes of history (default 10 000); older
    /// resourceVersions become too old.
    pub fn set_history_limit(&self, changes: usize) {
        let mut state = self.state();
        state.history_limit = changes.max(1);
        while state.history.len() > state.history_limit {
            if let Some(dropped) = state.history.pop_front() {
                state.compacted = state.compacted.max(dropped.rv);
            }
        }
    }

    /// Every request on `plural` (`"*"`: on any resource; discovery is
    /// spared) answers a failure Status with `code`, shaped as the real
    /// server's: 429 TooManyRequests (with Retry-After), 500 InternalError,
    /// 503 ServiceUnavailable, 504 Timeout. Until [`FakeKube::clear_failures`].
    pub fn fail_requests(&self, plural: &str, code: u16) {
        self.state().failures.insert(plural.to_string(), code);
    }

    pub fn clear_failures(&self) {
        self.state().failures.clear();
    }

    /// Every answer waits this long first (zero: no delay; a very long one
    /// stands for a hanging API server).
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    /// Every answer from now on waits until [`FakeKube::release`].
    pub fn hold(&self) {
        self.inner.held.send_replace(true);
    }

    /// Lets the held answers (and every later one) go.
    pub fn release(&self) {
        self.inner.held.send_replace(false);
    }

    /// Sends a BOOKMARK now on every watch that allowed bookmarks.
    pub fn send_bookmarks(&self) {
        let _ = self.inner.notes.send(Note::Bookmark);
    }

    /// How often watches get a BOOKMARK (default 1 s); applies to watches
    /// opened after the call.
    pub fn set_bookmark_interval(&self, every: Duration) {
        self.state().bookmark_interval = every;
    }

    /// Stops listening and closes every connection (the API is down);
    /// the state is kept.
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port with the same state.
    pub async fn restart(&self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind the fake Kubernetes API's port again");
        let task = tokio::spawn(server::serve(
            listener,
            self.inner.clone(),
            self.tls.clone(),
        ));
        *self.task.lock().unwrap() = Some(task);
    }

    // ---- observation ---------------------------------------------------

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<KubeRequest> {
        self.state().requests.clone()
    }

    /// Requests with this verb (`list`, `watch`, `get`, `discovery`) on
    /// this resource plural in exactly this namespace (`None`: requests
    /// across all namespaces, or on cluster-scoped resources).
    pub fn count(&self, verb: &str, plural: &str, namespace: Option<&str>) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.verb == verb && r.plural == plural && r.namespace.as_deref() == namespace)
            .count()
    }

    /// Requests with this verb on this plural, whatever the namespace.
    pub fn count_any_namespace(&self, verb: &str, plural: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.verb == verb && r.plural == plural)
            .count()
    }

    /// All requests answered so far.
    pub fn total_requests(&self) -> usize {
        self.state().requests.len()
    }

    /// Forgets the request log.
    pub fn reset_requests(&self) {
        self.state().requests.clear();
    }

    /// Watch streams open right now.
    pub fn open_watches(&self) -> usize {
        self.inner
            .open_watches
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn kubeconfig_yaml(addr: SocketAddr, token: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine;
    let cluster = match ca_pem {
        None => format!("server: http://{addr}"),
        Some(pem) => format!(
            "server: https://{addr}\n      certificate-authority-data: {}",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      {cluster}
contexts:
  - name: fake
    context:
      cluster: fake
      user: vouch
      namespace: default
current-context: fake
users:
  - name: vouch
    user:
      token: {token}
preferences: {{}}
"
    )
}
