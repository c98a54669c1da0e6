//! `docs/checklist-coverage.md` agrees with the config it describes
//! (`examples/broxiva/vouch.yaml`) and with the checklist
//! (its copy in the repository, `docs/checklist/production-deployment-checklist.md`):
//! every check the document names exists, every check of the config
//! is named, every checklist item is listed once in the checklist's order,
//! and the summary counts (also quoted in the README) are the rows' counts.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

const DOC: &str = "docs/checklist-coverage.md";
const CONFIG: &str = "examples/broxiva/vouch.yaml";
const CHECKLIST: &str = "docs/checklist/production-deployment-checklist.md";

#[derive(Debug)]
struct Row {
    number: usize,
    item: String,
    coverage: String,
    checks: Vec<String>,
    note: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_start_matches('|')
        .trim_end_matches('|')
        .split('|')
        .map(|cell| cell.trim().to_string())
        .collect()
}

/// The item rows (first cell a number) before the summary, and the summary
/// table as coverage → count.
fn document() -> (Vec<Row>, BTreeMap<String, usize>) {
    let text = read(DOC);
    let (items, summary) = text
        .split_once("\n## Summary\n")
        .expect("the document ends with a `## Summary` section");
    let mut rows = Vec::new();
    for line in items.lines().filter(|l| l.starts_with('|')) {
        let cells = cells(line);
        let Ok(number) = cells[0].parse::<usize>() else {
            continue;
        };
        assert_eq!(
            cells.len(),
            5,
            "{DOC}: row {number} has not 5 cells: {line}"
        );
        let checks = cells[3]
            .split(',')
            .map(|name| name.trim().trim_matches('`').to_string())
            .filter(|name| !name.is_empty())
            .collect();
        rows.push(Row {
            number,
            item: cells[1].clone(),
            coverage: cells[2].clone(),
            checks,
            note: cells[4].clone(),
        });
    }
    let mut counts = BTreeMap::new();
    for line in summary.lines().filter(|l| l.starts_with('|')) {
        let cells = cells(line);
        if let Ok(count) = cells[1].parse::<usize>() {
            counts.insert(cells[0].clone(), count);
        }
    }
    (rows, counts)
}

fn config_checks() -> Vec<String> {
    let config: Value = serde_yaml_ng::from_str(&read(CONFIG)).unwrap();
    config["checks"]
        .as_sequence()
        .expect("the config has checks")
        .iter()
        .map(|check| check["name"].as_str().expect("a check name").to_string())
        .collect()
}

/// An item as the document writes it: the text after the checkbox, bold
/// markers removed, without a trailing colon.
fn normalise(item: &str) -> String {
    let text = item.replace("**", "");
    let text = text.trim();
    text.strip_suffix(':')
        .unwrap_or(text)
        .trim_end()
        .to_string()
}

/// The checklist's items: `- [ ] ...` lines at any depth, and the numbered
/// `1. [ ] ...` steps (the rotation procedure), in order.
fn checklist_items(text: &str) -> (Vec<String>, usize, usize) {
    let (mut items, mut dashed, mut numbered) = (Vec::new(), 0, 0);
    for line in text.lines() {
        let line = line.trim_start();
        if let Some(rest) = line.strip_prefix("- [ ] ") {
            dashed += 1;
            items.push(normalise(rest));
        } else if let Some((number, rest)) = line.split_once(". [ ] ") {
            if !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()) {
                numbered += 1;
                items.push(normalise(rest));
            }
        }
    }
    (items, dashed, numbered)
}

#[test]
fn every_check_named_in_the_document_exists_in_the_config() {
    let (rows, _) = document();
    let checks: BTreeSet<String> = config_checks().into_iter().collect();
    let unknown: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            row.checks
                .iter()
                .filter(|name| !checks.contains(*name))
                .map(move |name| format!("item {}: {name}", row.number))
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "{DOC} names checks {CONFIG} does not have: {unknown:?}"
    );
}

#[test]
fn every_check_of_the_config_is_named_in_the_document() {
    let (rows, _) = document();
    let named: BTreeSet<&str> = rows
        .iter()
        .flat_map(|row| row.checks.iter().map(String::as_str))
        .collect();
    let names = config_checks();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !named.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{CONFIG} checks that {DOC} never names: {missing:?}"
    );
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate check names in {CONFIG}"
    );
}

#[test]
fn every_row_has_a_known_coverage_and_what_it_needs() {
    let (rows, _) = document();
    assert!(!rows.is_empty(), "{DOC} has no item rows");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            row.number,
            i + 1,
            "{DOC}: rows are numbered 1, 2, 3, ... in order"
        );
        assert!(!row.item.is_empty(), "item {}: empty item text", row.number);
        match row.coverage.as_str() {
            "covered" | "partial" => assert!(
                !row.checks.is_empty(),
                "item {} is `{}` but names no check",
                row.number,
                row.coverage
            ),
            "action" => {}
            "manual" | "uncovered" => assert!(
                !row.note.is_empty(),
                "item {} is `{}` without a reason",
                row.number,
                row.coverage
            ),
            other => panic!("item {}: unknown coverage {other:?}", row.number),
        }
    }
}

#[test]
fn the_summary_and_the_readme_state_the_rows_counts() {
    let (rows, summary) = document();
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for row in &rows {
        *counted.entry(row.coverage.clone()).or_default() += 1;
    }
    counted.insert("total".into(), rows.len());
    assert_eq!(
        summary, counted,
        "{DOC}: the summary table disagrees with the rows"
    );

    let get = |key: &str| counted.get(key).copied().unwrap_or(0);
    let sentence = format!(
        "{} items are covered faithfully, {} partly, {} are actions, {} are manual and {} are not covered",
        get("covered"),
        get("partial"),
        get("action"),
        get("manual"),
        get("uncovered"),
    );
    let doc = read(DOC);
    assert!(doc.contains(&sentence), "{DOC} should say: {sentence}");
    let config_sentence = format!("The config has {} checks.", config_checks().len());
    assert!(
        doc.contains(&config_sentence),
        "{DOC} should say: {config_sentence}"
    );

    let readme = read("README.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let readme_counts = format!(
        "{} of the checklist's {} items are covered faithfully ({} partly, {} actions, {} manual, {} not covered",
        get("covered"),
        rows.len(),
        get("partial"),
        get("action"),
        get("manual"),
        get("uncovered"),
    );
    assert!(
        readme.contains(&readme_counts) && readme.contains("docs/checklist-coverage.md"),
        "README.md should link {DOC} and say: {readme_counts}"
    );
    let readme_checks = format!(
        "{} checks in the checklist's sections",
        config_checks().len()
    );
    assert!(
        readme.contains(&readme_checks),
        "README.md should say: {readme_checks}"
    );
}

#[test]
fn the_document_lists_every_checklist_item_in_order() {
    let text = read(CHECKLIST);
    let (items, dashed, numbered) = checklist_items(&text);
    let (rows, _) = document();
    assert_eq!(
        rows.len(),
        dashed + numbered,
        "{DOC} lists {} items; the checklist has {dashed} `- [ ]` lines and {numbered} numbered `N. [ ]` steps",
        rows.len()
    );
    for (row, item) in rows.iter().zip(&items) {
        assert_eq!(
            &row.item, item,
            "{DOC}: item {} differs from the checklist",
            row.number
        );
    }
}
