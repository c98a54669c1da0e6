//! What every kind's tests share: a one-check config around a kind block,
//! planning it, its config error, and asserting an outcome.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use vouch::config::SourcedConfig;
use vouch::plan::{Plan, PlannedCheck};
use vouch::probe::Clients;
use vouch::result::{Outcome, Reason, Verdict};

/// Clients built once per test binary, as the daemon builds them once.
pub static CLIENTS: LazyLock<Arc<Clients>> = LazyLock::new(|| Arc::new(Clients::new()));

/// `block` without blank lines and without the indentation its lines share.
pub fn unindent(block: &str) -> String {
    let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    let indent = lines
        .iter()
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| format!("{}\n", &l[indent..]))
        .collect()
}

/// A config with one check `t` (given `timeout`) whose `kind` block is
/// `block`, written at any indentation. The block's first line is line 5
/// of the file, which config-problem tests rely on.
pub fn one_check_yaml(kind: &str, timeout: &str, block: &str) -> String {
    let mut yaml = format!("checks:\n  - name: t\n    timeout: {timeout}\n    {kind}:\n");
    for line in unindent(block).lines() {
        yaml.push_str("      ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}

/// Plans the only check of `yaml`; relative paths resolve against `dir`.
pub fn plan(yaml: &str, dir: &Path) -> Arc<PlannedCheck> {
    let source = SourcedConfig::parse(yaml, "test.yaml", dir.to_path_buf())
        .unwrap_or_else(|err| panic!("{err}\n{yaml}"));
    let plan = Plan::from_source(&source, &CLIENTS, |_| None)
        .unwrap_or_else(|err| panic!("{err}\n{yaml}"));
    plan.checks[0].clone()
}

/// The error of a config that must not decode or plan.
pub fn config_error(yaml: &str) -> String {
    let source = match SourcedConfig::parse(yaml, "test.yaml", ".".into()) {
        Ok(source) => source,
        Err(err) => return err.to_string(),
    };
    match Plan::from_source(&source, &CLIENTS, |_| None) {
        Ok(_) => panic!("planned although it should not:\n{yaml}"),
        Err(err) => err.to_string(),
    }
}

/// Asserts verdict, reason and a part of the message together.
#[track_caller]
pub fn expect(outcome: &Outcome, verdict: Verdict, reason: Reason, message_part: &str) {
    assert!(
        outcome.verdict == verdict
            && outcome.reason == reason
            && outcome.message.contains(message_part),
        "expected {verdict}/{reason} with a message containing {message_part:?}, got {}/{}: {:?}",
        outcome.verdict,
        outcome.reason,
        outcome.message
    );
}
