//! The `tls` check kind: a TLS handshake with a server (or a PEM file read
//! from disk), the presented chain verified against the trust roots for
//! the host name, and the certificate dates, issuer, names and protocol
//! version checked against expectations. Dates are measured whatever the
//! verification says: an expired certificate still reports when it expired.

pub mod chain;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use futures::future::BoxFuture;
use futures::FutureExt;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ProtocolVersion};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use tokio::net::TcpStream;

use self::chain::{format_days, format_timestamp, seconds_until, Chain};
use super::cross_check::{sync_wait, CertificateOf};
use super::{verification_warnings, BuildContext, Needs, Probe, ProbeContext};
use crate::clients::tls_configs::{certificate_reason, TlsPolicy};
use crate::config::{HumanDuration, Problem};
use crate::result::{Measure, Measurement, Outcome, Reason};

pub const DEFAULT_PORT: u16 = 443;

/// The `tls` block of a check: either `host` (connect and handshake) or
/// `pem_file` (read a chain from disk).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Host name to connect to; also the name sent as SNI and the name the
    /// certificate must be valid for.
    pub host: Option<String>,
    /// Port to connect to (default 443).
    pub port: Option<u16>,
    /// Address to connect to instead of resolving `host` (an IP, or
    /// `IP:port`), e.g. one ingress address; `host` stays the SNI name.
    pub connect_to: Option<String>,
    /// PEM file holding a certificate chain, leaf first (e.g. a mounted
    /// `tls.crt`), inspected instead of a server's. Read at every run.
    pub pem_file: Option<PathBuf>,
    /// PEM file of extra CA certificates trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Do not require the chain to verify (it is still verified and
    /// measured). Logs a warning at start-up.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Every certificate of the chain must stay valid at least this long
    /// (e.g. `30d`); sooner is a `fail`/`tls_expiring` with the days left.
    pub min_valid_for: Option<HumanDuration>,
    /// Regex the leaf's issuer distinguished name must match (e.g.
    /// `Let's Encrypt`).
    pub issuer: Option<String>,
    /// Names the leaf's subject alternative names must include.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Lowest acceptable negotiated TLS version: `1.2` or `1.3`.
    pub min_version: Option<TlsVersion>,
    /// `namespace/name` of the cert-manager Certificate whose certificate
    /// this server should present: the leaf's not-after must equal the
    /// Certificate's `status.notAfter` (read from the Kubernetes watch
    /// cache), so a server still presenting the certificate before a
    /// renewal fails (`tls_stale`).
    pub cert_manager_certificate: Option<String>,
}

/// A TLS protocol version vouch speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl TlsVersion {
    /// The `version` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "TLS1.2",
            TlsVersion::V1_3 => "TLS1.3",
        }
    }

    fn from_rustls(version: ProtocolVersion) -> Option<Self> {
        match version {
            ProtocolVersion::TLSv1_2 => Some(TlsVersion::V1_2),
            ProtocolVersion::TLSv1_3 => Some(TlsVersion::V1_3),
            _ => None,
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::V1_2 => "TLS 1.2",
            TlsVersion::V1_3 => "TLS 1.3",
        })
    }
}

