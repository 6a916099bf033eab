//! The encryption budget of AES-256-GCM key versions.
//!
//! Encrypt and GenerateDataKey use random 96-bit nonces. With random nonces NIST SP 800-38D
//! (§8.3) allows at most 2^32 encryptions under one key; the centre stops each key version at
//! [`EncryptionLimit::DEFAULT_PER_VERSION`] = 2^30, where the chance that two nonces collide is
//! below 2^-37. When the primary version reaches it, the next encryption rotates the key (a new
//! primary version, audited `kms.key.rotate` by `govtrust` with the reason) and goes on under the
//! new version; older versions still decrypt. When the key cannot rotate, the encryption is
//! refused with [`Error::EncryptionLimit`].
//!
//! The count is persistent and costs no store write per encryption. The store holds, per
//! version, how many encryptions have been *reserved* (`kms/nonces/<id>/<version>`, a u64
//! big-endian). A process reserves a block ([`EncryptionLimit::DEFAULT_RESERVE`] = 2^16) with a
//! compare-and-swap before using any of it, then counts down the block in memory. After a crash
//! the unused rest of a block is lost: the count runs ahead, never behind. Several nodes on one
//! store reserve blocks of their own. A version evicted from the key cache starts a new block
//! when it is loaded again.
//!
//! Copies of a version's material in other keys share its limit: a copy imported into the same
//! centre counts against the source version's count; a bundle to another centre carries an
//! allotment that the source's count gives up at export ([`allot`]) and the copy's count starts
//! from at import ([`start_copy`]).
//!
//! The counters hold no secret (key ids and counts), so they are not sealed; someone who can
//! write the store could lower one, but could equally delete every key.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};

use govtrust_store::{Batch, Store};

use crate::record;
use crate::{Error, KeyId};

/// How many times a reservation that lost a compare-and-swap is tried again.
const ATTEMPTS: usize = 16;
/// The most encryptions NIST SP 800-38D allows under one key with random nonces.
const NIST_BOUND: u64 = 1 << 32;

/// How many encryptions one key version may make, and how many a process reserves at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptionLimit {
    per_version: u64,
    reserve: u64,
}

impl EncryptionLimit {
    /// Encryptions per key version: 2^30.
    pub const DEFAULT_PER_VERSION: u64 = 1 << 30;
    /// Encryptions reserved per store write: 2^16.
    pub const DEFAULT_RESERVE: u64 = 1 << 16;

    /// A limit of `per_version` encryptions (1 to 2^32) per key version, reserved `reserve` (1 to
    /// `per_version`) at a time. Lower limits are for tests and for deployments that want a
    /// wider margin; a larger `reserve` writes the store less often and loses more of the
    /// budget per crash.
    pub fn new(per_version: u64, reserve: u64) -> Result<EncryptionLimit, Error> {
        if !(1..=NIST_BOUND).contains(&per_version) {
            return Err(Error::InvalidArgument {
                field: "per_version",
                reason: format!("{per_version}: the limit is 1 to 2^32 encryptions per version"),
            });
        }
        if !(1..=per_version).contains(&reserve) {
            return Err(Error::InvalidArgument {
                field: "reserve",
                reason: format!("{reserve}: a reservation is 1 to {per_version} encryptions"),
            });
        }
        Ok(EncryptionLimit {
            per_version,
            reserve,
        })
    }

    /// Encryptions per key version.
    pub fn per_version(self) -> u64 {
        self.per_version
    }
}

impl Default for EncryptionLimit {
    fn default() -> Self {
        EncryptionLimit {
            per_version: Self::DEFAULT_PER_VERSION,
            reserve: Self::DEFAULT_RESERVE,
        }
    }
}

/// One loaded version's budget: the encryptions left of the block this process reserved.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// Counted down by every taker, one atomic add each (no compare-and-swap loop on the hot
    /// path). At zero or below the block is used up; takers that drove it below zero took
    /// nothing, and the next refill overwrites it.
    left: AtomicI64,
    /// Held while a block is reserved, so one caller writes the store and the others wait.
    reserving: Mutex<()>,
}

impl Budget {
    /// Takes one encryption of `id` `version`, reserving a block in `store` when this
    /// process's is used up. [`Error::EncryptionLimit`] when the version has none left.
    pub(crate) fn take(
        &self,
        store: &dyn Store,
        id: &KeyId,
        version: u32,
        limit: EncryptionLimit,
    ) -> Result<(), Error> {
        if self.try_take() {
            return Ok(());
        }
        let _reserving = self
            .reserving
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.try_take() {
            return Ok(());
        }
        let granted = reserve(store, id, version, limit)?;
        // Only the holder of `reserving` refills, and it saw the block used up: every taker
        // since then took nothing (it found zero or less) and queues on `reserving`, so
        // overwriting their decrements loses no encryption. `granted` is at most 2^32.
        let left = i64::try_from(granted).unwrap_or(i64::MAX) - 1;
        self.left.store(left, Ordering::SeqCst);
        Ok(())
    }

    /// Takes one encryption of the current block, if any is left.
    fn try_take(&self) -> bool {
        self.left.fetch_sub(1, Ordering::AcqRel) > 0
    }
}

