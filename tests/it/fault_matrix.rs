//! The fault × kind matrix of tests/README.md, regenerated in memory from
//! the kind tests themselves: which test asserts which reason of which
//! kind. The test fails when the committed table differs (it never writes
//! the file: paste the table it prints), when a cell has neither a test
//! nor a note saying why it cannot be produced here, when a note names a
//! cell a test now fills, and when a test asserts a reason its kind's row
//! does not list.

use std::collections::{BTreeMap, BTreeSet};

use vouch::result::Reason;

/// A kind's row: its test files and every reason its probe can give.
struct Kind {
    name: &'static str,
    files: &'static [&'static str],
    reasons: &'static [&'static str],
}

/// The matrix must have a row for every kind the config knows.
#[test]
fn every_kind_has_a_row() {
    let rows: BTreeSet<&str> = KINDS.iter().map(|kind| kind.name).collect();
    let known: BTreeSet<&str> = vouch::config::Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(rows, known, "the rows of KINDS and the kinds of Kind::ALL");
}

const KINDS: &[Kind] = &[
    Kind {
        name: "http",
        files: &["http_kind.rs"],
        reasons: &[
            "ok",
            "status",
            "body",
            "json",
            "header",
            "redirect",
            "redirect_loop",
            "too_many_redirects",
            "latency",
            "too_large",
            "tls",
            "tls_expired",
            "tls_not_yet_valid",
            "tls_unknown_issuer",
            "tls_hostname",
            "protocol",
            "secret",
            "dns",
            "timeout",
            "connection_refused",
            "connect",
        ],
    },
    Kind {
        name: "tls",
        files: &["tls_kind.rs"],
        reasons: &[
            "ok",
            "tls",
            "tls_expired",
            "tls_not_yet_valid",
            "tls_unknown_issuer",
            "tls_hostname",
            "tls_expiring",
            "tls_issuer",
            "tls_san",
            "tls_version",
            "tls_stale",
            "file",
            "dns",
            "timeout",
            "connection_refused",
            "connect",
        ],
    },
    Kind {
        name: "dns",
        files: &["dns_kind.rs"],
        reasons: &[
            "ok",
            "dns_rcode",
            "dns_answers",
            "dns_disagreement",
            "latency",
            "ingress_address",
            "dns",
            "timeout",
            "connection_refused",
        ],
    },
    Kind {
        name: "postgres",
        files: &["postgres_kind.rs"],
        reasons: &[
            "ok",
            "connections",
            "query_age",
            "transaction_age",
            "database_size",
            "migration",
            "assertion",
            "query",
            "auth",
            "tls",
            "tls_unknown_issuer",
            "tls_hostname",
            "secret",
            "protocol",
            "timeout",
            "connection_refused",
            "connect",
        ],
    },
    Kind {
        name: "redis",
        files: &["redis_kind.rs"],
        reasons: &[
            "ok",
            "memory",
            "hit_ratio",
            "evictions",
            "persistence",
            "role",
            "loading",
            "auth",
            "tls",
            "tls_unknown_issuer",
            "secret",
            "protocol",
            "too_large",
            "timeout",
            "connection_refused",
            "connect",
        ],
    },
    Kind {
        name: "registry",
        files: &["registry_kind.rs"],
        reasons: &[
            "ok",
            "tag_missing",
            "rollback_tags",
            "auth",
            "forbidden",
            "status",
            "json",
            "protocol",
            "secret",
            "too_large",
            "dns",
            "tls",
            "tls_unknown_issuer",
            "timeout",
            "connection_refused",
            "connect",
        ],
    },
    Kind {
        name: "backup",
        files: &["backup_kind.rs"],
        reasons: &[
            "ok",
            "backup_missing",
            "backup_age",
            "backup_size",
            "backup_count",
            "backup_shrunk",
            "auth",
            "forbidden",
            "status",
            "protocol",
            "secret",
            "too_large",
            "file",
            "dns",
            "tls",
            "timeout",
            "connection_refused",
            "connect",
        ],
    },
    Kind {
        name: "kubernetes",
        files: &["kubernetes_kind.rs"],
        reasons: &[
            "ok",
            "not_found",
            "not_ready",
            "rollout",
            "replicas",
            "scaling_limit",
            "crash_loop",
            "image_pull",
            "container_config",
            "restarts",
            "endpoints",
            "ingress_address",
            "keys",
            "values",
            "warning_events",
            "revisions",
            "stale",
            "tls_expired",
            "tls_expiring",
            "not_synced",
            "not_installed",
            "forbidden",
            "auth",
            "protocol",
            "too_large",
            "timeout",
            "connection_refused",
            "connect",
        ],
    },
    Kind {
        name: "secret_age",
        files: &["secret_age_kind.rs", "secret_age_kubernetes.rs"],
        reasons: &[
            "ok",
            "secret_missing",
            "secret_disabled",
            "secret_not_yet_valid",
            "secret_age",
            "secret_expiring",
            "auth",
            "forbidden",
            "status",
            "json",
            "protocol",
            "too_large",
            "not_synced",
            "timeout",
            "connection_refused",
            "connect",
        ],
    },
];

/// Why a cell has no test. Each must name a cell no test fills.
const NOTES: &[(&str, &str, &str)] = &[
    (
        "tls",
        "tls_stale",
        "tested in tests/it/cross_checks.rs (tls_fails_while_a_server_presents_the_certificate_before_its_renewal), a cross-check",
    ),
    (
        "dns",
        "ingress_address",
        "tested in tests/it/cross_checks.rs (dns_answers_follow_the_address_the_ingress_reports), a cross-check",
    ),
    (
        "kubernetes",
        "timeout",
        "cannot happen by design: a run only reads the watch cache, waiting at most 0.8 of its timeout for the first sync, so a hung API server is not_synced (a_watch_that_has_not_synced_is_an_error_not_a_verdict holds every answer)",
    ),
];

