//! The bundled alert rules: promtool accepts and unit-tests them (one file
//! per alert, one for the failure modes of issue 16), every alert carries
//! the labels and annotations on-call needs, keeps the install labels,
//! has a firing and a quiet unit test, and every runbook link resolves.

use std::collections::BTreeSet;
use std::process::Command;

use serde_yaml_ng::Value;

const RULES: &str = "alerts/vouch.rules.yml";
const RULE_TESTS: [&str; 2] = [
    "alerts/tests/vouch.rules.test.yml",
    "alerts/tests/failure-modes.test.yml",
];
const INHIBIT: &str = "alerts/alertmanager-inhibit.yml";
/// The rule group of every alert about a check's verdict: one group, so a
/// specific alert and the generic one of its check fire in the same
/// evaluation.
const CHECK_GROUP: &str = "vouch.checks";
/// The alerts of that group that say nothing specific about what broke;
/// every other alert there mutes the generic alert of its check.
const GENERIC: [&str; 5] = [
    "VouchCheckFailing",
    "VouchCheckStale",
    "VouchCheckNeverRan",
    "VouchCheckSlow",
    "VouchProbeErrorRateHigh",
];
/// The labels that tell one install from another.
const INSTALL: [&str; 3] = ["cluster", "namespace", "job"];
const RUNBOOKS: &str = "https://vouch-runbooks.set-runbookURLPattern.invalid/docs/runbooks.md#";

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

/// Prometheus hands each alerting rule's alerts to Alertmanager as soon as
/// it has evaluated that rule, in the group's order: a generic alert placed
/// before a specific one could reach Alertmanager first and page before
/// the inhibiting alert arrives (seen with a 1 s group_wait under load).
#[test]
fn the_generic_alerts_come_after_every_specific_one_in_their_group() {
    let names: Vec<String> = alerts_of_groups(|g| g == CHECK_GROUP)
        .iter()
        .map(|a| a["alert"].as_str().unwrap().to_string())
        .collect();
    let first_generic = names
        .iter()
        .position(|n| GENERIC.contains(&n.as_str()))
        .expect("the group has generic alerts");
    let late: Vec<_> = names[first_generic..]
        .iter()
        .filter(|n| !GENERIC.contains(&n.as_str()))
        .collect();
    assert!(
        late.is_empty(),
        "specific alerts after a generic one: {late:?}"
    );
}

/// A kind-specific alert fires only while its check fails as
/// VouchCheckFailing judges it: on every fresh replica. Each of its
/// aggregations (the escalated expiry tier is a second one) is joined with
/// that condition, so one replica failing beside a passing one pages
/// through no alert at all (failure-modes.test.yml has the promtool cases).
#[test]
fn every_specific_alert_waits_for_the_check_to_fail_on_every_fresh_replica() {
    let install = INSTALL.join(", ");
    let gate = format!(
        "and on ({install}, check)\nmax by ({install}, check) (\n  last_over_time(vouch_check_success{{job=\"vouch\"}}[5m])\n  and on ({install}, instance, check) (time() - "
    );
    let mut specific = 0;
    for alert in alerts_of_groups(|g| g == CHECK_GROUP) {
        let name = alert["alert"].as_str().unwrap();
        if GENERIC.contains(&name) {
            continue;
        }
        specific += 1;
        let expr = alert["expr"].as_str().unwrap();
        let aggregations = expr.matches("group_left (severity)").count();
        assert!(aggregations > 0, "{name}: not gated on its check's state");
        assert_eq!(
            expr.matches(&gate).count(),
            aggregations,
            "{name}: a branch does not wait for the check to fail on every fresh replica:\n{expr}"
        );
    }
    assert!(specific > 60, "{specific} specific rules");
}

#[test]
fn promtool_accepts_the_rules() {
    let (ok, output) = promtool(&["check", "rules", RULES]);
    assert!(ok, "{output}");
}

#[test]
fn promtool_unit_tests_pass() {
    let (ok, output) = promtool(&["test", "rules", RULE_TESTS[0], RULE_TESTS[1]]);
    assert!(ok, "{output}");
}

/// Every alert keeps the install labels (VouchAbsent has none to keep),
/// every selector is vouch's (`job="vouch"`: never `vouchers-api`).
#[test]
fn alerts_keep_the_install_labels_and_select_only_vouch() {
    let by_install = format!("by ({}", INSTALL.join(", "));
    let selector = regex::Regex::new(r"\b(vouch_[a-z_]+|up)\{([^}]*)\}").unwrap();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        let expr = alert["expr"].as_str().unwrap();
        if name != "VouchAbsent" {
            assert!(
                expr.contains(&by_install),
                "{name} does not aggregate by the install labels:\n{expr}"
            );
        }
        for found in selector.captures_iter(expr) {
            assert!(
                found[2].starts_with(r#"job="vouch""#),
                "{name}: {} does not select vouch's job",
                &found[0]
            );
        }
    }
}

