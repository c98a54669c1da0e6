//! The queries of a run and the verdicts on what they return.

use std::time::Duration;

use tokio_postgres::Client;

use super::config::number;
use super::connect::classify;
use super::{Assertion, Migration, MigrationExpect, PostgresProbe};
use crate::config::{format_duration, ByteSize, Ratio};
use crate::probe::ProbeContext;
use crate::result::{Failure, Measure, Measurement, Reason};

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

/// What the activity query found.
struct Activity {
    by_state: Vec<(String, i64)>,
    longest_query: f64,
    longest_transaction: f64,
    slow_queries: i64,
}

/// What the settings query found.
struct Settings {
    max_connections: i64,
    database_size: i64,
}

impl PostgresProbe {
    /// Runs every query; Ok holds the broken expectations.
    pub(super) async fn evaluate(
        &self,
        ctx: &ProbeContext,
        client: &Client,
        measurements: &mut Vec<Measurement>,
    ) -> Result<Vec<Failure>, Failure> {
        ctx.progress.set("reading server settings");
        let settings = self.settings(client, measurements).await?;
        ctx.progress.set("reading pg_stat_activity");
        let activity = self.activity(client).await?;
        let mut failures = self.judge_activity(&settings, &activity, measurements);
        if let Some(migration) = &self.migration {
            ctx.progress.set("reading the migration state");
            failures.extend(self.judge_migration(client, migration).await?);
        }
        for assertion in &self.assertions {
            ctx.progress.set("running an assertion");
            failures.extend(
                self.judge_assertion(client, assertion, measurements)
                    .await?,
            );
        }
        Ok(failures)
    }

    async fn settings(
        &self,
        client: &Client,
        measurements: &mut Vec<Measurement>,
    ) -> Result<Settings, Failure> {
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), \
                        current_setting('max_connections')::int8, \
                        pg_database_size(current_database())",
                &[],
            )
            .await
            .map_err(|err| classify(&err, self.statement_timeout))?;
        let version: String = row.get(0);
        let settings = Settings {
            max_connections: row.get(1),
            database_size: row.get(2),
        };
        let short_version = version.split_whitespace().next().unwrap_or("").to_string();
        measurements.push(Measurement::labelled(
            Measure::PostgresVersionInfo,
            &[&short_version],
            1.0,
        ));
        measurements.push(Measurement::new(
            Measure::PostgresMaxConnections,
            settings.max_connections as f64,
        ));
        measurements.push(Measurement::new(
            Measure::PostgresDatabaseSizeBytes,
            settings.database_size as f64,
        ));
        Ok(settings)
    }

    /// Records the activity and compares it (and the size) with the limits.
    fn judge_activity(
        &self,
        settings: &Settings,
        activity: &Activity,
        measurements: &mut Vec<Measurement>,
    ) -> Vec<Failure> {
        let max_connections = settings.max_connections;
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
        for (measure, value) in [
            (Measure::PostgresConnectionsUsedRatio, used),
            (Measure::PostgresLongestQuerySeconds, activity.longest_query),
            (
                Measure::PostgresLongestTransactionSeconds,
                activity.longest_transaction,
            ),
            (Measure::PostgresSlowQueries, activity.slow_queries as f64),
        ] {
            measurements.push(Measurement::new(measure, value));
        }
        let mut failures = Vec::new();
        if let Some(limit) = self.max_connections_used.filter(|limit| used > limit.0) {
            failures.push(Failure::new(
                Reason::Connections,
                format!(
                    "connections {total} of max_connections {max_connections} ({}), limit {limit}",
                    Ratio(used)
                ),
            ));
        }
        if let Some(limit) = self
            .max_query_age
            .filter(|limit| activity.longest_query > limit.as_secs_f64())
        {
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
        if let Some(limit) = self
            .max_transaction_age
            .filter(|limit| activity.longest_transaction > limit.as_secs_f64())
        {
            failures.push(Failure::new(
                Reason::TransactionAge,
                format!(
                    "longest open transaction {}, limit {}",
                    seconds(activity.longest_transaction),
                    format_duration(limit)
                ),
            ));
        }
        if let Some(limit) = self
            .max_database_size
            .filter(|limit| settings.database_size as u64 > limit.0)
        {
            failures.push(Failure::new(
                Reason::DatabaseSize,
                format!(
                    "database size {}, limit {limit}",
                    ByteSize(settings.database_size as u64).approx()
                ),
            ));
        }
        failures
    }

    async fn judge_migration(
        &self,
        client: &Client,
        migration: &Migration,
    ) -> Result<Option<Failure>, Failure> {
        let latest = single_text(client, &migration.sql, self.statement_timeout).await?;
        let broken = match (&migration.expect, &latest) {
            (_, None) => Some("no migration applied".to_string()),
            (MigrationExpect::Equals(want), Some(have)) => (!versions_equal(have, want))
                .then(|| format!("latest migration {have:?}, expected {want:?}")),
            (MigrationExpect::AtLeast(want), Some(have)) => (version_cmp(have, want)
                == std::cmp::Ordering::Less)
                .then(|| format!("latest migration {have:?}, expected at least {want:?}")),
        };
        Ok(broken.map(|message| Failure::new(Reason::Migration, message)))
    }

    async fn judge_assertion(
        &self,
        client: &Client,
        assertion: &Assertion,
        measurements: &mut Vec<Measurement>,
    ) -> Result<Option<Failure>, Failure> {
        let text = single_text(client, &assertion.sql, self.statement_timeout)
            .await
            .map_err(|f| {
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
        Ok((!assertion.comparison.holds(value)).then(|| {
            Failure::new(
                Reason::Assertion,
                format!(
                    "assertion {}: value {}, expected {}",
                    assertion.name,
                    number(value),
                    assertion.comparison
                ),
            )
        }))
    }

    /// The sessions max_connections counts, by state, and the ages of
    /// queries and transactions. A role without pg_read_all_stats sees
    /// other roles' sessions with a NULL type and state: those connected
    /// to a database are counted (as `unknown`), which may take in an
    /// autovacuum worker, rather than leaving every other role's session
    /// out.
    async fn activity(&self, client: &Client) -> Result<Activity, Failure> {
        let st = self.statement_timeout;
        let rows = client
            .query(
                "SELECT coalesce(state, ''), count(*) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' \
                    OR (backend_type IS NULL AND datid IS NOT NULL) \
                 GROUP BY 1",
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

pub(super) fn pass_message(measurements: &[Measurement]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers_or_text() {
        assert_eq!(
            version_cmp("20240102", "20240101"),
            std::cmp::Ordering::Greater
        );
        assert_eq!(version_cmp("9", "10"), std::cmp::Ordering::Less);
        assert_eq!(version_cmp("0002_b", "0001_a"), std::cmp::Ordering::Greater);
    }
}
