//! The config file: YAML decoded strictly into typed structs, then checked
//! for rules that span fields. Every problem names the file, the line and
//! the key path.

pub mod spans;
mod units;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

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
use crate::secret::SecretResolver;

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

/// How much a failing check matters. Ordered: info < warning < critical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// `--fail-on`'s values, the most severe first.
impl clap::ValueEnum for Severity {
    fn value_variants<'a>() -> &'a [Self] {
        &[Severity::Critical, Severity::Warning, Severity::Info]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Decoded by hand so a mistake reads "invalid severity" rather than the
/// decoder's "unknown variant".
impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeverityVisitor;
        impl serde::de::Visitor<'_> for SeverityVisitor {
            type Value = Severity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a severity: critical, warning or info")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Severity, E> {
                match v {
                    "critical" => Ok(Severity::Critical),
                    "warning" => Ok(Severity::Warning),
                    "info" => Ok(Severity::Info),
                    _ => Err(E::custom(format!(
                        "invalid severity {v:?}: expected critical, warning or info"
                    ))),
                }
            }
        }
        deserializer.deserialize_str(SeverityVisitor)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

/// A problem found in a config, before the file and line are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Key path in decoding-error notation, e.g. `checks[2].http.url`.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same problem below `prefix` (a kind module reports paths
    /// relative to its own block).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }
}

/// A problem with its place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedProblem {
    pub origin: String,
    pub line: Option<usize>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for LocatedProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one config; displays one per line.
#[derive(Debug, Error)]
pub struct ConfigError {
    pub problems: Vec<LocatedProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            problem.fmt(f)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// A problem with the file as a whole (it could not be read in time).
    pub fn whole_file(origin: &str, message: String) -> Self {
        Self::single(origin, None, "", message)
    }

    fn single(origin: &str, line: Option<usize>, path: &str, message: String) -> Self {
        ConfigError {
            problems: vec![LocatedProblem {
                origin: origin.to_string(),
                line,
                path: path.to_string(),
                message,
            }],
        }
    }
}

/// The largest config file read: ten thousand checks fit in a few MiB.
pub const MAX_CONFIG_BYTES: u64 = 32 << 20;

/// A decoded config file with the means to locate its keys.
pub struct SourcedConfig {
    pub file: ConfigFile,
    pub origin: String,
    /// Directory relative paths in the config (CA files, secret files) are
    /// resolved against.
    pub base_dir: PathBuf,
    lines: LineIndex,
    /// The file as a YAML tree, for showing a check's own config.
    tree: serde_yaml_ng::Value,
}

impl SourcedConfig {
    /// Reads and decodes `path`. The origin in messages is the path as given.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = spans::read_yaml(path, MAX_CONFIG_BYTES).map_err(|err| {
            ConfigError::single(
                &origin,
                err.line,
                "",
                format!("cannot read config: {}", err.message),
            )
        })?;
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &origin, base_dir)
    }

    pub fn parse(text: &str, origin: &str, base_dir: PathBuf) -> Result<Self, ConfigError> {
        let lines = LineIndex::build(text)
            .map_err(|err| ConfigError::single(origin, err.line, "", err.message))?;
        // Repeated keys first: the decoder either rejects them without
        // naming the repeat's line (struct fields) or keeps only the last
        // one (maps such as `labels`), and the index knows every one.
        let repeated: Vec<LocatedProblem> = lines
            .duplicate_keys()
            .iter()
            .map(|(path, line)| LocatedProblem {
                origin: origin.to_string(),
                line: Some(*line),
                path: path.clone(),
                message: match lines.exact_line_of(path) {
                    Some(first) => format!("duplicate key (first given on line {first})"),
                    None => "duplicate key".to_string(),
                },
            })
            .collect();
        if !repeated.is_empty() {
            return Err(ConfigError { problems: repeated });
        }
        let file: ConfigFile = match serde_yaml_ng::from_str(text) {
            Ok(file) => file,
            Err(err) => return Err(decode_error(origin, &err, &lines)),
        };
        Ok(SourcedConfig {
            file,
            origin: origin.to_string(),
            base_dir,
            lines,
            tree: serde_yaml_ng::from_str(text).unwrap_or_default(),
        })
    }

    /// Attaches file and line to problems found after decoding, in the
    /// order of the file (problems with environment variables, which have
    /// no line, first).
    pub fn locate(&self, problems: Vec<Problem>) -> ConfigError {
        let mut problems: Vec<LocatedProblem> = problems
            .into_iter()
            .map(|p| {
                let from_env = p.path.starts_with('$');
                LocatedProblem {
                    origin: if from_env {
                        ENVIRONMENT_ORIGIN.to_string()
                    } else {
                        self.origin.clone()
                    },
                    line: if from_env {
                        None
                    } else {
                        self.lines.line_of(&p.path)
                    },
                    path: p.path,
                    message: p.message,
                }
            })
            .collect();
        problems.sort_by_key(|p| p.line);
        ConfigError { problems }
    }

    /// The `checks[index]` block as YAML, with values of secret-looking keys
    /// replaced by `[redacted]` (references such as `*_file` and `*_env`
    /// are kept: they name where a secret is, not what it is).
    pub fn check_yaml(&self, index: usize) -> String {
        let mut block = self.tree["checks"][index].clone();
        redact(&mut block, false);
        serde_yaml_ng::to_string(&block).unwrap_or_default()
    }

    /// The `checks[index]` block as written, secrets included: only for
    /// comparing configs, never for showing.
    pub fn check_yaml_unredacted(&self, index: usize) -> String {
        serde_yaml_ng::to_string(&self.tree["checks"][index]).unwrap_or_default()
    }

    /// The resolver of this config's secret references (files relative
    /// to the config's directory).
    pub fn secrets(&self) -> SecretResolver {
        SecretResolver::new(self.base_dir.clone())
    }
}

