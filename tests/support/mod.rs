//! Test support shared by every integration test: real servers on random
//! loopback ports (started by the test, stopped when dropped), generated
//! certificates, the vouch binary, and waiting on conditions.
//!
//! Later kinds add their starters beside these (postgres.rs, redis.rs,
//! dnsmasq.rs, registry.rs, azurite.rs), each owning a temporary directory
//! and a child process that is killed on drop.
#![allow(dead_code)]

pub mod acr;
pub mod azurite;
pub mod certs;
pub mod dnsmasq;
pub mod http_server;
pub mod key_vault;
pub mod kind;
pub mod kube_api;
pub mod kube_cluster;
pub mod monitoring;
pub mod nginx;
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

/// A loopback port held by a socket that is bound but not listening:
/// connections to it are refused, and no other socket can bind it (the
/// socket does not set SO_REUSEADDR), until [`RefusingPort::listen`] turns
/// the same socket into a listener: a target that is down, then up, on
/// one port, with no moment another process could take it.
pub struct RefusingPort {
    socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl RefusingPort {
    pub fn bind() -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind("127.0.0.1:0".parse().unwrap())
            .expect("bind an ephemeral loopback port");
        let port = socket.local_addr().unwrap().port();
        RefusingPort { socket, port }
    }

    /// Starts listening on the port (inside a tokio runtime).
    pub fn listen(self) -> tokio::net::TcpListener {
        self.socket.listen(1024).expect("listen on the held port")
    }
}

/// A loopback port nothing listens on, held (bound, not listening) until
/// the test binary exits, so no other test or process can start listening
/// there while a test expects it to refuse.
pub fn closed_port() -> u16 {
    static HELD: std::sync::Mutex<Vec<RefusingPort>> = std::sync::Mutex::new(Vec::new());
    let held = RefusingPort::bind();
    let port = held.port;
    HELD.lock().unwrap().push(held);
    port
}

/// A free loopback port for an external server (redis-server, postgres,
/// dnsmasq...) that must be told a port number: bound, then released, so
/// another process may take it before the server binds it. That race
/// cannot be closed from here: dnsmasq's starter retries on another port
/// when the server fails to bind, vouch serve's too
/// ([`vouch::Daemon::start_on_free_port`]); the other starters fail loudly
/// naming the server's exit. A server restarted on its port (a target
/// that goes down and comes back) runs the same race again. Servers of this
/// crate listen first and hand the listener over instead (TestServer, the
/// Kubernetes fake, vouch serve on port 0, [`RefusingPort`]).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().unwrap().port()
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
