//! Azure Container Registry tokens for an Entra ID identity, as ACR
//! documents its token service (Azure/acr `docs/AAD-OAuth.md`; the
//! `AcrRefreshToken`/`AcrAccessToken`/`AcrErrors` shapes of its REST
//! specification):
//!
//! 1. The registry answers `401` with `WWW-Authenticate: Bearer
//!    realm="https://R.azurecr.io/oauth2/token",service="R.azurecr.io",scope="repository:REPO:pull"`.
//! 2. `POST /oauth2/exchange` beside the realm, form `grant_type=access_token`,
//!    `service`, `tenant`, `access_token` (an Entra ID token for ACR's
//!    audience, `https://containerregistry.azure.net`, or the ARM one,
//!    `https://management.azure.com`) → `{"refresh_token": "..."}`.
//! 3. `POST` to the realm, form `grant_type=refresh_token`, `service`,
//!    `scope`, `refresh_token` → `{"access_token": "..."}`.
//!
//! Neither answer carries a lifetime; both tokens are JWTs whose `exp`
//! says it (read, not verified: vouch only uses it to know when to ask
//! again). The refresh token is shared by every check on the registry with
//! the same identity and kept until shortly before it expires; a refresh
//! token the realm refuses is exchanged anew once, and an Entra ID token
//! the exchange refuses is fetched anew once, as a rotated key or a
//! revoked session would need.
//!
//! The Entra ID token is sent only to the registry's own host (ACR serves
//! its token endpoints on the login server): a registry whose realm lies
//! elsewhere could otherwise collect a token that is valid for every
//! registry the identity may read (and, with `audience` set to ARM's, for
//! Azure Resource Manager).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hyper::StatusCode;
use serde::Deserialize;
use url::Url;

use super::api_client::{host_of, ApiClient, ApiRequest, ApiResponse};
use super::azure_auth::{send_retrying, TokenCache};
use super::azure_identity::Identity;
use crate::config::ByteSize;
use crate::result::{Failure, Reason};
use crate::secret::{scrub, Secret};

/// ACR's own audience: every registry accepts its tokens, while
/// ARM-audience tokens (`https://management.azure.com`) can be turned off
/// per registry (Azure Policy recommends it), and a token of this audience
/// is good for nothing but registries. The Azure SDK for Go defaults to it.
pub const DEFAULT_AUDIENCE: &str = "https://containerregistry.azure.net";

/// Token answers are small.
const BODY_LIMIT: ByteSize = ByteSize(256 * 1024);
/// A token whose `exp` cannot be read is used for this long at most.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest a token is kept, whatever its `exp` claims.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The refresh token the checks on one registry with one identity share.
#[derive(Default)]
pub struct SharedRefresh {
    slot: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

/// Exchanges an identity's Entra ID token for ACR tokens.
pub struct AcrExchange {
    identity: Identity,
    audience: String,
    client: ApiClient,
    tokens: Arc<TokenCache>,
    timeout: Duration,
    refresh: Arc<SharedRefresh>,
}

/// What the registry's challenge asks for.
pub struct Asked<'a> {
    pub realm: &'a Url,
    pub service: &'a str,
    pub scope: &'a str,
}

#[derive(Deserialize)]
struct RefreshAnswer {
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct AccessAnswer {
    access_token: Option<String>,
}

/// Which of the two calls failed, for messages.
#[derive(Clone, Copy)]
enum Call {
    Exchange,
    Token,
}

impl AcrExchange {
    /// An exchange for the registry at `registry` (its origin keys the
    /// shared refresh token).
    pub fn new(
        identity: Identity,
        audience: String,
        registry: &Url,
        client: ApiClient,
        tokens: Arc<TokenCache>,
        timeout: Duration,
    ) -> AcrExchange {
        let key = format!(
            "acr|{}|{audience}|{}",
            registry.origin().ascii_serialization(),
            identity.key()
        );
        AcrExchange {
            refresh: tokens.shared::<SharedRefresh>(&key),
            identity,
            audience,
            client,
            tokens,
            timeout,
        }
    }

