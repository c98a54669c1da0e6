//! How a Key Vault source lists a vault, as a real vault needs it:
//!
//! - **The challenge first.** The first request of the process goes
//!   without a token; the vault's `401` names its tenant and the token
//!   audience ([`super::challenge`]), verified to belong to the vault's
//!   domain. Later rounds reuse it; a `401` to a token brings a new one.
//! - **Retries within the run's deadline.** `429` and passing `5xx`
//!   answers are asked again after the wait `Retry-After` gives (else a
//!   backoff), while that leaves time before the check's timeout; the
//!   message says when and why it stopped.
//! - **One listing per round for every check of the vault** (with the same
//!   identity): the first check to run lists the whole vault (metadata
//!   only); other checks take that listing, errors included, until a check
//!   that has already read it runs again, which lists anew. Concurrent
//!   checks wait for one listing rather than each making their own.
//! - **Pages:** `nextLink` is followed as given (its host may carry
//!   `:443`, its api-version may differ) but only to the vault's own
//!   origin; an empty page with a `nextLink` is normal and does not count
//!   towards the page limit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::AUTHORIZATION;
use hyper::StatusCode;
use url::Url;

use super::challenge::{self, Challenge};
use super::key_vault::{innermost_error_code, read_secret_page, KeyVaultSource, API_VERSION};
use super::{SecretFacts, SourceError};
use crate::clients::api_client::{host_of, ApiRequest, ApiResponse};
use crate::clients::azure_auth::{send_retrying, Credential};
use crate::config::{ByteSize, Secret};
use crate::probe::ProbeContext;
use crate::result::Reason;

/// The most Key Vault returns per page.
const PAGE_SIZE: &str = "25";
/// Pages with secrets read at most: 400 pages of 25 is 10000 secrets.
const MAX_PAGES: u32 = 400;
/// Requests per listing at most, empty pages included: a vault that sends
/// empty pages forever is stopped here (or by the deadline) too.
const MAX_REQUESTS: u32 = 4 * MAX_PAGES;
const PAGE_BODY_LIMIT: ByteSize = ByteSize(4 * 1024 * 1024);
/// A shared listing older than this is never taken by another check.
const MAX_SHARED_AGE: Duration = Duration::from_secs(10 * 60);

/// Every secret of a vault by lower-cased name (Key Vault names are
/// case-insensitive), or why the vault could not be listed.
type ListingResult = Result<Arc<HashMap<String, SecretFacts>>, (Reason, String)>;

struct Listing {
    at: Instant,
    result: ListingResult,
    /// Sources that have read this listing.
    readers: HashSet<u64>,
}

/// What the checks of one vault (and identity) share.
#[derive(Default)]
pub struct VaultShared {
    challenge: std::sync::Mutex<Option<Challenge>>,
    /// Held while listing, so concurrent checks wait for one listing.
    listing: tokio::sync::Mutex<Option<Listing>>,
}

fn error(reason: Reason, message: impl Into<String>) -> SourceError {
    SourceError {
        reason,
        message: message.into(),
    }
}

/// The 403 message: the service's inner code, and what it means.
fn forbidden(host: &str, who: &str, body: &[u8]) -> String {
    let code = innermost_error_code(body);
    let what = match code.as_deref() {
        Some("ForbiddenByRbac") => {
            "no role assignment allows it; grant Key Vault Secrets User (or a role with Microsoft.KeyVault/vaults/secrets/readMetadata/action) on the vault"
        }
        Some("ForbiddenByPolicy") => {
            "the vault's access policies give it no List permission on secrets"
        }
        Some("AccessDenied") => {
            "the vault's access policies give it no List permission on secrets (the code real vaults send for an access-policy denial, and for a trusted-service caller the policies do not name); add List on secrets to its access policy, or grant Key Vault Secrets User if the vault uses Azure RBAC"
        }
        Some("ForbiddenByFirewall") => {
            "the vault's firewall does not admit vouch's network address (and vouch is not a trusted service); allow the cluster's egress or use a private endpoint"
        }
        Some(_) => "see the code in the vault's documentation",
        None => "a role assignment, access policy or firewall rule refuses it",
    };
    format!(
        "{host} denied {who} listing secrets (403{}): {what}",
        code.map(|c| format!(", {c}")).unwrap_or_default()
    )
}

