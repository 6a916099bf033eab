//! The command line: what to measure, against which server, with which credentials.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, ValueEnum};

use crate::enrollment::ANONYMOUS_CALLS_PER_ADDRESS;

/// Load generator for a running `govtrust serve`: N concurrent mTLS clients per operation,
/// each on its own connection; prints ops/s and p50/p99 latency per operation.
#[derive(Debug, Parser)]
#[command(name = "govtrust-bench", version, about, args_override_self = true)]
pub struct Args {
    /// Server address.
    #[arg(
        long,
        env = "GOVTRUST_SERVER",
        default_value = "https://localhost:8443"
    )]
    pub server: String,
    /// Name the server certificate is checked against (and sent as SNI).
    #[arg(long, default_value = "localhost")]
    pub tls_name: String,
    /// Data directory of the deployment (`govtrust serve --dev --data DIR` or `govtrust init`).
    /// Supplies the root CA and administrator credentials unless the flags below override them.
    #[arg(long, env = "GOVTRUST_DATA")]
    pub data: Option<PathBuf>,
    /// Root CA certificate (PEM). Default: DATA/ca/root.pem.
    #[arg(long = "ca")]
    pub ca_file: Option<PathBuf>,
    /// System administrator credential directory (cert.pem, key.pem).
    /// Default: DATA/admin/system-admin.
    #[arg(long)]
    pub system_admin: Option<PathBuf>,
    /// Security administrator credential directory (cert.pem, key.pem).
    /// Default: DATA/admin/security-admin.
    #[arg(long)]
    pub security_admin: Option<PathBuf>,
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub clients: u16,
    /// Measured seconds per timed operation.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Unmeasured warm-up seconds before each timed operation.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup_seconds: u64,
    /// Enrollments measured by `enroll` (one registered system each, registered beforehand);
    /// enroll stops after `--seconds` if they are not all used by then.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub enroll_count: u32,
    /// Measure the timed operations this many times, interleaved (health, encrypt, ... then
    /// again), and report each one's median round: on a small machine one window is noisy.
    /// Enroll runs once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub rounds: u16,
    /// Operations to measure, comma-separated; they always run in the order listed here.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "health,encrypt,datakey,create-key,enroll,renew"
    )]
    pub ops: Vec<Op>,
    /// Wait up to this many seconds for the server to be healthy and unsealed (and for its
    /// data directory to exist) before starting.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub wait_seconds: u64,
    /// Connections the clients of a timed operation share (several calls in flight on each);
    /// default: one per client. Renew always uses one per client (each its own system).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub connections: Option<u16>,
    /// Local addresses the enrolling clients connect from, comma-separated (e.g.
    /// `127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4`): the server lets one address have only 8
    /// calls without a client certificate in flight, so 32 enrolling clients need 4 addresses.
    /// Each address gets one connection of at most 8 calls in flight. Default: the one the OS
    /// picks.
    #[arg(long, value_delimiter = ',')]
    pub enroll_from: Vec<std::net::IpAddr>,
    /// Pre-generated CSRs (PEM blocks, e.g. from `govtrust-csrs`), used in order and then
    /// again, instead of generating a key pair per enrollment.
    #[arg(long, requires = "keys")]
    pub csrs: Option<PathBuf>,
    /// The private keys (PKCS#8 PEM blocks) of `--csrs`, in the same order: the enrolled
    /// systems' client identities for `renew`.
    #[arg(long, requires = "csrs")]
    pub keys: Option<PathBuf>,
    /// The server's process id: its CPU time (user + system, from /proc) over each measured
    /// window is reported per call, beside this load generator's own.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One measured operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Op {
    /// grpc.health.v1 Check: the floor of any call on this stack.
    Health,
    /// KMS Encrypt of 1 KiB under one AES-256-GCM key.
    Encrypt,
    /// KMS GenerateDataKey under the same key.
    #[value(name = "datakey")]
    DataKey,
    /// KMS CreateKey (AES-256-GCM): one durable write each.
    CreateKey,
    /// CA Enroll with a one-time token: a fixed count, not a duration.
    Enroll,
    /// CA Renew over mTLS with an enrolled system's certificate.
    Renew,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Encrypt => "encrypt",
            Self::DataKey => "datakey",
            Self::CreateKey => "create-key",
            Self::Enroll => "enroll",
            Self::Renew => "renew",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Args {
    /// The selected operations, each once, in their fixed order.
    pub fn selected_ops(&self) -> Vec<Op> {
        let mut ops = self.ops.clone();
        ops.sort_unstable();
        ops.dedup();
        ops
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup_seconds)
    }

    pub fn measure(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_seconds)
    }

    /// `--enroll-from`, or, against a server at 127.0.0.1, as many loopback addresses as 32
    /// enrolling clients need (8 calls in flight each): 127.0.0.1, 127.0.0.2, ...
    pub fn enroll_addresses(&self) -> Vec<IpAddr> {
        if !self.enroll_from.is_empty() {
            return self.enroll_from.clone();
        }
        if !self.server.contains("://127.0.0.1:") {
            return Vec::new();
        }
        let needed = usize::from(self.clients).div_ceil(ANONYMOUS_CALLS_PER_ADDRESS);
        (1..=u8::try_from(needed).unwrap_or(u8::MAX))
            .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
            .collect()
    }

    pub fn root_path(&self) -> anyhow::Result<PathBuf> {
        self.resolve(self.ca_file.as_deref(), &["ca", "root.pem"], "--ca FILE")
    }

    pub fn system_admin_dir(&self) -> anyhow::Result<PathBuf> {
        let within = ["admin", "system-admin"];
        self.resolve(self.system_admin.as_deref(), &within, "--system-admin DIR")
    }

    pub fn security_admin_dir(&self) -> anyhow::Result<PathBuf> {
        let within = ["admin", "security-admin"];
        self.resolve(
            self.security_admin.as_deref(),
            &within,
            "--security-admin DIR",
        )
    }

    /// The path given by a flag, else the one inside the data directory.
    fn resolve(
        &self,
        given: Option<&Path>,
        within: &[&str],
        flag: &str,
    ) -> anyhow::Result<PathBuf> {
        match (given, &self.data) {
            (Some(path), _) => Ok(path.to_path_buf()),
            (None, Some(data)) => Ok(within
                .iter()
                .fold(data.clone(), |path, part| path.join(part))),
            (None, None) => bail!("give --data DIR (a govtrust data directory) or {flag}"),
        }
    }
}
