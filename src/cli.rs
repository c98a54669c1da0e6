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
/// Exit code: bad config or usage, or `vouch check` selected no check.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: `vouch check` could not write its report (`--output`).
pub const EXIT_OUTPUT: u8 = 3;

const CHECK_EXIT_CODES: &str = "Exit codes:\n  0  the gate passed: no check at or above --fail-on failed or errored\n  1  the gate failed: a check at or above --fail-on failed or errored\n  2  bad config or usage, or no check selected (see --allow-empty)\n  3  the report could not be written (--output)";
const SERVE_EXIT_CODES: &str = "Endpoints: / (status page), /checks/NAME, /api/v1/checks, /api/v1/checks/NAME,\n/api/v1/gate (200 when the selected checks pass, else 503; ?section=, ?check=,\n?severity= (default warning), ?since=), /metrics, /livez, /healthz, /readyz,\nPOST /-/reload.\n\nExit codes:\n  0  stopped by SIGTERM or SIGINT\n  1  failed (e.g. cannot listen)\n  2  bad config";
const VALIDATE_EXIT_CODES: &str =
    "Exit codes:\n  0  valid\n  2  invalid: every problem is listed with file, line and key";

#[derive(Debug, Parser)]
#[command(
    name = "vouch",
    version = version(),
    about = "Deployment verification: checklist items as continuous checks, Prometheus metrics and a deployment gate",
    after_help = "Exit codes: 0 success; 1 gate failed (check) or daemon failure (serve); 2 bad config or usage; 3 report not written (check).\nDocumentation: README.md and docs/ of the source repository."
)]
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
    /// Run every check on its schedule; serve the status page (/), the gate (/api/v1/gate), /metrics and the JSON API.
    #[command(after_help = SERVE_EXIT_CODES)]
    Serve {
        /// The config file (YAML): the checks and their defaults.
        #[arg(long, env = "VOUCH_CONFIG", value_name = "FILE")]
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
    #[command(after_help = CHECK_EXIT_CODES)]
    Check {
        /// The config file (YAML): the checks and their defaults.
        #[arg(long, env = "VOUCH_CONFIG", value_name = "FILE")]
        config: PathBuf,
        /// Kubernetes API access: this kubeconfig file (wins over the config's kubernetes.kubeconfig and KUBECONFIG).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        /// Report format: a table for people, JSON (the shape of /api/v1/checks), or JUnit XML for CI test views.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Write the report to this file instead of standard output (exit 3 if it cannot be written).
        #[arg(long, value_name = "FILE")]
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
        /// Pass when the config and selectors leave no check to run (else that is exit 2).
        #[arg(long)]
        allow_empty: bool,
    },
    /// Parse and validate the config without touching any target.
    #[command(after_help = VALIDATE_EXIT_CODES)]
    Validate {
        /// The config file (YAML): the checks and their defaults.
        #[arg(long, env = "VOUCH_CONFIG", value_name = "FILE")]
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
            disable_reload,
            web_config,
        } => {
            let clients = Arc::new(Clients::with_kubeconfig(kubeconfig));
            serve(
                &config,
                clients,
                listen_address,
                shard,
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
            allow_empty,
        } => {
            let selection = Selection {
                only,
                skip,
                allow_empty,
            };
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
    /// Whether a selection of no check passes.
    allow_empty: bool,
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
    if selected.is_empty() && !selection.allow_empty {
        // An empty gate must not pass silently (a config or --skip that
        // leaves nothing is a mistake more often than an intention).
        eprintln!("vouch: no check selected (the config has {} checks); pass --allow-empty to let an empty gate pass", plan.checks.len());
        return Ok(EXIT_CONFIG);
    }
    // Opened before any check runs: an unwritable report fails at once,
    // with its own exit code, rather than after the checks as a gate failure.
    let mut report_file = match output.map(std::fs::File::create).transpose() {
        Ok(file) => file,
        Err(err) => {
            let file = output.expect("only a given file fails");
            eprintln!(
                "vouch: cannot write the report to {}: {err}",
                file.display()
            );
            return Ok(EXIT_OUTPUT);
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
    match (&mut report_file, output) {
        (Some(handle), Some(file)) => {
            if let Err(err) = std::io::Write::write_all(handle, text.as_bytes()) {
                eprintln!(
                    "vouch: cannot write the report to {}: {err}",
                    file.display()
                );
                return Ok(EXIT_OUTPUT);
            }
        }
        _ => print!("{text}"),
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
    shard: Option<Shard>,
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
