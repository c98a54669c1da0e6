//! One HTTP/1.1 exchange, timed phase by phase, over a fresh connection
//! unless the check keeps one alive (`keep_alive: true`). Built on hyper's
//! connection API rather than a pooled client because the phases (resolve,
//! connect, TLS, processing, transfer) are the point, and a health check
//! should measure a fresh connection unless it is told otherwise.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;

use crate::clients::tls_configs::{Presented, TlsPolicy};
use crate::config::ByteSize;
use crate::probe::Progress;
use crate::result::Reason;

/// Time spent in each phase, summed over the hops of a redirect chain.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub resolve: Duration,
    pub connect: Duration,
    pub tls: Duration,
    pub processing: Duration,
    pub transfer: Duration,
}

impl Timings {
    pub fn phases(&self) -> [(&'static str, Duration); 5] {
        [
            ("resolve", self.resolve),
            ("connect", self.connect),
            ("tls", self.tls),
            ("processing", self.processing),
            ("transfer", self.transfer),
        ]
    }
}

/// What one request needs.
pub struct RequestSpec<'a> {
    pub url: &'a Url,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub body: Option<Bytes>,
    pub tls: &'a TlsPolicy,
    pub max_body: ByteSize,
    /// Where the check keeps its idle connection between runs, if it
    /// keeps one.
    pub keep_alive: Option<&'a ConnectionSlot>,
}

/// The idle connection of a check with `keep_alive: true`: one, to the
/// origin of its URL, with the chain its server presented when it was
/// opened (so the certificate measurements stay exported).
#[derive(Default)]
pub struct ConnectionSlot(std::sync::Mutex<Option<Pooled>>);

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionSlot")
    }
}

struct Pooled {
    origin: String,
    sender: SendRequest<Full<Bytes>>,
    presented: Option<Presented>,
    _driver: AbortOnDrop,
}

impl ConnectionSlot {
    fn take(&self, origin: &str) -> Option<Pooled> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.take()
            .filter(|p| p.origin == origin && !p.sender.is_closed())
    }

    fn put(&self, pooled: Pooled) {
        if !pooled.sender.is_closed() {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(pooled);
        }
    }
}

