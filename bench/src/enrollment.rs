//! Enrollment: systems registered before the clock starts, then enrolled by racing clients.
//!
//! Tokens are single-use, so `enroll` is measured over a fixed count rather than a duration.
//! The certificates it issues become the client identities of `renew`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use govtrust_proto::ca::{
    EnrollRequest, IssuedCertificate, Network, RegisterSystemRequest,
    certificate_authority_client::CertificateAuthorityClient,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateSigningRequestDer, PrivatePkcs8KeyDer};
use tokio::task::JoinSet;

use crate::connection::{Channel, Identity, Target, status_error};
use crate::cpu::{Meter, Usage};
use crate::stats::ClientSamples;

/// Organisation every benchmark system is registered under.
const ORG_ID: &str = "bench";
/// MLPS protection level of the benchmark systems.
const PROTECTION_LEVEL: u32 = 2;
/// Lifetime of the enrollment tokens: long enough for any run.
const TOKEN_TTL_SECONDS: u32 = 3600;
/// Bound on the whole enrollment phase.
const ENROLL_DEADLINE: Duration = Duration::from_secs(600);

/// A registered system waiting to enroll: the request it sends (its token and a CSR), and the
/// private key of the CSR.
pub struct Pending {
    request: EnrollRequest,
    key_pem: String,
}

impl Pending {
    pub fn new(token: String, keyed: KeyedCsr) -> Self {
        Self {
            request: EnrollRequest {
                token,
                csr: keyed.csr,
            },
            key_pem: keyed.key_pem,
        }
    }
}

/// A P-256 key (PKCS#8 PEM) and a CSR (DER) for it with an empty subject: the CA fills in the
/// identity, and a common name would have to be the system's name.
#[derive(Clone)]
pub struct KeyedCsr {
    pub key_pem: String,
    pub csr: Vec<u8>,
}

/// A new P-256 key and its CSR.
pub fn new_csr() -> anyhow::Result<KeyedCsr> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok(KeyedCsr {
        key_pem: key.serialize_pem(),
        csr: csr.der().to_vec(),
    })
}

/// Where CSRs come from: generated on demand, or pre-generated files used in order and then
/// again (the same requests every peer in a comparison signs).
pub struct Csrs {
    files: Vec<KeyedCsr>,
    next: usize,
}

impl Csrs {
    pub fn generated() -> Self {
        Self {
            files: Vec::new(),
            next: 0,
        }
    }

