//! The `postgres` block as written, and its compilation into a probe.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use serde::{Deserialize, Deserializer};

use super::connect::without_alpn;
use super::{Assertion, Migration, MigrationExpect, PostgresProbe};
use crate::config::{format_duration, ByteSize, HumanDuration, Problem, Ratio};
use crate::probe::BuildContext;

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
pub(super) fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

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
        let verified = verified_tls(config, ctx, &mut problems);
        let check_timeout = ctx.timeout;
        let half = check_timeout / 2;
        check_timeouts(config, check_timeout, &mut problems);
        let migration = config
            .migration
            .as_ref()
            .and_then(|m| build_migration(m, &mut problems));
        let assertions = build_assertions(&config.assertions, &mut problems);
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

/// The verifying TLS config, with the block's `ca_file` trusted too.
fn verified_tls(
    config: &PostgresConfig,
    ctx: &BuildContext,
    problems: &mut Vec<Problem>,
) -> Arc<ClientConfig> {
    let Some(ca_file) = &config.ca_file else {
        return ctx.clients.tls.verified();
    };
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

/// Both timeouts must fit inside the check's, or the run's own timeout
/// would cut them off before they could name the stage.
fn check_timeouts(config: &PostgresConfig, check_timeout: Duration, problems: &mut Vec<Problem>) {
    for (key, value) in [
        ("connect_timeout", config.connect_timeout),
        ("statement_timeout", config.statement_timeout),
    ] {
        match value {
            Some(d) if d.0.is_zero() => problems.push(Problem::new(key, "must be longer than 0s")),
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
}

fn build_migration(m: &MigrationConfig, problems: &mut Vec<Problem>) -> Option<Migration> {
    let before = problems.len();
    let sql = migration_sql(m, problems);
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
        (Some(sql), Some(expect)) if problems.len() == before => Some(Migration { sql, expect }),
        _ => None,
    }
}

/// The query returning the latest migration as text.
fn migration_sql(m: &MigrationConfig, problems: &mut Vec<Problem>) -> Option<String> {
    let problem = match (&m.query, &m.table, &m.column) {
        (Some(query), None, None) => match wrap_query(query) {
            Ok(sql) => return Some(sql),
            Err(message) => Problem::new("migration.query", message),
        },
        (None, Some(table), Some(column))
            if !table.trim().is_empty() && !column.trim().is_empty() =>
        {
            return Some(format!(
                "SELECT max({})::text FROM {}",
                quote_identifier(column.trim()),
                quote_identifier(table.trim())
            ))
        }
        (None, Some(_), Some(_)) => {
            Problem::new("migration.table", "table and column must not be empty")
        }
        (None, Some(_), None) => Problem::new(
            "migration.table",
            "needs column (the column of applied migration versions)",
        ),
        (None, None, Some(_)) => Problem::new("migration.column", "needs table"),
        (None, None, None) => Problem::new("migration", "needs query, or table and column"),
        (Some(_), _, _) => Problem::new(
            "migration.query",
            "give query, or table and column, not both",
        ),
    };
    problems.push(problem);
    None
}

fn build_assertions(configs: &[AssertionConfig], problems: &mut Vec<Problem>) -> Vec<Assertion> {
    let mut names = std::collections::HashSet::new();
    let mut assertions = Vec::new();
    for (i, assertion) in configs.iter().enumerate() {
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
    assertions
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
    fn identifiers_are_quoted() {
        assert_eq!(
            quote_identifier("public.schema_migrations"),
            "\"public\".\"schema_migrations\""
        );
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
