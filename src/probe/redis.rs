//! The `redis` check kind: PING latency and the state INFO reports —
//! memory against maxmemory, clients, the keyspace hit ratio and evictions
//! over the window since the previous run, RDB and AOF persistence,
//! replication role and loading.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::task::AbortOnDropHandle;

use super::{BuildContext, Probe, ProbeContext};
use crate::config::{format_duration, ByteSize, HumanDuration, Problem, Ratio};
use crate::error_chain;
use crate::lock::lock;
use crate::result::{Failure, Measure, Measurement, Outcome, Reason};
use crate::secret::{scrub, SecretSource};

/// Lookups a window needs before its hit ratio may fail the check.
pub const DEFAULT_MIN_LOOKUPS: u64 = 100;

/// Bytes a server may send on the connection of one run (the handshake,
/// `PING` and `INFO` together). The redis client reads a reply whole, so a
/// lying server could otherwise grow memory without limit with one endless
/// bulk string. A real `INFO` is 5-10 KiB (more with many databases in
/// its keyspace section); 1 MiB leaves a wide margin.
pub const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// The `redis` block of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// File holding the URL (`redis://[user:password@]host:6379[/db]`, or
    /// `rediss://` for TLS), read at every run.
    pub url_file: Option<PathBuf>,
    /// Environment variable holding the URL.
    pub url_env: Option<String>,
    /// ACL user name (wins over one in the URL).
    pub username: Option<String>,
    /// File holding the password (wins over one in the URL).
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// PEM file of the CA that signed the server's certificate (`rediss://`
    /// only); without it the system roots are trusted.
    pub ca_file: Option<PathBuf>,
    /// Longest the connection may take (default: half the check's timeout).
    pub connect_timeout: Option<HumanDuration>,
    /// Highest share of `maxmemory` in use (e.g. `90%`). Not judged when
    /// maxmemory is 0 (unlimited); the message says so.
    pub max_memory_used: Option<Ratio>,
    /// The server's `maxmemory` must be exactly this size (Redis's `1gb`
    /// is `1GiB` here); maxmemory 0 (unlimited) fails it.
    pub maxmemory: Option<ByteSize>,
    /// Lowest keyspace hit ratio over the window since the previous run
    /// (e.g. `0.8` or `80%`).
    pub min_hit_ratio: Option<Ratio>,
    /// Lookups (hits + misses) a window needs before its hit ratio is
    /// exported and judged (default 100), so an idle cache does not flap.
    pub min_lookups: Option<u64>,
    /// Most keys evicted in the window since the previous run.
    pub max_evictions: Option<u64>,
    /// Longest since the last successful RDB save; a failed last BGSAVE
    /// also fails.
    pub max_last_save_age: Option<HumanDuration>,
    /// `enabled`: AOF must be on and its last write must have succeeded;
    /// `disabled`: AOF must be off.
    pub aof: Option<AofExpect>,
    /// `master` or `replica` (a replica's link to its master must be up).
    pub role: Option<RoleExpect>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AofExpect {
    Enabled,
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleExpect {
    #[serde(alias = "primary")]
    Master,
    #[serde(alias = "slave")]
    Replica,
}

impl RoleExpect {
    fn as_str(self) -> &'static str {
        match self {
            RoleExpect::Master => "master",
            RoleExpect::Replica => "replica",
        }
    }
}

/// Counters from the previous run, the start of the next window.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Counters {
    run_id: String,
    hits: u64,
    misses: u64,
    evicted: u64,
}

/// A compiled `redis` check. Holds the previous run's counters: the probe
/// lives as long as the check.
#[derive(Debug)]
pub struct RedisProbe {
    url: SecretSource,
    username: Option<String>,
    password: Option<SecretSource>,
    ca_file: Option<PathBuf>,
    connect_timeout: Duration,
    max_memory_used: Option<Ratio>,
    maxmemory: Option<ByteSize>,
    min_hit_ratio: Option<Ratio>,
    min_lookups: u64,
    max_evictions: Option<u64>,
    max_last_save_age: Option<Duration>,
    aof: Option<AofExpect>,
    role: Option<RoleExpect>,
    previous: Mutex<Option<Counters>>,
}

