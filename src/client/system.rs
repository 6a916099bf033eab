//! `govtrust system ...`: the system registry.

use clap::{Subcommand, ValueEnum};
use govtrust_proto::ca::{
    IssueEnrollmentTokenRequest, Network, RegisterSystemRequest, System,
    certificate_authority_client::CertificateAuthorityClient,
    issue_enrollment_token_response::Outcome,
};

use super::connection::Connection;
use super::text::{print_json, status_error, timestamp};

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
    /// Issue a new one-time enrollment token to a registered system whose token expired or was
    /// lost; earlier tokens stop working (system administrator). For a system that has held a
    /// certificate this re-enrolls it and needs a security administrator's approval: the first
    /// run files the request, the run with --approval after it was approved prints the token.
    Token {
        /// The system's name.
        #[arg(long)]
        name: String,
        /// Token lifetime in seconds (default 24 hours, at most 7 days).
        #[arg(long, default_value_t = 0)]
        token_ttl: u32,
        /// Carry out this approved re-enrollment request (ap-…).
        #[arg(long)]
        approval: Option<String>,
        /// Let the re-enrolled system keep reaching the keys of its earlier enrollments (part of
        /// what is approved; give it on both runs).
        #[arg(long)]
        carry_keys: bool,
        /// Revoke the system's certificates that still stand in the same step (part of what is
        /// approved; give it on both runs). Without it, a system with a valid certificate gets
        /// no new token.
        #[arg(long)]
        revoke_current: bool,
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
    match command {
        SystemCommand::Register {
            name,
            org,
            level,
            network,
            dns_names,
            token_ttl,
            connection,
        } => {
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
                .map_err(status_error)?;
            let response = response.into_inner();
            show(
                &connection,
                "registered",
                response.system,
                &response.enrollment_token,
                response.token_expires_at,
            )
        }
        SystemCommand::Token {
            name,
            token_ttl,
            approval,
            carry_keys,
            revoke_current,
            connection,
        } => {
            let again = format!(
                "`govtrust system token --name {name}{}{}{}`",
                if token_ttl == 0 {
                    String::new()
                } else {
                    format!(" --token-ttl {token_ttl}")
                },
                if carry_keys { " --carry-keys" } else { "" },
                if revoke_current {
                    " --revoke-current"
                } else {
                    ""
                }
            );
            let request = IssueEnrollmentTokenRequest {
                name,
                token_ttl_seconds: token_ttl,
                approval_id: approval.unwrap_or_default(),
                carry_keys,
                revoke_current,
            };
            let mut client = CertificateAuthorityClient::new(connection.channel().await?);
            let response = client
                .issue_enrollment_token(request)
                .await
                .map_err(status_error)?;
            let response = response.into_inner();
            let token = match response.outcome {
                Some(Outcome::EnrollmentToken(token)) => token,
                Some(Outcome::PendingApproval(pending)) => {
                    super::approval::pending(&connection, &pending, &again);
                    return Ok(());
                }
                None => anyhow::bail!("the server answered neither a token nor a pending approval"),
            };
            show(
                &connection,
                "new token for",
                response.system,
                &token,
                response.token_expires_at,
            )
        }
    }
}

fn show(
    connection: &Connection,
    what: &str,
    system: Option<System>,
    token: &str,
    expires_at: Option<prost_types::Timestamp>,
) -> anyhow::Result<()> {
    let system = system.ok_or_else(|| anyhow::anyhow!("the server returned no system"))?;
    let expires = timestamp(expires_at.as_ref());
    if connection.json {
        print_json(&serde_json::json!({
            "name": system.name,
            "org_id": system.org_id,
            "spiffe_id": system.spiffe_id,
            "protection_level": system.protection_level,
            "enrollment_token": token,
            "token_expires_at": expires,
        }));
    } else {
        outln!("{what} {} ({})", system.name, system.spiffe_id);
        outln!("enrollment token (shown once, expires {expires}):");
        outln!("{token}");
    }
    Ok(())
}
