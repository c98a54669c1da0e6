//! The daemon's HTTP endpoints. No endpoint accepts a target: what vouch
//! probes comes from config only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::metrics::Metrics;
use super::status::StatusBoard;

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
        .with_state(state)
}

async fn checklist_page(State(state): State<AppState>) -> Html<String> {
    Html(super::page::checklist(
        &state.status.snapshot(),
        std::time::SystemTime::now(),
    ))
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
}

async fn check_json(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    #[derive(serde::Serialize)]
    struct Detail {
        #[serde(flatten)]
        status: super::status::CheckStatus,
        history: Vec<super::status::HistoryView>,
    }
    match (find(&state, &name), state.status.history(&name)) {
        (Some(status), Some(history)) => Json(Detail { status, history }).into_response(),
        _ => (StatusCode::NOT_FOUND, "no such check\n").into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    // Copying 10,000 checks' series takes milliseconds: off the workers
    // that run the checks and their timers.
    let metrics = state.metrics.clone();
    let Ok(text) = tokio::task::spawn_blocking(move || metrics.encode()).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering the metrics failed\n",
        )
            .into_response();
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn reload(State(state): State<AppState>) -> Response {
    let Some(requests) = state.reload else {
        return (
            StatusCode::FORBIDDEN,
            "reload over HTTP is turned off (--web.disable-reload)\n",
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
