//! An HTTP(S) server whose every answer the test decides: status, headers,
//! body, delay, and the faults real targets show (hang, trickle, endless
//! body, close mid-response). Written on raw TCP so faults are exact.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::certs::Identity;

/// How the server answers one path.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A complete response, optionally after a delay.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// Read the request, then never answer (the connection stays open).
    Hang,
    /// Headers announcing `total` bytes, then one byte every `every`.
    Trickle { total: usize, every: Duration },
    /// A chunked body that never ends.
    Endless,
    /// Half a status line, then close.
    CloseMidHeaders,
    /// Headers announcing 100 bytes, 10 bytes of body, then close.
    CloseMidBody,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Reply::status(status)
            .header("Content-Type", "text/plain")
            .body(body.as_bytes())
    }

    pub fn json(status: u16, value: serde_json::Value) -> Self {
        Reply::status(status)
            .header("Content-Type", "application/json")
            .body(value.to_string().as_bytes())
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Reply::status(status).header("Location", location)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    pub fn body(mut self, bytes: &[u8]) -> Self {
        if let Reply::Respond { body, .. } = &mut self {
            *body = bytes.to_vec();
        }
        self
    }

    pub fn delay(mut self, by: Duration) -> Self {
        if let Reply::Respond { delay, .. } = &mut self {
            *delay = by;
        }
        self
    }
}

/// A request the server saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Reply>>,
    seen: Mutex<Vec<SeenRequest>>,
}

/// The running server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn http() -> Self {
        Self::start(None).await
    }

    /// HTTP on a listener the test holds already (e.g. a
    /// [`super::RefusingPort`] that refused until now).
    pub async fn http_on(listener: TcpListener) -> Self {
        Self::serve(listener, None)
    }

    /// HTTPS with `identity`; use [`Self::url`], whose host is `localhost`.
    pub async fn https(identity: Identity) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::https_on(identity, listener).await
    }

    /// HTTPS with `identity` on a listener the test holds already.
    pub async fn https_on(identity: Identity, listener: TcpListener) -> Self {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key())
        .unwrap();
        Self::serve(
            listener,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, tls)
    }

    fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let is_tls = tls.is_some();
        let task = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = shared.clone();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        match tls {
                            None => serve_connection(stream, &shared).await,
                            Some(acceptor) => {
                                // Handshake failures are the client's verdict to give.
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    serve_connection(stream, &shared).await;
                                }
                            }
                        }
                    });
                    // Reap finished connections so a long test does not grow.
                    while connections.try_join_next().is_some() {}
                }
            })
        };
        TestServer {
            addr,
            tls: is_tls,
            shared,
            task,
        }
    }

    pub fn route(&self, path: &str, reply: Reply) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), reply);
    }

    /// URL of `path`: `http://127.0.0.1:PORT/path`, or
    /// `https://localhost:PORT/path` for TLS (names match generated certs).
    pub fn url(&self, path: &str) -> String {
        if self.tls {
            format!("https://localhost:{}{path}", self.addr.port())
        } else {
            format!("http://{}{path}", self.addr)
        }
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.shared.seen.lock().unwrap().clone()
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, shared: &Shared) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let reply = {
        let routes = shared.routes.lock().unwrap();
        let path = request.target.split('?').next().unwrap_or("");
        routes
            .get(&request.target)
            .or_else(|| routes.get(path))
            .cloned()
            .unwrap_or_else(|| Reply::text(404, "no such route"))
    };
    shared.seen.lock().unwrap().push(request);
    let _ = answer(&mut stream, reply).await;
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<SeenRequest> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buffer.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(SeenRequest {
        method,
        target,
        headers,
        body,
    })
}

async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
            for (name, value) in &headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.flush().await?;
            stream.shutdown().await
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            Ok(())
        }
        Reply::Trickle { total, every } => {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.flush().await?;
            for _ in 0..total {
                tokio::time::sleep(every).await;
                stream.write_all(b"x").await?;
                stream.flush().await?;
            }
            stream.shutdown().await
        }
        Reply::Endless => {
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await?;
            let chunk = vec![b'y'; 16 * 1024];
            let framed = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            loop {
                stream.write_all(&framed).await?;
            }
        }
        Reply::CloseMidHeaders => {
            stream.write_all(b"HTTP/1.1 20").await?;
            stream.flush().await?;
            stream.shutdown().await
        }
        Reply::CloseMidBody => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                .await?;
            stream.flush().await?;
            stream.shutdown().await
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        404 => "Not Found",
        418 => "I'm a teapot",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}
