//! `govtrust-scale`: does issuance stay fast as the store grows, and how long does a CRL with
//! many revoked entries take to make? Runs the domain crates directly (no server, no gRPC) on
//! a redb store in a temporary directory, with the audit log on, as `govtrust serve` wires
//! them:
//!
//! 1. issuance rate on an empty store: `--sample` systems registered (untimed), then enrolled
//!    by `--threads` threads (each enrollment: token claim, CSR check, signing through the
//!    kms, one durable batch with the audit event);
//! 2. fills the store to `--certificates` certificates through the same domain API (register
//!    + enroll, `--threads` at a time), printing the rate per stretch as it goes;
//! 3. the issuance rate of the full store and of a second, nearly empty one (only the samples
//!    go in), measured alternately in `--rounds` pairs so each ratio is of rates measured back
//!    to back on this shared machine; the ratios and their median, with the CPU time and the
//!    bytes written per issuance;
//! 4. revokes `--revoke` certificates with `Ca::change_statuses` (`--threads` batches at
//!    once), then times making every CRL anew (`Ca::refresh_crls`), twice.
//!
//! The defaults run in a few minutes; the sizes are `--certificates 1000000
//! --revoke 100000`.

// Shared with govtrust-bench; this binary reads only its own CPU time.
#[allow(dead_code)]
#[path = "../cpu.rs"]
mod cpu;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use govtrust_audit::AuditLog;
use govtrust_ca::{
    Ca, Change, InitParams, Network, ProtectionLevel, Reason, Registration, Serial, Settings,
    Timing, TokenTtl,
};
use govtrust_kms::{Clock, Kms, SystemClock};
use govtrust_store::{AuditSink, RedbStore, Store};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use zeroize::Zeroizing;

use crate::cpu::{Meter, Usage};

/// Who registers the systems and revokes their certificates, as the audit log records it.
const ACTOR: &str = "spiffe://bench.example/person/system-admin";
/// Distinct CSRs the enrollments cycle through (the CA does not refuse a key it has seen).
const CSR_POOL: usize = 1024;
/// How often the fill reports its progress, in certificates.
const FILL_STRETCH: usize = 50_000;

/// Issuance rate on an empty and on a full store, and CRL making with many revocations.
#[derive(Debug, Parser)]
#[command(name = "govtrust-scale", version, about)]
struct Args {
    /// Certificates in the store when the issuance rate is measured the second time.
    #[arg(long, default_value_t = 100_000)]
    certificates: usize,
    /// Enrollments each issuance-rate measurement times.
    #[arg(long, default_value_t = 10_000)]
    sample: usize,
    /// Certificates to revoke before timing the CRL (at most those in the store).
    #[arg(long, default_value_t = 10_000)]
    revoke: usize,
    /// Threads enrolling (and revoking) at once.
    #[arg(long, default_value_t = 32)]
    threads: usize,
    /// Pairs of measurements (nearly empty store, full store) after the fill.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Directory for the temporary data directory (default: the system's temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.threads > 0 && args.sample > 0 && args.rounds > 0,
        "give --threads, --sample and --rounds above 0"
    );
    let dir = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let csrs = Arc::new(csr_pool()?);
    let full_path = dir.path().join("full.redb");
    let full = Run::new(deployment(&full_path)?, csrs.clone(), args.threads);
    let empty = Run::new(
        deployment(&dir.path().join("empty.redb"))?,
        csrs,
        args.threads,
    );
    full.issuance_rate(args.sample, "store to be filled, still empty")?;
    full.fill(args.certificates.saturating_sub(full.issued()))?;
    compare(&empty, &full, &args)?;
    full.revoke(args.revoke)?;
    full.time_crls()?;
    full.time_crls()?;
    println!("full store file: {:.2} GiB", file_gib(&full_path));
    Ok(())
}

