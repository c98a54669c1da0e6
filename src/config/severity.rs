//! How much a failing check matters.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How much a failing check matters. Ordered: info < warning < critical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// `--fail-on`'s values, the most severe first.
impl clap::ValueEnum for Severity {
    fn value_variants<'a>() -> &'a [Self] {
        &[Severity::Critical, Severity::Warning, Severity::Info]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Decoded by hand so a mistake reads "invalid severity" rather than the
/// decoder's "unknown variant".
impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeverityVisitor;
        impl serde::de::Visitor<'_> for SeverityVisitor {
            type Value = Severity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a severity: critical, warning or info")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Severity, E> {
                match v {
                    "critical" => Ok(Severity::Critical),
                    "warning" => Ok(Severity::Warning),
                    "info" => Ok(Severity::Info),
                    _ => Err(E::custom(format!(
                        "invalid severity {v:?}: expected critical, warning or info{}",
                        super::hints::closest_value(v, &["critical", "warning", "info"])
                            .map(|best| format!("; did you mean \"{best}\"?"))
                            .unwrap_or_default()
                    ))),
                }
            }
        }
        deserializer.deserialize_str(SeverityVisitor)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
