//! Azure Key Vault as a source of secret metadata: the documented REST
//! call "Get Secrets" (`GET {vault}/secrets?api-version=7.5&maxresults=25`,
//! following `nextLink`), which lists each secret's current version's
//! attributes and never its value. Values (`GET /secrets/{name}`) are never
//! asked for.
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
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use hyper::header::AUTHORIZATION;
use hyper::StatusCode;
use serde::Deserialize;
use url::Url;

use super::{SecretFacts, SecretMetadataSource, SourceError};
use crate::clients::api_client::{host_of, ApiClient, ApiError, ApiRequest};
use crate::clients::azure_auth::{Credential, TokenCache, DEFAULT_AUTHORITY, IMDS_ENDPOINT};
use crate::config::{ByteSize, Problem};
use crate::probe::BuildContext;
use crate::probe::ProbeContext;
use crate::result::Reason;
use crate::secret::SecretSource;

pub const API_VERSION: &str = "7.5";
/// The most Key Vault returns per page.
const PAGE_SIZE: &str = "25";
/// The resource (audience) of Key Vault tokens.
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// Pages read at most: 400 pages of 25 is 10000 secrets.
const MAX_PAGES: u32 = 400;
const PAGE_BODY_LIMIT: ByteSize = ByteSize(4 * 1024 * 1024);

/// How the check authenticates to Entra ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    WorkloadIdentity,
    ManagedIdentity,
    ClientSecret,
}

/// The `key_vault` source of a `secret_age` check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyVaultConfig {
    /// The vault's URL, e.g. `https://broxiva-prod.vault.azure.net`.
    pub url: String,
    /// `workload_identity`, `managed_identity` or `client_secret`. Default:
    /// workload identity when a federated token file is known (config or
    /// AZURE_FEDERATED_TOKEN_FILE), else client secret when one is given,
    /// else managed identity.
    pub auth: Option<AuthMethod>,
    /// Tenant (directory) ID; default AZURE_TENANT_ID.
    pub tenant_id: Option<String>,
    /// Application (client) ID; default AZURE_CLIENT_ID. For a managed
    /// identity, selects a user-assigned one.
    pub client_id: Option<String>,
    /// Entra ID's URL; default AZURE_AUTHORITY_HOST, else
    /// `https://login.microsoftonline.com/`.
    pub authority_host: Option<String>,
    /// The projected service-account token; default
    /// AZURE_FEDERATED_TOKEN_FILE.
    pub federated_token_file: Option<PathBuf>,
    /// File holding a client secret (development).
    pub client_secret_file: Option<PathBuf>,
    /// Environment variable holding a client secret (development).
    pub client_secret_env: Option<String>,
    /// The managed-identity token endpoint (default the instance metadata
    /// service, `http://169.254.169.254/metadata/identity/oauth2/token`).
    pub managed_identity_endpoint: Option<String>,
    /// PEM CA trusted besides the system roots (vault and token endpoint).
    pub ca_file: Option<PathBuf>,
}

/// A compiled Key Vault source.
pub struct KeyVaultSource {
    vault: Url,
    auth: Option<AuthMethod>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    authority_host: Option<Url>,
    federated_token_file: Option<PathBuf>,
    client_secret: Option<SecretSource>,
    managed_identity_endpoint: Option<Url>,
    client: ApiClient,
    tokens: Arc<TokenCache>,
    timeout: Duration,
}

