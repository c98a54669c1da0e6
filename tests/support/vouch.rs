//! The vouch binary as users run it: the daemon as a child process, and
//! one-shot commands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::{free_port, wait_until};

/// The vouch binary: cargo's, unless `VOUCH_BIN` names another (a copy
/// taken right after the build, when several checkouts share one target
/// directory and a build of another branch could replace cargo's).
pub fn bin() -> &'static str {
    static BIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::env::var("VOUCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vouch").to_string())
    });
    BIN.as_str()
}

/// Runs `vouch ARGS` to completion (stdin closed, output captured). Async,
/// so servers in the test's runtime keep answering meanwhile.
pub async fn run(args: &[&str]) -> Output {
    tokio::process::Command::new(bin())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the vouch binary")
}

/// How long a test waits for a verdict of the live daemon: generous,
/// since on a loaded machine one run may end by its timeout (a slow start
/// of a server, a stalled host) and the next run must be awaited. Tests
/// await each expected verdict with [`super::wait_until`] and this limit
/// rather than read the first run's.
pub const VERDICT_WAIT: Duration = Duration::from_secs(60);

/// glibc's resolver options for a process (`RES_OPTIONS`, read beside
/// /etc/resolv.conf): one try of one second per name server. A name that
/// must not resolve then fails as DNS in about a second whether the host's
/// name server answers NXDOMAIN (online) or cannot be reached (offline),
/// instead of the lookup outlasting the check's timeout.
pub const QUICK_RESOLVER: (&str, &str) = ("RES_OPTIONS", "timeout:1 attempts:1");

