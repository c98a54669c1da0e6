//! The `registry` check kind: an image repository in an OCI registry
//! (Distribution API v2, as ACR, GHCR, Docker Hub and Harbor speak it).
//! The expected tag's manifest must answer `HEAD`, and enough tags matching
//! a pattern must be kept for a rollback.
//!
//! Authentication: anonymous, HTTP basic, or a bearer token obtained
//! through the `WWW-Authenticate: Bearer realm=...,service=...,scope=...`
//! challenge (with the basic credentials, or anonymously). The token is
//! kept until shortly before it expires and fetched again on a 401.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::future::BoxFuture;
use futures::FutureExt;
use hyper::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::cross_check::{sync_wait, ImageTagOf, ImageTagOfConfig};
use super::{BuildContext, Needs, Probe, ProbeContext};
use crate::clients::api_client::{host_of, ApiClient, ApiError, ApiRequest, ApiResponse};
use crate::config::{ByteSize, Problem};
use crate::lock::lock;
use crate::result::{Failure, Measure, Measurement, Outcome, Reason};
use crate::secret::{scrub, Secret, SecretSource};

/// Tags read at most unless `max_tags` says otherwise.
pub const DEFAULT_MAX_TAGS: u32 = 10_000;
/// Tags asked for per page unless `page_size` says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Manifest media types a pull accepts: multi-platform indexes first, then
/// single manifests (OCI and Docker), as `docker pull` asks.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Token answers are small; a page of tags is bounded by `page_size`.
const TOKEN_BODY_LIMIT: ByteSize = ByteSize(1024 * 1024);
const PAGE_BODY_LIMIT: ByteSize = ByteSize(8 * 1024 * 1024);

/// The `registry` block of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL of the registry, e.g. `https://myregistry.azurecr.io`.
    pub url: String,
    /// The repository, e.g. `broxiva/api`.
    pub repository: String,
    /// A tag whose manifest must exist (answer `HEAD`).
    pub tag: Option<String>,
    /// Instead of `tag`: the tag that container of a Deployment runs now
    /// (`{ deployment: prod/api, container: api }`), read from the
    /// Kubernetes watch cache at every run.
    pub tag_of: Option<ImageTagOfConfig>,
    /// Fewest tags matching `tag_pattern`, the expected tag not counted,
    /// that must be kept for a rollback.
    pub min_rollback_tags: Option<u32>,
    /// Regex a tag must match to count for a rollback (default: every tag).
    pub tag_pattern: Option<String>,
    /// User for basic authentication (and for the token realm).
    pub username: Option<String>,
    /// File holding the password or access token.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password or access token.
    pub password_env: Option<String>,
    /// PEM file of a CA to trust besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Most tags read (default 10000); a longer list is cut there and the
    /// message says so.
    pub max_tags: Option<u32>,
    /// Tags asked for per page of the listing (default 100).
    pub page_size: Option<u32>,
}

/// Where the tag that must exist comes from: the config, or the image a
/// Deployment's container runs (so the check follows every rollout).
#[derive(Debug)]
pub enum ExpectedTag {
    /// A tag written in the config.
    Fixed(String),
    /// The tag of a Deployment's container, read from the watch cache.
    Running(ImageTagOf),
}

impl ExpectedTag {
    /// The tag to look for in this run; one the cluster does not report
    /// is a `Failure` with the cache's reason word.
    async fn resolve(&self, ctx: &ProbeContext) -> Result<String, Failure> {
        match self {
            ExpectedTag::Fixed(tag) => Ok(tag.clone()),
            ExpectedTag::Running(source) => source.resolve(ctx).await.map_err(|unknown| Failure {
                reason: unknown.reason,
                message: unknown.message,
            }),
        }
    }
}

/// A bearer token from a realm, for one scope.
struct CachedToken {
    token: Secret,
    scope: String,
    /// Used until then; fetched again after.
    renew_at: Instant,
}

