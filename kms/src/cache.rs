//! The in-memory cache of unsealed keys, so the hot path (encrypt, decrypt, sign, verify) neither
//! reads the store nor unseals nor parses anything.
//!
//! Entries are replaced whole on every write of their key and only by a newer record revision, so
//! a reader that loaded an old record while a writer committed cannot put it back over the
//! writer's. A destroyed key's entry is replaced by its tombstone, which holds no material; the
//! dropped entry's material buffers are zeroized (see [`crate::material`] for ring's part).
//!
//! The cache is sharded to keep readers from contending on one lock, and bounded: beyond
//! [`CAPACITY`] entries an arbitrary entry of the shard is evicted and reloaded on next use.
//!
//! One node only: with several nodes on a shared store, a change made on another node is not
//! seen here until this node writes the key or restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use crate::KeyId;
use crate::material::Operator;
use crate::record::KeyRecord;

/// Most entries held across all shards.
pub(crate) const CAPACITY: usize = 100_000;
const SHARDS: usize = 32;

/// One loaded version.
pub(crate) struct VersionKey {
    pub(crate) version: u32,
    pub(crate) operator: Operator,
}

/// A key's record and its versions, ready for use.
pub(crate) struct LoadedKey {
    pub(crate) record: KeyRecord,
    /// Empty for a destroyed key.
    pub(crate) versions: BTreeMap<u32, Arc<VersionKey>>,
}

impl LoadedKey {
    /// `version`, or the primary version when `None`.
    pub(crate) fn version(&self, version: Option<u32>) -> Option<&Arc<VersionKey>> {
        self.versions
            .get(&version.unwrap_or(self.record.primary_version))
    }
}

/// Sharded map from key id to loaded key.
pub(crate) struct KeyCache {
    shards: Vec<RwLock<HashMap<KeyId, Arc<LoadedKey>>>>,
}

impl KeyCache {
    pub(crate) fn new() -> KeyCache {
        KeyCache {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }

    /// The cached key, if any.
    pub(crate) fn get(&self, id: &KeyId) -> Option<Arc<LoadedKey>> {
        let shard = self
            .shard(id)?
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.get(id).cloned()
    }

    /// Caches `key` unless the same or a newer revision is cached; returns whichever is cached afterwards.
    pub(crate) fn insert(&self, key: LoadedKey) -> Arc<LoadedKey> {
        let key = Arc::new(key);
        let Some(shard) = self.shard(&key.record.id) else {
            return key;
        };
        let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = shard.get(&key.record.id) {
            if cached.record.revision >= key.record.revision {
                return Arc::clone(cached);
            }
        } else if shard.len() >= CAPACITY / SHARDS {
            let victim = shard.keys().next().cloned();
            victim.map(|victim| shard.remove(&victim));
        }
        shard.insert(key.record.id.clone(), Arc::clone(&key));
        key
    }

    /// The shard holding `id`.
    fn shard(&self, id: &KeyId) -> Option<&RwLock<HashMap<KeyId, Arc<LoadedKey>>>> {
        // Key ids end in random hex, so their last bytes spread evenly.
        let spread = id
            .as_str()
            .bytes()
            .rev()
            .take(2)
            .fold(0usize, |acc, b| acc * 31 + usize::from(b));
        self.shards.get(spread % SHARDS)
    }
}
