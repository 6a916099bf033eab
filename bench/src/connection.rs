//! Connections to the server: one TLS connection per client, with or without a client identity.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use govtrust_proto::kms::{SealStatusRequest, seal_client::SealClient};
use http::Uri;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::transport::{Dial, Direct};

/// Bound on connecting and the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on any one call, so a stuck server cannot hang the benchmark.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection the generated gRPC clients use.
pub type Channel = Direct;

/// A client identity: its certificate chain (leaf first) and private key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// The identity in a PEM chain (leaf first) and a PEM private key.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Self> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .context("bad certificate PEM")?;
        ensure!(!chain.is_empty(), "no certificate in the chain");
        let key = PrivateKeyDer::from_pem_slice(key_pem).context("bad private key PEM")?;
        Ok(Self { chain, key })
    }
}

/// Where the server is and which root CA its certificate must lead to.
#[derive(Clone)]
pub struct Target {
    server: String,
    origin: Uri,
    server_name: ServerName<'static>,
    roots: Arc<RootCertStore>,
}

impl Target {
    pub fn new(server: String, tls_name: String, root_pem: &[u8]) -> anyhow::Result<Self> {
        let origin: Uri = server
            .parse()
            .with_context(|| format!("bad server address {server:?}"))?;
        let server_name = ServerName::try_from(tls_name.clone())
            .with_context(|| format!("bad TLS name {tls_name:?}"))?;
        let mut roots = RootCertStore::empty();
        for root in CertificateDer::pem_slice_iter(root_pem) {
            roots.add(root.context("bad root CA PEM")?)?;
        }
        Ok(Self {
            server,
            origin,
            server_name,
            roots: Arc::new(roots),
        })
    }

    /// The origin the generated clients put in their request URIs.
    pub fn origin(&self) -> Uri {
        self.origin.clone()
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
        let dial = Dial {
            origin: &self.origin,
            tls: Arc::new(self.tls(identity)?),
            server_name: self.server_name.clone(),
            local,
            connect_timeout: CONNECT_TIMEOUT,
            call_timeout: CALL_TIMEOUT,
        };
        Direct::connect(dial)
            .await
            .with_context(|| format!("cannot connect to {}", self.server))
    }

    /// TLS 1.3 or 1.2 with ALPN h2, trusting the root CA, presenting `identity` when given.
    fn tls(&self, identity: Option<&Identity>) -> anyhow::Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots.clone());
        let mut config = match identity {
            Some(id) => builder.with_client_auth_cert(id.chain.clone(), id.key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
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
        let health = HealthClient::with_origin(channel.clone(), self.origin())
            .check(request)
            .await
            .map_err(status_error)?
            .into_inner();
        ensure!(
            health.status() == ServingStatus::Serving,
            "health check: {:?}",
            health.status()
        );
        let seal = SealClient::with_origin(channel, self.origin())
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
    let identity = Identity::from_pem(&read(&dir.join("cert.pem"))?, &read(&dir.join("key.pem"))?);
    identity.with_context(|| format!("bad credential in {}", dir.display()))
}

pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A gRPC status as an error that says what the server said.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}
