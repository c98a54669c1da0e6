//! The config file: YAML decoded strictly into typed structs, then checked
//! for rules that span fields. Every problem names the file, the line and
//! the key path.

mod hints;
mod pieces;
mod problem;
mod rules;
mod settings;
mod severity;
mod source;
pub mod spans;
mod syntax;
mod units;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use problem::{ConfigError, LocatedProblem, Problem};
pub use rules::common_problems;
pub use settings::{settings, Settings};
pub use severity::Severity;
pub(crate) use source::decode_error;
pub use source::{SourcedConfig, ENVIRONMENT_ORIGIN, MAX_CONFIG_BYTES};

// Secrets have their own module; these names stay here for code that
// imports them from the config.
pub use crate::secret::{Secret, SecretError, SecretSource};
pub use spans::LineIndex;
pub use units::{format_duration, ByteSize, HumanDuration, Ratio};

use crate::kube::KubeConnectionConfig;
use crate::probe::backup::BackupConfig;
use crate::probe::dns::DnsConfig;
use crate::probe::http::HttpConfig;
use crate::probe::kubernetes::KubernetesConfig;
use crate::probe::postgres::PostgresConfig;
use crate::probe::redis::RedisConfig;
use crate::probe::registry::RegistryConfig;
use crate::probe::secret_age::SecretAgeConfig;
use crate::probe::tls::TlsConfig;

/// The port vouch listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9847;
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:9847";

/// The whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address `vouch serve` listens on. Env: `VOUCH_LISTEN_ADDRESS`;
    /// the `--web.listen-address` flag wins over both.
    #[serde(default)]
    pub listen_address: Option<String>,
    /// Most check runs in flight at once, across all checks (default 32).
    /// Env: `VOUCH_MAX_CONCURRENT_RUNS`.
    #[serde(default)]
    pub max_concurrent_runs: Option<usize>,
    /// How long runs in flight may finish after SIGTERM (default 5s).
    /// Env: `VOUCH_SHUTDOWN_GRACE`.
    #[serde(default)]
    pub shutdown_grace: Option<HumanDuration>,
    /// Values every check takes unless it sets its own.
    #[serde(default)]
    pub defaults: Defaults,
    /// The checks.
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
    /// How to reach the Kubernetes API (used only if a check needs it).
    #[serde(default)]
    pub kubernetes: Option<KubeConnectionConfig>,
    /// Paths of values that were given but did not decode and were left
    /// out so the rest could be checked (`defaults.interval`,
    /// `checks[2].severity`, `checks[2].http` for a kind block): their
    /// problems are reported already, and rules that read them would judge
    /// a built-in value instead. Empty for a file that decodes.
    #[serde(skip)]
    pub undecoded: Vec<String>,
}

/// The keys the rules compare with each other (interval against timeout,
/// rollout settings against both) and the kinds compare with the timeout.
const TIMINGS: [&str; 6] = [
    "interval",
    "timeout",
    "interval_when_failing",
    "after_rollout_of",
    "rollout_window",
    "rollout_interval",
];

impl ConfigFile {
    /// Whether the timings of check `index` are those the file asks for:
    /// false when one of its own or of `defaults:` did not decode, so a
    /// built-in value stands in for it (see [`ConfigFile::undecoded`]).
    pub fn timings_known(&self, index: usize) -> bool {
        !TIMINGS.iter().any(|key| {
            self.is_undecoded(&format!("checks[{index}].{key}"))
                || self.is_undecoded(&format!("defaults.{key}"))
        })
    }

