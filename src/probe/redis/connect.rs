//! Opening the connection of one run: the TLS handshake, a cap on what
//! the server may send, and the reason word of every error of the redis
//! client.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::task::AbortOnDropHandle;

use super::{RedisProbe, MAX_ANSWER_BYTES};
use crate::config::{format_duration, ByteSize};
use crate::error_chain;
use crate::probe::ProbeContext;
use crate::result::{Failure, Reason};

/// The reason and message for an error of the redis client.
fn classify(err: &redis::RedisError) -> Failure {
    let text = crate::clients::tls_configs::chain_text(err);
    if err.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(err.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
    {
        return Failure::new(Reason::Auth, text);
    }
    if err.is_connection_refusal() {
        return Failure::new(Reason::ConnectionRefused, text);
    }
    if err.is_timeout() {
        return Failure::new(Reason::Timeout, text);
    }
    // The client keeps I/O errors in an `Arc<dyn Error>`; the walk goes
    // into it.
    for inner in error_chain::walk(err).skip(1) {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            let is_tls = io
                .get_ref()
                .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some());
            if is_tls {
                return Failure::new(crate::clients::tls_configs::handshake_reason(io), text);
            }
        }
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return Failure::new(Reason::Tls, text);
        }
    }
    if err.is_io_error() {
        return Failure::new(Reason::Connect, text);
    }
    if err.kind() == redis::ErrorKind::InvalidClientConfig {
        return Failure::new(Reason::Secret, text);
    }
    Failure::new(Reason::Protocol, text)
}

/// The failure of a command on a connection whose reads may have been cut
/// off at [`MAX_ANSWER_BYTES`] (the client then only sees a broken
/// connection).
pub(super) fn query_failure(err: &redis::RedisError, overrun: &AtomicBool) -> Failure {
    if overrun.load(Ordering::Relaxed) {
        return Failure::new(Reason::TooLarge, answer_too_large().to_string());
    }
    classify(err)
}

fn answer_too_large() -> AnswerTooLarge {
    AnswerTooLarge(ByteSize(MAX_ANSWER_BYTES))
}

/// The server sent more than a run reads.
#[derive(Debug, thiserror::Error)]
#[error("the server sent more than {0} on one connection, the most a redis check reads (a real INFO is a few KiB); is this Redis?")]
struct AnswerTooLarge(ByteSize);

/// The connection of one run: the client, whether its reads hit the limit,
/// and the task driving it, aborted when the run ends (also when the
/// runner's timeout drops the run in the middle of a read).
pub(super) struct Connection {
    pub(super) client: MultiplexedConnection,
    pub(super) overrun: Arc<AtomicBool>,
    pub(super) _driver: AbortOnDropHandle<()>,
}

/// A byte stream to a server, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// `host:port` (or the socket path) for messages.
fn address_text(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
        other => format!("{other}"),
    }
}

/// Connects to `addr`, with a TLS handshake under `tls` when given.
async fn open_stream(
    addr: &ConnectionAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn Io>, Failure> {
    let shown = address_text(addr);
    let connect_failure = |err: std::io::Error| {
        if err.kind() == std::io::ErrorKind::ConnectionRefused {
            Failure::new(
                Reason::ConnectionRefused,
                format!("connection to {shown} refused"),
            )
        } else {
            Failure::new(Reason::Connect, format!("cannot connect to {shown}: {err}"))
        }
    };
    let (host, port) = match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            (host, *port)
        }
        ConnectionAddr::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(connect_failure)?;
            return Ok(Box::new(stream));
        }
        other => {
            return Err(Failure::new(
                Reason::Secret,
                format!(
                    "the Redis URL names an address of a kind vouch cannot connect to ({other})"
                ),
            ))
        }
    };
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(connect_failure)?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    // The shared client configs offer HTTP in ALPN; Redis speaks none.
    let mut config = (*config).clone();
    config.alpn_protocols.clear();
    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|err| {
        Failure::new(
            Reason::Tls,
            format!("{host} is not a name a certificate can hold: {err}"),
        )
    })?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|err| {
            Failure::new(
                crate::clients::tls_configs::handshake_reason(&err),
                format!(
                    "TLS handshake with {shown} failed: {}",
                    crate::clients::tls_configs::describe_handshake(&err)
                ),
            )
        })?;
    Ok(Box::new(stream))
}

/// A stream that fails a read once more than `limit` bytes have come in,
/// and raises `overrun` then.
struct BoundedStream<S> {
    inner: S,
    read: u64,
    limit: u64,
    overrun: Arc<AtomicBool>,
}

impl<S: AsyncRead + Unpin> AsyncRead for BoundedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.read <= this.limit {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            this.read += (buf.filled().len() - before) as u64;
        }
        if this.read > this.limit {
            this.overrun.store(true, Ordering::Relaxed);
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                answer_too_large(),
            )));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BoundedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl RedisProbe {
    pub(super) async fn connect(
        &self,
        ctx: &ProbeContext,
        url: &str,
        password: Option<&str>,
    ) -> Result<Connection, Failure> {
        let info = url.into_connection_info().map_err(|err| {
            Failure::new(
                Reason::Secret,
                format!("the Redis URL is not valid ({})", classify(&err).message),
            )
        })?;
        let mut settings = info.redis_settings().clone();
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = password {
            settings = settings.set_password(password);
        }
        let info = info.set_redis_settings(settings);
        let tls = match (info.addr(), &self.ca_file) {
            (ConnectionAddr::TcpTls { insecure: true, .. }, _) => {
                return Err(Failure::new(
                    Reason::Tls,
                    "the rediss:// URL ends in #insecure, which would turn certificate verification off; give ca_file instead",
                ))
            }
            (ConnectionAddr::TcpTls { .. }, Some(path)) => Some(
                ctx.clients
                    .tls
                    .with_extra_ca(path)
                    .map_err(|err| Failure::new(Reason::Tls, format!("ca_file: {err}")))?,
            ),
            (ConnectionAddr::TcpTls { .. }, None) => Some(ctx.clients.tls.verified()),
            (_, Some(_)) => {
                return Err(Failure::new(
                    Reason::Tls,
                    "ca_file is given but the URL is not rediss://",
                ))
            }
            _ => None,
        };
        let overrun = Arc::new(AtomicBool::new(false));
        // No response timeout of the client's own: the runner enforces the
        // check's timeout and says where the run was stuck.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let setup = async {
            let stream = open_stream(info.addr(), tls).await?;
            let stream = BoundedStream {
                inner: stream,
                read: 0,
                limit: MAX_ANSWER_BYTES,
                overrun: overrun.clone(),
            };
            MultiplexedConnection::new_with_config(info.redis_settings(), stream, config)
                .await
                .map_err(|err| query_failure(&err, &overrun))
        };
        match tokio::time::timeout(self.connect_timeout, setup).await {
            Err(_) => Err(Failure::new(
                Reason::Timeout,
                format!(
                    "no connection to {} within {} (connect_timeout)",
                    address_text(info.addr()),
                    format_duration(self.connect_timeout)
                ),
            )),
            Ok(Err(f)) => Err(f),
            Ok(Ok((client, driver))) => Ok(Connection {
                client,
                overrun,
                _driver: AbortOnDropHandle::new(tokio::spawn(driver)),
            }),
        }
    }
}