    /// The CSRs (PEM) in `csrs` and their keys (PKCS#8 PEM) in `keys`, in the same order.
    pub fn from_files(csrs: &Path, keys: &Path) -> anyhow::Result<Self> {
        let requests = CertificateSigningRequestDer::pem_file_iter(csrs)
            .with_context(|| format!("cannot read {}", csrs.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("bad PEM in {}", csrs.display()))?;
        let keys = PrivatePkcs8KeyDer::pem_file_iter(keys)
            .with_context(|| format!("cannot read {}", keys.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("bad PEM in {}", keys.display()))?;
        ensure!(
            !requests.is_empty() && requests.len() == keys.len(),
            "{} CSRs and {} keys: give as many of each, at least one",
            requests.len(),
            keys.len()
        );
        let files = requests
            .into_iter()
            .zip(keys)
            .map(|(csr, key)| keyed(csr.as_ref(), &key))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { files, next: 0 })
    }

    /// The next CSR and its key.
    pub fn next(&mut self) -> anyhow::Result<KeyedCsr> {
        let Some(keyed) = self.files.get(self.next % self.files.len().max(1)) else {
            return new_csr();
        };
        self.next += 1;
        Ok(keyed.clone())
    }

    /// The next `count` CSRs.
    pub fn take(&mut self, count: usize) -> anyhow::Result<Vec<KeyedCsr>> {
        (0..count).map(|_| self.next()).collect()
    }
}

fn keyed(csr: &[u8], key: &PrivatePkcs8KeyDer<'_>) -> anyhow::Result<KeyedCsr> {
    let key = KeyPair::try_from(key).context("a key of --keys cannot be read")?;
    Ok(KeyedCsr {
        key_pem: key.serialize_pem(),
        csr: csr.to_vec(),
    })
}

/// Registers `names` as the system administrator, `parallel` calls at a time over one
/// connection; returns their enrollment tokens in the order of `names`.
pub async fn register(
    target: &Target,
    admin: &Identity,
    names: Vec<String>,
    parallel: usize,
) -> anyhow::Result<Vec<String>> {
    let channel = target.connect(Some(admin)).await?;
    let client = CertificateAuthorityClient::with_origin(channel, target.origin());
    let per_task = names.len().div_ceil(parallel.max(1)).max(1);
    let mut tasks = JoinSet::new();
    for (index, chunk) in names.chunks(per_task).enumerate() {
        tasks.spawn(register_each(client.clone(), index, chunk.to_vec()));
    }
    let mut chunks = Vec::new();
    while let Some(done) = tasks.join_next().await {
        chunks.push(done??);
    }
    chunks.sort_unstable_by_key(|(index, _)| *index);
    Ok(chunks.into_iter().flat_map(|(_, tokens)| tokens).collect())
}

async fn register_each(
    mut client: CertificateAuthorityClient<Channel>,
    index: usize,
    names: Vec<String>,
) -> anyhow::Result<(usize, Vec<String>)> {
    let mut tokens = Vec::with_capacity(names.len());
    for name in names {
        tokens.push(register_one(&mut client, name).await?);
    }
    Ok((index, tokens))
}

async fn register_one(
    client: &mut CertificateAuthorityClient<Channel>,
    name: String,
) -> anyhow::Result<String> {
    let request = RegisterSystemRequest {
        name: name.clone(),
        org_id: ORG_ID.to_owned(),
        protection_level: PROTECTION_LEVEL,
        network: Network::Intranet.into(),
        dns_names: Vec::new(),
        token_ttl_seconds: TOKEN_TTL_SECONDS,
    };
    let response = client.register_system(request).await.map_err(status_error);
    let registered = response.with_context(|| format!("cannot register {name}"))?;
    Ok(registered.into_inner().enrollment_token)
}

/// What racing through the pending enrollments gave.
pub struct Enrolled {
    pub samples: Vec<ClientSamples>,
    pub elapsed: Duration,
    pub usage: Usage,
    /// Client identities (certificate, issuing CA, key) of the first enrolled systems.
    pub identities: Vec<Identity>,
}

/// Calls without a client certificate the server lets one address have in flight, and the
/// streams it allows on one such connection.
pub const ANONYMOUS_CALLS_PER_ADDRESS: usize = 8;
/// Calls without a client certificate the server takes in flight in all: at most this many
/// clients enroll at once, whatever `--clients` says.
const ANONYMOUS_CALLS: usize = 64;

/// How the enrolling clients reach the server and for how long they may race.
pub struct Race<'a> {
    pub target: &'a Target,
    pub clients: usize,
    /// Local addresses to connect from, one connection each; empty: one connection from the
    /// address the OS picks.
    pub from: &'a [IpAddr],
    /// Stop taking new enrollments after this long.
    pub limit: Duration,
    /// Identities to keep for later (renew); building them costs client CPU, so only these.
    pub keep: usize,
    pub server_pid: Option<u32>,
}

