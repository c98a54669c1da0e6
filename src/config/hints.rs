//! Hints for an unknown key: the known key it is most likely a typo of,
//! or the block where it belongs when it is a real key one level off
//! (`expect:` beside `http:` instead of inside it, `interval:` at the top
//! instead of under `defaults:`).
//!
//! Where a key belongs is asked of the decoder itself, by decoding a
//! one-key snippet into each candidate block, so the hints follow the
//! config types without a list to keep in step.

use super::{ConfigFile, Kind};

/// Whether `key` is a likely typo of `candidate`: one edit (a letter
/// wrong, missing, extra or two swapped) in a key of more than two
/// letters, or two missing or extra at the end (`body_match`). Two edits
/// inside a key are as often another word (`max_size` is no typo of
/// `min_size`).
fn close_enough(key: &str, distance: usize, candidate: &str) -> bool {
    let at_end = candidate.starts_with(key) || key.starts_with(candidate);
    match distance {
        1 => candidate.chars().count() > 2,
        2 => at_end && candidate.chars().count() > 4,
        _ => false,
    }
}

/// `unknown field `k`, expected …` with a hint after the key, when there
/// is one. `path` is the block the decoder found the key in. `config` is
/// the whole vouch config as YAML, when the message is about one (other
/// files get no hint); it tells which kind a check has.
pub(crate) fn unknown_field(
    path: &str,
    message: &str,
    config: Option<&serde_yaml_ng::Value>,
) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((key, tail)) = rest.split_once('`') else {
        return message.to_string();
    };
    // Other files (the web config) keep the decoder's message.
    let Some(config) = config else {
        return message.to_string();
    };
    let hint = placement(path, key, config).or_else(|| typo(key, tail));
    match hint {
        Some(hint) => format!("unknown field `{key}` ({hint}){tail}"),
        None => message.to_string(),
    }
}

/// "did you mean `x`?" for the closest of the keys the decoder listed;
/// for a secret given as a value (`url:` where `url_file`/`url_env` are
/// the keys), how secrets are given.
fn typo(key: &str, expected: &str) -> Option<String> {
    let listed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let (file, env) = (format!("{key}_file"), format!("{key}_env"));
    if listed.contains(&file.as_str()) && listed.contains(&env.as_str()) {
        return Some(format!(
            "a secret is given by reference: `{file}` names a file holding it, `{env}` an environment variable"
        ));
    }
    closest(key, listed).map(|best| format!("did you mean `{best}`?"))
}

/// The one of `candidates` that `given` is most likely a typo of.
fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(given, candidate), candidate))
        .filter(|(distance, candidate)| close_enough(given, *distance, candidate))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The value of `values` that `given` is most likely a typo of (or the
/// start of, as `crit` of `critical`), for a value the decoder does not
/// know: a typo, another letter case or an abbreviation.
pub(crate) fn closest_value<'a>(given: &str, values: &[&'a str]) -> Option<&'a str> {
    let lower = given.to_lowercase();
    if let Some(same) = values
        .iter()
        .find(|v| **v != given && v.to_lowercase() == lower)
    {
        return Some(same);
    }
    let mut starting = values
        .iter()
        .filter(|v| lower.chars().count() >= 3 && v.starts_with(lower.as_str()));
    if let (Some(only), None) = (starting.next(), starting.next()) {
        return Some(only);
    }
    closest(&lower, values.iter().copied())
}

/// The decoder's `unknown variant `x`, expected …` with "did you mean"
/// when `x` is close to one of the values it lists.
pub(crate) fn unknown_variant(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown variant `") else {
        return message.to_string();
    };
    let Some((given, tail)) = rest.split_once('`') else {
        return message.to_string();
    };
    let listed: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    match closest_value(given, &listed) {
        Some(best) => format!("unknown variant `{given}` (did you mean `{best}`?){tail}"),
        None => message.to_string(),
    }
}

/// Where a real key given at the wrong level goes.
fn placement(path: &str, key: &str, config: &serde_yaml_ng::Value) -> Option<String> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    if path.is_empty() {
        if accepts(&format!("defaults:\n  {key}: null\n")) {
            return Some("it goes under `defaults:`, or on a check".to_string());
        }
        if accepts(&format!("checks:\n  - {key}: null\n")) {
            return Some("it belongs to a check: put it in an item of `checks:`".to_string());
        }
        return None;
    }
    if let Some(number) = check_number(path) {
        return check_placement(path, key, &config["checks"][number]);
    }
    let (parent, last) = path.rsplit_once('.')?;
    let kind = Kind::ALL.iter().find(|k| k.as_str() == last)?;
    if check_number(parent).is_some() && accepts(&expect_snippet(*kind, key)) {
        return Some(format!("it goes under `expect:`, as `{path}.expect.{key}`"));
    }
    None
}

