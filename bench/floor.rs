//! The bare-client floor: what the work of a check costs without vouch
//! around it, so vouch's CPU per run reads as "how far above the work itself".
//!
//! One single-threaded tokio runtime, the same crates vouch's probes use
//! (tokio, hyper's connection API, rustls with ring, tokio-rustls), and for
//! each mode `count` operations one after the other:
//!
//! - `http-fresh`: GET over a fresh TCP connection each (`Connection: close`);
//! - `http-keepalive`: GET after GET over one connection;
//! - `tls-full`: a full TLS handshake (session resumption off), chain
//!   verified against `--ca`, then close_notify;
//! - `https-fresh`: full handshake + GET over it, a fresh connection each;
//! - `https-resumed`: the same with rustls' default in-memory session cache
//!   (what a default `ClientConfig` does: the TLS 1.3 ticket read with the
//!   response resumes the next handshake).
//!
//! With `--rate R` the modes that make one operation at a time (all but
//! `http-keepalive`) are paced at R operations per second, sleeping between
//! them as vouch's scheduler does between runs: the fair floor for vouch at
//! R runs/s, since at low rates the wake-ups cost as much as the work.
//!
//! CPU is the process's user + system time from getrusage(RUSAGE_SELF)
//! around the loop; each mode prints one JSON line:
//! `{"mode":..,"ops":..,"errors":..,"cpu_us_per_op":..,"ops_per_s":..,"ops_per_cpu_s":..}`
//! (`ops_per_s` is wall-clock, `ops_per_cpu_s` is what one core could do).
//!
//! ```text
//! cargo bench --bench floor -- [--url http://127.0.0.1:PORT/] [--tls 127.0.0.1:PORT]
//!     [--server-name localhost] [--ca ca.pem] [--count 2000] [--modes a,b,..]
//!     [--rate R]
//! ```
//! Each option may also come from the environment (`FLOOR_URL`, `FLOOR_TLS`,
//! `FLOOR_SERVER_NAME`, `FLOOR_CA`, `FLOOR_COUNT`, `FLOOR_MODES`). Without
//! `--url` the HTTP modes run against a minimal hyper server the floor
//! starts on loopback in the same runtime (its CPU then counts too); the TLS
//! modes need `--tls` and `--ca`. Run by `cargo test --all-targets` (no
//! `--bench` argument) it does a few operations against that built-in
//! server only, to show that it still works.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

type Error = Box<dyn std::error::Error>;

const MODES: [&str; 5] = [
    "http-fresh",
    "http-keepalive",
    "tls-full",
    "https-fresh",
    "https-resumed",
];

#[derive(Debug)]
struct Options {
    url: Option<String>,
    tls: Option<SocketAddr>,
    server_name: String,
    ca: Option<String>,
    count: u64,
    modes: Vec<String>,
    /// Operations per second, when paced.
    rate: Option<f64>,
}

