//! The numbers of a check's own config that its alerts judge against.
//!
//! A kind-specific alert ("the newest backup is too old") must use the
//! check's configured limit (`max_age: 8d`), not a number written into the
//! rules, or the alert and the check disagree. The probes already judge
//! these limits; this module only reads them back from the check's block
//! (as written, secrets redacted) so `vouch_check_threshold` can export
//! them. A limit the check was not given is not exported, and the alert
//! that needs it stays silent (the generic check-failing alert still
//! fires if the check fails).

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use crate::config::{ByteSize, HumanDuration, Ratio};
use crate::plan::PlannedCheck;

/// One exported limit: `threshold` is the config key, `secret` the secret
/// it applies to (secret_age checks judge each secret on its own limits).
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub threshold: &'static str,
    pub secret: Option<String>,
    pub value: f64,
}

#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Bytes,
    Ratio,
    Count,
}

/// (kind, key path inside the kind's block, unit). The label is the last
/// path segment: within one kind it is unambiguous.
const LIMITS: &[(&str, &[&str], Unit)] = &[
    ("backup", &["max_age"], Unit::Seconds),
    ("backup", &["min_size"], Unit::Bytes),
    ("backup", &["min_count"], Unit::Count),
    ("backup", &["max_shrink"], Unit::Ratio),
    ("tls", &["min_valid_for"], Unit::Seconds),
    ("postgres", &["max_connections_used"], Unit::Ratio),
    ("postgres", &["max_query_age"], Unit::Seconds),
    ("postgres", &["max_transaction_age"], Unit::Seconds),
    ("redis", &["max_memory_used"], Unit::Ratio),
    ("redis", &["min_hit_ratio"], Unit::Ratio),
    ("redis", &["max_evictions"], Unit::Count),
    ("redis", &["max_last_save_age"], Unit::Seconds),
    ("registry", &["min_rollback_tags"], Unit::Count),
    ("kubernetes", &["min_valid_for"], Unit::Seconds),
    ("kubernetes", &["max_sync_age"], Unit::Seconds),
    ("kubernetes", &["min_ready"], Unit::Count),
    (
        "kubernetes",
        &["volume_snapshots", "max_age"],
        Unit::Seconds,
    ),
];

/// Per-secret limits of a secret_age check; a secret's own value wins over
/// the check's.
const SECRET_LIMITS: &[(&str, Unit)] =
    &[("max_age", Unit::Seconds), ("min_valid_for", Unit::Seconds)];

fn parse<T: DeserializeOwned>(value: &Value) -> Option<T> {
    serde_yaml_ng::from_value(value.clone()).ok()
}

fn number(value: &Value, unit: Unit) -> Option<f64> {
    if value.is_null() {
        return None;
    }
    match unit {
        Unit::Seconds => parse::<HumanDuration>(value).map(|d| d.0.as_secs_f64()),
        Unit::Bytes => parse::<ByteSize>(value).map(|b| b.0 as f64),
        Unit::Ratio => parse::<Ratio>(value).map(|r| r.0),
        Unit::Count => value.as_u64().map(|n| n as f64),
    }
}

fn at<'a>(block: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(block, |v, key| &v[*key])
}

/// The limits `check` was configured with, in a stable order.
pub fn thresholds(check: &PlannedCheck) -> Vec<Threshold> {
    let Ok(block) = serde_yaml_ng::from_str::<Value>(&check.config_yaml) else {
        return Vec::new();
    };
    let kind = check.kind.as_str();
    let body = &block[kind];
    if kind == "secret_age" {
        return secret_thresholds(body);
    }
    LIMITS
        .iter()
        .filter(|(k, _, _)| *k == kind)
        .filter_map(|(_, path, unit)| {
            Some(Threshold {
                threshold: path[path.len() - 1],
                secret: None,
                value: number(at(body, path), *unit)?,
            })
        })
        .collect()
}

fn secret_thresholds(body: &Value) -> Vec<Threshold> {
    let Some(secrets) = body["secrets"].as_sequence() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for secret in secrets {
        let Some(name) = secret["name"].as_str() else {
            continue;
        };
        for (key, unit) in SECRET_LIMITS {
            let value = number(&secret[*key], *unit).or_else(|| number(&body[*key], *unit));
            if let Some(value) = value {
                out.push(Threshold {
                    threshold: key,
                    secret: Some(name.to_string()),
                    value,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourcedConfig;
    use crate::plan::Plan;
    use crate::probe::Clients;

    fn check(block: &str) -> std::sync::Arc<PlannedCheck> {
        let yaml = format!("checks:\n  - name: c\n    section: s\n{block}");
        let source = SourcedConfig::parse(&yaml, "test.yaml", std::path::PathBuf::from("."))
            .expect("the test config parses");
        Plan::from_source(&source, &Clients::new(), |_| None)
            .expect("the test config is valid")
            .checks
            .remove(0)
    }

    fn pairs(check: &PlannedCheck) -> Vec<(&'static str, Option<String>, f64)> {
        thresholds(check)
            .into_iter()
            .map(|t| (t.threshold, t.secret, t.value))
            .collect()
    }

    #[test]
    fn a_backup_check_exports_the_limits_it_was_given_in_base_units() {
        let c = check(
            "    backup: { url: \"file:///tmp/b\", max_age: 8d, min_size: 1MB, max_shrink: 50% }\n",
        );
        assert_eq!(
            pairs(&c),
            vec![
                ("max_age", None, 8.0 * 86400.0),
                ("min_size", None, 1e6),
                ("max_shrink", None, 0.5),
            ]
        );
    }

    #[test]
    fn a_check_without_limits_exports_none() {
        let c = check("    http: { url: \"http://127.0.0.1:9/\" }\n");
        assert!(thresholds(&c).is_empty());
    }

    #[test]
    fn secrets_take_their_own_limit_before_the_checks() {
        let c = check(concat!(
            "    secret_age:\n",
            "      kubernetes: { namespace: prod }\n",
            "      max_age: 90d\n",
            "      secrets: [ { name: a }, { name: b, max_age: 30d } ]\n",
        ));
        assert_eq!(
            pairs(&c),
            vec![
                ("max_age", Some("a".into()), 90.0 * 86400.0),
                ("max_age", Some("b".into()), 30.0 * 86400.0),
            ]
        );
    }
}
