//! What the probe verifies: the expected tag's manifest answers `HEAD`,
//! and enough tags (matching the pattern) are kept for a rollback, read
//! page by page through the `Link` header up to `max_tags`.

use std::collections::HashSet;

use hyper::{Method, StatusCode};

use super::wire::{error_code, next_link, read_tag_page};
use super::{RegistryProbe, MANIFEST_ACCEPT, PAGE_BODY_LIMIT};
use crate::clients::api_client::host_of;
use crate::config::ByteSize;
use crate::probe::ProbeContext;
use crate::result::{Failure, Measure, Measurement, Outcome, Reason};
use crate::secret::{scrub, Secret};

/// What the tag listing found.
struct Listing {
    tags: Vec<String>,
    cut: bool,
}

impl RegistryProbe {
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
        let mut visited = HashSet::new();
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

    pub(super) async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        let credentials = match self.credentials().await {
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
