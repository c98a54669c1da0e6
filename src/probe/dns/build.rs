//! Building a `dns` check from its config: every key checked, each
//! problem named at its key, the resolvers made once.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Name, TokioResolver};

use super::answer::{normalise, parse_server, rcode_text};
use super::expected::Expected;
use super::{DnsConfig, DnsExpectConfig, DnsProbe, Upstream, DEFAULT_QUERY_TIMEOUT, RECORD_TYPES};
use crate::config::{format_duration, Problem};
use crate::probe::cross_check::{sync_wait, IngressAddressesOf};
use crate::probe::BuildContext;

impl DnsProbe {
    /// A server's two tries must fit in the check's timeout, so a silent
    /// server is named by this probe rather than cut off by the runner.
    pub fn build(config: &DnsConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
        let check_timeout = ctx.timeout;
        let mut problems = Vec::new();
        let name = parse_name(&config.name, &mut problems);
        let record_type = parse_record_type(config.record_type.as_deref(), &mut problems);
        let protocol = parse_protocol(config, &mut problems);
        let query_timeout = query_timeout(config, check_timeout, &mut problems);
        let mut addrs = Vec::new();
        for (i, text) in config.servers.iter().enumerate() {
            match parse_server(text) {
                Some(addr) => addrs.push(addr),
                None => problems.push(Problem::new(
                    format!("servers[{i}]"),
                    format!("invalid server {text:?}: expected an IP address or IP:port"),
                )),
            }
        }
        if config.propagation && config.servers.len() < 2 {
            problems.push(Problem::new(
                "propagation",
                "needs at least two servers to compare",
            ));
        }
        let upstreams = upstreams(&addrs, config.propagation, protocol, query_timeout);
        let expect = &config.expect;
        let rcode = parse_rcode(expect.rcode.as_deref(), &mut problems);
        let (answers, contains) = expectations(expect, record_type, check_timeout, &mut problems);
        if rcode != ResponseCode::NoError
            && (answers.as_ref().is_some_and(|a| !a.is_empty_literal())
                || contains.is_some()
                || expect.min_answers.is_some_and(|n| n > 0))
        {
            problems.push(Problem::new(
                "expect.rcode",
                format!(
                    "a {} answer has no records; answers, contains and min_answers cannot hold",
                    rcode_text(rcode)
                ),
            ));
        }
        let (Some(name), true) = (name, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(DnsProbe {
            name,
            record_type,
            upstreams,
            propagation: config.propagation,
            rcode,
            answers,
            contains,
            min_answers: expect.min_answers,
            max_latency: expect.max_latency.map(|d| d.0),
        })
    }
}

/// The name to look up, made absolute: no search list is appended.
fn parse_name(text: &str, problems: &mut Vec<Problem>) -> Option<Name> {
    match Name::from_utf8(text.trim()) {
        Ok(mut name) if !text.trim().is_empty() => {
            name.set_fqdn(true);
            Some(name)
        }
        Ok(_) => {
            problems.push(Problem::new("name", "must not be empty"));
            None
        }
        Err(err) => {
            problems.push(Problem::new(
                "name",
                format!("invalid name {text:?}: {err}"),
            ));
            None
        }
    }
}

fn parse_record_type(text: Option<&str>, problems: &mut Vec<Problem>) -> RecordType {
    let Some(text) = text.map(str::trim) else {
        return RecordType::A;
    };
    match text.to_ascii_uppercase().as_str() {
        "A" => RecordType::A,
        "AAAA" => RecordType::AAAA,
        "CNAME" => RecordType::CNAME,
        "TXT" => RecordType::TXT,
        "MX" => RecordType::MX,
        "NS" => RecordType::NS,
        _ => {
            problems.push(Problem::new(
                "type",
                format!("unsupported record type {text:?}: expected {RECORD_TYPES}"),
            ));
            RecordType::A
        }
    }
}

fn parse_protocol(config: &DnsConfig, problems: &mut Vec<Problem>) -> Protocol {
    let protocol = match config.protocol.as_deref().map(str::trim) {
        None | Some("udp") => Protocol::Udp,
        Some("tcp") => Protocol::Tcp,
        Some(other) => {
            problems.push(Problem::new(
                "protocol",
                format!("invalid protocol {other:?}: expected udp or tcp"),
            ));
            Protocol::Udp
        }
    };
    if config.protocol.is_some() && config.servers.is_empty() {
        problems.push(Problem::new(
            "protocol",
            "needs servers (the system resolver chooses its own)",
        ));
    }
    protocol
}

/// `query_timeout`, or the default: asked twice, it must fit in the
/// check's timeout.
fn query_timeout(
    config: &DnsConfig,
    check_timeout: Duration,
    problems: &mut Vec<Problem>,
) -> Duration {
    let Some(given) = config.query_timeout else {
        return DEFAULT_QUERY_TIMEOUT.min(check_timeout / 3);
    };
    if given.0.is_zero() {
        problems.push(Problem::new("query_timeout", "must be longer than 0s"));
    } else if given.0 * 2 >= check_timeout {
        problems.push(Problem::new(
            "query_timeout",
            format!(
                "{given}, asked twice, does not fit in the check's timeout {}",
                format_duration(check_timeout)
            ),
        ));
    }
    given.0
}

/// The resolvers to ask: the system's without servers; one per server
/// in propagation mode (or for a single server); else one for them all.
fn upstreams(
    addrs: &[SocketAddr],
    propagation: bool,
    protocol: Protocol,
    query_timeout: Duration,
) -> Vec<Upstream> {
    let options = {
        let mut options = ResolverOpts::default();
        options.timeout = query_timeout;
        options.attempts = 1;
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        options.ndots = 0;
        options
    };
    let resolver = |servers: &[SocketAddr]| -> TokioResolver {
        let mut group = Vec::new();
        for addr in servers {
            let addr = &crate::connect_to::map_addr(*addr);
            group.push(NameServerConfig::new(*addr, protocol));
            if protocol == Protocol::Udp {
                // Truncated UDP answers are asked again over TCP.
                group.push(NameServerConfig::new(*addr, Protocol::Tcp));
            }
        }
        let config = ResolverConfig::from_parts(None, Vec::new(), group);
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(options.clone())
            .build()
    };
    if addrs.is_empty() {
        vec![Upstream {
            label: "system".into(),
            resolver: None,
        }]
    } else if propagation || addrs.len() == 1 {
        addrs
            .iter()
            .map(|addr| Upstream {
                label: addr.to_string(),
                resolver: Some(resolver(std::slice::from_ref(addr))),
            })
            .collect()
    } else {
        vec![Upstream {
            label: "listed".into(),
            resolver: Some(resolver(addrs)),
        }]
    }
}

fn parse_rcode(text: Option<&str>, problems: &mut Vec<Problem>) -> ResponseCode {
    let Some(text) = text.map(str::trim) else {
        return ResponseCode::NoError;
    };
    match text.to_ascii_uppercase().as_str() {
        "NOERROR" => ResponseCode::NoError,
        "NXDOMAIN" => ResponseCode::NXDomain,
        "SERVFAIL" => ResponseCode::ServFail,
        "REFUSED" => ResponseCode::Refused,
        _ => {
            problems.push(Problem::new(
                "expect.rcode",
                format!(
                    "invalid response code {text:?}: expected NOERROR, NXDOMAIN, SERVFAIL or REFUSED"
                ),
            ));
            ResponseCode::NoError
        }
    }
}

/// The expected `answers` (written, or an Ingress's addresses) and
/// `contains`.
fn expectations(
    expect: &DnsExpectConfig,
    record_type: RecordType,
    check_timeout: Duration,
    problems: &mut Vec<Problem>,
) -> (Option<Expected>, Option<Expected>) {
    let mut literal = |key: &str, values: &[String]| -> Expected {
        let mut set = BTreeSet::new();
        for (i, value) in values.iter().enumerate() {
            match normalise(record_type, value) {
                Ok(value) => {
                    set.insert(value);
                }
                Err(message) => problems.push(Problem::new(format!("expect.{key}[{i}]"), message)),
            }
        }
        Expected::Literal(set)
    };
    let mut answers = expect.answers.as_deref().map(|v| literal("answers", v));
    let contains = (!expect.contains.is_empty()).then(|| literal("contains", &expect.contains));
    if let Some(text) = &expect.answers_from_ingress {
        let key = "expect.answers_from_ingress";
        if answers.is_some() {
            problems.push(Problem::new(
                key,
                "give answers or answers_from_ingress, not both",
            ));
        } else if !matches!(
            record_type,
            RecordType::A | RecordType::AAAA | RecordType::CNAME
        ) {
            problems.push(Problem::new(
                key,
                format!("an Ingress reports addresses: only with type A, AAAA or CNAME, not {record_type}"),
            ));
        } else {
            answers = IngressAddressesOf::compile(text, key, sync_wait(check_timeout), problems)
                .map(|ingress| Expected::Ingress(ingress, record_type));
        }
    }
    (answers, contains)
}
