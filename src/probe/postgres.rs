//! The `postgres` check kind: connects with a URL given only by reference,
//! measures connections, long-running queries and transactions, database
//! size, reads the migration state and runs custom SQL assertions, every
//! query read-only and under a `statement_timeout`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use rustls::ClientConfig;
use serde::{Deserialize, Deserializer};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

use super::{BuildContext, Probe, ProbeContext};
use crate::config::{format_duration, ByteSize, HumanDuration, Problem, Ratio};
use crate::error_chain;
use crate::result::{Failure, Measure, Measurement, Outcome, Reason};
use crate::secret::{scrub, Secret, SecretSource};

/// The `postgres` block of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// File holding the connection URL (`postgres://user:password@host:5432/db`),
    /// read at every run.
    pub url_file: Option<PathBuf>,
    /// Environment variable holding the connection URL.
    pub url_env: Option<String>,
    /// `disable`, `require` (encrypted, certificate not verified) or
    /// `verify-full` (default). Wins over an `sslmode` in the URL.
    pub tls: Option<TlsMode>,
    /// PEM file of CA certificates trusted besides the system roots
    /// (`verify-full` only).
    pub ca_file: Option<PathBuf>,
    /// Longest the connection (TCP, TLS, authentication) may take
    /// (default: half the check's timeout).
    pub connect_timeout: Option<HumanDuration>,
    /// `statement_timeout` of every query the check runs (default: half the
    /// check's timeout); must be shorter than the check's timeout.
    pub statement_timeout: Option<HumanDuration>,
    /// Queries running longer than this are counted as slow (default:
    /// `max_query_age`, else 1s).
    pub slow_query_threshold: Option<HumanDuration>,
    /// Highest share of `max_connections` in use (e.g. `80%`).
    pub max_connections_used: Option<Ratio>,
    /// Longest an active query (not vouch's own) may have been running.
    pub max_query_age: Option<HumanDuration>,
    /// Longest a transaction (not vouch's own) may have been open.
    pub max_transaction_age: Option<HumanDuration>,
    /// Largest the current database may be.
    pub max_database_size: Option<ByteSize>,
    /// The latest applied migration and what it must be.
    pub migration: Option<MigrationConfig>,
    /// Queries returning one number, each compared with a limit.
    #[serde(default)]
    pub assertions: Vec<AssertionConfig>,
}

/// How the connection is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Disable,
    Require,
    VerifyFull,
}

/// Where the latest applied migration is read, and what it must be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationConfig {
    /// A query whose first column of its first row is the latest migration.
    pub query: Option<String>,
    /// A table of applied migrations (`schema_migrations`, `public._migrations`);
    /// the latest is `max(column)`.
    pub table: Option<String>,
    /// The column of `table` holding the migration version or name.
    pub column: Option<String>,
    /// The latest migration must be exactly this.
    #[serde(default, deserialize_with = "scalar_text")]
    pub equals: Option<String>,
    /// The latest migration must be this or later (numbers compare as
    /// numbers, anything else as text).
    #[serde(default, deserialize_with = "scalar_text")]
    pub at_least: Option<String>,
}

/// A custom SQL assertion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    /// Name, exported as the `assertion` label: letters, digits, `_`, `-`.
    pub name: String,
    /// A read-only query whose first row's first column is a number.
    pub query: String,
    /// Comparison the number must satisfy: `> 0`, `>= 1`, `== 5`, `!= 0`,
    /// `< 1000`, `<= 10`.
    pub expect: String,
}

/// Reads a YAML string or number as text (`equals: 20240101` or `"v42"`).
fn scalar_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Unsigned(u64),
        Signed(i64),
        Float(f64),
    }
    Ok(Some(
        match Scalar::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected a string or a number"))?
        {
            Scalar::Text(text) => text,
            Scalar::Unsigned(n) => n.to_string(),
            Scalar::Signed(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
        },
    ))
}

/// A comparison of a measured number with a limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    op: Op,
    limit: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

