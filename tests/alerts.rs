//! The bundled alert rules: promtool accepts and unit-tests them, every
//! alert carries the labels and annotations on-call needs, every alert has
//! a firing and a quiet unit test, and every runbook link resolves.

use std::collections::BTreeSet;
use std::process::Command;

use serde_yaml_ng::Value;

const RULES: &str = "alerts/vouch.rules.yml";
const RULE_TESTS: &str = "alerts/tests/vouch.rules.test.yml";

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool is installed (scripts/test.sh installs Debian's prometheus)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn alerts() -> Vec<Value> {
    let rules: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(RULES).unwrap()).unwrap();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

#[test]
fn promtool_accepts_the_rules() {
    let (ok, output) = promtool(&["check", "rules", RULES]);
    assert!(ok, "{output}");
}

#[test]
fn promtool_unit_tests_pass() {
    let (ok, output) = promtool(&["test", "rules", RULE_TESTS]);
    assert!(ok, "{output}");
}

#[test]
fn every_alert_has_severity_summary_description_and_runbook() {
    let runbooks = std::fs::read_to_string("docs/runbooks.md").unwrap();
    let anchors: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|heading| heading.trim().to_lowercase())
        .collect();
    let mut names = BTreeSet::new();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(names.insert(name.to_string()), "{name} defined twice");
        assert!(
            name.starts_with("Vouch") && !name.contains(['_', '-', ' ']),
            "{name}: CamelCase with the Vouch prefix"
        );
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                alert["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: no {key}"
            );
        }
        let runbook = alert["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = runbook.split_once('#').map(|(_, a)| a).unwrap_or_default();
        assert!(
            runbook.starts_with("docs/runbooks.md#") && anchors.contains(anchor),
            "{name}: runbook {runbook} has no section"
        );
    }
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let tests: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(RULE_TESTS).unwrap()).unwrap();
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_sequence().unwrap() {
        for check in case["alert_rule_test"].as_sequence().unwrap() {
            let name = check["alertname"].as_str().unwrap().to_string();
            if check["exp_alerts"].as_sequence().unwrap().is_empty() {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(
            firing.contains(name),
            "{name} has no unit test where it fires"
        );
        assert!(
            quiet.contains(name),
            "{name} has no unit test where it must stay quiet"
        );
    }
}
