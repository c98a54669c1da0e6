//! What registries send and vouch parses: `WWW-Authenticate` challenges,
//! `Link` headers, pages of tags, token answers and Distribution error
//! bodies. All of it is outside input; the public functions are the fuzz
//! targets' entry points.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::clients::api_client::ApiError;
use crate::secret::Secret;

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

pub(super) fn basic((user, password): &(String, Secret)) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
