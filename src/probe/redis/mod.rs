//! The `redis` check kind: PING latency and the state INFO reports —
//! memory against maxmemory, clients, the keyspace hit ratio and evictions
//! over the window since the previous run, RDB and AOF persistence,
//! replication role and loading.
//!
//! `connect` opens the connection of one run and names the reason of every
//! client error, `judge` reads INFO and judges it section by section.

mod connect;
mod judge;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::IntoConnectionInfo;
use serde::Deserialize;

use super::{BuildContext, Probe, ProbeContext};
use crate::config::{format_duration, ByteSize, HumanDuration, Problem, Ratio};
use crate::result::{Measure, Measurement, Outcome, Reason};
use crate::secret::{scrub, SecretSource};
use connect::{query_failure, Connection};
use judge::{Counters, Info};

pub use judge::parse_info;

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
}

impl Probe for RedisProbe {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        self.execute(ctx).boxed()
    }
}
