//! The daemon (`vouch serve`): the plan put in force, the scheduler and
//! the HTTP server started, and the process's signals and reload requests
//! answered until it is told to stop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::{load_web_config, EXIT_CONFIG, EXIT_OK};
use crate::clients::Clients;
use crate::config::ConfigError;
use crate::output::server::ReloadRequest;
use crate::output::server::{router, AppState};
use crate::output::web_config::WebConfigWatcher;
use crate::output::Outputs;
use crate::plan::{Plan, Shard};
use crate::scheduler::Scheduler;

/// Puts a re-read config in force: a valid one swaps in (unchanged checks
/// keep their schedule and history), an invalid one is rejected and the
/// config in force keeps running. Returns what to tell a `POST /-/reload`.
fn apply_reload(
    loaded: Result<Plan, ConfigError>,
    plan: &mut Plan,
    scheduler: &mut Scheduler,
    outputs: &Outputs,
) -> Result<String, String> {
    match loaded {
        Err(err) => {
            for problem in &err.problems {
                tracing::error!(problem = %problem, "config reload rejected; the previous config keeps running");
            }
            outputs.metrics.reload_failed();
            outputs
                .status
                .reload_rejected(err.problems.iter().map(ToString::to_string).collect());
            Err(err.to_string())
        }
        Ok(new) => {
            if new.settings.listen_address != plan.settings.listen_address
                || new.settings.max_concurrent_runs != plan.settings.max_concurrent_runs
            {
                tracing::warn!(
                    "listen_address and max_concurrent_runs take effect at the next restart"
                );
            }
            outputs.reconfigure(&new.checks);
            let changes = scheduler.reconcile(&new.checks);
            tracing::info!(
                kept = changes.kept,
                started = changes.started,
                stopped = changes.stopped,
                "config reloaded"
            );
            plan.checks = new.checks;
            plan.settings.shutdown_grace = new.settings.shutdown_grace;
            Ok(format!(
                "reloaded: {} checks kept, {} started, {} stopped\n",
                changes.kept, changes.started, changes.stopped
            ))
        }
    }
}

/// Keeps the Kubernetes watches that show rollouts of the workloads the
/// checks' `after_rollout_of` names (none, and no connection, without).
async fn follow_rollouts(
    clients: &Clients,
    checks: &[Arc<crate::plan::PlannedCheck>],
) -> Vec<Arc<crate::kube::Watch>> {
    let workloads: Vec<crate::plan::WorkloadRef> = checks
        .iter()
        .filter_map(|c| c.rollout.as_ref())
        .flat_map(|link| link.workloads.iter().cloned())
        .collect();
    if workloads.is_empty() {
        return Vec::new();
    }
    clients.kube.follow_rollouts(&workloads).await
}

/// Longest reading, parsing and building a config may take before it
/// is rejected. Ten thousand checks load in about a second; a file that
/// takes longer is on a mount that hangs, or is hostile.
const LOAD_WAIT: Duration = Duration::from_secs(60);

/// [`load_for_serve`] on the blocking pool, waited for at most `wait`: a
/// huge or hostile config (or one on a hung mount) costs a pool thread,
/// never the loop that answers signals and reloads. A load that outlives
/// its wait is rejected; a later one of the same file fails at once while
/// the read is still stuck (see [`crate::file_read`]).
async fn load_off_loop(
    path: &Path,
    clients: &Arc<Clients>,
    scope: &Scope,
    wait: Duration,
) -> Result<Plan, ConfigError> {
    let (owned, shared, scope) = (path.to_path_buf(), clients.clone(), scope.clone());
    let task = tokio::task::spawn_blocking(move || load_for_serve(&owned, &shared, &scope));
    let origin = path.display().to_string();
    match tokio::time::timeout(wait, task).await {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(_)) => Err(ConfigError::whole_file(
            &origin,
            "loading the config failed (see the log)".to_string(),
        )),
        Err(_) => Err(ConfigError::whole_file(
            &origin,
            format!(
                "reading and checking the config did not finish within {} s (a FIFO, or a hung mount?)",
                wait.as_secs()
            ),
        )),
    }
}

/// Which of the config's checks this daemon runs: its shard, and the
/// checks `--only`/`--skip` select (as `vouch check`'s), applied at start
/// and at every reload.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub shard: Option<Shard>,
    pub only: Vec<String>,
    pub skip: Vec<String>,
}

