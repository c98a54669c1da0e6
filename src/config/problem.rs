//! Problems found in a config, with and without their place in the file.

use std::fmt;

use thiserror::Error;

/// A problem found in a config, before the file and line are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Key path in decoding-error notation, e.g. `checks[2].http.url`.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same problem below `prefix` (a kind module reports paths
    /// relative to its own block).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }
}

/// A problem with its place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedProblem {
    pub origin: String,
    pub line: Option<usize>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for LocatedProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one config; displays one per line.
#[derive(Debug, Error)]
pub struct ConfigError {
    pub problems: Vec<LocatedProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            problem.fmt(f)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// A problem with the file as a whole (it could not be read in time).
    pub fn whole_file(origin: &str, message: String) -> Self {
        Self::single(origin, None, "", message)
    }

    pub(crate) fn single(origin: &str, line: Option<usize>, path: &str, message: String) -> Self {
        ConfigError {
            problems: vec![LocatedProblem {
                origin: origin.to_string(),
                line,
                path: path.to_string(),
                message,
            }],
        }
    }
}
