//! Sharded installs answer for every shard. With `--shard I/N` each
//! replica runs a part of the checks; behind one Service, the gate and the
//! JSON API would answer for whichever replica the Service picked. With
//! `--shard.peers URL` (a URL with `{shard}`, e.g.
//! `http://vouch-{shard}.vouch-shards:9847`, the per-pod names the
//! StatefulSet's headless Service gives) a replica asks every other shard
//! for its checks (`/api/v1/checks?local=true`, at most [`PEER_TIMEOUT`]
//! each, all at once), merges them with its own, and marks each check with
//! the shard that runs it. A shard that does not answer (its name does not
//! resolve, it refuses, it is slow, it answers garbage) holds the gate with
//! that reason and is listed as such in the JSON API.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{json, Value};

use super::gate::{GateItem, Unreachable};
use super::server::AppState;
use super::status::StatusSnapshot;

/// Longest a peer may take to answer.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer read from a peer.
const PEER_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The other shards of this install.
pub struct Peers {
    index: u32,
    count: u32,
    template: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// What one shard said.
pub struct ShardAnswer {
    pub shard: u32,
    pub url: String,
    /// Its `/api/v1/checks` JSON, or why there is none.
    pub result: Result<Value, String>,
}

impl Peers {
    /// Peers of shard `index` of `count` at `template` (`{shard}` is
    /// replaced by each shard's index); `Err` says what is wrong with it.
    pub fn new(index: u32, count: u32, template: &str) -> Result<Peers, String> {
        if !template.contains("{shard}") {
            return Err(format!(
                "--shard.peers {template:?} must contain {{shard}}, e.g. http://vouch-{{shard}}.vouch-shards:9847"
            ));
        }
        let example = template.replace("{shard}", "0");
        match url::Url::parse(&example) {
            Ok(url) if url.scheme() == "http" && url.host_str().is_some() => {}
            _ => {
                return Err(format!(
                    "--shard.peers {template:?} must be an http:// URL once {{shard}} is replaced"
                ))
            }
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(PEER_TIMEOUT));
        Ok(Peers {
            index,
            count,
            template: template.trim_end_matches('/').to_string(),
            // No pool: a peer that went away is refused at once, not reset on
            // a kept connection, and peers are asked rarely.
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(connector),
        })
    }

    /// This replica's shard.
    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn url(&self, shard: u32) -> String {
        self.template.replace("{shard}", &shard.to_string())
    }

    /// Every other shard's checks, asked at once.
    pub async fn ask_all(&self) -> Vec<ShardAnswer> {
        let asks = (0..self.count)
            .filter(|&shard| shard != self.index)
            .map(|shard| async move {
                let url = self.url(shard);
                let result = match tokio::time::timeout(PEER_TIMEOUT, self.ask(&url)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!(
                        "no answer within {}",
                        crate::config::format_duration(PEER_TIMEOUT)
                    )),
                };
                ShardAnswer { shard, url, result }
            });
        futures::future::join_all(asks).await
    }

    async fn ask(&self, base: &str) -> Result<Value, String> {
        let (status, value) = self
            .fetch(&format!("{base}/api/v1/checks?local=true"))
            .await?;
        if !status.is_success() {
            return Err(format!("it answered {status}"));
        }
        let value = value?;
        if !value["checks"].is_array() {
            return Err("its answer has no checks".into());
        }
        Ok(value)
    }

    /// GETs `url`: the status, and the body as JSON (or why it is not).
    async fn fetch(&self, url: &str) -> Result<(hyper::StatusCode, Result<Value, String>), String> {
        let uri: hyper::Uri = url.parse().map_err(|err| format!("bad URL: {err}"))?;
        let response = self.client.get(uri).await.map_err(|err| {
            // The innermost cause names it: dns error, connection refused.
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(inner) = source {
                text = inner.to_string();
                source = inner.source();
            }
            text
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), PEER_BODY_LIMIT)
            .collect()
            .await
            .map_err(|err| format!("its answer broke off: {err}"))?
            .to_bytes();
        let value = serde_json::from_slice::<Value>(&body)
            .map_err(|err| format!("its answer is not JSON: {err}"));
        Ok((status, value))
    }

