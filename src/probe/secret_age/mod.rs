//! The `secret_age` check kind: required secrets exist in a vault, are
//! enabled, were rotated recently enough, and do not expire soon. Only
//! metadata is read, never a value.
//!
//! Sources plug in behind [`SecretMetadataSource`]: Azure Key Vault
//! ([`key_vault`]) and Kubernetes Secrets ([`kubernetes`]: from the watch
//! cache, metadata only; the last write of the data from managedFields,
//! else the creation time). AWS Secrets Manager or HashiCorp Vault can
//! follow by implementing the trait and adding a block to
//! [`SecretAgeConfig`].

mod challenge;
pub mod key_vault;
pub mod kubernetes;
mod vault_listing;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;

use super::{BuildContext, Needs, Probe, ProbeContext};
use crate::config::{format_duration, HumanDuration, Problem};
use crate::kube::WatchKey;
use crate::result::{Measure, Measurement, Outcome, Reason};

/// The `secret_age` block of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretAgeConfig {
    /// Secrets in an Azure Key Vault.
    pub key_vault: Option<key_vault::KeyVaultConfig>,
    /// Secrets of a Kubernetes namespace (metadata only).
    pub kubernetes: Option<kubernetes::KubernetesSecretsConfig>,
    /// The secrets to look for.
    pub secrets: Vec<SecretRequirementConfig>,
    /// Oldest a secret's current version may be (e.g. `90d`), unless the
    /// secret sets its own.
    pub max_age: Option<HumanDuration>,
    /// Shortest time a secret with an expiry date must still be valid
    /// (e.g. `14d`), unless the secret sets its own. Without it, only an
    /// expired secret fails.
    pub min_valid_for: Option<HumanDuration>,
}

/// One secret the check looks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRequirementConfig {
    /// The secret's name in the source.
    pub name: String,
    /// An optional secret may be absent or disabled; if present it is
    /// judged like the others.
    #[serde(default)]
    pub optional: bool,
    /// Oldest this secret may be (wins over the check's `max_age`).
    pub max_age: Option<HumanDuration>,
    /// Shortest remaining validity (wins over the check's `min_valid_for`).
    pub min_valid_for: Option<HumanDuration>,
}

/// What a source knows of one secret (never its value). Times are Unix
/// seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFacts {
    pub name: String,
    pub enabled: bool,
    /// When the current version was written: the last rotation.
    pub created: Option<i64>,
    /// When the current version's attributes last changed.
    pub updated: Option<i64>,
    pub expires: Option<i64>,
    pub not_before: Option<i64>,
}

/// Why a source could not answer.
pub type SourceError = crate::result::Failure;

/// Where secret metadata comes from. Named apart from
/// [`crate::config::SecretSource`], which is where vouch reads its own
/// credentials.
pub trait SecretMetadataSource: Send + Sync + 'static {
    /// For messages: `vault broxiva-prod.vault.azure.net`.
    fn describe(&self) -> String;

    /// The facts of those secrets among `wanted` that exist; the others
    /// are missing. Names are compared without regard to case.
    fn list<'a>(
        &'a self,
        ctx: &'a ProbeContext,
        wanted: &'a HashSet<String>,
    ) -> BoxFuture<'a, Result<Vec<SecretFacts>, SourceError>>;

    /// The cluster watches the source reads (none outside Kubernetes).
    fn watches(&self) -> Vec<WatchKey> {
        Vec::new()
    }
}

struct Requirement {
    name: String,
    optional: bool,
    max_age: Option<Duration>,
    min_valid_for: Option<Duration>,
}

/// A compiled `secret_age` check.
pub struct SecretAgeProbe {
    source: Box<dyn SecretMetadataSource>,
    requirements: Vec<Requirement>,
    wanted: HashSet<String>,
}

const NO_EXPIRY: &str = "only with key_vault: Kubernetes Secrets have no expiry date";

