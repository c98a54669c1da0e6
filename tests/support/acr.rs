//! A fake of Azure Container Registry's token service in front of the real
//! docker-registry (issue 21 allows this one fake), on one loopback port,
//! so the registry, its realm and its exchange share a host as on
//! `R.azurecr.io`:
//!
//! - `POST /oauth2/exchange` (form `grant_type=access_token`, `service`,
//!   `tenant`, `access_token`): an Entra ID access token the fake Entra ID
//!   of tests/support/key_vault.rs issued and still honours gives
//!   `{"refresh_token": JWT}`; anything else ACR's error envelope
//!   `{"errors":[{"code","message"}]}` (the REST specification's
//!   `AcrErrors`) with 400 or 401.
//! - `POST /oauth2/token` (form `grant_type=refresh_token`, `service`,
//!   `scope`, `refresh_token`): a refresh token it issued and has not
//!   expired gives `{"access_token": JWT}` signed by the registry's
//!   trusted issuer, granting `pull` on the scope's repository if the
//!   identity holds it (as a distribution token service does, a scope the
//!   identity lacks is granted without the action, and the registry then
//!   answers `insufficient_scope`).
//! - Everything else is passed to the docker-registry (whose token realm
//!   is this service's `/oauth2/token`).
//!
//! Neither answer carries `expires_in`, as on ACR; the JWTs' `exp` does.
//! Every form is recorded (token values replaced by their length).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::key_vault::{now, TENANT};
use super::registry::{raw_exchange, Registry, TokenIssuer, SERVICE};

type Principals = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

struct State {
    upstream: Option<u16>,
    issuer: Option<TokenIssuer>,
    principals: Principals,
    /// principal → repositories it may pull.
    pull: HashMap<String, HashSet<String>>,
    /// refresh token → (principal, exp).
    refresh: HashMap<String, (String, i64)>,
    refresh_lifetime: i64,
    access_lifetime: i64,
    /// Every exchange is refused with (status, code, message).
    refuse_exchanges: Option<(u16, String, String)>,
    /// `PATH` and the form's keys of every token-service call.
    calls: Vec<(String, HashMap<String, String>)>,
}

pub struct FakeAcr {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAcr {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeAcr {
    /// A token service that trusts the Entra ID tokens `principals` knows
    /// (see `FakeKeyVault::token_principals`). Access tokens live 75
    /// minutes, as the claim set in ACR's AAD-OAuth.md shows (`exp` - `iat`
    /// = 4500 s); refresh tokens three hours (not documented: any lifetime
    /// longer than a test will do).
    pub async fn start(
        principals: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> FakeAcr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            upstream: None,
            issuer: None,
            principals: Box::new(principals),
            pull: HashMap::new(),
            refresh: HashMap::new(),
            refresh_lifetime: 3 * 3600,
            access_lifetime: 75 * 60,
            refuse_exchanges: None,
            calls: Vec::new(),
        }));
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(request, state).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        FakeAcr { port, state, task }
    }

    /// `http://127.0.0.1:PORT`: the registry as clients see it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The realm the registry's challenge must name.
    pub fn realm(&self) -> String {
        format!("{}/oauth2/token", self.url())
    }

    /// Stands in front of `registry`, signing with its trusted issuer.
    pub fn front(&self, registry: &Registry) {
        let super::registry::Auth::Token { issuer, .. } = registry.auth() else {
            panic!("the registry must use token auth with this realm");
        };
        let mut state = self.state.lock().unwrap();
        state.upstream = Some(registry.port);
        state.issuer = Some(issuer.same_key());
    }

    /// Lets `principal` pull `repository` (the AcrPull role, or a
    /// repository permission).
    pub fn grant_pull(&self, principal: &str, repository: &str) {
        self.state
            .lock()
            .unwrap()
            .pull
            .entry(principal.to_string())
            .or_default()
            .insert(repository.to_string());
    }

    /// Takes every pull right of `principal` away (its AcrPull role
    /// assignment removed): its tokens then grant no action.
    pub fn revoke_pull(&self, principal: &str) {
        self.state.lock().unwrap().pull.remove(principal);
    }

    /// Every refresh token issued so far stops working before its `exp`
    /// (expired, or revoked with the identity's session).
    pub fn expire_refresh_tokens(&self) {
        let mut state = self.state.lock().unwrap();
        for (_, exp) in state.refresh.values_mut() {
            *exp = now() - 1;
        }
    }

    /// Every exchange from now on is refused with `status`, `code`, `message`.
    pub fn refuse_exchanges(&self, status: u16, code: &str, message: &str) {
        self.state.lock().unwrap().refuse_exchanges =
            Some((status, code.to_string(), message.to_string()));
    }

    /// How many calls reached `path` (`/oauth2/exchange`, `/oauth2/token`).
    pub fn calls(&self, path: &str) -> usize {
        self.forms(path).len()
    }

    /// The forms sent to `path`, token values replaced by `<N chars>`.
    pub fn forms(&self, path: &str) -> Vec<HashMap<String, String>> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, form)| form.clone())
            .collect()
    }
}

