//! Probes: one module per check kind. A probe gets its typed, validated
//! config and the shared clients, and produces an [`Outcome`]. It knows
//! nothing of scheduling, Prometheus or HTTP serving.

pub mod api_client;
pub mod azure_auth;
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

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::broadcast;

use crate::config::{CheckConfig, Problem, SourcedConfig};
use crate::plan::Rollout;
use crate::result::Outcome;
use crate::tls::TlsClients;

/// Clients built once per process and handed to every probe.
pub struct Clients {
    pub tls: TlsClients,
    /// The system's DNS resolver (from /etc/resolv.conf), built once.
    pub dns: dns::SystemResolver,
    /// Rollouts of watched workloads, published by whoever watches them
    /// (the Kubernetes cache) and followed by the scheduler for checks
    /// with `after_rollout_of`.
    pub rollouts: broadcast::Sender<Rollout>,
    /// Entra ID tokens, shared by every check on the same identity.
    pub azure_tokens: Arc<azure_auth::TokenCache>,
    /// The Kubernetes client and watch cache; connects on first use.
    pub kube: Arc<crate::kube::KubeCache>,
}

/// Rollouts kept for a slow subscriber before it is told it lagged.
const ROLLOUT_FEED_CAPACITY: usize = 64;

impl Clients {
    pub fn new() -> Self {
        Self::with_kubeconfig(None)
    }

    /// Clients whose Kubernetes connection uses `kubeconfig` (the
    /// `--kubeconfig` flag) over the config file and the environment.
    pub fn with_kubeconfig(kubeconfig: Option<std::path::PathBuf>) -> Self {
        let rollouts = broadcast::channel(ROLLOUT_FEED_CAPACITY).0;
        Clients {
            tls: TlsClients::from_system(),
            dns: dns::SystemResolver::from_system(),
            azure_tokens: Arc::default(),
            kube: Arc::new(crate::kube::KubeCache::new(kubeconfig, rollouts.clone())),
            rollouts,
        }
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

/// What a probe is doing right now, so a run cut off by its timeout can say
/// where it was stuck ("waiting for response headers").
#[derive(Clone, Debug)]
pub struct Progress(Arc<Mutex<&'static str>>);

impl Default for Progress {
    fn default() -> Self {
        Progress(Arc::new(Mutex::new("starting")))
    }
}

impl Progress {
    pub fn set(&self, stage: &'static str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = stage;
    }

    pub fn get(&self) -> &'static str {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
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
}

/// Builds the probe for a check's kind block; problems carry paths relative
/// to the check (`http.expect.status`).
pub fn build(
    check: &CheckConfig,
    clients: &Clients,
    config: &SourcedConfig,
) -> Result<Arc<dyn Probe>, Vec<Problem>> {
    if let Some(http) = &check.http {
        let timeout = check.effective_timeout(&config.file.defaults).0;
        let probe = http::HttpProbe::build(http, clients, config, timeout).map_err(|problems| {
            problems
                .into_iter()
                .map(|p| p.under("http"))
                .collect::<Vec<_>>()
        })?;
        return Ok(Arc::new(probe));
    }
    if let Some(tls) = &check.tls {
        let timeout = check.effective_timeout(&config.file.defaults).0;
        let probe = tls::TlsProbe::build(tls, clients, config, timeout)
            .map_err(|problems| under("tls", problems))?;
        return Ok(Arc::new(probe));
    }
    if let Some(dns) = &check.dns {
        let timeout = check.effective_timeout(&config.file.defaults).0;
        let probe = dns::DnsProbe::build(dns, clients, config, timeout)
            .map_err(|problems| under("dns", problems))?;
        return Ok(Arc::new(probe));
    }
    if let Some(postgres) = &check.postgres {
        let probe = postgres::PostgresProbe::build(postgres, check, clients, config).map_err(
            |problems| {
                problems
                    .into_iter()
                    .map(|p| p.under("postgres"))
                    .collect::<Vec<_>>()
            },
        )?;
        return Ok(Arc::new(probe));
    }
    if let Some(redis) = &check.redis {
        let probe = redis::RedisProbe::build(redis, check, config).map_err(|problems| {
            problems
                .into_iter()
                .map(|p| p.under("redis"))
                .collect::<Vec<_>>()
        })?;
        return Ok(Arc::new(probe));
    }
    if let Some(backup) = &check.backup {
        let probe = backup::BackupProbe::build(backup, check, config)
            .map_err(|problems| under("backup", problems))?;
        return Ok(Arc::new(probe));
    }
    if let Some(registry) = &check.registry {
        let probe = registry::RegistryProbe::build(registry, check, clients, config)
            .map_err(|problems| under("registry", problems))?;
        return Ok(Arc::new(probe));
    }
    if let Some(secret_age) = &check.secret_age {
        let probe = secret_age::SecretAgeProbe::build(secret_age, check, clients, config)
            .map_err(|problems| under("secret_age", problems))?;
        return Ok(Arc::new(probe));
    }
    if let Some(kubernetes) = &check.kubernetes {
        let probe = kubernetes::KubernetesProbe::build(kubernetes, check, clients, config)
            .map_err(|problems| under("kubernetes", problems))?;
        return Ok(Arc::new(probe));
    }
    Err(vec![Problem::new("", "no check kind given")])
}

fn under(prefix: &str, problems: Vec<Problem>) -> Vec<Problem> {
    problems.into_iter().map(|p| p.under(prefix)).collect()
}
