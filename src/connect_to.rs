//! Address and file mapping for `vouch check` and `vouch serve`, so a
//! config written for one platform runs unchanged against another (a test
//! twin, a port-forward, a staging copy):
//!
//! - `--connect-to HOST:PORT:ADDRESS:PORT`, as curl's option of that name:
//!   every connection vouch would make to `HOST:PORT` (a name or an IP
//!   literal) goes to `ADDRESS:PORT` instead. Names keep their meaning
//!   everywhere else: the TLS server name, the `Host` header and the
//!   certificate's expected names are still `HOST`. It applies to http,
//!   tls, registry and Key Vault requests, to the backup kind's object
//!   stores (rules for port 443 or 80, the stores' default ports), and to
//!   the name servers dns checks ask (the listed ones and the system
//!   resolver's).
//! - `--map-path FROM=TO`: a file path the config names under the
//!   directory `FROM` is read under `TO` instead (credential files,
//!   mounted certificates). Addresses inside credential files (PostgreSQL
//!   and Redis URLs) are not rewritten: map the file to one naming the
//!   address to use.
//!
//! The mapping is set once at start-up, before any check runs, and read
//! by the places that open connections or read files.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::ResolveError;
use hyper::Uri;
use tower::Service;

/// One `--connect-to` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectTo {
    host: String,
    port: u16,
    to_host: String,
    to_port: u16,
}

/// One `--map-path` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapPath {
    from: PathBuf,
    to: PathBuf,
}

#[derive(Debug, Default)]
struct Mapping {
    connect: Vec<ConnectTo>,
    paths: Vec<MapPath>,
}

static MAPPING: OnceLock<Mapping> = OnceLock::new();

/// Sets the mapping for the life of the process. A second call is
/// ignored (the first wins), so tests calling the CLI twice stay sane.
pub fn install(connect: Vec<ConnectTo>, paths: Vec<MapPath>) {
    let _ = MAPPING.set(Mapping { connect, paths });
}

fn mapping() -> Option<&'static Mapping> {
    MAPPING.get()
}

/// A host as compared: lower case, IPv6 brackets removed.
fn host_key(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Splits `HOST:PORT` where HOST may be a bracketed IPv6 literal.
fn split_host_port<'a>(text: &'a str, rest: &mut &'a str) -> Result<(String, u16), String> {
    let (host, after) = if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {text:?}"))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| format!("expected :PORT after [{host}]"))?;
        (host, after)
    } else {
        text.split_once(':')
            .ok_or_else(|| format!("expected HOST:PORT in {text:?}"))?
    };
    let (port, tail) = after.split_once(':').unwrap_or((after, ""));
    *rest = tail;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port {port:?} (expected 1-65535)"))?;
    if host.is_empty() || port == 0 {
        return Err("host and port must both be given".into());
    }
    Ok((host_key(host), port))
}

impl ConnectTo {
    /// Parses `HOST:PORT:ADDRESS:PORT` (IPv6 literals in brackets).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rest = "";
        let (host, port) = split_host_port(text, &mut rest)
            .map_err(|err| format!("--connect-to {text:?}: {err}"))?;
        let mut tail = "";
        let (to_host, to_port) = split_host_port(rest, &mut tail)
            .map_err(|err| format!("--connect-to {text:?}: {err}"))?;
        if !tail.is_empty() {
            return Err(format!(
                "--connect-to {text:?}: expected HOST:PORT:ADDRESS:PORT, got more after the last port"
            ));
        }
        Ok(ConnectTo {
            host,
            port,
            to_host,
            to_port,
        })
    }
}

impl MapPath {
    /// Parses `FROM=TO`, two directories.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some((from, to)) if !from.is_empty() && !to.is_empty() => Ok(MapPath {
                from: PathBuf::from(from),
                to: PathBuf::from(to),
            }),
            _ => Err(format!("--map-path {text:?}: expected FROM=TO")),
        }
    }
}

impl Mapping {
    fn target(&self, host: &str, port: u16) -> Option<(String, u16)> {
        let key = host_key(host);
        self.connect
            .iter()
            .find(|rule| rule.port == port && rule.host == key)
            .map(|rule| (rule.to_host.clone(), rule.to_port))
    }

    fn map_path(&self, path: PathBuf) -> PathBuf {
        let best = self
            .paths
            .iter()
            .filter_map(|rule| Some((rule, path.strip_prefix(&rule.from).ok()?)))
            .max_by_key(|(rule, _)| rule.from.as_os_str().len());
        match best {
            Some((rule, rest)) => rule.to.join(rest),
            None => path,
        }
    }

