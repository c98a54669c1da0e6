//! A real Prometheus and a real Alertmanager (Debian's packages), each in
//! its own temporary directory on a random loopback port, stopped on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::vouch::http_get;
use super::{free_port, wait_until};

/// A child process with its directory; killed and reaped on drop.
pub struct Service {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    name: &'static str,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn spawn(
        name: &'static str,
        program: &str,
        args: &[String],
        dir: tempfile::TempDir,
        addr: SocketAddr,
    ) -> Service {
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("start {program}: {err} (scripts/test.sh installs it)"));
        Service {
            child,
            addr,
            dir,
            name,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let addr = self.addr;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited with {status}:\n{}", self.name, self.logs());
            }
            if matches!(http_get(addr, "/-/ready").await, Some((200, _))) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} not ready:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn loopback() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// Alertmanager with `config` (YAML).
pub async fn alertmanager(config: &str) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(&file, config).unwrap();
    let addr = loopback();
    let args = vec![
        format!("--config.file={}", file.display()),
        format!("--storage.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={addr}"),
        "--cluster.listen-address=".to_string(),
    ];
    let mut service = Service::spawn("alertmanager", "prometheus-alertmanager", &args, dir, addr);
    service.wait_ready().await;
    service
}

/// Prometheus with `config` (YAML) and the given extra files written next
/// to it (rule files the config names).
pub async fn prometheus(config: &str, files: &[(&str, String)]) -> Service {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let addr = loopback();
    let args = vec![
        format!("--config.file={}", file.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={addr}"),
    ];
    let mut service = Service::spawn("prometheus", "prometheus", &args, dir, addr);
    service.wait_ready().await;
    service
}

/// Runs an instant query; returns the API's JSON answer.
pub async fn query(prometheus: SocketAddr, promql: &str) -> serde_json::Value {
    let encoded: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let (_, body) = http_get(prometheus, &format!("/api/v1/query?query={encoded}"))
        .await
        .expect("Prometheus answers");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Waits until `promql` returns at least one sample.
pub async fn wait_for_data(prometheus: SocketAddr, promql: &str, limit: Duration) {
    wait_until(&format!("data for {promql}"), limit, || async {
        let answer = query(prometheus, promql).await;
        answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    })
    .await;
}

/// The alerts Alertmanager holds now (`/api/v2/alerts`: firing, inhibited
/// and silenced ones, each with its `status.state` and `inhibitedBy`).
pub async fn alertmanager_alerts(alertmanager: SocketAddr) -> serde_json::Value {
    let (_, body) = http_get(alertmanager, "/api/v2/alerts")
        .await
        .expect("Alertmanager answers");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}
