//! The `postgres` check kind: connects with a URL given only by reference,
//! measures connections, long-running queries and transactions, database
//! size, reads the migration state and runs custom SQL assertions, every
//! query read-only and under a `statement_timeout`.
//!
//! `config` reads and compiles the block, `connect` opens the session and
//! names the reason of every error, `measure` runs the queries and judges
//! them.

mod config;
mod connect;
mod measure;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use rustls::ClientConfig;

use super::{Probe, ProbeContext};
use crate::config::{ByteSize, Ratio};
use crate::result::{Measure, Measurement, Outcome, Reason};
use crate::secret::{scrub, Secret, SecretSource};
use connect::take_sslmode;
use measure::pass_message;

pub use config::{AssertionConfig, Comparison, MigrationConfig, PostgresConfig, TlsMode};

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

impl PostgresProbe {
    async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        ctx.progress.set("reading the connection URL");
        let url = match self.url.read_async().await {
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
