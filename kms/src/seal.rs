//! The seal: the deployment's seal configuration, the unseal attempt in progress, and what an
//! unsealed centre holds in memory.
//!
//! The seal configuration (`kms/seal`, plain JSON) holds the deployment id, M and N, and the check
//! value that tells the right master key from a wrong one. It holds no secret.

use serde::{Deserialize, Serialize};

use crate::master::MasterKey;
use crate::sealed::SealingKey;
use crate::shares::{self, Share};
use crate::transfer::WrappingKey;
use crate::{Error, SealStatus};

/// Most shares a master key may be split into.
pub(crate) const MAX_SHARES: u8 = 16;

/// The seal configuration as stored at `kms/seal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealConfig {
    pub(crate) deployment_id: String,
    pub(crate) threshold: u8,
    pub(crate) shares: u8,
    /// Hex of the check value, see [`MasterKey::check_value`].
    check_value: String,
}

impl SealConfig {
    pub(crate) fn new(
        deployment_id: String,
        threshold: u8,
        shares: u8,
        check_value: Vec<u8>,
    ) -> SealConfig {
        SealConfig {
            deployment_id,
            threshold,
            shares,
            check_value: hex::encode(check_value),
        }
    }

    /// Checks `2 <= threshold <= shares <= 16`.
    pub(crate) fn check_split(threshold: u8, shares: u8) -> Result<(), Error> {
        if (2..=shares).contains(&threshold) && shares <= MAX_SHARES {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            field: "threshold",
            reason: format!(
                "{threshold} of {shares} shares: need 2 <= threshold <= shares <= {MAX_SHARES}"
            ),
        })
    }

    /// Parses the stored JSON.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SealConfig, Error> {
        let config: SealConfig = serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
            context: format!("seal configuration: {e}"),
        })?;
        Self::check_split(config.threshold, config.shares).map_err(|_| Error::Corrupt {
            context: "seal configuration: bad threshold".into(),
        })?;
        Ok(config)
    }

    /// The JSON to store.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(self).map_err(|_| Error::Crypto {
            context: "encoding the seal configuration",
        })
    }

    /// True when `master` is this deployment's master key.
    pub(crate) fn accepts(&self, master: &MasterKey) -> Result<bool, Error> {
        let check = hex::decode(&self.check_value).map_err(|_| Error::Corrupt {
            context: "seal configuration: check value is not hex".into(),
        })?;
        master.matches(&self.deployment_id, &check)
    }

    /// The status to report with `progress` shares in.
    pub(crate) fn status(&self, sealed: bool, progress: usize) -> SealStatus {
        SealStatus {
            sealed,
            threshold: self.threshold,
            shares_total: self.shares,
            progress: u8::try_from(progress).unwrap_or(u8::MAX),
            deployment_id: self.deployment_id.clone(),
        }
    }
}

/// The shares of the unseal attempt in progress.
#[derive(Default)]
pub(crate) struct Progress {
    shares: Vec<Share>,
}

impl Progress {
    /// Adds a share; rejects a second share of the same index.
    pub(crate) fn add(&mut self, share: Share) -> Result<(), Error> {
        if self.shares.iter().any(|s| s.index == share.index) {
            return Err(Error::InvalidShare {
                reason: format!(
                    "share {} was already given in this unseal attempt",
                    share.index
                ),
            });
        }
        self.shares.push(share);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.shares.len()
    }

    /// Takes every share out (the attempt starts over) and reconstructs the master key from
    /// them; `None` when they do not interpolate to a key.
    pub(crate) fn combine(&mut self, threshold: u8) -> Option<MasterKey> {
        let shares = std::mem::take(&mut self.shares);
        shares::combine(&shares, threshold)
    }
}

/// What an unsealed centre holds: keys derived from the master key, never the master key.
pub(crate) struct Unsealed {
    /// Seals and opens every key record.
    pub(crate) records: SealingKey,
    /// The import wrapping key.
    pub(crate) wrapping: WrappingKey,
}
