//! `redis-server` on a random loopback port, without persistence unless a
//! test asks for it; killed on drop, restartable on the same port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Redis {
    dir: tempfile::TempDir,
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    /// A server with the defaults of the tests: no RDB saves, no AOF.
    pub fn start_new() -> Redis {
        Self::with_args(&[])
    }

    /// A server with extra arguments, e.g. `["--maxmemory", "2mb"]`.
    pub fn with_args(args: &[&str]) -> Redis {
        let mut redis = Redis {
            dir: tempfile::tempdir().expect("a temporary directory"),
            port: free_port(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        redis.start();
        redis
    }

    /// Starts the server and waits until it answers PING.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian package redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_ping() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("redis-server exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut answer = [0u8; 64];
        // A server with requirepass answers -NOAUTH: up all the same.
        matches!(stream.read(&mut answer), Ok(n) if n > 0)
    }

    /// Restarts the server on its port and directory with `args` in place
    /// of the extra arguments it had.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.stop();
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.start();
    }

    /// Kills the server; the port stays closed until [`Self::start`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A connection of the test's own, authenticated with `auth` (user,
    /// password) when given.
    pub async fn connection(
        &self,
        auth: Option<(&str, &str)>,
    ) -> redis::aio::MultiplexedConnection {
        let url = match auth {
            Some((user, password)) => format!("redis://{user}:{password}@127.0.0.1:{}/", self.port),
            None => self.url(),
        };
        let client = redis::Client::open(url).unwrap();
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect to the test redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
