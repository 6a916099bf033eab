//! One benchmark run: prepares each operation's clients (untimed), measures it, summarises it.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use http::Uri;

use anyhow::{Context, bail};
use govtrust_proto::ca::certificate_authority_client::CertificateAuthorityClient;
use govtrust_proto::kms::key_management_client::KeyManagementClient;
use tonic_health::pb::health_client::HealthClient;

use crate::cli::{Args, Op};
use crate::connection::{Channel, Identity, Target, identity_in, read, status_error};
use crate::enrollment::{self, Csrs, Pending, Race};
use crate::load::{self, Caller, aes_key_request};
use crate::stats::Summary;

/// Size of the plaintext each Encrypt sends.
const PLAINTEXT_BYTES: usize = 1024;
/// CSRs each renewing client cycles through.
const RENEW_CSRS_PER_CLIENT: usize = 16;
/// Bound on enrolling the systems that renew (setup, not measured).
const SETUP_LIMIT: Duration = Duration::from_secs(120);
/// Pause between readiness checks while waiting for the server.
const RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// The state of a run: where the server is, who we are, and what earlier steps prepared.
pub struct Bench {
    target: Target,
    system_admin: Identity,
    security_admin: Identity,
    clients: usize,
    warmup: Duration,
    measure: Duration,
    enroll_count: usize,
    /// Random per run, so system names of repeated runs do not collide.
    run_id: String,
    /// Systems registered so far; the next name is numbered from it.
    registered: usize,
    /// The AES-256-GCM key encrypt and datakey use, created on first need.
    key_id: Option<String>,
    plaintext: tonic::codegen::Bytes,
    /// Client identities of enrolled systems, for renew.
    systems: Vec<Identity>,
    /// Where CSRs come from: generated, or `--csrs`/`--keys` files.
    csrs: Csrs,
    /// Connections the clients of a timed operation share.
    connections: usize,
    /// Local addresses enrolling clients connect from.
    enroll_from: Vec<IpAddr>,
    server_pid: Option<u32>,
}

impl Bench {
    /// Loads the credentials and checks the server is ready, retrying for up to `--wait-seconds`.
    pub async fn connect(args: &Args) -> anyhow::Result<Self> {
        let deadline = Instant::now() + args.wait();
        loop {
            match Self::try_connect(args).await {
                Ok(bench) => return Ok(bench),
                Err(error) if Instant::now() >= deadline => return Err(error),
                Err(_) => tokio::time::sleep(RETRY_INTERVAL).await,
            }
        }
    }

    async fn try_connect(args: &Args) -> anyhow::Result<Self> {
        let root = read(&args.root_path()?)?;
        let target = Target::new(args.server.clone(), args.tls_name.clone(), &root)?;
        let security_admin = identity_in(&args.security_admin_dir()?)?;
        let system_admin = identity_in(&args.system_admin_dir()?)?;
        target.check_ready(&security_admin).await?;
        let seed = random_u64();
        Ok(Self {
            target,
            system_admin,
            security_admin,
            clients: usize::from(args.clients),
            warmup: args.warmup(),
            measure: args.measure(),
            enroll_count: usize::try_from(args.enroll_count)?,
            run_id: format!("{:012x}", seed & 0xffff_ffff_ffff),
            registered: 0,
            key_id: None,
            plaintext: noise(PLAINTEXT_BYTES, seed).into(),
            systems: Vec::new(),
            csrs: match (&args.csrs, &args.keys) {
                (Some(csrs), Some(keys)) => Csrs::from_files(csrs, keys)?,
                _ => Csrs::generated(),
            },
            connections: args
                .connections
                .map_or(usize::from(args.clients), usize::from),
            enroll_from: args.enroll_addresses(),
            server_pid: args.server_pid,
        })
    }

    /// Measures `op`; a preparation failure is reported in the summary, not returned.
    pub async fn measure(&mut self, op: Op) -> Summary {
        eprintln!("{op}: preparing {} clients", self.clients);
        match self.try_measure(op).await {
            Ok(summary) => summary,
            Err(error) => Summary::not_run(op, &error),
        }
    }

    async fn try_measure(&mut self, op: Op) -> anyhow::Result<Summary> {
        let callers = match op {
            Op::Enroll => return self.measure_enroll().await,
            Op::Renew => self.renew_callers().await?,
            Op::Health => {
                self.admin_callers(|c, o| Caller::Health(HealthClient::with_origin(c, o)))
                    .await?
            }
            Op::Encrypt => self.encrypt_callers().await?,
            Op::DataKey => self.data_key_callers().await?,
            Op::CreateKey => {
                self.admin_callers(|c, o| Caller::CreateKey(KeyManagementClient::with_origin(c, o)))
                    .await?
            }
        };
        let (warmup, measure) = (self.warmup.as_secs(), self.measure.as_secs());
        eprintln!("{op}: {warmup} s warm-up, then {measure} s measured");
        let timed = load::timed(callers, self.warmup, self.measure, self.server_pid).await;
        let (samples, elapsed, usage) = timed?;
        Ok(Summary::new(op, samples, elapsed).with_usage(usage))
    }

    /// One caller per client as the security administrator, the clients spread over
    /// `--connections` connections.
    async fn admin_callers(
        &self,
        make: impl Fn(Channel, Uri) -> Caller,
    ) -> anyhow::Result<Vec<Caller>> {
        let connections = self.connections.min(self.clients).max(1);
        let channels = self
            .target
            .connect_many(connections, Some(&self.security_admin))
            .await?;
        let shared = channels.iter().cycle().take(self.clients);
        Ok(shared
            .map(|channel| make(channel.clone(), self.target.origin()))
            .collect())
    }

