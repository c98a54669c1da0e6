//! A protocol-faithful fake of Azure Key Vault (REST api-version 7.5) and
//! of the Entra ID token endpoints an AKS workload uses, over TLS with a
//! generated CA, on one random loopback port:
//!
//! - `GET /secrets?api-version=7.5&maxresults=N` lists secret properties
//!   (`value[].id`, `value[].attributes.{enabled,created,updated,exp,nbf,
//!   recoveryLevel,recoverableDays}`, `tags`; certificate-backed secrets
//!   also `contentType: application/x-pkcs12`, `managed: true`, `kid`) in
//!   pages of at most 25, with an absolute `nextLink` carrying a
//!   `$skiptoken`, `null` on the last page. Names keep the case they were
//!   created with. As real vaults do on request: empty pages that still
//!   carry a `nextLink` ([`FakeKeyVault::set_empty_pages`]), and next links
//!   with another api-version ([`FakeKeyVault::set_next_link_api_version`];
//!   any of Key Vault's api-versions is accepted). A real vault writes
//!   `:443` into next links; so does the fake under a real vault's name
//!   ([`FakeKeyVault::start_as`]); on loopback its links carry its own
//!   port, which its URL has too.
//! - `GET /secrets/{name}[/{version}]` returns the value (so a test can
//!   prove vouch never asks for it).
//! - Without a bearer token, or with one it does not know: 401 with the
//!   challenge `WWW-Authenticate: Bearer authorization="https://login.windows.net/{tenant}",
//!   resource="{resource}"` (`login.microsoftonline.com` on request). The
//!   resource is the fake's domain, `https://localhost` (a real vault names
//!   its cloud's, `https://vault.azure.net`, whose subdomain it is; without
//!   a resolver, loopback has no subdomains); Entra ID issues tokens only
//!   for that audience, and for the other audiences a test names
//!   ([`FakeKeyVault::issue_also_for`], as ACR's for a registry fake); the
//!   vault refuses a token of another audience (401, `AKV10022`). A token
//!   of a principal without access: 403
//!   `ForbiddenByRbac` (or another inner code on request:
//!   `ForbiddenByFirewall`, `ForbiddenByPolicy`). A missing api-version: 400.
//! - Throttling and trouble on request: the next N vault requests get 429
//!   with `Retry-After` (Key Vault's `Throttled` error) or a 5xx, and the
//!   next N managed-identity requests a 5xx or 429.
//! - `POST /{tenant}/oauth2/v2.0/token`: client credentials with
//!   `client_secret` or with a federated `client_assertion`; Entra ID's
//!   error JSON (`error`, `error_description`, `error_codes`) on refusal.
//! - `GET /metadata/identity/oauth2/token` (IMDS, needs `Metadata: true`).
//!
//! Every request is recorded; token requests are counted by flow.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::certs::{TestCa, Validity};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "5e2ab6b1-9f3c-4c1e-a8a5-vouch0000001";
pub const CLIENT_SECRET: &str = "fake-client-secret-Zq8~never-print";
pub const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.fake-service-account-token.sig";
pub const MANAGED_IDENTITY_CLIENT_ID: &str = "0d8a7e6c-mi00-4b1a-9c3d-vouch0000002";
/// The audience the fake's challenge names by default (see above).
pub const VAULT_RESOURCE: &str = "https://localhost";

/// One secret in the fake vault (times in Unix seconds).
#[derive(Clone, Debug)]
pub struct FakeSecret {
    pub value: String,
    pub enabled: bool,
    pub created: i64,
    pub updated: i64,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    /// Backs a Key Vault certificate (`managed: true`, PKCS#12 content).
    pub certificate: bool,
}

impl FakeSecret {
    /// An enabled secret written `age_days` ago.
    pub fn aged(value: &str, age_days: i64) -> FakeSecret {
        let written = now() - age_days * 86_400;
        FakeSecret {
            value: value.to_string(),
            enabled: true,
            created: written,
            updated: written,
            exp: None,
            nbf: None,
            certificate: false,
        }
    }

    /// The secret Key Vault keeps for a certificate issued `age_days` ago
    /// that expires in `expires_in_days`: its attributes are the
    /// certificate's (`nbf` its start, `exp` its end).
    pub fn certificate(age_days: i64, expires_in_days: i64) -> FakeSecret {
        let issued = now() - age_days * 86_400;
        FakeSecret {
            nbf: Some(issued),
            exp: Some(now() + expires_in_days * 86_400),
            certificate: true,
            ..FakeSecret::aged("MIIKPAIBAzCCCfwGCSqGSIb3DQEHAaCCCe0-fake-pfx", age_days)
        }
    }
}

