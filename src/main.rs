use std::process::ExitCode;

use clap::Parser;
use vouch::cli::{init_logging, run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("vouch: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    ExitCode::from(runtime.block_on(run(cli)))
}
