//! `govtrust enroll` and `govtrust renew`: the system side of enrollment.
//!
//! The private key is generated here and never leaves this machine: only a CSR is sent.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use govtrust_proto::ca::{
    EnrollRequest, IssuedCertificate, RenewRequest,
    certificate_authority_client::CertificateAuthorityClient,
};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::{Connection, print_json, status_error, timestamp};
use crate::init::{write_public, write_secret};

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The one-time enrollment token from `govtrust system register`.
    #[arg(long, env = "GOVTRUST_TOKEN")]
    pub token: String,
    /// Directory to write cert.pem, key.pem and ca.pem to.
    #[arg(long)]
    pub out: PathBuf,
    /// The system's name, put in the request's common name (optional).
    #[arg(long)]
    pub name: Option<String>,
    /// A registered DNS name to include (repeat for several).
    #[arg(long = "dns")]
    pub dns_names: Vec<String>,
    /// Key type to generate.
    #[arg(long, value_enum, default_value_t = KeyType::P256)]
    pub key_type: KeyType,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// A system's name, put in the request's common name (optional).
    #[arg(long)]
    pub name: Option<String>,
    /// A registered DNS name to include (repeat for several).
    #[arg(long = "dns")]
    pub dns_names: Vec<String>,
    /// Key type of the new key.
    #[arg(long, value_enum, default_value_t = KeyType::P256)]
    pub key_type: KeyType,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyType {
    P256,
    P384,
    Ed25519,
}

/// Generates a key, enrolls with the token, writes the credential directory.
pub async fn enroll(args: EnrollArgs) -> anyhow::Result<()> {
    let (key, csr) = request(args.key_type, args.name.as_deref(), &args.dns_names)?;
    let mut client = CertificateAuthorityClient::new(args.connection.channel().await?);
    let response = client
        .enroll(EnrollRequest { token: args.token, csr })
        .await
        .map_err(status_error)?
        .into_inner();
    let issued = response.certificate.context("the server returned no certificate")?;
    save(&args.out, &issued, &key)?;
    show(&args.connection, &issued, &args.out);
    Ok(())
}

/// Generates a new key, renews over mTLS with the current credential, replaces it.
pub async fn renew(args: RenewArgs) -> anyhow::Result<()> {
    let dir = args.connection.identity.clone().context("renew needs --identity DIR")?;
    let (key, csr) = request(args.key_type, args.name.as_deref(), &args.dns_names)?;
    let mut client = CertificateAuthorityClient::new(args.connection.channel().await?);
    let response =
        client.renew(RenewRequest { csr }).await.map_err(status_error)?.into_inner();
    let issued = response.certificate.context("the server returned no certificate")?;
    save(&dir, &issued, &key)?;
    show(&args.connection, &issued, &dir);
    Ok(())
}

/// A new key pair and a CSR (DER) for it.
fn request(key_type: KeyType, name: Option<&str>, dns: &[String]) -> anyhow::Result<(KeyPair, Vec<u8>)> {
    let algorithm = match key_type {
        KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
    };
    let key = KeyPair::generate_for(algorithm)?;
    let mut params = CertificateParams::new(dns.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    if let Some(name) = name {
        params.distinguished_name.push(DnType::CommonName, name);
    }
    let csr = params.serialize_request(&key)?;
    Ok((key, csr.der().to_vec()))
}

fn save(dir: &std::path::Path, issued: &IssuedCertificate, key: &KeyPair) -> anyhow::Result<()> {
    let (leaf_and_issuer, root) = split_chain(issued);
    write_secret(&dir.join("key.pem"), &key.serialize_pem())?;
    write_public(&dir.join("cert.pem"), &leaf_and_issuer)?;
    write_public(&dir.join("ca.pem"), &root)
}

/// cert.pem gets the leaf and its issuing CA; ca.pem the root (the last of the chain).
fn split_chain(issued: &IssuedCertificate) -> (String, String) {
    let blocks: Vec<&str> = issued
        .chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .collect();
    let root = blocks.last().map(|b| (*b).to_owned()).unwrap_or_default();
    let issuers: String = blocks.iter().take(blocks.len().saturating_sub(1)).copied().collect();
    (format!("{}{issuers}", issued.certificate_pem), root)
}

fn show(connection: &Connection, issued: &IssuedCertificate, dir: &std::path::Path) {
    if connection.json {
        print_json(&serde_json::json!({
            "serial": issued.serial,
            "spiffe_id": issued.spiffe_id,
            "not_before": timestamp(issued.not_before.as_ref()),
            "not_after": timestamp(issued.not_after.as_ref()),
            "directory": dir.display().to_string(),
        }));
    } else {
        println!("certificate {} for {}", issued.serial, issued.spiffe_id);
        println!("valid until {}", timestamp(issued.not_after.as_ref()));
        println!("written to {} (cert.pem, key.pem, ca.pem)", dir.display());
    }
}