impl RedisProbe {
    pub fn build(config: &RedisConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let url = ctx.secrets.source(
            config.url_file.as_ref(),
            config.url_env.as_ref(),
            "url",
            "",
            &mut problems,
        );
        if url.is_none() {
            problems.push(Problem::new(
                "",
                "needs url_file or url_env (the URL may hold a password)",
            ));
        }
        let password = ctx.secrets.source(
            config.password_file.as_ref(),
            config.password_env.as_ref(),
            "password",
            "",
            &mut problems,
        );
        if config
            .username
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            problems.push(Problem::new("username", "must not be empty"));
        }
        let check_timeout = ctx.timeout;
        match config.connect_timeout {
            Some(d) if d.0.is_zero() => {
                problems.push(Problem::new("connect_timeout", "must be longer than 0s"))
            }
            Some(d) if d.0 >= check_timeout => problems.push(Problem::new(
                "connect_timeout",
                format!(
                    "connect_timeout {d} must be shorter than the check's timeout {}",
                    format_duration(check_timeout)
                ),
            )),
            _ => {}
        }
        let (Some(url), true) = (url, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(RedisProbe {
            url,
            username: config.username.clone(),
            password,
            ca_file: config.ca_file.as_ref().map(|p| ctx.resolve_path(p)),
            connect_timeout: config
                .connect_timeout
                .map(|d| d.0)
                .unwrap_or(check_timeout / 2),
            max_memory_used: config.max_memory_used,
            maxmemory: config.maxmemory,
            min_hit_ratio: config.min_hit_ratio,
            min_lookups: config.min_lookups.unwrap_or(DEFAULT_MIN_LOOKUPS),
            max_evictions: config.max_evictions,
            max_last_save_age: config.max_last_save_age.map(|d| d.0),
            aof: config.aof,
            role: config.role,
            previous: Mutex::new(None),
        })
    }
}

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
fn query_failure(err: &redis::RedisError, overrun: &AtomicBool) -> Failure {
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
struct Connection {
    client: MultiplexedConnection,
    overrun: Arc<AtomicBool>,
    _driver: AbortOnDropHandle<()>,
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

/// `INFO`'s `key:value` lines (public for the fuzz targets: INFO is
/// outside input).
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Info(HashMap<String, String>);

impl Info {
    fn text(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.text(key).and_then(|v| v.parse::<f64>().ok())
    }

    fn count(&self, key: &str) -> Option<u64> {
        self.text(key).and_then(|v| v.parse::<u64>().ok())
    }

    fn required(&self, key: &str) -> Result<f64, Failure> {
        self.number(key).ok_or_else(|| {
            Failure::new(
                Reason::Protocol,
                format!("INFO has no numeric {key}; is this Redis?"),
            )
        })
    }
}

impl RedisProbe {
    async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        ctx.progress.set("reading the URL");
        let url = match self.url.read_async().await {
            Ok(url) => url,
            Err(err) => return Outcome::error(Reason::Secret, err.to_string()),
        };
        let password = match &self.password {
            Some(source) => match source.read_async().await {
                Ok(password) => Some(password),
                Err(err) => return Outcome::error(Reason::Secret, err.to_string()),
            },
            None => None,
        };
        let mut outcome = self
            .check(ctx, url.expose(), password.as_ref().map(|p| p.expose()))
            .await;
        // Neither the URL nor any password may reach a message.
        let mut secrets = vec![url.expose().to_string()];
        if let Some(password) = &password {
            secrets.push(password.expose().to_string());
        }
        if let Ok(info) = url.expose().into_connection_info() {
            if let Some(password) = info.redis_settings().password() {
                secrets.push(password.to_string());
            }
        }
        outcome.message = scrub(&outcome.message, &secrets);
        outcome
    }

    async fn connect(
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

    async fn check(&self, ctx: &ProbeContext, url: &str, password: Option<&str>) -> Outcome {
        ctx.progress.set("connecting");
        let Connection {
            client: mut connection,
            overrun,
            _driver,
        } = match self.connect(ctx, url, password).await {
            Ok(connection) => connection,
            Err(f) => {
                return f
                    .into_error()
                    .with_measurements(vec![Measurement::new(Measure::RedisUp, 0.0)])
            }
        };
        ctx.progress.set("waiting for PING");
        let started = Instant::now();
        let pong: Result<String, _> = redis::cmd("PING").query_async(&mut connection).await;
        let ping = started.elapsed();
        // A server loading its data set answers PING with -LOADING but
        // answers INFO, whose `loading:1` the judge reports as `loading`.
        let pong = pong.or_else(|err| match err.code() {
            Some("LOADING") => Ok(String::new()),
            _ => Err(err),
        });
        if let Err(err) = pong {
            let f = query_failure(&err, &overrun);
            return f
                .into_error()
                .with_measurements(vec![Measurement::new(Measure::RedisUp, 0.0)]);
        }
        ctx.progress.set("waiting for INFO");
        let info: String = match redis::cmd("INFO").query_async(&mut connection).await {
            Ok(info) => info,
            Err(err) => {
                let f = query_failure(&err, &overrun);
                return f
                    .into_error()
                    .with_measurements(vec![Measurement::new(Measure::RedisUp, 0.0)]);
            }
        };
        let mut measurements = vec![
            Measurement::new(Measure::RedisUp, 1.0),
            Measurement::new(Measure::RedisPingSeconds, ping.as_secs_f64()),
        ];
        match self.judge(&Info(parse_info(&info)), &mut measurements) {
            Ok((failures, _)) if !failures.is_empty() => {
                Outcome::from_failures(failures.iter().map(|f| (f.reason, f.message.as_str())))
                    .expect("failures is not empty")
            }
            Ok((_, notes)) => Outcome::pass(format!(
                "PONG in {}; {}",
                format_duration(ping),
                notes.join("; ")
            )),
            Err(f) => f.into_error(),
        }
        .with_measurements(measurements)
    }

    /// Memory against maxmemory: the measurements, `max_memory_used` and
    /// the expected `maxmemory`.
    fn judge_memory(
        &self,
        info: &Info,
        measurements: &mut Vec<Measurement>,
        failures: &mut Vec<Failure>,
        notes: &mut Vec<String>,
    ) -> Result<(), Failure> {
        let used = info.required("used_memory")?;
        let max = info.number("maxmemory").unwrap_or(0.0);
        measurements.push(Measurement::new(Measure::RedisMemoryUsedBytes, used));
        measurements.push(Measurement::new(Measure::RedisMemoryMaxBytes, max));
        if max > 0.0 {
            let ratio = used / max;
            measurements.push(Measurement::new(Measure::RedisMemoryUsedRatio, ratio));
            let text = format!(
                "memory {} of maxmemory {} ({})",
                ByteSize(used as u64).approx(),
                ByteSize(max as u64),
                Ratio(ratio)
            );
            match self.max_memory_used {
                Some(limit) if ratio > limit.0 => failures.push(Failure::new(
                    Reason::Memory,
                    format!("{text}, limit {limit}"),
                )),
                _ => notes.push(text),
            }
        } else {
            notes.push(match self.max_memory_used {
                Some(limit) => format!(
                    "memory {}, maxmemory 0 (unlimited): max_memory_used {limit} not judged",
                    ByteSize(used as u64).approx()
                ),
                None => format!(
                    "memory {}, maxmemory 0 (unlimited)",
                    ByteSize(used as u64).approx()
                ),
            });
        }

        if let Some(expected) = self.maxmemory {
            if max as u64 != expected.0 {
                let actual = match max as u64 {
                    0 => "0 (unlimited)".to_string(),
                    bytes => ByteSize(bytes).to_string(),
                };
                failures.push(Failure::new(
                    Reason::Memory,
                    format!("maxmemory {actual}, expected {expected}"),
                ));
            }
        }
        Ok(())
    }

    /// Measures and judges one INFO answer: the broken expectations, and
    /// notes for the pass message.
    fn judge(
        &self,
        info: &Info,
        measurements: &mut Vec<Measurement>,
    ) -> Result<(Vec<Failure>, Vec<String>), Failure> {
        let mut failures = Vec::new();
        let mut notes = Vec::new();

        self.judge_memory(info, measurements, &mut failures, &mut notes)?;

        // Clients.
        for (key, measure) in [
            ("connected_clients", Measure::RedisConnectedClients),
            ("blocked_clients", Measure::RedisBlockedClients),
        ] {
            if let Some(value) = info.number(key) {
                measurements.push(Measurement::new(measure, value));
            }
        }

        // The window since the previous run.
        let now = Counters {
            run_id: info.text("run_id").unwrap_or_default().to_string(),
            hits: info.count("keyspace_hits").unwrap_or(0),
            misses: info.count("keyspace_misses").unwrap_or(0),
            evicted: info.count("evicted_keys").unwrap_or(0),
        };
        let previous = {
            let mut slot = lock(&self.previous);
            slot.replace(now.clone())
        };
        // A first run, or a restarted server (new run_id, or counters that
        // went back after CONFIG RESETSTAT), measures since the server's
        // counters began.
        let start = previous
            .filter(|p| {
                p.run_id == now.run_id
                    && p.hits <= now.hits
                    && p.misses <= now.misses
                    && p.evicted <= now.evicted
            })
            .unwrap_or(Counters {
                run_id: now.run_id.clone(),
                hits: 0,
                misses: 0,
                evicted: 0,
            });
        let hits = now.hits - start.hits;
        let misses = now.misses - start.misses;
        let lookups = hits + misses;
        let evicted = now.evicted - start.evicted;
        measurements.push(Measurement::new(Measure::RedisEvictedKeys, evicted as f64));
        // A ratio over fewer lookups than min_lookups is noise: not exported.
        if lookups > 0 && lookups >= self.min_lookups {
            measurements.push(Measurement::new(
                Measure::RedisHitRatio,
                hits as f64 / lookups as f64,
            ));
        }
        if let Some(min) = self.min_hit_ratio {
            if lookups < self.min_lookups {
                notes.push(format!(
                    "hit ratio not judged: {lookups} lookups in the window, fewer than min_lookups {}",
                    self.min_lookups
                ));
            } else {
                let ratio = hits as f64 / lookups as f64;
                let text = format!(
                    "hit ratio {} over the window ({hits} hits, {misses} misses)",
                    Ratio(ratio)
                );
                if ratio < min.0 {
                    failures.push(Failure::new(
                        Reason::HitRatio,
                        format!("{text}, minimum {min}"),
                    ));
                } else {
                    notes.push(text);
                }
            }
        }
        if let Some(limit) = self.max_evictions {
            if evicted > limit {
                failures.push(Failure::new(
                    Reason::Evictions,
                    format!("{evicted} keys evicted in the window, limit {limit}"),
                ));
            }
        }

        // Persistence.
        let server_now = info
            .number("server_time_usec")
            .map(|us| us / 1e6)
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64()
            });
        let bgsave_ok = info.text("rdb_last_bgsave_status") != Some("err");
        measurements.push(Measurement::new(
            Measure::RedisLastBgsaveSuccess,
            f64::from(u8::from(bgsave_ok)),
        ));
        if let Some(saved) = info.number("rdb_last_save_time") {
            let age = (server_now - saved).max(0.0);
            measurements.push(Measurement::new(Measure::RedisLastSaveAgeSeconds, age));
            if let Some(limit) = self.max_last_save_age {
                if age > limit.as_secs_f64() {
                    failures.push(Failure::new(
                        Reason::Persistence,
                        format!(
                            "last RDB save {} ago, limit {}",
                            format_duration(Duration::from_secs(age as u64)),
                            format_duration(limit)
                        ),
                    ));
                }
                if !bgsave_ok {
                    failures.push(Failure::new(Reason::Persistence, "the last BGSAVE failed"));
                }
            }
        }
        let aof_on = info.text("aof_enabled") == Some("1");
        let aof_write_ok = info.text("aof_last_write_status") != Some("err");
        measurements.push(Measurement::new(
            Measure::RedisAofEnabled,
            f64::from(u8::from(aof_on)),
        ));
        measurements.push(Measurement::new(
            Measure::RedisAofLastWriteSuccess,
            f64::from(u8::from(aof_write_ok)),
        ));
        match self.aof {
            Some(AofExpect::Enabled) if !aof_on => failures.push(Failure::new(
                Reason::Persistence,
                "AOF is disabled, expected enabled",
            )),
            Some(AofExpect::Enabled) if !aof_write_ok => failures.push(Failure::new(
                Reason::Persistence,
                "the last AOF write failed",
            )),
            Some(AofExpect::Disabled) if aof_on => failures.push(Failure::new(
                Reason::Persistence,
                "AOF is enabled, expected disabled",
            )),
            _ => {}
        }

        // Replication and loading.
        let role = match info.text("role") {
            Some("slave") | Some("replica") => "replica",
            Some("master") => "master",
            _ => "unknown",
        };
        measurements.push(Measurement::labelled(Measure::RedisRoleInfo, &[role], 1.0));
        let link_up = info.text("master_link_status").map(|s| s == "up");
        if let Some(up) = link_up {
            measurements.push(Measurement::new(
                Measure::RedisMasterLinkUp,
                f64::from(u8::from(up)),
            ));
        }
        if let Some(expected) = self.role {
            if role != expected.as_str() {
                failures.push(Failure::new(
                    Reason::Role,
                    format!("role {role}, expected {}", expected.as_str()),
                ));
            } else if expected == RoleExpect::Replica && link_up != Some(true) {
                failures.push(Failure::new(
                    Reason::Role,
                    format!(
                        "replica's link to its master is {}",
                        info.text("master_link_status").unwrap_or("unknown")
                    ),
                ));
            }
        }
        let loading = info.text("loading") == Some("1");
        measurements.push(Measurement::new(
            Measure::RedisLoading,
            f64::from(u8::from(loading)),
        ));
        if loading {
            failures.push(Failure::new(
                Reason::Loading,
                "the server is loading its data set",
            ));
        }
        Ok((failures, notes))
    }
}

impl Probe for RedisProbe {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        self.execute(ctx).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_become_a_map() {
        let info = parse_info("# Server\r\nredis_version:7.0.15\r\nrole:master\r\n\r\n# Keyspace\r\ndb0:keys=1,expires=0\r\n");
        assert_eq!(info["redis_version"], "7.0.15");
        assert_eq!(info["role"], "master");
        assert_eq!(info["db0"], "keys=1,expires=0");
    }
}
