//! What an HTTP answer must look like, compiled from config, and the
//! evaluation that names every broken expectation.

use std::fmt;
use std::time::Duration;

use hyper::header::{HeaderName, LOCATION};
use hyper::StatusCode;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use serde_json_path::JsonPath;
use url::Url;

use super::client::Exchange;
use crate::config::{format_duration, Problem};
use crate::kube::WatchKey;
use crate::probe::cross_check::{ImageTagOf, ImageTagOfConfig, Unknown};
use crate::probe::ProbeContext;
use crate::result::Reason;
use crate::secret::Secret;

/// An accepted status: one code, a class (`2xx`) or a range (`200-299`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRange {
    low: u16,
    high: u16,
    text_class: bool,
}

impl StatusRange {
    pub const SUCCESS: StatusRange = StatusRange {
        low: 200,
        high: 299,
        text_class: true,
    };

    fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid status {text:?}: expected a code (200), a class (2xx) or a range (200-299)"
            )
        };
        let code = |t: &str| -> Result<u16, String> {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(bad)
        };
        let text = text.trim();
        if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            let digit = class.parse::<u16>().ok().filter(|d| (1..=5).contains(d));
            let digit = digit.ok_or_else(bad)?;
            return Ok(StatusRange {
                low: digit * 100,
                high: digit * 100 + 99,
                text_class: true,
            });
        }
        if let Some((low, high)) = text.split_once('-') {
            let (low, high) = (code(low)?, code(high)?);
            if low > high {
                return Err(bad());
            }
            return Ok(StatusRange {
                low,
                high,
                text_class: false,
            });
        }
        let single = code(text)?;
        Ok(StatusRange {
            low: single,
            high: single,
            text_class: false,
        })
    }

    fn contains(&self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text_class {
            write!(f, "{}xx", self.low / 100)
        } else if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// `expect.status`: a list of codes, classes and ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusList(pub Vec<StatusRange>);

impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StatusList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of status codes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<StatusItem>()? {
                    items.push(item.0);
                }
                if items.is_empty() {
                    return Err(de::Error::custom("the list of status codes is empty"));
                }
                Ok(StatusList(items))
            }
        }
        deserializer.deserialize_seq(ListVisitor)
    }
}

struct StatusItem(StatusRange);

impl<'de> Deserialize<'de> for StatusItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl Visitor<'_> for ItemVisitor {
            type Value = StatusItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status code (200), class (2xx) or range (200-299)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusItem, E> {
                StatusRange::parse(&v.to_string())
                    .map(StatusItem)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusItem, E> {
                StatusRange::parse(&v.to_string())
                    .map(StatusItem)
                    .map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusItem, E> {
                StatusRange::parse(v).map(StatusItem).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

/// Where a JSON expectation looks: a JSONPath (RFC 9535, starting with `$`)
/// that must select exactly one value, or a JSON Pointer (RFC 6901,
/// starting with `/`).
#[derive(Debug)]
pub enum JsonSelector {
    Path(JsonPath),
    Pointer(String),
}

impl JsonSelector {
    /// Reads a selector as written in `expect.json` (public for the fuzz
    /// targets).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with('$') {
            // serde_json_path 0.7 panics (`unreachable!`) on some unfinished
            // escapes such as `$["\u`, found by the json_selector fuzz
            // target: a config error, never a crash of `serve` on reload.
            std::panic::catch_unwind(|| JsonPath::parse(text))
                .map_err(|_| format!("invalid JSONPath {text:?}: the parser gave up"))?
                .map(JsonSelector::Path)
                .map_err(|err| format!("invalid JSONPath {text:?}: {err}"))
        } else if text.is_empty() || text.starts_with('/') {
            Ok(JsonSelector::Pointer(text.to_string()))
        } else {
            Err(format!(
                "invalid JSON selector {text:?}: start a JSONPath with $ (e.g. $.status) or a JSON Pointer with / (e.g. /status)"
            ))
        }
    }

    /// The one value the selector picks from `document`.
    pub fn select<'v>(&self, document: &'v Value) -> Result<&'v Value, &'static str> {
        match self {
            JsonSelector::Path(path) => path.query(document).exactly_one().map_err(|err| {
                if err.is_empty() {
                    "is missing"
                } else {
                    "selects more than one value"
                }
            }),
            JsonSelector::Pointer(pointer) => document.pointer(pointer).ok_or("is missing"),
        }
    }
}

