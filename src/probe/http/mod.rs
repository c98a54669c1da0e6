//! The `http` check kind: one request (following redirects if asked), then
//! status, headers, body, JSON fields, redirect target and latency checked
//! against expectations.

mod client;
pub mod expect;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use hyper::Method;
use serde::Deserialize;
use url::Url;

use self::client::{fetch, Exchange, RequestSpec, Timings};
use self::expect::{location, ExpectConfig, Expectations};
use super::{verification_warnings, BuildContext, Needs, Probe, ProbeContext};
use crate::clients::tls_configs::{Presented, TlsPolicy};
use crate::config::{ByteSize, Problem};
use crate::result::{Measure, Measurement, Outcome, Reason};
use crate::secret::{scrub, Secret, SecretResolver, SecretSource};

pub const DEFAULT_MAX_BODY: ByteSize = ByteSize(1 << 20);
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// The `http` block of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `http://` or `https://` URL to request.
    pub url: String,
    /// Request method (default GET).
    pub method: Option<String>,
    /// Request headers. `Authorization` and other headers that carry
    /// credentials (see [`SECRET_HEADER_NAMES`]) are refused here: give them
    /// with `bearer_token_*`, `basic_auth` or `secret_headers`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request headers whose values are secrets, read from a file or an
    /// environment variable at every run, never shown, and dropped on a
    /// redirect to another origin.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, SecretHeaderConfig>,
    /// Request body.
    pub body: Option<String>,
    /// File holding a bearer token sent as `Authorization: Bearer ...`.
    pub bearer_token_file: Option<PathBuf>,
    /// Environment variable holding a bearer token.
    pub bearer_token_env: Option<String>,
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuthConfig>,
    /// PEM file of extra CA certificates trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Logs a warning at start-up.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Follow redirects (default true). A redirect whose status is listed
    /// in `expect.status` is never followed.
    pub follow_redirects: Option<bool>,
    /// Most redirects followed (default 10).
    pub max_redirects: Option<u32>,
    /// Largest body read (default 1MiB); larger is an `error`/`too_large`.
    pub max_body_size: Option<ByteSize>,
    /// Keep the connection open between runs (default false: every run
    /// measures a fresh connection, as a health check should). For
    /// frequent checks of APIs behind keep-alive, where the connection
    /// setup would be most of the cost.
    #[serde(default)]
    pub keep_alive: bool,
    /// What the answer must look like.
    #[serde(default)]
    pub expect: ExpectConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretHeaderConfig {
    pub value_file: Option<PathBuf>,
    pub value_env: Option<String>,
}

/// Header names whose values are credentials by convention. A literal value
/// for one of them in `headers` would sit in the config, the status page's
/// config view and every diff of the file, so it is refused.
pub const SECRET_HEADER_NAMES: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "ocp-apim-subscription-key",
    "private-token",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

#[derive(Debug)]
enum Auth {
    Bearer(SecretSource),
    Basic {
        username: String,
        password: SecretSource,
    },
}

/// A compiled `http` check.
#[derive(Debug)]
pub struct HttpProbe {
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Option<Bytes>,
    auth: Option<Auth>,
    /// Headers whose values are read from a file or variable at every run.
    secret_headers: Vec<(HeaderName, SecretSource)>,
    tls: TlsPolicy,
    follow_redirects: bool,
    max_redirects: u32,
    max_body: ByteSize,
    /// The connection kept between runs, with `keep_alive: true`.
    keep_alive: Option<client::ConnectionSlot>,
    expect: Expectations,
    /// Set while an evaluation of a response runs (see [`off_the_workers`]):
    /// one that outlives its run's timeout is not joined by another.
    evaluating: std::sync::atomic::AtomicBool,
}

/// `; did you mean "http://…"?` for a URL written without its scheme
/// (`api.example.com/health`, `localhost:8080/x`, which parses as scheme
/// `localhost`); nothing for text that does not look like a host.
fn scheme_hint(text: &str) -> String {
    let text = text.trim();
    let host = text.split(['/', '?', '#']).next().unwrap_or_default();
    let host_like = !text.contains("://")
        && !host.is_empty()
        && !host.contains(char::is_whitespace)
        && (host.contains('.') || host.starts_with("localhost"));
    if host_like {
        format!("; did you mean \"http://{text}\" or \"https://{text}\"?")
    } else {
        String::new()
    }
}