    async fn encrypt_callers(&mut self) -> anyhow::Result<Vec<Caller>> {
        let key_id = self.key_id().await?;
        let plaintext = self.plaintext.clone();
        self.admin_callers(|channel, origin| Caller::Encrypt {
            kms: KeyManagementClient::with_origin(channel, origin),
            key_id: key_id.clone(),
            plaintext: plaintext.clone(),
        })
        .await
    }

    async fn data_key_callers(&mut self) -> anyhow::Result<Vec<Caller>> {
        let key_id = self.key_id().await?;
        self.admin_callers(|channel, origin| Caller::DataKey {
            kms: KeyManagementClient::with_origin(channel, origin),
            key_id: key_id.clone(),
        })
        .await
    }

    /// The benchmark's AES-256-GCM key, created by the security administrator on first use.
    async fn key_id(&mut self) -> anyhow::Result<String> {
        if let Some(key_id) = &self.key_id {
            return Ok(key_id.clone());
        }
        let channel = self.target.connect(Some(&self.security_admin)).await?;
        let response = KeyManagementClient::with_origin(channel, self.target.origin())
            .create_key(aes_key_request())
            .await;
        let created = response
            .map_err(status_error)
            .context("cannot create the benchmark key")?;
        let key = created
            .into_inner()
            .key
            .context("CreateKey returned no key")?;
        self.key_id = Some(key.key_id.clone());
        Ok(key.key_id)
    }

    /// Registers `--enroll-count` systems untimed, then times enrolling them (for at most
    /// `--seconds`).
    async fn measure_enroll(&mut self) -> anyhow::Result<Summary> {
        let pending = self.register(self.enroll_count).await?;
        eprintln!(
            "enroll: {} enrollments by {} clients from {} address(es), for at most {} s",
            pending.len(),
            self.clients,
            self.enroll_from.len().max(1),
            self.measure.as_secs()
        );
        let enrolled = enrollment::enroll(&self.race(self.measure), pending).await?;
        self.systems.extend(enrolled.identities);
        let summary = Summary::new(Op::Enroll, enrolled.samples, enrolled.elapsed);
        Ok(summary.with_usage(enrolled.usage))
    }

    /// How enrolling clients race, for at most `limit`.
    fn race(&self, limit: Duration) -> Race<'_> {
        Race {
            target: &self.target,
            clients: self.clients,
            from: &self.enroll_from,
            limit,
            keep: self.clients.saturating_sub(self.systems.len()),
            server_pid: self.server_pid,
        }
    }

    /// Registers `count` new systems as the system administrator and pairs each with a CSR;
    /// not timed.
    async fn register(&mut self, count: usize) -> anyhow::Result<Vec<Pending>> {
        eprintln!("registering {count} systems (not timed)");
        let first = self.registered;
        self.registered += count;
        let names = (first..first + count)
            .map(|i| format!("bench-{}-{i}", self.run_id))
            .collect();
        let started = Instant::now();
        let tokens =
            enrollment::register(&self.target, &self.system_admin, names, self.clients).await?;
        eprintln!(
            "registered {count} systems in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let csrs = self.csrs.take(tokens.len())?;
        Ok(tokens
            .into_iter()
            .zip(csrs)
            .map(|(t, c)| Pending::new(t, c))
            .collect())
    }

    /// One renewing client per enrolled system, each presenting that system's certificate.
    async fn renew_callers(&mut self) -> anyhow::Result<Vec<Caller>> {
        self.ensure_systems().await?;
        let mut callers = Vec::with_capacity(self.clients);
        for identity in self.systems.iter().take(self.clients) {
            let channel = self.target.connect(Some(identity)).await?;
            let csrs = self.csrs.take(RENEW_CSRS_PER_CLIENT)?;
            callers.push(Caller::Renew {
                ca: CertificateAuthorityClient::with_origin(channel, self.target.origin()),
                csrs: csrs.into_iter().map(|keyed| keyed.csr).collect(),
            });
        }
        Ok(callers)
    }

    /// Enrolls systems (untimed) until there is one per client.
    async fn ensure_systems(&mut self) -> anyhow::Result<()> {
        let missing = self.clients.saturating_sub(self.systems.len());
        if missing == 0 {
            return Ok(());
        }
        let pending = self.register(missing).await?;
        let enrolled = enrollment::enroll(&self.race(SETUP_LIMIT), pending).await?;
        self.systems.extend(enrolled.identities);
        if let Some(error) = Summary::new(Op::Enroll, enrolled.samples, enrolled.elapsed).error {
            bail!("cannot enroll the systems that renew: {error}");
        }
        Ok(())
    }
}

/// A random 64-bit value from the standard library's per-process random hash keys.
fn random_u64() -> u64 {
    RandomState::new().hash_one(SystemTime::now())
}

/// `len` pseudo-random bytes (xorshift64*): plaintext with no structure to compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_has_the_asked_length_and_varies() {
        let bytes = noise(PLAINTEXT_BYTES, 42);
        assert_eq!(bytes.len(), PLAINTEXT_BYTES);
        assert!(bytes.iter().filter(|b| **b == 0).count() < 64);
        assert_ne!(noise(16, 1), noise(16, 2));
    }
}