/// Replaces values that may be secrets: under keys naming a password,
/// token, secret, key or credential (unless the key is a `_file`/`_env`
/// reference), and header values of credential-looking headers.
fn redact(value: &mut serde_yaml_ng::Value, in_headers: bool) {
    const SENSITIVE: [&str; 7] = [
        "password",
        "token",
        "secret",
        "key",
        "credential",
        "auth",
        "cookie",
    ];
    match value {
        serde_yaml_ng::Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let name = key.as_str().unwrap_or_default().to_ascii_lowercase();
                let reference = name.ends_with("_file") || name.ends_with("_env");
                let sensitive = SENSITIVE.iter().any(|word| name.contains(word));
                if sensitive && !reference && !in_headers && child.is_sequence() {
                    // A list under such a key (`secret_age.secrets`): its
                    // mappings are judged key by key, its bare values hidden.
                    if let serde_yaml_ng::Value::Sequence(items) = child {
                        for item in items.iter_mut() {
                            if item.is_mapping() {
                                redact(item, false);
                            } else {
                                *item = serde_yaml_ng::Value::String("[redacted]".into());
                            }
                        }
                    }
                } else if sensitive && !reference && (in_headers || !child.is_mapping()) {
                    *child = serde_yaml_ng::Value::String("[redacted]".into());
                } else {
                    redact(child, name == "headers");
                }
            }
        }
        serde_yaml_ng::Value::Sequence(items) => items.iter_mut().for_each(|v| redact(v, false)),
        _ => {}
    }
}

/// The origin of problems with environment overrides (`$VOUCH_...`), which
/// are not in the file.
pub const ENVIRONMENT_ORIGIN: &str = "environment";

/// Turns a decoder error into `file:line: path: message`. The decoder puts
/// the path in front of its message and the position inside it; the line
/// is moved to the front to match every other problem.
///
/// The decoder's position is where it noticed the problem: for an unknown
/// field that is the key itself, but for a missing field or a mapping of
/// the wrong type it is the first line *inside* the block. The line of the
/// key named by the path is used instead whenever the index has it.
pub(crate) fn decode_error(
    origin: &str,
    err: &serde_yaml_ng::Error,
    lines: &LineIndex,
) -> ConfigError {
    let mut full = err.to_string();
    let location = err.location();
    if let Some(location) = &location {
        // Remove only the position the line number stands for; a syntax
        // error's second position ("while parsing a flow mapping at line 3
        // column 11") is where the construct began and stays useful.
        let position = format!(" at line {} column {}", location.line(), location.column());
        if let Some(at) = full.find(&position) {
            full.replace_range(at..at + position.len(), "");
        }
    }
    let (path, message) = split_decoder_path(&full);
    // An unknown field is reported at its parent's path, with the key in
    // the message; the decoder's position is the key's own line already.
    if message.starts_with("unknown field") {
        return ConfigError::single(
            origin,
            location.map(|l| l.line()),
            path,
            humanize_decoder_message(message),
        );
    }
    let line = if path.is_empty() {
        None
    } else {
        lines.exact_line_of(path)
    }
    .or(location.map(|l| l.line()))
    .or_else(|| lines.line_for_unlocated(message));
    ConfigError::single(origin, line, path, humanize_decoder_message(message))
}

