//! The validated plan: every check with its effective interval, timeout and
//! severity and its compiled probe. Built from config; nothing downstream
//! sees raw config.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, ConfigError, Kind, Problem, Settings, Severity, SourcedConfig};
use crate::probe::{self, Clients, Probe};

pub const DEFAULT_SECTION: &str = "default";

/// One check, ready to run.
pub struct PlannedCheck {
    pub name: String,
    pub section: String,
    pub severity: Severity,
    pub kind: Kind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive non-passing runs before the reported verdict fails.
    pub failures_before_fail: u32,
    /// Consecutive passing runs before the reported verdict passes again.
    pub successes_before_pass: u32,
    /// Interval while the last run did not pass.
    pub interval_when_failing: Option<Duration>,
    pub labels: BTreeMap<String, String>,
    /// The check's config block as written, secrets redacted (for the
    /// status page).
    pub config_yaml: String,
    pub probe: Arc<dyn Probe>,
}

impl std::fmt::Debug for PlannedCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedCheck")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

pub struct Plan {
    pub settings: Settings,
    pub checks: Vec<Arc<PlannedCheck>>,
}

impl Plan {
    /// Reads, decodes and validates a config file, reporting every problem
    /// found after decoding at once.
    pub fn load(path: &Path, clients: &Clients) -> Result<Plan, ConfigError> {
        let source = SourcedConfig::load(path)?;
        Self::from_source(&source, clients, |key| std::env::var(key).ok())
    }

    pub fn from_source(
        source: &SourcedConfig,
        clients: &Clients,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Plan, ConfigError> {
        let file = &source.file;
        let mut problems: Vec<Problem> = config::common_problems(file);
        let settings = config::settings(file, env).map_err(|more| problems.extend(more));
        let mut checks = Vec::new();
        for (i, check) in file.checks.iter().enumerate() {
            let kinds = check.kinds_present();
            if kinds.len() != 1 {
                continue; // reported by common_problems
            }
            match probe::build(check, clients, source) {
                Ok(probe) => checks.push(Arc::new(PlannedCheck {
                    name: check.name.clone(),
                    section: check
                        .section
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SECTION.to_string()),
                    severity: check
                        .severity
                        .or(file.defaults.severity)
                        .unwrap_or(Severity::Warning),
                    kind: kinds[0],
                    interval: check.effective_interval(&file.defaults).0,
                    timeout: check.effective_timeout(&file.defaults).0,
                    failures_before_fail: check.effective_failures_before_fail(&file.defaults),
                    successes_before_pass: check.effective_successes_before_pass(&file.defaults),
                    interval_when_failing: check
                        .effective_interval_when_failing(&file.defaults)
                        .map(|d| d.0),
                    labels: check.labels.clone(),
                    config_yaml: source.check_yaml(i),
                    probe,
                })),
                Err(more) => problems.extend(
                    more.into_iter()
                        .map(|problem| problem.under(&format!("checks[{i}]"))),
                ),
            }
        }
        match settings {
            Ok(settings) if problems.is_empty() => {
                for check in &file.checks {
                    let skips = check.http.as_ref().is_some_and(|h| h.insecure_skip_verify)
                        || check.tls.as_ref().is_some_and(|t| t.insecure_skip_verify);
                    if skips {
                        tracing::warn!(check = %check.name, "TLS certificate verification is off for this check (insecure_skip_verify)");
                    }
                }
                Ok(Plan { settings, checks })
            }
            _ => Err(source.locate(problems)),
        }
    }

    /// The checks selected by `--only` and not excluded by `--skip`. Each
    /// selector is a check name, a section, a section prefix (`post-deploy`
    /// selects `post-deploy/api`) or a label (`team=payments`). No `--only`
    /// selects everything. A selector that matches nothing is an error (a
    /// typo must not silently shrink the gate).
    pub fn select(
        &self,
        only: &[String],
        skip: &[String],
    ) -> Result<Vec<Arc<PlannedCheck>>, String> {
        for (flag, selectors) in [("--only", only), ("--skip", skip)] {
            for selector in selectors {
                if !self.checks.iter().any(|c| matches_selector(c, selector)) {
                    return Err(format!(
                        "{flag} {selector}: no check, section or label matches"
                    ));
                }
            }
        }
        Ok(self
            .checks
            .iter()
            .filter(|c| only.is_empty() || only.iter().any(|s| matches_selector(c, s)))
            .filter(|c| !skip.iter().any(|s| matches_selector(c, s)))
            .cloned()
            .collect())
    }
}

fn matches_selector(check: &PlannedCheck, selector: &str) -> bool {
    if let Some((key, value)) = selector.split_once('=') {
        return check.labels.get(key).is_some_and(|v| v == value);
    }
    let selector = selector.trim_end_matches('/');
    check.name == selector
        || check.section == selector
        || check
            .section
            .strip_prefix(selector)
            .is_some_and(|rest| rest.starts_with('/'))
}
