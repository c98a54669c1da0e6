//! The command line: `serve`, `check` and `validate`, and their exit codes.
//! `serve` is the daemon, wired up in [`crate::daemon`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::clients::Clients;
use crate::config::{Severity, SourcedConfig};
use crate::output::report::{Format, GateReport};
use crate::output::web_config::WebConfig;
use crate::plan::{Plan, Shard};

/// Exit code: every check at or above `--fail-on` passed / config valid.
pub const EXIT_OK: u8 = 0;
/// Exit code: a blocking check failed or errored; or the daemon failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad config or usage, or `vouch check` selected no check.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: `vouch check` could not write its report (`--output`).
pub const EXIT_OUTPUT: u8 = 3;

const CHECK_EXIT_CODES: &str = "Exit codes:\n  0  the gate passed: no check at or above --fail-on failed or errored\n  1  the gate failed: a check at or above --fail-on failed or errored\n  2  bad config or usage, or no check selected (see --allow-empty)\n  3  the report could not be written (--output)";
const SERVE_EXIT_CODES: &str = "Endpoints: / (status page), /checks/NAME, /api/v1/checks, /api/v1/checks/NAME,\n/api/v1/gate (200 when the selected checks pass, else 503; ?section=, ?check=,\n?severity= (default warning), ?since=), /metrics, /livez, /healthz, /readyz,\nPOST /-/reload.\n\nExit codes:\n  0  stopped by SIGTERM or SIGINT\n  1  failed (e.g. cannot listen)\n  2  bad config, or one without checks";
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
    /// Sends connections to HOST:PORT to ADDRESS:PORT instead (as curl's
    /// option; names stay the TLS and HTTP names). Repeatable.
    #[arg(long, global = true, value_name = "HOST:PORT:ADDRESS:PORT", value_parser = crate::connect_to::ConnectTo::parse)]
    pub connect_to: Vec<crate::connect_to::ConnectTo>,
    /// Reads files the config names under FROM from TO instead. Repeatable.
    #[arg(long, global = true, value_name = "FROM=TO", value_parser = crate::connect_to::MapPath::parse)]
    pub map_path: Vec<crate::connect_to::MapPath>,
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
        /// With --shard: the other shards' URL, {shard} replaced by each index (e.g. http://vouch-{shard}.vouch-shards:9847); the gate and /api/v1/checks then answer for every shard.
        #[arg(
            long = "shard.peers",
            value_name = "URL",
            env = "VOUCH_SHARD_PEERS",
            requires = "shard"
        )]
        shard_peers: Option<String>,
        /// Accept POST /-/reload (off by default: anyone who can reach the port could make the daemon re-read its config; SIGHUP reloads either way).
        #[arg(long = "web.enable-reload")]
        enable_reload: bool,
        /// Open HTTP connections at most; at the limit the longest-open idle one is closed for a new one.
        #[arg(long = "web.max-connections", value_name = "N", default_value_t = crate::output::listener::DEFAULT_MAX_CONNECTIONS)]
        max_connections: usize,
        /// TLS and basic authentication for every endpoint, in the Prometheus exporter-toolkit format.
        #[arg(
            long = "web.config.file",
            value_name = "FILE",
            env = "VOUCH_WEB_CONFIG_FILE"
        )]
        web_config: Option<PathBuf>,
        /// Run only these checks: a check name, a section, a section prefix, or a label (key=value). Repeatable; applied at every reload too.
        #[arg(long = "only", value_name = "NAME|SECTION|KEY=VALUE")]
        only: Vec<String>,
        /// Leave these checks out (same forms as --only). Repeatable.
        #[arg(long = "skip", value_name = "NAME|SECTION|KEY=VALUE")]
        skip: Vec<String>,
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
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Write the report to this file instead of standard output (exit 3 if it cannot be written).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Lowest severity whose failure fails the gate.
        #[arg(long, value_enum, default_value_t = Severity::Warning)]
        fail_on: Severity,
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
    crate::connect_to::install(cli.connect_to, cli.map_path);
    let result = match cli.command {
        Command::Serve {
            config,
            kubeconfig,
            listen_address,
            shard,
            shard_peers,
            enable_reload,
            max_connections,
            web_config,
            only,
            skip,
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
            if let (Some(_), Some(file)) = (&peers, &web_config) {
                if let Err(message) = peers_can_be_asked(file) {
                    eprintln!("{message}");
                    return EXIT_CONFIG;
                }
            }
            let clients = Arc::new(Clients::with_kubeconfig(kubeconfig));
            crate::daemon::serve(
                &config,
                clients,
                listen_address,
                (crate::daemon::Scope { shard, only, skip }, peers),
                enable_reload,
                max_connections,
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
                fail_on,
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

/// Whether the shards can ask each other under the web config `file`:
/// peers are asked over plain HTTP without credentials, so a config that
/// asks for TLS or basic authentication would hold every sharded gate.
fn peers_can_be_asked(file: &Path) -> Result<(), String> {
    let Ok(web) = WebConfig::load(file) else {
        // Its problems are printed when the daemon loads it.
        return Ok(());
    };
    let needs: Vec<&str> = [
        web.tls.is_some().then_some("TLS"),
        web.users.is_some().then_some("basic authentication"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if needs.is_empty() {
        return Ok(());
    }
    Err(format!(
        "--shard.peers with --web.config.file {}: the web config asks for {}, but shards ask each other over plain HTTP without credentials, so every shard's gate would be held; drop --shard.peers (each replica then answers for its own shard) or serve without {}",
        file.display(),
        needs.join(" and "),
        needs.join(" and ")
    ))
}

/// Loads the web config, or prints every problem and gives the exit code.
pub(crate) fn load_web_config(path: &Path) -> Result<WebConfig, u8> {
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
    let mut plan = plan;
    if plan.is_ok() {
        // Loaded once more for what only the file tells: no checks at all
        // (an error here, where a gate would pass on nothing) and `*_env`
        // variables this shell does not set (warnings).
        if let Ok(source) = SourcedConfig::load(path) {
            if let Some(problem) = source.no_checks() {
                eprintln!("{problem}");
                plan = Err(EXIT_CONFIG);
            }
            for warning in source.unset_env_references(|name| std::env::var_os(name).is_some()) {
                eprintln!("{warning}");
            }
        }
    }
    if let Ok(plan) = &plan {
        let count = plan.checks.len();
        let noun = if count == 1 { "check" } else { "checks" };
        println!("{}: ok, {count} {noun}", path.display());
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
    format: Format,
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
    let records = crate::round::run_all(
        selected,
        clients,
        plan.settings.max_concurrent_runs,
        show_progress,
    )
    .await;
    let report = GateReport { records, fail_on };
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