/// The raw `expect` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectConfig {
    /// Accepted status codes: codes, classes (`2xx`), ranges (`200-299`).
    /// Default: any 2xx.
    pub status: Option<StatusList>,
    /// Regexes the body must match (all of them).
    #[serde(default)]
    pub body_matches: Vec<String>,
    /// Regexes the body must not match (none of them).
    #[serde(default)]
    pub body_not_matches: Vec<String>,
    /// JSON fields and the values they must have; keys are JSONPath (`$.status`)
    /// or JSON Pointer (`/status`).
    #[serde(default)]
    pub json: std::collections::BTreeMap<String, Value>,
    /// JSON fields that must equal the image tag a Deployment's container
    /// runs now (`$.commit: { deployment: prod/api, container: api }`),
    /// read from the Kubernetes watch cache at every run.
    #[serde(default)]
    pub json_image_tag: std::collections::BTreeMap<String, ImageTagOfConfig>,
    /// The body must contain the image tag a Deployment's container runs
    /// now (`{ deployment: prod/web, container: web }`), e.g. a footer's
    /// build info.
    pub body_contains_image_tag: Option<ImageTagOfConfig>,
    /// Headers that must be present, each with a regex its value must match
    /// (`""` accepts any value).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Headers that must not be present.
    #[serde(default)]
    pub headers_absent: Vec<String>,
    /// The absolute URL the first response's `Location` must point to
    /// (relative locations are resolved against the request URL).
    pub redirect_location: Option<String>,
    /// Longest the whole exchange (all redirects, all phases) may take.
    pub max_latency: Option<crate::config::HumanDuration>,
}

#[derive(Debug)]
pub struct Expectations {
    status: Vec<StatusRange>,
    body_matches: Vec<regex::bytes::Regex>,
    body_not_matches: Vec<regex::bytes::Regex>,
    json: Vec<(String, JsonSelector, Value)>,
    /// Expectations of values the cluster reports, resolved per run.
    image_tags: Vec<(TagPlace, ImageTagOf)>,
    headers: Vec<(HeaderName, regex::Regex)>,
    headers_absent: Vec<HeaderName>,
    redirect_location: Option<Url>,
    pub max_latency: Option<Duration>,
}

/// One broken expectation.
pub type Broken = (Reason, String);

/// Where an image tag is expected in the answer.
#[derive(Debug)]
enum TagPlace {
    /// A JSON field equals it (its key as written, and the selector).
    Json(String, JsonSelector),
    /// The body contains it.
    Body,
}

