//! `govtrust unseal`, `govtrust status` and `govtrust seal`.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use govtrust_proto::kms::{
    SealRequest, SealStatus, SealStatusRequest, UnsealRequest, seal_client::SealClient,
};
use zeroize::Zeroizing;

use super::connection::Connection;
use super::text::{print_json, status_error, timestamp};

/// Largest share file read; a real one is under 300 bytes, the server takes at most 1 KiB.
const MAX_SHARE_FILE: u64 = 4096;

/// Sends one share file to the server.
pub async fn unseal(connection: &Connection, share: &Path) -> anyhow::Result<()> {
    let share = read_share(share)?;
    let mut client = SealClient::new(connection.channel().await?);
    // The request message is tonic's from here on: encoded into HTTP/2 frames and dropped
    // there, without a wipe; our own buffer is zeroized when `share` goes out of scope.
    let request = UnsealRequest {
        share: share.to_vec(),
    };
    let response = client.unseal(request).await.map_err(status_error)?;
    let status = response.into_inner().status;
    show(connection, &status.unwrap_or_default());
    Ok(())
}

/// The share file's bytes, in a buffer zeroized on drop, read at their final size.
fn read_share(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let cannot = || format!("cannot read {}", path.display());
    let file = std::fs::File::open(path).with_context(cannot)?;
    let size = file.metadata().with_context(cannot)?.len();
    if size > MAX_SHARE_FILE {
        anyhow::bail!(
            "{} is {size} bytes: not a share file (a share file is a few hundred bytes)",
            path.display()
        );
    }
    let mut share = Zeroizing::new(Vec::with_capacity(usize::try_from(size)?));
    file.take(size)
        .read_to_end(&mut share)
        .with_context(cannot)?;
    Ok(share)
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

/// Seals the server at once (security administrator).
pub async fn seal(connection: &Connection, reason: &str) -> anyhow::Result<()> {
    let mut client = SealClient::new(connection.channel().await?);
    let response = client
        .seal(SealRequest {
            reason: reason.to_owned(),
        })
        .await
        .map_err(status_error)?;
    let status = response.into_inner().status.unwrap_or_default();
    if !connection.json {
        outln!(
            "sealed: every key operation fails until {} custodians unseal the server again",
            status.threshold
        );
    }
    show(connection, &status);
    Ok(())
}

fn show(connection: &Connection, status: &SealStatus) {
    let expires = timestamp(status.attempt_expires_at.as_ref());
    if connection.json {
        print_json(&serde_json::json!({
            "sealed": status.sealed,
            "threshold": status.threshold,
            "shares_total": status.shares_total,
            "progress": status.progress,
            "progress_reset": status.progress_reset,
            "attempt_expires_at": expires,
            "deployment_id": status.deployment_id,
        }));
        return;
    }
    if status.progress_reset {
        outln!(
            "an earlier unseal attempt expired: its shares were forgotten, custodians must give theirs again"
        );
    }
    if status.sealed {
        let until = Some(expires)
            .filter(|e| !e.is_empty())
            .map(|e| format!("; this attempt expires at {e}"))
            .unwrap_or_default();
        outln!(
            "sealed: {}/{} shares received ({} of {} needed){until}",
            status.progress,
            status.threshold,
            status.threshold,
            status.shares_total
        );
    } else if status.deployment_id.is_empty() {
        outln!("unsealed");
    } else {
        outln!("unsealed (deployment {})", status.deployment_id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn share_files_are_read_whole_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("share-1.txt");
        std::fs::write(&path, "govtrust-unseal-share-v1\n").unwrap();
        let share: Zeroizing<Vec<u8>> = read_share(&path).unwrap();
        assert_eq!(share.as_slice(), b"govtrust-unseal-share-v1\n");
        std::fs::write(&path, vec![b'x'; 5000]).unwrap();
        let refused = read_share(&path).unwrap_err().to_string();
        assert!(refused.contains("not a share file"), "{refused}");
        assert!(read_share(&dir.path().join("missing")).is_err());
    }
}