fn parse_http_url(text: &str, key: &str, problems: &mut Vec<Problem>) -> Option<Url> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            if !url.username().is_empty() || url.password().is_some() {
                problems.push(Problem::new(key, "must not hold credentials"));
                return None;
            }
            Some(url)
        }
        Ok(_) => {
            problems.push(Problem::new(key, "must be an http:// or https:// URL"));
            None
        }
        Err(err) => {
            problems.push(Problem::new(key, format!("invalid URL: {err}")));
            None
        }
    }
}

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
        let authority_host = config
            .authority_host
            .as_deref()
            .and_then(|text| parse_http_url(text, "authority_host", &mut problems));
        let managed_identity_endpoint = config
            .managed_identity_endpoint
            .as_deref()
            .and_then(|text| parse_http_url(text, "managed_identity_endpoint", &mut problems));
        let client_secret = ctx.secrets.source(
            config.client_secret_file.as_ref(),
            config.client_secret_env.as_ref(),
            "client_secret",
            "",
            &mut problems,
        );
        for (key, value) in [
            ("tenant_id", &config.tenant_id),
            ("client_id", &config.client_id),
        ] {
            if value.as_deref().is_some_and(|v| {
                v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            }) {
                problems.push(Problem::new(
                    key,
                    "must be a GUID or domain name (letters, digits, '-', '.')",
                ));
            }
        }
        match config.auth {
            Some(AuthMethod::ClientSecret) if client_secret.is_none() => {
                problems.push(Problem::new(
                    "auth",
                    "client_secret needs client_secret_file or client_secret_env",
                ))
            }
            Some(AuthMethod::WorkloadIdentity | AuthMethod::ManagedIdentity)
                if client_secret.is_some() =>
            {
                problems.push(Problem::new(
                    if config.client_secret_file.is_some() {
                        "client_secret_file"
                    } else {
                        "client_secret_env"
                    },
                    "only used with auth: client_secret",
                ))
            }
            _ => {}
        }
        if config.managed_identity_endpoint.is_some()
            && matches!(
                config.auth,
                Some(AuthMethod::WorkloadIdentity | AuthMethod::ClientSecret)
            )
        {
            problems.push(Problem::new(
                "managed_identity_endpoint",
                "only used with auth: managed_identity",
            ));
        }
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
        Ok(KeyVaultSource {
            vault,
            auth: config.auth,
            tenant_id: config.tenant_id.clone(),
            client_id: config.client_id.clone(),
            authority_host,
            federated_token_file: config
                .federated_token_file
                .as_ref()
                .map(|p| ctx.resolve_path(p)),
            client_secret,
            managed_identity_endpoint,
            client: ApiClient::new(&tls, timeout),
            tokens: clients.azure_tokens.clone(),
            timeout,
        })
    }

    /// The credential for this run: the config, then the environment
    /// variables AKS sets for workload identity.
    fn credential(&self) -> Result<Credential, SourceError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let token_file = self
            .federated_token_file
            .clone()
            .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from));
        let method = self.auth.unwrap_or(if token_file.is_some() {
            AuthMethod::WorkloadIdentity
        } else if self.client_secret.is_some() {
            AuthMethod::ClientSecret
        } else {
            AuthMethod::ManagedIdentity
        });
        let client_id = self.client_id.clone().or_else(|| env("AZURE_CLIENT_ID"));
        let missing = |what: &str, variable: &str| SourceError {
            reason: Reason::Auth,
            message: format!(
                "{} needs {what}: set it in the check or the {variable} environment variable",
                match method {
                    AuthMethod::WorkloadIdentity => "workload identity",
                    AuthMethod::ClientSecret => "client-secret authentication",
                    AuthMethod::ManagedIdentity => "managed identity",
                }
            ),
        };
        let authority = || -> Result<Url, SourceError> {
            match &self.authority_host {
                Some(url) => Ok(url.clone()),
                None => Url::parse(
                    &env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.to_string()),
                )
                .map_err(|err| SourceError {
                    reason: Reason::Auth,
                    message: format!("AZURE_AUTHORITY_HOST is not a URL: {err}"),
                }),
            }
        };
        let tenant = || {
            self.tenant_id
                .clone()
                .or_else(|| env("AZURE_TENANT_ID"))
                .ok_or_else(|| missing("tenant_id", "AZURE_TENANT_ID"))
        };
        Ok(match method {
            AuthMethod::WorkloadIdentity => Credential::WorkloadIdentity {
                authority: authority()?,
                tenant_id: tenant()?,
                client_id: client_id.ok_or_else(|| missing("client_id", "AZURE_CLIENT_ID"))?,
                token_file: token_file
                    .ok_or_else(|| missing("federated_token_file", "AZURE_FEDERATED_TOKEN_FILE"))?,
            },
            AuthMethod::ClientSecret => Credential::ClientSecret {
                authority: authority()?,
                tenant_id: tenant()?,
                client_id: client_id.ok_or_else(|| missing("client_id", "AZURE_CLIENT_ID"))?,
                secret: self
                    .client_secret
                    .clone()
                    .ok_or_else(|| missing("client_secret_file", "(none)"))?,
            },
            AuthMethod::ManagedIdentity => Credential::ManagedIdentity {
                endpoint: self
                    .managed_identity_endpoint
                    .clone()
                    .unwrap_or_else(|| Url::parse(IMDS_ENDPOINT).expect("a valid URL")),
                client_id,
            },
        })
    }

    async fn token(
        &self,
        credential: &Credential,
        renew: bool,
    ) -> Result<crate::config::Secret, SourceError> {
        self.tokens
            .token(
                &self.client,
                credential,
                VAULT_RESOURCE,
                self.timeout,
                renew,
            )
            .await
            .map_err(|err| SourceError {
                reason: err.reason,
                message: err.message,
            })
    }

    async fn list_wanted(
        &self,
        ctx: &ProbeContext,
        wanted: &HashSet<String>,
    ) -> Result<Vec<SecretFacts>, SourceError> {
        let credential = self.credential()?;
        ctx.progress.set("getting an Entra ID token");
        let mut token = self.token(&credential, false).await?;
        let mut renewed = false;
        let mut url = self.vault.join("secrets").expect("a relative path joins");
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION)
            .append_pair("maxresults", PAGE_SIZE);
        let host = host_of(&self.vault);
        let mut found = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(SourceError {
                    reason: Reason::TooLarge,
                    message: format!(
                        "{host} lists more than {MAX_PAGES} pages of secrets; stopped there"
                    ),
                });
            }
            ctx.progress.set("listing the vault's secrets");
            let mut request = ApiRequest::get(&url, self.timeout);
            request.body_limit = PAGE_BODY_LIMIT;
            let request = request
                .header(AUTHORIZATION, &format!("Bearer {}", token.expose()))
                .map_err(|err| SourceError {
                    reason: err.reason(),
                    message: err.to_string(),
                })?;
            let response = self.client.send(request).await.map_err(|err| SourceError {
                reason: err.reason(),
                message: format!("vault {err}"),
            })?;
            match response.status {
                StatusCode::OK => {}
                // A token the vault no longer takes (revoked, or the clock
                // of the cache was wrong): one new token, one retry.
                StatusCode::UNAUTHORIZED if !renewed => {
                    renewed = true;
                    ctx.progress.set("renewing the Entra ID token");
                    token = self.token(&credential, true).await?;
                    pages -= 1;
                    continue;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(SourceError {
                        reason: Reason::Auth,
                        message: format!(
                            "{host} refused the token of {} (401{}) after a fresh one",
                            credential.describe(),
                            vault_error_code(&response.body)
                        ),
                    })
                }
                StatusCode::FORBIDDEN => {
                    return Err(SourceError {
                        reason: Reason::Forbidden,
                        message: format!(
                            "{host} denied {} listing secrets (403{}); it needs the Key Vault Secrets User role or a list permission",
                            credential.describe(),
                            vault_error_code(&response.body)
                        ),
                    })
                }
                status => {
                    return Err(SourceError {
                        reason: Reason::Status,
                        message: format!(
                            "{host} answered {status}{} to the secret listing",
                            vault_error_code(&response.body)
                        ),
                    })
                }
            }
            let (facts, next_link) =
                read_secret_page(&response.body, &host).map_err(|err| SourceError {
                    reason: err.reason(),
                    message: err.to_string(),
                })?;
            found.extend(facts.into_iter().filter(|f| wanted.contains(&f.name)));
            match next_link {
                None => return Ok(found),
                Some(next) => {
                    let next = Url::parse(&next).map_err(|err| SourceError {
                        reason: Reason::Protocol,
                        message: format!("{host}'s nextLink is not a URL: {err}"),
                    })?;
                    // The token goes only to the vault itself.
                    if next.origin() != self.vault.origin() {
                        return Err(SourceError {
                            reason: Reason::Protocol,
                            message: format!(
                                "{host}'s nextLink points to another host ({})",
                                host_of(&next)
                            ),
                        });
                    }
                    url = next;
                }
            }
        }
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
        self.list_wanted(ctx, wanted).boxed()
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
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: Option<String>,
        innererror: Option<Box<Inner>>,
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return String::new();
    };
    let mut code = envelope.error.code.clone();
    let mut inner = envelope.error.innererror;
    while let Some(next) = inner {
        if next.code.is_some() {
            code = next.code.clone();
        }
        inner = next.innererror;
    }
    code.filter(|c| c.len() <= 60 && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
        .map(|c| format!(", {c}"))
        .unwrap_or_default()
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
