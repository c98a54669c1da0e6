//! Azure Key Vault as a source of secret metadata: the documented REST
//! call "Get Secrets" (`GET {vault}/secrets?api-version=7.5&maxresults=25`,
//! following `nextLink`), which lists each secret's current version's
//! attributes and never its value. Values (`GET /secrets/{name}`) are never
//! asked for. How the listing is made (the vault's challenge, retries,
//! one listing shared by the checks of a vault) is in [`super::vault_listing`].
//!
//! REST rather than Microsoft's `azure_security_keyvault_secrets` crate:
//! that crate runs on its own HTTP client and trust roots (no test CA, no
//! body limit of vouch's), and its list call is a pager over the same
//! request, so it would add a second HTTP stack for one GET. api-version
//! 7.5 is the generally available version the attributes below are
//! documented for (`enabled`, `created`, `updated`, `exp`, `nbf` in Unix
//! seconds).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use url::Url;

use super::vault_listing::VaultShared;
use super::{SecretFacts, SecretMetadataSource, SourceError};
use crate::clients::api_client::{host_of, ApiClient, ApiError};
use crate::clients::azure_auth::{Credential, TokenCache};
use crate::clients::azure_identity::{parse_http_url, Identity, IdentityConfig};
use crate::config::Problem;
use crate::probe::BuildContext;
use crate::probe::ProbeContext;

pub const API_VERSION: &str = "7.5";

pub use crate::clients::azure_identity::AuthMethod;

/// The `key_vault` source of a `secret_age` check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyVaultConfig {
    /// The vault's URL, e.g. `https://broxiva-prod.vault.azure.net`.
    pub url: String,
    // The identity keys, as `IdentityConfig` documents them (kept flat
    // here: serde's flatten cannot deny unknown fields).
    pub auth: Option<AuthMethod>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub authority_host: Option<String>,
    pub federated_token_file: Option<PathBuf>,
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
    pub managed_identity_endpoint: Option<String>,
    /// PEM CA trusted besides the system roots (vault and token endpoint).
    pub ca_file: Option<PathBuf>,
}

/// A compiled Key Vault source.
pub struct KeyVaultSource {
    pub(super) vault: Url,
    identity: Identity,
    pub(super) client: ApiClient,
    pub(super) tokens: Arc<TokenCache>,
    pub(super) timeout: Duration,
    /// What the checks on this vault with this identity share.
    pub(super) shared: Arc<VaultShared>,
    /// Tells this check's reads of a shared listing from other checks'.
    pub(super) id: u64,
}

/// Source ids; a rebuilt check (after a reload) gets a new one.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl KeyVaultSource {
    pub fn build(config: &KeyVaultConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
        let (clients, timeout) = (ctx.clients, ctx.timeout);
        let mut problems = Vec::new();
        let vault = parse_http_url(&config.url, "url", &mut problems);
        if let Some(vault) = &vault {
            if vault.scheme() != "https" {
                problems.push(Problem::new("url", "a vault is reached over https://"));
            } else if vault.path() != "/" || vault.query().is_some() {
                problems.push(Problem::new(
                    "url",
                    "must be the vault's URL without a path, e.g. https://NAME.vault.azure.net",
                ));
            }
        }
        let identity = Identity::compile(&identity_config(config), "", ctx, &mut problems);
        let tls = match &config.ca_file {
            Some(path) => match clients.tls.with_extra_ca(&ctx.resolve_path(path)) {
                Ok(tls) => Some(tls),
                Err(message) => {
                    problems.push(Problem::new("ca_file", message));
                    None
                }
            },
            None => Some(clients.tls.verified()),
        };
        let (Some(vault), Some(tls), true) = (vault, tls, problems.is_empty()) else {
            return Err(problems);
        };
        // Checks share a listing only with the same identity (paths
        // resolved): one that may not list the vault must not pass on
        // another's listing.
        let shared_key = format!(
            "{}|{}",
            vault.origin().ascii_serialization(),
            identity.key()
        );
        Ok(KeyVaultSource {
            shared: clients.azure_tokens.shared::<VaultShared>(&shared_key),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            vault,
            identity,
            client: ApiClient::new(&tls, timeout),
            tokens: clients.azure_tokens.clone(),
            timeout,
        })
    }

    /// The credential for this run (see [`Identity::credential`]). The
    /// tenant named by the vault's challenge wins: tokens must come from
    /// the vault's tenant.
    pub(super) fn credential(&self, challenged: Option<&str>) -> Result<Credential, SourceError> {
        self.identity.credential(challenged)
    }
}

