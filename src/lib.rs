//! vouch: deployment checklist items as checks that run on a schedule,
//! exported to Prometheus, and once as a deployment gate.
//!
//! Data flows one way: [`config`] → [`plan`] → [`scheduler`] (or [`round`])
//! → [`runner`] → [`probe`] → [`result`] → [`output`]. [`kube`] is the
//! shared Kubernetes client and watch cache the `kubernetes` kind reads.
#![forbid(unsafe_code)]

pub mod cli;
pub mod clients;
pub mod config;
pub mod config_watch;
pub mod connect_to;
pub mod daemon;
pub mod error_chain;
pub mod file_read;
pub mod flap;
pub mod kube;
pub mod lock;
pub mod output;
pub mod plan;
pub mod probe;
pub mod result;
pub mod round;
pub mod runner;
pub mod scheduler;
pub mod secret;

/// Source revision vouch was built from (`unknown` outside a git checkout).
pub const REVISION: &str = env!("VOUCH_REVISION");
