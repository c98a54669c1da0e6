//! Serving the router, the same way with or without a web config: HTTP/1.1
//! only, a header-read timeout that also closes idle keep-alive
//! connections, and a bound on open connections where a newcomer takes
//! the place of the longest-open idle one. The web config in force when a
//! connection is accepted (TLS, client certificates, basic auth, response
//! headers) applies to it; its files are looked at by a task of their own,
//! so the accept loop never waits on a file.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::metrics::Metrics;
use super::web_config::{WebConfig, WebConfigWatcher};
use crate::lock::lock;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers, counted from
/// when the server starts waiting for them: a connection idle for this
/// long between requests is closed too.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections may take to finish after `stop`.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the web config's files are looked at.
const WEB_CONFIG_POLL: Duration = Duration::from_secs(1);
/// A response still being written after this long (a client that does
/// not read) may be closed to make room for a new connection.
const STALLED_AFTER: Duration = Duration::from_secs(60);
/// `--web.max-connections` unless given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How to serve.
pub struct ServeOptions {
    pub web: Option<Arc<WebConfigWatcher>>,
    /// Open connections at most (lowered to half the open-file limit).
    pub max_connections: usize,
    pub metrics: Arc<Metrics>,
}

/// Serves `app` on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    stop: CancellationToken,
) -> std::io::Result<()> {
    super::server::log_panics_once_per_place();
    let slots = Arc::new(Slots::new(
        connection_limit(options.max_connections),
        options.metrics.clone(),
    ));
    let poller = options
        .web
        .clone()
        .map(|web| tokio::spawn(poll_web_config(web)));
    let shared = Arc::new(Shared {
        app,
        web: options.web,
        bcrypt_slots: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ),
    });
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(open) = slots.admit() else {
            continue;
        };
        let config = shared.web.as_ref().map(|web| web.current());
        let shared = shared.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let slot = open.slot.clone();
            tokio::select! {
                _ = serve_connection(stream, peer, config, shared, slot, watcher) => {}
                _ = open.slot.evict.cancelled() => {
                    tracing::debug!(%peer, "connection closed to make room for a new one");
                }
            }
            drop(open);
        });
    }
    drop(listener);
    if let Some(poller) = poller {
        poller.abort();
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("connections still open at shutdown were dropped");
    }
    Ok(())
}

/// What every connection needs.
struct Shared {
    app: Router,
    web: Option<Arc<WebConfigWatcher>>,
    /// Bounds concurrent bcrypt verifications, so that a flood of bad
    /// credentials cannot take every core.
    bcrypt_slots: tokio::sync::Semaphore,
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    config: Option<Arc<WebConfig>>,
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    watcher: Watcher,
) {
    let tls = config.as_ref().and_then(|c| c.tls.clone());
    let service = {
        let slot = slot.clone();
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let busy = slot.busy();
            let shared = shared.clone();
            let config = config.clone();
            async move {
                let response = handle(&shared, config.as_deref(), request.map(Body::new)).await;
                Ok::<_, Infallible>(response.map(|body| Body::new(BusyBody { body, _busy: busy })))
            }
        })
    };
    let result = match tls {
        None => http1(stream, service, watcher).await,
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => http1(stream, service, watcher).await,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// One HTTP/1.1 connection: no HTTP/2, no h2c.
async fn http1<I, S>(io: I, service: S, watcher: Watcher) -> hyper::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = Response,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    watcher
        .watch(builder.serve_connection(TokioIo::new(io), service))
        .await
}

/// Looks at the web config's files every [`WEB_CONFIG_POLL`], on the
/// blocking pool; one look at a time, however long a look blocks.
async fn poll_web_config(web: Arc<WebConfigWatcher>) {
    loop {
        tokio::time::sleep(WEB_CONFIG_POLL).await;
        let web = web.clone();
        let _ = tokio::task::spawn_blocking(move || web.refresh()).await;
    }
}

async fn handle(shared: &Shared, config: Option<&WebConfig>, request: Request) -> Response {
    let allowed = match config.and_then(|c| c.users.as_ref()) {
        Some(users) => authorized(users, basic_credentials(&request), &shared.bcrypt_slots).await,
        None => true,
    };
    let mut response = if allowed {
        shared
            .app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {})
    } else {
        unauthorized()
    };
    for (name, value) in config.iter().flat_map(|c| &c.headers) {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Whether the request carries the basic-auth credentials of a user. A
/// pair that passed lately is let in at once; any other pays one bcrypt
/// verification (known user or not) in one of a few slots.
async fn authorized(
    users: &Arc<super::web_config::Users>,
    credentials: Option<(String, String)>,
    slots: &tokio::sync::Semaphore,
) -> bool {
    let Some((user, password)) = credentials else {
        return false;
    };
    if users.verified_lately(&user, &password) {
        return true;
    }
    let Ok(_slot) = slots.acquire().await else {
        return false;
    };
    let users = users.clone();
    tokio::task::spawn_blocking(move || users.verify(&user, &password))
        .await
        .unwrap_or(false)
}

fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"vouch\", charset=\"UTF-8\""),
        )],
        "Unauthorized\n",
    )
        .into_response()
}

