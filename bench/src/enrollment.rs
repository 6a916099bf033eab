//! Enrollment: systems registered before the clock starts, then enrolled by racing clients.
//!
//! Tokens are single-use, so `enroll` is measured over a fixed count rather than a duration.
//! The certificates it issues become the client identities of `renew`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use govtrust_proto::ca::{
    EnrollRequest, IssuedCertificate, Network, RegisterSystemRequest,
    certificate_authority_client::CertificateAuthorityClient,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Identity};

use crate::connection::{Target, status_error};
use crate::stats::ClientSamples;

/// Organisation every benchmark system is registered under.
const ORG_ID: &str = "bench";
/// MLPS protection level of the benchmark systems.
const PROTECTION_LEVEL: u32 = 2;
/// Lifetime of the enrollment tokens: long enough for any run.
const TOKEN_TTL_SECONDS: u32 = 3600;
/// Bound on the whole enrollment phase.
const ENROLL_DEADLINE: Duration = Duration::from_secs(600);

/// A registered system waiting to enroll: its token, and a CSR for a key generated here.
pub struct Pending {
    token: String,
    csr: Vec<u8>,
    key_pem: String,
}

/// A new P-256 key and a CSR (DER) for it with an empty subject; the CA fills in the identity.
pub fn new_csr() -> anyhow::Result<(String, Vec<u8>)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

/// Registers `names` as the system administrator, `parallel` calls at a time over one connection.
pub async fn register(
    target: &Target,
    admin: &Identity,
    names: Vec<String>,
    parallel: usize,
) -> anyhow::Result<Vec<Pending>> {
    let client = CertificateAuthorityClient::new(target.connect(Some(admin)).await?);
    let per_task = names.len().div_ceil(parallel.max(1)).max(1);
    let mut tasks = JoinSet::new();
    for chunk in names.chunks(per_task) {
        tasks.spawn(register_each(client.clone(), chunk.to_vec()));
    }
    let mut pending = Vec::with_capacity(names.len());
    while let Some(done) = tasks.join_next().await {
        pending.extend(done??);
    }
    Ok(pending)
}

async fn register_each(
    mut client: CertificateAuthorityClient<Channel>,
    names: Vec<String>,
) -> anyhow::Result<Vec<Pending>> {
    let mut pending = Vec::with_capacity(names.len());
    for name in names {
        pending.push(register_one(&mut client, name).await?);
    }
    Ok(pending)
}

async fn register_one(
    client: &mut CertificateAuthorityClient<Channel>,
    name: String,
) -> anyhow::Result<Pending> {
    let request = RegisterSystemRequest {
        name: name.clone(),
        org_id: ORG_ID.to_owned(),
        protection_level: PROTECTION_LEVEL,
        network: Network::Intranet.into(),
        dns_names: Vec::new(),
        token_ttl_seconds: TOKEN_TTL_SECONDS,
    };
    let response = client.register_system(request).await.map_err(status_error);
    let token = response
        .with_context(|| format!("cannot register {name}"))?
        .into_inner();
    let (key_pem, csr) = new_csr()?;
    Ok(Pending {
        token: token.enrollment_token,
        csr,
        key_pem,
    })
}

/// What racing through the pending enrollments gave.
pub struct Enrolled {
    pub samples: Vec<ClientSamples>,
    pub elapsed: Duration,
    /// Client identities (certificate, issuing CA, key) of the enrolled systems.
    pub identities: Vec<Identity>,
}

/// What the server allows one address of connections without a client certificate.
const ANONYMOUS_CONNECTIONS_PER_ADDRESS: usize = 32;

/// Connects `clients` clients, then starts the clock and lets them race through `pending`.
pub async fn enroll(
    target: &Target,
    pending: Vec<Pending>,
    clients: usize,
) -> anyhow::Result<Enrolled> {
    let clients = clients.min(pending.len());
    // The server keeps at most 32 connections without a certificate open per address (8 calls
    // each): more clients share them.
    let channels = target
        .connect_many(clients.min(ANONYMOUS_CONNECTIONS_PER_ADDRESS), None)
        .await?;
    let queue = Arc::new(Queue {
        items: pending,
        next: AtomicUsize::new(0),
    });
    let started = Instant::now();
    let until = started + ENROLL_DEADLINE;
    let mut tasks = JoinSet::new();
    for channel in channels.iter().cycle().take(clients) {
        tasks.spawn(enroll_each(
            CertificateAuthorityClient::new(channel.clone()),
            queue.clone(),
            until,
        ));
    }
    let mut enrolled = Enrolled {
        samples: Vec::new(),
        elapsed: Duration::ZERO,
        identities: Vec::new(),
    };
    while let Some(done) = tasks.join_next().await {
        let (samples, identities) = done?;
        enrolled.samples.push(samples);
        enrolled.identities.extend(identities);
    }
    enrolled.elapsed = started.elapsed();
    Ok(enrolled)
}

/// The shared work list: each pending enrollment is taken by exactly one client.
struct Queue {
    items: Vec<Pending>,
    next: AtomicUsize,
}

impl Queue {
    fn take(&self) -> Option<&Pending> {
        self.items.get(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

async fn enroll_each(
    mut client: CertificateAuthorityClient<Channel>,
    queue: Arc<Queue>,
    until: Instant,
) -> (ClientSamples, Vec<Identity>) {
    let mut samples = ClientSamples::default();
    let mut identities = Vec::new();
    while let Some(pending) = queue.take().filter(|_| Instant::now() < until) {
        let began = Instant::now();
        let request = EnrollRequest {
            token: pending.token.clone(),
            csr: pending.csr.clone(),
        };
        match client.enroll(request).await {
            Ok(response) => {
                samples.record(began.elapsed());
                identities.extend(
                    response
                        .into_inner()
                        .certificate
                        .map(|c| identity(&c, pending)),
                );
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
fn identity(issued: &IssuedCertificate, pending: &Pending) -> Identity {
    let issuer = first_pem_block(&issued.chain_pem);
    let chain = format!("{}\n{issuer}\n", issued.certificate_pem.trim_end());
    Identity::from_pem(chain, pending.key_pem.as_bytes())
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
        let (key_pem, csr) = new_csr()?;
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(csr.first(), Some(&0x30));
        Ok(())
    }
}
