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
//! SDKs do), and on demand when the resource answered 401. Each key has its
//! own fetch: checks asking for a key's token while it is being fetched
//! wait for that fetch (no lock is held meanwhile, and each waits no
//! longer than its own run's deadline), while checks of other identities
//! or resources go on, so one throttled or hanging identity stalls nobody
//! else. The same cache
//! holds what checks of one Azure resource share ([`TokenCache::shared`]:
//! a vault's challenge and listing).
//!
//! Azure services and the managed-identity endpoint answer `429` when
//! throttling and `5xx` when briefly unwell; [`send_retrying`] retries
//! those within the run's deadline, waiting what `Retry-After` (or
//! `retry-after-ms`, `x-ms-retry-after-ms`) asks, else backing off from
//! 0.8 s, as the Azure SDKs' retry policies do.

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper::header::{HeaderMap, HeaderName};
use hyper::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::clients::api_client::{host_of, ApiClient, ApiError, ApiRequest, ApiResponse};
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

/// What a fetch under way will publish: `None` until it ends.
type FetchResult = Option<Result<Secret, TokenError>>;

/// A fetch under way for one key.
struct Fetching {
    id: u64,
    done: tokio::sync::watch::Receiver<FetchResult>,
}

/// One identity's token for one resource, and its fetch under way.
#[derive(Default)]
struct Slot {
    cached: Option<CachedToken>,
    fetching: Option<Fetching>,
}

