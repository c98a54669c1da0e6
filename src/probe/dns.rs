//! The `dns` check kind: one lookup of a name for a record type, through
//! the system resolver or listed name servers (UDP or TCP), its response
//! code, answers and latency checked against expectations. In propagation
//! mode every listed server is asked on its own and all must agree.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{Name, ResolveError, TokioResolver};
use serde::Deserialize;

use super::cross_check::{sync_wait, IngressAddressesOf, Unknown};
use super::{BuildContext, Needs, Probe, ProbeContext};
use crate::config::{format_duration, HumanDuration, Problem};
use crate::result::{Failure, Measure, Measurement, Outcome, Reason};

/// How long one server may take to answer one query unless told otherwise.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The `dns` block of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Name to look up (`api.example.com`).
    pub name: String,
    /// Record type: A (default), AAAA, CNAME, TXT, MX or NS.
    #[serde(rename = "type")]
    pub record_type: Option<String>,
    /// Name servers to ask, `IP` or `IP:port` (port 53 by default). Without
    /// any, the system resolver (/etc/resolv.conf, /etc/hosts) answers.
    #[serde(default)]
    pub servers: Vec<String>,
    /// `udp` (default; TCP when an answer is truncated) or `tcp`. Only with
    /// `servers`.
    pub protocol: Option<String>,
    /// Ask every listed server on its own and require the same answer from
    /// all (and the expected answers, if given). Needs two servers or more.
    #[serde(default)]
    pub propagation: bool,
    /// How long one server may take to answer one query (default 2s, at
    /// most a third of the check's timeout). Each server is asked twice, so
    /// twice this must fit in the check's timeout. A server that does not
    /// answer is an `error`/`timeout` naming it.
    pub query_timeout: Option<HumanDuration>,
    /// What the answer must look like.
    #[serde(default)]
    pub expect: DnsExpectConfig,
}

/// `dns.expect`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsExpectConfig {
    /// The answers must be exactly these, in any order (`10.1.2.3`;
    /// `mail.example.com` for CNAME/NS; `10 mail.example.com` for MX; the
    /// text for TXT).
    pub answers: Option<Vec<String>>,
    /// `namespace/name` of an Ingress: the answers must be exactly the
    /// load-balancer addresses it reports, read from the watch cache at
    /// every run — its IPv4 addresses for type A, IPv6 for AAAA, host
    /// names for CNAME. Instead of `answers`.
    pub answers_from_ingress: Option<String>,
    /// The answers must include these.
    #[serde(default)]
    pub contains: Vec<String>,
    /// At least this many answers.
    pub min_answers: Option<usize>,
    /// Expected response code: NOERROR (default), NXDOMAIN (a name that
    /// must not exist), SERVFAIL or REFUSED.
    pub rcode: Option<String>,
    /// Longest a lookup may take.
    pub max_latency: Option<HumanDuration>,
}

/// Where an expected set of answers comes from: the config, or the
/// cluster (resolved at every run, so it follows the Ingress).
#[derive(Debug)]
pub enum Expected {
    /// Answers written in the config, normalised.
    Literal(BTreeSet<String>),
    /// The addresses an Ingress reports, of the record type asked.
    Ingress(IngressAddressesOf, RecordType),
}

impl Expected {
    /// The set this run compares against.
    pub async fn resolve(&self, ctx: &ProbeContext) -> Result<BTreeSet<String>, Unknown> {
        match self {
            Expected::Literal(set) => Ok(set.clone()),
            Expected::Ingress(ingress, record_type) => {
                let addresses = ingress.resolve(ctx).await?;
                ingress_answers(*record_type, &addresses).map_err(|message| Unknown {
                    reason: Reason::IngressAddress,
                    message: format!("Ingress {}: {message}", ingress.ingress()),
                })
            }
        }
    }

    /// Where the expected answers come from, for messages.
    fn source(&self) -> String {
        match self {
            Expected::Literal(_) => String::new(),
            Expected::Ingress(ingress, _) => {
                format!(" (reported by Ingress {})", ingress.ingress())
            }
        }
    }