fn parse_options() -> Result<Options, Error> {
    let mut args = std::env::args().skip(1);
    let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    let mut url = env("FLOOR_URL");
    let mut tls = env("FLOOR_TLS");
    let mut server_name = env("FLOOR_SERVER_NAME").unwrap_or_else(|| "localhost".into());
    let mut ca = env("FLOOR_CA");
    let mut count = env("FLOOR_COUNT");
    let mut modes = env("FLOOR_MODES");
    let mut rate = env("FLOOR_RATE");
    // `cargo bench` passes --bench; `cargo test` does not.
    let mut benching = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--bench" => benching = true,
            "--url" => url = Some(value()?),
            "--tls" => tls = Some(value()?),
            "--server-name" => server_name = value()?,
            "--ca" => ca = Some(value()?),
            "--count" => count = Some(value()?),
            "--modes" => modes = Some(value()?),
            "--rate" => rate = Some(value()?),
            "-h" | "--help" => {
                println!(
                    "floor [--url URL] [--tls ADDR:PORT] [--server-name NAME] [--ca FILE] \
                     [--count N] [--modes {}] [--rate R]",
                    MODES.join(",")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    let count = match count {
        Some(n) => n.parse().map_err(|err| format!("--count {n:?}: {err}"))?,
        None if benching => 2000,
        None => 20,
    };
    let tls = match tls {
        Some(addr) => Some(
            addr.parse()
                .map_err(|err| format!("--tls {addr:?} is not IP:PORT: {err}"))?,
        ),
        None => None,
    };
    let modes = match modes {
        Some(list) => {
            let modes: Vec<String> = list.split(',').map(str::to_string).collect();
            if let Some(bad) = modes.iter().find(|m| !MODES.contains(&m.as_str())) {
                return Err(format!("unknown mode {bad:?}, one of: {}", MODES.join(", ")).into());
            }
            modes
        }
        None => MODES
            .iter()
            .filter(|m| !m.starts_with("tls") && !m.starts_with("https") || tls.is_some())
            .map(|m| m.to_string())
            .collect(),
    };
    let rate = match rate {
        Some(r) => match r.parse::<f64>() {
            Ok(r) if r > 0.0 => Some(r),
            _ => return Err(format!("--rate {r:?}: a positive number").into()),
        },
        None => None,
    };
    Ok(Options {
        url,
        tls,
        server_name,
        ca,
        count,
        modes,
        rate,
    })
}

/// user + system CPU seconds of this process so far.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own and only reads
    // the `who` constant.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Where a plain-HTTP GET goes: socket address, Host header, path.
#[derive(Clone, Debug)]
struct HttpTarget {
    addr: SocketAddr,
    host: String,
    path: String,
}

impl HttpTarget {
    fn parse(url: &str) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--url {url:?}: only http://IP:PORT/path"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = host
            .parse()
            .map_err(|err| format!("--url {url:?}: host must be IP:PORT ({err})"))?;
        Ok(Self {
            addr,
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    fn request(&self, close: bool) -> Request<Empty<Bytes>> {
        let mut request = Request::get(self.path.as_str()).header(hyper::header::HOST, &self.host);
        if close {
            request = request.header(hyper::header::CONNECTION, "close");
        }
        request
            .body(Empty::new())
            .expect("a GET with a valid path and host")
    }
}

/// Sends one request over an established stream and reads the whole body.
async fn get_over<S>(stream: S, request: Request<Empty<Bytes>>) -> Result<usize, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    drop(sender);
    let _ = driver.await;
    if !status.is_success() {
        return Err(format!("status {status}").into());
    }
    Ok(body.len())
}

async fn http_fresh(target: &HttpTarget) -> Result<usize, Error> {
    let stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    get_over(stream, target.request(true)).await
}

/// `count` GETs over one connection; returns the errors (a broken
/// connection is opened again).
async fn http_keepalive(target: &HttpTarget, count: u64) -> Result<u64, Error> {
    let mut errors = 0;
    let mut done = 0;
    while done < count {
        let stream = TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(connection);
        while done < count {
            done += 1;
            let ok = async {
                sender.ready().await?;
                let response = sender.send_request(target.request(false)).await?;
                let status = response.status();
                response.into_body().collect().await?;
                Ok::<_, Error>(status.is_success())
            }
            .await;
            match ok {
                Ok(true) => {}
                Ok(false) => errors += 1,
                Err(_) => {
                    errors += 1;
                    break;
                }
            }
        }
        drop(sender);
        let _ = driver.await;
    }
    Ok(errors)
}

fn tls_config(ca: &str, resumption: bool) -> Result<Arc<ClientConfig>, Error> {
    let pem = std::fs::read(ca).map_err(|err| format!("cannot read {ca}: {err}"))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert?)?;
    }
    if roots.is_empty() {
        return Err(format!("{ca}: no certificate").into());
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

async fn tls_handshake(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &ServerName<'static>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(connector.connect(name.clone(), stream).await?)
}

/// A minimal HTTP/1.1 server answering `ok` on loopback, in this runtime:
/// the floor's own target when no `--url` is given.
async fn builtin_server() -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"ok\n",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

struct Measured {
    ops: u64,
    errors: u64,
    cpu: f64,
    wall: f64,
}

async fn measure<F, Fut>(count: u64, rate: Option<f64>, mut op: F) -> Measured
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let mut pace = rate.map(|r| {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / r));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    let (cpu0, wall0) = (process_cpu_seconds(), Instant::now());
    let mut errors = 0;
    let mut first_error = None;
    for _ in 0..count {
        if let Some(tick) = pace.as_mut() {
            tick.tick().await;
        }
        if let Err(err) = op().await {
            errors += 1;
            first_error.get_or_insert_with(|| err.to_string());
        }
    }
    let measured = Measured {
        ops: count,
        errors,
        cpu: process_cpu_seconds() - cpu0,
        wall: wall0.elapsed().as_secs_f64(),
    };
    if let Some(err) = first_error {
        eprintln!("floor: {errors} of {count} operations failed, first: {err}");
    }
    measured
}

fn report(mode: &str, target: &str, m: &Measured) {
    let per_op = |x: f64| {
        if m.ops > 0 {
            x / m.ops as f64
        } else {
            f64::NAN
        }
    };
    let rate = |x: f64| if x > 0.0 { m.ops as f64 / x } else { f64::NAN };
    println!(
        "{{\"mode\":\"{mode}\",\"target\":\"{target}\",\"ops\":{},\"errors\":{},\
         \"cpu_s\":{:.6},\"wall_s\":{:.6},\"cpu_us_per_op\":{:.2},\"ops_per_s\":{:.0},\
         \"ops_per_cpu_s\":{:.0}}}",
        m.ops,
        m.errors,
        m.cpu,
        m.wall,
        per_op(m.cpu) * 1e6,
        rate(m.wall),
        rate(m.cpu),
    );
}

async fn run(options: Options) -> Result<u64, Error> {
    let (http, builtin) = match &options.url {
        Some(url) => (HttpTarget::parse(url)?, false),
        None => {
            let addr = builtin_server().await?;
            let url = format!("http://{addr}/");
            (HttpTarget::parse(&url)?, true)
        }
    };
    let http_label = if builtin {
        format!("builtin http://{}/", http.addr)
    } else {
        format!("http://{}{}", http.host, http.path)
    };
    let mut failed = 0;
    for mode in &options.modes {
        let measured = match mode.as_str() {
            "http-fresh" => {
                measure(options.count, options.rate, || async {
                    http_fresh(&http).await.map(drop)
                })
                .await
            }
            "http-keepalive" => {
                let (cpu0, wall0) = (process_cpu_seconds(), Instant::now());
                let errors = http_keepalive(&http, options.count).await?;
                Measured {
                    ops: options.count,
                    errors,
                    cpu: process_cpu_seconds() - cpu0,
                    wall: wall0.elapsed().as_secs_f64(),
                }
            }
            "tls-full" | "https-fresh" | "https-resumed" => {
                let addr = options
                    .tls
                    .ok_or(format!("mode {mode} needs --tls IP:PORT"))?;
                let ca = options
                    .ca
                    .as_deref()
                    .ok_or(format!("mode {mode} needs --ca FILE"))?;
                let config = tls_config(ca, mode == "https-resumed")?;
                let connector = TlsConnector::from(config);
                let name = ServerName::try_from(options.server_name.clone())?;
                let request = HttpTarget {
                    addr,
                    host: options.server_name.clone(),
                    path: "/".into(),
                };
                if mode != "tls-full" {
                    measure(options.count, options.rate, || async {
                        let stream = tls_handshake(&connector, addr, &name).await?;
                        get_over(stream, request.request(true)).await.map(drop)
                    })
                    .await
                } else {
                    measure(options.count, options.rate, || async {
                        use tokio::io::AsyncWriteExt;
                        let mut stream = tls_handshake(&connector, addr, &name).await?;
                        // close_notify, as a check closing its connection does
                        let _ = stream.shutdown().await;
                        Ok(())
                    })
                    .await
                }
            }
            other => return Err(format!("unknown mode {other}").into()),
        };
        let target = match mode.as_str() {
            "http-fresh" | "http-keepalive" => http_label.clone(),
            _ => format!(
                "{} ({})",
                options.tls.expect("checked"),
                options.server_name
            ),
        };
        report(mode, &target, &measured);
        if measured.errors == measured.ops {
            failed += 1;
        }
    }
    Ok(failed)
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("floor: {err}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    match runtime.block_on(run(options)) {
        Ok(0) => {}
        Ok(failed) => {
            eprintln!("floor: {failed} mode(s) had no successful operation");
            std::process::exit(1);
        }
        Err(err) => {
            eprintln!("floor: {err}");
            std::process::exit(1);
        }
    }
}
