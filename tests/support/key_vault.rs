//! A protocol-faithful fake of Azure Key Vault (REST api-version 7.5) and
//! of the Entra ID token endpoints an AKS workload uses, over TLS with a
//! generated CA, on one random loopback port:
//!
//! - `GET /secrets?api-version=7.5&maxresults=N` lists secret properties
//!   (`value[].id`, `value[].attributes.{enabled,created,updated,exp,nbf,
//!   recoveryLevel,recoverableDays}`, `tags`) in pages of at most 25, with
//!   an absolute `nextLink` carrying a `$skiptoken`, `null` on the last page.
//! - `GET /secrets/{name}[/{version}]` returns the value (so a test can
//!   prove vouch never asks for it).
//! - Without a valid bearer token: 401 with `WWW-Authenticate: Bearer
//!   authorization="https://login.microsoftonline.com/{tenant}",
//!   resource="https://vault.azure.net"`; a token of a principal without
//!   access: 403 `ForbiddenByRbac`. A missing api-version: 400.
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
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";

/// One secret in the fake vault (times in Unix seconds).
#[derive(Clone, Debug)]
pub struct FakeSecret {
    pub value: String,
    pub enabled: bool,
    pub created: i64,
    pub updated: i64,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
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
        }
    }
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
    /// Issued access token → principal (client ID).
    tokens: HashMap<String, String>,
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
        let ca = TestCa::new("Vouch Test Azure CA");
        let identity = ca.issue(&["localhost"], Validity::ValidFor { days: 30 });
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

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().token_requests.clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

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

fn issue(state: &mut State, principal: &str) -> (String, u64) {
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
    state.tokens.insert(token.clone(), principal.to_string());
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
    let mut state = state.lock().unwrap();
    state.requests.push(format!(
        "{method} {path}{}",
        if query.is_empty() { "" } else { "?" }
    ));
    let base = format!("https://localhost:{}", addr.port());

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
        if form.get("scope").map(String::as_str) != Some("https://vault.azure.net/.default") {
            return refuse(
                &mut state,
                entra_error(
                    400,
                    "invalid_scope",
                    70011,
                    "The provided value for the input parameter 'scope' is not valid.",
                ),
            );
        }
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
        let (token, lifetime) = issue(&mut state, CLIENT_ID);
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
        if query.get("resource").map(String::as_str) != Some(VAULT_RESOURCE)
            || query.get("api-version").map(String::as_str) != Some("2018-02-01")
        {
            state.token_requests.push(TokenRequest {
                flow: "managed_identity",
                client_id,
                granted: false,
            });
            return json(
                400,
                serde_json::json!({ "error": "invalid_resource", "error_description": "AADSTS500011: The resource principal was not found." }),
            );
        }
        let principal = client_id
            .clone()
            .unwrap_or_else(|| MANAGED_IDENTITY_CLIENT_ID.to_string());
        let (token, lifetime) = issue(&mut state, &principal);
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
                "resource": VAULT_RESOURCE,
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
    let principal = authorization
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| state.tokens.get(t).cloned());
    let Some(principal) = principal else {
        let mut response = vault_error(
            401,
            "Unauthorized",
            if authorization.is_some() {
                "AKV10032: Invalid issuer or token."
            } else {
                "AKV10000: Request is missing a Bearer or PoP token."
            },
            None,
        );
        response.headers_mut().insert(
            "WWW-Authenticate",
            format!(
                "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"{VAULT_RESOURCE}\""
            )
            .parse()
            .unwrap(),
        );
        return response;
    };
    if query.get("api-version").map(String::as_str) != Some("7.5") {
        return vault_error(
            400,
            "BadParameter",
            "The request URI contains an invalid or missing api-version.",
            None,
        );
    }
    if !state.readers.contains(&principal) {
        return vault_error(
            403,
            "Forbidden",
            &format!(
                "Caller is not authorized to perform action on resource. Caller: appid={principal}"
            ),
            Some("ForbiddenByRbac"),
        );
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
        let offset = query
            .get("$skiptoken")
            .and_then(|t| t.strip_prefix("2!80!MDAwMDI2IXNlY3JldC8h"))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let names: Vec<&String> = state.secrets.keys().collect();
        let value: Vec<serde_json::Value> = names
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|name| {
                serde_json::json!({
                    "id": format!("{base}/secrets/{name}"),
                    "attributes": attributes(&state.secrets[*name]),
                    "tags": { "managed-by": "terraform" },
                })
            })
            .collect();
        let next = offset + page_size;
        let next_link = if next < names.len() {
            serde_json::Value::String(format!(
                "{base}/secrets?api-version=7.5&$skiptoken=2!80!MDAwMDI2IXNlY3JldC8h{next}&maxresults={page_size}"
            ))
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
