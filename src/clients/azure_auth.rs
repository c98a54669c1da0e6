//! Azure AD (Entra ID) access tokens the way AKS workloads get them:
//! workload identity (a federated service-account token exchanged with the
//! client-assertion flow), managed identity (the instance metadata
//! service), or a client secret from a file for development.
//!
//! These are the documented REST calls, not Microsoft's `azure_identity`
//! crate: that crate brings its own HTTP stack (reqwest) with its own TLS
//! roots, so a test CA (`ca_file`) and vouch's body limits and error
//! scrubbing could not be applied, and its credential chain reads the
//! environment at construction, which is not where vouch decides.
//!
//! Tokens live in one [`TokenCache`] per process, keyed by identity and
//! resource, so checks on the same identity share a token. A token is
//! renewed when less than [`RENEW_BEFORE`] of its life is left (as the Azure
//! SDKs do), and on demand when the resource answered 401.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyper::header::HeaderName;
use serde::Deserialize;
use url::Url;

use crate::clients::api_client::{host_of, ApiClient, ApiError, ApiRequest};
use crate::config::{ByteSize, Secret, SecretSource};
use crate::result::Reason;

/// A token with less life left than this is fetched anew.
pub const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);
/// Where Entra ID lives unless AZURE_AUTHORITY_HOST or the config says
/// otherwise.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
/// The instance metadata service's token endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

const TOKEN_BODY_LIMIT: ByteSize = ByteSize(256 * 1024);

/// How a check proves who it is, resolved for one run (environment
/// variables are read then, so a validating machine needs none of them).
#[derive(Clone, Debug)]
pub enum Credential {
    /// Client-assertion flow with a federated token file (AKS workload
    /// identity).
    WorkloadIdentity {
        authority: Url,
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    /// Client-credentials flow with a secret (development).
    ClientSecret {
        authority: Url,
        tenant_id: String,
        client_id: String,
        secret: SecretSource,
    },
    /// The instance metadata service (system-assigned, or the user-assigned
    /// identity `client_id`).
    ManagedIdentity {
        endpoint: Url,
        client_id: Option<String>,
    },
}

impl Credential {
    /// A short description for messages (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Credential::WorkloadIdentity { client_id, .. } => {
                format!("workload identity {client_id}")
            }
            Credential::ClientSecret { client_id, .. } => format!("client {client_id}"),
            Credential::ManagedIdentity {
                client_id: Some(id),
                ..
            } => format!("managed identity {id}"),
            Credential::ManagedIdentity {
                client_id: None, ..
            } => "the system-assigned managed identity".to_string(),
        }
    }

    fn cache_key(&self, resource: &str) -> String {
        match self {
            Credential::WorkloadIdentity {
                authority,
                tenant_id,
                client_id,
                token_file,
            } => format!(
                "wi|{authority}|{tenant_id}|{client_id}|{}|{resource}",
                token_file.display()
            ),
            Credential::ClientSecret {
                authority,
                tenant_id,
                client_id,
                secret,
            } => format!("cs|{authority}|{tenant_id}|{client_id}|{secret:?}|{resource}"),
            Credential::ManagedIdentity {
                endpoint,
                client_id,
            } => format!("mi|{endpoint}|{client_id:?}|{resource}"),
        }
    }
}

/// Why no token could be had.
pub type TokenError = crate::result::Failure;

struct CachedToken {
    token: Secret,
    renew_at: Instant,
}