/// `vouch check --format json` on a config with one check, in a process
/// with the extra environment `env`; returns that check's report entry.
pub async fn check_one(yaml: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let config = super::write_config(yaml);
    let mut command = tokio::process::Command::new(bin());
    command
        .args(["check", "--format", "json", "--config"])
        .arg(&config.path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().await.expect("run vouch check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}):\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["checks"][0].clone()
}

/// What "started" means for a daemon.
#[derive(Clone, Copy, Debug)]
enum Ready {
    /// /livez answers over plain HTTP.
    Livez,
    /// The port accepts connections (TLS or credentials may be needed).
    Listening,
}

/// `vouch serve` as a child process, killed on drop.
pub struct Daemon {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts the daemon on a free port and waits until it answers /livez.
    pub async fn start(config: &Path) -> Daemon {
        Self::start_with_env(config, &[]).await
    }

    /// The daemon listens on port 0: the OS picks a free port and holds it
    /// for the daemon from the moment it binds; the port is read from the
    /// daemon's "vouch is serving" log line. No other test can take it.
    pub async fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut daemon = Self::spawn(config, 0, &[], env);
        daemon
            .wait_until(Ready::Livez)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        daemon
    }

    /// Starts the daemon listening on `port` (for configs that check the
    /// daemon itself) and waits until it answers /livez.
    pub async fn start_on_port(config: &Path, port: u16, env: &[(&str, &str)]) -> Daemon {
        Self::try_start_on_port(config, port, env)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::start_on_port`], but a daemon that could not listen (another
    /// process took the port between [`free_port`] and the bind: a race a
    /// config naming its own port cannot avoid) is an `Err` with its log,
    /// so the caller can retry on another port.
    pub async fn try_start_on_port(
        config: &Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        let mut daemon = Self::spawn(config, port, &[], env);
        match daemon.wait_until(Ready::Livez).await {
            Ok(()) => Ok(daemon),
            Err(log) if log.contains("cannot listen on") => Err(log),
            Err(other) => panic!("{other}"),
        }
    }

    /// Starts the daemon on a port from [`free_port`] that `config_for`
    /// writes into the config (the config checks the daemon itself);
    /// retries on another port if the chosen one was taken meanwhile.
    pub async fn start_on_free_port<F>(mut config_for: F) -> (Daemon, super::ConfigDir)
    where
        F: FnMut(u16) -> super::ConfigDir,
    {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = config_for(port);
            match Self::try_start_on_port(&config.path, port, &[]).await {
                Ok(daemon) => return (daemon, config),
                Err(log) => last = log,
            }
        }
        panic!("no free port for vouch serve in five tries:\n{last}");
    }

    /// Starts the daemon on a free port with extra command-line arguments
    /// (e.g. `--web.config.file`) and waits until the port accepts
    /// connections (the endpoints may need TLS or credentials, so /livez
    /// over plain HTTP is not asked).
    pub async fn start_with_args(config: &Path, args: &[&str]) -> Daemon {
        Self::start_with_args_env(config, args, &[]).await
    }

    /// [`Self::start_with_args`] with extra environment variables (which
    /// win over the default `RUST_LOG=debug`).
    pub async fn start_with_args_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut daemon = Self::spawn(config, 0, args, env);
        daemon
            .wait_until(Ready::Listening)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        daemon
    }

    /// `vouch serve` on 127.0.0.1:`port`, logging at debug into a file.
    fn spawn(config: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("vouch.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = tokio::process::Command::new(bin());
        command
            .args(["serve", "--config"])
            .arg(config)
            .args(["--web.listen-address", &addr.to_string()])
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        Daemon {
            child: command.spawn().expect("start vouch serve"),
            addr,
            log,
            _log_dir: log_dir,
        }
    }

    /// Polls until the daemon is `ready`. If it exits first, or 20 s pass,
    /// the error holds the reason and the daemon's log.
    async fn wait_until(&mut self, ready: Ready) -> Result<(), String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!(
                    "vouch serve exited with {status}:\n{}",
                    self.logs()
                ));
            }
            // Only this daemon's own log saying it serves proves that the
            // answers are its own; it also names the port when the OS
            // picked it (port 0).
            if let Some(addr) = serving_address(&self.logs()) {
                self.addr = addr;
                let done = match ready {
                    Ready::Livez => self.get("/livez").await.is_some(),
                    Ready::Listening => tokio::net::TcpStream::connect(self.addr).await.is_ok(),
                };
                if done {
                    return Ok(());
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!("vouch serve is not {ready:?}:\n{}", self.logs()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.addr, path).await
    }

    /// The body of a path that must answer 200.
    pub async fn get_ok(&self, path: &str) -> String {
        match self.get(path).await {
            Some((200, body)) => body,
            other => panic!("GET {path}: {other:?}\n{}", self.logs()),
        }
    }

    /// The JSON of /api/v1/checks.
    pub async fn checks(&self) -> serde_json::Value {
        serde_json::from_str(&self.get_ok("/api/v1/checks").await).unwrap()
    }

    /// The names of the checks /api/v1/checks lists, in its order.
    pub async fn check_names(&self) -> Vec<String> {
        self.checks().await["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Waits until every check has at least `runs` runs in its history.
    pub async fn wait_for_runs(&self, runs: usize, limit: Duration) {
        wait_until(&format!("{runs} runs of every check"), limit, || async {
            self.checks().await["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["recent"].as_array().unwrap().len() >= runs)
        })
        .await;
    }

    /// The check named `name` from /api/v1/checks.
    pub async fn check(&self, name: &str) -> serde_json::Value {
        let checks = self.checks().await;
        checks["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    /// Waits until `name` has a result, then returns its entry.
    pub async fn wait_for_result(&self, name: &str, limit: Duration) -> serde_json::Value {
        wait_until(&format!("a result of {name}"), limit, || async {
            self.check(name).await["state"] != "pending"
        })
        .await;
        self.check(name).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the daemon is running")
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|r| r.unwrap())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The address in the daemon's "vouch is serving" log line (text format:
/// `... vouch is serving address=127.0.0.1:PORT scheme=...`).
fn serving_address(log: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains("vouch is serving"))?;
    let (_, rest) = line.split_once("address=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// One GET over a fresh connection; None when nothing answers.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_request(addr, "GET", path).await
}

/// One POST without a body over a fresh connection.
pub async fn http_post(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_request(addr, "POST", path).await
}

async fn http_request(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("Host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    driver.abort();
    Some((status, String::from_utf8_lossy(&body).to_string()))
}
