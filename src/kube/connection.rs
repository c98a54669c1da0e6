//! How vouch reaches the API server: a kubeconfig (the `--kubeconfig`
//! flag, then the config's `kubernetes.kubeconfig`, then `KUBECONFIG`), or
//! the pod's service account when running in a cluster, or
//! `~/.kube/config` as a last resort.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Deserialize;

use crate::config::Problem;

/// The top-level `kubernetes` block of the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KubeConnectionConfig {
    /// Path of a kubeconfig file (relative to the config file). The
    /// `--kubeconfig` flag wins over it; it wins over `KUBECONFIG`. Without
    /// any, vouch uses its pod's service account (in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use (default: its current context).
    pub context: Option<String>,
    /// Most objects one watch may hold (default
    /// [`DEFAULT_MAX_OBJECTS_PER_WATCH`]); a list or watch that brings more
    /// turns the watch to `error`/`too_large` instead of growing.
    pub max_objects_per_watch: Option<usize>,
}

/// Objects one watch holds at most unless `kubernetes.max_objects_per_watch`
/// says otherwise: 50 000 Pods at the 5-20 KiB each vouch keeps are a
/// few hundred MiB, more than a verification daemon should hold.
pub const DEFAULT_MAX_OBJECTS_PER_WATCH: usize = 50_000;

/// Where the connection settings come from, resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The kubeconfig file and the key (for messages) it came from.
    pub kubeconfig: Option<(PathBuf, &'static str)>,
    /// `KUBECONFIG` as set in the environment (may list several files).
    pub kubeconfig_env: Option<String>,
    pub context: Option<String>,
}

/// Longest a connection to the API server may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the API server may stay silent on a request. Watches are asked
/// to end after [`super::watch::WATCH_TIMEOUT_SECONDS`] (then resumed from
/// their resource version, no list), so a quiet but healthy watch never
/// hits this; a hung API server does, and the checks turn to `error`
/// instead of passing on what the cache held.
pub const READ_TIMEOUT: Duration = Duration::from_secs(75);

impl ConnectionSettings {
    /// Resolves the flag, the config block (paths against `base_dir`) and
    /// the environment.
    pub fn resolve(
        flag: Option<&Path>,
        file: Option<&KubeConnectionConfig>,
        base_dir: &Path,
        kubeconfig_env: Option<String>,
    ) -> Self {
        let from_file = file
            .and_then(|f| f.kubeconfig.as_ref())
            .map(|p| (base_dir.join(p), "kubernetes.kubeconfig"));
        let kubeconfig = flag
            .map(|p| (p.to_path_buf(), "--kubeconfig"))
            .or(from_file);
        ConnectionSettings {
            kubeconfig,
            kubeconfig_env: kubeconfig_env.filter(|v| !v.trim().is_empty()),
            context: file.and_then(|f| f.context.clone()),
        }
    }

    /// The kubeconfig that would be used, if any (None: in-cluster).
    fn kubeconfig(&self) -> Result<Option<(Kubeconfig, String)>, Problem> {
        if let Some((path, key)) = &self.kubeconfig {
            let shown = path.display();
            let text = std::fs::read_to_string(path).map_err(|err| {
                Problem::new(*key, format!("cannot read kubeconfig {shown}: {err}"))
            })?;
            return Kubeconfig::from_yaml(&text)
                .map(|k| Some((k, shown.to_string())))
                .map_err(|err| {
                    Problem::new(*key, format!("kubeconfig {shown} is not valid: {err}"))
                });
        }
        if self.kubeconfig_env.is_some() {
            return match Kubeconfig::from_env() {
                Ok(Some(k)) => Ok(Some((k, "$KUBECONFIG".to_string()))),
                Ok(None) => Ok(None),
                Err(err) => Err(Problem::new(
                    "$KUBECONFIG",
                    format!("cannot read the kubeconfig KUBECONFIG names: {err}"),
                )),
            };
        }
        if in_cluster() {
            return Ok(None);
        }
        // Not in a cluster and nothing named: the user's kubeconfig if
        // there is one. Its absence is no config problem (a config for
        // in-cluster use is validated on machines without one).
        Ok(Kubeconfig::read()
            .ok()
            .map(|k| (k, "~/.kube/config".to_string())))
    }

