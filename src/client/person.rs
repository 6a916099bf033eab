//! `govtrust person register|token|enroll`: civil servants. A security administrator (acting
//! as RA officer) registers a person and hands over a one-time token; the person enrolls with
//! it for one certificate of a person profile, the key made on their own machine.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use govtrust_proto::ca::{
    EnrollPersonRequest, IssuePersonTokenRequest, Network, Person, RegisterPersonRequest,
    certificate_authority_client::CertificateAuthorityClient,
};
use zeroize::Zeroizing;

use super::connection::Connection;
use super::enrollment::{KeyType, finish, request_or_file, token_from};
use super::system::NetworkArg;
use super::text::{print_json, printable, status_error, timestamp};

#[derive(Debug, Subcommand)]
pub enum PersonCommand {
    /// Register a civil servant and print their one-time enrollment token (security
    /// administrator). The national ID is kept only as a keyed hash: one person per ID.
    Register(RegisterArgs),
    /// Issue a new one-time enrollment token to a registered person (one per certificate);
    /// earlier tokens stop working (security administrator).
    Token {
        /// The person's id.
        #[arg(long)]
        id: String,
        /// Token lifetime in seconds (default 24 hours, at most 7 days).
        #[arg(long, default_value_t = 0)]
        token_ttl: u32,
        #[command(flatten)]
        connection: Connection,
    },
    /// Get a certificate of a person profile with a one-time token: the key is made here and
    /// never leaves (or send --csr).
    Enroll(EnrollArgs),
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The person's id: lower-case letters, digits and '-' (spiffe://<td>/person/<id>).
    #[arg(long)]
    id: String,
    /// The person's name, as certificates show it.
    #[arg(long)]
    name: String,
    /// The department, as certificates show it.
    #[arg(long)]
    department: String,
    /// The national ID (prefer --national-id-file or GOVTRUST_NATIONAL_ID: a command line is
    /// visible to other local users).
    #[arg(
        long,
        env = "GOVTRUST_NATIONAL_ID",
        required_unless_present = "national_id_file",
        hide_env_values = true
    )]
    national_id: Option<String>,
    /// A file holding the national ID.
    #[arg(long, conflicts_with = "national_id")]
    national_id_file: Option<PathBuf>,
    /// The network whose CA certifies the person.
    #[arg(long, value_enum, default_value = "intranet")]
    network: NetworkArg,
    /// Token lifetime in seconds (default 24 hours, at most 7 days).
    #[arg(long, default_value_t = 0)]
    token_ttl: u32,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The one-time token from `govtrust person register` or `person token` (prefer
    /// --token-file or GOVTRUST_TOKEN).
    #[arg(
        long,
        env = "GOVTRUST_TOKEN",
        required_unless_present = "token_file",
        hide_env_values = true
    )]
    token: Option<String>,
    /// A file holding the token.
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The profile: person (log-in), document-signing or encryption.
    #[arg(long)]
    profile: String,
    /// Lifetime in days (default: the longest the profile and the server allow).
    #[arg(long, default_value_t = 0)]
    validity_days: u32,
    /// Directory to write cert.pem, key.pem, chain.pem and ca.pem to.
    #[arg(long)]
    out: PathBuf,
    /// Key type to generate.
    #[arg(long, value_enum, default_value_t = KeyType::P256)]
    key_type: KeyType,
    /// Send this PKCS#10 request (PEM or DER) instead; no key.pem is written.
    #[arg(long, conflicts_with = "key_type")]
    csr: Option<PathBuf>,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(command: PersonCommand) -> anyhow::Result<()> {
    match command {
        PersonCommand::Register(args) => register(args).await,
        PersonCommand::Token {
            id,
            token_ttl,
            connection,
        } => {
            let request = IssuePersonTokenRequest {
                id,
                token_ttl_seconds: token_ttl,
            };
            let mut client = CertificateAuthorityClient::new(connection.channel().await?);
            let response = client.issue_person_token(request).await;
            let response = response.map_err(status_error)?.into_inner();
            let token = Zeroizing::new(response.enrollment_token);
            show(
                &connection,
                response.person,
                &token,
                response.token_expires_at,
            )
        }
        PersonCommand::Enroll(args) => enroll(args).await,
    }
}

async fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let national_id = Zeroizing::new(national_id(&args)?);
    let network = match args.network {
        NetworkArg::Extranet => Network::Extranet,
        NetworkArg::Intranet => Network::Intranet,
    };
    let request = RegisterPersonRequest {
        id: args.id,
        name: args.name,
        department: args.department,
        national_id: national_id.to_string(),
        network: network as i32,
        token_ttl_seconds: args.token_ttl,
    };
    let mut client = CertificateAuthorityClient::new(args.connection.channel().await?);
    let response = client.register_person(request).await;
    let response = response.map_err(status_error)?.into_inner();
    let token = Zeroizing::new(response.enrollment_token);
    show(
        &args.connection,
        response.person,
        &token,
        response.token_expires_at,
    )
}

/// The national ID from --national-id, GOVTRUST_NATIONAL_ID or --national-id-file.
fn national_id(args: &RegisterArgs) -> anyhow::Result<String> {
    match (&args.national_id, &args.national_id_file) {
        (Some(id), _) => Ok(id.trim().to_owned()),
        (None, Some(file)) => Ok(std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .trim()
            .to_owned()),
        (None, None) => anyhow::bail!("give --national-id-file FILE (or GOVTRUST_NATIONAL_ID)"),
    }
}

async fn enroll(args: EnrollArgs) -> anyhow::Result<()> {
    let token = token_from(args.token.as_deref(), args.token_file.as_deref())?;
    let (key, csr) = request_or_file(args.csr.as_deref(), args.key_type, None, &[])?;
    let request = EnrollPersonRequest {
        token,
        csr,
        profile: args.profile,
        validity_days: args.validity_days,
    };
    let mut client = CertificateAuthorityClient::new(args.connection.channel().await?);
    let response = client.enroll_person(request).await;
    let response = response.map_err(status_error)?.into_inner();
    finish(
        &args.connection,
        &args.out,
        response.certificate,
        key.as_ref(),
    )
}

fn show(
    connection: &Connection,
    person: Option<Person>,
    token: &str,
    expires_at: Option<prost_types::Timestamp>,
) -> anyhow::Result<()> {
    let person = person.context("the server returned no person")?;
    let expires = timestamp(expires_at.as_ref());
    if connection.json {
        print_json(&serde_json::json!({
            "id": person.id,
            "name": person.name,
            "department": person.department,
            "spiffe_id": person.spiffe_id,
            "enrollment_token": token,
            "token_expires_at": expires,
        }));
    } else {
        outln!(
            "person {} ({}, {}): {}",
            printable(&person.id),
            printable(&person.name),
            printable(&person.department),
            person.spiffe_id
        );
        outln!("enrollment token (shown once, expires {expires}):");
        outln!("{token}");
    }
    Ok(())
}
