//! How the probe authenticates: basic credentials, and bearer tokens
//! from the realm a `WWW-Authenticate: Bearer realm=...,service=...,scope=...`
//! challenge names (fetched with the basic credentials, or anonymously),
//! kept until shortly before they expire and fetched again on a 401; for
//! an Azure Container Registry with `azure_identity`, tokens exchanged for
//! the identity's Entra ID token instead ([`crate::clients::acr`]).

use std::time::Instant;

use hyper::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};
use url::Url;

use super::wire::{basic, error_code, parse_challenge, Challenge, TokenAnswer};
use super::{CachedToken, RegistryProbe, TOKEN_BODY_LIMIT};
use crate::clients::acr::{AcrExchange, Asked};
use crate::clients::api_client::{host_of, ApiRequest, ApiResponse};
use crate::config::ByteSize;
use crate::lock::lock;
use crate::probe::ProbeContext;
use crate::result::{Failure, Reason};
use crate::secret::Secret;

impl RegistryProbe {
    pub(super) fn v2_url(&self, rest: &str) -> Url {
        self.base
            .join(&format!("v2/{}/{rest}", self.repository))
            .expect("a relative path joins any http(s) base")
    }

    fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// The basic credentials, read at every run.
    pub(super) async fn credentials(&self) -> Result<Option<(String, Secret)>, Failure> {
        match (&self.username, &self.password) {
            (Some(user), Some(source)) => {
                let secret = source
                    .read_async()
                    .await
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
    pub(super) async fn send(
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
        let token = match &self.acr {
            Some(acr) => {
                ctx.progress
                    .set("exchanging the Entra ID token for a registry token");
                self.acr_token(acr, &challenge).await?
            }
            None => {
                ctx.progress
                    .set("fetching a token from the registry's realm");
                self.fetch_token(&challenge, credentials).await?
            }
        };
        ctx.progress.set("waiting for the registry");
        let retry = format!("Bearer {}", token.expose());
        let response = self
            .client
            .send(self.request(method, url, accept, Some(retry), limit)?)
            .await?;
        match self.insufficient_scope(&response) {
            Some(failure) => {
                self.forget_token();
                Err(failure)
            }
            None => Ok(response),
        }
    }

    /// A fresh token the registry still refuses with `error="insufficient_scope"`
    /// grants less than the check reads: the identity lacks pull rights.
    fn insufficient_scope(&self, response: &ApiResponse) -> Option<Failure> {
        if response.status != StatusCode::UNAUTHORIZED {
            return None;
        }
        let challenge = response
            .header(WWW_AUTHENTICATE.as_str())
            .and_then(parse_challenge)?;
        if challenge.param("error") != Some("insufficient_scope") {
            return None;
        }
        let scope = challenge
            .param("scope")
            .map(str::to_string)
            .unwrap_or_else(|| self.scope());
        let who = if self.acr.is_some() {
            "; the identity needs pull rights on the repository (AcrPull)"
        } else {
            ""
        };
        Some(Failure::new(
            Reason::Forbidden,
            format!(
                "{} refused the realm's token for {scope} (401, insufficient_scope): it does not grant that scope{who}",
                host_of(&self.base)
            ),
        ))
    }

    /// The realm a bearer challenge names.
    fn realm(challenge: &Challenge) -> Result<Url, Failure> {
        let realm = challenge.param("realm").ok_or_else(|| {
            Failure::new(
                Reason::Protocol,
                "the registry's bearer challenge names no realm",
            )
        })?;
        Url::parse(realm).map_err(|err| {
            Failure::new(
                Reason::Protocol,
                format!("the registry's token realm is not a URL: {err}"),
            )
        })
    }

    /// An ACR access token for the challenge, exchanged for the identity's
    /// Entra ID token, kept as long as its `exp` allows.
    async fn acr_token(&self, acr: &AcrExchange, challenge: &Challenge) -> Result<Secret, Failure> {
        let realm = Self::realm(challenge)?;
        let host = self.base.host_str().unwrap_or_default().to_string();
        let scope = challenge
            .param("scope")
            .map(str::to_string)
            .unwrap_or_else(|| self.scope());
        let asked = Asked {
            realm: &realm,
            service: challenge.param("service").unwrap_or(&host),
            scope: &scope,
        };
        let asked_at = Instant::now();
        let (token, use_for) = acr.access_token(&self.base, &asked).await?;
        *lock(&self.token) = Some(CachedToken {
            token: token.clone(),
            scope: self.scope(),
            renew_at: asked_at + use_for,
        });
        Ok(token)
    }

    async fn fetch_token(
        &self,
        challenge: &Challenge,
        credentials: Option<&(String, Secret)>,
    ) -> Result<Secret, Failure> {
        let mut realm_url = Self::realm(challenge)?;
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
    pub(super) fn refusal(
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
}
