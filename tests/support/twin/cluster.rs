//! The broxiva platform's Kubernetes objects in the fake API server, named
//! as the checklist names them (namespace broxiva-production): what the
//! shipped config's kubernetes checks, and the http, tls, dns and registry
//! checks that read the cluster, expect of a healthy platform. Also used
//! by tests/it/rbac.rs, so the RBAC proof and the twin read the same cluster.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::support::kube_api::{objects, FakeKube};

pub const NAMESPACE: &str = "broxiva-production";
pub const REGISTRY: &str = "broxivaprodacr.azurecr.io";
/// The Ingress addresses (documentation range): dnsmasq answers the
/// platform's names with them, and `--connect-to` maps them to nginx.
pub const API_INGRESS_IP: &str = "203.0.113.10";
pub const WEB_INGRESS_IP: &str = "203.0.113.11";

/// What the cluster reports, chosen by the twin.
#[derive(Clone, Debug)]
pub struct Platform {
    /// Image tags of earlier releases then the running one, oldest first
    /// (short commits): the Deployments' revision history.
    pub api_tags: Vec<String>,
    pub web_tags: Vec<String>,
    /// notAfter of the certificates cert-manager issued (the ones nginx
    /// serves).
    pub api_cert_not_after: DateTime<Utc>,
    pub web_cert_not_after: DateTime<Utc>,
    pub cert_not_before: DateTime<Utc>,
}

impl Default for Platform {
    fn default() -> Self {
        let now = Utc::now();
        let tags = |seed: &str| -> Vec<String> {
            (1..=4).map(|i| format!("{seed}{i:03}")).collect::<Vec<_>>()
        };
        Platform {
            api_tags: tags("a1b2c3d"),
            web_tags: tags("e4f5a6b"),
            api_cert_not_after: now + chrono::Duration::days(80),
            web_cert_not_after: now + chrono::Duration::days(80),
            cert_not_before: now - chrono::Duration::days(10),
        }
    }
}

/// The image of `app` (`broxiva-api`) at `tag`.
pub fn image(app: &str, tag: &str) -> String {
    format!("{REGISTRY}/{app}:{tag}")
}

/// The container name the checklist's `kubectl set image` uses.
pub fn container(app: &str) -> &'static str {
    match app {
        "broxiva-api" => "api",
        _ => "web",
    }
}

fn ago(seconds: i64) -> String {
    (Utc::now() - chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Fills `fake` with the healthy platform.
pub fn populate(fake: &FakeKube, platform: &Platform) {
    fake.install_external_secrets();
    fake.install_volume_snapshots();
    fake.install_cert_manager();
    fake.install_prometheus_operator();
    let ns = NAMESPACE;
    fake.apply(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns}, "status": {"phase": "Active"}}));
    for (app, tags, ip, max) in [
        ("broxiva-api", &platform.api_tags, API_INGRESS_IP, 20),
        ("broxiva-web", &platform.web_tags, WEB_INGRESS_IP, 15),
    ] {
        workload(fake, app, tags);
        fake.apply(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": format!("{app}-ingress"), "namespace": ns},
            "spec": {}, "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}),
        );
        fake.apply(hpa(app, 5, max, 5));
        fake.apply(service_monitor(app));
    }
    for (app, image) in [("postgres", "postgres:15"), ("redis", "redis:7")] {
        fake.apply(objects::statefulset(ns, app, 1, image));
        fake.settle_statefulset(ns, app);
    }
    fake.apply(config_map());
    fake.apply(objects::event(
        ns,
        ("apps/v1", "Deployment", "broxiva-api"),
        "Normal",
        "ScalingReplicaSet",
        "Scaled up replica set",
    ));
    fake.apply(
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "azure-keyvault-broxiva", "namespace": ns}, "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Valid"}]}}),
    );
    fake.apply(external_secret(600));
    fake.apply(volume_snapshot(86_400));
    for (name, hosts, not_after) in [
        (
            "broxiva-api-tls-production",
            vec!["api.broxiva.com"],
            platform.api_cert_not_after,
        ),
        (
            "broxiva-web-tls-production",
            vec!["broxiva.com", "www.broxiva.com"],
            platform.web_cert_not_after,
        ),
    ] {
        let mut certificate =
            objects::certificate(ns, name, &hosts, platform.cert_not_before, not_after);
        certificate["spec"]["issuerRef"]["name"] = json!("letsencrypt-production");
        fake.apply(certificate);
    }
    fake.apply(cluster_issuer(true));
}