/// A compiled `registry` check.
pub struct RegistryProbe {
    base: Url,
    repository: String,
    expected: Option<ExpectedTag>,
    min_rollback_tags: Option<u32>,
    tag_pattern: Option<regex::Regex>,
    username: Option<String>,
    password: Option<SecretSource>,
    max_tags: u32,
    page_size: u32,
    request_timeout: Duration,
    client: ApiClient,
    token: Mutex<Option<CachedToken>>,
}

static REPOSITORY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$",
    )
    .expect("valid regex")
});
static TAG: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("valid regex")
});

impl RegistryProbe {
    pub fn build(config: &RegistryConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let base = match Url::parse(&config.url) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                problems.push(Problem::new("url", "must be an http:// or https:// URL"));
                None
            }
            Ok(url) if url.host_str().is_none() => {
                problems.push(Problem::new("url", "has no host"));
                None
            }
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                problems.push(Problem::new(
                    "url",
                    "must not hold credentials; use username and password_file",
                ));
                None
            }
            Ok(url) if url.query().is_some() || url.path() != "/" => {
                problems.push(Problem::new(
                    "url",
                    "must be the registry's base URL (no path or query); the repository goes in `repository`",
                ));
                None
            }
            Ok(url) => Some(url),
            Err(err) => {
                problems.push(Problem::new("url", format!("invalid URL: {err}")));
                None
            }
        };
        if !REPOSITORY.is_match(&config.repository) {
            problems.push(Problem::new(
                "repository",
                format!(
                    "invalid repository name {:?}: lowercase path components such as broxiva/api",
                    config.repository
                ),
            ));
        }
        if let Some(tag) = &config.tag {
            if !TAG.is_match(tag) {
                problems.push(Problem::new(
                    "tag",
                    format!("invalid tag {tag:?}: up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'"),
                ));
            }
        }
        if config.tag.is_none() && config.tag_of.is_none() && config.min_rollback_tags.is_none() {
            problems.push(Problem::new(
                "",
                "nothing to verify: give tag (or tag_of), min_rollback_tags or both",
            ));
        }
        if config.tag.is_some() && config.tag_of.is_some() {
            problems.push(Problem::new("tag_of", "give tag or tag_of, not both"));
        }
        let wait = sync_wait(ctx.timeout);
        let running = config
            .tag_of
            .as_ref()
            .and_then(|reference| ImageTagOf::compile(reference, "tag_of", wait, &mut problems));
        let tag_pattern =
            config
                .tag_pattern
                .as_ref()
                .and_then(|pattern| match regex::Regex::new(pattern) {
                    Ok(re) => Some(re),
                    Err(err) => {
                        let text = err.to_string();
                        problems.push(Problem::new(
                            "tag_pattern",
                            format!(
                                "invalid regex: {}",
                                text.lines()
                                    .last()
                                    .unwrap_or_default()
                                    .trim()
                                    .trim_start_matches("error: ")
                            ),
                        ));
                        None
                    }
                });
        if config.tag_pattern.is_some() && config.min_rollback_tags.is_none() {
            problems.push(Problem::new(
                "tag_pattern",
                "only used with min_rollback_tags",
            ));
        }
        let password = ctx.secrets.source(
            config.password_file.as_ref(),
            config.password_env.as_ref(),
            "password",
            "",
            &mut problems,
        );
        match (&config.username, &password) {
            (Some(user), _) if user.trim().is_empty() || user.contains(':') => {
                problems.push(Problem::new("username", "must not be empty or contain ':'"))
            }
            (Some(_), None) => problems.push(Problem::new(
                "username",
                "needs password_file or password_env",
            )),
            (None, Some(_)) => problems.push(Problem::new(
                if config.password_file.is_some() {
                    "password_file"
                } else {
                    "password_env"
                },
                "needs username",
            )),
            _ => {}
        }
        let max_tags = config.max_tags.unwrap_or(DEFAULT_MAX_TAGS);
        if max_tags == 0 {
            problems.push(Problem::new("max_tags", "must be at least 1"));
        }
        let page_size = config.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=1000).contains(&page_size) {
            problems.push(Problem::new("page_size", "must be from 1 to 1000"));
        }
        if let (Some(min), true) = (config.min_rollback_tags, max_tags > 0) {
            if min >= max_tags {
                problems.push(Problem::new(
                    "min_rollback_tags",
                    format!("{min} can never be met with max_tags {max_tags}"),
                ));
            }
        }
        let tls = match &config.ca_file {
            Some(path) => match ctx.clients.tls.with_extra_ca(&ctx.resolve_path(path)) {
                Ok(tls) => Some(tls),
                Err(message) => {
                    problems.push(Problem::new("ca_file", message));
                    None
                }
            },
            None => Some(ctx.clients.tls.verified()),
        };
        let (Some(base), Some(tls), true) = (base, tls, problems.is_empty()) else {
            return Err(problems);
        };
        let timeout = ctx.timeout;
        Ok(RegistryProbe {
            base,
            repository: config.repository.clone(),
            expected: config
                .tag
                .clone()
                .map(ExpectedTag::Fixed)
                .or(running.map(ExpectedTag::Running)),
            min_rollback_tags: config.min_rollback_tags,
            tag_pattern,
            username: config.username.clone(),
            password,
            max_tags,
            page_size,
            request_timeout: timeout,
            client: ApiClient::new(&tls, timeout),
            token: Mutex::new(None),
        })
    }
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure::new(err.reason(), err.to_string())
    }
}

