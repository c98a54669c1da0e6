//! Which Entra ID identity a check uses, as its config names it: the keys
//! the Key Vault source and the registry kind's ACR exchange share
//! (`auth`, `tenant_id`, `client_id`, `authority_host`,
//! `federated_token_file`, `client_secret_file`/`client_secret_env`,
//! `managed_identity_endpoint`), checked once at load and turned into a
//! [`Credential`] at every run, when the environment variables AKS sets
//! for workload identity are read (a validating machine needs none).

use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::azure_auth::{Credential, DEFAULT_AUTHORITY, IMDS_ENDPOINT};
use crate::config::Problem;
use crate::probe::BuildContext;
use crate::result::{Failure, Reason};
use crate::secret::SecretSource;

/// How the check authenticates to Entra ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    WorkloadIdentity,
    ManagedIdentity,
    ClientSecret,
}

/// The identity keys as written (in a `key_vault` block, or the registry
/// kind's `azure_identity` block).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// `workload_identity`, `managed_identity` or `client_secret`. Default:
    /// workload identity when a federated token file is known (config or
    /// AZURE_FEDERATED_TOKEN_FILE), else client secret when one is given,
    /// else managed identity.
    pub auth: Option<AuthMethod>,
    /// Tenant (directory) ID; default AZURE_TENANT_ID.
    pub tenant_id: Option<String>,
    /// Application (client) ID; default AZURE_CLIENT_ID. For a managed
    /// identity, selects a user-assigned one.
    pub client_id: Option<String>,
    /// Entra ID's URL; default AZURE_AUTHORITY_HOST, else
    /// `https://login.microsoftonline.com/`.
    pub authority_host: Option<String>,
    /// The projected service-account token; default
    /// AZURE_FEDERATED_TOKEN_FILE.
    pub federated_token_file: Option<PathBuf>,
    /// File holding a client secret (development).
    pub client_secret_file: Option<PathBuf>,
    /// Environment variable holding a client secret (development).
    pub client_secret_env: Option<String>,
    /// The managed-identity token endpoint (default the instance metadata
    /// service, `http://169.254.169.254/metadata/identity/oauth2/token`).
    pub managed_identity_endpoint: Option<String>,
    /// The Entra ID audience to ask a token for (ACR only: default ACR's
    /// own, `https://containerregistry.azure.net`; the ARM audience
    /// `https://management.azure.com` works where the registry still
    /// accepts it). A vault names its own in its challenge.
    pub audience: Option<String>,
}

/// A checked identity config (paths resolved against the config file).
#[derive(Clone, Debug)]
pub struct Identity {
    auth: Option<AuthMethod>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    authority_host: Option<Url>,
    federated_token_file: Option<PathBuf>,
    client_secret: Option<SecretSource>,
    managed_identity_endpoint: Option<Url>,
}

/// An http(s) URL without credentials; a problem under `key` otherwise.
pub fn parse_http_url(text: &str, key: &str, problems: &mut Vec<Problem>) -> Option<Url> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            if !url.username().is_empty() || url.password().is_some() {
                problems.push(Problem::new(key, "must not hold credentials"));
                return None;
            }
            Some(url)
        }
        Ok(_) => {
            problems.push(Problem::new(key, "must be an http:// or https:// URL"));
            None
        }
        Err(err) => {
            problems.push(Problem::new(key, format!("invalid URL: {err}")));
            None
        }
    }
}

impl Identity {
    /// Checks `config`; problems are named `{block}.{key}` (or `{key}`
    /// when `block` is empty).
    pub fn compile(
        config: &IdentityConfig,
        block: &str,
        ctx: &BuildContext,
        problems: &mut Vec<Problem>,
    ) -> Identity {
        let key = |name: &str| {
            if block.is_empty() {
                name.to_string()
            } else {
                format!("{block}.{name}")
            }
        };
        let authority_host = config
            .authority_host
            .as_deref()
            .and_then(|text| parse_http_url(text, &key("authority_host"), problems));
        let managed_identity_endpoint = config
            .managed_identity_endpoint
            .as_deref()
            .and_then(|text| parse_http_url(text, &key("managed_identity_endpoint"), problems));
        let client_secret = ctx.secrets.source(
            config.client_secret_file.as_ref(),
            config.client_secret_env.as_ref(),
            "client_secret",
            block,
            problems,
        );
        for (name, value) in [
            ("tenant_id", &config.tenant_id),
            ("client_id", &config.client_id),
        ] {
            if value.as_deref().is_some_and(|v| {
                v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            }) {
                problems.push(Problem::new(
                    key(name),
                    "must be a GUID or domain name (letters, digits, '-', '.')",
                ));
            }
        }
        check_method(config, client_secret.is_some(), &key, problems);
        Identity {
            auth: config.auth,
            tenant_id: config.tenant_id.clone(),
            client_id: config.client_id.clone(),
            authority_host,
            federated_token_file: config
                .federated_token_file
                .as_ref()
                .map(|p| ctx.resolve_path(p)),
            client_secret,
            managed_identity_endpoint,
        }
    }

