//! The bodies of the fuzz targets: each takes arbitrary bytes and must
//! neither panic nor hang, whatever they are. Shared by the libFuzzer
//! binaries in `fuzz_targets/` and by `tests/it/fuzz_corpus.rs`, which feeds
//! every committed corpus file through them in the normal test suite.

use std::path::PathBuf;
use std::sync::LazyLock;

use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::RecordType;
use vouch::config::{format_duration, ByteSize, HumanDuration, Ratio, SourcedConfig};
use vouch::plan::Plan;
use vouch::probe::dns::answer_texts;
use vouch::probe::http::expect::JsonSelector;
use vouch::probe::Clients;

static CLIENTS: LazyLock<Clients> = LazyLock::new(Clients::new);

/// Relative paths in fuzzed configs resolve under a directory that is not
/// there, so no target reads a real file by accident.
fn base_dir() -> PathBuf {
    PathBuf::from("/nonexistent/vouch-fuzz")
}

/// Inputs that reach serde_json_path 0.7's `unreachable!` on an unfinished
/// `\u` escape. vouch turns that panic into a config error
/// (`catch_unwind` in `JsonSelector::parse`, unit-tested), but libFuzzer's
/// panic hook aborts before any unwinding, so under the fuzzer these inputs
/// are left out; `cargo test` (no hook) still runs them from the corpus.
fn upstream_known_panic(text: &str) -> bool {
    cfg!(fuzzing) && text.contains("\\u")
}

/// Parses and plans `text` as a config file; every error must render.
fn plan(text: &str) {
    if upstream_known_panic(text) {
        return;
    }
    match SourcedConfig::parse(text, "fuzz.yaml", base_dir()) {
        Ok(source) => match Plan::from_source(&source, &CLIENTS, |_| None) {
            Ok(plan) => {
                // The redacted config blocks the status page shows.
                for index in 0..plan.checks.len() {
                    let _ = source.check_yaml(index);
                }
            }
            Err(err) => {
                let _ = err.to_string();
            }
        },
        Err(err) => {
            let _ = err.to_string();
        }
    }
}

/// The config parser: `SourcedConfig::parse`, then `Plan::from_source`
/// (every kind's block, validation across fields).
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        plan(text);
    }
}

/// Duration, size and ratio parsers, and the round trips their printed
/// forms promise.
pub fn units(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(duration) = HumanDuration::parse(text) {
        let printed = format_duration(duration.0);
        // Printed durations are read back (at millisecond precision).
        let again = HumanDuration::parse(&printed)
            .unwrap_or_else(|err| panic!("{text:?} printed as {printed:?}: {err}"));
        let (a, b) = (duration.0.as_millis(), again.0.as_millis());
        assert!(
            a.abs_diff(b) <= 1 || printed.contains('.'),
            "{text:?} -> {printed:?} -> {b}ms, not {a}ms"
        );
    }
    if let Ok(size) = ByteSize::parse(text) {
        let printed = size.to_string();
        let again = ByteSize::parse(&printed)
            .unwrap_or_else(|err| panic!("{text:?} printed as {printed:?}: {err}"));
        // Exact while the byte count fits an f64 exactly.
        if size.0 < 1 << 53 {
            assert_eq!(again.0, size.0, "{text:?} printed as {printed:?}");
        }
        let _ = size.approx();
    }
    if let Ok(ratio) = Ratio::parse(text) {
        let _ = ratio.to_string();
    }
}

/// The JSON field expression of `expect.json`: a selector (first line) on
/// a document (the rest), directly and through a config.
pub fn json_selector(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if upstream_known_panic(text) {
        return;
    }
    let (selector, document) = text.split_once('\n').unwrap_or((text, "null"));
    if let (Ok(parsed), Ok(document)) = (
        JsonSelector::parse(selector),
        serde_json::from_str::<serde_json::Value>(document),
    ) {
        let _ = parsed.select(&document);
    }
    // The selector as a key of expect.json, the document as the expected
    // value (JSON is YAML).
    let key = serde_json::Value::String(selector.to_string()).to_string();
    let expected = serde_json::from_str::<serde_json::Value>(document)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "null".into());
    plan(&format!(
        "checks:\n  - name: t\n    http:\n      url: http://127.0.0.1:9/\n      expect:\n        json: {{ {key}: {expected} }}\n"
    ));
}

/// The Redis INFO parser (the answer of a server vouch checks).
pub fn redis_info(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = vouch::probe::redis::parse_info(&text);
}

/// A registry's `WWW-Authenticate` challenge and `Link` header (outside
/// input, parsed at every run of a `registry` check).
pub fn registry_headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(challenge) = vouch::probe::registry::parse_challenge(&text) {
        let _ = challenge.param("realm");
        let _ = challenge.param("scope");
    }
    let _ = vouch::probe::registry::next_link(&text);
}

/// A DNS answer as the resolver decodes it, and the text vouch compares.
pub fn dns_answer(data: &[u8]) {
    if let Ok(message) = Message::from_vec(data) {
        for record_type in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::CNAME,
            RecordType::TXT,
            RecordType::MX,
            RecordType::NS,
        ] {
            let _ = answer_texts(record_type, message.answers());
        }
    }
}