    fn is_empty_literal(&self) -> bool {
        matches!(self, Expected::Literal(set) if set.is_empty())
    }
}

/// The Ingress addresses of `record_type`, normalised as answers are: a
/// load balancer reports IPs or a host name, and a host name is what a
/// CNAME to it answers. None of the asked kind is an error naming what
/// the Ingress has, never an empty set a lookup could match.
fn ingress_answers(
    record_type: RecordType,
    addresses: &[String],
) -> Result<BTreeSet<String>, String> {
    let ip = |a: &String| a.parse::<IpAddr>().ok();
    let set: BTreeSet<String> = addresses
        .iter()
        .filter_map(|a| match (record_type, ip(a)) {
            (RecordType::A, Some(IpAddr::V4(v4))) => Some(v4.to_string()),
            (RecordType::AAAA, Some(IpAddr::V6(v6))) => Some(v6.to_string()),
            (RecordType::CNAME, None) => Some(a.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    if !set.is_empty() {
        return Ok(set);
    }
    let wanted = match record_type {
        RecordType::A => "no IPv4 address",
        RecordType::AAAA => "no IPv6 address",
        _ => "no host name",
    };
    let hint = if addresses.iter().all(|a| ip(a).is_none()) {
        " (a host name is compared with type: CNAME)"
    } else if record_type == RecordType::CNAME {
        " (IP addresses are compared with type: A or AAAA)"
    } else {
        ""
    };
    Err(format!(
        "reports {wanted} to compare {record_type} answers with, only {}{hint}",
        addresses.join(", ")
    ))
}

/// The system resolver, built once for all `dns` checks that list no
/// servers. Building can fail (no /etc/resolv.conf); a check that needs it
/// then reports why at run time.
pub struct SystemResolver(Result<TokioResolver, String>);

impl SystemResolver {
    pub fn from_system() -> Self {
        let built = TokioResolver::builder_tokio()
            .map(|mut builder| {
                let options = builder.options_mut();
                // Every run asks anew: a cached answer measures nothing.
                options.cache_size = 0;
                builder.build()
            })
            .map_err(|err| format!("cannot read the system resolver configuration: {err}"));
        if let Err(err) = &built {
            tracing::warn!(error = %err, "dns checks without servers will fail");
        }
        SystemResolver(built)
    }
}

/// Which resolver a lookup goes through, and its `server` label value.
#[derive(Debug)]
struct Upstream {
    label: String,
    /// None: the shared system resolver.
    resolver: Option<TokioResolver>,
}

/// A compiled `dns` check.
#[derive(Debug)]
pub struct DnsProbe {
    name: Name,
    record_type: RecordType,
    upstreams: Vec<Upstream>,
    propagation: bool,
    rcode: ResponseCode,
    answers: Option<Expected>,
    contains: Option<Expected>,
    min_answers: Option<usize>,
    max_latency: Option<Duration>,
}

impl fmt::Debug for SystemResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SystemResolver")
    }
}

const RECORD_TYPES: &str = "A, AAAA, CNAME, TXT, MX or NS";

impl DnsProbe {
    /// A server's two tries must fit in the check's timeout, so a silent
    /// server is named by this probe rather than cut off by the runner.
    pub fn build(config: &DnsConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
        let check_timeout = ctx.timeout;
        let mut problems = Vec::new();
        let name = match Name::from_utf8(config.name.trim()) {
            Ok(mut name) if !config.name.trim().is_empty() => {
                // Names are absolute: no search list is appended.
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
                    format!("invalid name {:?}: {err}", config.name),
                ));
                None
            }
        };
        let record_type = match config.record_type.as_deref().map(str::trim) {
            None => RecordType::A,
            Some(text) => match text.to_ascii_uppercase().as_str() {
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
            },
        };
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
        let query_timeout = match config.query_timeout {
            Some(given) => {
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
            None => DEFAULT_QUERY_TIMEOUT.min(check_timeout / 3),
        };
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
        let upstreams = if addrs.is_empty() {
            vec![Upstream {
                label: "system".into(),
                resolver: None,
            }]
        } else if config.propagation || addrs.len() == 1 {
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
                resolver: Some(resolver(&addrs)),
            }]
        };
        let expect = &config.expect;
        let rcode = match expect.rcode.as_deref().map(str::trim) {
            None => ResponseCode::NoError,
            Some(text) => match text.to_ascii_uppercase().as_str() {
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
            },
        };
        let mut literal = |key: &str, values: &[String]| -> Expected {
            let mut set = BTreeSet::new();
            for (i, value) in values.iter().enumerate() {
                match normalise(record_type, value) {
                    Ok(value) => {
                        set.insert(value);
                    }
                    Err(message) => {
                        problems.push(Problem::new(format!("expect.{key}[{i}]"), message))
                    }
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
                answers =
                    IngressAddressesOf::compile(text, key, sync_wait(check_timeout), &mut problems)
                        .map(|ingress| Expected::Ingress(ingress, record_type));
            }
        }
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

    async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        let answers = match &self.answers {
            Some(expected) => match expected.resolve(ctx).await {
                Ok(set) => Some(set),
                Err(unknown) => return unknown.into_error(),
            },
            None => None,
        };
        let contains = match &self.contains {
            Some(expected) => match expected.resolve(ctx).await {
                Ok(set) => set,
                Err(unknown) => return unknown.into_error(),
            },
            None => BTreeSet::new(),
        };
        ctx.progress.set("waiting for DNS answers");
        let lookups = futures::future::join_all(
            self.upstreams
                .iter()
                .map(|upstream| self.lookup(ctx, upstream)),
        )
        .await;
        let mut measurements = Vec::new();
        let mut answered = Vec::new();
        let mut failures = Vec::new();
        for (upstream, (result, elapsed)) in self.upstreams.iter().zip(lookups) {
            let server = upstream.label.as_str();
            measurements.push(Measurement::labelled(
                Measure::DnsLookupDurationSeconds,
                &[server],
                elapsed.as_secs_f64(),
            ));
            match result {
                Ok(answer) => {
                    measurements.push(Measurement::labelled(
                        Measure::DnsAnswers,
                        &[server],
                        answer.values.len() as f64,
                    ));
                    if let Some(ttl) = answer.min_ttl {
                        measurements.push(Measurement::labelled(
                            Measure::DnsMinTtlSeconds,
                            &[server],
                            f64::from(ttl),
                        ));
                    }
                    answered.push((server, answer, elapsed));
                }
                Err(failure) => failures.push((server, failure)),
            }
        }
        if let Some((_, failure)) = failures.first() {
            let text = failures
                .iter()
                .map(|(server, f)| format!("{}: {}", server_text(server), f.message))
                .collect::<Vec<_>>()
                .join("; ");
            return Outcome::error(failure.reason, text).with_measurements(measurements);
        }
        let mut broken: Vec<(Reason, String)> = Vec::new();
        if self.propagation {
            // The reference: the expected answers if given, else the answer
            // most servers gave (the first server's on a tie).
            let reference: Answer = match &answers {
                Some(set) => Answer {
                    rcode: self.rcode,
                    values: set.clone(),
                    min_ttl: None,
                },
                None => majority(&answered),
            };
            let mut disagreeing = Vec::new();
            for (server, answer, _) in &answered {
                let agrees = answer.rcode == reference.rcode && answer.values == reference.values;
                measurements.push(Measurement::labelled(
                    Measure::DnsServerAgreementSuccess,
                    &[server],
                    if agrees { 1.0 } else { 0.0 },
                ));
                if !agrees {
                    disagreeing.push(format!("{server} answered {}", answer.describe()));
                }
            }
            if !disagreeing.is_empty() {
                let against = if answers.is_some() {
                    "the expected"
                } else {
                    "the majority's"
                };
                broken.push((
                    Reason::DnsDisagreement,
                    format!(
                        "{} of {} servers disagree with {against} {}: {}",
                        disagreeing.len(),
                        answered.len(),
                        reference.describe(),
                        disagreeing.join("; ")
                    ),
                ));
            }
        }
        for (server, answer, elapsed) in &answered {
            let prefix = if answered.len() > 1 {
                format!("{server}: ")
            } else {
                String::new()
            };
            for (reason, message) in self.evaluate(answer, *elapsed, answers.as_ref(), &contains) {
                // In propagation mode, the disagreement already names a
                // server with other answers.
                if self.propagation && reason == Reason::DnsAnswers && !broken.is_empty() {
                    continue;
                }
                broken.push((reason, format!("{prefix}{message}")));
            }
        }
        let outcome = Outcome::from_failures(broken.iter().map(|(r, m)| (*r, m.as_str())))
            .unwrap_or_else(|| {
                let (_, answer, _) = &answered[0];
                let slowest = answered
                    .iter()
                    .map(|(_, _, e)| *e)
                    .max()
                    .unwrap_or_default();
                let servers = if answered.len() > 1 {
                    format!(" from all {} servers", answered.len())
                } else {
                    String::new()
                };
                Outcome::pass(format!(
                    "{} {}: {}{servers} in {}",
                    self.name,
                    self.record_type,
                    answer.describe(),
                    format_lookup(slowest)
                ))
            });
        outcome.with_measurements(measurements)
    }

    /// Every broken expectation of one server's answer.
    fn evaluate(
        &self,
        answer: &Answer,
        elapsed: Duration,
        answers: Option<&BTreeSet<String>>,
        contains: &BTreeSet<String>,
    ) -> Vec<(Reason, String)> {
        let mut broken = Vec::new();
        if answer.rcode != self.rcode {
            broken.push((
                Reason::DnsRcode,
                format!(
                    "{} {} answered {}, expected {}",
                    self.name,
                    self.record_type,
                    rcode_text(answer.rcode),
                    rcode_text(self.rcode)
                ),
            ));
        } else {
            if let Some(expected) = answers {
                if &answer.values != expected {
                    broken.push((
                        Reason::DnsAnswers,
                        format!(
                            "answers {}, expected {}{}",
                            set_text(&answer.values),
                            set_text(expected),
                            self.answers
                                .as_ref()
                                .map(Expected::source)
                                .unwrap_or_default()
                        ),
                    ));
                }
            }
            let missing: BTreeSet<String> = contains.difference(&answer.values).cloned().collect();
            if !missing.is_empty() {
                broken.push((
                    Reason::DnsAnswers,
                    format!(
                        "answers {} lack {}",
                        set_text(&answer.values),
                        set_text(&missing)
                    ),
                ));
            }
            if let Some(min) = self.min_answers {
                if answer.values.len() < min {
                    broken.push((
                        Reason::DnsAnswers,
                        format!("{} answers, expected at least {min}", answer.values.len()),
                    ));
                }
            }
        }
        if let Some(max) = self.max_latency {
            if elapsed > max {
                broken.push((
                    Reason::Latency,
                    format!(
                        "lookup took {}, more than max_latency {}",
                        format_lookup(elapsed),
                        format_duration(max)
                    ),
                ));
            }
        }
        broken
    }

    async fn lookup(
        &self,
        ctx: &ProbeContext,
        upstream: &Upstream,
    ) -> (Result<Answer, Failure>, Duration) {
        let resolver = match (&upstream.resolver, &ctx.clients.dns.0) {
            (Some(resolver), _) => resolver,
            (None, Ok(system)) => system,
            (None, Err(message)) => {
                return (
                    Err(Failure {
                        reason: Reason::Dns,
                        message: message.clone(),
                    }),
                    Duration::ZERO,
                )
            }
        };
        let started = Instant::now();
        let result = resolver.lookup(self.name.clone(), self.record_type).await;
        let elapsed = started.elapsed();
        let answer = match result {
            Ok(lookup) => Ok(Answer::from_records(self.record_type, lookup.records())),
            Err(err) => self.failure(&err),
        };
        (answer, elapsed)
    }

    /// A negative answer (NXDOMAIN, no records, SERVFAIL...) is an answer;
    /// anything else is a failure to get one.
    fn failure(&self, err: &ResolveError) -> Result<Answer, Failure> {
        let Some(proto) = err.proto() else {
            return Err(Failure {
                reason: Reason::Dns,
                message: err.to_string(),
            });
        };
        match proto.kind() {
            ProtoErrorKind::NoRecordsFound { response_code, .. } => Ok(Answer {
                rcode: *response_code,
                values: BTreeSet::new(),
                min_ttl: None,
            }),
            ProtoErrorKind::Timeout => Err(Failure {
                reason: Reason::Timeout,
                message: "no answer (query timed out)".into(),
            }),
            ProtoErrorKind::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err(Failure {
                    reason: Reason::ConnectionRefused,
                    message: "connection refused".into(),
                })
            }
            _ => Err(Failure {
                reason: Reason::Dns,
                message: proto.to_string(),
            }),
        }
    }
}

