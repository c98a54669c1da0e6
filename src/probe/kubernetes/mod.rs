//! The `kubernetes` check kind: one target per check, read from the shared
//! watch cache ([`crate::kube`]), evaluated by pure functions over
//! k8s-openapi types (built-in resources) or JSON (custom resources).
//!
//! Targets: `deployment`, `statefulset`, `daemonset`, `hpa`, `pods`,
//! `service_endpoints`, `ingress`, `namespace`, `configmap`, `secret`,
//! `events`, `rollback`, `certificate`, `issuer`, `cluster_issuer`,
//! `external_secret`, `secret_store`, `cluster_secret_store`,
//! `volume_snapshots`, `service_monitor`, `prometheus_rule`.

mod custom;
mod events;
mod objects;
mod pods;
mod selector;
mod workload;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;

use super::{BuildContext, Needs, Probe, ProbeContext};
use crate::config::{HumanDuration, Problem};
use crate::kube::resource::{self as res, ResourceType};
use crate::kube::{KubeError, Lease, Snapshot, WatchKey};
use crate::lock::lock;
use crate::result::Outcome;

pub use selector::Selector;

/// Window of `restart_window` and `events.window` unless given.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The `kubernetes` block of a check: exactly one target, plus the
/// options that target takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// `namespace/name` of a Deployment: rollout complete (as `kubectl
    /// rollout status` decides), observed generation caught up, replicas.
    pub deployment: Option<String>,
    /// `namespace/name` of a StatefulSet (as `deployment`).
    pub statefulset: Option<String>,
    /// `namespace/name` of a DaemonSet (as `deployment`).
    pub daemonset: Option<String>,
    /// `namespace/name` of a HorizontalPodAutoscaler: current replicas at
    /// least its minimum, and not pinned at its maximum.
    pub hpa: Option<String>,
    /// Pods of a selector or a workload: none crash-looping, failing to
    /// pull or to start, all Ready, few restarts within a window.
    pub pods: Option<PodsConfig>,
    /// `namespace/name` of a Service: ready endpoints over its
    /// EndpointSlices.
    pub service_endpoints: Option<String>,
    /// `namespace/name` of an Ingress: it has a load-balancer address.
    pub ingress: Option<String>,
    /// Name of a Namespace: it exists and is Active.
    pub namespace: Option<String>,
    /// `namespace/name` of a ConfigMap: it exists, with `keys` and `values`.
    pub configmap: Option<String>,
    /// `namespace/name` of a Secret: it exists (read from metadata only),
    /// with `keys` if given (key names only; values are never kept).
    pub secret: Option<String>,
    /// Warning events in a namespace within a window.
    pub events: Option<EventsConfig>,
    /// Retained revisions of a Deployment, for a rollback.
    pub rollback: Option<RollbackConfig>,
    /// `namespace/name` of a cert-manager Certificate: Ready, and valid
    /// for at least `min_valid_for`.
    pub certificate: Option<String>,
    /// `namespace/name` of a cert-manager Issuer: Ready.
    pub issuer: Option<String>,
    /// Name of a cert-manager ClusterIssuer: Ready.
    pub cluster_issuer: Option<String>,
    /// `namespace/name` of an External Secrets ExternalSecret: Ready
    /// (SecretSynced), refreshed recently enough.
    pub external_secret: Option<String>,
    /// `namespace/name` of an External Secrets SecretStore: Ready.
    pub secret_store: Option<String>,
    /// Name of an External Secrets ClusterSecretStore: Ready.
    pub cluster_secret_store: Option<String>,
    /// VolumeSnapshots of a namespace (or of one PVC): the newest ready
    /// one per PVC is younger than `max_age`.
    pub volume_snapshots: Option<SnapshotsConfig>,
    /// `namespace/name` of a Prometheus Operator ServiceMonitor: present.
    pub service_monitor: Option<String>,
    /// `namespace/name` of a Prometheus Operator PrometheusRule: present.
    pub prometheus_rule: Option<String>,

    /// Workloads: fewest ready replicas (default: no floor beyond the
    /// rollout). service_endpoints: fewest ready endpoints (default 1).
    pub min_ready: Option<u32>,
    /// configmap, secret: keys that must be present.
    #[serde(default)]
    pub keys: Vec<String>,
    /// configmap: expected values of non-secret settings.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// hpa: whether running at maxReplicas fails the check (default true;
    /// give the check `severity: warning` to make it a warning).
    pub fail_at_max: Option<bool>,
    /// certificate: shortest remaining validity (e.g. `30d`).
    pub min_valid_for: Option<HumanDuration>,
    /// external_secret: longest since the last refresh (default: twice
    /// its spec.refreshInterval; not judged when that is 0).
    pub max_sync_age: Option<HumanDuration>,
}

