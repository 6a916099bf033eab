//! `govtrust unseal` and `govtrust status`.

use std::path::Path;

use anyhow::Context;
use govtrust_proto::kms::{SealStatus, SealStatusRequest, UnsealRequest, seal_client::SealClient};

use super::{Connection, print_json, status_error};

/// Sends one share file to the server.
pub async fn unseal(connection: &Connection, share: &Path) -> anyhow::Result<()> {
    let share = std::fs::read(share).with_context(|| format!("cannot read {}", share.display()))?;
    let mut client = SealClient::new(connection.channel().await?);
    let response = client
        .unseal(UnsealRequest { share })
        .await
        .map_err(status_error)?;
    show(
        connection,
        &response.into_inner().status.unwrap_or_default(),
    );
    Ok(())
}

/// Shows the seal status.
pub async fn status(connection: &Connection) -> anyhow::Result<()> {
    let mut client = SealClient::new(connection.channel().await?);
    let response = client
        .status(SealStatusRequest {})
        .await
        .map_err(status_error)?;
    show(
        connection,
        &response.into_inner().status.unwrap_or_default(),
    );
    Ok(())
}

fn show(connection: &Connection, status: &SealStatus) {
    if connection.json {
        print_json(&serde_json::json!({
            "sealed": status.sealed,
            "threshold": status.threshold,
            "shares_total": status.shares_total,
            "progress": status.progress,
            "deployment_id": status.deployment_id,
        }));
    } else if status.sealed {
        println!(
            "sealed: {}/{} shares received ({} of {} needed)",
            status.progress, status.threshold, status.threshold, status.shares_total
        );
    } else {
        println!("unsealed (deployment {})", status.deployment_id);
    }
}
