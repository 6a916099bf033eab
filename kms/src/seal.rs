//! The seal: the deployment's seal configuration, the unseal attempt in progress, and what an
//! unsealed centre holds in memory.
//!
//! The seal configuration (`kms/seal`, plain JSON) holds the deployment id, M and N, the check
//! value that tells the right master key from a wrong one, and one commitment per share issued
//! (see [`crate::shares`]): a share whose commitment does not match is refused before it takes
//! part in an unseal attempt. It holds no secret: the check value is sealed under a key derived
//! from the master key, and each commitment is a hash of a share of 256-bit entropy.
//!
//! Decoding is strict: unknown or missing fields, a malformed deployment id, a bad split, a check
//! value that is not hex or a commitment list that does not have exactly one 32-byte commitment
//! per share all make the configuration [`Error::Corrupt`].

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::master::{DigestKey, MasterKey};
use crate::sealed::SealingKey;
use crate::shares::{self, Commitment, Share};
use crate::transfer::WrappingKey;
use crate::{Error, SealStatus};

/// Most shares a master key may be split into.
pub(crate) const MAX_SHARES: u8 = 16;
/// `d-` and 32 lower-case hex characters.
const DEPLOYMENT_ID_LEN: usize = 34;

/// The seal configuration, parsed. Build it with [`SealConfig::new`] or [`SealConfig::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealConfig {
    pub(crate) deployment_id: String,
    pub(crate) threshold: u8,
    pub(crate) shares: u8,
    /// See [`MasterKey::check_value`].
    check_value: Vec<u8>,
    /// The commitment to share `i` at position `i - 1`; exactly `shares` of them.
    commitments: Vec<Commitment>,
}

/// The seal configuration as stored at `kms/seal`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSealConfig {
    deployment_id: String,
    threshold: u8,
    shares: u8,
    /// Hex.
    check_value: String,
    /// Hex, share 1 first.
    share_commitments: Vec<String>,
}

impl SealConfig {
    /// A configuration for a new deployment; `commitments` in share index order, from 1.
    pub(crate) fn new(
        deployment_id: String,
        threshold: u8,
        check_value: Vec<u8>,
        commitments: Vec<Commitment>,
    ) -> SealConfig {
        SealConfig {
            deployment_id,
            threshold,
            // `initialize` checked the split, so there are at most 16 commitments.
            shares: u8::try_from(commitments.len()).unwrap_or(u8::MAX),
            check_value,
            commitments,
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

    /// Parses the stored JSON, strictly.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SealConfig, Error> {
        let stored: StoredSealConfig =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("{e}")))?;
        if !is_deployment_id(&stored.deployment_id) {
            return Err(corrupt("the deployment id is not d- and 32 hex characters"));
        }
        Self::check_split(stored.threshold, stored.shares).map_err(|_| corrupt("bad threshold"))?;
        let check_value = hex::decode(&stored.check_value)
            .ok()
            .filter(|check| !check.is_empty())
            .ok_or_else(|| corrupt("the check value is not hex"))?;
        let commitments = decode_commitments(&stored.share_commitments, stored.shares)?;
        Ok(SealConfig {
            deployment_id: stored.deployment_id,
            threshold: stored.threshold,
            shares: stored.shares,
            check_value,
            commitments,
        })
    }

    /// The JSON to store.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        let stored = StoredSealConfig {
            deployment_id: self.deployment_id.clone(),
            threshold: self.threshold,
            shares: self.shares,
            check_value: hex::encode(&self.check_value),
            share_commitments: self.commitments.iter().map(hex::encode).collect(),
        };
        serde_json::to_vec(&stored).map_err(|_| Error::Crypto {
            context: "encoding the seal configuration",
        })
    }

    /// True when `master` is this deployment's master key.
    pub(crate) fn accepts(&self, master: &MasterKey) -> Result<bool, Error> {
        master.matches(&self.deployment_id, &self.check_value)
    }

    /// True when `share` is the share issued with its index, compared in constant time.
    pub(crate) fn issued(&self, share: &Share) -> bool {
        let expected = usize::from(share.index)
            .checked_sub(1)
            .and_then(|position| self.commitments.get(position));
        let actual = share.commitment(&self.deployment_id);
        expected.is_some_and(|expected| bool::from(expected.as_slice().ct_eq(actual.as_slice())))
    }

    /// The status to report with `progress` shares in.
    pub(crate) fn status(&self, sealed: bool, progress: usize) -> SealStatus {
        SealStatus {
            sealed,
            threshold: self.threshold,
            shares_total: self.shares,
            progress: u8::try_from(progress).unwrap_or(u8::MAX),
            deployment_id: self.deployment_id.clone(),
            progress_reset: false,
            attempt_expires_at: None,
        }
    }
}