/// Measures the nearly empty and the full store alternately (`--rounds` pairs, the order
/// swapped every round), so each ratio compares rates measured back to back; prints each
/// round's ratios and their medians.
fn compare(empty: &Run, full: &Run, args: &Args) -> anyhow::Result<()> {
    let mut rates = Vec::new();
    let mut cpus = Vec::new();
    for round in 1..=args.rounds {
        let label = |which: &str| format!("{which} store, round {round}");
        let (e, f) = if round % 2 == 1 {
            let e = empty.issuance_rate(args.sample, &label("nearly empty"))?;
            (e, full.issuance_rate(args.sample, &label("full"))?)
        } else {
            let f = full.issuance_rate(args.sample, &label("full"))?;
            (empty.issuance_rate(args.sample, &label("nearly empty"))?, f)
        };
        println!(
            "  round {round}: rate full/empty {:.2}, CPU per issuance full/empty {:.2}",
            f.rate / e.rate,
            f.cpu_per_op / e.cpu_per_op
        );
        rates.push(f.rate / e.rate);
        cpus.push(f.cpu_per_op / e.cpu_per_op);
    }
    let ratio = median(&mut rates);
    println!(
        "issuance rate full/empty, median of {} rounds: {ratio:.2} (target >= 0.9: {}); CPU per issuance full/empty: {:.2}",
        args.rounds,
        if ratio >= 0.9 { "met" } else { "MISSED" },
        median(&mut cpus)
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match (values.len() % 2, values.get(middle)) {
        (_, None) => 0.0,
        (1, Some(value)) => *value,
        (_, Some(value)) => (value + values.get(middle - 1).copied().unwrap_or(*value)) / 2.0,
    }
}

/// A new deployment as `govtrust init` makes it: kms (2 of 3, unsealed), CA hierarchy, audit
/// log, on one redb store; CRLs made anew whenever asked.
fn deployment(path: &std::path::Path) -> anyhow::Result<Ca> {
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(path)?);
    let audit: Arc<dyn AuditSink> = Arc::new(AuditLog::new(store.clone()));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shares = Kms::initialize(store.as_ref(), audit.as_ref(), clock.as_ref(), 2, 3)?;
    let kms = Arc::new(Kms::open(store.clone(), audit.clone(), clock.clone())?);
    for share in shares.iter().take(2) {
        kms.unseal(share.contents.as_bytes())?;
    }
    let params = InitParams {
        trust_domain: "bench.example".to_owned(),
        server_dns_names: vec!["govtrust.bench.example".to_owned()],
        server_ips: Vec::new(),
        admin_csrs: Vec::new(),
        public_url: None,
    };
    let (ca, _) = Ca::initialize(store, kms, audit, clock, &params)?;
    Ok(ca.with_settings(settings()))
}

/// The server's defaults, with URLs in the certificates as `serve` writes them, and CRLs made
/// anew at every refresh (so `refresh_crls` times one regeneration).
fn settings() -> Settings {
    let defaults = Settings::default();
    Settings {
        base_url: Some("http://127.0.0.1:8080".to_owned()),
        crl: Timing {
            refresh: Duration::ZERO,
            ..defaults.crl
        },
        ..defaults
    }
}

/// `CSR_POOL` P-256 CSRs (DER) with an empty subject.
fn csr_pool() -> anyhow::Result<Vec<Vec<u8>>> {
    (0..CSR_POOL)
        .map(|_| {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = CertificateParams::new(Vec::new())?;
            params.distinguished_name = DistinguishedName::new();
            Ok(params.serialize_request(&key)?.der().to_vec())
        })
        .collect()
}

/// An issuance-rate measurement: enrollments per second, CPU seconds per enrollment.
struct Rate {
    rate: f64,
    cpu_per_op: f64,
}

struct Run {
    ca: Arc<Ca>,
    csrs: Arc<Vec<Vec<u8>>>,
    threads: usize,
    /// Systems are named by a running number.
    next_system: AtomicUsize,
    /// Enrollments take the CSRs of the pool in turn.
    next_csr: AtomicUsize,
    /// Serials of every certificate issued, for the revocations.
    serials: Mutex<Vec<Serial>>,
}