fn acr_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({ "errors": [{ "code": code, "message": message }] }),
    )
}

fn json(status: u16, value: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

/// A JWT-shaped refresh token (ACR's are JWTs; the fake does not sign its
/// own, it only looks them up).
fn refresh_token(principal: &str, exp: i64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut random = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).unwrap();
    format!(
        "{}.{}.{}",
        b64.encode(r#"{"typ":"JWT","alg":"RS256"}"#),
        b64.encode(
            serde_json::json!({
                "iss": "Azure Container Registry",
                "aud": SERVICE,
                "sub": principal,
                "grant_type": "refresh_token",
                "tenant": TENANT,
                "exp": exp,
            })
            .to_string()
        ),
        b64.encode(random)
    )
}

async fn handle(request: Request<Incoming>, state: Arc<Mutex<State>>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    if !path.starts_with("/oauth2/") {
        return proxy(request, &state).await;
    }
    let post = request.method() == hyper::Method::POST;
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut state = state.lock().unwrap();
    let recorded = form
        .iter()
        .map(|(k, v)| match k.as_str() {
            "access_token" | "refresh_token" => (k.clone(), format!("<{} chars>", v.len())),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    state.calls.push((path.clone(), recorded));
    if !post {
        return acr_error(405, "UNSUPPORTED", "The operation is unsupported.");
    }
    if form.get("service").map(String::as_str) != Some(SERVICE) {
        return acr_error(400, "BAD_REQUEST", "The service is not this registry.");
    }
    match path.as_str() {
        "/oauth2/exchange" => exchange(&mut state, &form),
        "/oauth2/token" => token(&mut state, &form),
        _ => acr_error(404, "NOT_FOUND", "Not found."),
    }
}

fn exchange(state: &mut State, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let get = |key: &str| form.get(key).map(String::as_str);
    if let Some((status, code, message)) = &state.refuse_exchanges {
        return acr_error(*status, code, message);
    }
    if get("grant_type") != Some("access_token") {
        return acr_error(
            400,
            "UNSUPPORTED_GRANT_TYPE",
            "grant_type is not supported.",
        );
    }
    if get("tenant").is_some_and(|t| t != TENANT) {
        return acr_error(401, "UNAUTHORIZED", "The tenant does not match the token.");
    }
    let principal = get("access_token").and_then(|t| (state.principals)(t));
    let Some(principal) = principal else {
        return acr_error(
            401,
            "UNAUTHORIZED",
            "The access token is invalid or expired.",
        );
    };
    let exp = now() + state.refresh_lifetime;
    let token = refresh_token(&principal, exp);
    state.refresh.insert(token.clone(), (principal, exp));
    json(200, serde_json::json!({ "refresh_token": token }))
}

fn token(state: &mut State, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let get = |key: &str| form.get(key).map(String::as_str);
    if get("grant_type") != Some("refresh_token") {
        return acr_error(
            400,
            "UNSUPPORTED_GRANT_TYPE",
            "grant_type is not supported.",
        );
    }
    let holder = get("refresh_token")
        .and_then(|t| state.refresh.get(t))
        .filter(|(_, exp)| *exp > now())
        .map(|(principal, _)| principal.clone());
    let Some(principal) = holder else {
        return acr_error(
            401,
            "UNAUTHORIZED",
            "The refresh token is invalid or expired.",
        );
    };
    // repository:NAME:ACTIONS
    let Some(repository) = get("scope").and_then(|scope| {
        let mut parts = scope.split(':');
        (parts.next() == Some("repository")).then(|| parts.next())?
    }) else {
        return acr_error(400, "BAD_REQUEST", "The scope is not a repository scope.");
    };
    let allowed = state
        .pull
        .get(&principal)
        .is_some_and(|repos| repos.contains(repository));
    let actions: &[&str] = if allowed { &["pull"] } else { &[] };
    let issuer = state.issuer.as_ref().expect("front() names the registry");
    let access = issuer.token(repository, actions, state.access_lifetime);
    json(200, serde_json::json!({ "access_token": access }))
}

/// Passes a registry request to the docker-registry behind.
async fn proxy(request: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let upstream = state.lock().unwrap().upstream.expect("front() was called");
    let method = request.method().as_str().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = ["authorization", "accept"]
        .iter()
        .filter_map(|name| {
            let value = request.headers().get(*name)?.to_str().ok()?;
            Some((name.to_string(), value.to_string()))
        })
        .collect();
    let answer = tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        raw_exchange(upstream, &method, &target, &headers, &[])
    })
    .await
    .unwrap();
    let Ok((status, headers, body)) = answer else {
        return acr_error(502, "BAD_GATEWAY", "The registry did not answer.");
    };
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            response = response.header(name, value);
        }
    }
    response.body(Full::new(Bytes::from(body))).unwrap()
}
