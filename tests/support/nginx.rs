//! A real nginx on loopback serving one `server` block, with an access log
//! that names each request's connection: what a keep-alive test needs to
//! see whether a connection was reused.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Nginx {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// nginx with `locations` (nginx syntax) inside its one server block.
    pub fn start(locations: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let config = format!(
            "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections 64; }}
http {{
    log_format conn '$connection $connection_requests $request_uri';
    access_log {d}/access.log conn;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        {locations}
    }}
}}
"
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = spawn(&dir);
        let nginx = Nginx { port, dir, child };
        nginx.wait_listening();
        nginx
    }

    /// Stops nginx: its connections break, its port refuses.
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Starts it again on the same port (nginx binds with SO_REUSEADDR).
    pub fn start_again(&mut self) {
        self.stop();
        self.child = spawn(&self.dir);
        self.wait_listening();
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The access log so far, one (connection number, request number on
    /// that connection, URI) per request. nginx writes a line when the
    /// request ends, before the next one on the connection is read.
    pub fn requests(&self) -> Vec<(u64, u64, String)> {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                Some((
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                    parts.next()?.to_string(),
                ))
            })
            .collect()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }
}

/// Stops an nginx master and waits for it. SIGTERM, not SIGKILL: a killed
/// master leaves its worker serving the port.
pub fn terminate(master: &mut Child) {
    if master.try_wait().ok().flatten().is_none() {
        unsafe { libc::kill(master.id() as i32, libc::SIGTERM) };
    }
    let _ = master.wait();
}

fn spawn(dir: &tempfile::TempDir) -> Child {
    Command::new("nginx")
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed (scripts/test.sh installs nginx-light)")
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
