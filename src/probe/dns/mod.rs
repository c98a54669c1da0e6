//! The `dns` check kind: one lookup of a name for a record type, through
//! the system resolver or listed name servers (UDP or TCP), its response
//! code, answers and latency checked against expectations. In propagation
//! mode every listed server is asked on its own and all must agree.

mod answer;
mod build;
mod expected;
mod run;

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::{Name, TokioResolver};
use serde::Deserialize;

use super::{Needs, Probe, ProbeContext};
use crate::config::HumanDuration;
use crate::result::Outcome;

pub use answer::answer_texts;
pub use expected::Expected;

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

/// The system resolver, built once for all `dns` checks that list no
/// servers. Building can fail (no /etc/resolv.conf); a check that needs it
/// then reports why at run time.
pub struct SystemResolver(Result<TokioResolver, String>);

impl SystemResolver {
    pub fn from_system() -> Self {
        let built = crate::connect_to::system_resolver_builder()
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
