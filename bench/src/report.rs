//! The results: a table (or JSON) per operation, and the targets beside them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::Op;
use crate::stats::{Summary, millis};

/// encrypt and datakey must reach this fraction of health's ops/s.
const RATIO_TARGET: f64 = 0.8;
/// create-key ops/s target (each is a durable write).
const CREATE_KEY_TARGET: f64 = 2000.0;

/// One target and what was measured for it.
struct Target {
    name: &'static str,
    measured: Option<f64>,
    goal: f64,
}

impl Target {
    fn met(&self) -> Option<bool> {
        self.measured.map(|value| value >= self.goal)
    }
}

fn targets(results: &[Summary]) -> [Target; 3] {
    let ops = |op: Op| {
        results
            .iter()
            .find(|s| s.op == op && s.ops > 0)
            .map(Summary::ops_per_second)
    };
    let ratio = |op: Op| Some(ops(op)? / ops(Op::Health)?);
    [
        Target {
            name: "encrypt/health ops/s ratio",
            measured: ratio(Op::Encrypt),
            goal: RATIO_TARGET,
        },
        Target {
            name: "datakey/health ops/s ratio",
            measured: ratio(Op::DataKey),
            goal: RATIO_TARGET,
        },
        Target {
            name: "create-key ops/s",
            measured: ops(Op::CreateKey),
            goal: CREATE_KEY_TARGET,
        },
    ]
}

/// Prints the table, the failures and the targets.
pub fn print_table(results: &[Summary]) {
    println!(
        "{:<11} {:>8} {:>9} {:>10} {:>10} {:>10} {:>14} {:>14}",
        "op", "clients", "ops", "ops/s", "p50 ms", "p99 ms", "server µs/op", "client µs/op"
    );
    for s in results {
        let (server, client) = s.cpu_per_op();
        println!(
            "{:<11} {:>8} {:>9} {:>10.1} {:>10.3} {:>10.3} {:>14} {:>14}",
            s.op.name(),
            s.clients,
            s.ops,
            s.ops_per_second(),
            millis(s.p50),
            millis(s.p99),
            micros(server),
            micros(client)
        );
    }
    print_failures(results);
    println!();
    for target in targets(results) {
        print_target(&target);
    }
}

fn print_failures(results: &[Summary]) {
    for s in results {
        if let Some(error) = &s.error {
            println!(
                "  {}: {} client(s) stopped early: {error}",
                s.op, s.failed_clients
            );
        }
    }
}

fn print_target(target: &Target) {
    let verdict = match target.met() {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    };
    let measured = target
        .measured
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "{:<27} {measured:>10} (target >= {}) {verdict}",
        target.name, target.goal
    );
}

/// The results and targets as one JSON document.
pub fn to_json(results: &[Summary]) -> Value {
    let operations: Vec<Value> = results.iter().map(summary_json).collect();
    let targets: Vec<Value> = targets(results)
        .iter()
        .map(
            |t| json!({ "name": t.name, "measured": t.measured, "target": t.goal, "met": t.met() }),
        )
        .collect();
    json!({ "operations": operations, "targets": targets })
}

/// Microseconds with one decimal, or "-" when not measured.
fn micros(duration: Option<Duration>) -> String {
    duration.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e6),
    )
}

fn summary_json(s: &Summary) -> Value {
    let (server, client) = s.cpu_per_op();
    let micros = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e6);
    let seconds = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    json!({
        "op": s.op.name(),
        "clients": s.clients,
        "ops": s.ops,
        "seconds": s.elapsed.as_secs_f64(),
        "ops_per_sec": s.ops_per_second(),
        "p50_ms": millis(s.p50),
        "p99_ms": millis(s.p99),
        "failed_clients": s.failed_clients,
        "error": s.error,
        "server_cpu_us_per_op": micros(server),
        "client_cpu_us_per_op": micros(client),
        "server_cpu_seconds": seconds(s.usage.server),
        "server_system_cpu_seconds": seconds(s.usage.server_system),
        "client_cpu_seconds": seconds(s.usage.client),
    })
}