    /// An access token for what the registry asked, and how long after
    /// asking to use it.
    pub async fn access_token(
        &self,
        registry: &Url,
        asked: &Asked<'_>,
    ) -> Result<(Secret, Duration), Failure> {
        let exchange_url = self.exchange_url(registry, asked.realm)?;
        let deadline = Instant::now() + self.timeout;
        let mut slot = self.refresh.slot.lock().await;
        let cached = slot
            .as_ref()
            .filter(|(_, renew_at)| Instant::now() < *renew_at)
            .map(|(token, _)| token.clone());
        let fresh = cached.is_none();
        let refresh = match cached {
            Some(token) => token,
            None => {
                self.exchange(&exchange_url, asked.service, deadline)
                    .await?
            }
        };
        *slot = Some((refresh.clone(), renew_at(&refresh)));
        match self.token(asked, &refresh, deadline).await {
            Err(TokenError {
                unauthorized: true, ..
            }) if !fresh => {
                // Expired or revoked before its `exp`: exchange anew once.
                *slot = None;
                let refresh = self
                    .exchange(&exchange_url, asked.service, deadline)
                    .await?;
                *slot = Some((refresh.clone(), renew_at(&refresh)));
                self.token(asked, &refresh, deadline)
                    .await
                    .map_err(|e| e.failure)
            }
            result => result.map_err(|e| e.failure),
        }
    }

    /// `/oauth2/exchange` beside the realm, if the realm is on the
    /// registry's host and as safe as the registry's scheme.
    fn exchange_url(&self, registry: &Url, realm: &Url) -> Result<Url, Failure> {
        if realm.host_str() != registry.host_str() {
            return Err(Failure::new(
                Reason::Protocol,
                format!(
                    "the registry's token realm is on {}, not on {}; an Entra ID token is only sent to the registry itself",
                    host_of(realm),
                    host_of(registry)
                ),
            ));
        }
        if realm.scheme() != "https" && registry.scheme() == "https" {
            return Err(Failure::new(
                Reason::Protocol,
                format!(
                    "the registry's token realm on {} is not https",
                    host_of(realm)
                ),
            ));
        }
        realm.join("exchange").map_err(|err| {
            Failure::new(
                Reason::Protocol,
                format!("no exchange URL beside the realm: {err}"),
            )
        })
    }

    /// An ACR refresh token for the identity's Entra ID token; a refused
    /// Entra ID token is fetched anew once.
    async fn exchange(
        &self,
        url: &Url,
        service: &str,
        deadline: Instant,
    ) -> Result<Secret, Failure> {
        let credential = self.identity.credential(None)?;
        let tenant = match &credential {
            super::azure_auth::Credential::WorkloadIdentity { tenant_id, .. }
            | super::azure_auth::Credential::ClientSecret { tenant_id, .. } => {
                Some(tenant_id.clone())
            }
            super::azure_auth::Credential::ManagedIdentity { .. } => self.identity.tenant(),
        };
        let mut renew = false;
        loop {
            let entra = self
                .tokens
                .token(
                    &self.client,
                    &credential,
                    &self.audience,
                    self.timeout,
                    renew,
                )
                .await?;
            let mut form = vec![
                ("grant_type", "access_token"),
                ("service", service),
                ("access_token", entra.expose()),
            ];
            if let Some(tenant) = &tenant {
                form.push(("tenant", tenant.as_str()));
            }
            let response = self.post(url, &form, deadline).await?;
            if response.status == StatusCode::UNAUTHORIZED && !renew {
                renew = true;
                continue;
            }
            let secrets = [entra.expose()];
            if !response.status.is_success() {
                return Err(refusal(
                    Call::Exchange,
                    url,
                    &response,
                    &credential.describe(),
                    &secrets,
                ));
            }
            let answer: RefreshAnswer = response
                .json(&host_of(url))
                .map_err(|err| Failure::new(err.reason(), err.to_string()))?;
            return answer
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(Secret::new)
                .ok_or_else(|| {
                    Failure::new(
                        Reason::Json,
                        format!(
                            "{} answered the exchange without a refresh_token",
                            host_of(url)
                        ),
                    )
                });
        }
    }

    /// An access token for the asked scope; `unauthorized` when the realm
    /// refuses the refresh token (401), which a new exchange may cure.
    async fn token(
        &self,
        asked: &Asked<'_>,
        refresh: &Secret,
        deadline: Instant,
    ) -> Result<(Secret, Duration), TokenError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("service", asked.service),
            ("scope", asked.scope),
            ("refresh_token", refresh.expose()),
        ];
        let response = self
            .post(asked.realm, &form, deadline)
            .await
            .map_err(TokenError::other)?;
        if !response.status.is_success() {
            let what = format!("a token for {}", asked.scope);
            return Err(TokenError {
                unauthorized: response.status == StatusCode::UNAUTHORIZED,
                failure: refusal(
                    Call::Token,
                    asked.realm,
                    &response,
                    &what,
                    &[refresh.expose()],
                ),
            });
        }
        let host = host_of(asked.realm);
        let answer: AccessAnswer = response
            .json(&host)
            .map_err(|err| TokenError::other(Failure::new(err.reason(), err.to_string())))?;
        let token = answer
            .access_token
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or_else(|| {
                TokenError::other(Failure::new(
                    Reason::Json,
                    format!("{host} answered without an access_token"),
                ))
            })?;
        let use_for = use_for(&token);
        Ok((token, use_for))
    }

    async fn post(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<ApiResponse, Failure> {
        let build = |left: Duration| {
            let mut request = ApiRequest::get(url, left).form(form);
            request.body_limit = BODY_LIMIT;
            Ok(request)
        };
        let (response, _) = send_retrying(&self.client, deadline, false, build)
            .await
            .map_err(|err| Failure::new(err.reason(), err.to_string()))?;
        Ok(response)
    }
}