/// `1.2`, `"1.3"`, `TLS1.3`.
impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl Visitor<'_> for VersionVisitor {
            type Value = TlsVersion;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a TLS version: 1.2 or 1.3")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TlsVersion, E> {
                let bare = v.trim();
                let bare = bare
                    .strip_prefix("TLS")
                    .or_else(|| bare.strip_prefix("tls"))
                    .unwrap_or(bare)
                    .trim_start_matches(['v', ' ']);
                match bare {
                    "1.2" => Ok(TlsVersion::V1_2),
                    "1.3" => Ok(TlsVersion::V1_3),
                    _ => Err(E::custom(format!(
                        "invalid TLS version {v:?}: expected 1.2 or 1.3"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(VersionVisitor)
    }
}

/// Where the chain comes from.
#[derive(Debug)]
enum Target {
    Server {
        /// Name sent as SNI and verified.
        name: ServerName<'static>,
        host: String,
        port: u16,
        /// An address given by `connect_to`, else `host` is resolved.
        connect_to: Option<SocketAddr>,
    },
    File {
        path: PathBuf,
        /// The name to verify; None verifies the leaf for its own first name.
        name: Option<ServerName<'static>>,
    },
}

/// A compiled `tls` check.
#[derive(Debug)]
pub struct TlsProbe {
    target: Target,
    policy: TlsPolicy,
    min_valid_for: Option<HumanDuration>,
    issuer: Option<regex::Regex>,
    sans: Vec<String>,
    min_version: Option<TlsVersion>,
    issued: Option<CertificateOf>,
}

/// The leaf and the Certificate's notAfter match within this many seconds
/// (both are whole seconds; a margin costs nothing and absorbs rounding).
const NOT_AFTER_MARGIN_SECONDS: f64 = 1.0;

/// What to write instead of a host given in a common wrong form: with its
/// port (`api.example.com:443`) or as a URL (`https://api.example.com/`).
fn host_hint(host: &str) -> String {
    let host = host.trim();
    if let Some((_, rest)) = host.split_once("://") {
        let name = rest.split(['/', ':']).next().unwrap_or_default();
        return format!("; give the host name alone (host: {name}), without a scheme or path");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => {
            format!("; give the port on its own (host: {name}, port: {port})")
        }
        _ => String::new(),
    }
}

impl TlsProbe {
    /// A share of the check's timeout is given to the first sync of the
    /// Certificate watch.
    pub fn build(config: &TlsConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let issued = config.cert_manager_certificate.as_deref().and_then(|text| {
            CertificateOf::compile(
                text,
                "cert_manager_certificate",
                sync_wait(ctx.timeout),
                &mut problems,
            )
        });
        let name = config.host.as_ref().and_then(|host| {
            match ServerName::try_from(host.trim().to_string()) {
                Ok(name) => Some(name),
                Err(_) => {
                    problems.push(Problem::new(
                        "host",
                        format!("invalid host name {host:?}{}", host_hint(host)),
                    ));
                    None
                }
            }
        });
        let target = build_target(config, ctx, name, &mut problems);
        if config.insecure_skip_verify && config.ca_file.is_some() {
            problems.push(Problem::new(
                "insecure_skip_verify",
                "ca_file has no effect when verification is skipped; give one or the other",
            ));
        }
        let ca_file = config.ca_file.as_ref().map(|p| ctx.resolve_path(p));
        let policy = match ctx
            .clients
            .tls
            .policy(ca_file.as_deref(), config.insecure_skip_verify)
        {
            Ok(policy) => Some(policy),
            Err(err) => {
                problems.push(Problem::new("ca_file", err));
                None
            }
        };
        if config.min_valid_for.is_some_and(|d| d.0.is_zero()) {
            problems.push(Problem::new("min_valid_for", "must be longer than 0s"));
        }
        let issuer = config
            .issuer
            .as_ref()
            .and_then(|pattern| issuer_regex(pattern, &mut problems));
        let mut sans = Vec::new();
        for (i, san) in config.sans.iter().enumerate() {
            let san = san.trim().trim_end_matches('.').to_ascii_lowercase();
            if san.is_empty() {
                problems.push(Problem::new(format!("sans[{i}]"), "must not be empty"));
            }
            sans.push(san);
        }
        let (Some(target), Some(policy), true) = (target, policy, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(TlsProbe {
            target,
            policy,
            min_valid_for: config.min_valid_for,
            issuer,
            sans,
            min_version: config.min_version,
            issued,
        })
    }

    async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        let issued = match &self.issued {
            Some(certificate) => {
                ctx.progress.set("reading the watch cache");
                match certificate.resolve(ctx).await {
                    Ok(not_after) => Some((certificate, not_after)),
                    Err(unknown) => return unknown.into_error(),
                }
            }
            None => None,
        };
        match &self.target {
            Target::Server {
                name,
                host,
                port,
                connect_to,
            } => {
                self.handshake(ctx, name, host, *port, *connect_to, issued)
                    .await
            }
            Target::File { path, name } => self.read_file(ctx, path, name.as_ref(), issued).await,
        }
    }

    async fn handshake(
        &self,
        ctx: &ProbeContext,
        name: &ServerName<'static>,
        host: &str,
        port: u16,
        connect_to: Option<SocketAddr>,
        issued: Option<(&CertificateOf, f64)>,
    ) -> Outcome {
        let addrs: Vec<SocketAddr> = match connect_to {
            Some(addr) => vec![crate::connect_to::map_addr(addr)],
            None => {
                ctx.progress.set("resolving the host name");
                match crate::connect_to::lookup_host(host, port).await {
                    Ok(addrs) => addrs.collect(),
                    Err(err) => {
                        return Outcome::error(Reason::Dns, format!("cannot resolve {host}: {err}"))
                    }
                }
            }
        };
        ctx.progress.set("connecting");
        let mut last_error = None;
        let mut connected = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    connected = Some((stream, *addr));
                    break;
                }
                Err(err) => last_error = Some((*addr, err)),
            }
        }
        let (stream, addr) = match (connected, last_error) {
            (Some(found), _) => found,
            (None, Some((addr, err))) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Outcome::error(
                    Reason::ConnectionRefused,
                    format!("connection to {addr} refused"),
                )
            }
            (None, Some((addr, err))) => {
                return Outcome::error(Reason::Connect, format!("cannot connect to {addr}: {err}"))
            }
            (None, None) => {
                return Outcome::error(Reason::Dns, format!("cannot resolve {host}: no addresses"))
            }
        };
        let _ = stream.set_nodelay(true);
        ctx.progress.set("in the TLS handshake");
        let (config, recorder) = self.policy.connection(&[], false);
        let connector = tokio_rustls::TlsConnector::from(config);
        let started = Instant::now();
        let result = connector.connect(name.clone(), stream).await;
        let handshake = started.elapsed();
        let presented = recorder.take();
        let mut tls_stream = match result {
            Ok(tls_stream) => tls_stream,
            Err(err) => {
                // A chain seen before the handshake broke is still measured.
                let measurements = presented
                    .and_then(|p| Chain::parse(&p.chain).ok().map(|c| (c, p.verification)))
                    .map(|(chain, verification)| chain.measurements(Some(verification.is_ok())))
                    .unwrap_or_default();
                return Outcome::error(
                    crate::clients::tls_configs::handshake_reason(&err),
                    format!(
                        "TLS handshake with {host} ({addr}) failed: {}",
                        crate::clients::tls_configs::describe_handshake(&err)
                    ),
                )
                .with_measurements(measurements);
            }
        };
        let version = tls_stream
            .get_ref()
            .1
            .protocol_version()
            .and_then(TlsVersion::from_rustls);
        // Close politely; the answer does not matter.
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls_stream).await;
        drop(tls_stream);
        let Some(presented) = presented else {
            return Outcome::error(Reason::Tls, format!("{host} presented no certificate"));
        };
        let mut measurements = vec![Measurement::new(
            Measure::TlsHandshakeDurationSeconds,
            handshake.as_secs_f64(),
        )];
        if let Some(version) = version {
            measurements.push(Measurement::labelled(
                Measure::TlsVersionInfo,
                &[version.as_str()],
                1.0,
            ));
        }
        let chain = match Chain::parse(&presented.chain) {
            Ok(chain) => chain,
            Err(err) => {
                return Outcome::error(
                    Reason::Tls,
                    format!("{host} presented a certificate vouch cannot read: {err}"),
                )
                .with_measurements(measurements)
            }
        };
        self.judge(
            &chain,
            presented.verification,
            Some(host),
            version,
            measurements,
            issued,
        )
    }

    async fn read_file(
        &self,
        ctx: &ProbeContext,
        path: &std::path::Path,
        name: Option<&ServerName<'static>>,
        issued: Option<(&CertificateOf, f64)>,
    ) -> Outcome {
        ctx.progress
            .set(format!("reading the PEM file {}", path.display()));
        // Off the async workers and capped: the path may be a FIFO, a hung
        // mount or /dev/zero; the runner's timeout abandons a blocked read.
        let read = crate::file_read::read_async(path, crate::file_read::MAX_PEM_BYTES).await;
        let data = match read {
            Ok(data) => data,
            Err(err) => return Outcome::error(Reason::File, err.to_string()),
        };
        let ders: Vec<CertificateDer<'static>> = match rustls_pemfile::certs(&mut data.as_slice())
            .collect::<Result<_, _>>()
        {
            Ok(ders) => ders,
            Err(err) => {
                return Outcome::error(Reason::File, format!("{}: bad PEM: {err}", path.display()))
            }
        };
        if ders.is_empty() {
            return Outcome::error(
                Reason::File,
                format!("{} holds no PEM certificate", path.display()),
            );
        }
        let chain = match Chain::parse(&ders) {
            Ok(chain) => chain,
            Err(err) => return Outcome::error(Reason::File, format!("{}: {err}", path.display())),
        };
        // Without a host, the leaf is verified for its own first name: the
        // chain and the dates are what matter then.
        let own_name = chain
            .leaf()
            .sans
            .first()
            .and_then(|n| ServerName::try_from(n.clone()).ok());
        let host = name.map(|n| n.to_str().into_owned());
        let verification = match name.cloned().or(own_name) {
            Some(name) => self.policy.verify(&ders, &name),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            )),
        };
        self.judge(
            &chain,
            verification,
            host.as_deref(),
            None,
            Vec::new(),
            issued,
        )
    }

    /// The verdict on a chain: verification (unless skipped), then the
    /// version, expiry, issuer and names; every broken expectation is
    /// named, the first one's reason is the run's.
    fn judge(
        &self,
        chain: &Chain,
        verification: Result<(), rustls::Error>,
        host: Option<&str>,
        version: Option<TlsVersion>,
        mut measurements: Vec<Measurement>,
        issued: Option<(&CertificateOf, f64)>,
    ) -> Outcome {
        let now = SystemTime::now();
        measurements.extend(chain.measurements(Some(verification.is_ok())));
        let leaf = chain.leaf();
        let mut broken: Vec<(Reason, String)> = Vec::new();
        if let (Err(err), true) = (&verification, self.policy.required()) {
            broken.push(verification_problem(chain, err, host, now));
        }
        if let (Some(min), Some(version)) = (self.min_version, version) {
            if version < min {
                broken.push((
                    Reason::TlsVersion,
                    format!("negotiated {version}, the minimum is {min}"),
                ));
            }
        }
        if let Some(min) = self.min_valid_for {
            let earliest = chain.earliest_expiry();
            let left = seconds_until(chain.certs[earliest].not_after, now);
            if left < min.0.as_secs_f64() {
                let when = format_timestamp(chain.certs[earliest].not_after);
                let what = chain.describe(earliest);
                let text = if left >= 0.0 {
                    format!(
                        "{what} expires in {} (at {when}), less than min_valid_for {min}",
                        format_days(left)
                    )
                } else {
                    format!(
                        "{what} expired {} ago (at {when}), min_valid_for is {min}",
                        format_days(left)
                    )
                };
                broken.push((Reason::TlsExpiring, text));
            }
        }
        if let Some((certificate, not_after)) = issued {
            if let Some(problem) = stale(leaf.not_after, certificate, not_after) {
                broken.push((Reason::TlsStale, problem));
            }
        }
        if let Some(issuer) = &self.issuer {
            if !issuer.is_match(&leaf.issuer) {
                broken.push((
                    Reason::TlsIssuer,
                    format!(
                        "issuer {:?} does not match {:?}",
                        leaf.issuer,
                        issuer.as_str()
                    ),
                ));
            }
        }
        let missing: Vec<&str> = self
            .sans
            .iter()
            .filter(|want| !leaf.sans.iter().any(|have| have == *want))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            broken.push((
                Reason::TlsSan,
                format!(
                    "subject alternative names lack {} (the certificate names {})",
                    missing.join(", "),
                    name_list(&leaf.sans)
                ),
            ));
        }
        let outcome = Outcome::from_failures(broken.iter().map(|(r, m)| (*r, m.as_str())))
            .unwrap_or_else(|| {
                let left = seconds_until(leaf.not_after, now);
                let mut text = format!(
                    "certificate valid until {} ({} left)",
                    format_timestamp(leaf.not_after),
                    format_days(left)
                );
                if let Some(version) = version {
                    text.push_str(&format!(", {version}"));
                }
                if verification.is_err() {
                    text.push_str(", not verified (insecure_skip_verify)");
                }
                Outcome::pass(text)
            });
        outcome.with_measurements(measurements)
    }
}

