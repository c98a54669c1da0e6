//! A real DNS server for tests: Debian's dnsmasq on a random loopback port
//! (UDP and TCP), in the foreground, answering only the records the test
//! gives, killed on drop. Records are dnsmasq options: `--address=/name.test/10.1.2.3`,
//! `--address=/gone.test/` (NXDOMAIN), `--host-record=`, `--cname=`,
//! `--txt-record=`, `--mx-host=`, `--dns-rr=` (any type, hex data).

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Dnsmasq {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` and waits until it answers over UDP
    /// and accepts TCP. A port taken meanwhile is retried with another.
    pub fn start(records: &[&str]) -> Dnsmasq {
        let mut last_error = String::new();
        for _ in 0..5 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            match spawn(addr, records) {
                Ok(child) => return Dnsmasq { child, addr },
                Err(error) => last_error = error,
            }
        }
        panic!("could not start dnsmasq: {last_error}");
    }

    /// Stops this dnsmasq and starts one with `records` on the same port,
    /// so clients configured with its address (a running `vouch serve`)
    /// keep reaching it.
    pub fn restart(&mut self, records: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut last_error = String::new();
        for _ in 0..5 {
            match spawn(self.addr, records) {
                Ok(child) => {
                    self.child = child;
                    return;
                }
                Err(error) => last_error = error,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("could not restart dnsmasq on {}: {last_error}", self.addr);
    }

    /// `127.0.0.1:PORT`, as a `dns.servers` entry.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }
}

/// dnsmasq with `records` on `addr`, once it answers over UDP and accepts
/// TCP; or why it exited.
fn spawn(addr: SocketAddr, records: &[&str]) -> Result<Child, String> {
    let mut child = Command::new(binary())
        .args([
            // Not --no-daemon: in that debug mode dnsmasq serves a TCP
            // connection in its main process and answers no UDP
            // query until the client closes it (hickory keeps its
            // TCP connections open), which stalls UDP lookups.
            "--keep-in-foreground",
            &format!("--port={}", addr.port()),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--cache-size=0",
        ])
        .args(records)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dnsmasq is installed (scripts/test.sh installs Debian's dnsmasq-base)");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            return Err(format!("dnsmasq exited with {status}: {stderr}"));
        }
        if answers(addr) && std::net::TcpStream::connect(addr).is_ok() {
            // dnsmasq logs little; its stderr is not read further.
            drop(child.stderr.take());
            return Ok(child);
        }
        assert!(
            Instant::now() < deadline,
            "dnsmasq on {addr} did not answer within 10s"
        );
    }
}

/// Debian installs dnsmasq in /usr/sbin, which a non-root PATH may lack.
fn binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/dnsmasq").exists() {
        "/usr/sbin/dnsmasq"
    } else {
        "dnsmasq"
    }
}

/// Whether a DNS server on `addr` answers a query (any response code)
/// within 200ms.
fn answers(addr: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // id 0x5eed, recursion desired, one question: ready.invalid A IN.
    let mut query = vec![0x5e, 0xed, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["ready", "invalid"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    if socket.send_to(&query, addr).is_err() {
        return false;
    }
    let mut buffer = [0u8; 512];
    matches!(socket.recv_from(&mut buffer), Ok((n, _)) if n >= 12 && buffer[..2] == [0x5e, 0xed])
}

/// A name server that does not respond: a UDP socket that receives
/// queries and a TCP listener whose connections the kernel accepts, both
/// never answering. Keeps the port until dropped.
pub struct Silent {
    _udp: UdpSocket,
    _tcp: std::net::TcpListener,
    pub addr: SocketAddr,
}

impl Silent {
    pub fn bind() -> Silent {
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = std::net::TcpListener::bind(addr) {
                return Silent {
                    _udp: udp,
                    _tcp: tcp,
                    addr,
                };
            }
        }
        panic!("no loopback port free for both UDP and TCP");
    }

    pub fn server(&self) -> String {
        self.addr.to_string()
    }
}

/// What a [`Relay`] does with each query.
#[derive(Clone, Copy, Debug)]
pub enum RelayMode {
    /// Forward it to this server and relay the answer after `delay`.
    Forward { to: SocketAddr, delay: Duration },
    /// Drop it: a server gone silent.
    Drop,
}

/// A UDP relay in front of real name servers, under the test's control:
/// while it runs the test can make it slow, silent, or point it at another
/// server (a changed answer). Stops when dropped.
pub struct Relay {
    pub addr: SocketAddr,
    mode: std::sync::Arc<std::sync::Mutex<RelayMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    pub async fn start(mode: RelayMode) -> Relay {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let socket = std::sync::Arc::new(socket);
        let mode = std::sync::Arc::new(std::sync::Mutex::new(mode));
        let task = {
            let mode = mode.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok((n, client)) = socket.recv_from(&mut buffer).await {
                    let query = buffer[..n].to_vec();
                    let RelayMode::Forward { to, delay } = *mode.lock().unwrap() else {
                        continue;
                    };
                    let socket = socket.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let upstream = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                        upstream.send_to(&query, to).await.unwrap();
                        let mut answer = [0u8; 4096];
                        let wait = tokio::time::timeout(
                            Duration::from_secs(10),
                            upstream.recv(&mut answer),
                        );
                        if let Ok(Ok(m)) = wait.await {
                            let _ = socket.send_to(&answer[..m], client).await;
                        }
                    });
                }
            })
        };
        Relay { addr, mode, task }
    }

    pub fn set(&self, mode: RelayMode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn server(&self) -> String {
        self.addr.to_string()
    }
}
