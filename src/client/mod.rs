//! The command-line client: every subcommand that talks to a running server.
//!
//! Connection settings come from flags or the environment (`GOVTRUST_SERVER`, `GOVTRUST_CA`,
//! `GOVTRUST_IDENTITY` or `GOVTRUST_CERT` + `GOVTRUST_KEY`). Output is human-readable by
//! default and JSON with `--json`.

pub mod approval;
pub mod audit;
pub mod certs;
pub mod credential;
pub mod enrollment;
pub mod keys;
pub mod seal;
pub mod system;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Args;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

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

/// Prints a value as pretty JSON.
pub fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// RFC 3339 text of a protobuf timestamp (empty when absent).
pub fn timestamp(value: Option<&prost_types::Timestamp>) -> String {
    value
        .and_then(|t| SystemTime::try_from(*t).ok())
        .map(rfc3339)
        .unwrap_or_default()
}

/// RFC 3339 text of a time.
pub fn rfc3339(time: SystemTime) -> String {
    let Ok(since_epoch) = time.duration_since(SystemTime::UNIX_EPOCH) else {
        return String::from("(before 1970)");
    };
    let nanos = i128::try_from(since_epoch.as_nanos()).unwrap_or(i128::MAX);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("(unix time {}s)", since_epoch.as_secs()))
}

/// Text from the server made safe for a terminal: control characters are shown escaped, so
/// no value can forge a line or send escape sequences.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Turns a gRPC status into an error that says what the server said.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}
