//! The resource types vouch watches: built-in ones and the custom resources
//! of cert-manager, External Secrets, the CSI snapshotter and the
//! Prometheus Operator. A custom resource needs no code of its own: it is
//! watched as a `DynamicObject` like every other type.

use std::fmt;

use kube::core::ApiResource;

/// A resource type: its group, the versions to try in order (the first
/// one the API server serves wins), kind, plural and scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResourceType {
    pub group: &'static str,
    pub versions: &'static [&'static str],
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

impl ResourceType {
    /// The `ApiResource` of one of its versions.
    pub fn api_resource(&self, version: &str) -> ApiResource {
        ApiResource {
            group: self.group.to_string(),
            version: version.to_string(),
            api_version: if self.group.is_empty() {
                version.to_string()
            } else {
                format!("{}/{version}", self.group)
            },
            kind: self.kind.to_string(),
            plural: self.plural.to_string(),
        }
    }

    /// The name RBAC rules use: `deployments.apps`, `pods`,
    /// `certificates.cert-manager.io`.
    pub fn rbac_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rbac_name())
    }
}

const fn core(kind: &'static str, plural: &'static str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: "",
        versions: &["v1"],
        kind,
        plural,
        namespaced,
    }
}

const fn of(
    group: &'static str,
    versions: &'static [&'static str],
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> ResourceType {
    ResourceType {
        group,
        versions,
        kind,
        plural,
        namespaced,
    }
}

pub const NAMESPACES: ResourceType = core("Namespace", "namespaces", false);
pub const PODS: ResourceType = core("Pod", "pods", true);
pub const CONFIGMAPS: ResourceType = core("ConfigMap", "configmaps", true);
pub const SECRETS: ResourceType = core("Secret", "secrets", true);
pub const EVENTS: ResourceType = core("Event", "events", true);
pub const DEPLOYMENTS: ResourceType = of("apps", &["v1"], "Deployment", "deployments", true);
pub const STATEFULSETS: ResourceType = of("apps", &["v1"], "StatefulSet", "statefulsets", true);
pub const DAEMONSETS: ResourceType = of("apps", &["v1"], "DaemonSet", "daemonsets", true);
pub const REPLICASETS: ResourceType = of("apps", &["v1"], "ReplicaSet", "replicasets", true);
pub const HPAS: ResourceType = of(
    "autoscaling",
    &["v2"],
    "HorizontalPodAutoscaler",
    "horizontalpodautoscalers",
    true,
);
pub const ENDPOINT_SLICES: ResourceType = of(
    "discovery.k8s.io",
    &["v1"],
    "EndpointSlice",
    "endpointslices",
    true,
);
pub const INGRESSES: ResourceType = of("networking.k8s.io", &["v1"], "Ingress", "ingresses", true);
pub const CERTIFICATES: ResourceType = of(
    "cert-manager.io",
    &["v1"],
    "Certificate",
    "certificates",
    true,
);
pub const ISSUERS: ResourceType = of("cert-manager.io", &["v1"], "Issuer", "issuers", true);
pub const CLUSTER_ISSUERS: ResourceType = of(
    "cert-manager.io",
    &["v1"],
    "ClusterIssuer",
    "clusterissuers",
    false,
);
/// External Secrets moved from v1beta1 to v1 (operator 0.16); either is
/// accepted, v1 first.
pub const EXTERNAL_SECRETS: ResourceType = of(
    "external-secrets.io",
    &["v1", "v1beta1"],
    "ExternalSecret",
    "externalsecrets",
    true,
);
pub const SECRET_STORES: ResourceType = of(
    "external-secrets.io",
    &["v1", "v1beta1"],
    "SecretStore",
    "secretstores",
    true,
);
pub const CLUSTER_SECRET_STORES: ResourceType = of(
    "external-secrets.io",
    &["v1", "v1beta1"],
    "ClusterSecretStore",
    "clustersecretstores",
    false,
);
pub const VOLUME_SNAPSHOTS: ResourceType = of(
    "snapshot.storage.k8s.io",
    &["v1"],
    "VolumeSnapshot",
    "volumesnapshots",
    true,
);
pub const SERVICE_MONITORS: ResourceType = of(
    "monitoring.coreos.com",
    &["v1"],
    "ServiceMonitor",
    "servicemonitors",
    true,
);
/// Argo Rollouts' Rollout, followed by `after_rollout_of` like a
/// Deployment when the API server serves it.
pub const ARGO_ROLLOUTS: ResourceType =
    of("argoproj.io", &["v1alpha1"], "Rollout", "rollouts", true);
pub const PROMETHEUS_RULES: ResourceType = of(
    "monitoring.coreos.com",
    &["v1"],
    "PrometheusRule",
    "prometheusrules",
    true,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_resources_and_rbac_names() {
        let ar = DEPLOYMENTS.api_resource("v1");
        assert_eq!(ar.api_version, "apps/v1");
        assert_eq!(DEPLOYMENTS.rbac_name(), "deployments.apps");
        assert_eq!(PODS.api_resource("v1").api_version, "v1");
        assert_eq!(PODS.rbac_name(), "pods");
        assert_eq!(
            EXTERNAL_SECRETS.api_resource("v1beta1").api_version,
            "external-secrets.io/v1beta1"
        );
    }
}