/// Key Vault secret names: 1–127 letters, digits and dashes.
fn is_key_vault_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl SecretAgeProbe {
    pub fn build(config: &SecretAgeConfig, ctx: &BuildContext) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        if config.secrets.is_empty() {
            problems.push(Problem::new("secrets", "must list at least one secret"));
        }
        let mut seen = HashSet::new();
        for (i, secret) in config.secrets.iter().enumerate() {
            // Key Vault names are case-insensitive: JWT-Secret is jwt-secret.
            if !seen.insert(secret.name.to_ascii_lowercase()) {
                problems.push(Problem::new(
                    format!("secrets[{i}].name"),
                    format!("duplicate secret {:?}", secret.name),
                ));
            }
            if config.kubernetes.is_some() && !kubernetes::is_secret_name(&secret.name) {
                problems.push(Problem::new(
                    format!("secrets[{i}].name"),
                    format!(
                        "invalid Kubernetes Secret name {:?}: 1 to 253 lower-case letters, digits, '-' and '.'",
                        secret.name
                    ),
                ));
            }
            if config.kubernetes.is_some() && secret.min_valid_for.is_some() {
                problems.push(Problem::new(
                    format!("secrets[{i}].min_valid_for"),
                    NO_EXPIRY,
                ));
            }
            if config.key_vault.is_some() && !is_key_vault_name(&secret.name) {
                problems.push(Problem::new(
                    format!("secrets[{i}].name"),
                    format!(
                        "invalid Key Vault secret name {:?}: 1 to 127 letters, digits and '-'",
                        secret.name
                    ),
                ));
            }
            for (key, value) in [
                ("max_age", secret.max_age),
                ("min_valid_for", secret.min_valid_for),
            ] {
                if value.is_some_and(|d| d.0.is_zero()) {
                    problems.push(Problem::new(
                        format!("secrets[{i}].{key}"),
                        "must be longer than 0s",
                    ));
                }
            }
        }
        for (key, value) in [
            ("max_age", config.max_age),
            ("min_valid_for", config.min_valid_for),
        ] {
            if value.is_some_and(|d| d.0.is_zero()) {
                problems.push(Problem::new(key, "must be longer than 0s"));
            }
        }
        if config.kubernetes.is_some() && config.min_valid_for.is_some() {
            problems.push(Problem::new("min_valid_for", NO_EXPIRY));
        }
        let timeout = ctx.timeout;
        let metadata_source: Option<Box<dyn SecretMetadataSource>> =
            match (&config.key_vault, &config.kubernetes) {
                (Some(_), Some(_)) => {
                    problems.push(Problem::new(
                        "",
                        "give one source: key_vault or kubernetes, not both",
                    ));
                    None
                }
                (None, Some(namespace)) => {
                    match kubernetes::KubernetesSecretSource::build(namespace, timeout) {
                        Ok(source) => Some(Box::new(source)),
                        Err(inner) => {
                            problems.extend(inner.into_iter().map(|p| p.under("kubernetes")));
                            None
                        }
                    }
                }
                (Some(vault), None) => match key_vault::KeyVaultSource::build(vault, ctx) {
                    Ok(vault) => Some(Box::new(vault)),
                    Err(inner) => {
                        problems.extend(inner.into_iter().map(|p| p.under("key_vault")));
                        None
                    }
                },
                (None, None) => {
                    problems.push(Problem::new("", "needs a source: key_vault or kubernetes"));
                    None
                }
            };
        let (Some(metadata_source), true) = (metadata_source, problems.is_empty()) else {
            return Err(problems);
        };
        let requirements: Vec<Requirement> = config
            .secrets
            .iter()
            .map(|s| Requirement {
                name: s.name.clone(),
                optional: s.optional,
                max_age: s.max_age.or(config.max_age).map(|d| d.0),
                min_valid_for: s.min_valid_for.or(config.min_valid_for).map(|d| d.0),
            })
            .collect();
        Ok(SecretAgeProbe {
            source: metadata_source,
            wanted: requirements.iter().map(|r| r.name.clone()).collect(),
            requirements,
        })
    }

    async fn execute(&self, ctx: &ProbeContext) -> Outcome {
        let facts = match self.source.list(ctx, &self.wanted).await {
            Ok(facts) => facts,
            Err(err) => return Outcome::error(err.reason, err.message),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        judge(&self.requirements, &facts, now, &self.source.describe())
    }
}