impl KeyVaultSource {
    /// The facts of the wanted secrets, from this round's shared listing.
    pub(super) async fn list_shared(
        &self,
        ctx: &ProbeContext,
        wanted: &HashSet<String>,
    ) -> Result<Vec<SecretFacts>, SourceError> {
        ctx.progress
            .set("waiting for this round's listing of the vault");
        let mut listing = self.shared.listing.lock().await;
        let reusable = listing
            .as_ref()
            .is_some_and(|l| !l.readers.contains(&self.id) && l.at.elapsed() < MAX_SHARED_AGE);
        if !reusable {
            let at = Instant::now();
            let result = self
                .list_all(ctx, at + self.timeout)
                .await
                .map(Arc::new)
                .map_err(|err| (err.reason, err.message));
            *listing = Some(Listing {
                at,
                result,
                readers: HashSet::new(),
            });
        }
        let listing = listing.as_mut().expect("set above");
        listing.readers.insert(self.id);
        let all = listing
            .result
            .as_ref()
            .map_err(|(reason, message)| error(*reason, message.clone()))?;
        Ok(wanted
            .iter()
            .filter_map(|name| all.get(&name.to_ascii_lowercase()).cloned())
            .collect())
    }

    /// The vault's challenge: the one seen last, else asked for with a
    /// request without a token.
    async fn challenge(
        &self,
        ctx: &ProbeContext,
        deadline: Instant,
    ) -> Result<Challenge, SourceError> {
        let known = self
            .shared
            .challenge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(known) = known {
            return Ok(known);
        }
        ctx.progress.set("asking the vault for its challenge");
        let url = self.first_page();
        let (response, retried) = send_retrying(&self.client, deadline, false, |left| {
            let mut request = ApiRequest::get(&url, left);
            request.body_limit = PAGE_BODY_LIMIT;
            Ok(request)
        })
        .await
        .map_err(|err| error(err.reason(), format!("vault {err}")))?;
        if response.status != StatusCode::UNAUTHORIZED {
            return Err(error(
                Reason::Protocol,
                format!(
                    "{} answered {} without a token, not a 401 challenge{retried}",
                    host_of(&self.vault),
                    response.status
                ),
            ));
        }
        self.adopt_challenge(&response)
    }

    /// Parses and verifies the challenge of a 401 and keeps it.
    fn adopt_challenge(&self, response: &ApiResponse) -> Result<Challenge, SourceError> {
        let host = self.vault.host_str().unwrap_or("");
        let challenge = response
            .header("www-authenticate")
            .ok_or_else(|| "its 401 carries no WWW-Authenticate challenge".to_string())
            .and_then(challenge::parse)
            .and_then(|c| c.verify(host).map(|()| c))
            .map_err(|why| error(Reason::Auth, format!("{}: {why}", host_of(&self.vault))))?;
        *self
            .shared
            .challenge
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(challenge.clone());
        Ok(challenge)
    }