/// Where the chain comes from: a server to connect to, or a PEM file.
fn build_target(
    config: &TlsConfig,
    ctx: &BuildContext,
    name: Option<ServerName<'static>>,
    problems: &mut Vec<Problem>,
) -> Option<Target> {
    match (&config.pem_file, &config.host) {
        (None, None) => {
            problems.push(Problem::new(
                "",
                "needs host (to connect to) or pem_file (to read a chain from)",
            ));
            None
        }
        (Some(path), _) => {
            for (key, given) in [
                ("port", config.port.is_some()),
                ("connect_to", config.connect_to.is_some()),
                ("min_version", config.min_version.is_some()),
            ] {
                if given {
                    problems.push(Problem::new(
                        key,
                        "has no effect with pem_file (no connection is made)",
                    ));
                }
            }
            Some(Target::File {
                path: ctx.resolve_path(path),
                name,
            })
        }
        (None, Some(host)) => {
            let port = config.port.unwrap_or(DEFAULT_PORT);
            if port == 0 {
                problems.push(Problem::new("port", "must be between 1 and 65535"));
            }
            let connect_to = config
                .connect_to
                .as_ref()
                .and_then(|text| connect_to(text, port, problems));
            name.map(|name| Target::Server {
                name,
                host: host.trim().to_string(),
                port,
                connect_to,
            })
        }
    }
}

