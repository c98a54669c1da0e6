//! Test support shared by every integration test: real servers on random
//! loopback ports (started by the test, stopped when dropped), generated
//! certificates, the vouch binary, and waiting on conditions.
//!
//! Later kinds add their starters beside these (postgres.rs, redis.rs,
//! dnsmasq.rs, registry.rs, azurite.rs), each owning a temporary directory
//! and a child process that is killed on drop.
#![allow(dead_code)]

pub mod azurite;
pub mod certs;
pub mod dnsmasq;
pub mod http_server;
pub mod key_vault;
pub mod kind;
pub mod kube_api;
pub mod kube_cluster;
pub mod monitoring;
pub mod node_tools;
pub mod pem;
pub mod postgres;
pub mod redis;
pub mod registry;
pub mod s3;
pub mod twin;
pub mod vouch;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Polls `condition` until it holds; panics naming `what` after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `child` (the server `name`) accepts connections on loopback
/// `port`; panics if it exits first or 30 s pass.
pub fn wait_for_port(child: &mut std::process::Child, port: u16, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{name} exited with {status}");
        }
        assert!(Instant::now() < deadline, "{name} did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().unwrap().port()
}

/// A free loopback port for a server the test starts itself.
pub fn free_port() -> u16 {
    closed_port()
}

/// A temporary directory holding a config file with `yaml`.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn write_config(yaml: &str) -> ConfigDir {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("vouch.yaml");
    std::fs::write(&path, yaml).expect("write the config");
    ConfigDir { dir, path }
}
