//! The command line: `serve`, `check` and `validate`, and their exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{ConfigError, Severity};
use crate::output::report::{Format, GateReport};
use crate::output::server::ReloadRequest;
use crate::output::server::{router, AppState};
use crate::output::web_config::{WebConfig, WebConfigWatcher};
use crate::output::Outputs;
use crate::plan::{Plan, Shard};
use crate::probe::Clients;
use crate::scheduler::Scheduler;

/// Exit code: every check at or above `--fail-on` passed / config valid.
pub const EXIT_OK: u8 = 0;
/// Exit code: a blocking check failed or errored; or the daemon failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad config or usage.
pub const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "vouch", version = version(), about = "Deployment verification: checklist items as continuous checks, Prometheus metrics and a deployment gate")]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "VOUCH_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

fn version() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("VOUCH_REVISION"), ")")
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every check on its schedule and serve /metrics, /readyz, /api/v1/checks.
    Serve {
        #[arg(long, env = "VOUCH_CONFIG")]
        config: PathBuf,
        /// Kubernetes API access: this kubeconfig file (wins over the config's kubernetes.kubeconfig and KUBECONFIG).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        /// Address to listen on (default from config, else 0.0.0.0:9847).
        #[arg(long = "web.listen-address")]
        listen_address: Option<String>,
        /// Run only shard I of N of the checks (by a stable hash of their names), e.g. from a StatefulSet ordinal.
        #[arg(long, value_name = "I/N", value_parser = Shard::parse, env = "VOUCH_SHARD")]
        shard: Option<Shard>,
        /// With --shard: the other shards' URL, {shard} replaced by each index (e.g. http://vouch-{shard}.vouch-shards:9847); the gate and /api/v1/checks then answer for every shard.
        #[arg(
            long = "shard.peers",
            value_name = "URL",
            env = "VOUCH_SHARD_PEERS",
            requires = "shard"
        )]
        shard_peers: Option<String>,
        /// Refuse POST /-/reload (SIGHUP still reloads).
        #[arg(long = "web.disable-reload")]
        disable_reload: bool,
        /// TLS and basic authentication for every endpoint, in the Prometheus exporter-toolkit format.
        #[arg(
            long = "web.config.file",
            value_name = "FILE",
            env = "VOUCH_WEB_CONFIG_FILE"
        )]
        web_config: Option<PathBuf>,
    },
    /// Run the checks once as a deployment gate; exit 0 when none at or above --fail-on failed.
    Check {
        #[arg(long, env = "VOUCH_CONFIG")]
        config: PathBuf,
        /// Kubernetes API access: this kubeconfig file (wins over the config's kubernetes.kubeconfig and KUBECONFIG).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Write the report to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Lowest severity whose failure fails the gate.
        #[arg(long, value_enum, default_value_t = FailOn::Warning)]
        fail_on: FailOn,
        /// Run only these checks: a check name, a section, a section prefix, or a label (key=value). Repeatable.
        #[arg(long = "only", value_name = "NAME|SECTION|KEY=VALUE")]
        only: Vec<String>,
        /// Leave these checks out (same forms as --only). Repeatable.
        #[arg(long = "skip", value_name = "NAME|SECTION|KEY=VALUE")]
        skip: Vec<String>,
    },
    /// Parse and validate the config without touching any target.
    Validate {
        #[arg(long, env = "VOUCH_CONFIG")]
        config: PathBuf,
        /// Kubernetes API access: this kubeconfig file (wins over the config's kubernetes.kubeconfig and KUBECONFIG).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        /// TLS and basic authentication for every endpoint, in the Prometheus exporter-toolkit format.
        #[arg(
            long = "web.config.file",
            value_name = "FILE",
            env = "VOUCH_WEB_CONFIG_FILE"
        )]
        web_config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Junit,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FailOn {
    Critical,
    Warning,
    Info,
}

impl From<FailOn> for Severity {
    fn from(value: FailOn) -> Self {
        match value {
            FailOn::Critical => Severity::Critical,
            FailOn::Warning => Severity::Warning,
            FailOn::Info => Severity::Info,
        }
    }
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Serve {
            config,
            kubeconfig,
            listen_address,
            shard,
            shard_peers,
            disable_reload,
            web_config,
        } => {
            let peers = match (shard, shard_peers) {
                (Some(shard), Some(template)) => {
                    match crate::output::peers::Peers::new(shard.index, shard.count, &template) {
                        Ok(peers) => Some(Arc::new(peers)),
                        Err(message) => {
                            eprintln!("{message}");
                            return EXIT_CONFIG;
                        }
                    }
                }
                _ => None,
            };
            let clients = Arc::new(Clients::with_kubeconfig(kubeconfig));
            serve(
                &config,
                clients,
                listen_address,
                (shard, peers),
                !disable_reload,
                web_config,
            )
            .await
        }
        Command::Check {
            config,
            kubeconfig,
            format,
            output,
            fail_on,
            only,
            skip,
        } => {
            let selection = Selection { only, skip };
            check(
                &config,
                Arc::new(Clients::with_kubeconfig(kubeconfig)),
                format,
                output.as_deref(),
                fail_on.into(),
                &selection,
            )
            .await
        }
        Command::Validate {
            config,
            kubeconfig,
            web_config,
        } => validate(
            &config,
            &Clients::with_kubeconfig(kubeconfig),
            web_config.as_deref(),
        ),
    };
    result.unwrap_or_else(|err| {
        eprintln!("vouch: {err:#}");
        EXIT_FAILED
    })
}