impl HttpProbe {
    /// A share of the check's timeout is given to the first sync of a
    /// watch a cross-check reads.
    pub fn build(config: &HttpConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let url = match Url::parse(&config.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Some(url)
            }
            Ok(_) => {
                problems.push(Problem::new(
                    "url",
                    format!(
                        "must be an http:// or https:// URL with a host{}",
                        scheme_hint(&config.url)
                    ),
                ));
                None
            }
            Err(err) => {
                problems.push(Problem::new(
                    "url",
                    format!(
                        "invalid URL {:?}: {err}{}",
                        config.url,
                        scheme_hint(&config.url)
                    ),
                ));
                None
            }
        };
        let method = match &config.method {
            None => Method::GET,
            Some(text) => Method::from_bytes(text.as_bytes()).unwrap_or_else(|_| {
                problems.push(Problem::new("method", format!("invalid method {text:?}")));
                Method::GET
            }),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let at = format!("headers.{name}");
            match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
                (Ok(name), _) if name == AUTHORIZATION => problems.push(Problem::new(
                    at,
                    "Authorization is a secret: give it with bearer_token_file, bearer_token_env or basic_auth",
                )),
                (Ok(name), _) if SECRET_HEADER_NAMES.contains(&name.as_str()) => {
                    problems.push(Problem::new(
                        at,
                        format!("{name} carries a credential: give it in secret_headers with value_file or value_env"),
                    ))
                }
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                (Err(_), _) => problems.push(Problem::new(at, "invalid header name")),
                (_, Err(_)) => problems.push(Problem::new(at, "invalid header value")),
            }
        }
        let auth = auth(config, ctx.secrets, &mut problems);
        let secret_headers = secret_headers(config, ctx.secrets, auth.is_some(), &mut problems);
        if config.insecure_skip_verify && config.ca_file.is_some() {
            problems.push(Problem::new(
                "insecure_skip_verify",
                "ca_file has no effect when verification is skipped; give one or the other",
            ));
        }
        let ca_file = config.ca_file.as_ref().map(|p| ctx.resolve_path(p));
        let tls = ctx
            .clients
            .tls
            .policy(ca_file.as_deref(), config.insecure_skip_verify)
            .map_err(|err| problems.push(Problem::new("ca_file", err)))
            .ok();
        if config.follow_redirects == Some(false) && config.max_redirects.is_some() {
            problems.push(Problem::new(
                "max_redirects",
                "has no effect with follow_redirects: false",
            ));
        }
        let expect =
            match Expectations::compile(&config.expect, super::cross_check::sync_wait(ctx.timeout))
            {
                Ok(expect) => Some(expect),
                Err(more) => {
                    problems.extend(more);
                    None
                }
            };
        let (Some(url), Some(expect), Some(tls), true) = (url, expect, tls, problems.is_empty())
        else {
            return Err(problems);
        };
        Ok(HttpProbe {
            url,
            method,
            headers,
            body: config.body.clone().map(Bytes::from),
            auth,
            secret_headers,
            tls,
            follow_redirects: config.follow_redirects.unwrap_or(true),
            max_redirects: config.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS),
            max_body: config.max_body_size.unwrap_or(DEFAULT_MAX_BODY),
            keep_alive: config.keep_alive.then(Default::default),
            expect,
            evaluating: Default::default(),
        })
    }

    /// Request headers for one run, secrets read fresh, and the secret
    /// texts sent (to scrub from messages).
    async fn request_headers(&self) -> Result<(HeaderMap, Vec<Secret>), String> {
        let mut headers = self.headers.clone();
        let mut secrets = Vec::new();
        for (name, source) in &self.secret_headers {
            let value = source.read_async().await.map_err(|e| e.to_string())?;
            let mut header = HeaderValue::try_from(value.expose()).map_err(|_| {
                format!("the value for header {name} holds characters a header cannot carry")
            })?;
            header.set_sensitive(true);
            headers.insert(name.clone(), header);
            secrets.push(value);
        }
        let (value, secret) = match &self.auth {
            None => return Ok((headers, secrets)),
            Some(Auth::Bearer(source)) => {
                let token = source.read_async().await.map_err(|e| e.to_string())?;
                (format!("Bearer {}", token.expose()), token)
            }
            Some(Auth::Basic { username, password }) => {
                let password = password.read_async().await.map_err(|e| e.to_string())?;
                let pair = format!("{username}:{}", password.expose());
                (
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ),
                    password,
                )
            }
        };
        let mut header = HeaderValue::try_from(value.as_str())
            .map_err(|_| "the credential holds characters a header cannot carry".to_string())?;
        header.set_sensitive(true);
        headers.insert(AUTHORIZATION, header);
        secrets.extend([secret, Secret::new(value)]);
        Ok((headers, secrets))
    }

    async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        ctx.progress.set("reading the watch cache");
        let tags = match self.expect.resolve_cluster_values(ctx).await {
            Ok(tags) => tags,
            Err(unknown) => return unknown.into_error(),
        };
        ctx.progress.set("reading secret files");
        let (headers, secrets) = match self.request_headers().await {
            Ok(found) => found,
            Err(message) => return Outcome::error(Reason::Secret, message),
        };
        let mut outcome = self.exchange_and_judge(ctx, headers, &secrets, &tags).await;
        // A target that echoes the credential into a header or JSON field
        // the check quotes must not get it into logs, JSON or reports.
        outcome.message = scrub(&outcome.message, secrets.iter().map(Secret::expose));
        outcome
    }

    async fn exchange_and_judge(
        &self,
        ctx: &ProbeContext,
        mut headers: HeaderMap,
        secrets: &[Secret],
        tags: &[String],
    ) -> Outcome {
        let started = Instant::now();
        let mut timings = Timings::default();
        let mut url = self.url.clone();
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        let mut visited = HashSet::from([url.clone()]);
        let mut redirects = 0u32;
        let mut first_location = None;
        // The chain of the last HTTPS hop, measured whatever the outcome.
        let mut presented: Option<Presented> = None;
        let answer = loop {
            let spec = RequestSpec {
                url: &url,
                method: &method,
                headers: &headers,
                body: body.clone(),
                tls: &self.tls,
                max_body: self.max_body,
                // Only the configured URL's origin: a redirect elsewhere
                // would replace the kept connection at every run.
                keep_alive: self.keep_alive.as_ref().filter(|_| redirects == 0),
            };
            let answer = match fetch(spec, &ctx.progress, &mut timings, &mut presented).await {
                Ok(answer) => answer,
                Err(err) => {
                    let hop = if redirects > 0 {
                        format!(" (after {redirects} redirects, at {url})")
                    } else {
                        String::new()
                    };
                    return Outcome::error(err.reason(), format!("{err}{hop}"))
                        .with_measurements(certificate_measurements(presented.as_ref()));
                }
            };
            let next = match location(&answer, &url) {
                Some(Ok(next)) => Some(next),
                Some(Err(message)) if answer.status.is_redirection() => {
                    return Outcome::fail(Reason::Redirect, message)
                }
                _ => None,
            };
            if redirects == 0 {
                first_location = next.clone();
            }
            let follow = self.follow_redirects
                && answer.status.is_redirection()
                && !self.expect.accepts_status(answer.status);
            let Some(next) = next.filter(|_| follow) else {
                break answer;
            };
            if redirects >= self.max_redirects {
                return Outcome::error(
                    Reason::TooManyRedirects,
                    format!(
                        "stopped after {redirects} redirects (limit {}), next was {next}",
                        self.max_redirects
                    ),
                );
            }
            if !visited.insert(next.clone()) {
                return Outcome::error(
                    Reason::RedirectLoop,
                    format!("redirect loop: {url} leads back to {next}"),
                );
            }
            redirects += 1;
            let status = answer.status.as_u16();
            self.redirect_request(status, &url, &next, &mut method, &mut body, &mut headers);
            url = next;
        };
        let elapsed = started.elapsed();
        let measurements = answer_measurements(&answer, redirects, &timings, presented.as_ref());
        ctx.progress.set("evaluating the response");
        self.judge(&answer, first_location.as_ref(), elapsed, secrets, tags)
            .with_measurements(measurements)
    }

    /// Turns the request into the one to send to the redirect's `next`.
    fn redirect_request(
        &self,
        status: u16,
        url: &Url,
        next: &Url,
        method: &mut Method,
        body: &mut Option<Bytes>,
        headers: &mut HeaderMap,
    ) {
        // 303 (except after a HEAD), and 301/302 after a POST, turn into
        // a GET without body as browsers do; 307/308 repeat the request
        // as it was.
        if (status == 303 && *method != Method::HEAD)
            || (matches!(status, 301 | 302) && *method == Method::POST)
        {
            *method = Method::GET;
            *body = None;
        }
        // Credentials are for the origin they were configured for: a
        // redirect elsewhere must not carry them (as browsers and curl).
        if next.origin() != url.origin() {
            headers.remove(AUTHORIZATION);
            for (name, _) in &self.secret_headers {
                headers.remove(name);
            }
        }
    }

    /// The expectations applied to the final answer, off the async workers.
    fn judge(
        &self,
        answer: &Exchange,
        first_location: Option<&Url>,
        elapsed: Duration,
        secrets: &[Secret],
        tags: &[String],
    ) -> Outcome {
        use std::sync::atomic::Ordering;
        if self.evaluating.swap(true, Ordering::AcqRel) {
            return Outcome::error(
                Reason::Timeout,
                "the evaluation of an earlier response is still running \
                 (a regex or JSON selector over a large body?); this run is not evaluated",
            );
        }
        let broken = off_the_workers(|| {
            let _done = Evaluated(&self.evaluating);
            self.expect
                .evaluate(answer, first_location, elapsed, secrets, tags)
        });
        Outcome::from_failures(broken.iter().map(|(r, m)| (*r, m.as_str()))).unwrap_or_else(|| {
            Outcome::pass(format!(
                "status {} in {}",
                answer.status.as_u16(),
                expect::format_elapsed(elapsed)
            ))
        })
    }
}