    fn name_overrides(&self, ports: &[u16]) -> Vec<(String, Vec<SocketAddr>)> {
        use std::net::ToSocketAddrs;
        let mut overrides: Vec<(String, Vec<SocketAddr>)> = Vec::new();
        for port in ports {
            for rule in self.connect.iter().filter(|r| r.port == *port) {
                if overrides.iter().any(|(host, _)| *host == rule.host) {
                    continue;
                }
                let addrs: Vec<SocketAddr> = (rule.to_host.as_str(), rule.to_port)
                    .to_socket_addrs()
                    .map(Iterator::collect)
                    .unwrap_or_default();
                if !addrs.is_empty() {
                    overrides.push((rule.host.clone(), addrs));
                }
            }
        }
        overrides
    }

    /// `uri` with its authority replaced by the mapped address, if a rule
    /// names its host and (explicit or default) port.
    fn map_uri(&self, uri: &Uri) -> Option<Uri> {
        let host = uri.host()?;
        let default = if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let (to_host, to_port) = self.target(host, uri.port_u16().unwrap_or(default))?;
        let to_host = if to_host.contains(':') {
            format!("[{to_host}]")
        } else {
            to_host
        };
        let mut parts = uri.clone().into_parts();
        parts.authority = Some(format!("{to_host}:{to_port}").parse().ok()?);
        Uri::from_parts(parts).ok()
    }
}

/// Where a connection to `host:port` goes: the mapped address, if a rule
/// names it.
pub fn target(host: &str, port: u16) -> Option<(String, u16)> {
    mapping()?.target(host, port)
}

/// The rules for `ports` as name overrides, for clients that take an
/// address per host name (reqwest's `resolve_to_addrs`) and connect to
/// a URL's default port: host → the rule's addresses (its target resolved
/// now, with its port). A host with rules for several of `ports` takes
/// the rule of the first port listed.
pub fn name_overrides(ports: &[u16]) -> Vec<(String, Vec<SocketAddr>)> {
    mapping().map_or_else(Vec::new, |m| m.name_overrides(ports))
}

/// `tokio::net::lookup_host` through the mapping.
pub async fn lookup_host(host: &str, port: u16) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    let (host, port) = target(host, port).unwrap_or_else(|| (host_key(host), port));
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .collect();
    Ok(addrs.into_iter())
}

/// An address vouch was given as an IP literal (a name server, a `tls`
/// check's `connect_to`), through the mapping. A rule whose target is not
/// an IP literal does not apply here.
pub fn map_addr(addr: SocketAddr) -> SocketAddr {
    match target(&addr.ip().to_string(), addr.port()) {
        Some((host, port)) => match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => addr,
        },
        None => addr,
    }
}

/// A path the config names, through `--map-path` (the longest matching
/// `FROM` wins).
pub fn map_path(path: PathBuf) -> PathBuf {
    match mapping() {
        Some(mapping) => mapping.map_path(path),
        None => path,
    }
}

/// The system resolver's builder with its name servers mapped.
pub fn system_resolver_builder(
) -> Result<hickory_resolver::ResolverBuilder<TokioConnectionProvider>, ResolveError> {
    let builder = hickory_resolver::TokioResolver::builder_tokio()?;
    if mapping().is_none_or(|m| m.connect.is_empty()) {
        return Ok(builder);
    }
    let (config, options) = hickory_resolver::system_conf::read_system_conf()?;
    let mut servers = Vec::new();
    for server in config.name_servers() {
        let mut server = server.clone();
        server.socket_addr = map_addr(server.socket_addr);
        servers.push(server);
    }
    let config = hickory_resolver::config::ResolverConfig::from_parts(
        config.domain().cloned(),
        config.search().to_vec(),
        servers,
    );
    Ok(hickory_resolver::TokioResolver::builder_with_config(
        config,
        TokioConnectionProvider::default(),
    )
    .with_options(options))
}

/// A connector (for hyper's client) that sends each connection where the
/// mapping says; the `Uri` the TLS layer above it sees, and so the server
/// name, is unchanged.
#[derive(Clone, Debug)]
pub struct Mapped<C>(pub C);

