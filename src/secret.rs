//! Secrets: given in config only by reference (`NAME_file`, `NAME_env`),
//! held in a type that never prints its content, and scrubbed from every
//! message a run produces.
//!
//! This module is the one place vouch reads its own secrets:
//! [`SecretResolver`] turns a kind's references into [`SecretSource`]s
//! when a check is built, and [`SecretSource::read`] reads one at every
//! run. [`scrub`] is the one way a secret is taken out of a message.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::config::Problem;

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
    #[error(
        "cannot read secret file {}: an earlier read has not returned for {seconds} s (a FIFO, or a hung mount?)",
        path.display()
    )]
    Stuck { path: PathBuf, seconds: u64 },
    #[error(
        "cannot read secret file {}: the read did not return within {} s (a FIFO, or a hung mount?)",
        path.display(),
        waited.as_secs_f64()
    )]
    TimedOut {
        path: PathBuf,
        waited: std::time::Duration,
    },
}

/// The largest secret file read: keys and tokens are a few KiB; this keeps
/// a wrong path (`/dev/zero`, a log file) from filling memory.
pub const MAX_SECRET_BYTES: u64 = 1 << 20;

/// Reads a secret file (at most [`MAX_SECRET_BYTES`], as UTF-8) unless an
/// earlier read of it has not returned; see [`crate::file_read`].
fn read_guarded(path: &Path) -> Result<String, SecretError> {
    use crate::file_read::FileReadError;
    let bytes = crate::file_read::read(path, MAX_SECRET_BYTES).map_err(|err| match err {
        FileReadError::Io { path, source } => SecretError::File { path, source },
        FileReadError::Stuck { path, seconds } => SecretError::Stuck { path, seconds },
        FileReadError::TimedOut { path, waited } => SecretError::TimedOut { path, waited },
    })?;
    String::from_utf8(bytes).map_err(|_| SecretError::File {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

impl SecretSource {
    pub fn read(&self) -> Result<Secret, SecretError> {
        let (value, origin) = match self {
            SecretSource::File(path) => {
                let text = read_guarded(path)?;
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

    /// [`Self::read`] for a run: a file is read on the blocking pool, so a
    /// read that blocks holds neither an async worker nor the run past its
    /// timeout (the runner abandons the run; the read finishes, or not, on
    /// its own thread). While such a read is pending, later reads of the
    /// same file (async or not) fail at once, naming it.
    pub async fn read_async(&self) -> Result<Secret, SecretError> {
        let SecretSource::File(path) = self else {
            return self.read();
        };
        let source = self.clone();
        match tokio::task::spawn_blocking(move || source.read()).await {
            Ok(result) => result,
            Err(_) => Err(SecretError::File {
                path: path.clone(),
                source: std::io::Error::other("the read failed"),
            }),
        }
    }
}

impl SecretSource {
    /// [`Self::read_async`] given up after `wait`, for a caller that would
    /// rather name the file than be cut off by its run's timeout.
    pub async fn read_before(&self, wait: std::time::Duration) -> Result<Secret, SecretError> {
        match tokio::time::timeout(wait, self.read_async()).await {
            Ok(read) => read,
            Err(_) => match self {
                SecretSource::File(path) => Err(SecretError::TimedOut {
                    path: path.clone(),
                    waited: wait,
                }),
                SecretSource::Env(_) => self.read(),
            },
        }
    }
}

/// Turns the `NAME_file` / `NAME_env` keys of a kind's block into a
/// [`SecretSource`], files resolved against the config file's directory.
/// Handed to every kind's `build` in its build context.
#[derive(Clone, Debug)]
pub struct SecretResolver {
    base_dir: PathBuf,
}

impl SecretResolver {
    /// A resolver for a config file in `base_dir`.
    pub fn new(base_dir: PathBuf) -> Self {
        SecretResolver { base_dir }
    }

    /// The secret of a `NAME_file` / `NAME_env` pair in the block at
    /// `block` (a key path relative to the kind, `""` for the kind itself).
    /// Giving both is a problem at `NAME_env`; giving neither is None.
    pub fn source(
        &self,
        file: Option<&PathBuf>,
        env: Option<&String>,
        name: &str,
        block: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<SecretSource> {
        match (file, env) {
            (Some(_), Some(_)) => {
                let key = format!("{name}_env");
                let path = if block.is_empty() {
                    key
                } else {
                    format!("{block}.{key}")
                };
                problems.push(Problem::new(
                    path,
                    format!("give {name}_file or {name}_env, not both"),
                ));
                file.map(|path| SecretSource::File(self.resolve_path(path)))
            }
            (Some(path), None) => Some(SecretSource::File(self.resolve_path(path))),
            (None, Some(variable)) => Some(SecretSource::Env(variable.clone())),
            (None, None) => None,
        }
    }

    /// A path from the config, relative to the config file's directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        crate::connect_to::map_path(if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        })
    }
}

/// The shortest secret [`scrub`] replaces: every non-empty one. The rule
/// is that no secret value is ever printed, so even a one-letter password
/// is taken out of a message; that such a password makes the message hard
/// to read is the lesser harm.
pub const MIN_SCRUBBED_LEN: usize = 1;

/// `text` with every occurrence of each secret (of at least
/// [`MIN_SCRUBBED_LEN`] bytes) replaced by `[redacted]`.
pub fn scrub<S: AsRef<str>>(text: &str, secrets: impl IntoIterator<Item = S>) -> String {
    let mut text = text.to_string();
    for secret in secrets {
        let secret = secret.as_ref();
        if secret.len() >= MIN_SCRUBBED_LEN && text.contains(secret) {
            text = text.replace(secret, REDACTED);
        }
    }
    text
}

/// What stands where a secret was.
pub const REDACTED: &str = "[redacted]";

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
    fn scrub_replaces_every_non_empty_secret_and_only_those() {
        let secrets = [Secret::new("hunter2".into()), Secret::new(String::new())];
        assert_eq!(
            scrub("hunter2 said hunter2", secrets.iter().map(Secret::expose)),
            "[redacted] said [redacted]"
        );
        assert_eq!(scrub("x", ["x", ""]), "[redacted]");
        assert_eq!(scrub("nothing here", ["absent"]), "nothing here");
    }

    #[test]
    fn relative_secret_files_are_read_from_the_config_directory() {
        let resolver = SecretResolver::new(PathBuf::from("/etc/vouch"));
        let mut problems = Vec::new();
        let file = PathBuf::from("token");
        let source = resolver.source(Some(&file), None, "token", "", &mut problems);
        assert_eq!(
            source,
            Some(SecretSource::File(PathBuf::from("/etc/vouch/token")))
        );
        let env = "TOKEN".to_string();
        resolver.source(Some(&file), Some(&env), "token", "auth", &mut problems);
        assert_eq!(problems[0].path, "auth.token_env");
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
