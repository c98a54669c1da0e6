//! The `registry` block of a check and its compilation: every problem
//! names its key.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;
use url::Url;

use super::{ExpectedTag, RegistryProbe, DEFAULT_MAX_TAGS, DEFAULT_PAGE_SIZE};
use crate::clients::acr::{AcrExchange, DEFAULT_AUDIENCE};
use crate::clients::api_client::ApiClient;
use crate::clients::azure_identity::{Identity, IdentityConfig};
use crate::config::Problem;
use crate::probe::cross_check::{sync_wait, ImageTagOf, ImageTagOfConfig};
use crate::probe::BuildContext;
use crate::secret::SecretSource;

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
    /// An Azure Container Registry read with an Entra ID identity
    /// (workload or managed identity): the identity's token is exchanged
    /// for registry tokens (see [`crate::clients::acr`]). The keys are a
    /// Key Vault source's identity keys, and `audience`.
    pub azure_identity: Option<IdentityConfig>,
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
        let base = base_url(&config.url, &mut problems);
        check_names(config, &mut problems);
        let wait = sync_wait(ctx.timeout);
        let running = config
            .tag_of
            .as_ref()
            .and_then(|reference| ImageTagOf::compile(reference, "tag_of", wait, &mut problems));
        let tag_pattern = tag_pattern(config, &mut problems);
        let password = ctx.secrets.source(
            config.password_file.as_ref(),
            config.password_env.as_ref(),
            "password",
            "",
            &mut problems,
        );
        check_user(config, password.as_ref(), &mut problems);
        let identity = config.azure_identity.as_ref().map(|identity| {
            (
                Identity::compile(identity, "azure_identity", ctx, &mut problems),
                audience(config, &mut problems),
            )
        });
        let (max_tags, page_size) = limits(config, &mut problems);
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
        let client = ApiClient::new(&tls, timeout);
        let acr = identity.map(|(identity, audience)| {
            AcrExchange::new(
                identity,
                audience,
                &base,
                client.clone(),
                ctx.clients.azure_tokens.clone(),
                timeout,
            )
        });
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
            client,
            acr,
            token: Mutex::new(None),
        })
    }
}

/// The registry's base URL: http(s), a host, no credentials, no path.
fn base_url(text: &str, problems: &mut Vec<Problem>) -> Option<Url> {
    match Url::parse(text) {
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
    }
}

/// The repository and tag follow the Distribution grammar, and there is
/// something to verify.
fn check_names(config: &RegistryConfig, problems: &mut Vec<Problem>) {
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
}

fn tag_pattern(config: &RegistryConfig, problems: &mut Vec<Problem>) -> Option<regex::Regex> {
    let pattern =
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
    pattern
}

/// A username comes with a password source, and the other way round.
fn check_user(
    config: &RegistryConfig,
    password: Option<&SecretSource>,
    problems: &mut Vec<Problem>,
) {
    match (&config.username, password) {
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
}

/// The Entra ID audience of an `azure_identity` block (an https URL), and
/// no basic credentials beside it.
fn audience(config: &RegistryConfig, problems: &mut Vec<Problem>) -> String {
    if config.username.is_some() {
        problems.push(Problem::new(
            "azure_identity",
            "give username and a password, or azure_identity, not both",
        ));
    }
    let text = config
        .azure_identity
        .as_ref()
        .and_then(|identity| identity.audience.clone())
        .unwrap_or_else(|| DEFAULT_AUDIENCE.to_string());
    match Url::parse(&text) {
        Ok(url) if url.scheme() == "https" && url.host_str().is_some() => {
            text.trim_end_matches('/').to_string()
        }
        _ => {
            problems.push(Problem::new(
                "azure_identity.audience",
                "must be an https:// URL such as https://containerregistry.azure.net",
            ));
            text
        }
    }
}

/// `max_tags` and `page_size`, defaulted and bounded.
fn limits(config: &RegistryConfig, problems: &mut Vec<Problem>) -> (u32, u32) {
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
    (max_tags, page_size)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