/// Loads the config for `serve`, restricted to its scope. A selector that
/// matches no check of the (reloaded) config is a config error, as for
/// `vouch check`: a typo must not silently run everything or nothing. A
/// config without checks is refused as `vouch validate` refuses it: the
/// daemon would serve a green page and a passing gate while verifying
/// nothing (at start exit 2; on reload the running config stays). A shard
/// left without checks is not refused: with more shards than checks one
/// holds none, which is no mistake of its config.
fn load_for_serve(path: &Path, clients: &Clients, scope: &Scope) -> Result<Plan, ConfigError> {
    let mut plan = Plan::load(path, clients)?;
    if plan.checks.is_empty() {
        let source = crate::config::SourcedConfig::load(path);
        let problem = source.ok().and_then(|source| source.no_checks());
        return Err(ConfigError {
            problems: vec![problem.unwrap_or_else(|| crate::config::LocatedProblem {
                origin: path.display().to_string(),
                line: None,
                path: "checks".to_string(),
                message: "no checks given: add at least one (examples/ has one of each kind)"
                    .to_string(),
            })],
        });
    }
    if !scope.only.is_empty() || !scope.skip.is_empty() {
        plan.checks = plan
            .select(&scope.only, &scope.skip)
            .map_err(|message| ConfigError {
                problems: vec![crate::config::LocatedProblem {
                    origin: path.display().to_string(),
                    line: None,
                    path: String::new(),
                    message,
                }],
            })?;
    }
    if let Some(shard) = scope.shard {
        let total = plan.checks.len();
        plan.restrict_to(shard);
        tracing::info!(%shard, checks = plan.checks.len(), of = total, "running one shard of the checks");
    }
    Ok(plan)
}

pub async fn serve(
    path: &Path,
    clients: Arc<Clients>,
    listen_flag: Option<String>,
    (scope, peers): (Scope, Option<Arc<crate::output::peers::Peers>>),
    enable_reload: bool,
    max_connections: usize,
    web_config: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let mut plan = match load_off_loop(path, &clients, &scope, LOAD_WAIT).await {
        Ok(plan) => plan,
        Err(err) => {
            for problem in &err.problems {
                eprintln!("{problem}");
            }
            return Ok(EXIT_CONFIG);
        }
    };
    let web = match web_config {
        Some(file) => match load_web_config(&file) {
            Ok(web) => Some(Arc::new(WebConfigWatcher::new(file, web))),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let scheme = match &web {
        Some(web) if web.current().tls.is_some() => "https",
        _ => "http",
    };
    let listen_address = listen_flag.unwrap_or_else(|| plan.settings.listen_address.clone());
    let outputs = Arc::new(Outputs::new(&plan.checks));
    let ready = Arc::new(AtomicBool::new(false));
    let (reload_requests, mut reloads) = tokio::sync::mpsc::channel::<ReloadRequest>(8);
    let _config_watch = crate::config_watch::spawn(path.to_path_buf(), reload_requests.clone());
    let app = router(AppState {
        metrics: outputs.metrics.clone(),
        status: outputs.status.clone(),
        ready: ready.clone(),
        reload: enable_reload.then_some(reload_requests),
        kube: Some(clients.kube.clone()),
        peers,
    });
    let listener = tokio::net::TcpListener::bind(&listen_address)
        .await
        .with_context(|| format!("cannot listen on {listen_address}"))?;
    let local = listener.local_addr()?;
    let stop_serving = tokio_util::sync::CancellationToken::new();
    let server = {
        let stop = stop_serving.clone();
        let options = crate::output::listener::ServeOptions {
            web,
            max_connections,
            metrics: outputs.metrics.clone(),
        };
        tokio::spawn(crate::output::listener::serve(listener, app, options, stop))
    };
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;

    let mut scheduler = Scheduler::start(
        &plan.checks,
        clients.clone(),
        outputs.clone(),
        plan.settings.max_concurrent_runs,
    );
    outputs.metrics.count_loops_from(scheduler.live_loops());
    outputs.metrics.watch_states_from(clients.kube.clone());
    let mut _followed = follow_rollouts(&clients, &plan.checks).await;
    ready.store(true, Ordering::Release);
    tracing::info!(
        address = %local,
        scheme,
        checks = plan.checks.len(),
        config = %path.display(),
        "vouch is serving"
    );

    let signal_name = loop {
        let answer = tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => None,
            Some(answer) = reloads.recv() => Some(answer),
        };
        // Signals are still answered while the new config loads.
        let loaded = tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            loaded = load_off_loop(path, &clients, &scope, LOAD_WAIT) => loaded,
        };
        let result = apply_reload(loaded, &mut plan, &mut scheduler, &outputs);
        // The new set is taken before the old is dropped: kept watches go on.
        _followed = follow_rollouts(&clients, &plan.checks).await;
        if let Some(answer) = answer {
            let _ = answer.send(result);
        }
    };
    tracing::info!(
        signal = signal_name,
        grace = %crate::config::format_duration(plan.settings.shutdown_grace),
        "shutting down"
    );
    ready.store(false, Ordering::Release);
    if !scheduler.shutdown(plan.settings.shutdown_grace).await {
        tracing::warn!("runs still in flight at the end of the grace period were abandoned");
    }
    stop_serving.cancel();
    match tokio::time::timeout(std::time::Duration::from_secs(2), server).await {
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "HTTP server ended with an error"),
        Err(_) => tracing::warn!("HTTP server did not stop in time"),
        _ => {}
    }
    Ok(EXIT_OK)
}