impl Comparison {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        // Two-character operators first, so `>=` is not read as `>`.
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        let parsed = ops.iter().find_map(|(word, op)| {
            let number = trimmed.strip_prefix(word)?.trim();
            number
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(|limit| Comparison { op: *op, limit })
        });
        parsed.ok_or_else(|| {
            format!(
                "invalid comparison {text:?}: expected an operator (>, >=, <, <=, ==, !=) and a number, e.g. \"> 0\""
            )
        })
    }

    pub fn holds(self, value: f64) -> bool {
        match self.op {
            Op::Gt => value > self.limit,
            Op::Ge => value >= self.limit,
            Op::Lt => value < self.limit,
            Op::Le => value <= self.limit,
            Op::Eq => value == self.limit,
            Op::Ne => value != self.limit,
        }
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op.as_str(), number(self.limit))
    }
}

/// A number as people write it: `5`, not `5.0`.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[derive(Debug)]
enum MigrationExpect {
    Equals(String),
    AtLeast(String),
}

#[derive(Debug)]
struct Migration {
    /// The wrapped query returning the latest migration as text.
    sql: String,
    expect: MigrationExpect,
}

#[derive(Debug)]
struct Assertion {
    name: String,
    sql: String,
    comparison: Comparison,
}

#[derive(Debug)]
enum Tls {
    Disable,
    Encrypt(Arc<ClientConfig>),
}

/// A compiled `postgres` check.
#[derive(Debug)]
pub struct PostgresProbe {
    url: SecretSource,
    tls_mode: Option<TlsMode>,
    verified: Arc<ClientConfig>,
    unverified: Arc<ClientConfig>,
    connect_timeout: Duration,
    statement_timeout: Duration,
    slow_query_threshold: Duration,
    max_connections_used: Option<Ratio>,
    max_query_age: Option<Duration>,
    max_transaction_age: Option<Duration>,
    max_database_size: Option<ByteSize>,
    migration: Option<Migration>,
    assertions: Vec<Assertion>,
}

/// The PostgreSQL connection states of `pg_stat_activity.state` and their
/// label values; `unknown` is a session whose state the check's role may
/// not see.
const STATES: &[(&str, &str)] = &[
    ("active", "active"),
    ("idle", "idle"),
    ("idle in transaction", "idle_in_transaction"),
    (
        "idle in transaction (aborted)",
        "idle_in_transaction_aborted",
    ),
    ("fastpath function call", "fastpath_function_call"),
    ("disabled", "disabled"),
    ("", "unknown"),
];