/// Which checks `vouch check` runs.
struct Selection {
    only: Vec<String>,
    skip: Vec<String>,
}

/// Loads the plan, or prints every problem and gives the exit code.
fn load_plan(path: &Path, clients: &Clients) -> Result<Plan, u8> {
    Plan::load(path, clients).map_err(|err| {
        for problem in &err.problems {
            eprintln!("{problem}");
        }
        EXIT_CONFIG
    })
}

/// Loads the web config, or prints every problem and gives the exit code.
fn load_web_config(path: &Path) -> Result<WebConfig, u8> {
    WebConfig::load(path).map_err(|err| {
        for problem in &err.problems {
            eprintln!("{problem}");
        }
        EXIT_CONFIG
    })
}

fn validate(path: &Path, clients: &Clients, web_config: Option<&Path>) -> anyhow::Result<u8> {
    let plan = load_plan(path, clients);
    let web = web_config.map(load_web_config);
    if let Ok(plan) = &plan {
        println!("{}: ok, {} checks", path.display(), plan.checks.len());
    }
    if let (Some(file), Some(Ok(_))) = (web_config, &web) {
        println!("{}: ok", file.display());
    }
    Ok(match (plan, web) {
        (Err(code), _) | (_, Some(Err(code))) => code,
        _ => EXIT_OK,
    })
}

async fn check(
    path: &Path,
    clients: Arc<Clients>,
    format: ReportFormat,
    output: Option<&Path>,
    fail_on: Severity,
    selection: &Selection,
) -> anyhow::Result<u8> {
    let plan = match load_plan(path, &clients) {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let selected = match plan.select(&selection.only, &selection.skip) {
        Ok(selected) => selected,
        Err(message) => {
            eprintln!("vouch: {message}");
            return Ok(EXIT_CONFIG);
        }
    };
    let show_progress = std::io::stderr().is_terminal();
    let records = crate::gate::run_all(
        selected,
        clients,
        plan.settings.max_concurrent_runs,
        show_progress,
    )
    .await;
    let report = GateReport { records, fail_on };
    let format = match format {
        ReportFormat::Table => Format::Table,
        ReportFormat::Json => Format::Json,
        ReportFormat::Junit => Format::Junit,
    };
    let text = report.render(format);
    match output {
        Some(file) => std::fs::write(file, &text)
            .with_context(|| format!("cannot write the report to {}", file.display()))?,
        None => print!("{text}"),
    }
    Ok(if report.passed() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// Re-reads the config: a valid one swaps in (unchanged checks keep
/// their schedule and history), an invalid one is rejected and the config
/// in force keeps running. Returns what to tell a `POST /-/reload`.
fn reload(
    path: &Path,
    clients: &Clients,
    shard: Option<Shard>,
    plan: &mut Plan,
    scheduler: &mut Scheduler,
    outputs: &Outputs,
) -> Result<String, String> {
    match load_for_serve(path, clients, shard) {
        Err(err) => {
            for problem in &err.problems {
                tracing::error!(problem = %problem, "config reload rejected; the previous config keeps running");
            }
            outputs.metrics.reload_failed();
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

/// Loads the config for `serve`, restricted to its shard.
fn load_for_serve(
    path: &Path,
    clients: &Clients,
    shard: Option<Shard>,
) -> Result<Plan, ConfigError> {
    let mut plan = Plan::load(path, clients)?;
    if let Some(shard) = shard {
        let total = plan.checks.len();
        plan.restrict_to(shard);
        tracing::info!(%shard, checks = plan.checks.len(), of = total, "running one shard of the checks");
    }
    Ok(plan)
}

async fn serve(
    path: &Path,
    clients: Arc<Clients>,
    listen_flag: Option<String>,
    (shard, peers): (Option<Shard>, Option<Arc<crate::output::peers::Peers>>),
    enable_reload: bool,
    web_config: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let mut plan = match load_for_serve(path, &clients, shard) {
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
        tokio::spawn(crate::output::listener::serve(listener, app, web, stop))
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
        let result = reload(path, &clients, shard, &mut plan, &mut scheduler, &outputs);
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