    fn first_page(&self) -> Url {
        let mut url = self.vault.join("secrets").expect("a relative path joins");
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION)
            .append_pair("maxresults", PAGE_SIZE);
        url
    }

    async fn token(
        &self,
        credential: &Credential,
        challenge: &Challenge,
        renew: bool,
        deadline: Instant,
    ) -> Result<Secret, SourceError> {
        self.tokens
            .token(
                &self.client,
                credential,
                &challenge.resource,
                deadline.saturating_duration_since(Instant::now()),
                renew,
            )
            .await
            .map_err(|err| error(err.reason, err.message))
    }

    /// Lists every secret of the vault (metadata only) by lower-cased name.
    async fn list_all(
        &self,
        ctx: &ProbeContext,
        deadline: Instant,
    ) -> Result<HashMap<String, SecretFacts>, SourceError> {
        let mut challenge = self.challenge(ctx, deadline).await?;
        let mut credential = self.credential(challenge.tenant.as_deref())?;
        ctx.progress.set("getting an Entra ID token");
        let mut token = self.token(&credential, &challenge, false, deadline).await?;
        let mut renewed = false;
        let mut url = self.first_page();
        let host = host_of(&self.vault);
        let mut found = HashMap::new();
        let (mut pages, mut requests) = (0, 0);
        loop {
            requests += 1;
            if pages >= MAX_PAGES || requests > MAX_REQUESTS {
                return Err(error(
                    Reason::TooLarge,
                    format!("{host} lists more than {MAX_PAGES} pages of secrets ({requests} requests); stopped there"),
                ));
            }
            ctx.progress.set("listing the vault's secrets");
            let bearer = format!("Bearer {}", token.expose());
            let (response, retried) = send_retrying(&self.client, deadline, false, |left| {
                let mut request = ApiRequest::get(&url, left);
                request.body_limit = PAGE_BODY_LIMIT;
                request.header(AUTHORIZATION, &bearer)
            })
            .await
            .map_err(|err| error(err.reason(), format!("vault {err}")))?;
            match response.status {
                StatusCode::OK => {}
                // A token the vault no longer takes (revoked, the cache's
                // clock wrong, or the vault moved tenant): its challenge
                // again, one new token, one retry.
                StatusCode::UNAUTHORIZED if !renewed => {
                    renewed = true;
                    challenge = self.adopt_challenge(&response)?;
                    credential = self.credential(challenge.tenant.as_deref())?;
                    ctx.progress.set("renewing the Entra ID token");
                    token = self.token(&credential, &challenge, true, deadline).await?;
                    requests -= 1;
                    continue;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(error(
                        Reason::Auth,
                        format!(
                            "{host} refused the token of {} for tenant {} and audience {} (401{}) after a fresh one",
                            credential.describe(),
                            challenge.tenant.as_deref().unwrap_or("(none named)"),
                            challenge.resource,
                            super::key_vault::vault_error_code(&response.body)
                        ),
                    ))
                }
                StatusCode::FORBIDDEN => {
                    return Err(error(
                        Reason::Forbidden,
                        forbidden(&host, &credential.describe(), &response.body),
                    ))
                }
                status => {
                    return Err(error(
                        Reason::Status,
                        format!(
                            "{host} answered {status}{} to the secret listing{retried}",
                            super::key_vault::vault_error_code(&response.body)
                        ),
                    ))
                }
            }
            let (facts, next_link) = read_secret_page(&response.body, &host)
                .map_err(|err| error(err.reason(), err.to_string()))?;
            if !facts.is_empty() {
                pages += 1;
            }
            for fact in facts {
                found.insert(fact.name.to_ascii_lowercase(), fact);
            }
            let Some(next) = next_link else {
                return Ok(found);
            };
            let next = Url::parse(&next).map_err(|err| {
                error(
                    Reason::Protocol,
                    format!("{host}'s nextLink is not a URL: {err}"),
                )
            })?;
            // The token goes only to the vault itself (an explicit :443 is
            // the same origin).
            if next.origin() != self.vault.origin() {
                return Err(error(
                    Reason::Protocol,
                    format!(
                        "{host}'s nextLink points to another host ({})",
                        host_of(&next)
                    ),
                ));
            }
            url = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_quote_the_inner_code_and_say_what_it_means() {
        let body = |inner: &str| {
            format!(
                r#"{{"error":{{"code":"Forbidden","message":"Caller oid=1","innererror":{{"code":"{inner}"}}}}}}"#
            )
        };
        let rbac = forbidden("kv", "client c", body("ForbiddenByRbac").as_bytes());
        assert!(
            rbac.starts_with(
                "kv denied client c listing secrets (403, ForbiddenByRbac): no role assignment"
            ),
            "{rbac}"
        );
        let firewall = forbidden("kv", "client c", body("ForbiddenByFirewall").as_bytes());
        assert!(
            firewall.contains("(403, ForbiddenByFirewall): the vault's firewall"),
            "{firewall}"
        );
        assert!(!firewall.contains("role"), "{firewall}");
        let policy = forbidden("kv", "client c", body("ForbiddenByPolicy").as_bytes());
        assert!(policy.contains("access policies"), "{policy}");
        let denied = forbidden("kv", "client c", body("AccessDenied").as_bytes());
        assert!(
            denied.contains(
                "(403, AccessDenied): the vault's access policies give it no List permission on secrets"
            ),
            "{denied}"
        );
        let other = forbidden("kv", "client c", body("ForbiddenByConnection").as_bytes());
        assert!(other.contains("(403, ForbiddenByConnection)"), "{other}");
        assert!(!other.contains("role"), "{other}");
        let bare = forbidden("kv", "client c", b"<html>");
        assert!(
            bare.contains("(403): a role assignment, access policy or firewall rule"),
            "{bare}"
        );
    }
}