/// Words in a test name that mark a recovery test: the target fails,
/// then comes back, and the same check passes again.
const RECOVERY: [&str; 4] = ["again", "comes_up", "recover", "back_up"];

/// CamelCase variant name to the reason's word.
fn word(variant: &str) -> String {
    let mut out = String::new();
    for (i, c) in variant.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Every test function of `text`: its name and the reasons its body
/// asserts (`Reason::X`, or a reason word compared in JSON).
fn tests_of(text: &str) -> Vec<(String, BTreeSet<String>)> {
    let json_reason = regex::Regex::new(r#""reason"\]\s*(?:,|==)\s*"([a-z_]+)""#).unwrap();
    let variant = regex::Regex::new(r"Reason::([A-Z][A-Za-z]+)").unwrap();
    let mut tests = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if !(line.starts_with("#[tokio::test") || line.starts_with("#[test]")) {
            continue;
        }
        let Some(signature) = lines.by_ref().find(|l| l.contains("fn ")) else {
            break;
        };
        let name = signature
            .split("fn ")
            .nth(1)
            .and_then(|rest| rest.split('(').next())
            .unwrap()
            .trim()
            .to_string();
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "}").collect();
        let body = body.join("\n");
        let mut reasons: BTreeSet<String> =
            variant.captures_iter(&body).map(|c| word(&c[1])).collect();
        reasons.extend(json_reason.captures_iter(&body).map(|c| c[1].to_string()));
        tests.push((name, reasons));
    }
    tests
}

/// The cells of one kind: reason (or fault column) -> tests filling it.
fn cells(kind: &Kind, problems: &mut Vec<String>) -> BTreeMap<String, Vec<String>> {
    let known: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    let mut cells: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in kind.files {
        let path = format!("{}/tests/it/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        for (test, reasons) in tests_of(&text) {
            for reason in &reasons {
                assert!(known.contains(reason.as_str()), "{file}: {test}: {reason}?");
                if !kind.reasons.contains(&reason.as_str()) {
                    problems.push(format!(
                        "{file}: {test} asserts {reason}, which the {} row does not list",
                        kind.name
                    ));
                    continue;
                }
                cells.entry(reason.clone()).or_default().push(test.clone());
            }
            if RECOVERY.iter().any(|w| test.contains(w)) {
                cells
                    .entry("recovery".into())
                    .or_default()
                    .push(test.clone());
            }
        }
    }
    cells
}

fn note(kind: &str, cell: &str) -> Option<&'static str> {
    NOTES
        .iter()
        .find(|(k, c, _)| *k == kind && *c == cell)
        .map(|(_, _, why)| *why)
}

/// One cell of the summary: the number of tests, or why there is none.
fn mark(kind: &str, cells: &BTreeMap<String, Vec<String>>, cell: &str) -> String {
    match cells.get(cell) {
        Some(tests) => format!("✓ {}", tests.len()),
        None if note(kind, cell).is_some() => "— (see below)".into(),
        None => "**missing**".into(),
    }
}

fn matrix() -> (String, Vec<String>) {
    let mut problems = Vec::new();
    let mut out = String::from(
        "| kind | pass | hang → timeout | down → refused | recovery | every reason |\n|---|---|---|---|---|---|\n",
    );
    let mut details = String::new();
    for kind in KINDS {
        let cells = cells(kind, &mut problems);
        let mut columns: Vec<&str> = kind.reasons.to_vec();
        columns.push("recovery");
        let filled = columns.iter().filter(|c| cells.contains_key(**c)).count();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {filled} of {} |\n",
            kind.name,
            mark(kind.name, &cells, "ok"),
            mark(kind.name, &cells, "timeout"),
            mark(kind.name, &cells, "connection_refused"),
            mark(kind.name, &cells, "recovery"),
            columns.len(),
        ));
        details.push_str(&format!(
            "\n### {}\n\n| cell | tests, or why none |\n|---|---|\n",
            kind.name
        ));
        for column in &columns {
            let text = match (cells.get(*column), note(kind.name, column)) {
                (Some(tests), None) => tests.join(", "),
                (Some(_), Some(_)) => {
                    problems.push(format!(
                        "{} × {column}: a test fills it; drop its note",
                        kind.name
                    ));
                    continue;
                }
                (None, Some(why)) => format!("— {why}"),
                (None, None) => {
                    problems.push(format!("{} × {column}: no test and no note", kind.name));
                    "**missing**".into()
                }
            };
            details.push_str(&format!("| {column} | {text} |\n"));
        }
    }
    for (kind, cell, _) in NOTES {
        let known = KINDS
            .iter()
            .any(|k| k.name == *kind && (k.reasons.contains(cell) || *cell == "recovery"));
        if !known {
            problems.push(format!("a note for {kind} × {cell}, which is no cell"));
        }
    }
    (format!("{out}{details}"), problems)
}

const BEGIN: &str = "<!-- fault matrix: generated by tests/it/fault_matrix.rs, do not edit -->\n";
const END: &str = "<!-- end of fault matrix -->\n";

#[test]
fn the_fault_matrix_in_the_readme_is_the_one_the_tests_fill() {
    let (table, problems) = matrix();
    let path = format!("{}/tests/README.md", env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(&path).unwrap_or_default();
    let committed = readme
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(table, _)| table);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        committed == Some(table.as_str()),
        "tests/README.md's fault matrix differs from the tests; between the markers it should read:\n{BEGIN}{table}{END}"
    );
}