/// Tokens by identity and resource, shared by every check of the process.
#[derive(Default)]
pub struct TokenCache {
    tokens: tokio::sync::Mutex<HashMap<String, CachedToken>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct EntraAnswer {
    access_token: Option<String>,
    expires_in: Option<NumberOrText>,
}

#[derive(Deserialize)]
struct EntraError {
    error: Option<String>,
    error_codes: Option<Vec<u64>>,
}

/// IMDS gives numbers as strings, Entra ID as numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

impl NumberOrText {
    fn seconds(&self) -> Option<u64> {
        match self {
            NumberOrText::Number(n) => Some(*n),
            NumberOrText::Text(t) => t.trim().parse().ok(),
        }
    }
}

impl TokenCache {
    /// A token for `resource` (`https://vault.azure.net`): the cached one
    /// unless it is close to expiry or `renew` asks for a new one.
    pub async fn token(
        &self,
        client: &ApiClient,
        credential: &Credential,
        resource: &str,
        timeout: Duration,
        renew: bool,
    ) -> Result<Secret, TokenError> {
        let key = credential.cache_key(resource);
        // Held across the fetch: checks on one identity wait for one fetch
        // rather than each asking for a token.
        let mut tokens = self.tokens.lock().await;
        if !renew {
            if let Some(cached) = tokens.get(&key).filter(|t| Instant::now() < t.renew_at) {
                return Ok(cached.token.clone());
            }
        }
        tokens.remove(&key);
        let asked = Instant::now();
        let (token, lifetime) = fetch(client, credential, resource, timeout).await?;
        let renew_at = asked + lifetime.saturating_sub(RENEW_BEFORE);
        tokens.insert(
            key,
            CachedToken {
                token: token.clone(),
                renew_at,
            },
        );
        Ok(token)
    }
}

fn token_error(reason: Reason, message: impl Into<String>) -> TokenError {
    TokenError {
        reason,
        message: message.into(),
    }
}

fn from_api(err: ApiError, credential: &Credential) -> TokenError {
    token_error(
        err.reason(),
        format!("getting a token for {}: {err}", credential.describe()),
    )
}

async fn fetch(
    client: &ApiClient,
    credential: &Credential,
    resource: &str,
    timeout: Duration,
) -> Result<(Secret, Duration), TokenError> {
    let scope = format!("{}/.default", resource.trim_end_matches('/'));
    let (url, request_secret): (Url, Option<Secret>) = match credential {
        Credential::WorkloadIdentity {
            authority,
            tenant_id,
            token_file,
            ..
        } => {
            let assertion = SecretSource::File(token_file.clone())
                .read()
                .map_err(|err| {
                    token_error(
                        Reason::Secret,
                        format!("workload identity: cannot read the federated token: {err}"),
                    )
                })?;
            (token_url(authority, tenant_id)?, Some(assertion))
        }
        Credential::ClientSecret {
            authority,
            tenant_id,
            secret,
            ..
        } => {
            let secret = secret.read().map_err(|err| {
                token_error(
                    Reason::Secret,
                    format!("cannot read the client secret: {err}"),
                )
            })?;
            (token_url(authority, tenant_id)?, Some(secret))
        }
        Credential::ManagedIdentity {
            endpoint,
            client_id,
        } => {
            let mut url = endpoint.clone();
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("api-version", "2018-02-01");
                query.append_pair("resource", resource);
                if let Some(id) = client_id {
                    query.append_pair("client_id", id);
                }
            }
            (url, None)
        }
    };
    let mut request = ApiRequest::get(&url, timeout);
    request.body_limit = TOKEN_BODY_LIMIT;
    request = match (credential, &request_secret) {
        (Credential::WorkloadIdentity { client_id, .. }, Some(assertion)) => request.form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", &scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.expose()),
        ]),
        (Credential::ClientSecret { client_id, .. }, Some(secret)) => request.form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", &scope),
            ("client_secret", secret.expose()),
        ]),
        _ => request
            .header(HeaderName::from_static("metadata"), "true")
            .map_err(|err| from_api(err, credential))?,
    };
    let response = client
        .send(request)
        .await
        .map_err(|err| from_api(err, credential))?;
    let host = host_of(&url);
    if !response.status.is_success() {
        // Entra ID's error word and AADSTS numbers say what is wrong; its
        // description may quote request details and is left out.
        let detail = serde_json::from_slice::<EntraError>(&response.body)
            .ok()
            .map(|e| {
                let mut text = e.error.unwrap_or_default();
                if let Some(codes) = e.error_codes.filter(|c| !c.is_empty()) {
                    let codes: Vec<String> = codes.iter().map(|c| format!("AADSTS{c}")).collect();
                    text.push_str(&format!(" ({})", codes.join(", ")));
                }
                text
            })
            .filter(|t| {
                !t.is_empty()
                    && t.len() < 200
                    && t.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            })
            .map(|t| format!(": {t}"))
            .unwrap_or_default();
        let reason = match response.status.as_u16() {
            400 | 401 => Reason::Auth,
            403 => Reason::Forbidden,
            _ => Reason::Status,
        };
        return Err(token_error(
            reason,
            format!(
                "the token endpoint {host} refused {} ({}){detail}",
                credential.describe(),
                response.status
            ),
        ));
    }
    let answer: EntraAnswer = response
        .json(&host)
        .map_err(|err| from_api(err, credential))?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            token_error(
                Reason::Json,
                format!("the token endpoint {host} answered without an access_token"),
            )
        })?;
    let lifetime = answer
        .expires_in
        .and_then(|e| e.seconds())
        .map(Duration::from_secs)
        .unwrap_or(Duration::ZERO);
    Ok((Secret::new(token), lifetime))
}

fn token_url(authority: &Url, tenant_id: &str) -> Result<Url, TokenError> {
    let base = if authority.path().ends_with('/') {
        authority.clone()
    } else {
        let mut with_slash = authority.clone();
        with_slash.set_path(&format!("{}/", authority.path()));
        with_slash
    };
    base.join(&format!("{tenant_id}/oauth2/v2.0/token"))
        .map_err(|err| token_error(Reason::Auth, format!("bad authority host: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_url_keeps_the_authority_path() {
        let url = token_url(
            &Url::parse("https://login.microsoftonline.com").unwrap(),
            "t1",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        let url = token_url(&Url::parse("https://localhost:8443/aad").unwrap(), "t1").unwrap();
        assert_eq!(
            url.as_str(),
            "https://localhost:8443/aad/t1/oauth2/v2.0/token"
        );
    }

    #[test]
    fn imds_numbers_may_be_text() {
        let answer: EntraAnswer =
            serde_json::from_str(r#"{"access_token":"x","expires_in":"3599"}"#).unwrap();
        assert_eq!(answer.expires_in.unwrap().seconds(), Some(3599));
    }
}