/// A `WWW-Authenticate` challenge: its scheme and parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one challenge (`Bearer realm="...",service="...",scope="..."`);
/// quoted values may hold commas. Public for the fuzz targets: the header
/// is outside input.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((scheme, rest)) => (scheme, rest),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.trim().is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.push((key.trim().to_string(), value.trim().to_string()));
    }
    Some(Challenge {
        scheme: scheme.to_string(),
        params,
    })
}

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then_some(target)
    })
}

#[derive(Deserialize)]
struct TagPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The tags of one page of a registry's `tags/list` answer (`null` or a
/// missing list is no tags). Public for the fuzz targets.
pub fn read_tag_page(body: &[u8], host: &str) -> Result<Vec<String>, ApiError> {
    let page: TagPage = serde_json::from_slice(body).map_err(|err| ApiError::BadJson {
        host: host.to_string(),
        detail: err.to_string(),
    })?;
    Ok(page.tags.unwrap_or_default())
}

/// A token realm's answer.
#[derive(Deserialize)]
pub struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Tokens are renewed at least this often, whatever lifetime the realm
/// claims (a lying `expires_in` must not overflow the clock).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl TokenAnswer {
    /// The token and how long after asking to renew it, or None without a
    /// token. The distribution spec's default lifetime is 60 s; the token
    /// is renewed a little before its end so a request never carries an
    /// expired one.
    pub fn read(self) -> Option<(String, Duration)> {
        let token = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let lifetime =
            Duration::from_secs(self.expires_in.unwrap_or(60).max(1)).min(MAX_TOKEN_LIFETIME);
        let margin = (lifetime / 4).min(Duration::from_secs(30));
        Some((token, lifetime - margin))
    }
}

/// What the tag listing found.
struct Listing {
    tags: Vec<String>,
    cut: bool,
}

impl RegistryProbe {
    fn v2_url(&self, rest: &str) -> Url {
        self.base
            .join(&format!("v2/{}/{rest}", self.repository))
            .expect("a relative path joins any http(s) base")
    }

    fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// The basic credentials, read at every run.
    fn credentials(&self) -> Result<Option<(String, Secret)>, Failure> {
        match (&self.username, &self.password) {
            (Some(user), Some(source)) => {
                let secret = source
                    .read()
                    .map_err(|err| Failure::new(Reason::Secret, err.to_string()))?;
                Ok(Some((user.clone(), secret)))
            }
            _ => Ok(None),
        }
    }

