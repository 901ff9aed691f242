//! The `wisp` binary: parses the command line, sets up tracing, and runs [`wisp_cli::run`].

/// mimalloc: measurably less CPU per invoke than glibc malloc under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = wisp_cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(wisp_cli::default_log_filter(&cli)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            wisp_cli::output::print_error(&anyhow::Error::new(e).context("cannot start tokio"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wisp_cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            wisp_cli::output::print_error(&e);
            ExitCode::FAILURE
        }
    }
}