/// `connect_to`: an IP address and port, or an IP address with `port`.
fn connect_to(text: &str, port: u16, problems: &mut Vec<Problem>) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        Some(addr)
    } else if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        Some(SocketAddr::new(ip, port))
    } else {
        problems.push(Problem::new(
            "connect_to",
            format!("invalid address {text:?}: expected an IP address or IP:port"),
        ));
        None
    }
}

fn issuer_regex(pattern: &str, problems: &mut Vec<Problem>) -> Option<regex::Regex> {
    match regex::Regex::new(pattern) {
        Ok(regex) => Some(regex),
        Err(err) => {
            let text = err.to_string();
            let last = text.lines().last().unwrap_or_default();
            let detail = last.strip_prefix("error: ").unwrap_or(last);
            problems.push(Problem::new("issuer", format!("invalid regex: {detail}")));
            None
        }
    }
}

/// Why the presented leaf is not the certificate cert-manager issued last,
/// told apart by their not-after times.
fn stale(served: i64, certificate: &CertificateOf, issued: f64) -> Option<String> {
    let gap = served as f64 - issued;
    if gap.abs() <= NOT_AFTER_MARGIN_SECONDS {
        return None;
    }
    let issued_text = format_timestamp(issued.round() as i64);
    let served_text = format_timestamp(served);
    Some(if gap < 0.0 {
        format!(
            "presents a certificate valid until {served_text}, older than the one cert-manager Certificate {} was renewed to (valid until {issued_text}): the renewed certificate is not served yet",
            certificate.certificate()
        )
    } else {
        format!(
            "presents a certificate valid until {served_text}, not the one cert-manager Certificate {} reports (valid until {issued_text})",
            certificate.certificate()
        )
    })
}