    fn cached_token(&self) -> Option<Secret> {
        let slot = lock(&self.token);
        slot.as_ref()
            .filter(|t| t.scope == self.scope() && Instant::now() < t.renew_at)
            .map(|t| t.token.clone())
    }

    fn forget_token(&self) {
        *lock(&self.token) = None;
    }

    fn request<'a>(
        &self,
        method: Method,
        url: &'a Url,
        accept: Option<&str>,
        authorization: Option<String>,
        limit: ByteSize,
    ) -> Result<ApiRequest<'a>, Failure> {
        let mut request = ApiRequest::new(method, url, self.request_timeout);
        request.body_limit = limit;
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept)?;
        }
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, &value)?;
        }
        Ok(request)
    }

    /// Sends a request with the credentials the registry wants: a cached
    /// token, else basic credentials; on a bearer challenge, a token from
    /// the realm and one retry.
    async fn send(
        &self,
        ctx: &ProbeContext,
        method: Method,
        url: &Url,
        accept: Option<&str>,
        credentials: Option<&(String, Secret)>,
        limit: ByteSize,
    ) -> Result<ApiResponse, Failure> {
        let first_auth = match self.cached_token() {
            Some(token) => Some(format!("Bearer {}", token.expose())),
            None => credentials.map(basic),
        };
        let response = self
            .client
            .send(self.request(method.clone(), url, accept, first_auth, limit)?)
            .await?;
        if response.status != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .header(WWW_AUTHENTICATE.as_str())
            .and_then(parse_challenge);
        let Some(challenge) = challenge.filter(|c| c.scheme.eq_ignore_ascii_case("bearer")) else {
            // Basic (or no) challenge: the credentials sent, if any, were
            // refused; the caller says which.
            return Ok(response);
        };
        self.forget_token();
        ctx.progress
            .set("fetching a token from the registry's realm");
        let token = self.fetch_token(&challenge, credentials).await?;
        ctx.progress.set("waiting for the registry");
        let retry = format!("Bearer {}", token.expose());
        Ok(self
            .client
            .send(self.request(method, url, accept, Some(retry), limit)?)
            .await?)
    }

    async fn fetch_token(
        &self,
        challenge: &Challenge,
        credentials: Option<&(String, Secret)>,
    ) -> Result<Secret, Failure> {
        let realm = challenge.param("realm").ok_or_else(|| {
            Failure::new(
                Reason::Protocol,
                "the registry's bearer challenge names no realm",
            )
        })?;
        let mut realm_url = Url::parse(realm).map_err(|err| {
            Failure::new(
                Reason::Protocol,
                format!("the registry's token realm is not a URL: {err}"),
            )
        })?;
        // Credentials go to the realm only over TLS, unless the registry
        // itself is plain HTTP (a test or in-cluster mirror).
        if realm_url.scheme() != "https"
            && !(realm_url.scheme() == "http" && self.base.scheme() == "http")
        {
            return Err(Failure::new(
                Reason::Protocol,
                format!(
                    "the registry's token realm on {} is not https",
                    host_of(&realm_url)
                ),
            ));
        }
        let scope = challenge
            .param("scope")
            .map(str::to_string)
            .unwrap_or_else(|| self.scope());
        {
            let mut query = realm_url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &scope);
        }
        let asked = Instant::now();
        let response = self
            .client
            .send(self.request(
                Method::GET,
                &realm_url,
                None,
                credentials.map(basic),
                TOKEN_BODY_LIMIT,
            )?)
            .await?;
        let realm_host = host_of(&realm_url);
        match response.status {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => {
                return Err(Failure::new(
                    Reason::Auth,
                    match credentials {
                        Some((user, _)) => format!(
                            "the token realm {realm_host} refused the credentials of {user:?} (401)"
                        ),
                        None => format!(
                            "the token realm {realm_host} wants credentials (401); set username and password_file"
                        ),
                    },
                ))
            }
            StatusCode::FORBIDDEN => {
                return Err(Failure::new(
                    Reason::Forbidden,
                    format!("the token realm {realm_host} denied {scope} (403)"),
                ))
            }
            s => {
                return Err(Failure::new(
                    Reason::Status,
                    format!("the token realm {realm_host} answered {s}"),
                ))
            }
        }
        let answer: TokenAnswer = response.json(&realm_host)?;
        let (token, renew_after) = answer.read().ok_or_else(|| {
            Failure::new(
                Reason::Json,
                format!("the token realm {realm_host} answered without a token"),
            )
        })?;
        let token = Secret::new(token);
        *lock(&self.token) = Some(CachedToken {
            token: token.clone(),
            scope: self.scope(),
            renew_at: asked + renew_after,
        });
        Ok(token)
    }

    /// The failure for an answer that is not a success.
    fn refusal(
        &self,
        response: &ApiResponse,
        what: &str,
        credentials: Option<&(String, Secret)>,
    ) -> Failure {
        let host = host_of(&self.base);
        match response.status {
            StatusCode::UNAUTHORIZED => Failure::new(
                Reason::Auth,
                match credentials {
                    Some((user, _)) => {
                        format!("{host} refused the credentials of {user:?} for {what} (401)")
                    }
                    None => format!(
                        "{host} wants credentials for {what} (401); set username and password_file"
                    ),
                },
            ),
            StatusCode::FORBIDDEN => Failure::new(
                Reason::Forbidden,
                format!("{host} denied access to {what} (403)"),
            ),
            status => Failure::new(
                Reason::Status,
                format!(
                    "{host} answered {status} for {what}{}",
                    error_code(&response.body)
                ),
            ),
        }
    }

    /// Whether the tag's manifest exists.
    async fn tag_present(
        &self,
        ctx: &ProbeContext,
        tag: &str,
        credentials: Option<&(String, Secret)>,
    ) -> Result<bool, Failure> {
        ctx.progress.set("asking for the tag's manifest");
        let url = self.v2_url(&format!("manifests/{tag}"));
        let response = self
            .send(
                ctx,
                Method::HEAD,
                &url,
                Some(MANIFEST_ACCEPT),
                credentials,
                ByteSize(64 * 1024),
            )
            .await?;
        match response.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.refusal(
                &response,
                &format!("the manifest of {}:{tag}", self.repository),
                credentials,
            )),
        }
    }

    /// Every tag, page by page, up to `max_tags`.
    async fn list_tags(
        &self,
        ctx: &ProbeContext,
        credentials: Option<&(String, Secret)>,
    ) -> Result<Listing, Failure> {
        let mut url = self.v2_url("tags/list");
        url.query_pairs_mut()
            .append_pair("n", &self.page_size.to_string());
        let mut tags = Vec::new();
        // Every page must bring a tag and a link must not come back: then
        // the listing ends within max_tags pages, whatever the registry
        // does with `n`.
        let mut visited = std::collections::HashSet::new();
        loop {
            if !visited.insert(url.to_string()) {
                return Err(Failure::new(
                    Reason::Protocol,
                    format!(
                        "{} links the pages of tags in a circle",
                        host_of(&self.base)
                    ),
                ));
            }
            ctx.progress.set("listing tags");
            let response = self
                .send(ctx, Method::GET, &url, None, credentials, PAGE_BODY_LIMIT)
                .await?;
            if response.status == StatusCode::NOT_FOUND {
                return Err(Failure::new(
                    Reason::TagMissing,
                    format!(
                        "repository {} not found on {}{}",
                        self.repository,
                        host_of(&self.base),
                        error_code(&response.body)
                    ),
                ));
            }
            if !response.status.is_success() {
                return Err(self.refusal(
                    &response,
                    &format!("the tags of {}", self.repository),
                    credentials,
                ));
            }
            let page_tags = read_tag_page(&response.body, &host_of(&self.base))?;
            let empty = page_tags.is_empty();
            for tag in page_tags {
                if tags.len() >= self.max_tags as usize {
                    return Ok(Listing { tags, cut: true });
                }
                tags.push(tag);
            }
            let next = response
                .header("link")
                .and_then(next_link)
                .map(|target| url.join(target));
            match next {
                None => return Ok(Listing { tags, cut: false }),
                Some(_) if empty => {
                    return Err(Failure::new(
                        Reason::Protocol,
                        format!(
                            "{} answered an empty page of tags that links to a next one",
                            host_of(&self.base)
                        ),
                    ))
                }
                Some(Ok(next)) if next.origin() == self.base.origin() => url = next,
                Some(Ok(next)) => {
                    return Err(Failure::new(
                        Reason::Protocol,
                        format!(
                            "the next page of tags points to another host ({})",
                            host_of(&next)
                        ),
                    ))
                }
                Some(Err(err)) => {
                    return Err(Failure::new(
                        Reason::Protocol,
                        format!("the next page link is not a URL: {err}"),
                    ))
                }
            }
        }
    }

    async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        let credentials = match self.credentials() {
            Ok(credentials) => credentials,
            Err(f) => return f.into_error(),
        };
        let mut outcome = self.check(ctx, credentials.as_ref()).await;
        // The password never reaches a message, whatever a server echoed.
        if let Some((_, password)) = &credentials {
            outcome.message = scrub(&outcome.message, [password.expose()]);
        }
        outcome
    }

    async fn check(&self, ctx: &ProbeContext, credentials: Option<&(String, Secret)>) -> Outcome {
        let mut measurements = Vec::new();
        let mut failures: Vec<Failure> = Vec::new();
        let mut notes = Vec::new();
        let tag = match &self.expected {
            Some(expected) => match expected.resolve(ctx).await {
                Ok(tag) => Some(tag),
                Err(f) => return f.into_error(),
            },
            None => None,
        };
        let reference = |tag: &str| format!("{}:{tag}", self.repository);
        if let Some(tag) = &tag {
            match self.tag_present(ctx, tag, credentials).await {
                Ok(present) => {
                    measurements.push(Measurement::new(
                        Measure::RegistryTagPresent,
                        f64::from(u8::from(present)),
                    ));
                    if present {
                        notes.push(format!("{} present", reference(tag)));
                    } else {
                        failures.push(Failure::new(
                            Reason::TagMissing,
                            format!(
                                "{} not found on {} (no manifest for the tag)",
                                reference(tag),
                                host_of(&self.base)
                            ),
                        ));
                    }
                }
                Err(f) => return f.into_error().with_measurements(measurements),
            }
        }
        let listing = match self.list_tags(ctx, credentials).await {
            Ok(listing) => listing,
            Err(f) if f.reason == Reason::TagMissing => {
                // The repository itself is gone: a broken expectation.
                measurements.push(Measurement::new(Measure::RegistryTags, 0.0));
                measurements.push(Measurement::new(Measure::RegistryMatchingTags, 0.0));
                failures.insert(0, f);
                return Outcome::from_failures(
                    failures.iter().map(|f| (f.reason, f.message.as_str())),
                )
                .expect("failures is not empty")
                .with_measurements(measurements);
            }
            Err(f) => return f.into_error().with_measurements(measurements),
        };
        let matching = listing
            .tags
            .iter()
            .filter(|t| Some(t.as_str()) != tag.as_deref())
            .filter(|t| self.tag_pattern.as_ref().is_none_or(|re| re.is_match(t)))
            .count();
        measurements.push(Measurement::new(
            Measure::RegistryTags,
            listing.tags.len() as f64,
        ));
        measurements.push(Measurement::new(
            Measure::RegistryMatchingTags,
            matching as f64,
        ));
        let counted = if listing.cut {
            format!(
                "the first {} tags (listing cut at max_tags)",
                listing.tags.len()
            )
        } else {
            format!("{} tags", listing.tags.len())
        };
        let what = match (&self.tag_pattern, &tag) {
            (Some(re), Some(tag)) => format!("matching {} besides {tag}", re.as_str()),
            (Some(re), None) => format!("matching {}", re.as_str()),
            (None, Some(tag)) => format!("besides {tag}"),
            (None, None) => "in all".to_string(),
        };
        match self.min_rollback_tags {
            Some(min) if (matching as u64) < u64::from(min) => failures.push(Failure::new(
                Reason::RollbackTags,
                format!(
                    "{matching} tags {what} among {counted} of {}, at least {min} needed for a rollback",
                    self.repository
                ),
            )),
            Some(min) => notes.push(format!(
                "{matching} tags {what} (at least {min} needed) among {counted}"
            )),
            None => notes.push(counted),
        }
        match Outcome::from_failures(failures.iter().map(|f| (f.reason, f.message.as_str()))) {
            Some(outcome) => outcome,
            None => Outcome::pass(notes.join("; ")),
        }
        .with_measurements(measurements)
    }
}