/// A name or `schema.name` quoted as SQL identifiers.
fn quote_identifier(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Wraps a user's query so that only the first column of its first row
/// comes back as text, and only a single SELECT (or VALUES, or WITH without
/// data-modifying parts) fits.
fn wrap_query(query: &str) -> Result<String, String> {
    let query = query.trim().trim_end_matches(';').trim_end();
    if query.is_empty() {
        return Err("must not be empty".into());
    }
    if query.contains(';') {
        return Err("must be a single query (no `;` inside)".into());
    }
    Ok(format!(
        "SELECT vouch_value::text FROM ({query}\n) AS vouch_query(vouch_value) LIMIT 1"
    ))
}

fn is_assertion_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl PostgresProbe {
    pub fn build(config: &PostgresConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
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
                "needs url_file or url_env (the connection URL is a secret)",
            ));
        }
        let verified = match &config.ca_file {
            Some(ca_file) => {
                if matches!(config.tls, Some(TlsMode::Disable | TlsMode::Require)) {
                    problems.push(Problem::new(
                        "ca_file",
                        "is only used with tls: verify-full",
                    ));
                }
                ctx.clients
                    .tls
                    .with_extra_ca(&ctx.resolve_path(ca_file))
                    .unwrap_or_else(|err| {
                        problems.push(Problem::new("ca_file", err));
                        ctx.clients.tls.verified()
                    })
            }
            None => ctx.clients.tls.verified(),
        };
        let check_timeout = ctx.timeout;
        let half = check_timeout / 2;
        for (key, value) in [
            ("connect_timeout", config.connect_timeout),
            ("statement_timeout", config.statement_timeout),
        ] {
            match value {
                Some(d) if d.0.is_zero() => {
                    problems.push(Problem::new(key, "must be longer than 0s"))
                }
                Some(d) if d.0 >= check_timeout => problems.push(Problem::new(
                    key,
                    format!(
                        "{key} {d} must be shorter than the check's timeout {}",
                        format_duration(check_timeout)
                    ),
                )),
                _ => {}
            }
        }
        let migration = config.migration.as_ref().and_then(|m| {
            let before = problems.len();
            let sql = match (&m.query, &m.table, &m.column) {
                (Some(query), None, None) => match wrap_query(query) {
                    Ok(sql) => Some(sql),
                    Err(message) => {
                        problems.push(Problem::new("migration.query", message));
                        None
                    }
                },
                (None, Some(table), Some(column))
                    if !table.trim().is_empty() && !column.trim().is_empty() =>
                {
                    Some(format!(
                        "SELECT max({})::text FROM {}",
                        quote_identifier(column.trim()),
                        quote_identifier(table.trim())
                    ))
                }
                (None, Some(_), Some(_)) => {
                    problems.push(Problem::new(
                        "migration.table",
                        "table and column must not be empty",
                    ));
                    None
                }
                (None, Some(_), None) => {
                    problems.push(Problem::new(
                        "migration.table",
                        "needs column (the column of applied migration versions)",
                    ));
                    None
                }
                (None, None, Some(_)) => {
                    problems.push(Problem::new("migration.column", "needs table"));
                    None
                }
                (None, None, None) => {
                    problems.push(Problem::new(
                        "migration",
                        "needs query, or table and column",
                    ));
                    None
                }
                (Some(_), _, _) => {
                    problems.push(Problem::new(
                        "migration.query",
                        "give query, or table and column, not both",
                    ));
                    None
                }
            };
            let expect = match (&m.equals, &m.at_least) {
                (Some(value), None) => Some(MigrationExpect::Equals(value.clone())),
                (None, Some(value)) => Some(MigrationExpect::AtLeast(value.clone())),
                (Some(_), Some(_)) => {
                    problems.push(Problem::new(
                        "migration.at_least",
                        "give equals or at_least, not both",
                    ));
                    None
                }
                (None, None) => {
                    problems.push(Problem::new("migration", "needs equals or at_least"));
                    None
                }
            };
            match (sql, expect) {
                (Some(sql), Some(expect)) if problems.len() == before => {
                    Some(Migration { sql, expect })
                }
                _ => None,
            }
        });
        let mut names = std::collections::HashSet::new();
        let mut assertions = Vec::new();
        for (i, assertion) in config.assertions.iter().enumerate() {
            let at = format!("assertions[{i}]");
            if !is_assertion_name(&assertion.name) {
                problems.push(Problem::new(
                    format!("{at}.name"),
                    "must be 1 to 64 letters, digits, `_` or `-` (it is a label value)",
                ));
            } else if !names.insert(assertion.name.as_str()) {
                problems.push(Problem::new(
                    format!("{at}.name"),
                    format!("duplicate assertion name {:?}", assertion.name),
                ));
            }
            let sql = wrap_query(&assertion.query)
                .map_err(|message| problems.push(Problem::new(format!("{at}.query"), message)));
            let comparison = Comparison::parse(&assertion.expect)
                .map_err(|message| problems.push(Problem::new(format!("{at}.expect"), message)));
            if let (Ok(sql), Ok(comparison)) = (sql, comparison) {
                assertions.push(Assertion {
                    name: assertion.name.clone(),
                    sql,
                    comparison,
                });
            }
        }
        let (Some(url), true) = (url, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(PostgresProbe {
            url,
            tls_mode: config.tls,
            verified: without_alpn(&verified),
            unverified: without_alpn(&ctx.clients.tls.insecure()),
            connect_timeout: config.connect_timeout.map(|d| d.0).unwrap_or(half),
            statement_timeout: config.statement_timeout.map(|d| d.0).unwrap_or(half),
            slow_query_threshold: config
                .slow_query_threshold
                .or(config.max_query_age)
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(1)),
            max_connections_used: config.max_connections_used,
            max_query_age: config.max_query_age.map(|d| d.0),
            max_transaction_age: config.max_transaction_age.map(|d| d.0),
            max_database_size: config.max_database_size,
            migration,
            assertions,
        })
    }
}

