//! `govtrust-bench`: a load generator for the gRPC API of a running `govtrust serve`.
//!
//! For each operation it opens `--clients` connections over mTLS (each client its own TCP and
//! TLS session), runs a warm-up and a measured window (or, for `enroll`, a fixed count of
//! single-use tokens), and reports total ops, ops/s and p50/p99 latency, with the performance
//! targets beside them. Everything it needs that is not measured — the KMS key, registered
//! systems, key pairs and CSRs — is prepared before the clock starts.
//!
//! It does not start or configure the server, and it leaves what it creates (keys, systems,
//! certificates) in the deployment: run it against a throw-away `--dev` data directory.

mod bench;
mod cli;
mod connection;
mod cpu;
mod enrollment;
mod load;
mod report;
mod stats;
mod transport;

use std::process::ExitCode;

use clap::Parser;

use crate::bench::Bench;
use crate::cli::Args;
use crate::stats::Summary;

/// The load generator's allocator, like the server's: less client CPU per call.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(results) => {
            print(&args, &results);
            if results.iter().any(Summary::failed) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Vec<Summary>> {
    let mut bench = Bench::connect(args).await?;
    let ops = args.selected_ops();
    let mut rounds: Vec<Vec<Summary>> = ops.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        for (op, results) in ops.iter().zip(rounds.iter_mut()) {
            if round == 0 || *op != cli::Op::Enroll {
                results.push(bench.measure(*op).await);
            }
        }
    }
    Ok(rounds.into_iter().filter_map(median).collect())
}

/// The round with the median ops/s (a failed round wins, so failures are never hidden).
fn median(mut rounds: Vec<Summary>) -> Option<Summary> {
    if let Some(failed) = rounds.iter().position(Summary::failed) {
        return Some(rounds.swap_remove(failed));
    }
    rounds.sort_by(|a, b| a.ops_per_second().total_cmp(&b.ops_per_second()));
    let middle = rounds.len() / 2;
    rounds.into_iter().nth(middle)
}

fn print(args: &Args, results: &[Summary]) {
    if args.json {
        let json = serde_json::to_string_pretty(&report::to_json(results)).unwrap_or_default();
        println!("{json}");
    } else {
        report::print_table(results);
    }
}