fn basic((user, password): &(String, Secret)) -> String {
    let pair = format!("{user}:{}", password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The first error code of a Distribution error body (`MANIFEST_UNKNOWN`),
/// as ` (CODE)`, or nothing. Messages are not quoted: servers may echo
/// request details in them. Public for the fuzz targets.
pub fn error_code(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        code: String,
    }
    serde_json::from_slice::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
        .filter(|e| {
            e.code.len() <= 40 && e.code.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
        .map(|e| format!(" ({})", e.code))
        .unwrap_or_default()
}

impl Probe for RegistryProbe {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        self.execute(ctx).boxed()
    }

    fn needs(&self) -> Needs {
        let watches = match &self.expected {
            Some(ExpectedTag::Running(source)) => vec![source.watch().clone()],
            _ => Vec::new(),
        };
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
    fn bearer_challenges_keep_commas_inside_quotes() {
        let challenge = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(challenge.scheme, "Bearer");
        assert_eq!(challenge.param("realm"), Some("https://auth.example/token"));
        assert_eq!(challenge.param("service"), Some("registry.example"));
        assert_eq!(challenge.param("scope"), Some("repository:a/b:pull,push"));
        let basic = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(basic.scheme, "Basic");
        assert_eq!(basic.param("realm"), Some("Registry Realm"));
    }

    #[test]
    fn the_next_link_is_found_among_others() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#),
            Some("https://x/next")
        );
        assert_eq!(next_link(r#"<https://x/prev>; rel="prev""#), None);
    }

    #[test]
    fn repository_and_tag_names_follow_the_distribution_grammar() {
        assert!(REPOSITORY.is_match("broxiva/api"));
        assert!(REPOSITORY.is_match("library/redis"));
        assert!(!REPOSITORY.is_match("Broxiva/API"));
        assert!(!REPOSITORY.is_match("a//b"));
        assert!(TAG.is_match("v1.2.3"));
        assert!(TAG.is_match("0a1b2c3"));
        assert!(!TAG.is_match("-bad"));
    }

    #[test]
    fn a_token_lifetime_beyond_the_clock_is_capped() {
        // Before the cap, `Instant::now() + u64::MAX seconds` panicked.
        let answer: TokenAnswer =
            serde_json::from_str(r#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
        let (token, renew_after) = answer.read().unwrap();
        assert_eq!(token, "t");
        assert!(renew_after < MAX_TOKEN_LIFETIME);
        let _ = Instant::now() + renew_after;
        let short: TokenAnswer = serde_json::from_str(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(short.read().unwrap().1, Duration::from_secs(45));
        let empty: TokenAnswer = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(empty.read().is_none());
    }

    #[test]
    fn error_codes_are_shown_but_not_messages() {
        assert_eq!(
            error_code(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}"#),
            " (MANIFEST_UNKNOWN)"
        );
        assert_eq!(error_code(b"not json"), "");
    }
}