/// The shared client configs announce `http/1.1`; PostgreSQL 17 refuses a
/// TLS connection with an ALPN protocol other than `postgresql`.
fn without_alpn(config: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut config = (**config).clone();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Arc::new(config)
}

/// The reason and message for an error of tokio-postgres.
fn classify(err: &tokio_postgres::Error, statement_timeout: Duration) -> Failure {
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let reason = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Reason::Auth
        } else if *code == SqlState::QUERY_CANCELED {
            return Failure::new(
                Reason::Timeout,
                format!(
                    "query cancelled by statement_timeout {} ({})",
                    format_duration(statement_timeout),
                    db.message()
                ),
            );
        } else if *code == SqlState::TOO_MANY_CONNECTIONS {
            Reason::Connections
        } else {
            Reason::Query
        };
        return Failure::new(
            reason,
            format!("{}: {} ({})", db.severity(), db.message(), code.code()),
        );
    }
    for inner in error_chain::walk(err).skip(1) {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            let reason = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Reason::ConnectionRefused,
                std::io::ErrorKind::TimedOut => Reason::Timeout,
                _ if io
                    .get_ref()
                    .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some()) =>
                {
                    crate::clients::tls_configs::handshake_reason(io)
                }
                _ => Reason::Connect,
            };
            return Failure::new(reason, crate::clients::tls_configs::chain_text(err));
        }
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return Failure::new(Reason::Tls, crate::clients::tls_configs::chain_text(err));
        }
    }
    let text = crate::clients::tls_configs::chain_text(err);
    let reason = if text.contains("TLS") || text.contains("tls") {
        Reason::Tls
    } else if text.contains("invalid connection string") || text.contains("invalid configuration") {
        Reason::Secret
    } else {
        Reason::Protocol
    };
    Failure::new(reason, text)
}

/// Removes `sslmode=...` from a URL's query (tokio-postgres knows only
/// disable, prefer and require) and returns the mode it asked for.
fn take_sslmode(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut mode = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslmode=") {
            Some(value) => {
                mode = Some(value.to_string());
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, mode)
}

/// What the activity query found.
struct Activity {
    by_state: Vec<(String, i64)>,
    longest_query: f64,
    longest_transaction: f64,
    slow_queries: i64,
}