/// Reserves up to `limit.reserve` more encryptions of `id` `version` in the store; returns how
/// many (at least one).
fn reserve(
    store: &dyn Store,
    id: &KeyId,
    version: u32,
    limit: EncryptionLimit,
) -> Result<u64, Error> {
    let key = record::nonces_key(id, version);
    for _ in 0..ATTEMPTS {
        let stored = store.get(&key)?;
        let reserved = decode(id, version, stored.as_deref())?;
        if reserved >= limit.per_version {
            return Err(Error::EncryptionLimit {
                id: id.clone(),
                version,
                limit: limit.per_version,
            });
        }
        let granted = limit.reserve.min(limit.per_version - reserved);
        let mut batch = Batch::new();
        batch.expect(key.clone(), stored);
        batch.put(key.clone(), (reserved + granted).to_be_bytes().to_vec());
        match store.commit(batch) {
            Ok(_) => return Ok(granted),
            Err(govtrust_store::Error::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::Conflict { id: id.clone() })
}

/// Sets aside encryptions of `id` `version` for a copy of its material exported to another
/// centre, which counts them down there: `requested`, or when `None` half of the encryptions
/// not yet reserved. The count grows by that many in `batch`, guarded by the count as read, so
/// the allotment takes effect only with the export (a reservation meanwhile makes the batch
/// conflict). The source and its copies together never make more than `limit.per_version`.
pub(crate) fn allot(
    store: &dyn Store,
    id: &KeyId,
    version: u32,
    limit: EncryptionLimit,
    requested: Option<u64>,
    batch: &mut Batch,
) -> Result<u64, Error> {
    let key = record::nonces_key(id, version);
    let stored = store.get(&key)?;
    let reserved = decode(id, version, stored.as_deref())?;
    let left = limit.per_version.saturating_sub(reserved);
    let allotted = match requested {
        None => left / 2,
        Some(wanted) if wanted <= left => wanted,
        Some(wanted) => {
            return Err(Error::InvalidArgument {
                field: "encryptions",
                reason: format!(
                    "{wanted}: key {id} version {version} has {left} encryptions left to give"
                ),
            });
        }
    };
    batch.expect(key.clone(), stored);
    batch.put(key, (reserved + allotted).to_be_bytes().to_vec());
    Ok(allotted)
}

/// Starts the count of version 1 of `id`, a copy imported from another centre that allotted it
/// `allotted` encryptions (see [`allot`]): the copy may make that many, or `limit.per_version`
/// if fewer, and then rotates like any key.
pub(crate) fn start_copy(id: &KeyId, limit: EncryptionLimit, allotted: u64, batch: &mut Batch) {
    let key = record::nonces_key(id, 1);
    let used = limit.per_version - allotted.min(limit.per_version);
    batch.expect_absent(key.clone());
    batch.put(key, used.to_be_bytes().to_vec());
}

/// The stored count: absent is 0.
fn decode(id: &KeyId, version: u32, stored: Option<&[u8]>) -> Result<u64, Error> {
    let Some(bytes) = stored else {
        return Ok(0);
    };
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| Error::Corrupt {
        context: format!("encryption count of key {id} version {version} is not 8 bytes"),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use govtrust_store::MemoryStore;

    use super::*;

    fn id() -> KeyId {
        KeyId::parse("k-0123456789abcdef0123456789abcdef").unwrap()
    }

    fn stored(store: &dyn Store) -> u64 {
        decode(
            &id(),
            1,
            store.get(&record::nonces_key(&id(), 1)).unwrap().as_deref(),
        )
        .unwrap()
    }

    #[test]
    fn reserves_blocks_and_stops_at_the_limit() {
        let store = MemoryStore::new();
        let limit = EncryptionLimit::new(10, 4).unwrap();
        let budget = Budget::default();
        let mut reserved = Vec::new();
        for _ in 0..10 {
            budget.take(&store, &id(), 1, limit).unwrap();
            reserved.push(stored(&store));
        }
        assert_eq!(reserved, [4, 4, 4, 4, 8, 8, 8, 8, 10, 10]);
        let refused = budget.take(&store, &id(), 1, limit).unwrap_err();
        assert!(matches!(refused, Error::EncryptionLimit { limit: 10, .. }));
        assert_eq!(
            refused.to_string(),
            format!(
                "key {} version 1 reached its encryption limit (10 encryptions with random \
                 nonces); rotate it",
                id()
            )
        );
        assert_eq!(stored(&store), 10);
    }

    #[test]
    fn a_new_budget_continues_after_the_stored_count() {
        let store = MemoryStore::new();
        let limit = EncryptionLimit::new(10, 4).unwrap();
        Budget::default().take(&store, &id(), 1, limit).unwrap();
        // A restart: the 3 unused encryptions of the first block are lost, not reused.
        let after = Budget::default();
        for _ in 0..6 {
            after.take(&store, &id(), 1, limit).unwrap();
        }
        assert!(after.take(&store, &id(), 1, limit).is_err());
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let limit = EncryptionLimit::new(1000, 7).unwrap();
        // Two budgets, as two nodes or an evicted and a reloaded version would hold.
        let budgets = [Arc::new(Budget::default()), Arc::new(Budget::default())];
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let (store, budget) = (Arc::clone(&store), Arc::clone(&budgets[n % 2]));
                std::thread::spawn(move || {
                    (0..400)
                        .filter(|_| budget.take(&*store, &id(), 1, limit).is_ok())
                        .count()
                })
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(taken <= 1000, "{taken} encryptions under a limit of 1000");
        assert!(
            taken >= 1000 - 2 * 7,
            "only {taken}: more than two blocks lost"
        );
        assert_eq!(stored(&*store), 1000);
    }

    #[test]
    fn limits_are_bounded() {
        assert!(EncryptionLimit::new(0, 1).is_err());
        assert!(EncryptionLimit::new((1 << 32) + 1, 1).is_err());
        assert!(EncryptionLimit::new(10, 0).is_err());
        assert!(EncryptionLimit::new(10, 11).is_err());
        assert_eq!(EncryptionLimit::default().per_version(), 1 << 30);
    }
}