/// Tokens by identity and resource, shared by every check of the process,
/// and state shared by the checks of one Azure resource. The mutexes are
/// only held to look at or change the maps, never across a request.
#[derive(Default)]
pub struct TokenCache {
    tokens: std::sync::Mutex<HashMap<String, Slot>>,
    fetches: std::sync::atomic::AtomicU64,
    shared: std::sync::Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

/// What a check asking for a token does when none is cached: fetch it
/// (as fetch `id`, publishing the result), or wait for the fetch under way.
enum Next {
    Fetch(u64, tokio::sync::watch::Sender<FetchResult>),
    Wait(tokio::sync::watch::Receiver<FetchResult>),
}

/// Clears the key's fetch when the fetching future ends or is dropped (its
/// check cancelled at its deadline): a waiter then fetches itself.
struct FetchGuard<'a> {
    cache: &'a TokenCache,
    key: &'a str,
    id: u64,
}

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        let mut tokens = self.cache.slots();
        if let Some(slot) = tokens.get_mut(self.key) {
            if slot.fetching.as_ref().is_some_and(|f| f.id == self.id) {
                slot.fetching = None;
            }
        }
    }
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
    /// The state of type `T` every check naming `key` shares (created
    /// empty by the first): one vault's challenge and listing.
    pub fn shared<T: Default + Send + Sync + 'static>(&self, key: &str) -> Arc<T> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let entry = shared
            .entry(format!("{}|{key}", std::any::type_name::<T>()))
            .or_insert_with(|| Arc::new(T::default()));
        match entry.clone().downcast::<T>() {
            Ok(state) => state,
            Err(_) => unreachable!("the key names the type"),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A token for `resource` (`https://vault.azure.net`): the cached one
    /// unless it is close to expiry or `renew` asks for a new one. While
    /// the identity's token for `resource` is being fetched, waits for that
    /// fetch rather than asking too; gives up when `timeout` has passed.
    pub async fn token(
        &self,
        client: &ApiClient,
        credential: &Credential,
        resource: &str,
        timeout: Duration,
        renew: bool,
    ) -> Result<Secret, TokenError> {
        let key = credential.cache_key(resource);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = {
                let mut tokens = self.slots();
                let slot = tokens.entry(key.clone()).or_default();
                if !renew {
                    if let Some(cached) =
                        slot.cached.as_ref().filter(|t| Instant::now() < t.renew_at)
                    {
                        return Ok(cached.token.clone());
                    }
                }
                match &slot.fetching {
                    Some(fetching) => Next::Wait(fetching.done.clone()),
                    None => {
                        let id = self
                            .fetches
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let (publish, done) = tokio::sync::watch::channel(None);
                        slot.cached = None;
                        slot.fetching = Some(Fetching { id, done });
                        Next::Fetch(id, publish)
                    }
                }
            };
            let mut waiting = match next {
                Next::Fetch(id, publish) => {
                    return self
                        .fetch_for(client, credential, resource, &key, id, deadline, publish)
                        .await
                }
                Next::Wait(waiting) => waiting,
            };
            // Another check of this identity is fetching: wait for it, no
            // longer than this run may.
            let waited = tokio::time::timeout_at(deadline, waiting.wait_for(Option::is_some))
                .await
                .map(|result| result.map(|r| r.clone().expect("waited for Some")));
            match waited {
                // The fetch ran out of its own run's time, which may end
                // before this one's: ask (or wait) anew.
                Ok(Ok(Err(err))) if err.reason == Reason::Timeout => continue,
                Ok(Ok(result)) => return result,
                // The fetching check was cancelled: fetch (or wait) anew.
                Ok(Err(_)) => continue,
                Err(_) => {
                    return Err(token_error(
                        Reason::Timeout,
                        format!(
                            "no token for {} within {}: another check's request for it has not been answered",
                            credential.describe(),
                            crate::config::format_duration(timeout)
                        ),
                    ))
                }
            }
        }
    }

    /// Fetches the key's token (no lock held), keeps it, and gives the
    /// result to the checks waiting for it.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_for(
        &self,
        client: &ApiClient,
        credential: &Credential,
        resource: &str,
        key: &str,
        id: u64,
        deadline: tokio::time::Instant,
        publish: tokio::sync::watch::Sender<FetchResult>,
    ) -> Result<Secret, TokenError> {
        let guard = FetchGuard {
            cache: self,
            key,
            id,
        };
        let asked = Instant::now();
        let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result =
            match tokio::time::timeout_at(deadline, fetch(client, credential, resource, timeout))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(token_error(
                    Reason::Timeout,
                    format!(
                        "no token for {} within {}",
                        credential.describe(),
                        crate::config::format_duration(timeout)
                    ),
                )),
            };
        let result = result.map(|(token, lifetime)| {
            let renew_at = asked + lifetime.saturating_sub(RENEW_BEFORE);
            let mut tokens = self.slots();
            if let Some(slot) = tokens.get_mut(key) {
                slot.cached = Some(CachedToken {
                    token: token.clone(),
                    renew_at,
                });
            }
            token
        });
        drop(guard);
        publish.send_replace(Some(result.clone()));
        result
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
    let (url, request_secret) = token_endpoint(credential, resource, timeout).await?;
    let build = |left: Duration| {
        let mut request = ApiRequest::get(&url, left);
        request.body_limit = TOKEN_BODY_LIMIT;
        Ok(match (credential, &request_secret) {
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
            _ => request.header(HeaderName::from_static("metadata"), "true")?,
        })
    };
    let imds = matches!(credential, Credential::ManagedIdentity { .. });
    let (response, retried) = send_retrying(client, Instant::now() + timeout, imds, build)
        .await
        .map_err(|err| from_api(err, credential))?;
    let host = host_of(&url);
    if !response.status.is_success() {
        return Err(refusal(&response, &host, credential, &retried));
    }
    token_of(&response, &host, credential)
}

/// Where the token is asked for, and the secret the request carries (the
/// federated token or the client secret, read now; none for a managed
/// identity).
async fn token_endpoint(
    credential: &Credential,
    resource: &str,
    timeout: Duration,
) -> Result<(Url, Option<Secret>), TokenError> {
    Ok(match credential {
        Credential::WorkloadIdentity {
            authority,
            tenant_id,
            token_file,
            ..
        } => {
            // Off the async workers and capped, like every secret file; a
            // read that blocks is named within half the run's time.
            let assertion = SecretSource::File(token_file.clone())
                .read_before(timeout / 2)
                .await
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
            let secret = secret.read_before(timeout / 2).await.map_err(|err| {
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
    })
}

/// The error of an answer that is not a success. Entra ID's error word
/// and AADSTS numbers say what is wrong; its description may quote
/// request details and is left out.
fn refusal(
    response: &ApiResponse,
    host: &str,
    credential: &Credential,
    retried: &str,
) -> TokenError {
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
            !t.is_empty() && t.len() < 200 && t.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        })
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    let reason = match response.status.as_u16() {
        400 | 401 => Reason::Auth,
        403 => Reason::Forbidden,
        _ => Reason::Status,
    };
    token_error(
        reason,
        format!(
            "the token endpoint {host} refused {} ({}){detail}{retried}",
            credential.describe(),
            response.status
        ),
    )
}

/// The token and its lifetime from a successful answer.
fn token_of(
    response: &ApiResponse,
    host: &str,
    credential: &Credential,
) -> Result<(Secret, Duration), TokenError> {
    let answer: EntraAnswer = response
        .json(host)
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

/// Whether an answer is worth asking again: throttled (429) or briefly
/// unwell (408, 500, 502, 503, 504). The managed-identity endpoint also
/// answers 404 and 410 while an identity is being assigned, and the Azure
/// SDKs retry those from it.
pub fn transient(status: StatusCode, imds: bool) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
        || (imds && matches!(status.as_u16(), 404 | 410))
}

/// How long an answer asks to wait before the next try: `retry-after-ms`
/// or `x-ms-retry-after-ms` (milliseconds), else `Retry-After` (seconds or
/// an HTTP date).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = text(name).and_then(|t| t.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    let value = text("retry-after")?;
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        SystemTime::from(date)
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    )
}