impl PostgresProbe {
    async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        ctx.progress.set("reading the connection URL");
        let url = match self.url.read() {
            Ok(url) => url,
            Err(err) => return Outcome::error(Reason::Secret, err.to_string()),
        };
        let mut outcome = self.check(ctx, &url).await;
        // The URL and its password must never reach a message.
        let mut secrets = vec![url.expose().to_string()];
        if let Ok(config) = take_sslmode(url.expose())
            .0
            .parse::<tokio_postgres::Config>()
        {
            if let Some(password) = config.get_password() {
                secrets.push(String::from_utf8_lossy(password).into_owned());
            }
        }
        outcome.message = scrub(&outcome.message, &secrets);
        outcome
    }

    fn tls(&self, url_mode: Option<&str>) -> Result<Tls, String> {
        let mode = match (self.tls_mode, url_mode) {
            (Some(mode), _) => mode,
            (None, None) => TlsMode::VerifyFull,
            (None, Some("disable")) => TlsMode::Disable,
            (None, Some("require")) => TlsMode::Require,
            (None, Some("verify-full" | "verify-ca")) => TlsMode::VerifyFull,
            (None, Some(other)) => {
                return Err(format!(
                    "sslmode={other} in the URL is not supported: set tls to disable, require or verify-full"
                ))
            }
        };
        Ok(match mode {
            TlsMode::Disable => Tls::Disable,
            TlsMode::Require => Tls::Encrypt(self.unverified.clone()),
            TlsMode::VerifyFull => Tls::Encrypt(self.verified.clone()),
        })
    }

    async fn connect(&self, url: &Secret) -> Result<Client, Failure> {
        let (url, url_mode) = take_sslmode(url.expose());
        let tls = self
            .tls(url_mode.as_deref())
            .map_err(|message| Failure::new(Reason::Secret, message))?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|err| {
            Failure::new(
                Reason::Secret,
                format!(
                    "the connection URL is not valid ({})",
                    crate::clients::tls_configs::chain_text(&err)
                ),
            )
        })?;
        config
            .connect_timeout(self.connect_timeout)
            .application_name("vouch");
        match tls {
            Tls::Disable => {
                config.ssl_mode(SslMode::Disable);
                spawn_connection(&config, NoTls, self.statement_timeout).await
            }
            Tls::Encrypt(client_config) => {
                config.ssl_mode(SslMode::Require);
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*client_config).clone());
                spawn_connection(&config, tls, self.statement_timeout).await
            }
        }
    }

    async fn check(&self, ctx: &ProbeContext, url: &Secret) -> Outcome {
        ctx.progress.set("connecting");
        let client = match self.connect(url).await {
            Ok(client) => client,
            Err(failure) => {
                return failure
                    .into_error()
                    .with_measurements(vec![Measurement::new(Measure::PostgresUp, 0.0)])
            }
        };
        let mut measurements = vec![Measurement::new(Measure::PostgresUp, 1.0)];
        match self.evaluate(ctx, &client, &mut measurements).await {
            Ok(failures) if failures.is_empty() => {
                Outcome::pass(pass_message(&measurements)).with_measurements(measurements)
            }
            Ok(failures) => {
                Outcome::from_failures(failures.iter().map(|f| (f.reason, f.message.as_str())))
                    .expect("failures is not empty")
                    .with_measurements(measurements)
            }
            Err(failure) => failure.into_error().with_measurements(measurements),
        }
    }

    /// Runs every query; Ok holds the broken expectations.
    async fn evaluate(
        &self,
        ctx: &ProbeContext,
        client: &Client,
        measurements: &mut Vec<Measurement>,
    ) -> Result<Vec<Failure>, Failure> {
        let st = self.statement_timeout;
        let mut failures = Vec::new();

        ctx.progress.set("reading server settings");
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), \
                        current_setting('max_connections')::int8, \
                        pg_database_size(current_database())",
                &[],
            )
            .await
            .map_err(|err| classify(&err, st))?;
        let version: String = row.get(0);
        let max_connections: i64 = row.get(1);
        let database_size: i64 = row.get(2);
        let short_version = version.split_whitespace().next().unwrap_or("").to_string();
        measurements.push(Measurement::labelled(
            Measure::PostgresVersionInfo,
            &[&short_version],
            1.0,
        ));
        measurements.push(Measurement::new(
            Measure::PostgresMaxConnections,
            max_connections as f64,
        ));
        measurements.push(Measurement::new(
            Measure::PostgresDatabaseSizeBytes,
            database_size as f64,
        ));

        ctx.progress.set("reading pg_stat_activity");
        let activity = self.activity(client).await?;
        let total: i64 = activity.by_state.iter().map(|(_, n)| n).sum();
        for (state, label) in STATES {
            let count = activity
                .by_state
                .iter()
                .filter(|(s, _)| s == state)
                .map(|(_, n)| *n)
                .sum::<i64>();
            measurements.push(Measurement::labelled(
                Measure::PostgresConnections,
                &[label],
                count as f64,
            ));
        }
        let used = if max_connections > 0 {
            total as f64 / max_connections as f64
        } else {
            0.0
        };
        measurements.push(Measurement::new(
            Measure::PostgresConnectionsUsedRatio,
            used,
        ));
        measurements.push(Measurement::new(
            Measure::PostgresLongestQuerySeconds,
            activity.longest_query,
        ));
        measurements.push(Measurement::new(
            Measure::PostgresLongestTransactionSeconds,
            activity.longest_transaction,
        ));
        measurements.push(Measurement::new(
            Measure::PostgresSlowQueries,
            activity.slow_queries as f64,
        ));

        if let Some(limit) = self.max_connections_used {
            if used > limit.0 {
                failures.push(Failure::new(
                    Reason::Connections,
                    format!(
                        "connections {total} of max_connections {max_connections} ({}), limit {limit}",
                        Ratio(used)
                    ),
                ));
            }
        }
        if let Some(limit) = self.max_query_age {
            if activity.longest_query > limit.as_secs_f64() {
                failures.push(Failure::new(
                    Reason::QueryAge,
                    format!(
                        "longest running query {}, limit {} ({} queries over {})",
                        seconds(activity.longest_query),
                        format_duration(limit),
                        activity.slow_queries,
                        format_duration(self.slow_query_threshold)
                    ),
                ));
            }
        }
        if let Some(limit) = self.max_transaction_age {
            if activity.longest_transaction > limit.as_secs_f64() {
                failures.push(Failure::new(
                    Reason::TransactionAge,
                    format!(
                        "longest open transaction {}, limit {}",
                        seconds(activity.longest_transaction),
                        format_duration(limit)
                    ),
                ));
            }
        }
        if let Some(limit) = self.max_database_size {
            if database_size as u64 > limit.0 {
                failures.push(Failure::new(
                    Reason::DatabaseSize,
                    format!(
                        "database size {}, limit {limit}",
                        ByteSize(database_size as u64).approx()
                    ),
                ));
            }
        }

        if let Some(migration) = &self.migration {
            ctx.progress.set("reading the migration state");
            let latest = single_text(client, &migration.sql, st).await?;
            let broken = match (&migration.expect, &latest) {
                (_, None) => Some("no migration applied".to_string()),
                (MigrationExpect::Equals(want), Some(have)) => (!versions_equal(have, want))
                    .then(|| format!("latest migration {have:?}, expected {want:?}")),
                (MigrationExpect::AtLeast(want), Some(have)) => (version_cmp(have, want)
                    == std::cmp::Ordering::Less)
                    .then(|| format!("latest migration {have:?}, expected at least {want:?}")),
            };
            if let Some(message) = broken {
                failures.push(Failure::new(Reason::Migration, message));
            }
        }

        for assertion in &self.assertions {
            ctx.progress.set("running an assertion");
            let text = single_text(client, &assertion.sql, st).await.map_err(|f| {
                Failure::new(
                    f.reason,
                    format!("assertion {}: {}", assertion.name, f.message),
                )
            })?;
            let value = text
                .as_deref()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .ok_or_else(|| {
                    Failure::new(
                        Reason::Query,
                        format!(
                            "assertion {}: expected a number, the query returned {}",
                            assertion.name,
                            text.map_or("NULL".to_string(), |t| format!("{t:?}"))
                        ),
                    )
                })?;
            measurements.push(Measurement::labelled(
                Measure::PostgresAssertionValue,
                &[&assertion.name],
                value,
            ));
            if !assertion.comparison.holds(value) {
                failures.push(Failure::new(
                    Reason::Assertion,
                    format!(
                        "assertion {}: value {}, expected {}",
                        assertion.name,
                        number(value),
                        assertion.comparison
                    ),
                ));
            }
        }
        Ok(failures)
    }

    async fn activity(&self, client: &Client) -> Result<Activity, Failure> {
        let st = self.statement_timeout;
        let rows = client
            .query(
                "SELECT coalesce(state, ''), count(*) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' GROUP BY 1",
                &[],
            )
            .await
            .map_err(|err| classify(&err, st))?;
        let by_state = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let threshold = self.slow_query_threshold.as_secs_f64();
        let row = client
            .query_one(
                "SELECT \
                   coalesce(max(extract(epoch FROM now() - query_start)::float8) \
                     FILTER (WHERE state = 'active'), 0), \
                   coalesce(max(extract(epoch FROM now() - xact_start)::float8), 0), \
                   count(*) FILTER (WHERE state = 'active' \
                     AND extract(epoch FROM now() - query_start)::float8 > $1) \
                 FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                &[&threshold],
            )
            .await
            .map_err(|err| classify(&err, st))?;
        Ok(Activity {
            by_state,
            longest_query: row.get::<_, f64>(0).max(0.0),
            longest_transaction: row.get::<_, f64>(1).max(0.0),
            slow_queries: row.get(2),
        })
    }
}