/// The open-connection limit: `wanted`, or half the soft open-file limit
/// if that is lower (the checks need descriptors too).
fn connection_limit(wanted: usize) -> usize {
    let Some(files) = open_file_limit() else {
        return wanted.max(1);
    };
    let limit = wanted.min(files / 2).max(1);
    if limit < wanted {
        tracing::warn!(
            open_files = files,
            connections = limit,
            "the open-file limit (ulimit -n) allows fewer connections than --web.max-connections"
        );
    }
    limit
}

/// The soft limit on open files, from /proc (Linux); None elsewhere or
/// when unlimited.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One open connection's state, shared by its task and the accept loop.
struct Slot {
    /// Requests whose response is not fully written yet.
    busy: AtomicU64,
    /// When the connection last became busy, in ms since the limit's start.
    busy_since: AtomicU64,
    /// Cancelled to close the connection for a newcomer.
    evict: CancellationToken,
    origin: tokio::time::Instant,
}

impl Slot {
    fn busy(self: &Arc<Self>) -> Busy {
        if self.busy.fetch_add(1, Ordering::AcqRel) == 0 {
            let now = self.origin.elapsed().as_millis() as u64;
            self.busy_since.store(now, Ordering::Release);
        }
        Busy(self.clone())
    }

    /// Whether closing it loses nothing a client waits for (no request in
    /// progress), or it has been writing one response for too long.
    fn closable(&self) -> bool {
        if self.busy.load(Ordering::Acquire) == 0 {
            return true;
        }
        let since = Duration::from_millis(self.busy_since.load(Ordering::Acquire));
        self.origin.elapsed().saturating_sub(since) > STALLED_AFTER
    }
}

/// A request in progress on a connection, until its response body ends.
struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection counted as busy until it
/// has been written (or dropped).
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl axum::body::HttpBody for BusyBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The open connections, oldest first, and what happens at the limit.
struct Slots {
    max: usize,
    open: Mutex<VecDeque<Arc<Slot>>>,
    origin: tokio::time::Instant,
    /// Whether the limit was reached since it was last logged as left.
    at_limit: AtomicBool,
    metrics: Arc<Metrics>,
}

/// A connection counted as open until dropped.
struct Open {
    slots: Arc<Slots>,
    slot: Arc<Slot>,
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut open = lock(&self.slots.open);
        if let Some(at) = open.iter().position(|s| Arc::ptr_eq(s, &self.slot)) {
            open.remove(at);
        }
    }
}

impl Slots {
    fn new(max: usize, metrics: Arc<Metrics>) -> Self {
        Slots {
            max,
            open: Mutex::default(),
            origin: tokio::time::Instant::now(),
            at_limit: AtomicBool::new(false),
            metrics,
        }
    }

    /// Counts a new connection in. At the limit the longest-open closable
    /// connection is closed for it; when none is, the newcomer is refused.
    /// Either way the limit is logged (once until it is left) and counted.
    fn admit(self: &Arc<Self>) -> Option<Open> {
        let mut open = lock(&self.open);
        if open.len() >= self.max {
            let victim = open.iter().position(|slot| slot.closable());
            if !self.at_limit.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    limit = self.max,
                    "connection limit reached: closing the longest-open idle connections for new ones"
                );
            }
            self.metrics.connection_shed();
            match victim.and_then(|at| open.remove(at)) {
                Some(victim) => victim.evict.cancel(),
                None => return None,
            }
        } else if open.len() < self.max / 2 && self.at_limit.swap(false, Ordering::AcqRel) {
            tracing::info!(open = open.len(), "below the connection limit again");
        }
        let slot = Arc::new(Slot {
            busy: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            evict: CancellationToken::new(),
            origin: self.origin,
        });
        open.push_back(slot.clone());
        Some(Open {
            slots: self.clone(),
            slot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: &str) -> Request {
        Request::builder()
            .header(header::AUTHORIZATION, authorization)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn reads_basic_credentials() {
        assert_eq!(
            basic_credentials(&request("Basic YWxpY2U6czNjcjp0")),
            Some(("alice".into(), "s3cr:t".into()))
        );
        assert_eq!(basic_credentials(&request("Bearer YWxpY2U6czNjcjp0")), None);
        assert_eq!(basic_credentials(&request("Basic !!!")), None);
        assert_eq!(basic_credentials(&request("Basic YWxpY2U=")), None);
    }

    #[tokio::test]
    async fn at_the_limit_the_oldest_idle_connection_makes_room() {
        let slots = Arc::new(Slots::new(2, Arc::new(Metrics::new(&[]))));
        let first = slots.admit().unwrap();
        let second = slots.admit().unwrap();
        let _request = first.slot.busy();
        // The first is busy: the second, idle, is closed for the third.
        let third = slots.admit().unwrap();
        assert!(!first.slot.evict.is_cancelled());
        assert!(second.slot.evict.is_cancelled());
        drop(second);
        // Both open ones busy: a fourth is refused.
        let _also = third.slot.busy();
        assert!(slots.admit().is_none());
        assert_eq!(slots.open.lock().unwrap().len(), 2);
        drop(_request);
        assert!(slots.admit().is_some());
        assert!(first.slot.evict.is_cancelled());
    }
}