/// Answers the fake gives instead of the normal one, N times.
#[derive(Clone, Debug, Default)]
struct Trouble {
    /// Vault requests: (status, Retry-After seconds).
    vault: Vec<(u16, Option<u64>)>,
    /// Managed-identity requests: status.
    imds: Vec<u16>,
}

/// A token request the fake answered, by flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// `client_secret`, `federated` or `managed_identity`.
    pub flow: &'static str,
    pub client_id: Option<String>,
    pub granted: bool,
}

#[derive(Default)]
struct State {
    secrets: BTreeMap<String, FakeSecret>,
    /// Issued access token → (principal (client ID), audience).
    tokens: HashMap<String, (String, String)>,
    /// Principals with a role on the vault.
    readers: HashSet<String>,
    token_requests: Vec<TokenRequest>,
    /// `METHOD path?query` of every request.
    requests: Vec<String>,
    token_lifetime_secs: u64,
    issued: u64,
    /// Every token ever issued (kept when `tokens` is cleared).
    all_issued: Vec<String>,
    client_secret: String,
    /// Host of the authorization URL in the challenge.
    login_host: String,
    /// The audience the challenge names and Entra ID issues.
    resource: String,
    /// Further audiences Entra ID issues tokens for (not the vault's).
    other_audiences: Vec<String>,
    forbidden_code: String,
    empty_pages: usize,
    next_link_api_version: String,
    /// What next links start with, when not the fake's loopback URL.
    base: Option<String>,
    trouble: Trouble,
    /// While true, vault requests are read and never answered.
    hang: bool,
    /// While true, managed-identity requests are read and never answered.
    hang_imds: bool,
    /// Managed-identity requests left unanswered so far.
    imds_hung: usize,
    /// Told of each managed-identity request left unanswered.
    imds_hung_notify: Arc<tokio::sync::Notify>,
    /// What a listing with a valid token answers instead (200), when set.
    listing_body: Option<Vec<u8>>,
    /// When each vault request arrived.
    vault_request_times: Vec<std::time::Instant>,
}

