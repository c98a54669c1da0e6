//! Probes: one module per check kind. A probe gets its typed, validated
//! config and the shared clients, and produces an [`Outcome`]. It knows
//! nothing of scheduling, Prometheus or HTTP serving.

pub mod backup;
pub mod cross_check;
pub mod dns;
pub mod http;
pub mod kubernetes;
pub mod postgres;
pub mod redis;
pub mod registry;
pub mod secret_age;
pub mod tls;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::clients::tls_configs::TlsPolicy;
use crate::config::{KindConfig, Problem};
use crate::kube::WatchKey;

use crate::lock::lock;
use crate::result::Outcome;
use crate::secret::SecretResolver;
// Probes get their clients from here, as they always have.
pub use crate::clients::Clients;

/// What a probe is doing right now, so a run cut off by its timeout can say
/// where it was stuck ("waiting for response headers").
#[derive(Clone, Debug)]
pub struct Progress(Arc<Mutex<Cow<'static, str>>>);

impl Default for Progress {
    fn default() -> Self {
        Progress(Arc::new(Mutex::new(Cow::Borrowed("starting"))))
    }
}

impl Progress {
    /// A stage may name what it waits on ("reading /run/token"), so a
    /// timeout names the file or peer that did not answer.
    pub fn set(&self, stage: impl Into<Cow<'static, str>>) {
        *lock(&self.0) = stage.into();
    }

    pub fn get(&self) -> Cow<'static, str> {
        lock(&self.0).clone()
    }
}

/// Everything a run may use.
pub struct ProbeContext {
    pub clients: Arc<Clients>,
    pub progress: Progress,
}

/// One check kind's way of producing a result. Implementations must not
/// enforce the check's timeout themselves (the runner does, from outside)
/// and must turn every failure into an [`Outcome`], never a panic.
pub trait Probe: Send + Sync + 'static {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome>;

    /// What the built check needs from outside itself; the planner asks
    /// every probe rather than knowing which kinds read what.
    fn needs(&self) -> Needs {
        Needs::default()
    }
}

/// What one built check needs besides its own target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The cluster watches it holds a lease on (its own reads and its
    /// cross-checks); any at all means the Kubernetes connection must be
    /// configured.
    pub watches: Vec<WatchKey>,
    /// What a person should be told about its config when it is put in
    /// force (certificate verification switched off).
    pub warnings: Vec<&'static str>,
}

impl Needs {
    pub fn reads_cluster(&self) -> bool {
        !self.watches.is_empty()
    }
}

/// The warnings a check deserves for how it verifies certificates: one
/// when it does not (`insecure_skip_verify`).
pub fn verification_warnings(policy: &TlsPolicy) -> Vec<&'static str> {
    if policy.required() {
        Vec::new()
    } else {
        vec!["TLS certificate verification is off for this check (insecure_skip_verify)"]
    }
}

/// What every kind's `build` gets besides its own block: nothing else of
/// the config.
pub struct BuildContext<'a> {
    /// The check's timeout, defaults applied.
    pub timeout: Duration,
    pub clients: &'a Clients,
    /// Where secret references (`NAME_file`, `NAME_env`) and other paths
    /// of the config are resolved.
    pub secrets: &'a SecretResolver,
}

impl BuildContext<'_> {
    /// A path from the config (a CA file), relative to its directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        self.secrets.resolve_path(path)
    }
}

/// Builds the probe for a check's kind block; problems carry paths relative
/// to the check (`http.expect.status`).
pub fn build(kind: KindConfig<'_>, ctx: &BuildContext) -> Result<Arc<dyn Probe>, Vec<Problem>> {
    fn shared<P: Probe>(probe: P) -> Arc<dyn Probe> {
        Arc::new(probe)
    }
    let built = match kind {
        KindConfig::Http(config) => http::HttpProbe::build(config, ctx).map(shared),
        KindConfig::Tls(config) => tls::TlsProbe::build(config, ctx).map(shared),
        KindConfig::Dns(config) => dns::DnsProbe::build(config, ctx).map(shared),
        KindConfig::Postgres(config) => postgres::PostgresProbe::build(config, ctx).map(shared),
        KindConfig::Redis(config) => redis::RedisProbe::build(config, ctx).map(shared),
        KindConfig::Backup(config) => backup::BackupProbe::build(config, ctx).map(shared),
        KindConfig::Registry(config) => registry::RegistryProbe::build(config, ctx).map(shared),
        KindConfig::SecretAge(config) => secret_age::SecretAgeProbe::build(config, ctx).map(shared),
        KindConfig::Kubernetes(config) => {
            kubernetes::KubernetesProbe::build(config, ctx).map(shared)
        }
    };
    built.map_err(|problems| {
        let prefix = kind.kind().as_str();
        problems.into_iter().map(|p| p.under(prefix)).collect()
    })
}