/// Replaces the decoder's Rust vocabulary (`expected struct HttpConfig`,
/// `expected usize`) with the words of the config reference.
fn humanize_decoder_message(message: &str) -> String {
    static RUST_TYPES: std::sync::LazyLock<[(regex::Regex, &'static str); 2]> =
        std::sync::LazyLock::new(|| {
            [
                (
                    regex::Regex::new(r"expected struct [A-Za-z0-9_]+").expect("valid regex"),
                    "expected a mapping",
                ),
                (
                    regex::Regex::new(r"expected (?:u8|u16|u32|u64|usize)\b").expect("valid regex"),
                    "expected a whole number of at least 0",
                ),
            ]
        });
    let mut text = message.to_string();
    for (pattern, replacement) in RUST_TYPES.iter() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    text
}

/// Splits `checks[0].http: unknown field ...` into path and message when
/// the text before the first `: ` looks like a key path.
fn split_decoder_path(message: &str) -> (&str, &str) {
    if let Some((head, tail)) = message.split_once(": ") {
        let looks_like_path = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_alphanumeric() || "_-.[]?".contains(c));
        if looks_like_path {
            return (head, tail);
        }
    }
    ("", message)
}

/// Settings after defaults and environment overrides.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen_address: String,
    pub max_concurrent_runs: usize,
    pub shutdown_grace: std::time::Duration,
}

/// Applies environment overrides (`VOUCH_LISTEN_ADDRESS`,
/// `VOUCH_MAX_CONCURRENT_RUNS`, `VOUCH_SHUTDOWN_GRACE`) to the top-level
/// settings. `env` is a lookup so tests need not touch the process. A bad
/// value is reported under the name it was given by: the variable
/// (`$VOUCH_MAX_CONCURRENT_RUNS`) or the key.
pub fn settings(
    file: &ConfigFile,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, Vec<Problem>> {
    let mut problems = Vec::new();
    let (listen_address, listen_key) = match env("VOUCH_LISTEN_ADDRESS") {
        Some(text) => (text, "$VOUCH_LISTEN_ADDRESS"),
        None => (
            file.listen_address
                .clone()
                .unwrap_or_else(|| DEFAULT_LISTEN_ADDRESS.to_string()),
            "listen_address",
        ),
    };
    if let Err(message) = check_listen_address(&listen_address) {
        problems.push(Problem::new(listen_key, message));
    }
    let max_concurrent_runs = match env("VOUCH_MAX_CONCURRENT_RUNS") {
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                problems.push(Problem::new(
                    "$VOUCH_MAX_CONCURRENT_RUNS",
                    format!("expected a whole number of at least 1, got {text:?}"),
                ));
                1
            }
        },
        None => match file.max_concurrent_runs.unwrap_or(32) {
            0 => {
                problems.push(Problem::new("max_concurrent_runs", "must be at least 1"));
                1
            }
            n => n,
        },
    };
    let shutdown_grace = match env("VOUCH_SHUTDOWN_GRACE") {
        Some(text) => HumanDuration::parse(&text)
            .map(|d| d.0)
            .unwrap_or_else(|err| {
                problems.push(Problem::new("$VOUCH_SHUTDOWN_GRACE", err));
                std::time::Duration::from_secs(5)
            }),
        None => file
            .shutdown_grace
            .map(|d| d.0)
            .unwrap_or(std::time::Duration::from_secs(5)),
    };
    if problems.is_empty() {
        Ok(Settings {
            listen_address,
            max_concurrent_runs,
            shutdown_grace,
        })
    } else {
        Err(problems)
    }
}

/// `HOST:PORT` as `serve` binds it (`0.0.0.0:9847`, `[::]:9847`,
/// `localhost:9847`). Checked here so `vouch validate` catches it rather
/// than the daemon failing at bind.
fn check_listen_address(text: &str) -> Result<(), String> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.trim().is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "invalid listen address {text:?}: expected HOST:PORT (e.g. 0.0.0.0:{DEFAULT_PORT})"
        )),
    }
}