/// A whole number of the largest unit that fits (`120d`, `5h`): ages
/// are rarely exact and the seconds would only be noise.
fn days(seconds: i64) -> String {
    let seconds = seconds.unsigned_abs();
    match seconds {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Judges the facts against the requirements at `now` (Unix seconds).
/// Names match without regard to case (Key Vault's are case-insensitive;
/// Kubernetes' are lower case anyway).
fn judge(requirements: &[Requirement], facts: &[SecretFacts], now: i64, where_: &str) -> Outcome {
    let by_name: HashMap<String, &SecretFacts> = facts
        .iter()
        .map(|f| (f.name.to_ascii_lowercase(), f))
        .collect();
    let mut findings = Findings::default();
    for requirement in requirements {
        match by_name.get(&requirement.name.to_ascii_lowercase()) {
            None => findings.absent(requirement),
            Some(fact) => findings.present(requirement, fact, now),
        }
    }
    findings.outcome(requirements.len(), where_)
}

/// What the secrets showed, gathered one secret at a time.
#[derive(Default)]
struct Findings<'a> {
    measurements: Vec<Measurement>,
    missing: Vec<String>,
    disabled: Vec<String>,
    not_yet_valid: Vec<String>,
    too_old: Vec<String>,
    expiring: Vec<String>,
    /// Optional secrets absent or not usable, for the pass message.
    notes: Vec<String>,
    oldest: Option<(&'a str, i64)>,
}

impl<'a> Findings<'a> {
    fn absent(&mut self, requirement: &Requirement) {
        let name = requirement.name.as_str();
        self.measurements
            .push(Measurement::labelled(Measure::SecretPresent, &[name], 0.0));
        if requirement.optional {
            self.notes.push(format!("optional {name} absent"));
        } else {
            self.missing.push(name.to_string());
        }
    }

    fn present(&mut self, requirement: &'a Requirement, fact: &SecretFacts, now: i64) {
        let name = requirement.name.as_str();
        self.measurements
            .push(Measurement::labelled(Measure::SecretPresent, &[name], 1.0));
        self.measurements.push(Measurement::labelled(
            Measure::SecretEnabled,
            &[name],
            f64::from(u8::from(fact.enabled)),
        ));
        if !fact.enabled {
            if requirement.optional {
                self.notes.push(format!("optional {name} disabled"));
            } else {
                self.disabled.push(name.to_string());
            }
            return;
        }
        // Not valid before `nbf`: like a disabled secret, not usable yet.
        if let Some(from) = fact.not_before.filter(|&nbf| nbf > now) {
            let when = format!("{name} (valid in {})", days(from - now));
            if requirement.optional {
                self.notes.push(format!("optional {when}"));
            } else {
                self.not_yet_valid.push(when);
            }
            return;
        }
        if let Some(written) = fact.created.or(fact.updated) {
            self.age(requirement, (now - written).max(0));
        }
        if let Some(expires) = fact.expires {
            self.expiry(requirement, expires, now);
        }
    }

    /// The time since the secret was last written, against `max_age`.
    fn age(&mut self, requirement: &'a Requirement, age: i64) {
        let name = requirement.name.as_str();
        self.measurements.push(Measurement::labelled(
            Measure::SecretAgeSeconds,
            &[name],
            age as f64,
        ));
        if self.oldest.is_none_or(|(_, a)| age > a) {
            self.oldest = Some((name, age));
        }
        if let Some(limit) = requirement.max_age {
            if age as u64 > limit.as_secs() {
                self.too_old.push(format!(
                    "{name} last rotated {} ago, limit {}",
                    days(age),
                    format_duration(limit)
                ));
            }
        }
    }

    /// The expiry time, against now and `min_valid_for`.
    fn expiry(&mut self, requirement: &Requirement, expires: i64, now: i64) {
        let name = requirement.name.as_str();
        self.measurements.push(Measurement::labelled(
            Measure::SecretExpiryTimestamp,
            &[name],
            expires as f64,
        ));
        let left = expires - now;
        if left <= 0 {
            self.expiring
                .push(format!("{name} expired {} ago", days(-left)));
        } else if let Some(min) = requirement.min_valid_for {
            if (left as u64) < min.as_secs() {
                self.expiring.push(format!(
                    "{name} expires in {}, min_valid_for {}",
                    days(left),
                    format_duration(min)
                ));
            }
        }
    }

    /// The outcome of `required` secrets in `where_`.
    fn outcome(self, required: usize, where_: &str) -> Outcome {
        let mut failures: Vec<(Reason, String)> = Vec::new();
        if !self.missing.is_empty() {
            failures.push((
                Reason::SecretMissing,
                format!("missing from {where_}: {}", self.missing.join(", ")),
            ));
        }
        if !self.disabled.is_empty() {
            failures.push((
                Reason::SecretDisabled,
                format!(
                    "disabled (counted as missing): {}",
                    self.disabled.join(", ")
                ),
            ));
        }
        if !self.not_yet_valid.is_empty() {
            failures.push((
                Reason::SecretNotYetValid,
                format!(
                    "not valid yet (counted as missing): {}",
                    self.not_yet_valid.join(", ")
                ),
            ));
        }
        failures.extend(self.too_old.into_iter().map(|m| (Reason::SecretAge, m)));
        failures.extend(
            self.expiring
                .into_iter()
                .map(|m| (Reason::SecretExpiring, m)),
        );
        let outcome = match Outcome::from_failures(failures.iter().map(|(r, m)| (*r, m.as_str()))) {
            Some(outcome) => outcome,
            None => {
                let present = required - self.notes.len();
                let mut message = format!("{present} secrets present and enabled in {where_}");
                if let Some((name, age)) = self.oldest {
                    message.push_str(&format!("; oldest {name}, rotated {} ago", days(age)));
                }
                for note in self.notes {
                    message.push_str("; ");
                    message.push_str(&note);
                }
                Outcome::pass(message)
            }
        };
        outcome.with_measurements(self.measurements)
    }
}

impl Probe for SecretAgeProbe {
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Outcome> {
        self.execute(ctx).boxed()
    }

    fn needs(&self) -> Needs {
        Needs {
            watches: self.source.watches(),
            warnings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Verdict;

    const DAY: i64 = 86_400;

    fn requirement(name: &str, optional: bool, max_age_days: Option<u64>) -> Requirement {
        Requirement {
            name: name.into(),
            optional,
            max_age: max_age_days.map(|d| Duration::from_secs(d * 86_400)),
            min_valid_for: Some(Duration::from_secs(14 * 86_400)),
        }
    }

    fn fact(name: &str, enabled: bool, age_days: i64, expires_in_days: Option<i64>) -> SecretFacts {
        let now = 1_000 * DAY;
        SecretFacts {
            name: name.into(),
            enabled,
            created: Some(now - age_days * DAY),
            updated: Some(now - age_days * DAY),
            expires: expires_in_days.map(|d| now + d * DAY),
            not_before: None,
        }
    }

    #[test]
    fn every_broken_expectation_is_named() {
        let requirements = [
            requirement("jwt-secret", false, Some(90)),
            requirement("db-password", false, Some(90)),
            requirement("stripe-key", false, None),
            requirement("sentry-dsn", true, None),
            requirement("smtp-password", false, None),
        ];
        let facts = [
            fact("jwt-secret", true, 120, None),
            fact("stripe-key", true, 10, Some(3)),
            fact("smtp-password", false, 1, None),
        ];
        let outcome = judge(&requirements, &facts, 1_000 * DAY, "vault v");
        assert_eq!(
            (outcome.verdict, outcome.reason),
            (Verdict::Fail, Reason::SecretMissing)
        );
        assert_eq!(
            outcome.message,
            "missing from vault v: db-password; disabled (counted as missing): smtp-password; \
             jwt-secret last rotated 120d ago, limit 90d; stripe-key expires in 3d, min_valid_for 14d"
        );
    }

    #[test]
    fn names_match_without_case_and_not_yet_valid_secrets_count_as_missing() {
        let requirements = [
            requirement("JWT-Secret", false, Some(90)),
            requirement("stripe-key", false, None),
            requirement("sentry-dsn", true, None),
        ];
        let now = 1_000 * DAY;
        let mut stripe = fact("Stripe-Key", true, 1, None);
        stripe.not_before = Some(now + 3 * DAY);
        let mut sentry = fact("sentry-dsn", true, 1, None);
        sentry.not_before = Some(now + DAY);
        let facts = [fact("jwt-secret", true, 10, None), stripe, sentry];
        let outcome = judge(&requirements, &facts, now, "vault v");
        assert_eq!(
            (outcome.verdict, outcome.reason),
            (Verdict::Fail, Reason::SecretNotYetValid)
        );
        assert_eq!(
            outcome.message,
            "not valid yet (counted as missing): stripe-key (valid in 3d)"
        );
        // A not-before in the past is no matter.
        let mut stripe = fact("stripe-key", true, 1, None);
        stripe.not_before = Some(now - DAY);
        let outcome = judge(
            &requirements,
            &[fact("JWT-SECRET", true, 10, None), stripe],
            now,
            "vault v",
        );
        assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.message);
        assert_eq!(
            outcome.message,
            "2 secrets present and enabled in vault v; oldest JWT-Secret, rotated 10d ago; optional sentry-dsn absent"
        );
    }

    #[test]
    fn optional_secrets_may_be_absent() {
        let requirements = [
            requirement("jwt-secret", false, Some(90)),
            requirement("sentry-dsn", true, None),
        ];
        let outcome = judge(
            &requirements,
            &[fact("jwt-secret", true, 30, Some(100))],
            1_000 * DAY,
            "vault v",
        );
        assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.message);
        assert_eq!(
            outcome.message,
            "1 secrets present and enabled in vault v; oldest jwt-secret, rotated 30d ago; optional sentry-dsn absent"
        );
    }
}