pub struct FakeKeyVault {
    pub addr: SocketAddr,
    pub ca: TestCa,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKeyVault {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl FakeKeyVault {
    /// A vault where the app registration and the managed identity may
    /// read secrets; tokens live an hour.
    pub async fn start() -> FakeKeyVault {
        Self::start_as(&["localhost"], None).await
    }

    /// The fake answering under a real vault's names (reached through
    /// `--connect-to`): its certificate carries `names` (the vault's and
    /// the login host's), and its next links start with `base`
    /// (`https://VAULT`, port 443 implied, as a real vault writes them)
    /// instead of its loopback URL.
    pub async fn start_as(names: &[&str], base: Option<&str>) -> FakeKeyVault {
        let ca = TestCa::new("Vouch Test Azure CA");
        let identity = ca.issue(names, Validity::ValidFor { days: 30 });
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key())
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            readers: [
                CLIENT_ID.to_string(),
                MANAGED_IDENTITY_CLIENT_ID.to_string(),
            ]
            .into_iter()
            .collect(),
            token_lifetime_secs: 3600,
            client_secret: CLIENT_SECRET.to_string(),
            login_host: "login.windows.net".to_string(),
            resource: VAULT_RESOURCE.to_string(),
            forbidden_code: "ForbiddenByRbac".to_string(),
            next_link_api_version: "7.5".to_string(),
            base: base.map(str::to_string),
            ..State::default()
        }));
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let state = state.clone();
                    tokio::spawn(async move {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |request| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(request, &state, addr).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        FakeKeyVault {
            addr,
            ca,
            state,
            task,
        }
    }

    /// `https://localhost:PORT` (the vault, the authority host and the
    /// metadata service all live here).
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn imds_endpoint(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.url())
    }

    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        self.ca.write_pem(dir)
    }

    pub fn put(&self, name: &str, secret: FakeSecret) {
        self.state
            .lock()
            .unwrap()
            .secrets
            .insert(name.to_string(), secret);
    }

    /// Deletes a secret (as purging it would).
    pub fn remove(&self, name: &str) {
        self.state.lock().unwrap().secrets.remove(name);
    }

    /// Every secret's value, to look for in outputs.
    pub fn values(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .secrets
            .values()
            .map(|s| s.value.clone())
            .collect()
    }

    pub fn revoke_access(&self, principal: &str) {
        self.state.lock().unwrap().readers.remove(principal);
    }

    /// Forgets every issued token, as a rotated signing key would.
    pub fn invalidate_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// The secret the app registration accepts (default [`CLIENT_SECRET`]).
    pub fn set_client_secret(&self, secret: &str) {
        self.state.lock().unwrap().client_secret = secret.to_string();
    }

    /// Every access token issued so far, to look for in outputs.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().all_issued.clone()
    }

    pub fn set_token_lifetime(&self, secs: u64) {
        self.state.lock().unwrap().token_lifetime_secs = secs;
    }

    /// Who an access token was issued to, while it is valid: what a
    /// service that trusts this Entra ID (ACR's exchange) learns from it.
    pub fn token_principals(&self) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
        let state = self.state.clone();
        move |token| {
            state
                .lock()
                .unwrap()
                .tokens
                .get(token)
                .map(|(p, _)| p.clone())
        }
    }

    /// As [`FakeKeyVault::token_principals`], for tokens of `audience`
    /// only (a service refuses tokens issued for another).
    pub fn token_principals_for(
        &self,
        audience: &str,
    ) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
        let state = self.state.clone();
        let audience = audience.to_string();
        move |token| {
            let state = state.lock().unwrap();
            let (principal, issued_for) = state.tokens.get(token)?;
            (*issued_for == audience).then(|| principal.clone())
        }
    }

    /// Entra ID also issues tokens for `audience` (`https://...`, asked as
    /// `{audience}/.default` or as IMDS's `resource`): another resource
    /// the identities may use, such as ACR's. The vault refuses them.
    pub fn issue_also_for(&self, audience: &str) {
        self.state
            .lock()
            .unwrap()
            .other_audiences
            .push(audience.to_string());
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().token_requests.clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Listing requests that carried a token the fake knows.
    pub fn listings(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with("GET /secrets?") && r.ends_with(" (token)"))
            .count()
    }

    /// When each vault request arrived, in order.
    pub fn vault_request_times(&self) -> Vec<std::time::Instant> {
        self.state.lock().unwrap().vault_request_times.clone()
    }

    /// The challenge's authorization host (`login.windows.net` default,
    /// `login.microsoftonline.com`) and audience.
    pub fn set_challenge(&self, login_host: &str, resource: &str) {
        let mut state = self.state.lock().unwrap();
        state.login_host = login_host.to_string();
        state.resource = resource.to_string();
    }

    /// The inner code of the 403 for principals without access.
    pub fn set_forbidden_code(&self, code: &str) {
        self.state.lock().unwrap().forbidden_code = code.to_string();
    }

    /// Empty pages (with a nextLink) before each page of secrets.
    pub fn set_empty_pages(&self, count: usize) {
        self.state.lock().unwrap().empty_pages = count;
    }

    /// The api-version written into next links.
    pub fn set_next_link_api_version(&self, version: &str) {
        self.state.lock().unwrap().next_link_api_version = version.to_string();
    }

    /// The next `times` vault requests get `status` (429 with
    /// `Retry-After: retry_after` seconds when given).
    pub fn fail_vault(&self, times: usize, status: u16, retry_after: Option<u64>) {
        let mut state = self.state.lock().unwrap();
        state
            .trouble
            .vault
            .extend(std::iter::repeat_n((status, retry_after), times));
    }

    /// Vault requests from now on are never answered (`false`: answered
    /// again).
    pub fn set_hang(&self, hang: bool) {
        self.state.lock().unwrap().hang = hang;
    }

    /// Managed-identity requests from now on are never answered (`false`:
    /// answered again).
    pub fn set_imds_hang(&self, hang: bool) {
        self.state.lock().unwrap().hang_imds = hang;
    }

    /// Waits until a managed-identity request is being left unanswered
    /// (one wait per such request).
    pub async fn imds_request_hung(&self) {
        let notify = self.state.lock().unwrap().imds_hung_notify.clone();
        notify.notified().await;
    }

    /// How many managed-identity requests were left unanswered.
    pub fn imds_hung(&self) -> usize {
        self.state.lock().unwrap().imds_hung
    }

    /// Listings with a valid token answer 200 with `body` instead of the
    /// secrets (`None`: the secrets again).
    pub fn set_listing_body(&self, body: Option<Vec<u8>>) {
        self.state.lock().unwrap().listing_body = body;
    }

    /// The next `times` managed-identity requests get `status`.
    pub fn fail_imds(&self, times: usize, status: u16) {
        let mut state = self.state.lock().unwrap();
        state
            .trouble
            .imds
            .extend(std::iter::repeat_n(status, times));
    }
}

