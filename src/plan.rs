//! The validated plan: every check with its effective interval, timeout and
//! severity and its compiled probe. Built from config; nothing downstream
//! sees raw config.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, ConfigError, Kind, Problem, Settings, Severity, SourcedConfig};
use crate::probe::{self, BuildContext, Clients, Probe};

pub const DEFAULT_SECTION: &str = "default";

/// FNV-1a: a hash that never changes between builds or machines, for
/// decisions that must be the same everywhere (first-run phase, shard).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// `--shard i/n`: this replica runs the checks whose stable name hash falls
/// in shard `i` of `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("invalid shard {text:?}: expected I/N with 0 <= I < N, e.g. 0/3");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    pub fn owns(&self, check_name: &str) -> bool {
        // Salted, so shard membership is independent of the first-run phase.
        let mut salted = b"shard:".to_vec();
        salted.extend_from_slice(check_name.as_bytes());
        stable_hash(&salted) % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

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
    /// Re-verification after a rollout of the named workloads.
    pub rollout: Option<RolloutLink>,
    pub labels: BTreeMap<String, String>,
    /// The check's config block as written, secrets redacted (for the
    /// status page).
    pub config_yaml: String,
    /// Everything that makes this check what it is (its block and the
    /// defaults it inherits): a reload keeps a check whose fingerprint is
    /// unchanged running as it was.
    pub fingerprint: String,
    pub probe: Arc<dyn Probe>,
}

/// A Deployment or StatefulSet by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkloadRef {
    pub namespace: String,
    pub name: String,
}

impl WorkloadRef {
    /// `namespace/name`, both non-empty DNS labels or subdomains as
    /// Kubernetes names are.
    pub fn parse(text: &str) -> Option<WorkloadRef> {
        let (namespace, name) = text.split_once('/')?;
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 253
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        (valid(namespace) && valid(name)).then(|| WorkloadRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A rollout seen on a watched workload: it got a new generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub workload: WorkloadRef,
    /// The workload's new metadata.generation.
    pub generation: i64,
}

/// Which rollouts make a check run at once, and how it runs afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutLink {
    pub workloads: Vec<WorkloadRef>,
    /// How long after a rollout the check runs on `interval`.
    pub window: Duration,
    pub interval: Duration,
}

// Debug never shows the fingerprint: it may hold literal secret values.
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
    /// at once: those of checks that do not decode, and those the rules
    /// find in the checks that do.
    pub fn load(path: &Path, clients: &Clients) -> Result<Plan, ConfigError> {
        let (source, mut problems) = SourcedConfig::load_lenient(path)?;
        let plan = Self::from_source(&source, clients, |key| std::env::var(key).ok());
        if problems.is_empty() {
            return plan;
        }
        if let Err(more) = plan {
            problems.extend(more.problems);
        }
        problems.sort_by_key(|p| p.line);
        Err(ConfigError { problems })
    }

