//! What the server counts, served as Prometheus text on the HTTP port (`GET /metrics`).
//!
//! Names follow `govtrust_<area>_<what>_<unit>`. Counters are atomics with a fixed set of label
//! values each, so counting costs one atomic add on the hot path (OCSP, issuance); gauges that
//! reflect state (sealed, CRL numbers) are read from the domains when the page is rendered.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A counter with one label taking a fixed set of values.
pub struct Family {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    values: &'static [&'static str],
    counts: Vec<AtomicU64>,
}

impl Family {
    fn new(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            label,
            values,
            counts: values.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one for the label `value`; a value outside the family's set is not counted.
    pub fn inc(&self, value: &str) {
        let index = self.values.iter().position(|v| *v == value);
        if let Some(count) = index.and_then(|i| self.counts.get(i)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The count for `value` (tests).
    #[cfg(test)]
    pub fn get(&self, value: &str) -> u64 {
        let index = self.values.iter().position(|v| *v == value);
        index
            .and_then(|i| self.counts.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for (value, count) in self.values.iter().zip(&self.counts) {
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{}{{{}=\"{value}\"}} {count}", self.name, self.label);
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample of a gauge with optional labels (`labels` already formatted).
pub fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    match labels {
        "" => {
            let _ = writeln!(out, "{name} {value}");
        }
        labels => {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The server's counters.
pub struct Metrics {
    started: Instant,
    /// Certificates issued, by how they were asked for.
    pub issued: Family,
    /// HTTP requests, by endpoint.
    pub http: Family,
    /// OCSP answers, by what they said.
    pub ocsp: Family,
    /// Certificate revocations, suspensions and unsuspensions.
    pub revocations: Family,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            issued: Family::new(
                "govtrust_ca_certificates_issued_total",
                "Certificates issued, by how they were asked for.",
                "operation",
                &["enroll", "renew"],
            ),
            http: Family::new(
                "govtrust_http_requests_total",
                "Requests to the HTTP port, by endpoint.",
                "endpoint",
                &[
                    "healthz",
                    "metrics",
                    "ca",
                    "crl",
                    "ocsp",
                    "bundle",
                    "not_found",
                ],
            ),
            revocations: Family::new(
                "govtrust_ca_revocations_total",
                "Certificates revoked, suspended and unsuspended.",
                "action",
                &["revoke", "suspend", "unsuspend"],
            ),
            ocsp: Family::new(
                "govtrust_ocsp_responses_total",
                "OCSP answers, by what they said (signed: several certificates or a nonce).",
                "status",
                &[
                    "good",
                    "revoked",
                    "unknown",
                    "signed",
                    "unauthorized",
                    "malformed",
                    "failed",
                ],
            ),
        }
    }
}

impl Metrics {
    /// The counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let uptime = "govtrust_process_uptime_seconds";
        header(out, uptime, "Seconds since the server started.", "gauge");
        sample(out, uptime, "", self.started.elapsed().as_secs());
        self.issued.render(out);
        self.http.render(out);
        self.revocations.render(out);
        self.ocsp.render(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.issued.inc("enroll");
        metrics.issued.inc("enroll");
        metrics.issued.inc("no-such-operation");
        let mut page = String::new();
        metrics.render(&mut page);
        assert!(page.contains("# TYPE govtrust_ca_certificates_issued_total counter\n"));
        assert!(page.contains("govtrust_ca_certificates_issued_total{operation=\"enroll\"} 2\n"));
        assert!(page.contains("govtrust_ca_certificates_issued_total{operation=\"renew\"} 0\n"));
        assert_eq!(metrics.issued.get("enroll"), 2);
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap_or_default();
            assert!(name.starts_with("govtrust_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