    /// Whether the value at `path` (or a value inside it, or the block it
    /// is in) did not decode: see [`ConfigFile::undecoded`].
    pub fn is_undecoded(&self, path: &str) -> bool {
        self.undecoded.iter().any(|bad| {
            let within = |outer: &str, inner: &str| {
                inner
                    .strip_prefix(outer)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            };
            within(bad, path) || within(path, bad)
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Time between two runs of a check (default 30s).
    pub interval: Option<HumanDuration>,
    /// Longest a run may take before it is an `error`/`timeout` (default 10s).
    pub timeout: Option<HumanDuration>,
    /// Severity of checks that give none (default warning).
    pub severity: Option<Severity>,
    /// Consecutive failed runs before the reported verdict turns to
    /// failing (default 1).
    pub failures_before_fail: Option<u32>,
    /// Consecutive passing runs before the reported verdict turns back to
    /// passing (default 1).
    pub successes_before_pass: Option<u32>,
    /// Interval used while the last run did not pass, to notice recovery
    /// sooner (default: the normal interval).
    pub interval_when_failing: Option<HumanDuration>,
    /// How long after a rollout of a workload named in `after_rollout_of`
    /// its checks run on `rollout_interval` (default 10m).
    pub rollout_window: Option<HumanDuration>,
    /// Interval inside a rollout window (default 10s, never longer than the
    /// check's interval nor shorter than its timeout).
    pub rollout_interval: Option<HumanDuration>,
}

/// One check: common fields plus exactly one kind block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Unique name; the `check` label of every metric of this check.
    pub name: String,
    /// Checklist grouping, e.g. `post-deploy/api` (default `default`).
    #[serde(default)]
    pub section: Option<String>,
    pub severity: Option<Severity>,
    pub interval: Option<HumanDuration>,
    pub timeout: Option<HumanDuration>,
    /// Overrides `defaults.failures_before_fail`.
    pub failures_before_fail: Option<u32>,
    /// Overrides `defaults.successes_before_pass`.
    pub successes_before_pass: Option<u32>,
    /// Overrides `defaults.interval_when_failing`.
    pub interval_when_failing: Option<HumanDuration>,
    /// Workloads (`namespace/name` of a Deployment or StatefulSet) whose
    /// rollout makes this check run at once and then on `rollout_interval`
    /// for `rollout_window`: post-deploy verification without waiting for
    /// the next round.
    #[serde(default)]
    pub after_rollout_of: Vec<String>,
    /// Overrides `defaults.rollout_window`.
    pub rollout_window: Option<HumanDuration>,
    /// Overrides `defaults.rollout_interval`.
    pub rollout_interval: Option<HumanDuration>,
    /// Extra facts about the check (team, service); exported on
    /// `vouch_check_info` as `label_<key>`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// An HTTP(S) request and what its answer must look like.
    pub http: Option<HttpConfig>,
    /// A TLS handshake (or a PEM file) and what its certificates must be.
    pub tls: Option<TlsConfig>,
    /// A DNS lookup and what its answers must be.
    pub dns: Option<DnsConfig>,
    /// A PostgreSQL server: connections, long queries, size, migrations,
    /// custom SQL assertions.
    pub postgres: Option<PostgresConfig>,
    /// A Redis server: PING, memory, clients, hit ratio, evictions,
    /// persistence, replication.
    pub redis: Option<RedisConfig>,
    /// The newest backup in object storage (Azure Blob, S3, GCS, a local
    /// path): age, size, count, shrink against the one before.
    pub backup: Option<BackupConfig>,
    /// An image repository in an OCI registry: the expected tag exists,
    /// enough tags are kept for a rollback.
    pub registry: Option<RegistryConfig>,
    /// Required secrets in a vault: present, enabled, rotated within
    /// `max_age`, not expiring soon (metadata only, never values).
    pub secret_age: Option<SecretAgeConfig>,
    /// Kubernetes objects read from the shared watch cache: workload
    /// rollouts, pods, endpoints, ingresses, config, secrets (metadata),
    /// events, rollback history, cert-manager, External Secrets,
    /// snapshots, monitoring objects.
    pub kubernetes: Option<KubernetesConfig>,
}

/// The kinds of check vouch knows. Adding a kind adds a variant here (and
/// in [`Kind::ALL`]), a field on [`CheckConfig`], a [`KindConfig`] arm and
/// a module under `probe`; the compiler asks for each but `Kind::ALL`,
/// which a test checks. ARCHITECTURE.md has the whole recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Http,
    Tls,
    Dns,
    Postgres,
    Redis,
    Backup,
    Registry,
    #[serde(rename = "secret_age")]
    SecretAge,
    Kubernetes,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Http,
        Kind::Tls,
        Kind::Dns,
        Kind::Postgres,
        Kind::Redis,
        Kind::Backup,
        Kind::Registry,
        Kind::SecretAge,
        Kind::Kubernetes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tls => "tls",
            Kind::Dns => "dns",
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Backup => "backup",
            Kind::Registry => "registry",
            Kind::SecretAge => "secret_age",
            Kind::Kubernetes => "kubernetes",
        }
    }
}