/// Connects, then starts the clock and lets the clients race through `pending` (each taken
/// by exactly one client) until it is used up or the time limit passes.
pub async fn enroll(race: &Race<'_>, pending: Vec<Pending>) -> anyhow::Result<Enrolled> {
    let clients = race.clients.min(pending.len()).clamp(1, ANONYMOUS_CALLS);
    let from: Vec<Option<IpAddr>> = match race.from {
        [] => vec![None],
        addresses => addresses.iter().copied().map(Some).collect(),
    };
    let mut channels = Vec::with_capacity(from.len());
    for local in from {
        channels.push(race.target.connect_from(None, local).await?);
    }
    let queue = Arc::new(Queue {
        items: pending.into_iter().map(|p| Mutex::new(Some(p))).collect(),
        next: AtomicUsize::new(0),
        kept: AtomicUsize::new(0),
        keep: race.keep,
    });
    let meter = Meter::start(race.server_pid);
    let started = Instant::now();
    let until = started + race.limit.min(ENROLL_DEADLINE);
    let mut tasks = JoinSet::new();
    for channel in channels.iter().cycle().take(clients) {
        let client = CertificateAuthorityClient::with_origin(channel.clone(), race.target.origin());
        tasks.spawn(enroll_each(client, queue.clone(), until));
    }
    let mut enrolled = Enrolled {
        samples: Vec::new(),
        elapsed: Duration::ZERO,
        usage: Usage::default(),
        identities: Vec::new(),
    };
    while let Some(done) = tasks.join_next().await {
        let (samples, identities) = done?;
        enrolled.samples.push(samples);
        enrolled.identities.extend(identities);
    }
    enrolled.elapsed = started.elapsed();
    enrolled.usage = meter.stop();
    Ok(enrolled)
}

/// The shared work list: each pending enrollment is taken by exactly one client.
struct Queue {
    items: Vec<Mutex<Option<Pending>>>,
    next: AtomicUsize,
    /// Identities kept so far, of at most `keep`.
    kept: AtomicUsize,
    keep: usize,
}

impl Queue {
    fn take(&self) -> Option<Pending> {
        let slot = self.items.get(self.next.fetch_add(1, Ordering::Relaxed))?;
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn keep_one(&self) -> bool {
        self.kept.fetch_add(1, Ordering::Relaxed) < self.keep
    }
}

async fn enroll_each(
    mut client: CertificateAuthorityClient<Channel>,
    queue: Arc<Queue>,
    until: Instant,
) -> (ClientSamples, Vec<Identity>) {
    let mut samples = ClientSamples::default();
    let mut identities = Vec::new();
    while let Some(Pending { request, key_pem }) = queue.take().filter(|_| Instant::now() < until) {
        let began = Instant::now();
        match client.enroll(request).await {
            Ok(response) => {
                samples.record(began.elapsed());
                if queue.keep_one() {
                    let issued = response.into_inner().certificate;
                    identities.extend(issued.and_then(|c| identity(&c, &key_pem)));
                }
            }
            Err(status) => {
                samples.fail(status);
                break;
            }
        }
    }
    (samples, identities)
}

/// The system's client identity: its certificate, then the issuing CA (first of the chain).
/// `None` if the answer holds no certificate PEM (the renewing client is then missing).
fn identity(issued: &IssuedCertificate, key_pem: &str) -> Option<Identity> {
    let issuer = first_pem_block(&issued.chain_pem);
    let chain = format!("{}\n{issuer}\n", issued.certificate_pem.trim_end());
    Identity::from_pem(chain.as_bytes(), key_pem.as_bytes()).ok()
}

fn first_pem_block(pem: &str) -> &str {
    const END: &str = "-----END CERTIFICATE-----";
    pem.find(END)
        .and_then(|at| pem.get(..at + END.len()))
        .unwrap_or(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_pem_block_is_the_issuing_ca() {
        let chain = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n\
                     -----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            first_pem_block(chain),
            "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----"
        );
        assert_eq!(first_pem_block("no pem"), "no pem");
    }

    #[test]
    fn csr_is_der_with_a_pem_key() -> anyhow::Result<()> {
        let keyed = new_csr()?;
        assert!(keyed.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(keyed.csr.first(), Some(&0x30));
        Ok(())
    }
}
