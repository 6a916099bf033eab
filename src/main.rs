//! `govtrust`: the trust server and its command-line client.
//!
//! One binary: `govtrust serve` runs the gRPC server (certificate authority and key-management
//! centre on one mTLS port); `govtrust init` creates a deployment; every other subcommand is a
//! client of a running server, for administrators (`system register`, `kms key ...`,
//! `cert list`) and for government systems (`enroll`, `renew`).

#[macro_use]
mod output;

mod cli;
mod client;
mod config;
mod credential;
mod files;
mod init;
mod layout;
mod rfc3339;
mod server;
mod signals;

use clap::Parser;

/// mimalloc instead of glibc's allocator: malloc and free were about 11% of the server's CPU
/// per issuance (perf, `bench/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    init_tracing(args.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return report(anyhow::Error::new(error).context("cannot start the runtime")),
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => report(error),
    }
}

fn report(error: anyhow::Error) -> std::process::ExitCode {
    if let Some(output::Failed(status)) = error.downcast_ref::<output::Failed>() {
        return std::process::ExitCode::from(*status);
    }
    eprintln!("error: {error:#}");
    std::process::ExitCode::FAILURE
}

fn init_tracing(verbose: bool) {
    let default = if verbose {
        "info,govtrust=debug"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GOVTRUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: a log file must not carry escape codes.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(std::io::stderr)
        .init();
}