impl CheckConfig {
    pub fn effective_failures_before_fail(&self, defaults: &Defaults) -> u32 {
        self.failures_before_fail
            .or(defaults.failures_before_fail)
            .unwrap_or(1)
    }

    pub fn effective_successes_before_pass(&self, defaults: &Defaults) -> u32 {
        self.successes_before_pass
            .or(defaults.successes_before_pass)
            .unwrap_or(1)
    }

    /// The window and interval of re-verification after a rollout, when
    /// the check names workloads in `after_rollout_of`.
    pub fn effective_rollout(&self, defaults: &Defaults) -> Option<(HumanDuration, HumanDuration)> {
        if self.after_rollout_of.is_empty() {
            return None;
        }
        let window = self
            .rollout_window
            .or(defaults.rollout_window)
            .unwrap_or(DEFAULT_ROLLOUT_WINDOW);
        let interval = self
            .rollout_interval
            .or(defaults.rollout_interval)
            .unwrap_or_else(|| {
                let timeout = self.effective_timeout(defaults);
                let normal = self.effective_interval(defaults);
                HumanDuration(DEFAULT_ROLLOUT_INTERVAL.0.max(timeout.0).min(normal.0))
            });
        Some((window, interval))
    }

    pub fn effective_interval_when_failing(&self, defaults: &Defaults) -> Option<HumanDuration> {
        self.interval_when_failing
            .or(defaults.interval_when_failing)
    }

    pub fn effective_interval(&self, defaults: &Defaults) -> HumanDuration {
        self.interval
            .or(defaults.interval)
            .unwrap_or(DEFAULT_INTERVAL)
    }

    /// The timeout: own, else the default, else 10s capped at the interval
    /// (a short interval alone must not make the built-in timeout invalid).
    pub fn effective_timeout(&self, defaults: &Defaults) -> HumanDuration {
        self.timeout
            .or(defaults.timeout)
            .unwrap_or_else(|| DEFAULT_TIMEOUT.min(self.effective_interval(defaults)))
    }