/// What the final answer and the hops before it measured.
fn answer_measurements(
    answer: &Exchange,
    redirects: u32,
    timings: &Timings,
    presented: Option<&Presented>,
) -> Vec<Measurement> {
    let mut measurements = vec![
        Measurement::new(Measure::HttpStatusCode, f64::from(answer.status.as_u16())),
        Measurement::new(Measure::HttpContentLengthBytes, answer.body.len() as f64),
        Measurement::new(Measure::HttpRedirects, f64::from(redirects)),
    ];
    for (phase, duration) in timings.phases() {
        measurements.push(Measurement::labelled(
            Measure::HttpDurationSeconds,
            &[phase],
            duration.as_secs_f64(),
        ));
    }
    measurements.extend(certificate_measurements(presented));
    measurements
}

/// Clears [`HttpProbe::evaluating`] when an evaluation ends, or panics.
struct Evaluated<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Evaluated<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Runs CPU-heavy evaluation (regexes and JSON over a body of many MiB)
/// where it does not hold an async worker: the runner's timeout then ends
/// the run on time and other checks' timers keep firing. The work itself
/// cannot be interrupted; it finishes on its own thread.
pub(crate) fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// The certificate measurements of the `tls` kind, for the chain an
/// HTTPS hop presented.
fn certificate_measurements(presented: Option<&Presented>) -> Vec<Measurement> {
    presented
        .and_then(|p| {
            crate::probe::tls::chain::Chain::parse(&p.chain)
                .ok()
                .map(|chain| chain.measurements(Some(p.verification.is_ok())))
        })
        .unwrap_or_default()
}

