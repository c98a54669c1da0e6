//! Clients that are not check kinds: built once per process and shared by
//! the kinds that need them. TLS client configs and the mapping of
//! handshake failures to reasons ([`tls_configs`]), the pooled JSON API
//! client ([`api_client`]), Entra ID tokens ([`azure_auth`]) for the
//! identity a check names ([`azure_identity`]), ACR tokens exchanged for
//! them ([`acr`]); the
//! Kubernetes client and watch cache live in [`crate::kube`].

pub mod acr;
pub mod api_client;
pub mod azure_auth;
pub mod azure_identity;
pub mod tls_configs;

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::plan::Rollout;
use tls_configs::TlsClients;

/// Clients built once per process and handed to every probe.
pub struct Clients {
    pub tls: TlsClients,
    /// The system's DNS resolver (from /etc/resolv.conf), built once.
    pub dns: crate::probe::dns::SystemResolver,
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
            dns: crate::probe::dns::SystemResolver::from_system(),
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
