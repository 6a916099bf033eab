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

use super::connection::Connection;
use super::text::{print_json, status_error, timestamp};
use crate::credential;
use crate::files::write_public;

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The one-time enrollment token from `govtrust system register` (prefer --token-file or
    /// GOVTRUST_TOKEN: a command line is visible to other local users).
    #[arg(
        long,
        env = "GOVTRUST_TOKEN",
        required_unless_present = "token_file",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A file holding the enrollment token.
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
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
    /// Send this PKCS#10 request (PEM or DER) instead of generating a key here; its private key
    /// stays wherever it was made, and no key.pem is written.
    #[arg(long, conflicts_with_all = ["name", "dns_names", "key_type"])]
    pub csr: Option<PathBuf>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// A system's name, put in the request's common name (optional).
    #[arg(long)]
    pub name: Option<String>,
    /// A registered DNS name to include (repeat for several). Default: the DNS names of the
    /// current certificate.
    #[arg(long = "dns")]
    pub dns_names: Vec<String>,
    /// Keep running: renew two thirds into each certificate's lifetime (or as --when-left
    /// says), retrying with backoff on failure, until stopped (SIGTERM, Ctrl-C).
    #[arg(long)]
    pub daemon: bool,
    /// With --daemon: renew when this much validity is left (30d, 12h...). Default: a third of
    /// the certificate's lifetime.
    #[arg(long, requires = "daemon", value_name = "DURATION",
          value_parser = crate::config::parse_duration)]
    pub when_left: Option<std::time::Duration>,
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
    let (key, csr) = request_or_file(
        args.csr.as_deref(),
        args.key_type,
        args.name.as_deref(),
        &args.dns_names,
    )?;
    let mut client = CertificateAuthorityClient::new(args.connection.channel().await?);
    let response = client
        .enroll(EnrollRequest {
            token: token(&args)?,
            csr,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    finish(
        &args.connection,
        &args.out,
        response.certificate,
        key.as_ref(),
    )
}

/// The token from --token, GOVTRUST_TOKEN or --token-file.
fn token(args: &EnrollArgs) -> anyhow::Result<String> {
    token_from(args.token.as_deref(), args.token_file.as_deref())
}

/// A token given on the command line (or its variable) or in a file.
pub fn token_from(token: Option<&str>, file: Option<&std::path::Path>) -> anyhow::Result<String> {
    match (token, file) {
        (Some(token), _) => Ok(token.trim().to_owned()),
        (None, Some(file)) => Ok(std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .trim()
            .to_owned()),
        (None, None) => anyhow::bail!("give --token-file FILE (or GOVTRUST_TOKEN)"),
    }
}

/// One renewal of the credential in `dir`.
pub async fn renew_once(args: &RenewArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let dns_names = match args.dns_names.is_empty() {
        true => current_dns_names(&dir.join("cert.pem"))?,
        false => args.dns_names.clone(),
    };
    let (key, csr) = request(args.key_type, args.name.as_deref(), &dns_names)?;
    let mut client = CertificateAuthorityClient::new(args.connection.channel().await?);
    let response = client
        .renew(RenewRequest { csr })
        .await
        .map_err(status_error)?
        .into_inner();
    finish(&args.connection, dir, response.certificate, Some(&key))
}

/// The DNS names of the certificate in `file`.
fn current_dns_names(file: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let pem = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate: {e}", file.display()))?;
    let certificate = block
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("{}: not a certificate: {e}", file.display()))?;
    let names = certificate.subject_alternative_name().ok().flatten();
    Ok(names.map_or_else(Vec::new, |san| {
        san.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect()
    }))
}

/// Saves and shows what the server issued.
pub fn finish(
    connection: &Connection,
    dir: &std::path::Path,
    issued: Option<IssuedCertificate>,
    key: Option<&KeyPair>,
) -> anyhow::Result<()> {
    let issued = issued.context("the server returned no certificate")?;
    save(dir, &issued, key)?;
    show(connection, &issued, dir);
    Ok(())
}

/// A new key pair and a CSR (DER) for it.
pub fn request(
    key_type: KeyType,
    name: Option<&str>,
    dns: &[String],
) -> anyhow::Result<(KeyPair, Vec<u8>)> {
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

/// The request to send: read from `csr` (its key stays where it was made), or for a key made
/// here (returned, to be saved beside the certificate).
pub fn request_or_file(
    csr: Option<&std::path::Path>,
    key_type: KeyType,
    name: Option<&str>,
    dns: &[String],
) -> anyhow::Result<(Option<KeyPair>, Vec<u8>)> {
    match csr {
        Some(file) => {
            let csr =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            Ok((None, csr))
        }
        None => {
            let (key, csr) = request(key_type, name, dns)?;
            Ok((Some(key), csr))
        }
    }
}

/// Writes the credential directory: `cert.pem` (the certificate), `chain.pem` (issuing CA and
/// root), `ca.pem` (the root, the trust anchor) and `key.pem` when the key was made here.
///
/// Key and certificate are replaced as a pair so that a crash at any point leaves a matching
/// pair: both are first written as `*.new`, then renamed key first; [`credential::recover`]
/// finishes a swap a crash interrupted.
fn save(
    dir: &std::path::Path,
    issued: &IssuedCertificate,
    key: Option<&KeyPair>,
) -> anyhow::Result<()> {
    match key {
        Some(key) => credential::replace(dir, &key.serialize_pem(), &issued.certificate_pem)?,
        None => write_public(&dir.join("cert.pem"), &issued.certificate_pem)?,
    }
    write_public(&dir.join("chain.pem"), &issued.chain_pem)?;
    write_public(&dir.join("ca.pem"), &root_of(&issued.chain_pem))
}

/// The last certificate of a PEM chain: the root.
fn root_of(chain_pem: &str) -> String {
    chain_pem
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|block| block.contains("BEGIN CERTIFICATE"))
        .last()
        .map(|block| format!("{}\n", block.trim_start()))
        .unwrap_or_default()
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
        outln!("certificate {} for {}", issued.serial, issued.spiffe_id);
        outln!("valid until {}", timestamp(issued.not_after.as_ref()));
        outln!(
            "written to {} (cert.pem, chain.pem, ca.pem, key.pem)",
            dir.display()
        );
    }
}
