//! The bundled alert rules: promtool accepts and unit-tests them, every
//! alert carries the labels and annotations on-call needs, every alert has
//! a firing and a quiet unit test, and every runbook link resolves.

use std::collections::BTreeSet;
use std::process::Command;

use serde_yaml_ng::Value;

const RULES: &str = "alerts/vouch.rules.yml";
const RULE_TESTS: &str = "alerts/tests/vouch.rules.test.yml";
const INHIBIT: &str = "alerts/alertmanager-inhibit.yml";
/// The groups whose alerts mute the generic check alerts of their check.
const SPECIFIC_GROUPS: [&str; 2] = ["vouch.backups-secrets-images", "vouch.kubernetes"];

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
    alerts_of_groups(|_| true)
}

fn alerts_of_groups(wanted: impl Fn(&str) -> bool) -> Vec<Value> {
    let rules: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(RULES).unwrap()).unwrap();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|g| wanted(g["name"].as_str().unwrap()))
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

/// The value of `label=~"..."` or `label="..."` in a list of matchers, as
/// an anchored regex (Alertmanager anchors its regex matchers).
fn matcher(matchers: &Value, label: &str) -> regex::Regex {
    let found = matchers
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .find_map(|m| {
            let rest = m.strip_prefix(label)?;
            if let Some(value) = rest.strip_prefix("=~") {
                Some(value.trim_matches('"').to_string())
            } else {
                rest.strip_prefix('=')
                    .map(|value| regex::escape(value.trim_matches('"')))
            }
        })
        .unwrap_or_else(|| panic!("no {label} matcher in {matchers:?}"));
    regex::Regex::new(&format!("^(?:{found})$")).unwrap()
}

#[test]
fn amtool_accepts_the_inhibit_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route: {{ receiver: none }}\nreceivers: [{{ name: none }}]\n{}",
            std::fs::read_to_string(INHIBIT).unwrap()
        ),
    )
    .unwrap();
    let out = Command::new("amtool")
        .args(["check-config", config.to_str().unwrap()])
        .output()
        .expect("amtool is installed (with Debian's prometheus-alertmanager)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn specific_alerts_mute_only_generic_alerts_of_no_higher_severity() {
    let inhibit: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(INHIBIT).unwrap()).unwrap();
    let rules = inhibit["inhibit_rules"].as_sequence().unwrap();
    let rank = |severity: &str| {
        ["info", "warning", "critical"]
            .iter()
            .position(|s| *s == severity)
    };
    let generic = [
        ("VouchCriticalCheckFailing", "critical"),
        ("VouchWarningCheckFailing", "warning"),
    ];
    let specific: Vec<_> = alerts_of_groups(|g| SPECIFIC_GROUPS.contains(&g))
        .iter()
        .map(|a| {
            (
                a["alert"].as_str().unwrap().to_string(),
                a["labels"]["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!specific.is_empty());
    let others: Vec<_> = alerts_of_groups(|g| !SPECIFIC_GROUPS.contains(&g))
        .iter()
        .map(|a| a["alert"].as_str().unwrap().to_string())
        .collect();
    for rule in rules {
        assert_eq!(
            rule["equal"],
            serde_yaml_ng::from_str::<Value>("[check]").unwrap()
        );
        let source = matcher(&rule["source_matchers"], "alertname");
        let source_severity = matcher(&rule["source_matchers"], "severity");
        let target = matcher(&rule["target_matchers"], "alertname");
        for other in &others {
            assert!(!source.is_match(other), "{other} must not mute anything");
        }
        for (name, severity) in generic {
            if !target.is_match(name) {
                continue;
            }
            for (source_name, source_sev) in &specific {
                if source.is_match(source_name) && source_severity.is_match(source_sev) {
                    assert!(
                        rank(source_sev) >= rank(severity),
                        "{source_name} ({source_sev}) would mute {name} ({severity})"
                    );
                }
            }
        }
    }
    // Every specific alert mutes the generic alert of its own severity.
    for (name, severity) in &specific {
        let generic_name = generic.iter().find(|(_, s)| s == severity).map(|(n, _)| *n);
        let Some(generic_name) = generic_name else {
            continue;
        };
        assert!(
            rules.iter().any(|rule| {
                matcher(&rule["source_matchers"], "alertname").is_match(name)
                    && matcher(&rule["source_matchers"], "severity").is_match(severity)
                    && matcher(&rule["target_matchers"], "alertname").is_match(generic_name)
            }),
            "{name} does not mute {generic_name}"
        );
    }
}
