//! The daemon's HTTP endpoints. No endpoint accepts a target: what vouch
//! probes comes from config only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::metrics::Metrics;
use super::peers::{is_local, ChecksQuery};
use super::status::StatusBoard;
use crate::lock::lock;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusBoard>,
    /// Set once the config is loaded and the scheduler runs; never depends
    /// on what the checks find.
    pub ready: Arc<AtomicBool>,
    /// Where `POST /-/reload` asks the daemon to reload; None when turned off.
    pub reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
    /// The Kubernetes watches, listed by /readyz (never a reason to be
    /// unready: a verifier must not go unready over what it verifies).
    pub kube: Option<Arc<crate::kube::KubeCache>>,
    /// The other shards of a sharded install (`--shard.peers`): the gate
    /// and `/api/v1/checks` answer for all of them.
    pub peers: Option<Arc<super::peers::Peers>>,
}

/// A reload request; the answer is a summary or every config problem.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<String, String>>;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(checklist_page))
        .route("/checks/{name}", get(check_page))
        .route("/api/v1/checks/{name}", get(check_json))
        .route(
            "/api/v1/gate",
            get(super::gate::handle).post(super::gate::handle).layer(
                axum::extract::DefaultBodyLimit::max(super::gate::BODY_LIMIT),
            ),
        )
        .route("/-/reload", axum::routing::post(reload))
        .route("/metrics", get(metrics))
        .route("/livez", get(live))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .route("/api/v1/checks", get(super::peers::checks))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(axum::middleware::from_fn(catch_panics))
        .with_state(state)
}

/// A handler that panics answers 500 instead of dropping the connection;
/// the panic itself is logged by [`log_panics_once_per_place`].
async fn catch_panics(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
    }
}

/// Installs (once per process) a panic hook that reports the first panic
/// at each source location as usual and only counts the later ones: a
/// request that makes a handler panic must not let a client flood the log.
pub fn log_panics_once_per_place() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let report = std::panic::take_hook();
        let seen = std::sync::Mutex::new(PanicPlaces::default());
        std::panic::set_hook(Box::new(move |info| {
            let place = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let first = lock(&seen).first(&place);
            if first {
                report(info);
                tracing::error!(
                    location = %place,
                    "a panic; later panics at the same place are not logged"
                );
            }
        }));
    });
}

/// Source locations that panicked already (bounded: the program has
/// finitely many, and a cap keeps even a bug from growing it).
#[derive(Default)]
struct PanicPlaces(std::collections::HashSet<String>);

impl PanicPlaces {
    const MAX: usize = 1_000;

    /// Whether `place` panics for the first time.
    fn first(&mut self, place: &str) -> bool {
        if self.0.contains(place) || self.0.len() >= Self::MAX {
            return false;
        }
        self.0.insert(place.to_string())
    }
}

/// `/`: this replica's checks, and with peers every other shard's too
/// (`?local=true`: this replica's alone).
async fn checklist_page(
    State(state): State<AppState>,
    Query(query): Query<ChecksQuery>,
) -> Response {
    let shards = match &state.peers {
        Some(peers) if !is_local(query.local.as_deref()) => {
            Some(peers.view(&state.status.snapshot()).await)
        }
        _ => None,
    };
    super::render_thread::render(move || {
        Html(super::page::checklist(
            &state.status.snapshot(),
            shards.as_ref(),
            std::time::SystemTime::now(),
        ))
        .into_response()
    })
    .await
}

fn find(state: &AppState, name: &str) -> Option<super::status::CheckStatus> {
    state
        .status
        .snapshot()
        .checks
        .into_iter()
        .find(|c| c.check.name == name)
}

async fn check_page(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    super::render_thread::render(move || {
        let (Some(status), Some(check), Some(history)) = (
            find(&state, &name),
            state.status.check(&name),
            state.status.history(&name),
        ) else {
            return (StatusCode::NOT_FOUND, "no such check\n").into_response();
        };
        Html(super::page::detail(
            &status,
            &check,
            &history,
            std::time::SystemTime::now(),
        ))
        .into_response()
    })
    .await
}