fn auth(
    config: &HttpConfig,
    secrets: &SecretResolver,
    problems: &mut Vec<Problem>,
) -> Option<Auth> {
    let bearer = secrets.source(
        config.bearer_token_file.as_ref(),
        config.bearer_token_env.as_ref(),
        "bearer_token",
        "",
        problems,
    );
    let basic = config.basic_auth.as_ref().and_then(|basic| {
        let password = secrets.source(
            basic.password_file.as_ref(),
            basic.password_env.as_ref(),
            "password",
            "basic_auth",
            problems,
        );
        if password.is_none() {
            problems.push(Problem::new(
                "basic_auth",
                "needs password_file or password_env",
            ));
        }
        password.map(|password| Auth::Basic {
            username: basic.username.clone(),
            password,
        })
    });
    match (bearer, basic) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                "basic_auth",
                "give a bearer token or basic_auth, not both",
            ));
            None
        }
        (Some(bearer), None) => Some(Auth::Bearer(bearer)),
        (None, basic) => basic,
    }
}

fn secret_headers(
    config: &HttpConfig,
    secrets: &SecretResolver,
    has_auth: bool,
    problems: &mut Vec<Problem>,
) -> Vec<(HeaderName, SecretSource)> {
    let mut found = Vec::new();
    for (name, header) in &config.secret_headers {
        let block = format!("secret_headers.{name}");
        let Ok(parsed) = HeaderName::try_from(name.as_str()) else {
            problems.push(Problem::new(block, "invalid header name"));
            continue;
        };
        if parsed == AUTHORIZATION && has_auth {
            problems.push(Problem::new(
                block,
                "Authorization is already set by bearer_token or basic_auth; give one of them",
            ));
            continue;
        }
        if config
            .headers
            .keys()
            .any(|plain| plain.eq_ignore_ascii_case(name))
        {
            problems.push(Problem::new(
                block,
                "is also given in headers; give it in one place",
            ));
            continue;
        }
        let value = secrets.source(
            header.value_file.as_ref(),
            header.value_env.as_ref(),
            "value",
            &block,
            problems,
        );
        match value {
            Some(value) => found.push((parsed, value)),
            None => problems.push(Problem::new(block, "needs value_file or value_env")),
        }
    }
    found
}

impl Probe for HttpProbe {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        self.execute(ctx).boxed()
    }

    fn needs(&self) -> Needs {
        Needs {
            watches: self.expect.watches(),
            warnings: verification_warnings(&self.tls),
        }
    }
}