impl Run {
    fn new(ca: Ca, csrs: Arc<Vec<Vec<u8>>>, threads: usize) -> Self {
        Self {
            ca: Arc::new(ca),
            csrs,
            threads,
            next_system: AtomicUsize::new(0),
            next_csr: AtomicUsize::new(0),
            serials: Mutex::new(Vec::new()),
        }
    }

    fn issued(&self) -> usize {
        self.serials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Registers `count` systems (untimed), times enrolling them all; prints and returns the
    /// rate and the process's CPU time per issuance.
    fn issuance_rate(&self, count: usize, label: &str) -> anyhow::Result<Rate> {
        let tokens = self.register(count)?;
        let stored = self.issued();
        let tokens = Mutex::new(tokens);
        let meter = Meter::start(None);
        let written = written_bytes();
        let started = Instant::now();
        let latencies = self.parallel(count, |_| {
            let token = tokens.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let token = token.context("fewer tokens than enrollments")?;
            self.enroll(&token)
        })?;
        let elapsed = started.elapsed();
        let usage = meter.stop();
        let kib = written
            .zip(written_bytes())
            .map(|(before, after)| after.saturating_sub(before) as f64 / 1024.0 / count as f64);
        print_rate(label, stored, count, elapsed, latencies, usage, kib);
        Ok(Rate {
            rate: count as f64 / elapsed.as_secs_f64(),
            cpu_per_op: usage.client.unwrap_or_default().as_secs_f64() / count as f64,
        })
    }

    /// Registers and enrolls `count` systems, reporting the rate every `FILL_STRETCH`.
    fn fill(&self, count: usize) -> anyhow::Result<()> {
        println!("filling the store with {count} certificates (register + enroll each)");
        let started = Instant::now();
        let mut done = 0;
        while done < count {
            let stretch = FILL_STRETCH.min(count - done);
            let began = Instant::now();
            self.parallel(stretch, |_| {
                let token = self.register_one()?;
                self.enroll(&token)
            })?;
            done += stretch;
            let seconds = began.elapsed().as_secs_f64();
            println!(
                "  {:>9} certificates stored, last {stretch} at {:.0}/s, {:.0} s so far",
                self.issued(),
                stretch as f64 / seconds,
                started.elapsed().as_secs_f64()
            );
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "filled {count} in {seconds:.0} s ({:.0}/s)",
            count as f64 / seconds
        );
        Ok(())
    }

    /// Revokes the first `count` certificates issued, `threads` batches at once, each batch
    /// one `change_statuses` call (one commit per certificate, one CRL per batch).
    fn revoke(&self, count: usize) -> anyhow::Result<()> {
        let serials: Vec<Serial> = {
            let all = self.serials.lock().unwrap_or_else(PoisonError::into_inner);
            all.iter().take(count).cloned().collect()
        };
        let per_batch = serials.len().div_ceil(self.threads).max(1);
        let batches: Vec<Vec<(Serial, Change)>> = serials
            .chunks(per_batch)
            .map(|chunk| chunk.iter().map(|s| (s.clone(), revoke_change())).collect())
            .collect();
        let started = Instant::now();
        let failed = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for batch in &batches {
                scope.spawn(|| {
                    let outcomes = self.ca.change_statuses(ACTOR, batch, "govtrust-scale");
                    let errors = outcomes.iter().filter(|o| o.is_err()).count();
                    failed.fetch_add(errors, Ordering::Relaxed);
                });
            }
        });
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "revoked {} certificates in {seconds:.1} s ({:.0}/s, {} batches, {} failed)",
            serials.len(),
            serials.len() as f64 / seconds,
            batches.len(),
            failed.load(Ordering::Relaxed)
        );
        Ok(())
    }

    /// Makes every CRL anew and prints how long it took and what each lists.
    fn time_crls(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let crls = self.ca.refresh_crls()?;
        let seconds = started.elapsed().as_secs_f64();
        let listed: Vec<String> = crls
            .iter()
            .map(|crl| {
                let kib = crl.der.len() as f64 / 1024.0;
                format!("{} {} entries ({kib:.0} KiB)", crl.authority, crl.entries)
            })
            .collect();
        let most = crls.iter().map(|crl| crl.entries).max().unwrap_or(0);
        println!(
            "CRL regeneration: {seconds:.3} s for {} CRLs [{}] (target: under 1 s with 100000 entries: {})",
            crls.len(),
            listed.join(", "),
            match (most >= 100_000, seconds < 1.0) {
                (false, _) => "fewer entries than the target's",
                (true, true) => "met",
                (true, false) => "MISSED",
            }
        );
        Ok(())
    }

    /// Runs `work` `count` times on `threads` threads; returns each call's latency.
    fn parallel(
        &self,
        count: usize,
        work: impl Fn(usize) -> anyhow::Result<()> + Sync,
    ) -> anyhow::Result<Vec<Duration>> {
        let next = AtomicUsize::new(0);
        let results: Vec<anyhow::Result<Vec<Duration>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..self.threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut latencies = Vec::new();
                        loop {
                            let index = next.fetch_add(1, Ordering::Relaxed);
                            if index >= count {
                                return Ok(latencies);
                            }
                            let began = Instant::now();
                            work(index)?;
                            latencies.push(began.elapsed());
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
                })
                .collect()
        });
        let mut latencies = Vec::with_capacity(count);
        for result in results {
            latencies.extend(result?);
        }
        Ok(latencies)
    }

    /// Registers `count` new systems, `threads` at a time; returns their tokens.
    fn register(&self, count: usize) -> anyhow::Result<Vec<Zeroizing<String>>> {
        let tokens = Mutex::new(Vec::with_capacity(count));
        self.parallel(count, |_| {
            let token = self.register_one()?;
            tokens
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(token);
            Ok(())
        })?;
        Ok(tokens.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    fn register_one(&self) -> anyhow::Result<Zeroizing<String>> {
        let number = self.next_system.fetch_add(1, Ordering::Relaxed);
        let name = format!("s{number}");
        let registration = Registration {
            name: name.as_str().try_into()?,
            org_id: "bench".try_into()?,
            protection_level: ProtectionLevel::try_from(2)?,
            network: Network::Intranet,
            dns_names: Vec::new(),
            token_ttl: TokenTtl::try_from(Duration::from_secs(24 * 3600))?,
        };
        Ok(self.ca.register_system(ACTOR, registration)?.token)
    }

    fn enroll(&self, token: &str) -> anyhow::Result<()> {
        let index = self.next_csr.fetch_add(1, Ordering::Relaxed) % self.csrs.len().max(1);
        let csr = self.csrs.get(index).context("empty CSR pool")?;
        let issued = self.ca.enroll(token, csr)?;
        let mut serials = self.serials.lock().unwrap_or_else(PoisonError::into_inner);
        serials.push(issued.serial);
        Ok(())
    }
}

fn revoke_change() -> Change {
    Change::Revoke(Reason::KeyCompromise)
}

fn print_rate(
    label: &str,
    stored: usize,
    count: usize,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
    usage: Usage,
    written_kib: Option<f64>,
) {
    latencies.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * latencies.len() as f64).ceil() as usize).saturating_sub(1);
        latencies
            .get(rank)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let cpu = usage.client.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.0}", d.as_secs_f64() * 1e6 / count as f64),
    );
    println!(
        "{label} ({stored} certificates): {count} enrollments in {:.2} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, CPU {cpu} µs and {} KiB written per issuance",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
        written_kib.map_or_else(|| "-".to_owned(), |kib| format!("{kib:.1}"))
    );
}

/// Bytes this process has caused to be written to storage (`write_bytes` of /proc/self/io).
fn written_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let line = io.lines().find(|line| line.starts_with("write_bytes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn file_gib(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / f64::from(1 << 30))
}