/// What one server said.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    rcode: ResponseCode,
    values: BTreeSet<String>,
    min_ttl: Option<u32>,
}

impl Answer {
    fn from_records(record_type: RecordType, records: &[Record]) -> Answer {
        let mut values = BTreeSet::new();
        let mut min_ttl: Option<u32> = None;
        for record in records {
            // A CNAME chain followed to the address comes with the lookup;
            // only records of the asked type are answers.
            if record.record_type() != record_type {
                continue;
            }
            if let Some(value) = record_text(record.data()) {
                values.insert(value);
                min_ttl = Some(min_ttl.map_or(record.ttl(), |t| t.min(record.ttl())));
            }
        }
        Answer {
            rcode: ResponseCode::NoError,
            values,
            min_ttl,
        }
    }

    fn describe(&self) -> String {
        if self.rcode == ResponseCode::NoError {
            set_text(&self.values)
        } else {
            rcode_text(self.rcode)
        }
    }
}

fn majority(answered: &[(&str, Answer, Duration)]) -> Answer {
    let mut best: Option<(&Answer, usize)> = None;
    for (_, answer, _) in answered {
        let count = answered
            .iter()
            .filter(|(_, a, _)| a.rcode == answer.rcode && a.values == answer.values)
            .count();
        if best.is_none_or(|(_, n)| count > n) {
            best = Some((answer, count));
        }
    }
    best.map(|(a, _)| a.clone()).unwrap_or(Answer {
        rcode: ResponseCode::NoError,
        values: BTreeSet::new(),
        min_ttl: None,
    })
}