    /// The kind blocks present in this check, in declaration order.
    pub fn kind_blocks(&self) -> Vec<KindConfig<'_>> {
        // Taken apart without `..`: a field added to `CheckConfig` does not
        // compile until it is placed here, as a kind or as a common field.
        let CheckConfig {
            name: _,
            section: _,
            severity: _,
            interval: _,
            timeout: _,
            failures_before_fail: _,
            successes_before_pass: _,
            interval_when_failing: _,
            after_rollout_of: _,
            rollout_window: _,
            rollout_interval: _,
            labels: _,
            http,
            tls,
            dns,
            postgres,
            redis,
            backup,
            registry,
            secret_age,
            kubernetes,
        } = self;
        [
            http.as_ref().map(KindConfig::Http),
            tls.as_ref().map(KindConfig::Tls),
            dns.as_ref().map(KindConfig::Dns),
            postgres.as_ref().map(KindConfig::Postgres),
            redis.as_ref().map(KindConfig::Redis),
            backup.as_ref().map(KindConfig::Backup),
            registry.as_ref().map(KindConfig::Registry),
            secret_age.as_ref().map(KindConfig::SecretAge),
            kubernetes.as_ref().map(KindConfig::Kubernetes),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The kinds of the blocks present in this check, in declaration order.
    pub fn kinds_present(&self) -> Vec<Kind> {
        self.kind_blocks().iter().map(KindConfig::kind).collect()
    }
}

/// A check's kind block, borrowed: what `probe::build` matches on, so a
/// kind without a build arm does not compile.
#[derive(Clone, Copy, Debug)]
pub enum KindConfig<'a> {
    Http(&'a HttpConfig),
    Tls(&'a TlsConfig),
    Dns(&'a DnsConfig),
    Postgres(&'a PostgresConfig),
    Redis(&'a RedisConfig),
    Backup(&'a BackupConfig),
    Registry(&'a RegistryConfig),
    SecretAge(&'a SecretAgeConfig),
    Kubernetes(&'a KubernetesConfig),
}

impl KindConfig<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            KindConfig::Http(_) => Kind::Http,
            KindConfig::Tls(_) => Kind::Tls,
            KindConfig::Dns(_) => Kind::Dns,
            KindConfig::Postgres(_) => Kind::Postgres,
            KindConfig::Redis(_) => Kind::Redis,
            KindConfig::Backup(_) => Kind::Backup,
            KindConfig::Registry(_) => Kind::Registry,
            KindConfig::SecretAge(_) => Kind::SecretAge,
            KindConfig::Kubernetes(_) => Kind::Kubernetes,
        }
    }
}

pub const DEFAULT_ROLLOUT_WINDOW: HumanDuration =
    HumanDuration(std::time::Duration::from_secs(600));
pub const DEFAULT_ROLLOUT_INTERVAL: HumanDuration =
    HumanDuration(std::time::Duration::from_secs(10));
pub const DEFAULT_INTERVAL: HumanDuration = HumanDuration(std::time::Duration::from_secs(30));
pub const DEFAULT_TIMEOUT: HumanDuration = HumanDuration(std::time::Duration::from_secs(10));

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(text: &str) -> Result<SourcedConfig, ConfigError> {
        SourcedConfig::parse(text, "t.yaml", PathBuf::from("."))
    }

    #[test]
    fn kind_all_lists_every_kind_once_in_order() {
        // A new variant breaks this match; giving it the next position
        // fails the assertion until it is in `Kind::ALL` too.
        fn position(kind: Kind) -> usize {
            match kind {
                Kind::Http => 0,
                Kind::Tls => 1,
                Kind::Dns => 2,
                Kind::Postgres => 3,
                Kind::Redis => 4,
                Kind::Backup => 5,
                Kind::Registry => 6,
                Kind::SecretAge => 7,
                Kind::Kubernetes => 8,
            }
        }
        let positions: Vec<usize> = Kind::ALL.iter().map(|k| position(*k)).collect();
        assert_eq!(positions, (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn every_kind_is_a_key_of_a_check_and_every_other_key_is_common() {
        // The decoder lists every field of a check when it meets an unknown
        // one: the kinds are those fields less the common ones.
        let err = parse("checks:\n  - name: a\n    bogus: 1\n").err().unwrap();
        let text = err.to_string();
        let listed = text.split("expected one of").nth(1).expect("fields listed");
        let fields: Vec<&str> = listed
            .split(',')
            .map(|f| f.trim().trim_matches('`'))
            .collect();
        const COMMON: [&str; 12] = [
            "name",
            "section",
            "severity",
            "interval",
            "timeout",
            "failures_before_fail",
            "successes_before_pass",
            "interval_when_failing",
            "after_rollout_of",
            "rollout_window",
            "rollout_interval",
            "labels",
        ];
        let kinds: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|f| !COMMON.contains(f))
            .collect();
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, all, "{text}");
    }
}