/// True when `id` is `d-` and 32 lower-case hex characters, as [`crate::Kms::initialize`] makes
/// them. The fixed length keeps the share commitment's input unambiguous.
pub(crate) fn is_deployment_id(id: &str) -> bool {
    id.len() == DEPLOYMENT_ID_LEN
        && id.strip_prefix("d-").is_some_and(|hex| {
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// The stored commitments: exactly one per share.
fn decode_commitments(texts: &[String], shares: u8) -> Result<Vec<Commitment>, Error> {
    if texts.len() != usize::from(shares) {
        return Err(corrupt(format!(
            "{} share commitments for {shares} shares",
            texts.len()
        )));
    }
    texts.iter().map(|text| decode_commitment(text)).collect()
}

/// One stored commitment: 64 hex characters.
fn decode_commitment(text: &str) -> Result<Commitment, Error> {
    let mut commitment = Commitment::default();
    hex::decode_to_slice(text, &mut commitment)
        .map_err(|_| corrupt("a share commitment is not 64 hex characters"))?;
    Ok(commitment)
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        context: format!("seal configuration: {what}"),
    }
}

/// The shares of the unseal attempt in progress, and when it started.
///
/// An attempt expires a fixed time after its first share (see [`crate::Kms::with_unseal_timeout`]):
/// its shares are then dropped (zeroized) and the next answer says so, so shares given days ago
/// by custodians who went home cannot be completed by whoever brings the last ones later.
#[derive(Default)]
pub(crate) struct Progress {
    shares: Vec<Share>,
    /// When the first share of this attempt was taken.
    started: Option<SystemTime>,
    /// An attempt expired since the last unseal answer: the next one reports the reset.
    expired: bool,
}

impl Progress {
    /// Adds a share; rejects a second share of the same index.
    pub(crate) fn add(&mut self, share: Share, now: SystemTime) -> Result<(), Error> {
        if self.shares.iter().any(|s| s.index == share.index) {
            return Err(Error::InvalidShare {
                reason: format!(
                    "share {} was already given in this unseal attempt",
                    share.index
                ),
            });
        }
        self.started.get_or_insert(now);
        self.shares.push(share);
        Ok(())
    }

    /// Takes back the share of `index` (its acceptance could not be audited).
    pub(crate) fn remove(&mut self, index: u8) {
        self.shares.retain(|share| share.index != index);
        if self.shares.is_empty() {
            self.started = None;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shares.len()
    }

    /// When this attempt expires, if one is in progress.
    pub(crate) fn expires_at(&self, timeout: Duration) -> Option<SystemTime> {
        self.started.map(|started| {
            started
                .checked_add(timeout)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        })
    }

    /// True when the attempt in progress has expired at `now`.
    pub(crate) fn is_expired(&self, now: SystemTime, timeout: Duration) -> bool {
        self.expires_at(timeout).is_some_and(|at| at <= now)
    }

    /// Drops every share of an attempt that expired at `now`; returns how many were dropped.
    pub(crate) fn expire(&mut self, now: SystemTime, timeout: Duration) -> usize {
        if !self.is_expired(now, timeout) {
            return 0;
        }
        let dropped = self.shares.len();
        self.clear();
        self.expired = true;
        dropped
    }

    /// Drops every share: the attempt starts over.
    pub(crate) fn clear(&mut self) {
        self.shares.clear();
        self.started = None;
    }

    /// Whether an attempt expired since the last call; clears the flag.
    pub(crate) fn take_expired(&mut self) -> bool {
        std::mem::take(&mut self.expired)
    }

    /// Whether an attempt expired and no answer reported it yet.
    pub(crate) fn was_expired(&self) -> bool {
        self.expired
    }

    /// Takes every share out (the attempt starts over) and reconstructs the master key from
    /// them; `None` when they do not interpolate to a key.
    pub(crate) fn combine(&mut self, threshold: u8) -> Option<MasterKey> {
        let shares = std::mem::take(&mut self.shares);
        self.started = None;
        shares::combine(&shares, threshold)
    }
}

/// What an unsealed centre holds: keys derived from the master key, never the master key.
pub(crate) struct Unsealed {
    /// Seals and opens every key record.
    pub(crate) records: SealingKey,
    /// The import wrapping key.
    pub(crate) wrapping: WrappingKey,
    /// The keys of keyed digests.
    pub(crate) digests: DigestKey,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "d-00112233445566778899aabbccddeeff";

    fn config() -> SealConfig {
        SealConfig::new(DEPLOYMENT.into(), 2, vec![1, 2, 3], vec![[7; 32], [9; 32]])
    }

    #[test]
    fn round_trips_through_json() {
        let encoded = config().encode().unwrap();
        assert_eq!(SealConfig::decode(&encoded).unwrap(), config());
        let json = String::from_utf8(encoded).unwrap();
        assert!(json.contains(&"07".repeat(32)), "{json}");
    }

    #[test]
    fn decoding_is_strict() {
        let json = String::from_utf8(config().encode().unwrap()).unwrap();
        for bad in [
            json.replace(DEPLOYMENT, "d-00112233445566778899AABBCCDDEEFF"),
            json.replace(DEPLOYMENT, "d-0011"),
            json.replace("\"check_value\":\"010203\"", "\"check_value\":\"\""),
            json.replace(&"09".repeat(32), &"09".repeat(33)),
            json.replace(&format!(",\"{}\"", "09".repeat(32)), ""),
            json.replace("\"threshold\":2", "\"threshold\":3"),
            json.replace('}', ",\"more\":1}"),
        ] {
            assert_ne!(bad, json);
            assert!(
                matches!(
                    SealConfig::decode(bad.as_bytes()),
                    Err(Error::Corrupt { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn deployment_ids() {
        assert!(is_deployment_id(DEPLOYMENT));
        assert!(!is_deployment_id("d-00112233445566778899aabbccddeefg"));
        assert!(!is_deployment_id("x-00112233445566778899aabbccddeeff"));
        assert!(!is_deployment_id("d-00112233445566778899aabbccddeeff0"));
    }
}