/// The answers of `record_type` in `records` as text, the form they are
/// compared in (public for the fuzz targets: answers are outside input).
pub fn answer_texts(record_type: RecordType, records: &[Record]) -> BTreeSet<String> {
    Answer::from_records(record_type, records).values
}

/// An answer record as text, in the form expectations are written in.
fn record_text(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(aaaa) => aaaa.0.to_string(),
        RData::CNAME(name) => name_text(&name.0),
        RData::NS(name) => name_text(&name.0),
        RData::MX(mx) => format!("{} {}", mx.preference(), name_text(mx.exchange())),
        RData::TXT(txt) => txt
            .txt_data()
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect::<String>(),
        _ => return None,
    })
}

fn name_text(name: &Name) -> String {
    name.to_utf8().trim_end_matches('.').to_ascii_lowercase()
}

/// An expected value in the form answers are compared in.
fn normalise(record_type: RecordType, value: &str) -> Result<String, String> {
    let text = value.trim();
    match record_type {
        RecordType::A => text
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("{value:?} is not an IPv4 address (type A)")),
        RecordType::AAAA => text
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("{value:?} is not an IPv6 address (type AAAA)")),
        RecordType::MX => {
            let mut parts = text.split_whitespace();
            match (
                parts.next().and_then(|p| p.parse::<u16>().ok()),
                parts.next(),
                parts.next(),
            ) {
                (Some(preference), Some(host), None) => Ok(format!(
                    "{preference} {}",
                    host.trim_end_matches('.').to_ascii_lowercase()
                )),
                _ => Err(format!(
                    "{value:?} is not an MX answer: expected PREFERENCE HOST (10 mail.example.com)"
                )),
            }
        }
        RecordType::CNAME | RecordType::NS => Ok(text.trim_end_matches('.').to_ascii_lowercase()),
        _ => Ok(value.to_string()),
    }
}

