//! Latency samples and what is reported from them: count, throughput, p50 and p99.

use std::time::Duration;

use crate::cli::Op;
use crate::cpu::Usage;

/// What one client recorded: the latency of every measured call, and why it stopped early.
#[derive(Default)]
pub struct ClientSamples {
    latencies: Vec<Duration>,
    failure: Option<tonic::Status>,
}

impl ClientSamples {
    pub fn record(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    /// The client stops at its first failed call; the failure is reported with the results.
    pub fn fail(&mut self, status: tonic::Status) {
        self.failure = Some(status);
    }
}

/// The results of one operation.
pub struct Summary {
    pub op: Op,
    pub clients: usize,
    pub ops: usize,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// Clients that stopped on a failed call.
    pub failed_clients: usize,
    /// The first failure, or why the operation could not run at all.
    pub error: Option<String>,
    /// CPU time of this load generator and of the server over the measured phase.
    pub usage: Usage,
}

impl Summary {
    /// Merges every client's samples of a phase that took `elapsed`.
    pub fn new(op: Op, clients: Vec<ClientSamples>, elapsed: Duration) -> Self {
        let client_count = clients.len();
        let mut latencies = Vec::new();
        let mut failures = Vec::new();
        for client in clients {
            latencies.extend(client.latencies);
            failures.extend(client.failure);
        }
        latencies.sort_unstable();
        Self {
            op,
            clients: client_count,
            ops: latencies.len(),
            elapsed,
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            failed_clients: failures.len(),
            error: failures
                .first()
                .map(|s| format!("{:?}: {}", s.code(), s.message())),
            usage: Usage::default(),
        }
    }

    /// This summary with the CPU time used over its measured phase.
    pub fn with_usage(self, usage: Usage) -> Self {
        Self { usage, ..self }
    }

    /// CPU time per measured call, of the server and of this load generator.
    pub fn cpu_per_op(&self) -> (Option<Duration>, Option<Duration>) {
        let per_op = |total: Option<Duration>| {
            let ops = u32::try_from(self.ops).ok().filter(|ops| *ops > 0)?;
            Some(total? / ops)
        };
        (per_op(self.usage.server), per_op(self.usage.client))
    }

    /// An operation that could not run (its preparation failed).
    pub fn not_run(op: Op, error: &anyhow::Error) -> Self {
        let mut summary = Self::new(op, Vec::new(), Duration::ZERO);
        summary.error = Some(format!("{error:#}"));
        summary
    }

    pub fn ops_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ops as f64 / seconds
        } else {
            0.0
        }
    }

    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Nearest-rank percentile `q` (0 to 1) of sorted latencies; zero when there are none.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

/// Milliseconds, for reports.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted, 1.0), Duration::from_millis(100));
    }

    #[test]
    fn percentile_of_few_or_none() {
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
        assert_eq!(percentile(&ms(&[7]), 0.50), Duration::from_millis(7));
        assert_eq!(percentile(&ms(&[1, 2]), 0.99), Duration::from_millis(2));
    }

    #[test]
    fn summary_merges_clients_and_keeps_the_first_failure() {
        let mut a = ClientSamples::default();
        a.record(Duration::from_millis(3));
        let mut b = ClientSamples::default();
        b.record(Duration::from_millis(1));
        b.fail(tonic::Status::unavailable("gone"));
        let summary = Summary::new(Op::Health, vec![a, b], Duration::from_secs(2));
        assert_eq!(summary.ops, 2);
        assert_eq!(summary.failed_clients, 1);
        assert!((summary.ops_per_second() - 1.0).abs() < f64::EPSILON);
        assert_eq!(summary.p99, Duration::from_millis(3));
        assert!(summary.error.as_deref().is_some_and(|e| e.contains("gone")));
    }
}
