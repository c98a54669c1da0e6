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
    /// `wait`: how long to wait for each file, for callers on a thread that
    /// must not stay blocked (None: read on this thread, which is one the
    /// blocking pool lent; see [`crate::file_read`]).
    fn kubeconfig(&self, wait: Option<Duration>) -> Result<Option<(Kubeconfig, String)>, Problem> {
        if let Some((path, key)) = &self.kubeconfig {
            return read_kubeconfig(path, wait)
                .map(|k| Some((k, path.display().to_string())))
                .map_err(|message| Problem::new(*key, message));
        }
        if let Some(listed) = &self.kubeconfig_env {
            // Several files are merged, the first to name a cluster, user
            // or context winning, as kubectl does.
            let mut merged: Option<Kubeconfig> = None;
            for path in std::env::split_paths(listed).filter(|p| !p.as_os_str().is_empty()) {
                let next = read_kubeconfig(&path, wait)
                    .and_then(|next| match merged.take() {
                        Some(first) => first.merge(next).map_err(|err| err.to_string()),
                        None => Ok(next),
                    })
                    .map_err(|err| {
                        Problem::new(
                            "$KUBECONFIG",
                            format!("cannot read the kubeconfig KUBECONFIG names: {err}"),
                        )
                    })?;
                merged = Some(next);
            }
            return Ok(merged.map(|k| (k, "$KUBECONFIG".to_string())));
        }
        if in_cluster() {
            return Ok(None);
        }
        // Not in a cluster and nothing named: the user's kubeconfig if
        // there is one. Its absence is no config problem (a config for
        // in-cluster use is validated on machines without one).
        Ok(std::env::home_dir()
            .map(|home| home.join(".kube").join("config"))
            .and_then(|path| read_kubeconfig(&path, wait).ok())
            .map(|k| (k, "~/.kube/config".to_string())))
    }

    /// Where the client's credentials come from, for messages.
    fn origin(&self) -> String {
        match (&self.kubeconfig, &self.kubeconfig_env) {
            (Some((path, _)), _) => format!("the kubeconfig {}", path.display()),
            (None, Some(listed)) => format!("the kubeconfig KUBECONFIG names ({listed})"),
            (None, None) if in_cluster() => "the in-cluster service account".to_string(),
            (None, None) => "~/.kube/config".to_string(),
        }
    }

    /// Problems `vouch validate` reports: an unreadable kubeconfig, an
    /// unknown context. Reads only local files.
    pub fn problems(&self) -> Vec<Problem> {
        match self.kubeconfig(Some(crate::file_read::BUILD_WAIT)) {
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

    /// Builds the client, waiting at most `wait` for its files. The
    /// kubeconfig and the files it names (CA, client certificate, token)
    /// are read with blocking calls, kube's loader among them, so all of
    /// it runs on the blocking pool: a hung mount holds no async worker,
    /// and a caller that stops waiting leaves the load in `pending`, where
    /// the next caller finds it instead of starting another.
    pub async fn client(
        &self,
        pending: &mut Option<PendingLoad>,
        wait: Duration,
    ) -> Result<kube::Client, String> {
        crate::clients::tls_configs::install_default_provider();
        let load = match pending.take() {
            Some(load) if !load.task.is_finished() => {
                let message = format!(
                    "loading {} has not returned for {} s (a FIFO, or a hung mount?)",
                    self.origin(),
                    load.since.elapsed().as_secs()
                );
                *pending = Some(load);
                return Err(message);
            }
            Some(load) => load,
            None => {
                let settings = self.clone();
                let runtime = tokio::runtime::Handle::current();
                PendingLoad {
                    task: tokio::task::spawn_blocking(move || runtime.block_on(settings.config())),
                    since: std::time::Instant::now(),
                }
            }
        };
        let PendingLoad { mut task, since } = load;
        let config = match tokio::time::timeout(wait, &mut task).await {
            Ok(Ok(config)) => config?,
            Ok(Err(_)) => return Err(format!("loading {} failed", self.origin())),
            Err(_) => {
                *pending = Some(PendingLoad { task, since });
                return Err(format!(
                    "loading {} did not return within {} s (a FIFO, or a hung mount?)",
                    self.origin(),
                    wait.as_secs_f64()
                ));
            }
        };
        kube::Client::try_from(config).map_err(|err| format!("cannot build the client: {err}"))
    }

    /// The client's config, from the kubeconfig or the service account.
    async fn config(&self) -> Result<kube::Config, String> {
        let mut config = match self.kubeconfig(None).map_err(|p| p.message)? {
            Some((mut kubeconfig, origin)) => {
                inline_files(&mut kubeconfig).map_err(|err| format!("kubeconfig {origin}: {err}"))?;
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
            None => in_cluster_config(Path::new(SERVICE_ACCOUNT_DIR))?,
        };
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(READ_TIMEOUT);
        // Count from the request, not from when a pooled connection went idle.
        config.reset_reader_on_write = true;
        Ok(config)
    }
}

/// A client load still running on the blocking pool: a caller stopped
/// waiting for it (its run's deadline), the next one picks it up.
pub struct PendingLoad {
    task: tokio::task::JoinHandle<Result<kube::Config, String>>,
    since: std::time::Instant,
}

/// Reads one kubeconfig file (capped, see [`crate::file_read`]) and
/// resolves the relative file names in it against its directory, as
/// kubectl does.
fn read_kubeconfig(path: &Path, wait: Option<Duration>) -> Result<Kubeconfig, String> {
    use crate::file_read::{read, read_within, MAX_KUBECONFIG_BYTES};
    let bytes = match wait {
        Some(wait) => read_within(path, MAX_KUBECONFIG_BYTES, wait),
        None => read(path, MAX_KUBECONFIG_BYTES),
    }
    .map_err(|err| format!("cannot read kubeconfig {}: {}", path.display(), err.cause()))?;
    let shown = path.display();
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("kubeconfig {shown} is not valid: not UTF-8 text"))?;
    let mut kubeconfig = Kubeconfig::from_yaml(&text)
        .map_err(|err| format!("kubeconfig {shown} is not valid: {err}"))?;
    if let Some(dir) = path.parent() {
        resolve_relative(&mut kubeconfig, dir);
    }
    Ok(kubeconfig)
}

/// Makes the file names a kubeconfig holds absolute, from `dir`. An exec
/// plugin's command is a file name only when it has a separator (a bare
/// name is looked up in PATH).
fn resolve_relative(kubeconfig: &mut Kubeconfig, dir: &Path) {
    let absolute = |name: &mut Option<String>| {
        if let Some(relative) = name.as_ref().filter(|n| Path::new(n).is_relative()) {
            if let Some(joined) = dir.join(relative).to_str() {
                *name = Some(joined.to_string());
            }
        }
    };
    for cluster in kubeconfig
        .clusters
        .iter_mut()
        .filter_map(|c| c.cluster.as_mut())
    {
        absolute(&mut cluster.certificate_authority);
    }
    for user in kubeconfig
        .auth_infos
        .iter_mut()
        .filter_map(|u| u.auth_info.as_mut())
    {
        absolute(&mut user.client_certificate);
        absolute(&mut user.client_key);
        absolute(&mut user.token_file);
        if let Some(exec) = user.exec.as_mut() {
            if exec.command.as_deref().is_some_and(|c| c.contains('/')) {
                absolute(&mut exec.command);
            }
        }
    }
}

/// Reads the certificate and key files a kubeconfig names, capped (see
/// [`crate::file_read`]), into the `*-data` fields kube would otherwise
/// fill by reading them whole. The token file stays a file, since kube
/// re-reads it as a projected token rotates; it is read once here, capped,
/// so that one that never ends is refused before kube reads it whole.
fn inline_files(kubeconfig: &mut Kubeconfig) -> Result<(), String> {
    use base64::Engine as _;
    let inline = |file: &mut Option<String>| -> Result<Option<String>, String> {
        let Some(path) = file.take() else {
            return Ok(None);
        };
        let bytes = crate::file_read::read(Path::new(&path), crate::file_read::MAX_PEM_BYTES)
            .map_err(|err| err.to_string())?;
        Ok(Some(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ))
    };
    for cluster in kubeconfig
        .clusters
        .iter_mut()
        .filter_map(|c| c.cluster.as_mut())
    {
        if cluster.certificate_authority_data.is_none() {
            cluster.certificate_authority_data = inline(&mut cluster.certificate_authority)?;
        }
    }
    for user in kubeconfig
        .auth_infos
        .iter_mut()
        .filter_map(|u| u.auth_info.as_mut())
    {
        if user.client_certificate_data.is_none() {
            user.client_certificate_data = inline(&mut user.client_certificate)?;
        }
        if user.client_key_data.is_none() {
            user.client_key_data = inline(&mut user.client_key)?.map(secrecy::SecretString::from);
        }
        if let Some(token_file) = &user.token_file {
            capped(Path::new(token_file))?;
        }
    }
    Ok(())
}

/// Where a pod's service account is mounted; kube's in-cluster loader
/// reads the token and the CA from here.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The in-cluster config, once its token and CA are known to be files of
/// a sane size: kube reads them whole (and the token again as it rotates).
fn in_cluster_config(account_dir: &Path) -> Result<kube::Config, String> {
    for name in ["token", "ca.crt"] {
        capped(&account_dir.join(name))
            .map_err(|err| format!("in-cluster service account: {err}"))?;
    }
    kube::Config::incluster().map_err(|err| format!("in-cluster service account: {err}"))
}

/// Reads a file kube will read itself, capped and dropped at once: a FIFO,
/// `/dev/zero` or a log file named by mistake fails here with its name.
/// Tokens and PEM files are well under the cap.
fn capped(path: &Path) -> Result<(), String> {
    crate::file_read::read(path, crate::file_read::MAX_PEM_BYTES)
        .map(drop)
        .map_err(|err| err.to_string())
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

    /// The client's load runs on the blocking pool: a kubeconfig that
    /// blocks ends the caller's wait with an error naming it, and the next
    /// caller finds the same load instead of starting another read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_kubeconfig_that_blocks_ends_the_wait_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        assert!(std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success());
        let settings = ConnectionSettings {
            kubeconfig: Some((path.clone(), "--kubeconfig")),
            ..Default::default()
        };
        let mut pending = None;
        let Err(err) = settings
            .client(&mut pending, Duration::from_millis(300))
            .await
        else {
            panic!("a client from a FIFO");
        };
        let shown = path.display().to_string();
        assert!(
            err.contains(&shown) && err.contains("did not return within 0.3 s"),
            "{err}"
        );
        let Err(again) = settings.client(&mut pending, Duration::from_secs(60)).await else {
            panic!("a client from a FIFO");
        };
        assert!(
            again.contains(&shown) && again.contains("has not returned for"),
            "{again}"
        );
        // Let the read return (end of file), leaving no thread behind.
        let _ = std::fs::OpenOptions::new().write(true).open(&path);
    }

    #[test]
    fn an_endless_kubeconfig_is_refused_at_the_cap() {
        let settings = ConnectionSettings {
            kubeconfig: Some(("/dev/zero".into(), "kubernetes.kubeconfig")),
            ..Default::default()
        };
        let problems = settings.problems();
        assert_eq!(problems[0].path, "kubernetes.kubeconfig");
        assert_eq!(
            problems[0].message,
            "cannot read kubeconfig /dev/zero: larger than 4096 KiB"
        );
    }

    /// The CA and client files a kubeconfig names are read capped by
    /// vouch, not whole by kube: an endless one is an error naming it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_endless_file_the_kubeconfig_names_is_refused_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let server = "server: 'https://127.0.0.1:6443'";
        for (key, cluster, user) in [
            (
                "cluster",
                &format!("{server}, certificate-authority: /dev/zero") as &str,
                "token: abc",
            ),
            (
                "user",
                server,
                "client-certificate: /dev/zero, client-key: /dev/zero",
            ),
            ("token", server, "tokenFile: /dev/zero"),
        ] {
            let text = KUBECONFIG
                .replace(&format!("{{ {server} }}"), &format!("{{ {cluster} }}"))
                .replace("{ token: abc }", &format!("{{ {user} }}"));
            std::fs::write(&path, text).unwrap();
            let settings = ConnectionSettings {
                kubeconfig: Some((path.clone(), "--kubeconfig")),
                ..Default::default()
            };
            let Err(err) = settings.client(&mut None, Duration::from_secs(60)).await else {
                panic!("a client whose {key} file is /dev/zero");
            };
            assert!(
                err.ends_with("cannot read /dev/zero: larger than 1024 KiB"),
                "{key}: {err}"
            );
        }
    }

    /// In a pod, kube reads the service account's token and CA whole: an
    /// endless one is refused first, naming it.
    #[test]
    fn an_endless_service_account_file_is_refused_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "a.b.c").unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("ca.crt")).unwrap();
        let Err(err) = in_cluster_config(dir.path()) else {
            panic!("an in-cluster config whose ca.crt is /dev/zero");
        };
        let shown = dir.path().join("ca.crt").display().to_string();
        assert_eq!(
            err,
            format!("in-cluster service account: cannot read {shown}: larger than 1024 KiB")
        );
    }
}
