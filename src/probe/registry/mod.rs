//! The `registry` check kind: an image repository in an OCI registry
//! (Distribution API v2, as ACR, GHCR, Docker Hub and Harbor speak it).
//! The expected tag's manifest must answer `HEAD`, and enough tags matching
//! a pattern must be kept for a rollback.
//!
//! Authentication: anonymous, HTTP basic, or a bearer token obtained
//! through the `WWW-Authenticate: Bearer realm=...,service=...,scope=...`
//! challenge (with the basic credentials, or anonymously), or for an Azure
//! Container Registry through an Entra ID identity (`azure_identity`: the
//! identity's token exchanged for registry tokens). The token is kept
//! until shortly before it expires and fetched again on a 401.
//!
//! The parts: the config and its checks ([`config`]), what registries send
//! and how it is parsed ([`wire`]), authentication ([`auth`]) and the
//! verification itself ([`check`]).

mod auth;
mod check;
mod config;
mod wire;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use url::Url;

use super::cross_check::ImageTagOf;
use super::{Needs, Probe, ProbeContext};
use crate::clients::acr::AcrExchange;
use crate::clients::api_client::{ApiClient, ApiError};
use crate::config::ByteSize;
use crate::result::{Failure, Outcome};
use crate::secret::{Secret, SecretSource};

pub use config::RegistryConfig;
pub use wire::{error_code, next_link, parse_challenge, read_tag_page, Challenge, TokenAnswer};

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
    /// The Entra ID → ACR token exchange, with `azure_identity`.
    acr: Option<AcrExchange>,
    token: Mutex<Option<CachedToken>>,
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure::new(err.reason(), err.to_string())
    }
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