/// The wait before try `n + 1` when the answer names none: 0.8 s doubling,
/// at most 8 s.
fn backoff(tries: u32) -> Duration {
    Duration::from_millis(800 * 2u64.pow(tries.saturating_sub(1).min(3)))
}

/// Least time a try needs to be worth making.
const LEAST_TRY: Duration = Duration::from_millis(500);
/// Tries at most, however much time is left.
const MAX_TRIES: u32 = 5;

/// Sends the request `build` makes (given the time left) and, while the
/// answer is [`transient`] (or, from the managed-identity endpoint, the
/// connection failed), sends it again after the wait the answer asks for,
/// as long as that leaves time before `deadline`. Returns the last answer
/// and, if it is still transient, why no further try was made (`; ...`).
pub async fn send_retrying<'u>(
    client: &ApiClient,
    deadline: Instant,
    imds: bool,
    build: impl Fn(Duration) -> Result<ApiRequest<'u>, ApiError>,
) -> Result<(ApiResponse, String), ApiError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let sent = client.send(build(left.max(LEAST_TRY))?).await;
        let (wait, asked) = match &sent {
            Ok(response) if transient(response.status, imds) => {
                match retry_after(&response.headers, SystemTime::now()) {
                    Some(wait) => (wait, true),
                    None => (backoff(tries), false),
                }
            }
            Err(ApiError::Refused { .. } | ApiError::Connect { .. }) if imds => {
                (backoff(tries), false)
            }
            _ => return sent.map(|response| (response, String::new())),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if tries >= MAX_TRIES || wait + LEAST_TRY > left {
            let why = if tries >= MAX_TRIES {
                format!("; gave up after {tries} tries")
            } else {
                format!(
                    "; {} tries, and the next wait ({}{}) would pass the run's deadline",
                    tries,
                    crate::config::format_duration(wait),
                    if asked { ", as Retry-After asks" } else { "" }
                )
            };
            return sent.map(|response| (response, why));
        }
        tokio::time::sleep(wait).await;
    }
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
    fn retry_after_takes_milliseconds_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(HeaderName::from_static(name), value.parse().unwrap());
            }
            map
        };
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "7"), ("x-ms-retry-after-ms", "1500")]),
                now
            ),
            Some(Duration::from_millis(1500))
        );
        // 2015-10-21T07:28:00Z is 1445412480; 20 s later.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:20 GMT")]),
                now
            ),
            Some(Duration::from_secs(20))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn throttling_and_passing_trouble_are_transient() {
        for status in [429, 500, 502, 503, 504] {
            assert!(transient(StatusCode::from_u16(status).unwrap(), false));
        }
        for status in [400, 401, 403, 404, 501] {
            assert!(!transient(StatusCode::from_u16(status).unwrap(), false));
        }
        assert!(transient(StatusCode::NOT_FOUND, true));
        assert_eq!(backoff(1), Duration::from_millis(800));
        assert_eq!(backoff(9), Duration::from_millis(6400));
    }

    #[test]
    fn imds_numbers_may_be_text() {
        let answer: EntraAnswer =
            serde_json::from_str(r#"{"access_token":"x","expires_in":"3599"}"#).unwrap();
        assert_eq!(answer.expires_in.unwrap().seconds(), Some(3599));
    }
}