/// Checks rules no single field can: unique names, exactly one kind,
/// timeout within interval, label names. Kind-specific rules live with
/// each kind. Each problem is reported once, at the key that was written:
/// a bad `defaults` value at `defaults`, not at every check inheriting it.
pub fn common_problems(file: &ConfigFile) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let defaults = &file.defaults;
    let zero = |value: Option<HumanDuration>| value.is_some_and(|d| d.0.is_zero());
    for (key, value) in [
        ("interval", defaults.interval),
        ("timeout", defaults.timeout),
    ] {
        if zero(value) {
            problems.push(Problem::new(
                format!("defaults.{key}"),
                "must be longer than 0s",
            ));
        }
    }
    if let (Some(interval), Some(timeout)) = (defaults.interval, defaults.timeout) {
        if timeout > interval && !interval.0.is_zero() {
            problems.push(Problem::new(
                "defaults.timeout",
                format!("timeout {timeout} is longer than the interval {interval}"),
            ));
        }
    }
    for (i, check) in file.checks.iter().enumerate() {
        let at = format!("checks[{i}]");
        problems.extend(flap_problems(check, defaults, &at));
        if check.name.trim().is_empty() {
            problems.push(Problem::new(format!("{at}.name"), "must not be empty"));
        } else if !seen.insert(check.name.as_str()) {
            problems.push(Problem::new(
                format!("{at}.name"),
                format!("duplicate check name {:?}", check.name),
            ));
        }
        if check
            .section
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            problems.push(Problem::new(
                format!("{at}.section"),
                "must not be empty (leave it out for the section \"default\")",
            ));
        }
        match check.kinds_present().len() {
            1 => {}
            0 => problems.push(Problem::new(
                at.clone(),
                format!("no check kind given (one of: {})", kind_list()),
            )),
            _ => problems.push(Problem::new(
                at.clone(),
                format!(
                    "more than one check kind given ({}); a check has exactly one",
                    check
                        .kinds_present()
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
        for (key, value) in [("interval", check.interval), ("timeout", check.timeout)] {
            if zero(value) {
                problems.push(Problem::new(
                    format!("{at}.{key}"),
                    "must be longer than 0s",
                ));
            }
        }
        if let Some(problem) = timeout_problem(check, defaults, &at) {
            // defaults.timeout against the built-in interval shows in every
            // check that inherits both; it is said once.
            let repeated = problem.path == "defaults.timeout"
                && problems.iter().any(|p| p.path == problem.path);
            if !repeated {
                problems.push(problem);
            }
        }
        for key in check.labels.keys() {
            if !is_label_name(key) {
                problems.push(Problem::new(
                    format!("{at}.labels.{key}"),
                    "label names are letters, digits and underscores, not starting with a digit",
                ));
            }
        }
    }
    problems
}

/// A timeout longer than the interval of `check` (at `at`), reported at
/// the key that was written: the check's own timeout, else its own
/// interval, else `defaults.timeout`. None when both come from `defaults`
/// (that pair is checked on its own) or a zero interval is already reported.
fn timeout_problem(check: &CheckConfig, defaults: &Defaults, at: &str) -> Option<Problem> {
    let interval = check.effective_interval(defaults);
    let timeout = check.effective_timeout(defaults);
    if interval.0.is_zero() || timeout <= interval {
        return None;
    }
    let interval_origin = if check.interval.is_some() {
        ""
    } else if defaults.interval.is_some() {
        " (from defaults.interval)"
    } else {
        " (the default interval)"
    };
    match (check.timeout.is_some(), check.interval.is_some()) {
        (true, _) => Some(Problem::new(
            format!("{at}.timeout"),
            format!("timeout {timeout} is longer than the interval {interval}{interval_origin}"),
        )),
        (false, true) => Some(Problem::new(
            format!("{at}.interval"),
            format!(
                "timeout {timeout} (from defaults.timeout) is longer than the interval {interval}"
            ),
        )),
        (false, false) if defaults.interval.is_some() => None,
        (false, false) => Some(Problem::new(
            "defaults.timeout",
            format!(
                "timeout {timeout} is longer than the default interval {interval}; set defaults.interval"
            ),
        )),
    }
}

/// Rules of the flap settings: counts of at least 1, and a failing
/// interval no longer than the interval and no shorter than the timeout.
fn flap_problems(check: &CheckConfig, defaults: &Defaults, at: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (key, own, inherited) in [
        (
            "failures_before_fail",
            check.failures_before_fail,
            defaults.failures_before_fail,
        ),
        (
            "successes_before_pass",
            check.successes_before_pass,
            defaults.successes_before_pass,
        ),
    ] {
        match (own, inherited) {
            (Some(0), _) => {
                problems.push(Problem::new(format!("{at}.{key}"), "must be at least 1"))
            }
            // A zero default is reported once, at the first check.
            (None, Some(0)) if at == "checks[0]" => problems.push(Problem::new(
                format!("defaults.{key}"),
                "must be at least 1",
            )),
            _ => {}
        }
    }
    if let Some(fast) = check.effective_interval_when_failing(defaults) {
        let key = if check.interval_when_failing.is_some() {
            format!("{at}.interval_when_failing")
        } else {
            "defaults.interval_when_failing".to_string()
        };
        let interval = check.effective_interval(defaults);
        let timeout = check.effective_timeout(defaults);
        if fast > interval {
            problems.push(Problem::new(
                key,
                format!("{fast} is longer than the interval {interval}"),
            ));
        } else if fast < timeout {
            problems.push(Problem::new(
                key,
                format!("{fast} is shorter than the timeout {timeout}"),
            ));
        }
    }
    for (j, workload) in check.after_rollout_of.iter().enumerate() {
        if crate::plan::WorkloadRef::parse(workload).is_none() {
            problems.push(Problem::new(
                format!("{at}.after_rollout_of[{j}]"),
                format!("{workload:?} is not namespace/name of a Deployment or StatefulSet"),
            ));
        }
    }
    match check.effective_rollout(defaults) {
        Some((window, fast)) => {
            let (at_fast, at_window) = (
                rollout_key(at, "rollout_interval", check.rollout_interval.is_some()),
                rollout_key(at, "rollout_window", check.rollout_window.is_some()),
            );
            let interval = check.effective_interval(defaults);
            let timeout = check.effective_timeout(defaults);
            if fast.0.is_zero() || window.0.is_zero() {
                problems.push(Problem::new(
                    if fast.0.is_zero() { at_fast } else { at_window },
                    "must be longer than 0s",
                ));
            } else if fast > interval {
                problems.push(Problem::new(
                    at_fast,
                    format!("{fast} is longer than the interval {interval}"),
                ));
            } else if fast < timeout {
                problems.push(Problem::new(
                    at_fast,
                    format!("{fast} is shorter than the timeout {timeout}"),
                ));
            } else if window < fast {
                problems.push(Problem::new(
                    at_window,
                    format!("{window} is shorter than the rollout interval {fast}"),
                ));
            }
        }
        None => {
            for (key, given) in [
                ("rollout_window", check.rollout_window.is_some()),
                ("rollout_interval", check.rollout_interval.is_some()),
            ] {
                if given {
                    problems.push(Problem::new(
                        format!("{at}.{key}"),
                        "has no effect without after_rollout_of",
                    ));
                }
            }
        }
    }
    problems
}

/// Where a rollout setting came from: the check, or the defaults.
fn rollout_key(at: &str, key: &str, own: bool) -> String {
    if own {
        format!("{at}.{key}")
    } else {
        format!("defaults.{key}")
    }
}

pub const DEFAULT_ROLLOUT_WINDOW: HumanDuration =
    HumanDuration(std::time::Duration::from_secs(600));
pub const DEFAULT_ROLLOUT_INTERVAL: HumanDuration =
    HumanDuration(std::time::Duration::from_secs(10));
pub const DEFAULT_INTERVAL: HumanDuration = HumanDuration(std::time::Duration::from_secs(30));
pub const DEFAULT_TIMEOUT: HumanDuration = HumanDuration(std::time::Duration::from_secs(10));

fn kind_list() -> String {
    Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SourcedConfig, ConfigError> {
        SourcedConfig::parse(text, "t.yaml", PathBuf::from("."))
    }

    #[test]
    fn decoder_errors_name_file_line_and_path() {
        let err = parse("checks:\n  - name: a\n    http:\n      url: http://x\n      bogus: 1\n")
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.starts_with("t.yaml:5: checks[0].http: unknown field `bogus`"),
            "{text}"
        );
    }

    #[test]
    fn lists_under_secret_looking_keys_show_names_but_hide_bare_values() {
        let mut block: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            "secret_age:\n  secrets:\n    - { name: jwt-secret, max_age: 90d }\n  tokens: [hunter2]\n  password: hunter3\n",
        )
        .unwrap();
        redact(&mut block, false);
        let shown = serde_yaml_ng::to_string(&block).unwrap();
        assert!(shown.contains("name: jwt-secret"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
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

    #[test]
    fn environment_overrides_win_over_the_file() {
        let config = parse("listen_address: 127.0.0.1:1\nmax_concurrent_runs: 4\n").unwrap();
        let env = |key: &str| match key {
            "VOUCH_LISTEN_ADDRESS" => Some("127.0.0.1:2".to_string()),
            _ => None,
        };
        let settings = settings(&config.file, env).unwrap();
        assert_eq!(settings.listen_address, "127.0.0.1:2");
        assert_eq!(settings.max_concurrent_runs, 4);
    }

    #[test]
    fn bad_environment_overrides_name_the_variable() {
        let config = parse("checks: []\n").unwrap();
        let env = |key: &str| (key == "VOUCH_MAX_CONCURRENT_RUNS").then(|| "many".to_string());
        let problems = settings(&config.file, env).unwrap_err();
        assert_eq!(problems[0].path, "$VOUCH_MAX_CONCURRENT_RUNS");
    }
}