/// A certificate as a server presents it (DER), read for its dates, names
/// and issuer.
pub fn certificate(data: &[u8]) {
    let _ = vouch::probe::tls::chain::CertInfo::parse(data);
}

/// A registry's answers: a page of `tags/list`, a token realm's answer,
/// and an error body, as the same bytes.
pub fn registry_answers(data: &[u8]) {
    if let Ok(tags) = vouch::probe::registry::read_tag_page(data, "fuzz") {
        let _ = tags.len();
    }
    if let Ok(answer) = serde_json::from_slice::<vouch::probe::registry::TokenAnswer>(data) {
        if let Some((_, renew_after)) = answer.read() {
            // The renewal time is added to the clock: it must not overflow.
            let _ = std::time::Instant::now() + renew_after;
        }
    }
    let _ = vouch::probe::registry::error_code(data);
}

/// A page of an Azure Key Vault secret listing and a vault error body.
pub fn key_vault_page(data: &[u8]) {
    use vouch::probe::secret_age::key_vault::{read_secret_page, vault_error_code};
    if let Ok((facts, next)) = read_secret_page(data, "fuzz") {
        for fact in &facts {
            assert!(!fact.name.is_empty() && !fact.name.contains('/'));
        }
        let _ = next.map(|link| url::Url::parse(&link));
    }
    let code = vault_error_code(data);
    // Only a bare code is ever shown, never the vault's message.
    assert!(code.is_empty() || code[2..].chars().all(|c| c.is_ascii_alphanumeric()));
}

/// A backup URL (config) and the texts backup messages are built from:
/// user information and queries (SAS tokens) must never reach a message.
pub fn backup_url(data: &[u8]) {
    use vouch::probe::backup::{percent_decode, scrub_urls, shown_url, url_scheme};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = url_scheme(text);
    let _ = percent_decode(text);
    let _ = scrub_urls(text);
    // The text as URL parsers read it: tabs and line breaks dropped.
    let read: String = text
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    if read.contains("SECRET") {
        return;
    }
    // A query appended, and user information after the scheme's `://`.
    let with_query = format!("{text}?sig=QSECRETQ");
    let with_user = match read.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://usr:PSECRETP@{rest}"),
        None => with_query.clone(),
    };
    for url in [&with_query, &with_user] {
        let shown = shown_url(url);
        assert!(!shown.contains("SECRET"), "{url:?} shown as {shown:?}");
        if let Err(message) = url_scheme(url) {
            assert!(!message.contains("SECRET"), "{url:?}: {message}");
        }
    }
    // A signed URL inside a client's error text loses its query.
    let scrubbed = scrub_urls(&format!("error sending https://h/{text}?sig=QSECRETQ end"));
    assert!(!scrubbed.contains("SECRET"), "{scrubbed:?}");
}

/// The web config (`--web.config.file`): the depth guard and line index,
/// the strict decoder, and every problem's rendering. Files it names
/// resolve under a directory that is not there.
pub fn web_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = base_dir().join("web.yml");
    if let Err(err) = vouch::output::web_config::WebConfig::parse(text, &path) {
        let _ = err.to_string();
    }
}

/// The checks the gate target selects from: three, in two sections.
static GATE_STATUS: LazyLock<vouch::output::status::StatusSnapshot> = LazyLock::new(|| {
    let text = "checks:\n\
        \x20 - {name: a, section: post-deploy/api, severity: critical, http: {url: 'http://127.0.0.1:9/'}}\n\
        \x20 - {name: b, section: post-deploy/web, severity: warning, http: {url: 'http://127.0.0.1:9/'}}\n\
        \x20 - {name: c, section: pre-deploy, severity: info, http: {url: 'http://127.0.0.1:9/'}}\n";
    let source = SourcedConfig::parse(text, "gate.yaml", base_dir()).expect("a valid config");
    let plan = Plan::from_source(&source, &CLIENTS, |_| None).expect("a valid plan");
    vouch::output::status::StatusBoard::new(&plan.checks).snapshot()
});

/// The gate's query string (`/api/v1/gate?...`): every parameter decoded
/// and range-checked, then evaluated; a bad query is an error, never a
/// panic (`since=1e20` once panicked the handler).
pub fn gate_query(data: &[u8]) {
    let mut query = vouch::output::gate::GateQuery::default();
    for (key, value) in url::form_urlencoded::parse(data) {
        let value = Some(value.into_owned());
        match key.as_ref() {
            "section" => query.section = value,
            "check" => query.check = value,
            "severity" => query.severity = value,
            "since" => query.since = value,
            _ => return,
        }
    }
    match vouch::output::gate::evaluate(&GATE_STATUS, &query) {
        Ok(answer) => assert_eq!(answer.selected, answer.passing.len() + answer.holding.len()),
        Err(message) => assert!(!message.is_empty()),
    }
}

/// The YAML depth guard and line index every config and web config goes
/// through first: any nesting, anchors, forbidden characters or long keys
/// end in an index or a located error, without recursion; what the guard
/// lets through the recursive decoder must survive.
pub fn yaml_depth(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match vouch::config::LineIndex::build(text) {
        Ok(index) => {
            let _ = index.duplicate_keys();
            let _ = index.line_of("checks[0].http.url");
            plan(text);
        }
        Err(problem) => assert!(problem.line.is_some(), "{problem:?}"),
    }
}