/// Connects, leaves the connection running in its own task, and makes the
/// session read-only with the statement timeout.
async fn spawn_connection<T>(
    config: &tokio_postgres::Config,
    tls: T,
    statement_timeout: Duration,
) -> Result<Client, Failure>
where
    T: MakeTlsConnect<Socket> + Send,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config
        .connect(tls)
        .await
        .map_err(|err| classify(&err, statement_timeout))?;
    // The connection ends when the client is dropped (or the run is
    // aborted by its timeout, which drops both).
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "postgres connection ended");
        }
    });
    client
        .batch_execute(&format!(
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; \
             SET statement_timeout = {}",
            statement_timeout.as_millis().max(1)
        ))
        .await
        .map_err(|err| classify(&err, statement_timeout))?;
    Ok(client)
}

/// The first column of the first row of a wrapped query, as text; None
/// for no row or NULL.
async fn single_text(
    client: &Client,
    sql: &str,
    statement_timeout: Duration,
) -> Result<Option<String>, Failure> {
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|err| classify(&err, statement_timeout))?;
    Ok(rows.first().and_then(|row| row.get(0)))
}

fn versions_equal(have: &str, want: &str) -> bool {
    version_cmp(have, want) == std::cmp::Ordering::Equal
}

/// Numbers compare as numbers, anything else as text.
fn version_cmp(have: &str, want: &str) -> std::cmp::Ordering {
    match (have.trim().parse::<f64>(), want.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
        _ => have.trim().cmp(want.trim()),
    }
}