/// The identity keys of a `key_vault` block.
fn identity_config(config: &KeyVaultConfig) -> IdentityConfig {
    IdentityConfig {
        auth: config.auth,
        tenant_id: config.tenant_id.clone(),
        client_id: config.client_id.clone(),
        authority_host: config.authority_host.clone(),
        federated_token_file: config.federated_token_file.clone(),
        client_secret_file: config.client_secret_file.clone(),
        client_secret_env: config.client_secret_env.clone(),
        managed_identity_endpoint: config.managed_identity_endpoint.clone(),
        audience: None,
    }
}

impl SecretMetadataSource for KeyVaultSource {
    fn describe(&self) -> String {
        format!("vault {}", host_of(&self.vault))
    }

    fn list<'a>(
        &'a self,
        ctx: &'a ProbeContext,
        wanted: &'a HashSet<String>,
    ) -> BoxFuture<'a, Result<Vec<SecretFacts>, SourceError>> {
        self.list_shared(ctx, wanted).boxed()
    }
}

#[derive(Deserialize)]
struct SecretPage {
    #[serde(default)]
    value: Vec<SecretItem>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct SecretItem {
    id: String,
    attributes: Option<Attributes>,
}

#[derive(Default, Deserialize)]
struct Attributes {
    enabled: Option<bool>,
    created: Option<i64>,
    updated: Option<i64>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

/// The secrets of one page of a vault's listing (those whose id names
/// one) and the link to the next page, if any. Public for the fuzz
/// targets.
pub fn read_secret_page(
    body: &[u8],
    host: &str,
) -> Result<(Vec<SecretFacts>, Option<String>), ApiError> {
    let page: SecretPage = serde_json::from_slice(body).map_err(|err| ApiError::BadJson {
        host: host.to_string(),
        detail: err.to_string(),
    })?;
    let facts = page
        .value
        .into_iter()
        .filter_map(|item| {
            let name = secret_name(&item.id)?.to_string();
            let attributes = item.attributes.unwrap_or_default();
            Some(SecretFacts {
                name,
                enabled: attributes.enabled.unwrap_or(true),
                created: attributes.created,
                updated: attributes.updated,
                expires: attributes.exp,
                not_before: attributes.nbf,
            })
        })
        .collect();
    Ok((facts, page.next_link.filter(|l| !l.is_empty())))
}

/// The name in a secret id (`https://v.vault.azure.net/secrets/NAME`).
fn secret_name(id: &str) -> Option<&str> {
    let rest = &id[id.find("/secrets/")? + "/secrets/".len()..];
    rest.split('/').next().filter(|n| !n.is_empty())
}

/// ` CODE` from a Key Vault error body (`{"error":{"code":"Forbidden",
/// "innererror":{"code":"ForbiddenByRbac"}}}`), innermost first; the
/// message is left out (it names the caller's object IDs). Public for the
/// fuzz targets.
pub fn vault_error_code(body: &[u8]) -> String {
    innermost_error_code(body)
        .map(|c| format!(", {c}"))
        .unwrap_or_default()
}

/// The innermost `code` of a Key Vault error body, if it is a plain word.
pub(super) fn innermost_error_code(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: Option<String>,
        innererror: Option<Box<Inner>>,
    }
    let envelope = serde_json::from_slice::<Envelope>(body).ok()?;
    let mut code = envelope.error.code.clone();
    let mut inner = envelope.error.innererror;
    while let Some(next) = inner {
        if next.code.is_some() {
            code = next.code.clone();
        }
        inner = next.innererror;
    }
    code.filter(|c| c.len() <= 60 && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_secret_ids() {
        assert_eq!(
            secret_name("https://v.vault.azure.net/secrets/jwt-secret"),
            Some("jwt-secret")
        );
        assert_eq!(
            secret_name("https://v.vault.azure.net/secrets/jwt-secret/0123abcd"),
            Some("jwt-secret")
        );
        assert_eq!(secret_name("https://v.vault.azure.net/keys/k"), None);
    }

    #[test]
    fn a_next_link_with_the_explicit_default_port_is_the_same_vault() {
        let vault = Url::parse("https://broxiva-kv.vault.azure.net").unwrap();
        let next = Url::parse(
            "https://broxiva-kv.vault.azure.net:443/secrets?api-version=7.5&$skiptoken=eyJ&maxresults=25",
        )
        .unwrap();
        assert_eq!(next.origin(), vault.origin());
        let elsewhere = Url::parse("https://evil.example/secrets").unwrap();
        assert_ne!(elsewhere.origin(), vault.origin());
    }

    #[test]
    fn the_innermost_error_code_is_shown() {
        assert_eq!(
            vault_error_code(
                br#"{"error":{"code":"Forbidden","message":"Caller oid=1","innererror":{"code":"ForbiddenByRbac"}}}"#
            ),
            ", ForbiddenByRbac"
        );
        assert_eq!(vault_error_code(b"<html>"), "");
    }
}