/// N when `path` is exactly a check, `checks[N]`.
fn check_number(path: &str) -> Option<usize> {
    path.strip_prefix("checks[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A key beside a check's kind block that belongs inside it (or inside its
/// `expect:`), and `kind: http` written as a field.
fn check_placement(at: &str, key: &str, check: &serde_yaml_ng::Value) -> Option<String> {
    if matches!(key, "kind" | "type") {
        return Some(
            "a check's kind is the key of its block: write `http:`, `tls:`, … with the block's settings under it"
                .to_string(),
        );
    }
    // The check's own kind first, then any kind.
    let present: Vec<Kind> = Kind::ALL
        .iter()
        .copied()
        .filter(|k| check.get(k.as_str()).is_some())
        .collect();
    let candidates = if present.is_empty() {
        Kind::ALL.to_vec()
    } else {
        present
    };
    for kind in candidates {
        let name = kind.as_str();
        if accepts(&format!("checks:\n  - {name}:\n      {key}: null\n")) {
            return Some(format!(
                "it goes inside the kind block, as `{at}.{name}.{key}`"
            ));
        }
        if accepts(&expect_snippet(kind, key)) {
            return Some(format!(
                "it goes inside the kind block's `expect:`, as `{at}.{name}.expect.{key}`"
            ));
        }
    }
    None
}

fn expect_snippet(kind: Kind, key: &str) -> String {
    format!(
        "checks:\n  - {}:\n      expect:\n        {key}: null\n",
        kind.as_str()
    )
}

/// Whether a config snippet decodes without an unknown field: the decoder
/// stops at the snippet's one key, so another error (a missing field, a
/// null where a value belongs) means the key itself was known.
fn accepts(snippet: &str) -> bool {
    match serde_yaml_ng::from_str::<ConfigFile>(snippet) {
        Ok(_) => true,
        Err(err) => !err.to_string().contains("unknown field"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(path: &str, message: &str, config: &str) -> String {
        let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(config).unwrap();
        unknown_field(path, message, Some(&config))
    }

    #[test]
    fn a_typo_gets_the_closest_key() {
        assert_eq!(
            hint(
                "checks[0]",
                "unknown field `redsi`, expected one of `name`, `redis`, `tls`",
                "{}"
            ),
            "unknown field `redsi` (did you mean `redis`?), expected one of `name`, `redis`, `tls`"
        );
        // Nothing close: the message is left alone.
        let far = "unknown field `bogus`, expected one of `url`, `method`";
        assert_eq!(hint("checks[0].http", far, "{}"), far);
        let secret = hint(
            "checks[0].redis",
            "unknown field `url`, expected one of `url_file`, `url_env`, `role`",
            "{}",
        );
        assert!(
            secret.contains("`url_file` names a file holding it, `url_env`"),
            "{secret}"
        );
    }

    #[test]
    fn a_misspelt_value_gets_the_closest_value() {
        assert_eq!(
            unknown_variant("unknown variant `replcia`, expected `master` or `replica`"),
            "unknown variant `replcia` (did you mean `replica`?), expected `master` or `replica`"
        );
        let far = "unknown variant `leader`, expected `master` or `replica`";
        assert_eq!(unknown_variant(far), far);
        let severities = ["critical", "warning", "info"];
        assert_eq!(closest_value("critcal", &severities), Some("critical"));
        assert_eq!(closest_value("Warning", &severities), Some("warning"));
        assert_eq!(closest_value("warn", &severities), Some("warning"));
        assert_eq!(closest_value("high", &severities), None);
        assert_eq!(closest_value("in", &severities), None);
    }

    #[test]
    fn a_key_one_level_off_is_placed() {
        let message = "unknown field `expect`, expected one of `name`";
        assert_eq!(
            hint("checks[2]", message, "checks: [{}, {}, {name: a, http: {url: 'http://x'}}]"),
            "unknown field `expect` (it goes inside the kind block, as `checks[2].http.expect`), expected one of `name`"
        );
        let status = hint(
            "checks[0].http",
            "unknown field `status`, expected `url`",
            "{}",
        );
        assert!(
            status.contains("as `checks[0].http.expect.status`"),
            "{status}"
        );
        let interval = hint("", "unknown field `interval`, expected `checks`", "{}");
        assert!(interval.contains("under `defaults:`"), "{interval}");
        let kind = hint("checks[0]", "unknown field `kind`, expected `name`", "{}");
        assert!(kind.contains("the key of its block"), "{kind}");
    }
}