/// Key Vault's data-plane api-versions the fake accepts.
const API_VERSIONS: &[&str] = &[
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
];

fn json(status: u16, value: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

fn vault_error(
    status: u16,
    code: &str,
    message: &str,
    inner: Option<&str>,
) -> Response<Full<Bytes>> {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(inner) = inner {
        error["innererror"] = serde_json::json!({ "code": inner });
    }
    json(status, serde_json::json!({ "error": error }))
}

fn entra_error(status: u16, error: &str, code: u64, description: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: 0000\r\nTimestamp: 2026-01-01 00:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        }),
    )
}

/// The audience a token request asks for, if Entra ID issues for it.
fn known_audience(state: &State, asked: Option<&str>) -> Option<String> {
    std::iter::once(&state.resource)
        .chain(&state.other_audiences)
        .find(|audience| Some(audience.as_str()) == asked)
        .cloned()
}

fn issue(state: &mut State, principal: &str, audience: &str) -> (String, u64) {
    state.issued += 1;
    // Shaped like a JWT, unique and unguessable enough to search outputs
    // for.
    let mut random = [0u8; 18];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).unwrap();
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}.{}",
        b64(format!("{{\"appid\":\"{principal}\",\"n\":{}}}", state.issued).as_bytes()),
        b64(&random)
    );
    state
        .tokens
        .insert(token.clone(), (principal.to_string(), audience.to_string()));
    state.all_issued.push(token.clone());
    (token, state.token_lifetime_secs)
}