impl Expectations {
    /// `sync_wait`: how long a run waits for the first sync of a watch
    /// that `json_image_tag` or `body_contains_image_tag` reads.
    pub fn compile(config: &ExpectConfig, sync_wait: Duration) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut regexes = |list: &[String], key: &str| -> Vec<regex::bytes::Regex> {
            list.iter()
                .enumerate()
                .filter_map(|(i, pattern)| match regex::bytes::Regex::new(pattern) {
                    Ok(re) => Some(re),
                    Err(err) => {
                        problems.push(Problem::new(
                            format!("expect.{key}[{i}]"),
                            format!("invalid regex: {}", first_line(&err.to_string())),
                        ));
                        None
                    }
                })
                .collect()
        };
        let body_matches = regexes(&config.body_matches, "body_matches");
        let body_not_matches = regexes(&config.body_not_matches, "body_not_matches");
        let mut json = Vec::new();
        for (key, value) in &config.json {
            match JsonSelector::parse(key) {
                Ok(selector) => json.push((key.clone(), selector, value.clone())),
                Err(err) => problems.push(Problem::new(format!("expect.json.{key}"), err)),
            }
        }
        let mut image_tags = Vec::new();
        for (key, reference) in &config.json_image_tag {
            let at = format!("expect.json_image_tag.{key}");
            let selector = JsonSelector::parse(key)
                .map_err(|err| problems.push(Problem::new(at.clone(), err)))
                .ok();
            let source = ImageTagOf::compile(reference, &at, sync_wait, &mut problems);
            if let (Some(selector), Some(source)) = (selector, source) {
                image_tags.push((TagPlace::Json(key.clone(), selector), source));
            }
        }
        if let Some(reference) = &config.body_contains_image_tag {
            let at = "expect.body_contains_image_tag";
            if let Some(source) = ImageTagOf::compile(reference, at, sync_wait, &mut problems) {
                image_tags.push((TagPlace::Body, source));
            }
        }
        let mut headers = Vec::new();
        for (name, pattern) in &config.headers {
            let at = format!("expect.headers.{name}");
            match (
                HeaderName::try_from(name.as_str()),
                regex::Regex::new(pattern),
            ) {
                (Ok(name), Ok(re)) => headers.push((name, re)),
                (Err(_), _) => problems.push(Problem::new(at, "invalid header name")),
                (_, Err(err)) => problems.push(Problem::new(
                    at,
                    format!("invalid regex: {}", first_line(&err.to_string())),
                )),
            }
        }
        let mut headers_absent = Vec::new();
        for (i, name) in config.headers_absent.iter().enumerate() {
            match HeaderName::try_from(name.as_str()) {
                Ok(name) => headers_absent.push(name),
                Err(_) => problems.push(Problem::new(
                    format!("expect.headers_absent[{i}]"),
                    "invalid header name",
                )),
            }
        }
        let redirect_location = match &config.redirect_location {
            None => None,
            Some(text) => match Url::parse(text) {
                Ok(url) => Some(url),
                Err(err) => {
                    problems.push(Problem::new(
                        "expect.redirect_location",
                        format!("invalid absolute URL {text:?}: {err}"),
                    ));
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Expectations {
            status: config
                .status
                .as_ref()
                .map(|list| list.0.clone())
                .unwrap_or_else(|| vec![StatusRange::SUCCESS]),
            body_matches,
            body_not_matches,
            json,
            image_tags,
            headers,
            headers_absent,
            redirect_location,
            max_latency: config.max_latency.map(|d| d.0),
        })
    }

    /// The image tags this run expects, in the order `evaluate` takes
    /// them, read from the watch cache; one the cluster does not report
    /// makes the run an error before any request.
    /// The watches the cross-checks among these expectations read.
    pub fn watches(&self) -> Vec<WatchKey> {
        self.image_tags
            .iter()
            .map(|(_, source)| source.watch().clone())
            .collect()
    }

    pub async fn resolve_cluster_values(&self, ctx: &ProbeContext) -> Result<Vec<String>, Unknown> {
        let mut tags = Vec::with_capacity(self.image_tags.len());
        for (_, source) in &self.image_tags {
            tags.push(source.resolve(ctx).await?);
        }
        Ok(tags)
    }

    /// Every broken expectation of the final answer, in a fixed order.
    /// `first_location` is the resolved `Location` of the first response.
    /// Quoted parts of the answer have `secrets` (the credentials sent)
    /// replaced before they are cut short, so a target echoing one leaks
    /// no part of it.
    /// `tags` are the image tags [`Self::resolve_cluster_values`] read.
    pub fn evaluate(
        &self,
        answer: &Exchange,
        first_location: Option<&Url>,
        elapsed: Duration,
        secrets: &[Secret],
        tags: &[String],
    ) -> Vec<Broken> {
        let mut broken = Vec::new();
        self.judge_status(answer, first_location, secrets, &mut broken);
        self.judge_headers(answer, secrets, &mut broken);
        self.judge_body(answer, &mut broken);
        let document = self.judge_json(answer, secrets, &mut broken);
        self.judge_image_tags(answer, document.as_ref(), secrets, tags, &mut broken);
        if let Some(limit) = self.max_latency {
            if elapsed > limit {
                broken.push((
                    Reason::Latency,
                    format!(
                        "took {}, limit {}",
                        format_elapsed(elapsed),
                        format_duration(limit)
                    ),
                ));
            }
        }
        broken
    }

    /// The status and, when the check expects one, the redirect's target.
    fn judge_status(
        &self,
        answer: &Exchange,
        first_location: Option<&Url>,
        secrets: &[Secret],
        broken: &mut Vec<Broken>,
    ) {
        let status = answer.status.as_u16();
        if !self.status.iter().any(|range| range.contains(status)) {
            broken.push((
                Reason::Status,
                format!("status {status}, expected {}", self.status_text()),
            ));
        }
        if let Some(expected) = &self.redirect_location {
            match first_location {
                Some(actual) if actual == expected => {}
                Some(actual) => broken.push((
                    Reason::Redirect,
                    format!(
                        "redirects to {}, expected {expected}",
                        scrub(actual.as_str(), secrets)
                    ),
                )),
                None => broken.push((
                    Reason::Redirect,
                    format!("no redirect, expected one to {expected}"),
                )),
            }
        }
    }

    fn judge_headers(&self, answer: &Exchange, secrets: &[Secret], broken: &mut Vec<Broken>) {
        for (name, pattern) in &self.headers {
            match answer.headers.get(name) {
                None => broken.push((Reason::Header, format!("header {name} is missing"))),
                Some(value) => {
                    let text = String::from_utf8_lossy(value.as_bytes());
                    if !pattern.is_match(&text) {
                        let text = scrub(&text, secrets);
                        broken.push((
                            Reason::Header,
                            format!("header {name} is {text:?}, expected to match /{pattern}/"),
                        ));
                    }
                }
            }
        }
        for name in &self.headers_absent {
            if answer.headers.contains_key(name) {
                broken.push((
                    Reason::Header,
                    format!("header {name} is present, expected absent"),
                ));
            }
        }
    }

    fn judge_body(&self, answer: &Exchange, broken: &mut Vec<Broken>) {
        for pattern in &self.body_matches {
            if !pattern.is_match(&answer.body) {
                broken.push((Reason::Body, format!("body does not match /{pattern}/")));
            }
        }
        for pattern in &self.body_not_matches {
            if pattern.is_match(&answer.body) {
                broken.push((Reason::Body, format!("body matches forbidden /{pattern}/")));
            }
        }
    }

    /// The `json` expectations; returns the parsed body when a `json` or
    /// image-tag expectation needs it, so it is parsed once.
    fn judge_json(
        &self,
        answer: &Exchange,
        secrets: &[Secret],
        broken: &mut Vec<Broken>,
    ) -> Option<Value> {
        let wants_json = !self.json.is_empty()
            || self
                .image_tags
                .iter()
                .any(|(place, _)| matches!(place, TagPlace::Json(..)));
        if !wants_json {
            return None;
        }
        let document = match serde_json::from_slice::<Value>(&answer.body) {
            Err(err) => {
                broken.push((Reason::Json, format!("body is not JSON: {err}")));
                return None;
            }
            Ok(document) => document,
        };
        for (key, selector, expected) in &self.json {
            match selector.select(&document) {
                Err(problem) => broken.push((
                    Reason::Json,
                    format!("{key} {problem}, expected {}", render(expected, &[])),
                )),
                Ok(actual) if json_equal(actual, expected) => {}
                Ok(actual) => broken.push((
                    Reason::Json,
                    format!(
                        "{key} is {}, expected {}",
                        render(actual, secrets),
                        render(expected, &[])
                    ),
                )),
            }
        }
        Some(document)
    }

    /// The image tags the cross-checks read, in the body or at a JSON path.
    fn judge_image_tags(
        &self,
        answer: &Exchange,
        document: Option<&Value>,
        secrets: &[Secret],
        tags: &[String],
        broken: &mut Vec<Broken>,
    ) {
        for ((place, source), tag) in self.image_tags.iter().zip(tags) {
            let expected = render(&Value::String(tag.clone()), &[]);
            match place {
                TagPlace::Json(key, selector) => {
                    let Some(document) = document else { continue };
                    match selector.select(document) {
                        Err(problem) => broken.push((
                            Reason::Json,
                            format!(
                                "{key} {problem}, expected {expected} ({})",
                                source.describe()
                            ),
                        )),
                        Ok(actual) if tag_equal(actual, tag) => {}
                        Ok(actual) => broken.push((
                            Reason::Json,
                            format!(
                                "{key} is {}, expected {expected} ({})",
                                render(actual, secrets),
                                source.describe()
                            ),
                        )),
                    }
                }
                TagPlace::Body => {
                    if !contains(&answer.body, tag.as_bytes()) {
                        broken.push((
                            Reason::Body,
                            format!("body does not contain {expected} ({})", source.describe()),
                        ));
                    }
                }
            }
        }
    }

    fn status_text(&self) -> String {
        self.status
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether `status` is among the accepted ones (a redirect the check
    /// expects is not followed).
    pub fn accepts_status(&self, status: StatusCode) -> bool {
        self.status.iter().any(|r| r.contains(status.as_u16()))
            && self.status != [StatusRange::SUCCESS]
    }

    pub fn wants_redirect_location(&self) -> bool {
        self.redirect_location.is_some()
    }
}

/// Numbers compare by value (YAML `5` equals JSON `5.0`), at any depth of
/// arrays and objects; everything else structurally.
fn json_equal(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => {
            // Integers exactly (beyond 2^53 an f64 cannot tell them apart).
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, x)| b.get(key).is_some_and(|y| json_equal(x, y)))
        }
        _ => actual == expected,
    }
}