/// Which pods the `pods` target selects, and what they must look like.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodsConfig {
    /// Namespace of the pods (with `selector`).
    pub namespace: Option<String>,
    /// Label selector (`app=api,tier!=batch,env in (prod,staging),canary`).
    pub selector: Option<String>,
    /// `namespace/name`: the pods of this Deployment's selector.
    pub deployment: Option<String>,
    /// `namespace/name`: the pods of this StatefulSet's selector.
    pub statefulset: Option<String>,
    /// `namespace/name`: the pods of this DaemonSet's selector.
    pub daemonset: Option<String>,
    /// Most container restarts within `restart_window` (over all selected
    /// pods). Not judged unless given.
    pub max_restarts: Option<u32>,
    /// The window restarts count in (default 15m).
    pub restart_window: Option<HumanDuration>,
    /// Fewest pods that must match (default 1).
    pub min_pods: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub namespace: String,
    /// Most Warning events (distinct event objects) within the window
    /// (default 0).
    #[serde(default)]
    pub max_warnings: u32,
    /// How far back events count, by their last occurrence (default 15m).
    pub window: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// `namespace/name` of the Deployment.
    pub deployment: String,
    /// Fewest revisions retained, the current one included (default 2).
    pub min_revisions: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsConfig {
    pub namespace: String,
    /// Only snapshots of this PersistentVolumeClaim (it must have one).
    pub pvc: Option<String>,
    /// Oldest the newest ready snapshot of each PVC may be (e.g. `7d`).
    pub max_age: HumanDuration,
}

/// `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn valid_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

pub(crate) fn parse_ref(text: &str, key: &str, problems: &mut Vec<Problem>) -> Option<ObjectRef> {
    match text.split_once('/') {
        Some((ns, name)) if valid_name(ns) && valid_name(name) => Some(ObjectRef {
            namespace: ns.to_string(),
            name: name.to_string(),
        }),
        _ => {
            problems.push(Problem::new(
                key,
                format!("expected namespace/name in lower case (e.g. prod/api), got {text:?}"),
            ));
            None
        }
    }
}

fn parse_name(text: &str, key: &str, problems: &mut Vec<Problem>) -> Option<String> {
    if valid_name(text) {
        Some(text.to_string())
    } else {
        problems.push(Problem::new(
            key,
            format!("expected a name in lower case (e.g. prod), got {text:?}"),
        ));
        None
    }
}