fn seconds(value: f64) -> String {
    format_duration(Duration::from_secs_f64(value.max(0.0)))
}

fn pass_message(measurements: &[Measurement]) -> String {
    let find = |measure: Measure| {
        measurements
            .iter()
            .find(|m| m.measure == measure)
            .map(|m| m.value)
            .unwrap_or(0.0)
    };
    let version = measurements
        .iter()
        .find(|m| m.measure == Measure::PostgresVersionInfo)
        .and_then(|m| m.label_values().first().map(|v| v.to_string()))
        .unwrap_or_default();
    let connections: f64 = measurements
        .iter()
        .filter(|m| m.measure == Measure::PostgresConnections)
        .map(|m| m.value)
        .sum();
    format!(
        "PostgreSQL {version}, connections {} of {} ({}), longest query {}",
        number(connections),
        number(find(Measure::PostgresMaxConnections)),
        Ratio(find(Measure::PostgresConnectionsUsedRatio)),
        seconds(find(Measure::PostgresLongestQuerySeconds)),
    )
}

impl Probe for PostgresProbe {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        async move {
            let started = Instant::now();
            let outcome = self.execute(ctx).await;
            tracing::debug!(elapsed = ?started.elapsed(), verdict = %outcome.verdict, "postgres check ran");
            outcome
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_parse_and_hold() {
        let c = Comparison::parse("> 0").unwrap();
        assert!(c.holds(1.0) && !c.holds(0.0));
        let c = Comparison::parse(">=1").unwrap();
        assert!(c.holds(1.0) && !c.holds(0.5));
        let c = Comparison::parse("== 5").unwrap();
        assert!(c.holds(5.0) && !c.holds(4.0));
        assert_eq!(c.to_string(), "== 5");
        let c = Comparison::parse("< 1000").unwrap();
        assert!(c.holds(999.0) && !c.holds(1000.0));
        for bad in ["", "5", "=> 1", "> x", "~ 3"] {
            assert!(Comparison::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sslmode_is_taken_out_of_the_url() {
        let (url, mode) = take_sslmode("postgres://u:p@h/db?sslmode=verify-full&connect_timeout=3");
        assert_eq!(url, "postgres://u:p@h/db?connect_timeout=3");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        let (url, mode) = take_sslmode("postgres://h/db");
        assert_eq!((url.as_str(), mode), ("postgres://h/db", None));
    }

    #[test]
    fn versions_compare_as_numbers_or_text() {
        assert_eq!(
            version_cmp("20240102", "20240101"),
            std::cmp::Ordering::Greater
        );
        assert_eq!(version_cmp("9", "10"), std::cmp::Ordering::Less);
        assert_eq!(version_cmp("0002_b", "0001_a"), std::cmp::Ordering::Greater);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(
            quote_identifier("public.schema_migrations"),
            "\"public\".\"schema_migrations\""
        );
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