    pub fn from_source(
        source: &SourcedConfig,
        clients: &Clients,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Plan, ConfigError> {
        let file = &source.file;
        let mut problems: Vec<Problem> = config::common_problems(file);
        let settings = config::settings(file, &env).map_err(|more| problems.extend(more));
        let mut checks: Vec<Arc<PlannedCheck>> = Vec::new();
        let secrets = source.secrets();
        for (i, check) in file.checks.iter().enumerate() {
            let [kind] = check.kind_blocks()[..] else {
                continue; // reported by common_problems
            };
            if file.is_undecoded(&format!("checks[{i}].{}", kind.kind().as_str())) {
                continue; // its kind block has a bad value, reported already
            }
            // With a timing that did not decode (reported already), the
            // kind is not held to a built-in timeout the file did not ask
            // for; such a plan is never run.
            let timeout = if file.timings_known(i) {
                check.effective_timeout(&file.defaults).0
            } else {
                std::time::Duration::from_secs(365 * 86_400)
            };
            let ctx = BuildContext {
                timeout,
                clients,
                secrets: &secrets,
            };
            match probe::build(kind, &ctx) {
                Ok(probe) => checks.push(Arc::new(planned_check(
                    source,
                    i,
                    check,
                    kind.kind(),
                    ctx.timeout,
                    probe,
                ))),
                Err(more) => problems.extend(
                    more.into_iter()
                        .map(|problem| problem.under(&format!("checks[{i}]"))),
                ),
            }
        }
        // A check reads the cluster when its probe says so (a kubernetes
        // check, secret_age of Kubernetes Secrets, any cross-check);
        // after_rollout_of watches it. A check that did not build cannot
        // say: its own problems are reported first.
        let uses_kube = file.checks.iter().any(|c| !c.after_rollout_of.is_empty())
            || checks.iter().any(|c| c.probe.needs().reads_cluster());
        let kube_settings = uses_kube.then(|| {
            crate::kube::ConnectionSettings::resolve(
                clients.kube.kubeconfig_flag(),
                file.kubernetes.as_ref(),
                &source.base_dir,
                env("KUBECONFIG"),
            )
        });
        // Not while `kubernetes:` has a bad value (reported already): the
        // connection would be judged without it.
        if let Some(kube_settings) = kube_settings
            .as_ref()
            .filter(|_| !file.is_undecoded("kubernetes"))
        {
            problems.extend(kube_settings.problems());
        }
        if file
            .kubernetes
            .as_ref()
            .is_some_and(|k| k.max_objects_per_watch == Some(0))
        {
            problems.push(Problem::new(
                "kubernetes.max_objects_per_watch",
                "must be at least 1",
            ));
        }
        match settings {
            Ok(settings) if problems.is_empty() => {
                if let Some(kube_settings) = kube_settings {
                    clients.kube.configure(kube_settings);
                    clients.kube.set_max_objects_per_watch(
                        file.kubernetes
                            .as_ref()
                            .and_then(|k| k.max_objects_per_watch)
                            .unwrap_or(crate::kube::DEFAULT_MAX_OBJECTS_PER_WATCH),
                    );
                }
                for check in &checks {
                    for warning in check.probe.needs().warnings {
                        tracing::warn!(check = %check.name, "{warning}");
                    }
                }
                Ok(Plan { settings, checks })
            }
            _ => Err(source.locate(problems)),
        }
    }

    /// Keeps only the checks of `shard`.
    pub fn restrict_to(&mut self, shard: Shard) {
        self.checks.retain(|check| shard.owns(&check.name));
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

/// The `i`th check of the file with its effective settings, around the
/// probe built from it.
fn planned_check(
    source: &SourcedConfig,
    i: usize,
    check: &config::CheckConfig,
    kind: Kind,
    timeout: Duration,
    probe: Arc<dyn Probe>,
) -> PlannedCheck {
    let defaults = &source.file.defaults;
    PlannedCheck {
        name: check.name.clone(),
        section: check
            .section
            .clone()
            .unwrap_or_else(|| DEFAULT_SECTION.to_string()),
        severity: check
            .severity
            .or(defaults.severity)
            .unwrap_or(Severity::Warning),
        kind,
        interval: check.effective_interval(defaults).0,
        timeout,
        failures_before_fail: check.effective_failures_before_fail(defaults),
        successes_before_pass: check.effective_successes_before_pass(defaults),
        interval_when_failing: check.effective_interval_when_failing(defaults).map(|d| d.0),
        rollout: check
            .effective_rollout(defaults)
            .map(|(window, interval)| RolloutLink {
                workloads: check
                    .after_rollout_of
                    .iter()
                    .filter_map(|w| WorkloadRef::parse(w))
                    .collect(),
                window: window.0,
                interval: interval.0,
            }),
        labels: check.labels.clone(),
        config_yaml: source.check_yaml(i),
        fingerprint: format!(
            "{}|{:?}|{:?}|{:?}|{:?}|{:?}",
            source.check_yaml_unredacted(i),
            (
                check.effective_interval(defaults),
                check.effective_timeout(defaults)
            ),
            check.severity.or(defaults.severity),
            check.effective_failures_before_fail(defaults),
            check.effective_successes_before_pass(defaults),
            (
                check.effective_interval_when_failing(defaults),
                check.effective_rollout(defaults),
            ),
        ),
        probe,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_reject_nonsense() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "0/0", "1", "a/b", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_check_belongs_to_exactly_one_shard_and_shards_are_balanced() {
        let names: Vec<String> = (0..3000).map(|i| format!("check-{i}")).collect();
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0usize; 3];
        for name in &names {
            let owners: Vec<_> = shards.iter().filter(|s| s.owns(name)).collect();
            assert_eq!(owners.len(), 1, "{name}");
            sizes[owners[0].index as usize] += 1;
        }
        for size in sizes {
            assert!((900..=1100).contains(&size), "{sizes:?}");
        }
    }
}