/// A Deployment of 5 ready pods running the last of `tags`, with one
/// revision per tag; its pods (app=NAME) and its EndpointSlice.
fn workload(fake: &FakeKube, app: &str, tags: &[String]) {
    let ns = NAMESPACE;
    let mut deployment = objects::deployment(ns, app, 5, &image(app, &tags[0]));
    deployment["spec"]["template"]["spec"]["containers"][0]["name"] = json!(container(app));
    fake.apply(deployment);
    fake.settle_deployment(ns, app);
    for tag in &tags[1..] {
        fake.start_rollout(ns, app, &image(app, tag));
        while !fake.rollout_step(ns, app) {}
        fake.settle_deployment(ns, app);
    }
    let current = image(app, tags.last().expect("a tag"));
    let mut endpoints = Vec::new();
    for i in 0..5 {
        fake.apply(objects::ready_pod(
            ns,
            &format!("{app}-{i}"),
            json!({"app": app}),
            &current,
        ));
        endpoints.push(json!({"addresses": [format!("10.0.{}.{i}", app.len())],
            "conditions": {"ready": true}}));
    }
    fake.apply(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{app}-x1"), "namespace": ns,
            "labels": {"kubernetes.io/service-name": app}},
        "addressType": "IPv4", "endpoints": endpoints}),
    );
}

/// An autoscaling/v2 HPA of Deployment `app` at `current` replicas.
pub fn hpa(app: &str, min: i32, max: i32, current: i32) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": {"minReplicas": min, "maxReplicas": max,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app}},
        "status": {"currentReplicas": current, "desiredReplicas": current}})
}

/// ConfigMap broxiva-config with the eight keys of checklist §1.4.
pub fn config_map() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "broxiva-config", "namespace": NAMESPACE},
    "data": {
        "NODE_ENV": "production",
        "PORT": "4000",
        "REDIS_HOST": "redis",
        "REDIS_PORT": "6379",
        "JWT_EXPIRATION": "15m",
        "CORS_ORIGIN": "https://broxiva.com,https://www.broxiva.com",
        "NEXT_PUBLIC_API_URL": "https://api.broxiva.com",
        "NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY": "pk_live_twin",
        "NEXT_PUBLIC_GOOGLE_ANALYTICS_ID": "G-TWIN000000"
    }})
}

/// ExternalSecret broxiva-all-secrets, last refreshed `age` seconds ago
/// (refresh interval 1h).
pub fn external_secret(age: i64) -> Value {
    json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "broxiva-all-secrets", "namespace": NAMESPACE},
        "spec": {"refreshInterval": "1h"},
        "status": {"refreshTime": ago(age),
            "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}]}})
}

/// The ready snapshot of the PostgreSQL volume, taken `age` seconds ago.
pub fn volume_snapshot(age: i64) -> Value {
    json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "postgres-data-1", "namespace": NAMESPACE},
        "spec": {"source": {"persistentVolumeClaimName": "data-postgres-0"}},
        "status": {"readyToUse": true, "creationTime": ago(age)}})
}

/// ClusterIssuer letsencrypt-production, Ready or not.
pub fn cluster_issuer(ready: bool) -> Value {
    let status = if ready { "True" } else { "False" };
    json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
        "metadata": {"name": "letsencrypt-production"},
        "spec": {"acme": {"server": "https://acme-v02.api.letsencrypt.org/directory"}},
        "status": {"conditions": [{"type": "Ready", "status": status,
            "reason": if ready { "ACMEAccountRegistered" } else { "ErrRegisterACMEAccount" }}]}})
}

/// The ServiceMonitor that scrapes `app`'s metrics port.
pub fn service_monitor(app: &str) -> Value {
    json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": {"selector": {"matchLabels": {"app": app}}, "endpoints": [{"port": "metrics"}]}})
}