fn name_list(names: &[String]) -> String {
    if names.is_empty() {
        "no names".to_string()
    } else {
        names.join(", ")
    }
}

/// The reason and message of a failed verification, with the dates and
/// names that explain it.
fn verification_problem(
    chain: &Chain,
    err: &rustls::Error,
    host: Option<&str>,
    now: SystemTime,
) -> (Reason, String) {
    let reason = certificate_reason(err);
    let leaf = chain.leaf();
    let text = match reason {
        Reason::TlsExpired => {
            // The certificate that expired: the earliest one.
            let earliest = chain.earliest_expiry();
            let not_after = chain.certs[earliest].not_after;
            format!(
                "{} expired at {} ({} ago)",
                chain.describe(earliest),
                format_timestamp(not_after),
                format_days(seconds_until(not_after, now))
            )
        }
        Reason::TlsNotYetValid => {
            let latest = (0..chain.certs.len())
                .max_by_key(|i| chain.certs[*i].not_before)
                .unwrap_or(0);
            let not_before = chain.certs[latest].not_before;
            format!(
                "{} is not valid before {} (in {})",
                chain.describe(latest),
                format_timestamp(not_before),
                format_days(seconds_until(not_before, now))
            )
        }
        Reason::TlsUnknownIssuer if chain.certs.len() == 1 && leaf.subject == leaf.issuer => {
            format!(
                "the certificate is self-signed ({}) and not trusted",
                leaf.subject
            )
        }
        Reason::TlsUnknownIssuer => format!(
            "the chain does not lead to a trusted root (issuer {:?})",
            chain.certs.last().map(|c| c.issuer.as_str()).unwrap_or("")
        ),
        Reason::TlsHostname => format!(
            "the certificate is not valid for {} (it names {})",
            host.unwrap_or("the host"),
            name_list(&leaf.sans)
        ),
        _ => crate::clients::tls_configs::describe(err),
    };
    (reason, text)
}

impl Probe for TlsProbe {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        self.execute(ctx).boxed()
    }

    fn needs(&self) -> Needs {
        Needs {
            watches: self.issued.iter().map(|i| i.watch().clone()).collect(),
            warnings: verification_warnings(&self.policy),
        }
    }
}
