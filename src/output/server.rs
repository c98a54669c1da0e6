//! The daemon's HTTP endpoints. No endpoint accepts a target: what vouch
//! probes comes from config only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
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
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/livez", get(live))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .route("/api/v1/checks", get(checks))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .with_state(state)
}

async fn landing() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><title>vouch</title></head><body>",
        "<h1>vouch ",
        env!("CARGO_PKG_VERSION"),
        "</h1><ul>",
        "<li><a href=\"metrics\">metrics</a></li>",
        "<li><a href=\"api/v1/checks\">checks (JSON)</a></li>",
        "<li><a href=\"readyz\">readyz</a></li>",
        "<li><a href=\"livez\">livez</a></li>",
        "</ul></body></html>"
    ))
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn live() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: scheduler not started\n",
        )
    }
}

async fn checks(State(state): State<AppState>) -> Json<super::status::StatusSnapshot> {
    Json(state.status.snapshot())
}