    /// `/api/v1/checks/NAME` of a check this replica does not run: asked of
    /// every other shard at once. Found: its answer with `shard`. Not found
    /// while a shard did not answer: 503, saying the check may run there.
    pub async fn check_elsewhere(&self, name: &str) -> Response {
        let asks = (0..self.count)
            .filter(|&shard| shard != self.index)
            .map(|shard| async move {
                let mut url = url::Url::parse(&self.url(shard)).expect("checked in new()");
                url.path_segments_mut()
                    .expect("an http URL")
                    .pop_if_empty()
                    .extend(["api", "v1", "checks", name]);
                url.set_query(Some("local=true"));
                let asked = tokio::time::timeout(PEER_TIMEOUT, self.fetch(url.as_str())).await;
                let result = match asked {
                    Ok(Ok((status, value))) if status.is_success() => value.map(Some),
                    Ok(Ok((status, _))) if status == hyper::StatusCode::NOT_FOUND => Ok(None),
                    Ok(Ok((status, _))) => Err(format!("it answered {status}")),
                    Ok(Err(why)) => Err(why),
                    Err(_) => Err(format!(
                        "no answer within {}",
                        crate::config::format_duration(PEER_TIMEOUT)
                    )),
                };
                (shard, self.url(shard), result)
            });
        let mut silent = Vec::new();
        for (shard, url, result) in futures::future::join_all(asks).await {
            match result {
                Ok(Some(mut value)) => {
                    value["shard"] = shard.into();
                    return Json(value).into_response();
                }
                Ok(None) => {}
                Err(why) => silent.push(json!({"shard": shard, "url": url, "error": why})),
            }
        }
        if silent.is_empty() {
            return (hyper::StatusCode::NOT_FOUND, "no such check\n").into_response();
        }
        let shards: Vec<String> = silent
            .iter()
            .map(|s| format!("shard {} ({})", s["shard"], s["url"].as_str().unwrap_or("")))
            .collect();
        (
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": format!(
                    "check {name:?} is on no shard that answered; it may run on {}, which did not answer",
                    shards.join(", ")
                ),
                "unanswered": silent,
            })),
        )
            .into_response()
    }

    /// The status page's view of the install: every shard's checks (this
    /// replica's too), each with its shard, and the shards that did not
    /// answer.
    pub async fn view(&self, local: &StatusSnapshot) -> ShardView {
        let (items, unreachable) = self.gate_items(local).await;
        ShardView {
            index: self.index,
            urls: (0..self.count).map(|shard| self.url(shard)).collect(),
            items,
            unreachable,
        }
    }

    /// The gate's input: this replica's checks and every answering
    /// shard's, each marked with its shard, and the shards that did not.
    pub async fn gate_items(&self, local: &StatusSnapshot) -> (Vec<GateItem>, Vec<Unreachable>) {
        let mut items: Vec<GateItem> = local
            .checks
            .iter()
            .map(|c| GateItem::of(c, Some(self.index)))
            .collect();
        let mut unreachable = Vec::new();
        for answer in self.ask_all().await {
            let parsed = answer.result.and_then(|value| {
                serde_json::from_value::<Vec<GateItem>>(value["checks"].clone())
                    .map_err(|err| format!("its checks are not what vouch answers: {err}"))
            });
            match parsed {
                Ok(peer_items) => items.extend(peer_items.into_iter().map(|mut item| {
                    item.shard = Some(answer.shard);
                    item
                })),
                Err(why) => unreachable.push(Unreachable {
                    shard: answer.shard,
                    why: format!(
                        "shard {} ({}) did not answer: {why}",
                        answer.shard, answer.url
                    ),
                }),
            }
        }
        (items, unreachable)
    }

    /// `/api/v1/checks` for the whole install: every shard's checks (each
    /// with `shard`), the summaries added up, and `shards` saying which
    /// shard answered.
    pub async fn merged_checks(&self, local: &StatusSnapshot) -> Value {
        let mut merged = json!({
            "summary": {"total": 0, "pass": 0, "fail": 0, "error": 0, "pending": 0},
            "checks": [],
            "shards": [],
        });
        let mut answers = vec![ShardAnswer {
            shard: self.index,
            url: self.url(self.index),
            result: serde_json::to_value(local).map_err(|err| err.to_string()),
        }];
        answers.extend(self.ask_all().await);
        answers.sort_by_key(|a| a.shard);
        for answer in answers {
            let (answered, error) = match answer.result {
                Ok(mut value) => {
                    for key in ["total", "pass", "fail", "error", "pending"] {
                        let add = value["summary"][key].as_u64().unwrap_or(0);
                        let sum = merged["summary"][key].as_u64().unwrap_or(0) + add;
                        merged["summary"][key] = sum.into();
                    }
                    if let Some(checks) = value["checks"].as_array_mut() {
                        for check in checks.iter_mut() {
                            check["shard"] = answer.shard.into();
                        }
                        merged["checks"]
                            .as_array_mut()
                            .expect("an array")
                            .append(checks);
                    }
                    (true, None)
                }
                Err(why) => (false, Some(why)),
            };
            merged["shards"]
                .as_array_mut()
                .expect("an array")
                .push(json!({
                    "shard": answer.shard,
                    "url": answer.url,
                    "answered": answered,
                    "error": error,
                }));
        }
        merged
    }
}

/// What the status page shows of a sharded install.
pub struct ShardView {
    /// The shard serving the page.
    pub index: u32,
    /// Every shard's URL, by index.
    pub urls: Vec<String>,
    /// Every answering shard's checks, each with its `shard`.
    pub items: Vec<GateItem>,
    pub unreachable: Vec<Unreachable>,
}

/// `/api/v1/checks` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct ChecksQuery {
    /// `true`: this replica's checks only (what peers ask each other).
    pub local: Option<String>,
}

/// Whether a `local` parameter asks for this replica only.
pub fn is_local(local: Option<&str>) -> bool {
    matches!(local, Some("true" | "1"))
}

/// The `/api/v1/checks` handler: this replica's board, or, with peers, the
/// whole install's.
pub async fn checks(State(state): State<AppState>, Query(query): Query<ChecksQuery>) -> Response {
    match &state.peers {
        Some(peers) if !is_local(query.local.as_deref()) => {
            Json(peers.merged_checks(&state.status.snapshot()).await).into_response()
        }
        // Copied and rendered off the async workers, as every page is (a
        // flood of requests must not make scheduled runs late).
        _ => {
            let status = state.status.clone();
            super::render_thread::render(move || Json(status.snapshot()).into_response()).await
        }
    }
}
