//! Rules that span fields of the config, common to every kind.

use std::collections::HashSet;

use super::{CheckConfig, ConfigFile, Defaults, HumanDuration, Kind, Problem};

/// Checks rules no single field can: unique names, exactly one kind,
/// timeout within interval, label names. Kind-specific rules live with
/// each kind. Each problem is reported once, at the key that was written:
/// a bad `defaults` value at `defaults`, not at every check inheriting it.
pub fn common_problems(file: &ConfigFile) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let defaults = &file.defaults;
    let zero = |value: Option<HumanDuration>| value.is_some_and(|d| d.0.is_zero());
    for (key, value) in [
        ("interval", defaults.interval),
        ("timeout", defaults.timeout),
    ] {
        if zero(value) {
            problems.push(Problem::new(
                format!("defaults.{key}"),
                "must be longer than 0s",
            ));
        }
    }
    if let (Some(interval), Some(timeout)) = (defaults.interval, defaults.timeout) {
        if timeout > interval && !interval.0.is_zero() {
            problems.push(Problem::new(
                "defaults.timeout",
                format!("timeout {timeout} is longer than the interval {interval}"),
            ));
        }
    }
    for (i, check) in file.checks.iter().enumerate() {
        let at = format!("checks[{i}]");
        // A timing that did not decode (the check's own or the one it
        // inherits) is reported already; comparing the built-in value in
        // its place could report what is not in the file.
        let timings_known = file.timings_known(i);
        problems.extend(flap_problems(check, defaults, &at, timings_known));
        if check.name.trim().is_empty() {
            problems.push(Problem::new(format!("{at}.name"), "must not be empty"));
        } else if !seen.insert(check.name.as_str()) {
            problems.push(Problem::new(
                format!("{at}.name"),
                format!("duplicate check name {:?}", check.name),
            ));
        }
        if check
            .section
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            problems.push(Problem::new(
                format!("{at}.section"),
                "must not be empty (leave it out for the section \"default\")",
            ));
        }
        match check.kinds_present().len() {
            1 => {}
            0 => problems.push(Problem::new(
                at.clone(),
                format!("no check kind given (one of: {})", kind_list()),
            )),
            _ => problems.push(Problem::new(
                at.clone(),
                format!(
                    "more than one check kind given ({}); a check has exactly one",
                    check
                        .kinds_present()
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
        for (key, value) in [("interval", check.interval), ("timeout", check.timeout)] {
            if zero(value) {
                problems.push(Problem::new(
                    format!("{at}.{key}"),
                    "must be longer than 0s",
                ));
            }
        }
        if let Some(problem) = timeout_problem(check, defaults, &at).filter(|_| timings_known) {
            // defaults.timeout against the built-in interval shows in every
            // check that inherits both; it is said once.
            let repeated = problem.path == "defaults.timeout"
                && problems.iter().any(|p| p.path == problem.path);
            if !repeated {
                problems.push(problem);
            }
        }
        for key in check.labels.keys() {
            if !is_label_name(key) {
                problems.push(Problem::new(
                    format!("{at}.labels.{key}"),
                    "label names are letters, digits and underscores, not starting with a digit",
                ));
            }
        }
    }
    problems
}

/// A timeout longer than the interval of `check` (at `at`), reported at
/// the key that was written: the check's own timeout, else its own
/// interval, else `defaults.timeout`. None when both come from `defaults`
/// (that pair is checked on its own) or a zero interval is already reported.
fn timeout_problem(check: &CheckConfig, defaults: &Defaults, at: &str) -> Option<Problem> {
    let interval = check.effective_interval(defaults);
    let timeout = check.effective_timeout(defaults);
    if interval.0.is_zero() || timeout <= interval {
        return None;
    }
    let interval_origin = if check.interval.is_some() {
        ""
    } else if defaults.interval.is_some() {
        " (from defaults.interval)"
    } else {
        " (the default interval)"
    };
    match (check.timeout.is_some(), check.interval.is_some()) {
        (true, _) => Some(Problem::new(
            format!("{at}.timeout"),
            format!("timeout {timeout} is longer than the interval {interval}{interval_origin}"),
        )),
        (false, true) => Some(Problem::new(
            format!("{at}.interval"),
            format!(
                "timeout {timeout} (from defaults.timeout) is longer than the interval {interval}"
            ),
        )),
        (false, false) if defaults.interval.is_some() => None,
        (false, false) => Some(Problem::new(
            "defaults.timeout",
            format!(
                "timeout {timeout} is longer than the default interval {interval}; set defaults.interval"
            ),
        )),
    }
}

/// Rules of the flap settings: counts of at least 1, and (when
/// `timings_known`) a failing interval no longer than the interval and no
/// shorter than the timeout, and rollout settings that fit them.
fn flap_problems(
    check: &CheckConfig,
    defaults: &Defaults,
    at: &str,
    timings_known: bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (key, own, inherited) in [
        (
            "failures_before_fail",
            check.failures_before_fail,
            defaults.failures_before_fail,
        ),
        (
            "successes_before_pass",
            check.successes_before_pass,
            defaults.successes_before_pass,
        ),
    ] {
        match (own, inherited) {
            (Some(0), _) => {
                problems.push(Problem::new(format!("{at}.{key}"), "must be at least 1"))
            }
            // A zero default is reported once, at the first check.
            (None, Some(0)) if at == "checks[0]" => problems.push(Problem::new(
                format!("defaults.{key}"),
                "must be at least 1",
            )),
            _ => {}
        }
    }
    for (j, workload) in check.after_rollout_of.iter().enumerate() {
        if crate::plan::WorkloadRef::parse(workload).is_none() {
            problems.push(Problem::new(
                format!("{at}.after_rollout_of[{j}]"),
                format!("{workload:?} is not namespace/name of a Deployment or StatefulSet"),
            ));
        }
    }
    if !timings_known {
        return problems;
    }
    if let Some(fast) = check.effective_interval_when_failing(defaults) {
        let key = if check.interval_when_failing.is_some() {
            format!("{at}.interval_when_failing")
        } else {
            "defaults.interval_when_failing".to_string()
        };
        let interval = check.effective_interval(defaults);
        let timeout = check.effective_timeout(defaults);
        if fast > interval {
            problems.push(Problem::new(
                key,
                format!("{fast} is longer than the interval {interval}"),
            ));
        } else if fast < timeout {
            problems.push(Problem::new(
                key,
                format!("{fast} is shorter than the timeout {timeout}"),
            ));
        }
    }
    match check.effective_rollout(defaults) {
        Some((window, fast)) => {
            let (at_fast, at_window) = (
                rollout_key(at, "rollout_interval", check.rollout_interval.is_some()),
                rollout_key(at, "rollout_window", check.rollout_window.is_some()),
            );
            let interval = check.effective_interval(defaults);
            let timeout = check.effective_timeout(defaults);
            if fast.0.is_zero() || window.0.is_zero() {
                problems.push(Problem::new(
                    if fast.0.is_zero() { at_fast } else { at_window },
                    "must be longer than 0s",
                ));
            } else if fast > interval {
                problems.push(Problem::new(
                    at_fast,
                    format!("{fast} is longer than the interval {interval}"),
                ));
            } else if fast < timeout {
                problems.push(Problem::new(
                    at_fast,
                    format!("{fast} is shorter than the timeout {timeout}"),
                ));
            } else if window < fast {
                problems.push(Problem::new(
                    at_window,
                    format!("{window} is shorter than the rollout interval {fast}"),
                ));
            }
        }
        None => {
            for (key, given) in [
                ("rollout_window", check.rollout_window.is_some()),
                ("rollout_interval", check.rollout_interval.is_some()),
            ] {
                if given {
                    problems.push(Problem::new(
                        format!("{at}.{key}"),
                        "has no effect without after_rollout_of",
                    ));
                }
            }
        }
    }
    problems
}

/// Where a rollout setting came from: the check, or the defaults.
fn rollout_key(at: &str, key: &str, own: bool) -> String {
    if own {
        format!("{at}.{key}")
    } else {
        format!("defaults.{key}")
    }
}

fn kind_list() -> String {
    Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