    /// Tells identities apart for what checks share (tokens, listings):
    /// one that may not read a resource must not pass on another's read.
    pub fn key(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.auth,
            self.tenant_id,
            self.client_id,
            self.authority_host,
            self.federated_token_file,
            self.client_secret,
            self.managed_identity_endpoint
        )
    }

    /// The tenant the config or the environment names, if any.
    pub fn tenant(&self) -> Option<String> {
        self.tenant_id.clone().or_else(|| env("AZURE_TENANT_ID"))
    }

    /// The credential for this run: the config, then the environment
    /// variables AKS sets for workload identity. A tenant named by the
    /// resource (`challenged`, from a vault's challenge) wins: tokens must
    /// come from the resource's tenant.
    pub fn credential(&self, challenged: Option<&str>) -> Result<Credential, Failure> {
        let token_file = self
            .federated_token_file
            .clone()
            .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from));
        let method = self.auth.unwrap_or(if token_file.is_some() {
            AuthMethod::WorkloadIdentity
        } else if self.client_secret.is_some() {
            AuthMethod::ClientSecret
        } else {
            AuthMethod::ManagedIdentity
        });
        let client_id = self.client_id.clone().or_else(|| env("AZURE_CLIENT_ID"));
        let missing = |what: &str, variable: &str| Failure {
            reason: Reason::Auth,
            message: format!(
                "{} needs {what}: set it in the check or the {variable} environment variable",
                match method {
                    AuthMethod::WorkloadIdentity => "workload identity",
                    AuthMethod::ClientSecret => "client-secret authentication",
                    AuthMethod::ManagedIdentity => "managed identity",
                }
            ),
        };
        let authority = || -> Result<Url, Failure> {
            match &self.authority_host {
                Some(url) => Ok(url.clone()),
                None => Url::parse(
                    &env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.to_string()),
                )
                .map_err(|err| Failure {
                    reason: Reason::Auth,
                    message: format!("AZURE_AUTHORITY_HOST is not a URL: {err}"),
                }),
            }
        };
        let tenant = || {
            challenged
                .map(str::to_string)
                .or_else(|| self.tenant())
                .ok_or_else(|| missing("tenant_id", "AZURE_TENANT_ID"))
        };
        Ok(match method {
            AuthMethod::WorkloadIdentity => Credential::WorkloadIdentity {
                authority: authority()?,
                tenant_id: tenant()?,
                client_id: client_id.ok_or_else(|| missing("client_id", "AZURE_CLIENT_ID"))?,
                token_file: token_file
                    .ok_or_else(|| missing("federated_token_file", "AZURE_FEDERATED_TOKEN_FILE"))?,
            },
            AuthMethod::ClientSecret => Credential::ClientSecret {
                authority: authority()?,
                tenant_id: tenant()?,
                client_id: client_id.ok_or_else(|| missing("client_id", "AZURE_CLIENT_ID"))?,
                secret: self
                    .client_secret
                    .clone()
                    .ok_or_else(|| missing("client_secret_file", "(none)"))?,
            },
            AuthMethod::ManagedIdentity => Credential::ManagedIdentity {
                endpoint: self
                    .managed_identity_endpoint
                    .clone()
                    .unwrap_or_else(|| Url::parse(IMDS_ENDPOINT).expect("a valid URL")),
                client_id,
            },
        })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Keys that only one `auth` method reads are refused with the others.
fn check_method(
    config: &IdentityConfig,
    has_secret: bool,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<Problem>,
) {
    match config.auth {
        Some(AuthMethod::ClientSecret) if !has_secret => problems.push(Problem::new(
            key("auth"),
            "client_secret needs client_secret_file or client_secret_env",
        )),
        Some(AuthMethod::WorkloadIdentity | AuthMethod::ManagedIdentity) if has_secret => problems
            .push(Problem::new(
                key(if config.client_secret_file.is_some() {
                    "client_secret_file"
                } else {
                    "client_secret_env"
                }),
                "only used with auth: client_secret",
            )),
        _ => {}
    }
    if config.managed_identity_endpoint.is_some()
        && matches!(
            config.auth,
            Some(AuthMethod::WorkloadIdentity | AuthMethod::ClientSecret)
        )
    {
        problems.push(Problem::new(
            key("managed_identity_endpoint"),
            "only used with auth: managed_identity",
        ));
    }
}