/// `/api/v1/checks/NAME`: the check with its history; with peers, a check
/// another shard runs is asked of it (`?local=true`: this replica only).
async fn check_json(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ChecksQuery>,
) -> Response {
    #[derive(serde::Serialize)]
    struct Detail {
        #[serde(flatten)]
        status: super::status::CheckStatus,
        history: Vec<super::status::HistoryView>,
        #[serde(skip_serializing_if = "Option::is_none")]
        shard: Option<u32>,
    }
    let peers = state
        .peers
        .clone()
        .filter(|_| !is_local(query.local.as_deref()));
    let shard = peers.as_ref().map(|p| p.index());
    let local = state.clone();
    let asked = name.clone();
    let found = super::render_thread::render(move || {
        match (find(&local, &asked), local.status.history(&asked)) {
            (Some(status), Some(history)) => Json(Detail {
                status,
                history,
                shard,
            })
            .into_response(),
            _ => (StatusCode::NOT_FOUND, "no such check\n").into_response(),
        }
    })
    .await;
    match peers {
        Some(peers) if found.status() == StatusCode::NOT_FOUND => {
            peers.check_elsewhere(&name).await
        }
        _ => found,
    }
}

async fn metrics(State(state): State<AppState>, headers: header::HeaderMap) -> Response {
    let gzip = accepts_gzip(&headers);
    // Copying 10,000 checks' series takes milliseconds: off the workers
    // that run the checks and their timers.
    // One at a time too, apart from the pages: a flood of page requests
    // must not hold up a scrape.
    static ENCODING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let Ok(_turn) = ENCODING.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let metrics = state.metrics.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let text = metrics.encode();
        if gzip {
            compress(text.as_bytes()).map(|body| (body, true))
        } else {
            Some((text.into_bytes(), false))
        }
    })
    .await;
    let Ok(Some((body, gzipped))) = rendered else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering the metrics failed\n",
        )
            .into_response();
    };
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::VARY, "Accept-Encoding"),
        ],
        body,
    )
        .into_response();
    if gzipped {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    response
}

/// Whether the scraper takes gzip (Prometheus always sends
/// `Accept-Encoding: gzip`); `gzip;q=0` is a refusal.
fn accepts_gzip(headers: &header::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The exposition text gzipped at the fastest level: the text repeats
/// label sets line after line, so even level 1 shrinks it about tenfold,
/// for a fraction of the CPU a higher level would take.
pub fn compress(text: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(text).ok()?;
    encoder.finish().ok()
}

async fn reload(State(state): State<AppState>) -> Response {
    let Some(requests) = state.reload else {
        return (
            StatusCode::FORBIDDEN,
            "reload over HTTP is off; start vouch with --web.enable-reload to allow it\n",
        )
            .into_response();
    };
    let (answer, result) = tokio::sync::oneshot::channel();
    if requests.send(answer).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match result.await {
        Ok(Ok(summary)) => (StatusCode::OK, summary).into_response(),
        Ok(Err(problems)) => (StatusCode::BAD_REQUEST, format!("{problems}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

async fn live() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<AppState>) -> (StatusCode, String) {
    if !state.ready.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: scheduler not started\n".to_string(),
        );
    }
    let mut text = "ready\n".to_string();
    for watch in state.kube.iter().flat_map(|kube| kube.statuses()) {
        let scope = if watch.namespace.is_empty() {
            "cluster-wide".to_string()
        } else {
            format!("in {}", watch.namespace)
        };
        let what = if watch.metadata_only {
            " (metadata)"
        } else {
            ""
        };
        let state = match &watch.state {
            crate::kube::WatchState::Synced => "synced".to_string(),
            crate::kube::WatchState::Starting => "not synced yet".to_string(),
            crate::kube::WatchState::Failing(err) => format!("failing: {err}"),
        };
        text.push_str(&format!(
            "kubernetes watch {}{what} {scope}: {state}\n",
            watch.resource
        ));
    }
    (StatusCode::OK, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[test]
    fn each_panic_place_is_reported_once() {
        let mut places = PanicPlaces::default();
        assert!(places.first("src/a.rs:1"));
        assert!(!places.first("src/a.rs:1"));
        assert!(places.first("src/a.rs:2"));
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_next_request_is_served() {
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(catch_panics));
        for path in ["/boom", "/boom", "/fine"] {
            let request = axum::extract::Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let status = app.clone().oneshot(request).await.unwrap().status();
            let expected = if path == "/fine" { 200 } else { 500 };
            assert_eq!(status.as_u16(), expected, "{path}");
        }
    }
}