/// Whether an alert is about one check: its outer aggregation keeps `check`.
fn is_check_alert(alert: &Value) -> bool {
    let expr = alert["expr"].as_str().unwrap();
    let by_install = format!("by ({}", INSTALL.join(", "));
    expr.split(&by_install)
        .skip(1)
        .any(|rest| rest.split(')').next().unwrap_or_default().contains("check"))
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
        assert!(
            names.insert(format!(
                "{name}/{severity}",
                severity = alert["labels"]["severity"].as_str().unwrap_or_default()
            )),
            "{name} defined twice with one severity"
        );
        assert!(
            name.starts_with("Vouch") && !name.contains(['_', '-', ' ']),
            "{name}: CamelCase with the Vouch prefix"
        );
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        // Rules of one name differ only by severity (one rule per check
        // severity, or per urgency tier).
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
        let anchor = runbook.strip_prefix(RUNBOOKS).unwrap_or_default();
        assert!(
            anchors.contains(anchor) && anchor == name.to_lowercase(),
            "{name}: runbook {runbook} is not an absolute link to its section"
        );
        if is_check_alert(&alert) {
            let dashboard = alert["annotations"]["dashboard_url"]
                .as_str()
                .unwrap_or_default();
            assert!(
                dashboard.starts_with("http")
                    && dashboard.contains("var-check={{ $labels.check }}"),
                "{name}: no dashboard_url to the check's view"
            );
        }
    }
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    let cases: Vec<Value> = RULE_TESTS
        .iter()
        .flat_map(|file| {
            let tests: Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            tests["tests"].as_sequence().unwrap().clone()
        })
        .collect();
    for case in &cases {
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
/// an anchored regex (Alertmanager anchors its regex matchers); no matcher
/// for the label matches anything.
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
        .unwrap_or_else(|| ".*".to_string());
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

fn names_and_severities(groups: impl Fn(&str) -> bool) -> BTreeSet<(String, String)> {
    alerts_of_groups(groups)
        .iter()
        .map(|a| {
            (
                a["alert"].as_str().unwrap().to_string(),
                a["labels"]["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn rank(severity: &str) -> usize {
    ["info", "warning", "critical"]
        .iter()
        .position(|s| *s == severity)
        .unwrap()
}

#[test]
fn inhibit_rules_cover_every_pair_within_an_install_and_never_mute_up() {
    let inhibit: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(INHIBIT).unwrap()).unwrap();
    let rules = inhibit["inhibit_rules"].as_sequence().unwrap();
    let specific: BTreeSet<_> = names_and_severities(|g| g == CHECK_GROUP)
        .into_iter()
        .filter(|(name, _)| !GENERIC.contains(&name.as_str()))
        .collect();
    let all = names_and_severities(|_| true);
    assert!(specific.len() > 20);
    let mutes = |source: &(String, String), target: &(String, String)| -> bool {
        rules.iter().any(|rule| {
            let equal: Vec<&str> = rule["equal"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            // A pair of the same name must also agree on alertname.
            let same_name_ok = source.0 == target.0 || !equal.contains(&"alertname");
            same_name_ok
                && matcher(&rule["source_matchers"], "alertname").is_match(&source.0)
                && matcher(&rule["source_matchers"], "severity").is_match(&source.1)
                && matcher(&rule["target_matchers"], "alertname").is_match(&target.0)
                && matcher(&rule["target_matchers"], "severity").is_match(&target.1)
        })
    };
    for rule in rules {
        let equal = &rule["equal"];
        for label in INSTALL {
            assert!(
                equal.as_sequence().unwrap().iter().any(|l| l == label),
                "an inhibit rule without {label} in equal would mute across installs: {rule:?}"
            );
        }
    }
    for source in &all {
        for target in &all {
            if rank(&source.1) < rank(&target.1) {
                assert!(
                    !mutes(source, target),
                    "{source:?} mutes the more severe {target:?}"
                );
            }
        }
    }
    // Every specific alert mutes the generic alert of its check at its
    // own severity and below.
    for source in &specific {
        for severity in ["info", "warning", "critical"] {
            let target = ("VouchCheckFailing".to_string(), severity.to_string());
            if rank(severity) <= rank(&source.1) {
                assert!(
                    mutes(source, &target),
                    "{source:?} does not mute {target:?}"
                );
            }
        }
    }
    // Every warning/critical pair of one name: the critical one mutes the
    // warning; and no instance up mutes the per-instance warnings.
    for (name, severity) in &all {
        if severity == "critical" && all.contains(&(name.clone(), "warning".into())) {
            assert!(mutes(
                &(name.clone(), "critical".into()),
                &(name.clone(), "warning".into())
            ));
        }
    }
    assert!(mutes(
        &("VouchNoInstanceUp".into(), "critical".into()),
        &("VouchInstanceDown".into(), "warning".into())
    ));
}