impl<C> Service<Uri> for Mapped<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let uri = mapping().and_then(|m| m.map_uri(&uri)).unwrap_or(uri);
        Box::pin(self.0.call(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_ips_and_bracketed_ipv6() {
        let rule = ConnectTo::parse("API.broxiva.com:443:127.0.0.1:8443").unwrap();
        assert_eq!(
            rule,
            ConnectTo {
                host: "api.broxiva.com".into(),
                port: 443,
                to_host: "127.0.0.1".into(),
                to_port: 8443
            }
        );
        let rule = ConnectTo::parse("[2001:db8::1]:53:[::1]:5353").unwrap();
        assert_eq!(rule.host, "2001:db8::1");
        assert_eq!(rule.to_host, "::1");
        assert_eq!(rule.to_port, 5353);
    }

    #[test]
    fn rejects_what_is_not_four_parts() {
        for bad in [
            "api.broxiva.com:443",
            "api.broxiva.com:443:127.0.0.1",
            "api.broxiva.com:x:127.0.0.1:1",
            ":443:127.0.0.1:1",
            "a:443:b:1:extra",
            "a:0:b:1",
        ] {
            let err = ConnectTo::parse(bad).unwrap_err();
            assert!(err.starts_with("--connect-to"), "{bad}: {err}");
        }
        assert!(MapPath::parse("/etc/vouch").is_err());
        assert!(MapPath::parse("=/x").is_err());
    }

    fn mapping() -> Mapping {
        Mapping {
            connect: vec![
                ConnectTo::parse("broxiva.com:443:127.0.0.1:9443").unwrap(),
                ConnectTo::parse("prom.monitoring.svc:9090:127.0.0.1:19090").unwrap(),
                ConnectTo::parse("1.1.1.1:53:[::1]:5353").unwrap(),
            ],
            paths: vec![
                MapPath::parse("/etc/vouch=/tmp/twin").unwrap(),
                MapPath::parse("/etc/vouch/tls=/tmp/certs").unwrap(),
            ],
        }
    }

    #[test]
    fn name_overrides_take_the_default_ports_rules_first_port_first() {
        let mut m = mapping();
        m.connect
            .push(ConnectTo::parse("broxiva.com:80:127.0.0.1:8080").unwrap());
        m.connect
            .push(ConnectTo::parse("store.example:80:127.0.0.2:8081").unwrap());
        let overrides = m.name_overrides(&[443, 80]);
        assert_eq!(
            overrides,
            vec![
                (
                    "broxiva.com".to_string(),
                    vec!["127.0.0.1:9443".parse().unwrap()]
                ),
                (
                    "store.example".to_string(),
                    vec!["127.0.0.2:8081".parse().unwrap()]
                ),
            ]
        );
    }

    #[test]
    fn maps_only_the_named_host_and_port() {
        let m = mapping();
        assert_eq!(
            m.target("Broxiva.com.", 443),
            Some(("127.0.0.1".into(), 9443))
        );
        assert_eq!(m.target("broxiva.com", 80), None);
        assert_eq!(m.target("www.broxiva.com", 443), None);
        assert_eq!(m.target("1.1.1.1", 53), Some(("::1".into(), 5353)));
    }

    #[test]
    fn maps_uris_keeping_scheme_path_and_query() {
        let m = mapping();
        let uri: Uri = "https://broxiva.com/_next/static/x.js?v=1".parse().unwrap();
        assert_eq!(
            m.map_uri(&uri).unwrap().to_string(),
            "https://127.0.0.1:9443/_next/static/x.js?v=1"
        );
        let uri: Uri = "http://prom.monitoring.svc:9090/api/v1/query"
            .parse()
            .unwrap();
        assert_eq!(
            m.map_uri(&uri).unwrap().to_string(),
            "http://127.0.0.1:19090/api/v1/query"
        );
        let unmapped: Uri = "http://broxiva.com/".parse().unwrap();
        assert!(m.map_uri(&unmapped).is_none());
    }

    #[test]
    fn maps_paths_by_the_longest_prefix() {
        let m = mapping();
        assert_eq!(
            m.map_path(PathBuf::from("/etc/vouch/secrets/postgres-url")),
            PathBuf::from("/tmp/twin/secrets/postgres-url")
        );
        assert_eq!(
            m.map_path(PathBuf::from("/etc/vouch/tls/api/tls.crt")),
            PathBuf::from("/tmp/certs/api/tls.crt")
        );
        assert_eq!(
            m.map_path(PathBuf::from("/etc/vouchers/x")),
            PathBuf::from("/etc/vouchers/x")
        );
    }
}
