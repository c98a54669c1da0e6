//! Values other checks compare against: an Ingress's addresses, the image
//! a Deployment's container runs.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;

use super::{typed, Snapshot};

/// An image reference split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// As written in the pod template, e.g. `registry.example.com/api:1.4.2`.
    pub image: String,
    /// Everything before the tag or digest.
    pub repository: String,
    /// The tag, if any (`1.4.2`); `latest` is not assumed.
    pub tag: Option<String>,
    /// The digest, if any (`sha256:…`).
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(image: &str) -> ImageRef {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_string())),
            None => (image, None),
        };
        // A colon after the last slash separates the tag; one before it
        // belongs to a registry port.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                rest[..last_slash + i].to_string(),
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest.to_string(), None),
        };
        ImageRef {
            image: image.to_string(),
            repository,
            tag,
            digest,
        }
    }
}

/// The load-balancer addresses of Ingress `namespace/name`.
pub fn ingress_addresses(
    snapshot: &Snapshot,
    namespace: &str,
    name: &str,
) -> Result<Vec<String>, String> {
    let object = snapshot
        .get(namespace, name)
        .ok_or_else(|| format!("Ingress {namespace}/{name} not found"))?;
    let ingress: Ingress = typed(object)?;
    Ok(addresses_of(&ingress))
}

pub(crate) fn addresses_of(ingress: &Ingress) -> Vec<String> {
    ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ip.clone().or_else(|| entry.hostname.clone()))
        .filter(|address| !address.is_empty())
        .collect()
}

/// `status.notAfter` of cert-manager Certificate `namespace/name`, in
/// seconds since the Unix epoch.
pub fn certificate_not_after(
    snapshot: &Snapshot,
    namespace: &str,
    name: &str,
) -> Result<f64, String> {
    let object = snapshot
        .get(namespace, name)
        .ok_or_else(|| format!("Certificate {namespace}/{name} not found"))?;
    let text = object.data["status"]["notAfter"]
        .as_str()
        .ok_or_else(|| format!("Certificate {namespace}/{name} has no status.notAfter yet"))?;
    let timestamp: k8s_openapi::jiff::Timestamp = text.parse().map_err(|err| {
        format!("Certificate {namespace}/{name}: status.notAfter {text:?} is not a time: {err}")
    })?;
    Ok(timestamp.as_millisecond() as f64 / 1000.0)
}

/// The image container `container` of Deployment `namespace/name` runs.
pub fn container_image(
    snapshot: &Snapshot,
    namespace: &str,
    name: &str,
    container: &str,
) -> Result<ImageRef, String> {
    let object = snapshot
        .get(namespace, name)
        .ok_or_else(|| format!("Deployment {namespace}/{name} not found"))?;
    let deployment: Deployment = typed(object)?;
    let containers = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers)
        .unwrap_or_default();
    let found = containers
        .iter()
        .find(|c| c.name == container)
        .ok_or_else(|| {
            format!(
                "Deployment {namespace}/{name} has no container {container:?} (it has: {})",
                containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let image = found
        .image
        .as_deref()
        .ok_or_else(|| format!("container {container} of {namespace}/{name} has no image"))?;
    Ok(ImageRef::parse(image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_not_after_is_read_from_its_status() {
        let snapshot = crate::probe::kubernetes::testing::snapshot(
            crate::kube::resource::CERTIFICATES,
            vec![
                serde_json::json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                    "metadata": {"name": "api", "namespace": "prod"},
                    "status": {"notAfter": "2030-01-01T00:00:00Z"}}),
                serde_json::json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                    "metadata": {"name": "new", "namespace": "prod"}}),
            ],
        );
        assert_eq!(
            certificate_not_after(&snapshot, "prod", "api"),
            Ok(1_893_456_000.0)
        );
        assert!(certificate_not_after(&snapshot, "prod", "new")
            .unwrap_err()
            .contains("no status.notAfter"));
        assert!(certificate_not_after(&snapshot, "prod", "gone")
            .unwrap_err()
            .contains("not found"));
    }

    #[test]
    fn image_references_split_at_the_right_colon() {
        let image = ImageRef::parse("registry.example.com:5000/team/api:1.4.2");
        assert_eq!(image.repository, "registry.example.com:5000/team/api");
        assert_eq!(image.tag.as_deref(), Some("1.4.2"));
        let image = ImageRef::parse("registry.example.com:5000/api@sha256:abc");
        assert_eq!(image.tag, None);
        assert_eq!(image.digest.as_deref(), Some("sha256:abc"));
        let image = ImageRef::parse("nginx");
        assert_eq!((image.repository.as_str(), image.tag), ("nginx", None));
    }
}