/// A field equals a tag when it is that string, or a number written so
/// (a tag `42` and a field `42`).
fn tag_equal(actual: &Value, tag: &str) -> bool {
    match actual {
        Value::String(text) => text == tag,
        Value::Number(number) => number.to_string() == tag,
        _ => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// `text` with every secret replaced by `[redacted]`.
fn scrub(text: &str, secrets: &[Secret]) -> String {
    crate::secret::scrub(text, secrets.iter().map(Secret::expose))
}

/// A JSON value as quoted in a message: secrets scrubbed first, then cut
/// to 80 characters (cutting first could leave a secret's prefix).
fn render(value: &Value, secrets: &[Secret]) -> String {
    let mut text = value.to_string();
    if !secrets.is_empty() {
        // Compared in the document's own text and in its JSON spelling.
        let spelled: Vec<String> = secrets
            .iter()
            .map(|secret| {
                let quoted = Value::String(secret.expose().to_string()).to_string();
                quoted[1..quoted.len() - 1].to_string()
            })
            .collect();
        text = crate::secret::scrub(&text, &spelled);
        text = scrub(&text, secrets);
    }
    if text.len() > 80 {
        let cut = text
            .char_indices()
            .nth(77)
            .map(|(i, _)| i)
            .unwrap_or(text.len());
        format!("{}...", &text[..cut])
    } else {
        text
    }
}

/// The regex crate's error is a multi-line drawing ending in
/// `error: <what>`; the last line without its prefix is the message.
fn first_line(text: &str) -> String {
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// A measured duration for messages: `850ms`, `1.8s`.
pub fn format_elapsed(elapsed: Duration) -> String {
    let millis = elapsed.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else {
        let text = format!("{:.2}", elapsed.as_secs_f64());
        format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// Resolves a `Location` header against the URL that answered.
pub fn location(answer: &Exchange, base: &Url) -> Option<Result<Url, String>> {
    let value = answer.headers.get(LOCATION)?;
    let text = match value.to_str() {
        Ok(text) => text,
        Err(_) => return Some(Err("Location header is not text".into())),
    };
    Some(
        base.join(text)
            .map_err(|err| format!("bad Location {text:?}: {err}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echoed_secret_is_scrubbed_before_a_long_quote_is_cut() {
        // Cut first, a prefix of the token would survive the scrub.
        let token = "s3cr3t-token-0123456789abcdef";
        let quote = "tok\"en\\with-quote-and-backslash";
        let secrets = [Secret::new(token.into()), Secret::new(quote.into())];
        for value in [
            serde_json::json!(format!("{}{token}", "x".repeat(60))),
            serde_json::json!(format!("{}{quote}", "x".repeat(60))),
            serde_json::json!({ "padding": "y".repeat(50), "token": token }),
        ] {
            let text = render(&value, &secrets);
            assert!(
                !text.contains("s3cr3t") && !text.contains("with-quote"),
                "{text}"
            );
            assert!(text.len() <= 83, "{text}");
        }
        assert_eq!(
            scrub("Bearer s3cr3t-token-0123456789abcdef!", &secrets),
            "Bearer [redacted]!"
        );
        // No secrets: quoted as before.
        assert_eq!(render(&serde_json::json!("ok"), &[]), "\"ok\"");
    }

    #[test]
    fn status_forms_parse_and_print() {
        for (text, low, high) in [("200", 200, 200), ("2xx", 200, 299), ("300-308", 300, 308)] {
            let range = StatusRange::parse(text).unwrap();
            assert_eq!((range.low, range.high), (low, high));
            assert_eq!(range.to_string(), text);
        }
        for bad in ["2000", "6xx", "abc", "300-200", "99"] {
            assert!(StatusRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_selectors_accept_path_and_pointer() {
        let doc: Value = serde_json::json!({"status": "ok", "checks": [{"db": "up"}]});
        let path = JsonSelector::parse("$.checks[0].db").unwrap();
        assert_eq!(path.select(&doc).unwrap(), "up");
        let pointer = JsonSelector::parse("/checks/0/db").unwrap();
        assert_eq!(pointer.select(&doc).unwrap(), "up");
        assert_eq!(
            JsonSelector::parse("$.nope").unwrap().select(&doc),
            Err("is missing")
        );
        assert!(JsonSelector::parse("status").is_err());
        // A parser panic is a config error (fuzz regression).
        let err = JsonSelector::parse(r#"$["a}\"\u0000000000\u"#).unwrap_err();
        assert!(err.contains("invalid JSONPath"), "{err}");
        assert!(JsonSelector::parse("$[").is_err());
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_equal(&serde_json::json!(5.0), &serde_json::json!(5)));
        assert!(!json_equal(&serde_json::json!("5"), &serde_json::json!(5)));
        assert!(json_equal(
            &serde_json::json!({"a": [1.0, {"b": 2}]}),
            &serde_json::json!({"a": [1, {"b": 2.0}]})
        ));
        assert!(!json_equal(
            &serde_json::json!({"a": [1, 2]}),
            &serde_json::json!({"a": [1, 2, 3]})
        ));
        assert!(!json_equal(
            &serde_json::json!(9_007_199_254_740_993u64),
            &serde_json::json!(9_007_199_254_740_992u64)
        ));
    }

    #[test]
    fn elapsed_times_read_naturally() {
        assert_eq!(format_elapsed(Duration::from_millis(850)), "850ms");
        assert_eq!(format_elapsed(Duration::from_millis(1800)), "1.8s");
        assert_eq!(format_elapsed(Duration::from_millis(2000)), "2s");
    }
}
