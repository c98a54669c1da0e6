//! Cross-checks: values a check of another kind expects that the cluster
//! reports — the addresses of an Ingress, the image tag a Deployment's
//! container runs, the not-after time of a cert-manager Certificate.
//!
//! A probe compiles a reference when it is built, holding a [`Lease`] on
//! the watch the value lives in: the watch starts on the first run and is
//! shared with every other check reading the same resource type and
//! namespace. Each run reads the cache, never the API server. A value the
//! cluster does not report (yet) — the object missing, the watch not
//! synced, forbidden or its CRD not installed — is [`Unknown`], which the
//! run reports as an `error` with the cache's reason word: a check never
//! passes or fails on a value it could not read.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::kubernetes::{parse_ref, ObjectRef};
use super::ProbeContext;
use crate::config::Problem;
use crate::kube::resource::{CERTIFICATES, DEPLOYMENTS, INGRESSES};
use crate::kube::{Lease, LookupError, WatchKey};
use crate::result::{Failure, Reason};

/// How long a run waits for the first sync of a watch it reads: half the
/// check's timeout, so a slow sync is `not_synced` (named) rather than a
/// `timeout`, and the rest is left for the check's own request.
pub fn sync_wait(check_timeout: Duration) -> Duration {
    check_timeout / 2
}

/// Why a value expected from the cluster is not known in this run; the
/// run reports it as an `error` ([`Failure::into_error`]).
pub type Unknown = Failure;

/// The failure to read `what` from the cache.
fn unknown(err: LookupError, what: &str) -> Unknown {
    match err {
        LookupError::Cache(err) => Failure::new(err.reason(), format!("cannot read {what}: {err}")),
        LookupError::Object(message) => {
            Failure::new(Reason::NotFound, format!("cannot read {what}: {message}"))
        }
    }
}

/// `{ deployment: prod/api, container: api }`: the container of a
/// Deployment whose image tag a check expects.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageTagOfConfig {
    /// `namespace/name` of the Deployment.
    pub deployment: String,
    /// Name of the container in its pod template.
    pub container: String,
}

/// The image tag container `container` of a Deployment runs, read from
/// the Deployment watch of its namespace.
pub struct ImageTagOf {
    deployment: ObjectRef,
    container: String,
    lease: Lease,
    wait: Duration,
}

impl fmt::Debug for ImageTagOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageTagOf({} {})", self.deployment, self.container)
    }
}

impl ImageTagOf {
    /// Problems are reported under `key` (`expect.json_image_tag.$.commit`).
    pub fn compile(
        config: &ImageTagOfConfig,
        key: &str,
        wait: Duration,
        problems: &mut Vec<Problem>,
    ) -> Option<Self> {
        let container = config.container.trim();
        let container_ok = !container.is_empty()
            && container.len() <= 63
            && container
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !container_ok {
            problems.push(Problem::new(
                format!("{key}.container"),
                format!(
                    "expected a container name in lower case (e.g. api), got {:?}",
                    config.container
                ),
            ));
        }
        let deployment = parse_ref(&config.deployment, &format!("{key}.deployment"), problems)?;
        container_ok.then(|| ImageTagOf {
            lease: Lease::new(WatchKey::new(DEPLOYMENTS, Some(&deployment.namespace))),
            deployment,
            container: container.to_string(),
            wait,
        })
    }

    /// The watch this reference reads.
    pub fn watch(&self) -> &WatchKey {
        self.lease.key()
    }

    /// `the image tag of container api of Deployment prod/api`.
    pub fn describe(&self) -> String {
        format!(
            "the image tag of container {} of Deployment {}",
            self.container, self.deployment
        )
    }

    /// The tag in force now; an image pinned by digest only has none.
    pub async fn resolve(&self, ctx: &ProbeContext) -> Result<String, Unknown> {
        let image = ctx
            .clients
            .kube
            .container_image(
                &self.lease,
                &self.deployment.namespace,
                &self.deployment.name,
                &self.container,
                self.wait,
            )
            .await
            .map_err(|err| unknown(err, &self.describe()))?;
        match image.tag {
            Some(tag) if !tag.is_empty() => Ok(tag),
            _ => Err(Failure::new(
                Reason::NotFound,
                format!(
                    "cannot read {}: it runs {} without a tag",
                    self.describe(),
                    image.image
                ),
            )),
        }
    }
}

/// The load-balancer addresses Ingress `namespace/name` reports.
pub struct IngressAddressesOf {
    ingress: ObjectRef,
    lease: Lease,
    wait: Duration,
}

impl fmt::Debug for IngressAddressesOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IngressAddressesOf({})", self.ingress)
    }
}

impl IngressAddressesOf {
    pub fn compile(
        text: &str,
        key: &str,
        wait: Duration,
        problems: &mut Vec<Problem>,
    ) -> Option<Self> {
        let ingress = parse_ref(text, key, problems)?;
        Some(IngressAddressesOf {
            lease: Lease::new(WatchKey::new(INGRESSES, Some(&ingress.namespace))),
            ingress,
            wait,
        })
    }

    pub fn ingress(&self) -> &ObjectRef {
        &self.ingress
    }

    /// The watch this reference reads.
    pub fn watch(&self) -> &WatchKey {
        self.lease.key()
    }

    /// The addresses (IPs and host names) as the Ingress lists them; none
    /// yet is `Unknown` (`ingress_address`): the load balancer has not
    /// been provisioned, so there is nothing to compare with.
    pub async fn resolve(&self, ctx: &ProbeContext) -> Result<Vec<String>, Unknown> {
        let what = format!("the addresses of Ingress {}", self.ingress);
        let addresses = ctx
            .clients
            .kube
            .ingress_addresses(
                &self.lease,
                &self.ingress.namespace,
                &self.ingress.name,
                self.wait,
            )
            .await
            .map_err(|err| unknown(err, &what))?;
        if addresses.is_empty() {
            return Err(Failure::new(
                Reason::IngressAddress,
                format!(
                    "Ingress {} reports no load-balancer address yet; nothing to compare the answers with",
                    self.ingress
                ),
            ));
        }
        Ok(addresses)
    }
}

/// `status.notAfter` of cert-manager Certificate `namespace/name`.
pub struct CertificateOf {
    certificate: ObjectRef,
    lease: Lease,
    wait: Duration,
}

impl fmt::Debug for CertificateOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateOf({})", self.certificate)
    }
}

impl CertificateOf {
    pub fn compile(
        text: &str,
        key: &str,
        wait: Duration,
        problems: &mut Vec<Problem>,
    ) -> Option<Self> {
        let certificate = parse_ref(text, key, problems)?;
        Some(CertificateOf {
            lease: Lease::new(WatchKey::new(CERTIFICATES, Some(&certificate.namespace))),
            certificate,
            wait,
        })
    }

    pub fn certificate(&self) -> &ObjectRef {
        &self.certificate
    }

    /// The watch this reference reads.
    pub fn watch(&self) -> &WatchKey {
        self.lease.key()
    }

    /// The not-after time (Unix seconds) cert-manager reports for the
    /// certificate it issued last.
    pub async fn resolve(&self, ctx: &ProbeContext) -> Result<f64, Unknown> {
        let what = format!("status.notAfter of Certificate {}", self.certificate);
        ctx.clients
            .kube
            .certificate_not_after(
                &self.lease,
                &self.certificate.namespace,
                &self.certificate.name,
                self.wait,
            )
            .await
            .map_err(|err| unknown(err, &what))
    }
}