async fn handle(
    request: Request<Incoming>,
    state: &Mutex<State>,
    addr: SocketAddr,
) -> Response<Full<Bytes>> {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let metadata = request
        .headers()
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let hang = path.starts_with("/secrets") && state.lock().unwrap().hang;
    if hang {
        return std::future::pending().await;
    }
    let hang_imds = {
        let mut state = state.lock().unwrap();
        let hang = path == "/metadata/identity/oauth2/token" && state.hang_imds;
        if hang {
            state.imds_hung += 1;
            state.imds_hung_notify.notify_one();
        }
        hang
    };
    if hang_imds {
        return std::future::pending().await;
    }
    let mut state = state.lock().unwrap();
    state.requests.push(format!(
        "{method} {path}{}",
        if query.is_empty() { "" } else { "?" }
    ));
    let base = state
        .base
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{}", addr.port()));
    // A real vault writes its port into next links
    // (`https://NAME.vault.azure.net:443/secrets?...`), not into ids.
    let link_base = match &state.base {
        Some(base) if !base.trim_start_matches("https://").contains(':') => format!("{base}:443"),
        _ => base.clone(),
    };

    // Entra ID: client credentials.
    if method == "POST" && path.ends_with("/oauth2/v2.0/token") {
        let tenant = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let client_id = form.get("client_id").cloned();
        let flow = if form.contains_key("client_assertion") {
            "federated"
        } else {
            "client_secret"
        };
        let refuse = |state: &mut State, response| {
            state.token_requests.push(TokenRequest {
                flow,
                client_id: client_id.clone(),
                granted: false,
            });
            response
        };
        if tenant != TENANT {
            return refuse(
                &mut state,
                entra_error(
                    400,
                    "invalid_request",
                    90002,
                    &format!("Tenant '{tenant}' not found."),
                ),
            );
        }
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return refuse(
                &mut state,
                entra_error(
                    400,
                    "unsupported_grant_type",
                    70003,
                    "The app requested an unsupported grant type.",
                ),
            );
        }
        let audience = form
            .get("scope")
            .and_then(|scope| scope.strip_suffix("/.default"))
            .and_then(|asked| known_audience(&state, Some(asked)));
        let Some(audience) = audience else {
            return refuse(
                &mut state,
                entra_error(
                    400,
                    "invalid_scope",
                    70011,
                    "The provided value for the input parameter 'scope' is not valid.",
                ),
            );
        };
        if client_id.as_deref() != Some(CLIENT_ID) {
            return refuse(
                &mut state,
                entra_error(
                    400,
                    "unauthorized_client",
                    700016,
                    "Application was not found in the directory.",
                ),
            );
        }
        let accepted = match flow {
            "federated" => {
                form.get("client_assertion_type").map(String::as_str)
                    == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    && form.get("client_assertion").map(String::as_str) == Some(FEDERATED_TOKEN)
            }
            _ => form.get("client_secret") == Some(&state.client_secret),
        };
        if !accepted {
            let (code, text) = match flow {
                "federated" => (
                    700213,
                    "No matching federated identity record found for presented assertion.",
                ),
                _ => (7000215, "Invalid client secret provided."),
            };
            return refuse(&mut state, entra_error(401, "invalid_client", code, text));
        }
        let (token, lifetime) = issue(&mut state, CLIENT_ID, &audience);
        state.token_requests.push(TokenRequest {
            flow,
            client_id,
            granted: true,
        });
        return json(
            200,
            serde_json::json!({
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            }),
        );
    }

    // The instance metadata service.
    if method == "GET" && path == "/metadata/identity/oauth2/token" {
        let client_id = query.get("client_id").cloned();
        if !state.trouble.imds.is_empty() {
            let status = state.trouble.imds.remove(0);
            state.token_requests.push(TokenRequest {
                flow: "managed_identity",
                client_id,
                granted: false,
            });
            // As IMDS words it while busy or while an identity is assigned.
            return json(
                status,
                serde_json::json!({ "error": "temporarily_unavailable", "error_description": "The request failed due to a gateway error." }),
            );
        }
        if metadata.as_deref() != Some("true") {
            state.token_requests.push(TokenRequest {
                flow: "managed_identity",
                client_id,
                granted: false,
            });
            return json(
                400,
                serde_json::json!({ "error": "invalid_request", "error_description": "Required metadata header not specified" }),
            );
        }
        let audience = known_audience(&state, query.get("resource").map(String::as_str));
        let Some(audience) =
            audience.filter(|_| query.get("api-version").map(String::as_str) == Some("2018-02-01"))
        else {
            state.token_requests.push(TokenRequest {
                flow: "managed_identity",
                client_id,
                granted: false,
            });
            return json(
                400,
                serde_json::json!({ "error": "invalid_resource", "error_description": "AADSTS500011: The resource principal was not found." }),
            );
        };
        let principal = client_id
            .clone()
            .unwrap_or_else(|| MANAGED_IDENTITY_CLIENT_ID.to_string());
        let (token, lifetime) = issue(&mut state, &principal, &audience);
        state.token_requests.push(TokenRequest {
            flow: "managed_identity",
            client_id,
            granted: true,
        });
        let now = now();
        return json(
            200,
            serde_json::json!({
                "access_token": token,
                "client_id": principal,
                "expires_in": lifetime.to_string(),
                "expires_on": (now + lifetime as i64).to_string(),
                "ext_expires_in": lifetime.to_string(),
                "not_before": now.to_string(),
                "resource": audience,
                "token_type": "Bearer",
            }),
        );
    }

    // Key Vault.
    if !path.starts_with("/secrets") {
        return vault_error(
            404,
            "NotFound",
            "The requested resource was not found.",
            None,
        );
    }
    state.vault_request_times.push(std::time::Instant::now());
    if !state.trouble.vault.is_empty() {
        let (status, retry_after) = state.trouble.vault.remove(0);
        let mut response = if status == 429 {
            vault_error(
                429,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                None,
            )
        } else {
            vault_error(
                status,
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
                None,
            )
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert("Retry-After", seconds.to_string().parse().unwrap());
        }
        return response;
    }
    let known = authorization
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| state.tokens.get(t).cloned());
    // A token Entra ID issued for another audience: the vault refuses it.
    let wrong_audience = known
        .as_ref()
        .filter(|(_, audience)| *audience != state.resource)
        .map(|(_, audience)| audience.clone());
    let principal = known
        .filter(|_| wrong_audience.is_none())
        .map(|(principal, _)| principal);
    if let Some(last) = state.requests.last_mut() {
        last.push_str(if principal.is_some() {
            " (token)"
        } else {
            " (no token)"
        });
    }
    let Some(principal) = principal else {
        let mut response = vault_error(
            401,
            "Unauthorized",
            &match (&wrong_audience, &authorization) {
                (Some(found), _) => format!(
                    "AKV10022: Invalid audience. Expected {}, found: {found}.",
                    state.resource
                ),
                (None, Some(_)) => "AKV10032: Invalid issuer or token.".to_string(),
                (None, None) => "AKV10000: Request is missing a Bearer or PoP token.".to_string(),
            },
            None,
        );
        response.headers_mut().insert(
            "WWW-Authenticate",
            format!(
                "Bearer authorization=\"https://{}/{TENANT}\", resource=\"{}\"",
                state.login_host, state.resource
            )
            .parse()
            .unwrap(),
        );
        return response;
    };
    if !query
        .get("api-version")
        .is_some_and(|v| API_VERSIONS.contains(&v.as_str()))
    {
        return vault_error(
            400,
            "BadParameter",
            "The request URI contains an invalid or missing api-version.",
            None,
        );
    }
    if let Some(body) = state.listing_body.clone().filter(|_| path == "/secrets") {
        return Response::builder()
            .status(200)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
    }
    if !state.readers.contains(&principal) {
        let code = state.forbidden_code.clone();
        let message = match code.as_str() {
            "ForbiddenByFirewall" => "Client address is not authorized and caller is not a trusted service.".to_string(),
            "ForbiddenByPolicy" => format!("The user, group or application 'appid={principal}' does not have secrets list permission on key vault."),
            _ => format!("Caller is not authorized to perform action on resource. Caller: appid={principal}"),
        };
        return vault_error(403, "Forbidden", &message, Some(&code));
    }
    let attributes = |s: &FakeSecret| {
        let mut a = serde_json::json!({
            "enabled": s.enabled,
            "created": s.created,
            "updated": s.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        });
        if let Some(exp) = s.exp {
            a["exp"] = exp.into();
        }
        if let Some(nbf) = s.nbf {
            a["nbf"] = nbf.into();
        }
        a
    };
    if path == "/secrets" || path == "/secrets/" {
        let page_size = query
            .get("maxresults")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(25)
            .clamp(1, 25);
        // The skiptoken holds the offset and, for empty pages, how many
        // empty pages were sent before it ("OFFSET" or "OFFSET.EMPTY").
        let token = query
            .get("$skiptoken")
            .and_then(|t| t.strip_prefix("2!80!MDAwMDI2IXNlY3JldC8h"))
            .unwrap_or("0");
        let (offset, empties) = token.split_once('.').unwrap_or((token, "0"));
        let offset: usize = offset.parse().unwrap_or(0);
        let empties: usize = empties.parse().unwrap_or(0);
        let link = |state: &State, token: String| {
            serde_json::Value::String(format!(
                "{link_base}/secrets?api-version={}&$skiptoken=2!80!MDAwMDI2IXNlY3JldC8h{token}&maxresults={page_size}",
                state.next_link_api_version
            ))
        };
        if empties < state.empty_pages && offset < state.secrets.len() {
            let next_link = link(&state, format!("{offset}.{}", empties + 1));
            return json(
                200,
                serde_json::json!({ "value": [], "nextLink": next_link }),
            );
        }
        let names: Vec<&String> = state.secrets.keys().collect();
        let value: Vec<serde_json::Value> = names
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|name| {
                let secret = &state.secrets[*name];
                let mut item = serde_json::json!({
                    "id": format!("{base}/secrets/{name}"),
                    "attributes": attributes(secret),
                    "tags": { "managed-by": "terraform" },
                });
                if secret.certificate {
                    item["contentType"] = "application/x-pkcs12".into();
                    item["managed"] = true.into();
                    item["kid"] = format!("{base}/keys/{name}").into();
                    item["tags"] = serde_json::json!({});
                }
                item
            })
            .collect();
        let next = offset + page_size;
        let next_link = if next < names.len() {
            link(&state, next.to_string())
        } else {
            serde_json::Value::Null
        };
        return json(
            200,
            serde_json::json!({ "value": value, "nextLink": next_link }),
        );
    }
    // A value: what vouch must never ask for.
    let mut parts = path.trim_start_matches("/secrets/").split('/');
    let name = parts.next().unwrap_or("");
    match state.secrets.get(name) {
        Some(secret) => json(
            200,
            serde_json::json!({
                "value": secret.value,
                "id": format!("{base}/secrets/{name}/0123456789abcdef0123456789abcdef"),
                "attributes": attributes(secret),
            }),
        ),
        None => vault_error(
            404,
            "SecretNotFound",
            &format!("A secret with (name/id) {name} was not found in this key vault."),
            None,
        ),
    }
}
