//! The metric contract in one place: every family the code declares is
//! documented in docs/metrics.md, everything the docs, alerts and dashboards
//! name is declared by the code, every reason word is documented, and
//! every dashboard has the shared variables and uses them.

use std::collections::BTreeSet;
use std::path::Path;

use vouch::output::metrics::FAMILIES;
use vouch::result::{Measure, Reason};

fn declared() -> BTreeSet<String> {
    FAMILIES
        .iter()
        .map(|(name, _)| name.to_string())
        .chain(Measure::ALL.iter().map(|m| m.name().to_string()))
        .collect()
}

/// `vouch_*` names in a text, with histogram suffixes folded into their family.
fn names_in(text: &str) -> BTreeSet<String> {
    let pattern = regex::Regex::new(r"\bvouch_[a-z0-9_]+").unwrap();
    let families = declared();
    pattern
        .find_iter(text)
        .map(|m| {
            let name = m.as_str();
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    if families.contains(base) {
                        return base.to_string();
                    }
                }
            }
            name.to_string()
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn every_declared_family_is_in_the_metrics_reference() {
    let readme = std::fs::read_to_string("docs/metrics.md").unwrap();
    for name in declared() {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is exported but missing from docs/metrics.md"
        );
    }
}

#[test]
fn the_docs_name_no_metric_the_code_does_not_export() {
    let mut readme = String::new();
    for doc in [
        "README.md",
        "docs/metrics.md",
        "docs/configuration.md",
        "docs/api.md",
        "docs/deploy.md",
    ] {
        readme.push_str(&std::fs::read_to_string(doc).unwrap());
    }
    let unknown: Vec<_> = names_in(&readme).difference(&declared()).cloned().collect();
    assert!(
        unknown.is_empty(),
        "the README or docs/ name unexported metrics: {unknown:?}"
    );
}

#[test]
fn alerts_and_dashboards_use_only_exported_metrics() {
    let declared = declared();
    for dir in ["alerts", "dashboards", "deploy"] {
        for file in files_under(Path::new(dir)) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let unknown: Vec<_> = names_in(&text).difference(&declared).cloned().collect();
            assert!(
                unknown.is_empty(),
                "{} uses unexported metrics: {unknown:?}",
                file.display()
            );
        }
    }
}

#[test]
fn every_reason_word_is_documented() {
    let readme = std::fs::read_to_string("docs/reasons.md").unwrap();
    for reason in Reason::ALL {
        assert!(
            readme.contains(&format!("| `{}` |", reason.as_str())),
            "reason {} is missing from docs/reasons.md",
            reason.as_str()
        );
    }
}

#[test]
fn metric_names_follow_prometheus_conventions() {
    let units = [
        "_seconds",
        "_bytes",
        "_total",
        "_ratio",
        "_info",
        "_code",
        "_successful",
        "_success",
        "_redirects",
        "_flight",
        "_loops",
        "_answers",
        // Dimensionless counts and states name what they count or are.
        "_up",
        "_connections",
        "_queries",
        "_clients",
        "_keys",
        "_value",
        "_enabled",
        "_loading",
        "_objects",
        "_tags",
        "_present",
        "_replicas",
        "_generations",
        "_generation",
        "_pods",
        "_restarts",
        "_endpoints",
        "_addresses",
        "_events",
        "_revisions",
        "_ready",
        "_synced",
        // A state set (one series per state, 1 for the current) and a
        // configured limit whose unit depends on its `threshold` label.
        "_state",
        "_threshold",
    ];
    for name in declared() {
        assert!(name.starts_with("vouch_"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
        assert!(
            !name.contains("_milliseconds") && !name.contains("_percent"),
            "{name}: base units only"
        );
        assert!(
            units.iter().any(|u| name.ends_with(u)),
            "{name}: no unit or kind suffix"
        );
    }
}

#[test]
fn every_dashboard_follows_the_shared_conventions() {
    let series = regex::Regex::new(r"\bvouch_[a-z0-9_]+(\{[^}]*\})?").unwrap();
    for file in files_under(Path::new("dashboards")) {
        let name = file.display().to_string();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let variables: Vec<&str> = dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        // The install's labels narrow each other, then (Overview) the
        // checklist section, then the check.
        let mut expected = vec!["datasource", "cluster", "namespace", "job", "instance"];
        if variables.contains(&"section") {
            expected.push("section");
        }
        expected.push("check");
        assert_eq!(variables, expected, "{name}");
        assert!(dashboard["uid"]
            .as_str()
            .is_some_and(|uid| file.file_stem().is_some_and(|stem| stem == uid)));
        for panel in dashboard["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap();
            let Some(targets) = panel["targets"].as_array() else {
                continue;
            };
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name}: {title}"
            );
            for target in targets {
                assert_eq!(
                    target["datasource"]["uid"], "${datasource}",
                    "{name}: {title}"
                );
                let expr = target["expr"].as_str().unwrap();
                // Every series a panel reads follows the cluster,
                // namespace, job, instance and check variables (build, scheduler, config and watch series
                // carry no check).
                for selector in series.find_iter(expr) {
                    let selector = selector.as_str();
                    assert!(
                        selector.contains(r#"cluster=~"$cluster""#)
                            && selector.contains(r#"namespace=~"$namespace""#)
                            && selector.contains(r#"job=~"$job""#)
                            && selector.contains(r#"instance=~"$instance""#),
                        "{name}: {title}: {selector} ignores the cluster, namespace, job or instance variable"
                    );
                    if !selector.starts_with("vouch_build_")
                        && !selector.starts_with("vouch_scheduler_")
                        && !selector.starts_with("vouch_config_")
                        && !selector.starts_with("vouch_kube_watch_synced")
                    {
                        assert!(
                            selector.contains(r#"check=~"$check""#),
                            "{name}: {title}: {selector} ignores the check variable"
                        );
                    }
                }
            }
        }
    }
}