fn parse_server(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

fn rcode_text(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => other.to_str().to_ascii_uppercase(),
    }
}

fn set_text(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "{}".into()
    } else {
        format!("{{{}}}", set.iter().cloned().collect::<Vec<_>>().join(", "))
    }
}

fn server_text(label: &str) -> String {
    match label {
        "system" => "the system resolver".into(),
        "listed" => "the listed servers".into(),
        address => address.to_string(),
    }
}

/// A lookup time for messages: loopback answers take fractions of a
/// millisecond, so `45µs`, `0.2ms`, `12ms`, `1.5s`.
fn format_lookup(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis < 0.1 {
        format!("{}µs", duration.as_micros())
    } else if millis < 10.0 {
        format!("{millis:.1}ms")
    } else if millis < 1000.0 {
        format!("{millis:.0}ms")
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

impl Probe for DnsProbe {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        self.execute(ctx).boxed()
    }

    fn needs(&self) -> Needs {
        let watches = [&self.answers, &self.contains]
            .into_iter()
            .flatten()
            .filter_map(|expected| match expected {
                Expected::Ingress(ingress, _) => Some(ingress.watch().clone()),
                Expected::Literal(_) => None,
            })
            .collect();
        Needs {
            watches,
            warnings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_values_are_normalised_like_answers() {
        assert_eq!(normalise(RecordType::AAAA, "0:0::1").unwrap(), "::1");
        assert_eq!(
            normalise(RecordType::MX, "10  Mail.Example.com.").unwrap(),
            "10 mail.example.com"
        );
        assert_eq!(
            normalise(RecordType::CNAME, "Edge.Example.com.").unwrap(),
            "edge.example.com"
        );
        assert!(normalise(RecordType::A, "::1").is_err());
    }

    #[test]
    fn ingress_addresses_are_split_by_record_type() {
        let addresses: Vec<String> = ["10.0.0.1", "FD00::0:1", "LB.Example.com.", "10.0.0.2"]
            .map(String::from)
            .to_vec();
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            ingress_answers(RecordType::A, &addresses),
            Ok(set(&["10.0.0.1", "10.0.0.2"]))
        );
        assert_eq!(
            ingress_answers(RecordType::AAAA, &addresses),
            Ok(set(&["fd00::1"]))
        );
        assert_eq!(
            ingress_answers(RecordType::CNAME, &addresses),
            Ok(set(&["lb.example.com"]))
        );
        let ips = ["10.0.0.1".to_string()];
        let err = ingress_answers(RecordType::CNAME, &ips).unwrap_err();
        assert!(
            err.contains("no host name") && err.contains("type: A or AAAA"),
            "{err}"
        );
        let err = ingress_answers(RecordType::AAAA, &ips).unwrap_err();
        assert!(
            err.contains("no IPv6 address") && !err.contains("CNAME"),
            "{err}"
        );
    }

    #[test]
    fn lookup_times_keep_fractions_of_a_millisecond() {
        assert_eq!(format_lookup(Duration::from_micros(240)), "0.2ms");
        assert_eq!(format_lookup(Duration::from_micros(45)), "45µs");
        assert_eq!(format_lookup(Duration::from_micros(12_400)), "12ms");
        assert_eq!(format_lookup(Duration::from_millis(1_520)), "1.5s");
    }

    #[test]
    fn servers_default_to_port_53() {
        assert_eq!(
            parse_server("10.0.0.2"),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("dns.example.com"), None);
    }
}
