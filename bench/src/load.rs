//! The timed phase: every client calls its operation in a loop, on its own connection, through a
//! warm-up and then a measured window. Loops end by themselves: at the window's end, after
//! [`MAX_CALLS_PER_CLIENT`] calls, or at a client's first failed call.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use govtrust_proto::ca::{RenewRequest, certificate_authority_client::CertificateAuthorityClient};
use govtrust_proto::kms::{
    CreateKeyRequest, EncryptRequest, GenerateDataKeyRequest, KeyAlgorithm,
    key_management_client::KeyManagementClient,
};
use tokio::task::JoinSet;
use tonic::Status;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::connection::Channel;
use crate::cpu::{Meter, Usage};
use crate::stats::ClientSamples;

/// Bound on the calls of one client in one phase (and on the memory its samples take).
pub const MAX_CALLS_PER_CLIENT: usize = 2_000_000;

/// One client of a timed operation: a stub on its own connection and what it sends.
pub enum Caller {
    Health(HealthClient<Channel>),
    Encrypt {
        kms: KeyManagementClient<Channel>,
        key_id: String,
        plaintext: tonic::codegen::Bytes,
    },
    DataKey {
        kms: KeyManagementClient<Channel>,
        key_id: String,
    },
    CreateKey(KeyManagementClient<Channel>),
    /// Renews with the connection's client certificate, cycling through pre-generated CSRs.
    Renew {
        ca: CertificateAuthorityClient<Channel>,
        csrs: VecDeque<Vec<u8>>,
    },
}

impl Caller {
    /// Makes one call; only whether it succeeded matters.
    async fn call(&mut self) -> Result<(), Status> {
        match self {
            Self::Health(client) => client.check(HealthCheckRequest::default()).await.map(drop),
            Self::Encrypt {
                kms,
                key_id,
                plaintext,
            } => {
                let request = EncryptRequest {
                    key_id: key_id.clone(),
                    plaintext: plaintext.clone(),
                    aad: Default::default(),
                };
                kms.encrypt(request).await.map(drop)
            }
            Self::DataKey { kms, key_id } => {
                let request = GenerateDataKeyRequest {
                    key_id: key_id.clone(),
                    aad: Vec::new(),
                };
                kms.generate_data_key(request).await.map(drop)
            }
            Self::CreateKey(kms) => kms.create_key(aes_key_request()).await.map(drop),
            Self::Renew { ca, csrs } => {
                let csr = csrs
                    .pop_front()
                    .ok_or_else(|| Status::internal("bench: no CSRs"))?;
                csrs.push_back(csr.clone());
                ca.renew(RenewRequest { csr }).await.map(drop)
            }
        }
    }
}

/// CreateKey for an active, non-exportable AES-256-GCM key owned by the caller.
pub fn aes_key_request() -> CreateKeyRequest {
    CreateKeyRequest {
        algorithm: KeyAlgorithm::Aes256Gcm.into(),
        description: "govtrust-bench".to_owned(),
        ..CreateKeyRequest::default()
    }
}

/// Runs all callers concurrently for `warmup` (not recorded) then `measure`; returns each
/// client's samples, the wall time of the measured phase and the CPU time used in it.
pub async fn timed(
    callers: Vec<Caller>,
    warmup: Duration,
    measure: Duration,
    server_pid: Option<u32>,
) -> anyhow::Result<(Vec<ClientSamples>, Duration, Usage)> {
    let measure_from = Instant::now() + warmup;
    let until = measure_from + measure;
    let mut tasks = JoinSet::new();
    for caller in callers {
        tasks.spawn(drive(caller, measure_from, until));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let meter = Meter::start(server_pid);
    let mut samples = Vec::new();
    while let Some(done) = tasks.join_next().await {
        samples.push(done?);
    }
    Ok((samples, measure_from.elapsed(), meter.stop()))
}

async fn drive(mut caller: Caller, measure_from: Instant, until: Instant) -> ClientSamples {
    let mut samples = ClientSamples::default();
    for _ in 0..MAX_CALLS_PER_CLIENT {
        let began = Instant::now();
        if began >= until {
            break;
        }
        let result = caller.call().await;
        if let Err(status) = result {
            samples.fail(status);
            break;
        }
        if began >= measure_from {
            samples.record(began.elapsed());
        }
    }
    samples
}
