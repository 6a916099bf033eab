//! `govtrust trust list|add|remove`: the trust bundle relying parties use.

use anyhow::Context;
use clap::Subcommand;
use govtrust_proto::ca::{
    AddTrustAnchorRequest, GetTrustBundleRequest, RemoveTrustAnchorRequest, TrustAnchor,
    trust_client::TrustClient,
};

use super::connection::Connection;
use super::text::{print_json, status_error, timestamp};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// The trust bundle: this deployment's root and the CAs added to it.
    List {
        /// Print the bundle as PEM (every anchor and this deployment's issuing CAs).
        #[arg(long)]
        pem: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Add another CA of the province to the bundle (security administrator; audited):
    /// relying parties that use the bundle, and `cert verify`, then accept its certificates.
    Add {
        /// The CA certificate, PEM or DER.
        file: std::path::PathBuf,
        /// The name it is known by: lower-case letters, digits and '-'.
        #[arg(long)]
        name: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Remove a CA from the bundle (security administrator; audited).
    Remove {
        name: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: TrustCommand) -> anyhow::Result<()> {
    match command {
        TrustCommand::List { pem, connection } => {
            let mut client = TrustClient::new(connection.channel().await?);
            let bundle = client
                .get_trust_bundle(GetTrustBundleRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if pem {
                out!("{}", bundle.bundle_pem);
            } else if connection.json {
                let anchors: Vec<_> = bundle.anchors.iter().map(json).collect();
                print_json(&serde_json::json!({ "sequence": bundle.sequence, "anchors": anchors }));
            } else {
                outln!("trust bundle, sequence {}", bundle.sequence);
                for anchor in &bundle.anchors {
                    outln!(
                        "{:<20} {} sha256:{}",
                        anchor.name,
                        anchor.subject,
                        anchor.fingerprint
                    );
                }
            }
            Ok(())
        }
        TrustCommand::Add {
            file,
            name,
            note,
            connection,
        } => {
            let certificate =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut client = TrustClient::new(connection.channel().await?);
            let request = AddTrustAnchorRequest {
                name,
                certificate,
                note,
            };
            let added = client
                .add_trust_anchor(request)
                .await
                .map_err(status_error)?;
            show(&connection, "added", added.into_inner().anchor)
        }
        TrustCommand::Remove {
            name,
            note,
            connection,
        } => {
            let mut client = TrustClient::new(connection.channel().await?);
            let request = RemoveTrustAnchorRequest { name, note };
            let removed = client
                .remove_trust_anchor(request)
                .await
                .map_err(status_error)?;
            show(&connection, "removed", removed.into_inner().anchor)
        }
    }
}

fn json(anchor: &TrustAnchor) -> serde_json::Value {
    serde_json::json!({
        "name": anchor.name,
        "subject": anchor.subject,
        "fingerprint": anchor.fingerprint,
        "added_by": anchor.added_by,
        "added_at": timestamp(anchor.added_at.as_ref()),
    })
}

fn show(connection: &Connection, what: &str, anchor: Option<TrustAnchor>) -> anyhow::Result<()> {
    let anchor = anchor.ok_or_else(|| anyhow::anyhow!("the server returned no anchor"))?;
    match connection.json {
        true => print_json(&json(&anchor)),
        false => outln!(
            "{what} {} ({}, sha256:{})",
            anchor.name,
            anchor.subject,
            anchor.fingerprint
        ),
    }
    Ok(())
}