/// The answer to one request.
pub struct Exchange {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("cannot resolve {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("connection to {addr} refused")]
    Refused { addr: String },
    #[error("cannot connect to {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error("TLS handshake with {host} failed: {detail}")]
    Tls {
        reason: Reason,
        host: String,
        detail: String,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("body is larger than the {limit} read limit")]
    TooLarge { limit: ByteSize },
}

impl FetchError {
    pub fn reason(&self) -> Reason {
        match self {
            FetchError::Resolve { .. } => Reason::Dns,
            FetchError::Refused { .. } => Reason::ConnectionRefused,
            FetchError::Connect { .. } => Reason::Connect,
            FetchError::Tls { reason, .. } => *reason,
            FetchError::Protocol(_) => Reason::Protocol,
            FetchError::TooLarge { .. } => Reason::TooLarge,
        }
    }
}

/// Aborts the task driving a connection when the exchange is dropped (a
/// run cut off by its timeout must not leave the connection running).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn fetch(
    spec: RequestSpec<'_>,
    progress: &Progress,
    timings: &mut Timings,
    presented: &mut Option<Presented>,
) -> Result<Exchange, FetchError> {
    *presented = None;
    let origin = spec.url.origin().ascii_serialization();
    if let Some(pooled) = spec.keep_alive.and_then(|slot| slot.take(&origin)) {
        match reuse(pooled, &spec, progress, timings).await {
            Reused::Answered(answer, pooled) => {
                *presented = pooled.presented.clone();
                if let Some(slot) = spec.keep_alive {
                    slot.put(*pooled);
                }
                return Ok(answer);
            }
            Reused::Failed(err) => return Err(err),
            // The server closed it while idle: a fresh connection decides.
            Reused::Gone => {}
        }
    }
    let host = spec
        .url
        .host_str()
        .ok_or_else(|| FetchError::Protocol(format!("{} has no host", spec.url)))?;
    // IPv6 literals come bracketed from `Url`; the resolver wants them bare.
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let port = spec.url.port_or_known_default().unwrap_or(80);

    progress.set("resolving the host name");
    let started = Instant::now();
    let addrs: Vec<_> = crate::connect_to::lookup_host(bare_host, port)
        .await
        .map_err(|err| FetchError::Resolve {
            host: bare_host.to_string(),
            detail: err.to_string(),
        })?
        .collect();
    timings.resolve += started.elapsed();
    if addrs.is_empty() {
        return Err(FetchError::Resolve {
            host: bare_host.to_string(),
            detail: "no addresses".into(),
        });
    }

    progress.set("connecting");
    let started = Instant::now();
    let mut last_error = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(err) => last_error = Some((addr, err)),
        }
    }
    timings.connect += started.elapsed();
    let stream = match (stream, last_error) {
        (Some(stream), _) => stream,
        (None, Some((addr, err))) => {
            let addr = addr.to_string();
            return Err(if err.kind() == std::io::ErrorKind::ConnectionRefused {
                FetchError::Refused { addr }
            } else {
                FetchError::Connect {
                    addr,
                    detail: err.to_string(),
                }
            });
        }
        (None, None) => unreachable!("addrs is not empty"),
    };
    let _ = stream.set_nodelay(true);

    if spec.url.scheme() == "https" {
        progress.set("in the TLS handshake");
        let started = Instant::now();
        let server_name =
            ServerName::try_from(bare_host.to_string()).map_err(|err| FetchError::Tls {
                reason: Reason::Tls,
                host: bare_host.to_string(),
                detail: err.to_string(),
            })?;
        let (config, recorder) = spec.tls.connection(&[b"http/1.1"], true);
        let connector = tokio_rustls::TlsConnector::from(config);
        let result = connector.connect(server_name, stream).await;
        *presented = recorder.take();
        let tls_stream = result.map_err(|err| FetchError::Tls {
            reason: crate::clients::tls_configs::handshake_reason(&err),
            host: bare_host.to_string(),
            detail: crate::clients::tls_configs::describe_handshake(&err),
        })?;
        timings.tls += started.elapsed();
        let opened = open(tls_stream, progress).await?;
        exchange_and_keep(opened, origin, presented.clone(), &spec, progress, timings).await
    } else {
        let opened = open(stream, progress).await?;
        exchange_and_keep(opened, origin, None, &spec, progress, timings).await
    }
}

enum Reused {
    // Boxed: a kept connection is far larger than the other variants.
    Answered(Exchange, Box<Pooled>),
    Failed(FetchError),
    Gone,
}

/// One exchange over the check's idle connection. A connection the server
/// has closed is `Gone` (a fresh one is opened, as browsers do); so is one
/// that breaks before any answer when the request may be sent twice.
async fn reuse(
    mut pooled: Pooled,
    spec: &RequestSpec<'_>,
    progress: &Progress,
    timings: &mut Timings,
) -> Reused {
    if pooled.sender.ready().await.is_err() {
        return Reused::Gone;
    }
    match round_trip(&mut pooled.sender, Instant::now(), spec, progress, timings).await {
        Ok(answer) => Reused::Answered(answer, Box::new(pooled)),
        Err(Sent::NotAnswered(_)) if spec.method.is_idempotent() => Reused::Gone,
        Err(err) => Reused::Failed(err.into()),
    }
}

/// Why a request over an open connection got no exchange: no response
/// head at all (a kept connection may just have been closed), or a
/// failure after (or before) that.
enum Sent {
    NotAnswered(hyper::Error),
    Failed(FetchError),
}

impl From<Sent> for FetchError {
    fn from(sent: Sent) -> Self {
        match sent {
            Sent::NotAnswered(err) => send_error(&err),
            Sent::Failed(err) => err,
        }
    }
}

