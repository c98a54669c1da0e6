//! Top-level settings after environment overrides.

use super::{ConfigFile, HumanDuration, Problem, DEFAULT_LISTEN_ADDRESS, DEFAULT_PORT};

/// Settings after defaults and environment overrides.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen_address: String,
    pub max_concurrent_runs: usize,
    pub shutdown_grace: std::time::Duration,
}

/// Applies environment overrides (`VOUCH_LISTEN_ADDRESS`,
/// `VOUCH_MAX_CONCURRENT_RUNS`, `VOUCH_SHUTDOWN_GRACE`) to the top-level
/// settings. `env` is a lookup so tests need not touch the process. A bad
/// value is reported under the name it was given by: the variable
/// (`$VOUCH_MAX_CONCURRENT_RUNS`) or the key.
pub fn settings(
    file: &ConfigFile,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, Vec<Problem>> {
    let mut problems = Vec::new();
    let (listen_address, listen_key) = match env("VOUCH_LISTEN_ADDRESS") {
        Some(text) => (text, "$VOUCH_LISTEN_ADDRESS"),
        None => (
            file.listen_address
                .clone()
                .unwrap_or_else(|| DEFAULT_LISTEN_ADDRESS.to_string()),
            "listen_address",
        ),
    };
    if let Err(message) = check_listen_address(&listen_address) {
        problems.push(Problem::new(listen_key, message));
    }
    let max_concurrent_runs = match env("VOUCH_MAX_CONCURRENT_RUNS") {
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                problems.push(Problem::new(
                    "$VOUCH_MAX_CONCURRENT_RUNS",
                    format!("expected a whole number of at least 1, got {text:?}"),
                ));
                1
            }
        },
        None => match file.max_concurrent_runs.unwrap_or(32) {
            0 => {
                problems.push(Problem::new("max_concurrent_runs", "must be at least 1"));
                1
            }
            n => n,
        },
    };
    let shutdown_grace = match env("VOUCH_SHUTDOWN_GRACE") {
        Some(text) => HumanDuration::parse(&text)
            .map(|d| d.0)
            .unwrap_or_else(|err| {
                problems.push(Problem::new("$VOUCH_SHUTDOWN_GRACE", err));
                std::time::Duration::from_secs(5)
            }),
        None => file
            .shutdown_grace
            .map(|d| d.0)
            .unwrap_or(std::time::Duration::from_secs(5)),
    };
    if problems.is_empty() {
        Ok(Settings {
            listen_address,
            max_concurrent_runs,
            shutdown_grace,
        })
    } else {
        Err(problems)
    }
}

/// `HOST:PORT` as `serve` binds it (`0.0.0.0:9847`, `[::]:9847`,
/// `localhost:9847`). Checked here so `vouch validate` catches it rather
/// than the daemon failing at bind.
fn check_listen_address(text: &str) -> Result<(), String> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.trim().is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "invalid listen address {text:?}: expected HOST:PORT (e.g. 0.0.0.0:{DEFAULT_PORT})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, SourcedConfig};
    use std::path::PathBuf;

    fn parse(text: &str) -> Result<SourcedConfig, ConfigError> {
        SourcedConfig::parse(text, "t.yaml", PathBuf::from("."))
    }

    #[test]
    fn environment_overrides_win_over_the_file() {
        let config = parse("listen_address: 127.0.0.1:1\nmax_concurrent_runs: 4\n").unwrap();
        let env = |key: &str| match key {
            "VOUCH_LISTEN_ADDRESS" => Some("127.0.0.1:2".to_string()),
            _ => None,
        };
        let settings = settings(&config.file, env).unwrap();
        assert_eq!(settings.listen_address, "127.0.0.1:2");
        assert_eq!(settings.max_concurrent_runs, 4);
    }

    #[test]
    fn bad_environment_overrides_name_the_variable() {
        let config = parse("checks: []\n").unwrap();
        let env = |key: &str| (key == "VOUCH_MAX_CONCURRENT_RUNS").then(|| "many".to_string());
        let problems = settings(&config.file, env).unwrap_err();
        assert_eq!(problems[0].path, "$VOUCH_MAX_CONCURRENT_RUNS");
    }
}