/// Why the realm gave no access token; `unauthorized` when it refused
/// the refresh token.
struct TokenError {
    failure: Failure,
    unauthorized: bool,
}

impl TokenError {
    fn other(failure: Failure) -> Self {
        TokenError {
            failure,
            unauthorized: false,
        }
    }
}

/// The failure for a refused exchange or token call: the status, and the
/// service's error code and message (which never hold a token: any that
/// was sent is scrubbed out).
fn refusal(call: Call, url: &Url, response: &ApiResponse, whose: &str, sent: &[&str]) -> Failure {
    let host = host_of(url);
    let detail = scrub(&acr_error(&response.body), sent);
    let reason = match response.status.as_u16() {
        400 | 401 => Reason::Auth,
        403 => Reason::Forbidden,
        _ => Reason::Status,
    };
    let message = match call {
        Call::Exchange => format!(
            "{host} refused to exchange the Entra ID token of {whose} for a registry token ({}){detail}",
            response.status
        ),
        Call::Token => format!(
            "the token realm {host} refused {whose} for the exchanged refresh token ({}){detail}",
            response.status
        ),
    };
    Failure::new(reason, message)
}

/// `: CODE: message` of an ACR error body (`{"errors":[{"code","message"}]}`),
/// the message only when it is short plain text.
fn acr_error(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let Some(entry) = serde_json::from_slice::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
    else {
        return String::new();
    };
    let plain = |t: &String| {
        !t.is_empty() && t.len() <= 200 && t.chars().all(|c| c.is_ascii_graphic() || c == ' ')
    };
    let code = entry.code.filter(plain);
    let message = entry.message.filter(plain);
    match (code, message) {
        (Some(code), Some(message)) => format!(": {code}: {message}"),
        (Some(text), None) | (None, Some(text)) => format!(": {text}"),
        (None, None) => String::new(),
    }
}

/// The `exp` claim of a JWT, unverified.
fn expiry(token: &Secret) -> Option<u64> {
    #[derive(Deserialize)]
    struct Claims {
        exp: Option<u64>,
    }
    let payload = token.expose().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Claims>(&bytes).ok()?.exp
}

/// How long from now to use a token: until a little before its `exp`
/// (a quarter of what is left, at most five minutes), or
/// [`UNKNOWN_LIFETIME`] when it has none.
fn use_for(token: &Secret) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    match expiry(token) {
        Some(exp) => {
            let left = Duration::from_secs(exp.saturating_sub(now)).min(MAX_LIFETIME);
            left - (left / 4).min(Duration::from_secs(300))
        }
        None => UNKNOWN_LIFETIME,
    }
}

fn renew_at(token: &Secret) -> Instant {
    Instant::now() + use_for(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> Secret {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Secret::new(format!(
            "{}.{}.sig",
            b64.encode(r#"{"alg":"RS256"}"#),
            b64.encode(claims)
        ))
    }

    #[test]
    fn a_token_is_used_until_shortly_before_its_exp() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let hour = use_for(&jwt(&format!(r#"{{"exp":{}}}"#, now + 3600)));
        assert!(hour <= Duration::from_secs(3300) && hour >= Duration::from_secs(3290));
        let minute = use_for(&jwt(&format!(r#"{{"exp":{}}}"#, now + 60)));
        assert!(minute <= Duration::from_secs(45));
        assert_eq!(
            use_for(&jwt(&format!(r#"{{"exp":{}}}"#, now - 10))),
            Duration::ZERO
        );
        assert_eq!(use_for(&Secret::new("opaque".into())), UNKNOWN_LIFETIME);
        assert_eq!(
            use_for(&jwt(r#"{"exp":18446744073709551615}"#)),
            MAX_LIFETIME - Duration::from_secs(300)
        );
    }

    #[test]
    fn acr_errors_give_code_and_plain_message() {
        assert_eq!(
            acr_error(
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
            ),
            ": UNAUTHORIZED: authentication required"
        );
        assert_eq!(acr_error(b"<html>"), "");
        assert_eq!(
            acr_error(br#"{"errors":[{"code":"DENIED","message":"a\nb"}]}"#),
            ": DENIED"
        );
    }
}
