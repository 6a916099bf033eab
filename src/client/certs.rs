//! `govtrust cert list|show`.

use clap::{Subcommand, ValueEnum};
use govtrust_proto::ca::{
    Certificate, CertificateStatus, GetCertificateRequest, ListCertificatesRequest,
    certificate_authority_client::CertificateAuthorityClient,
};

use super::connection::Connection;
use super::text::{print_json, status_error, timestamp};

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// List issued certificates, newest filters first.
    List {
        /// Only this system's certificates.
        #[arg(long)]
        system: Option<String>,
        /// Only certificates in this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only certificates expiring within this many days.
        #[arg(long)]
        expiring_within_days: Option<u64>,
        /// Stop after this many certificates (all pages are fetched up to it).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        connection: Connection,
    },
    /// Show one certificate, with its PEM.
    Show {
        /// Serial number, hex.
        serial: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Valid,
    Expired,
    Revoked,
}

pub async fn run(command: CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::List {
            system,
            status,
            expiring_within_days,
            limit,
            connection,
        } => {
            let mut request = ListCertificatesRequest {
                system: system.unwrap_or_default(),
                status: status.map_or(CertificateStatus::Unspecified, status_message) as i32,
                expiring_before: expiring_within_days.map(horizon).transpose()?,
                page_size: 0,
                page_token: String::new(),
            };
            let mut client = CertificateAuthorityClient::new(connection.channel().await?);
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
            list(&connection, &all);
        }
        CertCommand::Show { serial, connection } => {
            let mut client = CertificateAuthorityClient::new(connection.channel().await?);
            let response = client
                .get_certificate(GetCertificateRequest { serial })
                .await
                .map_err(status_error)?;
            show(
                &connection,
                &response.into_inner().certificate.unwrap_or_default(),
            );
        }
    }
    Ok(())
}

/// Now plus `days`, as a protobuf timestamp.
fn horizon(days: u64) -> anyhow::Result<prost_types::Timestamp> {
    days.checked_mul(86_400)
        .and_then(|seconds| {
            std::time::SystemTime::now().checked_add(std::time::Duration::from_secs(seconds))
        })
        .map(Into::into)
        .ok_or_else(|| anyhow::anyhow!("--expiring-within-days {days} is too far in the future"))
}

fn status_message(status: StatusArg) -> CertificateStatus {
    match status {
        StatusArg::Valid => CertificateStatus::Valid,
        StatusArg::Expired => CertificateStatus::Expired,
        StatusArg::Revoked => CertificateStatus::Revoked,
    }
}

fn json(cert: &Certificate) -> serde_json::Value {
    serde_json::json!({
        "serial": cert.serial,
        "system": cert.system,
        "spiffe_id": cert.spiffe_id,
        "issuer": cert.issuer,
        "status": cert.status().as_str_name(),
        "not_before": timestamp(cert.not_before.as_ref()),
        "not_after": timestamp(cert.not_after.as_ref()),
    })
}

fn list(connection: &Connection, certs: &[Certificate]) {
    if connection.json {
        print_json(&serde_json::Value::Array(certs.iter().map(json).collect()));
        return;
    }
    outln!(
        "{:<34} {:<20} {:<9} {:<27} SPIFFE ID",
        "SERIAL",
        "SYSTEM",
        "ISSUER",
        "NOT AFTER"
    );
    for cert in certs {
        outln!(
            "{:<34} {:<20} {:<9} {:<27} {}",
            cert.serial,
            cert.system,
            cert.issuer,
            timestamp(cert.not_after.as_ref()),
            cert.spiffe_id
        );
    }
}

fn show(connection: &Connection, cert: &Certificate) {
    if connection.json {
        let mut value = json(cert);
        value["certificate_pem"] = cert.certificate_pem.clone().into();
        print_json(&value);
        return;
    }
    outln!("serial:     {}", cert.serial);
    outln!("system:     {}", cert.system);
    outln!("identity:   {}", cert.spiffe_id);
    outln!("issuer:     {}", cert.issuer);
    outln!("status:     {}", cert.status().as_str_name());
    outln!("not before: {}", timestamp(cert.not_before.as_ref()));
    outln!("not after:  {}", timestamp(cert.not_after.as_ref()));
    out!("{}", cert.certificate_pem);
}
