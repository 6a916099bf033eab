//! `govtrust system ...`: the system registry.

use clap::{Subcommand, ValueEnum};
use govtrust_proto::ca::{
    Network, RegisterSystemRequest, certificate_authority_client::CertificateAuthorityClient,
};

use super::{Connection, print_json, status_error, timestamp};

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Register a system and print its one-time enrollment token (system administrator).
    Register {
        /// System name: lower-case letters, digits and '-'.
        #[arg(long)]
        name: String,
        /// Organisation id: lower-case letters, digits and '-'.
        #[arg(long)]
        org: String,
        /// MLPS protection level, 1 to 4.
        #[arg(long)]
        level: u32,
        /// The network the system lives on.
        #[arg(long, value_enum)]
        network: NetworkArg,
        /// A DNS name the system's certificates may carry (repeat for several).
        #[arg(long = "dns")]
        dns_names: Vec<String>,
        /// Token lifetime in seconds (default 24 hours, at most 7 days).
        #[arg(long, default_value_t = 0)]
        token_ttl: u32,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NetworkArg {
    Extranet,
    Intranet,
}

pub async fn run(command: SystemCommand) -> anyhow::Result<()> {
    let SystemCommand::Register {
        name,
        org,
        level,
        network,
        dns_names,
        token_ttl,
        connection,
    } = command;
    let network = match network {
        NetworkArg::Extranet => Network::Extranet,
        NetworkArg::Intranet => Network::Intranet,
    };
    let request = RegisterSystemRequest {
        name,
        org_id: org,
        protection_level: level,
        network: network as i32,
        dns_names,
        token_ttl_seconds: token_ttl,
    };
    let mut client = CertificateAuthorityClient::new(connection.channel().await?);
    let response = client
        .register_system(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let system = response.system.unwrap_or_default();
    let expires = timestamp(response.token_expires_at.as_ref());
    if connection.json {
        print_json(&serde_json::json!({
            "name": system.name,
            "org_id": system.org_id,
            "spiffe_id": system.spiffe_id,
            "protection_level": system.protection_level,
            "enrollment_token": response.enrollment_token,
            "token_expires_at": expires,
        }));
    } else {
        println!("registered {} ({})", system.name, system.spiffe_id);
        println!("enrollment token (shown once, expires {expires}):");
        println!("{}", response.enrollment_token);
    }
    Ok(())
}
