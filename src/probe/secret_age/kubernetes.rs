//! Kubernetes Secrets of one namespace as a source of secret metadata,
//! read through the shared watch cache ([`crate::kube`]): a metadata-only
//! watch of Secrets (PartialObjectMetadata), so no value ever reaches
//! vouch, and checks of the same namespace (and `kubernetes` checks of a
//! Secret without `keys`) share one watch.
//!
//! A Secret's age is the time since its data was last written: the newest
//! `time` among its managedFields entries of an `Update` or `Apply` that
//! owns `data` (or `stringData`), which the cache keeps for these watches
//! alone ([`crate::kube::watch::last_data_write`]); without such an entry
//! (managed fields are stripped, or written by an old API server), its
//! creation time. Secrets have no enabled flag and no expiry date: every
//! Secret that exists counts as enabled, and `min_valid_for` is refused in
//! the config.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;

use super::{SecretFacts, SecretMetadataSource, SourceError};
use crate::config::Problem;
use crate::kube::resource::SECRETS;
use crate::kube::watch::last_data_write;
use crate::kube::{Lease, WatchKey};
use crate::probe::ProbeContext;

/// The `kubernetes` source of a `secret_age` check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSecretsConfig {
    /// The namespace of the Secrets.
    pub namespace: String,
}

/// A compiled Kubernetes source.
pub struct KubernetesSecretSource {
    namespace: String,
    lease: Lease,
    /// How long a run waits for the watch's first sync.
    sync_wait: Duration,
}

/// A namespace name: a DNS label (1–63 lower-case letters, digits, '-').
fn is_namespace_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A Secret name: a DNS subdomain (1–253 lower-case letters, digits, '-'
/// and '.').
pub fn is_secret_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl KubernetesSecretSource {
    pub fn build(
        config: &KubernetesSecretsConfig,
        timeout: Duration,
    ) -> Result<Self, Vec<Problem>> {
        if !is_namespace_name(&config.namespace) {
            return Err(vec![Problem::new(
                "namespace",
                format!(
                    "invalid namespace {:?}: 1 to 63 lower-case letters, digits and '-'",
                    config.namespace
                ),
            )]);
        }
        Ok(KubernetesSecretSource {
            namespace: config.namespace.clone(),
            lease: Lease::new(WatchKey::metadata(SECRETS, Some(&config.namespace))),
            // As the kubernetes kind: leave the rest of the timeout for
            // judging, so a slow first sync is `not_synced`, not `timeout`.
            sync_wait: timeout.mul_f64(0.8),
        })
    }

    async fn list_wanted(
        &self,
        ctx: &ProbeContext,
        wanted: &HashSet<String>,
    ) -> Result<Vec<SecretFacts>, SourceError> {
        ctx.progress.set("reading the watch cache");
        let snapshot = self
            .lease
            .read(&ctx.clients.kube, self.sync_wait)
            .await
            .map_err(|err| SourceError {
                reason: err.reason(),
                message: err.to_string(),
            })?;
        let mut facts = Vec::new();
        for name in wanted {
            let Some(secret) = snapshot.get(&self.namespace, name) else {
                continue;
            };
            let metadata = &secret.metadata;
            let written = metadata
                .managed_fields
                .as_deref()
                .and_then(last_data_write)
                .or_else(|| metadata.creation_timestamp.clone())
                .map(|time| time.0.as_second());
            facts.push(SecretFacts {
                name: name.clone(),
                enabled: true,
                created: written,
                updated: None,
                expires: None,
                not_before: None,
            });
        }
        Ok(facts)
    }
}

impl SecretMetadataSource for KubernetesSecretSource {
    fn describe(&self) -> String {
        format!("namespace {}", self.namespace)
    }

    fn list<'a>(
        &'a self,
        ctx: &'a ProbeContext,
        wanted: &'a HashSet<String>,
    ) -> BoxFuture<'a, Result<Vec<SecretFacts>, SourceError>> {
        self.list_wanted(ctx, wanted).boxed()
    }

    fn watches(&self) -> Vec<WatchKey> {
        vec![self.lease.key().clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kubernetes_rules() {
        assert!(is_secret_name("broxiva-api-tls.v2"));
        assert!(!is_secret_name("Stripe_Key"));
        assert!(!is_secret_name("-x"));
        assert!(is_namespace_name("broxiva-production"));
        assert!(!is_namespace_name("prod.eu"));
        assert!(!is_namespace_name(""));
    }
}