/// The request of `spec` and its whole answer over an open connection;
/// the processing phase is timed from `started`.
async fn round_trip(
    sender: &mut SendRequest<Full<Bytes>>,
    started: Instant,
    spec: &RequestSpec<'_>,
    progress: &Progress,
    timings: &mut Timings,
) -> Result<Exchange, Sent> {
    let request = build_request(spec).map_err(Sent::Failed)?;
    progress.set("waiting for response headers");
    let response = sender
        .send_request(request)
        .await
        .map_err(Sent::NotAnswered)?;
    timings.processing += started.elapsed();
    read_body(response, spec, progress, timings)
        .await
        .map_err(Sent::Failed)
}

type Opened = (SendRequest<Full<Bytes>>, AbortOnDrop, Instant);

/// The HTTP/1.1 handshake over a connected stream, its connection driven
/// by a task that ends when the sender is dropped.
async fn open<S>(stream: S, progress: &Progress) -> Result<Opened, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    progress.set("sending the request");
    let started = Instant::now();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| FetchError::Protocol(format!("HTTP handshake failed: {err}")))?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        // Errors surface through the request and body futures.
        let _ = connection.await;
    }));
    Ok((sender, driver, started))
}

/// One exchange over a new connection, which is kept for the next run
/// when the check keeps its connection alive and the server allows it.
async fn exchange_and_keep(
    (mut sender, driver, started): Opened,
    origin: String,
    presented: Option<Presented>,
    spec: &RequestSpec<'_>,
    progress: &Progress,
    timings: &mut Timings,
) -> Result<Exchange, FetchError> {
    let answer = round_trip(&mut sender, started, spec, progress, timings).await?;
    if let Some(slot) = spec.keep_alive {
        slot.put(Pooled {
            origin,
            sender,
            presented,
            _driver: driver,
        });
    }
    Ok(answer)
}

fn send_error(err: &hyper::Error) -> FetchError {
    FetchError::Protocol(if err.is_incomplete_message() {
        "connection closed before a complete response".to_string()
    } else {
        format!("bad response: {err}")
    })
}

async fn read_body(
    response: hyper::Response<hyper::body::Incoming>,
    spec: &RequestSpec<'_>,
    progress: &Progress,
    timings: &mut Timings,
) -> Result<Exchange, FetchError> {
    progress.set("reading the response body");
    let started = Instant::now();
    let (parts, mut body) = response.into_parts();
    let limit = spec.max_body.0;
    // hyper's size hint is the declared Content-Length, and zero where the
    // answer has no body whatever it declares (HEAD, 204, 304).
    if hyper::body::Body::size_hint(&body)
        .exact()
        .is_some_and(|n| n > limit)
    {
        return Err(FetchError::TooLarge {
            limit: spec.max_body,
        });
    }
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            FetchError::Protocol(format!(
                "connection broke after {} bytes of body: {err}",
                buffer.len()
            ))
        })?;
        if let Ok(data) = frame.into_data() {
            if (buffer.len() + data.len()) as u64 > limit {
                return Err(FetchError::TooLarge {
                    limit: spec.max_body,
                });
            }
            buffer.extend_from_slice(&data);
        }
    }
    timings.transfer += started.elapsed();
    Ok(Exchange {
        status: parts.status,
        headers: parts.headers,
        body: buffer.freeze(),
    })
}

fn build_request(spec: &RequestSpec<'_>) -> Result<Request<Full<Bytes>>, FetchError> {
    let url = spec.url;
    let mut target = url.path().to_string();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let mut request = Request::builder()
        .method(spec.method.clone())
        .uri(target)
        .body(Full::new(spec.body.clone().unwrap_or_default()))
        .map_err(|err| FetchError::Protocol(format!("cannot build the request: {err}")))?;
    let headers = request.headers_mut();
    headers.insert(
        HOST,
        HeaderValue::from_str(&host)
            .map_err(|_| FetchError::Protocol(format!("bad host {host:?}")))?,
    );
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("vouch/", env!("CARGO_PKG_VERSION"))),
    );
    if spec.keep_alive.is_none() {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    for (name, value) in spec.headers {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(body) = &spec.body {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Ok(request)
}
