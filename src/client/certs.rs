//! `govtrust cert list|show|revoke|suspend|unsuspend|issue|export`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use govtrust_proto::ca::{
    Certificate, CertificateStatus, GetCertificateRequest, IssueCertificateRequest,
    ListCertificatesRequest, Purpose, RevocationReason, RevokeCertificateRequest,
    SuspendCertificateRequest, UnsuspendCertificateRequest, VerifyCertificateRequest,
    certificate_authority_client::CertificateAuthorityClient, trust_client::TrustClient,
};
use tonic::transport::Channel;

use super::connection::Connection;
use super::enrollment::{KeyType, finish, request_or_file};
use super::text::{print_json, status_error, timestamp};

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// List issued certificates.
    List(ListArgs),
    /// Show one certificate, with its PEM.
    Show {
        /// Serial number, hex.
        serial: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Revoke a certificate for good (a security administrator: any system's or person's; a
    /// holder: its own, for key-compromise, superseded or cessation-of-operation). Relying
    /// parties see it in the CRL and OCSP at once.
    Revoke(ChangeArgs),
    /// Put a certificate on hold (certificateHold), e.g. for a lost token (security
    /// administrator). It is refused until unsuspended.
    Suspend(ChangeArgs),
    /// Take a certificate off hold (security administrator). A revoked one stays revoked.
    Unsuspend(ChangeArgs),
    /// Verify a certificate chain as a relying party would: prints "valid", or every reason
    /// it is not (expired, not yet valid, revoked, suspended, untrusted issuer, wrong usage,
    /// name mismatch, unknown revocation status), and exits with status 1 then.
    Verify(VerifyArgs),
    /// Get a certificate of a profile for this system's own names over mTLS (tls-server,
    /// tls-client, document-signing, encryption): the key is made here (or send --csr).
    Issue(IssueArgs),
    /// Export a certificate and its key for a browser or a USB key (a local operation).
    Export(super::pkcs12::ExportArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate, PEM (the chain after it, if any) or DER.
    file: std::path::PathBuf,
    /// What it must be good for.
    #[arg(long, value_enum, default_value = "any")]
    purpose: PurposeArg,
    /// When (RFC 3339); default: now.
    #[arg(long, value_parser = crate::rfc3339::parse)]
    at: Option<std::time::SystemTime>,
    /// A DNS name, IP address or SPIFFE id it must be valid for.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PurposeArg {
    ServerAuth,
    ClientAuth,
    DocumentSigning,
    Encryption,
    Any,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The profile (policies/profiles/<name>.toml).
    #[arg(long)]
    profile: String,
    /// Lifetime in days (default: the longest the profile, the level and the server allow).
    #[arg(long, default_value_t = 0)]
    validity_days: u32,
    /// Send this PKCS#10 request (PEM or DER) instead of making a key here.
    #[arg(long, conflicts_with_all = ["dns_names", "key_type"])]
    csr: Option<PathBuf>,
    /// A registered DNS name to include (repeat for several).
    #[arg(long = "dns")]
    dns_names: Vec<String>,
    /// Key type to generate.
    #[arg(long, value_enum, default_value_t = KeyType::P256)]
    key_type: KeyType,
    /// Directory to write cert.pem, key.pem, chain.pem and ca.pem to (not the --identity
    /// directory: the new certificate does not replace the system's identity).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this system's certificates.
    #[arg(long)]
    system: Option<String>,
    /// Only certificates in this status.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Only certificates expiring within this time from now: 30d, 12h, 90m.
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    expiring_within: Option<Duration>,
    /// Stop after this many certificates (all pages are fetched up to it).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Serial number, hex.
    serial: String,
    /// Why (revoke only).
    #[arg(long, value_enum, default_value = "unspecified")]
    reason: ReasonArg,
    /// A note for the audit log.
    #[arg(long, default_value = "")]
    note: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Valid,
    Expired,
    Revoked,
    Suspended,
    Superseded,
}

/// RFC 5280 revocation reasons (certificate-hold is `cert suspend`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReasonArg {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
    AaCompromise,
}

pub async fn run(command: CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::List(args) => list(args).await,
        CertCommand::Show { serial, connection } => {
            let response = client(&connection)
                .await?
                .get_certificate(GetCertificateRequest { serial })
                .await
                .map_err(status_error)?;
            show(&connection, response.into_inner().certificate)
        }
        CertCommand::Revoke(args) => {
            let request = RevokeCertificateRequest {
                serial: args.serial,
                reason: reason_message(args.reason) as i32,
                note: args.note,
            };
            let mut client = client(&args.connection).await?;
            let response = client
                .revoke_certificate(request)
                .await
                .map_err(status_error)?;
            let response = response.into_inner();
            show(&args.connection, response.certificate)
        }
        CertCommand::Suspend(args) => {
            let request = SuspendCertificateRequest {
                serial: args.serial,
                note: args.note,
            };
            let mut client = client(&args.connection).await?;
            let response = client
                .suspend_certificate(request)
                .await
                .map_err(status_error)?;
            let response = response.into_inner();
            show(&args.connection, response.certificate)
        }
        CertCommand::Verify(args) => verify(args).await,
        CertCommand::Unsuspend(args) => {
            let request = UnsuspendCertificateRequest {
                serial: args.serial,
                note: args.note,
            };
            let mut client = client(&args.connection).await?;
            let response = client
                .unsuspend_certificate(request)
                .await
                .map_err(status_error)?;
            let response = response.into_inner();
            show(&args.connection, response.certificate)
        }
        CertCommand::Issue(args) => issue(args).await,
        CertCommand::Export(args) => super::pkcs12::export(&args),
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let chain = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let request = VerifyCertificateRequest {
        chain,
        purpose: purpose_message(args.purpose) as i32,
        at: args.at.map(Into::into),
        name: args.name.unwrap_or_default(),
    };
    let mut client = TrustClient::new(args.connection.channel().await?);
    let verdict = client
        .verify_certificate(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if args.connection.json {
        print_json(&serde_json::json!({
            "valid": verdict.valid,
            "subject": verdict.subject,
            "serial": verdict.serial,
            "spiffe_id": verdict.spiffe_id,
            "anchor": verdict.anchor,
            "problems": verdict.problems.iter().map(|p| p.detail.clone()).collect::<Vec<_>>(),
        }));
    } else if verdict.valid {
        outln!(
            "{}: valid (serial {}, anchor {})",
            args.file.display(),
            verdict.serial,
            verdict.anchor
        );
    } else {
        outln!(
            "{}: NOT valid (serial {})",
            args.file.display(),
            verdict.serial
        );
        for problem in &verdict.problems {
            outln!("  - {}", problem.detail);
        }
    }
    if !verdict.valid {
        return Err(crate::output::Failed(1).into());
    }
    Ok(())
}

fn purpose_message(purpose: PurposeArg) -> Purpose {
    match purpose {
        PurposeArg::ServerAuth => Purpose::ServerAuth,
        PurposeArg::ClientAuth => Purpose::ClientAuth,
        PurposeArg::DocumentSigning => Purpose::DocumentSigning,
        PurposeArg::Encryption => Purpose::Encryption,
        PurposeArg::Any => Purpose::Any,
    }
}

/// Gets a certificate of a profile over mTLS and writes it with its key to `--out`.
async fn issue(args: IssueArgs) -> anyhow::Result<()> {
    if args.connection.identity.as_deref() == Some(args.out.as_path()) {
        anyhow::bail!("--out must not be the --identity directory");
    }
    let (key, csr) = request_or_file(args.csr.as_deref(), args.key_type, None, &args.dns_names)?;
    let request = IssueCertificateRequest {
        csr,
        profile: args.profile,
        validity_days: args.validity_days,
    };
    let response = client(&args.connection)
        .await?
        .issue_certificate(request)
        .await
        .map_err(status_error)?;
    let certificate = response.into_inner().certificate;
    finish(&args.connection, &args.out, certificate, key.as_ref())
}

async fn client(connection: &Connection) -> anyhow::Result<CertificateAuthorityClient<Channel>> {
    Ok(CertificateAuthorityClient::new(connection.channel().await?))
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let ListArgs {
        system,
        status,
        expiring_within,
        limit,
        connection,
    } = args;
    let mut request = ListCertificatesRequest {
        system: system.unwrap_or_default(),
        status: status.map_or(CertificateStatus::Unspecified, status_message) as i32,
        expiring_before: expiring_within.map(horizon).transpose()?,
        page_size: 0,
        page_token: String::new(),
    };
    let mut client = client(&connection).await?;
    let mut all = Vec::new();
    loop {
        let page = client
            .list_certificates(request.clone())
            .await
            .map_err(status_error)?;
        let page = page.into_inner();
        all.extend(page.certificates);
        if page.next_page_token.is_empty() || all.len() >= limit {
            break;
        }
        request.page_token = page.next_page_token;
    }
    all.truncate(limit);
    table(&connection, &all);
    Ok(())
}

/// Now plus `within`, as a protobuf timestamp.
fn horizon(within: Duration) -> anyhow::Result<prost_types::Timestamp> {
    std::time::SystemTime::now()
        .checked_add(within)
        .map(Into::into)
        .ok_or_else(|| anyhow::anyhow!("--expiring-within is too far in the future"))
}

fn status_message(status: StatusArg) -> CertificateStatus {
    match status {
        StatusArg::Valid => CertificateStatus::Valid,
        StatusArg::Expired => CertificateStatus::Expired,
        StatusArg::Revoked => CertificateStatus::Revoked,
        StatusArg::Suspended => CertificateStatus::Suspended,
        StatusArg::Superseded => CertificateStatus::Superseded,
    }
}

fn reason_message(reason: ReasonArg) -> RevocationReason {
    match reason {
        ReasonArg::Unspecified => RevocationReason::Unspecified,
        ReasonArg::KeyCompromise => RevocationReason::KeyCompromise,
        ReasonArg::CaCompromise => RevocationReason::CaCompromise,
        ReasonArg::AffiliationChanged => RevocationReason::AffiliationChanged,
        ReasonArg::Superseded => RevocationReason::Superseded,
        ReasonArg::CessationOfOperation => RevocationReason::CessationOfOperation,
        ReasonArg::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        ReasonArg::AaCompromise => RevocationReason::AaCompromise,
    }
}

/// A status as shown: `valid`, `revoked`, `superseded`...
fn status_name(cert: &Certificate) -> String {
    let name = cert.status().as_str_name();
    name.trim_start_matches("CERTIFICATE_STATUS_")
        .to_ascii_lowercase()
}

/// A reason as shown: `key-compromise`, `certificate-hold`...
fn reason_name(reason: RevocationReason) -> String {
    reason
        .as_str_name()
        .trim_start_matches("REVOCATION_REASON_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn json(cert: &Certificate) -> serde_json::Value {
    let mut value = serde_json::json!({
        "serial": cert.serial,
        "system": cert.system,
        "spiffe_id": cert.spiffe_id,
        "issuer": cert.issuer,
        "status": status_name(cert),
        "not_before": timestamp(cert.not_before.as_ref()),
        "not_after": timestamp(cert.not_after.as_ref()),
    });
    if let Some(revocation) = &cert.revocation {
        value["revocation"] = serde_json::json!({
            "reason": reason_name(revocation.reason()),
            "revoked_at": timestamp(revocation.revoked_at.as_ref()),
            "revoked_by": revocation.revoked_by,
        });
    }
    if !cert.superseded_by.is_empty() {
        value["superseded_by"] = cert.superseded_by.clone().into();
        value["superseded_at"] = timestamp(cert.superseded_at.as_ref()).into();
    }
    value
}

fn table(connection: &Connection, certs: &[Certificate]) {
    if connection.json {
        print_json(&serde_json::Value::Array(certs.iter().map(json).collect()));
        return;
    }
    outln!(
        "{:<34} {:<20} {:<9} {:<10} {:<20} NOTE",
        "SERIAL",
        "SYSTEM",
        "ISSUER",
        "STATUS",
        "NOT AFTER"
    );
    for cert in certs {
        outln!(
            "{:<34} {:<20} {:<9} {:<10} {:<20} {}",
            cert.serial,
            cert.system,
            cert.issuer,
            status_name(cert),
            timestamp(cert.not_after.as_ref()),
            note(cert)
        );
    }
}

/// What the list says beside a certificate: why it was revoked, or what renewed it.
fn note(cert: &Certificate) -> String {
    match &cert.revocation {
        Some(revocation) => format!(
            "{} by {}",
            reason_name(revocation.reason()),
            revocation.revoked_by
        ),
        None if !cert.superseded_by.is_empty() => format!("renewed by {}", cert.superseded_by),
        None => String::new(),
    }
}

fn show(connection: &Connection, cert: Option<Certificate>) -> anyhow::Result<()> {
    let cert = cert.ok_or_else(|| anyhow::anyhow!("the server returned no certificate"))?;
    if connection.json {
        let mut value = json(&cert);
        value["certificate_pem"] = cert.certificate_pem.clone().into();
        print_json(&value);
        return Ok(());
    }
    outln!("serial:     {}", cert.serial);
    outln!("system:     {}", cert.system);
    outln!("identity:   {}", cert.spiffe_id);
    outln!("issuer:     {}", cert.issuer);
    outln!("status:     {}", status_name(&cert));
    if let Some(revocation) = &cert.revocation {
        outln!(
            "revoked:    {} at {} by {}",
            reason_name(revocation.reason()),
            timestamp(revocation.revoked_at.as_ref()),
            revocation.revoked_by
        );
    }
    if !cert.superseded_by.is_empty() {
        outln!(
            "renewed:    at {}, now by {}",
            timestamp(cert.superseded_at.as_ref()),
            cert.superseded_by
        );
    }
    outln!("not before: {}", timestamp(cert.not_before.as_ref()));
    outln!("not after:  {}", timestamp(cert.not_after.as_ref()));
    out!("{}", cert.certificate_pem);
    Ok(())
}
