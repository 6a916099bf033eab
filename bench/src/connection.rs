//! Connections to the server: one TLS connection per client, with or without a client identity.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use govtrust_proto::kms::{SealStatusRequest, seal_client::SealClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Bound on connecting and the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on any one call, so a stuck server cannot hang the benchmark.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is and which root CA its certificate must lead to.
#[derive(Clone)]
pub struct Target {
    server: String,
    tls_name: String,
    root: Certificate,
}

impl Target {
    pub fn new(server: String, tls_name: String, root_pem: Vec<u8>) -> Self {
        Self {
            server,
            tls_name,
            root: Certificate::from_pem(root_pem),
        }
    }

    /// A new connection (its own TCP and TLS session), presenting `identity` when given.
    pub async fn connect(&self, identity: Option<&Identity>) -> anyhow::Result<Channel> {
        self.connect_from(identity, None).await
    }

    /// [`Target::connect`] from the local address `local` (the OS picks one when `None`).
    pub async fn connect_from(
        &self,
        identity: Option<&Identity>,
        local: Option<IpAddr>,
    ) -> anyhow::Result<Channel> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(self.root.clone())
            .domain_name(self.tls_name.clone());
        if let Some(identity) = identity {
            tls = tls.identity(identity.clone());
        }
        let endpoint = Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("bad server address {:?}", self.server))?
            .tls_config(tls)?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true)
            .local_address(local);
        endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", self.server))
    }

    /// `count` separate connections, all presenting `identity`.
    pub async fn connect_many(
        &self,
        count: usize,
        identity: Option<&Identity>,
    ) -> anyhow::Result<Vec<Channel>> {
        let mut channels = Vec::with_capacity(count);
        for _ in 0..count {
            channels.push(self.connect(identity).await?);
        }
        Ok(channels)
    }

    /// Succeeds when the server answers the health check SERVING and is unsealed.
    pub async fn check_ready(&self, identity: &Identity) -> anyhow::Result<()> {
        let channel = self.connect(Some(identity)).await?;
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let health = HealthClient::new(channel.clone())
            .check(request)
            .await
            .map_err(status_error)?
            .into_inner();
        ensure!(
            health.status() == ServingStatus::Serving,
            "health check: {:?}",
            health.status()
        );
        let seal = SealClient::new(channel)
            .status(SealStatusRequest {})
            .await
            .map_err(status_error)?;
        let seal = seal.into_inner();
        let sealed = seal.status.is_none_or(|status| status.sealed);
        ensure!(
            !sealed,
            "the server is sealed: unseal it with `govtrust unseal --share FILE`"
        );
        Ok(())
    }
}

/// The identity in a credential directory: `cert.pem` (leaf, then issuing CA) and `key.pem`.
pub fn identity_in(dir: &Path) -> anyhow::Result<Identity> {
    Ok(Identity::from_pem(
        read(&dir.join("cert.pem"))?,
        read(&dir.join("key.pem"))?,
    ))
}

pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A gRPC status as an error that says what the server said.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}