/// The workload kinds with a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    fn resource(self) -> ResourceType {
        match self {
            WorkloadKind::Deployment => res::DEPLOYMENTS,
            WorkloadKind::StatefulSet => res::STATEFULSETS,
            WorkloadKind::DaemonSet => res::DAEMONSETS,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// Where the `pods` target gets its selector.
#[derive(Debug)]
enum PodSource {
    Selector(Selector),
    Workload(WorkloadKind, ObjectRef),
}

/// A validated target.
#[derive(Debug)]
enum Target {
    Workload(WorkloadKind, ObjectRef, Option<u32>),
    Hpa(ObjectRef, bool),
    Pods {
        namespace: String,
        source: PodSource,
        rules: pods::PodRules,
    },
    ServiceEndpoints(ObjectRef, u32),
    Ingress(ObjectRef),
    Namespace(String),
    ConfigMap(ObjectRef, Vec<String>, BTreeMap<String, String>),
    Secret(ObjectRef, Vec<String>),
    Events {
        namespace: String,
        max_warnings: u32,
        window: Duration,
    },
    Rollback(ObjectRef, u32),
    Certificate(ObjectRef, Option<Duration>),
    /// An object whose Ready condition must be True (issuers, stores).
    Ready(ResourceType, Option<String>, String),
    ExternalSecret(ObjectRef, Option<Duration>),
    Snapshots {
        namespace: String,
        pvc: Option<String>,
        max_age: Duration,
    },
    /// An object that must exist.
    Present(ResourceType, ObjectRef),
}

/// A compiled `kubernetes` check.
pub struct KubernetesProbe {
    target: Target,
    /// One per watch the target reads, in the order `evaluate` expects.
    leases: Vec<Lease>,
    /// How long a run waits for a watch's first sync.
    sync_wait: Duration,
    /// Restart counts seen by earlier runs (pods only).
    restarts: Mutex<pods::RestartHistory>,
}

impl std::fmt::Debug for KubernetesProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesProbe")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

const OPTION_USERS: &[(&str, &[&str])] = &[
    (
        "min_ready",
        &[
            "deployment",
            "statefulset",
            "daemonset",
            "service_endpoints",
        ],
    ),
    ("keys", &["configmap", "secret"]),
    ("values", &["configmap"]),
    ("fail_at_max", &["hpa"]),
    ("min_valid_for", &["certificate"]),
    ("max_sync_age", &["external_secret"]),
];

impl KubernetesProbe {
    pub fn build(config: &KubernetesConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let c = config;
        let target_name = target_name(c)?;
        check_options(c, target_name, &mut problems);
        let target = parse_target(c, target_name, &mut problems);
        if c.min_valid_for.is_some_and(|d| d.0.is_zero()) {
            problems.push(Problem::new("min_valid_for", "must be longer than 0s"));
        }
        let (Some(target), true) = (target, problems.is_empty()) else {
            return Err(problems);
        };
        let timeout = ctx.timeout;
        let leases = watch_keys(&target).into_iter().map(Lease::new).collect();
        Ok(KubernetesProbe {
            target,
            leases,
            // Leave the rest of the timeout for reading and judging, so a
            // slow first sync is `not_synced`, not `timeout`.
            sync_wait: timeout.mul_f64(0.8),
            restarts: Mutex::new(pods::RestartHistory::default()),
        })
    }
}

/// The one target key the check gives.
fn target_name(c: &KubernetesConfig) -> Result<&'static str, Vec<Problem>> {
    let given: Vec<&'static str> = [
        ("deployment", c.deployment.is_some()),
        ("statefulset", c.statefulset.is_some()),
        ("daemonset", c.daemonset.is_some()),
        ("hpa", c.hpa.is_some()),
        ("pods", c.pods.is_some()),
        ("service_endpoints", c.service_endpoints.is_some()),
        ("ingress", c.ingress.is_some()),
        ("namespace", c.namespace.is_some()),
        ("configmap", c.configmap.is_some()),
        ("secret", c.secret.is_some()),
        ("events", c.events.is_some()),
        ("rollback", c.rollback.is_some()),
        ("certificate", c.certificate.is_some()),
        ("issuer", c.issuer.is_some()),
        ("cluster_issuer", c.cluster_issuer.is_some()),
        ("external_secret", c.external_secret.is_some()),
        ("secret_store", c.secret_store.is_some()),
        ("cluster_secret_store", c.cluster_secret_store.is_some()),
        ("volume_snapshots", c.volume_snapshots.is_some()),
        ("service_monitor", c.service_monitor.is_some()),
        ("prometheus_rule", c.prometheus_rule.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    match given.as_slice() {
        [one] => Ok(*one),
        [] => Err(vec![Problem::new(
            "",
            "no target given (one of: deployment, statefulset, daemonset, hpa, pods, service_endpoints, ingress, namespace, configmap, secret, events, rollback, certificate, issuer, cluster_issuer, external_secret, secret_store, cluster_secret_store, volume_snapshots, service_monitor, prometheus_rule)",
        )]),
        many => Err(vec![Problem::new(
            "",
            format!(
                "more than one target given ({}); a check has exactly one",
                many.join(", ")
            ),
        )]),
    }
}

/// Options given for a target that does not read them, and empty key names.
fn check_options(c: &KubernetesConfig, target_name: &str, problems: &mut Vec<Problem>) {
    let option_given = |option: &str| match option {
        "min_ready" => c.min_ready.is_some(),
        "keys" => !c.keys.is_empty(),
        "values" => !c.values.is_empty(),
        "fail_at_max" => c.fail_at_max.is_some(),
        "min_valid_for" => c.min_valid_for.is_some(),
        "max_sync_age" => c.max_sync_age.is_some(),
        _ => false,
    };
    for (option, users) in OPTION_USERS {
        if option_given(option) && !users.contains(&target_name) {
            problems.push(Problem::new(
                *option,
                format!("only with {}, not {target_name}", one_of(users)),
            ));
        }
    }
    for key in &c.keys {
        if key.is_empty() {
            problems.push(Problem::new("keys", "key names must not be empty"));
        }
    }
}

/// The target named `target_name`, with its options.
fn parse_target(
    c: &KubernetesConfig,
    target_name: &str,
    problems: &mut Vec<Problem>,
) -> Option<Target> {
    let r = |text: &Option<String>, key: &str, problems: &mut Vec<Problem>| {
        text.as_deref().and_then(|t| parse_ref(t, key, problems))
    };
    match target_name {
        "deployment" | "statefulset" | "daemonset" => {
            let (kind, text) = match target_name {
                "deployment" => (WorkloadKind::Deployment, &c.deployment),
                "statefulset" => (WorkloadKind::StatefulSet, &c.statefulset),
                _ => (WorkloadKind::DaemonSet, &c.daemonset),
            };
            r(text, target_name, problems).map(|o| Target::Workload(kind, o, c.min_ready))
        }
        "hpa" => r(&c.hpa, "hpa", problems).map(|o| Target::Hpa(o, c.fail_at_max.unwrap_or(true))),
        "pods" => pods_target(c.pods.as_ref().expect("given"), problems),
        "service_endpoints" => r(&c.service_endpoints, target_name, problems)
            .map(|o| Target::ServiceEndpoints(o, c.min_ready.unwrap_or(1))),
        "ingress" => r(&c.ingress, target_name, problems).map(Target::Ingress),
        "namespace" => c
            .namespace
            .as_deref()
            .and_then(|n| parse_name(n, "namespace", problems))
            .map(Target::Namespace),
        "configmap" => r(&c.configmap, target_name, problems)
            .map(|o| Target::ConfigMap(o, c.keys.clone(), c.values.clone())),
        "secret" => r(&c.secret, target_name, problems).map(|o| Target::Secret(o, c.keys.clone())),
        "events" => events_target(c.events.as_ref().expect("given"), problems),
        "rollback" => rollback_target(c.rollback.as_ref().expect("given"), problems),
        "certificate" => r(&c.certificate, target_name, problems)
            .map(|o| Target::Certificate(o, c.min_valid_for.map(|d| d.0))),
        "issuer" => r(&c.issuer, target_name, problems)
            .map(|o| Target::Ready(res::ISSUERS, Some(o.namespace), o.name)),
        "cluster_issuer" => c
            .cluster_issuer
            .as_deref()
            .and_then(|n| parse_name(n, target_name, problems))
            .map(|n| Target::Ready(res::CLUSTER_ISSUERS, None, n)),
        "external_secret" => r(&c.external_secret, target_name, problems)
            .map(|o| Target::ExternalSecret(o, c.max_sync_age.map(|d| d.0))),
        "secret_store" => r(&c.secret_store, target_name, problems)
            .map(|o| Target::Ready(res::SECRET_STORES, Some(o.namespace), o.name)),
        "cluster_secret_store" => c
            .cluster_secret_store
            .as_deref()
            .and_then(|n| parse_name(n, target_name, problems))
            .map(|n| Target::Ready(res::CLUSTER_SECRET_STORES, None, n)),
        "volume_snapshots" => {
            snapshots_target(c.volume_snapshots.as_ref().expect("given"), problems)
        }
        "service_monitor" => r(&c.service_monitor, target_name, problems)
            .map(|o| Target::Present(res::SERVICE_MONITORS, o)),
        _ => r(&c.prometheus_rule, target_name, problems)
            .map(|o| Target::Present(res::PROMETHEUS_RULES, o)),
    }
}

fn events_target(events: &EventsConfig, problems: &mut Vec<Problem>) -> Option<Target> {
    parse_name(&events.namespace, "events.namespace", problems).map(|namespace| Target::Events {
        namespace,
        max_warnings: events.max_warnings,
        window: window(events.window, "events.window", problems),
    })
}

fn rollback_target(rollback: &RollbackConfig, problems: &mut Vec<Problem>) -> Option<Target> {
    if rollback.min_revisions == Some(0) {
        problems.push(Problem::new("rollback.min_revisions", "must be at least 1"));
    }
    parse_ref(&rollback.deployment, "rollback.deployment", problems)
        .map(|o| Target::Rollback(o, rollback.min_revisions.unwrap_or(2)))
}

fn snapshots_target(snapshots: &SnapshotsConfig, problems: &mut Vec<Problem>) -> Option<Target> {
    if snapshots.max_age.0.is_zero() {
        problems.push(Problem::new(
            "volume_snapshots.max_age",
            "must be longer than 0s",
        ));
    }
    let pvc = snapshots
        .pvc
        .as_deref()
        .map(|p| parse_name(p, "volume_snapshots.pvc", problems));
    parse_name(&snapshots.namespace, "volume_snapshots.namespace", problems).map(|namespace| {
        Target::Snapshots {
            namespace,
            pvc: pvc.flatten(),
            max_age: snapshots.max_age.0,
        }
    })
}

/// `a, b or c`.
fn one_of(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn window(given: Option<HumanDuration>, key: &str, problems: &mut Vec<Problem>) -> Duration {
    match given {
        Some(d) if d.0.is_zero() => {
            problems.push(Problem::new(key, "must be longer than 0s"));
            DEFAULT_WINDOW
        }
        Some(d) => d.0,
        None => DEFAULT_WINDOW,
    }
}

fn pods_target(config: &PodsConfig, problems: &mut Vec<Problem>) -> Option<Target> {
    let workloads: Vec<(WorkloadKind, &str, &String)> = [
        (
            WorkloadKind::Deployment,
            "pods.deployment",
            &config.deployment,
        ),
        (
            WorkloadKind::StatefulSet,
            "pods.statefulset",
            &config.statefulset,
        ),
        (WorkloadKind::DaemonSet, "pods.daemonset", &config.daemonset),
    ]
    .into_iter()
    .filter_map(|(kind, key, value)| value.as_ref().map(|v| (kind, key, v)))
    .collect();
    let rules = pods::PodRules {
        max_restarts: config.max_restarts,
        window: window(config.restart_window, "pods.restart_window", problems),
        min_pods: config.min_pods.unwrap_or(1),
    };
    if config.restart_window.is_some() && config.max_restarts.is_none() {
        problems.push(Problem::new(
            "pods.restart_window",
            "only with max_restarts",
        ));
    }
    match (workloads.as_slice(), &config.selector) {
        ([], Some(selector)) => {
            let Some(namespace) = config.namespace.as_deref() else {
                problems.push(Problem::new(
                    "pods",
                    "a selector needs a namespace (pods: { namespace: prod, selector: app=api })",
                ));
                return None;
            };
            let namespace = parse_name(namespace, "pods.namespace", problems)?;
            match Selector::parse(selector) {
                Ok(selector) => Some(Target::Pods {
                    namespace,
                    source: PodSource::Selector(selector),
                    rules,
                }),
                Err(message) => {
                    problems.push(Problem::new("pods.selector", message));
                    None
                }
            }
        }
        ([(kind, key, text)], None) => {
            if config.namespace.is_some() {
                problems.push(Problem::new(
                    "pods.namespace",
                    "not with a workload: its namespace/name gives the namespace",
                ));
            }
            let object = parse_ref(text, key, problems)?;
            Some(Target::Pods {
                namespace: object.namespace.clone(),
                source: PodSource::Workload(*kind, object),
                rules,
            })
        }
        _ => {
            problems.push(Problem::new(
                "pods",
                "give exactly one of selector (with namespace), deployment, statefulset or daemonset",
            ));
            None
        }
    }
}

/// The watches a target reads, in the order its evaluation takes them.
fn watch_keys(target: &Target) -> Vec<WatchKey> {
    let ns = |o: &ObjectRef| Some(o.namespace.clone());
    let key = |resource, namespace: Option<String>| WatchKey::new(resource, namespace.as_deref());
    match target {
        Target::Workload(kind, o, _) => vec![key(kind.resource(), ns(o))],
        Target::Hpa(o, _) => vec![key(res::HPAS, ns(o))],
        Target::Pods {
            namespace, source, ..
        } => {
            let mut keys = vec![key(res::PODS, Some(namespace.clone()))];
            if let PodSource::Workload(kind, _) = source {
                keys.push(key(kind.resource(), Some(namespace.clone())));
            }
            keys
        }
        Target::ServiceEndpoints(o, _) => vec![key(res::ENDPOINT_SLICES, ns(o))],
        Target::Ingress(o) => vec![key(res::INGRESSES, ns(o))],
        Target::Namespace(_) => vec![key(res::NAMESPACES, None)],
        Target::ConfigMap(o, _, _) => vec![key(res::CONFIGMAPS, ns(o))],
        // Presence needs metadata only; key names need the object, whose
        // values the cache blanks as they arrive.
        Target::Secret(o, keys) if keys.is_empty() => {
            vec![WatchKey::metadata(res::SECRETS, Some(&o.namespace))]
        }
        Target::Secret(o, _) => vec![key(res::SECRETS, ns(o))],
        Target::Events { namespace, .. } => vec![key(res::EVENTS, Some(namespace.clone()))],
        Target::Rollback(o, _) => vec![key(res::DEPLOYMENTS, ns(o)), key(res::REPLICASETS, ns(o))],
        Target::Certificate(o, _) => vec![key(res::CERTIFICATES, ns(o))],
        Target::Ready(resource, namespace, _) => vec![key(*resource, namespace.clone())],
        Target::ExternalSecret(o, _) => vec![key(res::EXTERNAL_SECRETS, ns(o))],
        Target::Snapshots { namespace, .. } => {
            vec![key(res::VOLUME_SNAPSHOTS, Some(namespace.clone()))]
        }
        Target::Present(resource, o) => {
            vec![WatchKey::metadata(*resource, Some(&o.namespace))]
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A measured span, floored to its largest unit (`59d`, `3h`, `10m`,
/// `42s`): a message needs the order of magnitude, not the second.
pub(crate) fn age_text(seconds: f64) -> String {
    let seconds = seconds.max(0.0) as u64;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds >= size {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// `Time` as seconds since the Unix epoch.
pub(crate) fn unix_of(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> f64 {
    time.0.as_millisecond() as f64 / 1000.0
}

impl KubernetesProbe {
    async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        ctx.progress.set("reading the watch cache");
        let mut snapshots = Vec::with_capacity(self.leases.len());
        for lease in &self.leases {
            match lease.read(&ctx.clients.kube, self.sync_wait).await {
                Ok(snapshot) => snapshots.push(snapshot),
                Err(err) => return error_outcome(&err),
            }
        }
        ctx.progress.set("evaluating");
        let mut history = lock(&self.restarts);
        evaluate(&self.target, &snapshots, unix_now(), &mut history)
    }
}

fn error_outcome(err: &KubeError) -> Outcome {
    Outcome::error(err.reason(), err.to_string())
}

/// Judges `target` against the snapshots of its watches at time `now`.
fn evaluate(
    target: &Target,
    snapshots: &[Snapshot],
    now: f64,
    history: &mut pods::RestartHistory,
) -> Outcome {
    let first = &snapshots[0];
    match target {
        Target::Workload(kind, o, min_ready) => workload::evaluate(*kind, first, o, *min_ready),
        Target::Hpa(o, fail_at_max) => workload::evaluate_hpa(first, o, *fail_at_max),
        Target::Pods {
            namespace,
            source,
            rules,
        } => {
            let selector = match source {
                PodSource::Selector(selector) => selector.clone(),
                PodSource::Workload(kind, o) => {
                    match workload::selector_of(*kind, &snapshots[1], o) {
                        Ok(selector) => selector,
                        Err(outcome) => return outcome,
                    }
                }
            };
            pods::evaluate(first, namespace, &selector, rules, now, history)
        }
        Target::ServiceEndpoints(o, min_ready) => objects::evaluate_endpoints(first, o, *min_ready),
        Target::Ingress(o) => objects::evaluate_ingress(first, o),
        Target::Namespace(name) => objects::evaluate_namespace(first, name),
        Target::ConfigMap(o, keys, values) => objects::evaluate_configmap(first, o, keys, values),
        Target::Secret(o, keys) => objects::evaluate_secret(first, o, keys),
        Target::Events {
            namespace,
            max_warnings,
            window,
        } => events::evaluate(first, namespace, *max_warnings, *window, now),
        Target::Rollback(o, min_revisions) => {
            workload::evaluate_rollback(first, &snapshots[1], o, *min_revisions)
        }
        Target::Certificate(o, min_valid_for) => {
            custom::evaluate_certificate(first, o, *min_valid_for, now)
        }
        Target::Ready(resource, namespace, name) => {
            custom::evaluate_ready(first, resource, namespace.as_deref(), name)
        }
        Target::ExternalSecret(o, max_age) => {
            custom::evaluate_external_secret(first, o, *max_age, now)
        }
        Target::Snapshots {
            namespace,
            pvc,
            max_age,
        } => custom::evaluate_snapshots(first, namespace, pvc.as_deref(), *max_age, now),
        Target::Present(resource, o) => custom::evaluate_present(first, resource, o),
    }
}

impl Probe for KubernetesProbe {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        self.execute(ctx).boxed()
    }

    fn needs(&self) -> Needs {
        Needs {
            watches: self.leases.iter().map(|l| l.key().clone()).collect(),
            warnings: Vec::new(),
        }
    }
}

/// Test helpers: snapshots built from JSON objects.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use kube::api::DynamicObject;

    use crate::kube::resource::ResourceType;
    use crate::kube::{Objects, Snapshot};

    pub fn snapshot(resource: ResourceType, objects: Vec<serde_json::Value>) -> Snapshot {
        let mut map = Objects::new();
        for value in objects {
            let object: DynamicObject = serde_json::from_value(value).expect("a valid object");
            map.insert(
                (
                    object.metadata.namespace.clone().unwrap_or_default(),
                    object.metadata.name.clone().unwrap_or_default(),
                ),
                Arc::new(object),
            );
        }
        Snapshot {
            resource,
            objects: Arc::new(map),
        }
    }
}