    /// Problems `vouch validate` reports: an unreadable kubeconfig, an
    /// unknown context. Reads only local files.
    pub fn problems(&self) -> Vec<Problem> {
        match self.kubeconfig() {
            Err(problem) => vec![problem],
            Ok(Some((kubeconfig, origin))) => match &self.context {
                Some(context) if !kubeconfig.contexts.iter().any(|c| &c.name == context) => {
                    let known: Vec<&str> = kubeconfig
                        .contexts
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect();
                    vec![Problem::new(
                        "kubernetes.context",
                        format!(
                            "no context {context:?} in {origin} (it has: {})",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    )]
                }
                None if kubeconfig.current_context.is_none() && kubeconfig.contexts.len() != 1 => {
                    vec![Problem::new(
                        "kubernetes.context",
                        format!(
                            "{origin} has no current-context; name one with kubernetes.context"
                        ),
                    )]
                }
                _ => Vec::new(),
            },
            Ok(None) if self.context.is_some() => vec![Problem::new(
                "kubernetes.context",
                "a context needs a kubeconfig (kubernetes.kubeconfig, --kubeconfig or KUBECONFIG)",
            )],
            Ok(None) => Vec::new(),
        }
    }

    /// Builds the client.
    pub async fn client(&self) -> Result<kube::Client, String> {
        crate::clients::tls_configs::install_default_provider();
        let mut config = match self.kubeconfig().map_err(|p| p.message)? {
            Some((kubeconfig, origin)) => {
                let mut options = KubeConfigOptions {
                    context: self.context.clone(),
                    ..Default::default()
                };
                if options.context.is_none() && kubeconfig.current_context.is_none() {
                    options.context = kubeconfig.contexts.first().map(|c| c.name.clone());
                }
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|err| format!("kubeconfig {origin}: {err}"))?
            }
            None if !in_cluster() => {
                return Err("not running in a cluster (KUBERNETES_SERVICE_HOST is unset) and no kubeconfig found; give kubernetes.kubeconfig, --kubeconfig or KUBECONFIG".to_string())
            }
            None => kube::Config::incluster()
                .map_err(|err| format!("in-cluster service account: {err}"))?,
        };
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(READ_TIMEOUT);
        // Count from the request, not from when a pooled connection went idle.
        config.reset_reader_on_write = true;
        kube::Client::try_from(config).map_err(|err| format!("cannot build the client: {err}"))
    }
}

fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: { server: 'https://127.0.0.1:6443' }
users:
- name: u
  user: { token: abc }
contexts:
- name: dev
  context: { cluster: c, user: u }
current-context: dev
";

    #[test]
    fn unknown_context_and_missing_file_are_problems_at_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kc"), KUBECONFIG).unwrap();
        let file = KubeConnectionConfig {
            kubeconfig: Some("kc".into()),
            context: Some("prod".into()),
            ..Default::default()
        };
        let settings = ConnectionSettings::resolve(None, Some(&file), dir.path(), None);
        let problems = settings.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "kubernetes.context");
        assert!(
            problems[0].message.contains("(it has: dev)"),
            "{problems:?}"
        );

        let missing = ConnectionSettings::resolve(
            Some(Path::new("/nonexistent/kubeconfig")),
            Some(&file),
            dir.path(),
            None,
        );
        let problems = missing.problems();
        assert_eq!(problems[0].path, "--kubeconfig");

        let good = KubeConnectionConfig {
            kubeconfig: Some("kc".into()),
            context: Some("dev".into()),
            ..Default::default()
        };
        let settings = ConnectionSettings::resolve(None, Some(&good), dir.path(), None);
        assert_eq!(settings.problems(), vec![]);
    }
}
