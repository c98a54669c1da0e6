//! One HTTP/1.1 exchange over a fresh connection, timed phase by phase.
//! Built on hyper's connection API rather than a pooled client because the
//! phases (resolve, connect, TLS, processing, transfer) are the point.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
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
    let host = spec
        .url
        .host_str()
        .ok_or_else(|| FetchError::Protocol(format!("{} has no host", spec.url)))?;
    // IPv6 literals come bracketed from `Url`; the resolver wants them bare.
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let port = spec.url.port_or_known_default().unwrap_or(80);

    progress.set("resolving the host name");
    let started = Instant::now();
    let addrs: Vec<_> = tokio::net::lookup_host((bare_host, port))
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
        exchange(tls_stream, &spec, progress, timings).await
    } else {
        exchange(stream, &spec, progress, timings).await
    }
}

async fn exchange<S>(
    stream: S,
    spec: &RequestSpec<'_>,
    progress: &Progress,
    timings: &mut Timings,
) -> Result<Exchange, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    progress.set("sending the request");
    let started = Instant::now();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| FetchError::Protocol(format!("HTTP handshake failed: {err}")))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        // Errors surface through the request and body futures.
        let _ = connection.await;
    }));

    let request = build_request(spec)?;
    progress.set("waiting for response headers");
    let response = sender.send_request(request).await.map_err(|err| {
        FetchError::Protocol(if err.is_incomplete_message() {
            "connection closed before a complete response".to_string()
        } else {
            format!("bad response: {err}")
        })
    })?;
    timings.processing += started.elapsed();

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
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    for (name, value) in spec.headers {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(body) = &spec.body {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Ok(request)
}
