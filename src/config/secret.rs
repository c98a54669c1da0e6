//! Secret values: given in config only by reference, held in a type that
//! never prints its content.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

/// A secret's value. `Debug`, `Display` and `Serialize` all print
/// `[redacted]`; only [`Secret::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret text, for the one place that must send it (a header, a
    /// connection string). Never log or format the returned value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

/// Where a secret comes from. Read at every use, so a rotated file (a
/// re-mounted Kubernetes Secret) is picked up without a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("secret from {0} is empty")]
    Empty(String),
}

impl SecretSource {
    pub fn read(&self) -> Result<Secret, SecretError> {
        let (value, origin) = match self {
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                // Mounted secrets and `echo` leave a trailing newline that is
                // never part of the value.
                (
                    text.trim_end_matches(['\r', '\n']).to_string(),
                    path.display().to_string(),
                )
            }
            SecretSource::Env(name) => (
                std::env::var(name).map_err(|_| SecretError::EnvMissing(name.clone()))?,
                format!("${name}"),
            ),
        };
        if value.is_empty() {
            return Err(SecretError::Empty(origin));
        }
        Ok(Secret(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[redacted]\"");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn file_secrets_lose_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let secret = SecretSource::File(path).read().unwrap();
        assert_eq!(secret.expose(), "s3cret");
    }

    #[test]
    fn missing_sources_are_errors_naming_the_source() {
        let err = SecretSource::Env("VOUCH_TEST_SURELY_UNSET".into())
            .read()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable VOUCH_TEST_SURELY_UNSET is not set"
        );
    }
}
