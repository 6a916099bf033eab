//! Where the server is and who we are: flags or environment, the TLS channel.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::credential;

/// Where the server is and who we are.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Server address.
    #[arg(
        long,
        env = "GOVTRUST_SERVER",
        default_value = "https://localhost:8443"
    )]
    pub server: String,
    /// Root CA certificate to trust (PEM). Default: ca.pem in the identity directory.
    #[arg(long = "ca", env = "GOVTRUST_CA")]
    pub ca_file: Option<PathBuf>,
    /// Directory holding cert.pem, key.pem and ca.pem (written by `init`, `enroll`, `renew`).
    #[arg(long, env = "GOVTRUST_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Client certificate chain (PEM), instead of --identity.
    #[arg(long, env = "GOVTRUST_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), instead of --identity.
    #[arg(long, env = "GOVTRUST_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Connection {
    /// A channel to the server, presenting the client certificate when one is configured.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.root()?));
        if let Some((cert, key)) = self.client_identity()? {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let endpoint = Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("bad server address {:?}", self.server))?
            .tls_config(tls)?;
        endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", self.server))
    }

    fn root(&self) -> anyhow::Result<Vec<u8>> {
        let path = match (&self.ca_file, &self.identity) {
            (Some(file), _) => file.clone(),
            (None, Some(dir)) => dir.join("ca.pem"),
            (None, None) => bail!("no CA to trust: give --ca FILE or --identity DIR"),
        };
        read(&path)
    }

    fn client_identity(&self) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
        match (&self.cert, &self.key, &self.identity) {
            (Some(cert), Some(key), _) => Ok(Some((read(cert)?, read(key)?))),
            (_, _, Some(dir)) => {
                credential::recover(dir)?;
                Ok(Some((
                    read(&dir.join("cert.pem"))?,
                    read(&dir.join("key.pem"))?,
                )))
            }
            _ => Ok(None),
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
