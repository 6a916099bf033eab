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
//! Eviction would defeat the revision check: once the newer entry is gone there is nothing to
//! compare a late, older record with. So every shard has a [`Generation`], and whoever loads or
//! writes a record takes the generation of its shard *before* reading or writing the store, and
//! offers the record to [`KeyCache::insert`] with it. A record for an id that is not cached is
//! only inserted if the generation has not moved since. It moves whenever the shard loses track
//! of a revision: an entry is evicted or invalidated, or an insert is refused because the
//! generation moved since its caller took it (that record is not cached, so every loader that
//! took the generation before must be refused too). Hence the invariant:
//!
//! > While a shard's generation does not move, every revision offered for an id of the shard
//! > is cached, or a newer one is.
//!
//! (An accepted insert caches its revision; an insert refused for its revision finds it or a
//! newer one cached; entries are only replaced by newer revisions; everything else moves the
//! generation.)
//!
//! It follows that once revision r of an id has been offered, no older revision q of it is ever
//! cached again. Revision q was read or written before r was committed, so its loader took
//! its generation before r was offered. An entry is only replaced by a newer one, so the first
//! older revision to get in after r was offered would have to find the id not cached; by the
//! invariant the generation has then moved since r was offered, hence since the loader took it,
//! and the insert is refused. A refused record is returned to its caller uncached; the next use
//! reloads it.
//!
//! So a writer that committed revision r must offer r, or when it cannot (loading its versions
//! failed, or the store could not tell whether the commit happened) [`KeyCache::invalidate`] the
//! id. Caching r whatever the generation would not do: a newer revision committed by another
//! writer may have been cached and evicted since, leaving nothing to compare r with.
//!
//! One node only: with several nodes on a shared store, a change made on another node is not
//! seen here until this node writes the key or restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use crate::KeyId;
use crate::budget::Budget;
use crate::material::Operator;
use crate::record::KeyRecord;

/// Most entries held across all shards.
pub(crate) const CAPACITY: usize = 100_000;
const SHARDS: usize = 32;

/// One loaded version.
pub(crate) struct VersionKey {
    pub(crate) version: u32,
    pub(crate) operator: Operator,
    /// Encryptions left before the store must be asked for more: see [`crate::budget`]. It
    /// lives as long as the cached version, across record revisions.
    pub(crate) budget: Budget,
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

    /// Every version: the primary first, then the others newest first.
    pub(crate) fn versions_newest_primary_first(&self) -> impl Iterator<Item = &Arc<VersionKey>> {
        let primary = self.version(None);
        primary.into_iter().chain(
            self.versions
                .values()
                .rev()
                .filter(move |v| Some(v.version) != primary.map(|p| p.version)),
        )
    }
}

/// How many times a shard lost track of a revision, taken before a record is read or written:
/// see the module docs. Never moves back: a `u64` does not wrap at one change per nanosecond
/// for centuries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation(u64);

/// One shard: its entries and its generation.
#[derive(Default)]
struct Shard {
    keys: HashMap<KeyId, Arc<LoadedKey>>,
    generation: u64,
}

/// Sharded map from key id to loaded key.
pub(crate) struct KeyCache {
    shards: Vec<RwLock<Shard>>,
    /// Most entries per shard.
    per_shard: usize,
}

impl KeyCache {
    pub(crate) fn new() -> KeyCache {
        KeyCache::with_shard_capacity(CAPACITY / SHARDS)
    }

    fn with_shard_capacity(per_shard: usize) -> KeyCache {
        KeyCache {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            per_shard: per_shard.max(1),
        }
    }

    /// The cached key, if any.
    pub(crate) fn get(&self, id: &KeyId) -> Option<Arc<LoadedKey>> {
        let shard = self
            .shard(id)?
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.keys.get(id).cloned()
    }

    /// The generation of `id`'s shard; take it before reading or writing `id` in the store.
    pub(crate) fn generation(&self, id: &KeyId) -> Generation {
        let generation = self.shard(id).map_or(0, |shard| {
            shard
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .generation
        });
        Generation(generation)
    }

    /// Caches `key`, read or written after `since` was taken, unless the same or a newer revision
    /// is cached, or `key` is not cached and its shard's generation moved since; in the latter
    /// case the generation moves again, so that no loader that took it earlier gets an older
    /// revision in (see the module docs). Returns whichever is cached afterwards, or `key` when
    /// it was not cached.
    pub(crate) fn insert(&self, key: LoadedKey, since: Generation) -> Arc<LoadedKey> {
        let key = Arc::new(key);
        let Some(shard) = self.shard(&key.record.id) else {
            return key;
        };
        let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
        match shard.keys.get(&key.record.id) {
            Some(cached) if cached.record.revision >= key.record.revision => {
                return Arc::clone(cached);
            }
            Some(_) => {}
            None if shard.generation != since.0 => {
                shard.advance();
                return key;
            }
            None => shard.make_room(self.per_shard),
        }
        shard.keys.insert(key.record.id.clone(), Arc::clone(&key));
        key
    }

    /// Drops `id`'s entry, if any, and moves its shard's generation: for a writer that committed
    /// a revision it cannot offer (see the module docs).
    pub(crate) fn invalidate(&self, id: &KeyId) {
        if let Some(shard) = self.shard(id) {
            let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
            shard.keys.remove(id);
            shard.advance();
        }
    }

    /// Drops every entry (their material is zeroized when the last user lets go, see
    /// [`crate::material`] for ring's part) and moves every shard's generation, so no load that
    /// began before keeps a key cached: for [`crate::Kms::seal`].
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
            shard.keys.clear();
            shard.advance();
        }
    }

    /// The shard holding `id`.
    fn shard(&self, id: &KeyId) -> Option<&RwLock<Shard>> {
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

impl Shard {
    /// Evicts an arbitrary entry when the shard holds `capacity`, moving the generation.
    fn make_room(&mut self, capacity: usize) {
        if self.keys.len() < capacity {
            return;
        }
        let victim = self.keys.keys().next().cloned();
        if let Some(victim) = victim {
            self.keys.remove(&victim);
            self.advance();
        }
    }

    /// Moves the generation: the shard lost track of a revision.
    fn advance(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::record::VersionRecord;
    use crate::{Algorithm, KeyState};

    /// Ids ending in the same two characters share a shard.
    fn id(n: u8) -> KeyId {
        KeyId::parse(&format!("k-{n:02x}00000000000000000000000000000f")).unwrap()
    }

    fn loaded(id: &KeyId, revision: u64, state: KeyState) -> LoadedKey {
        let record = KeyRecord {
            id: id.clone(),
            algorithm: Algorithm::Aes256Gcm,
            state,
            primary_version: 1,
            versions: vec![VersionRecord {
                version: 1,
                created_at_ms: 0,
            }],
            exportable: false,
            owner: String::new(),
            owner_generation: 0,
            description: String::new(),
            internal: false,
            created_at_ms: 0,
            destruction_due_ms: None,
            destroyed_at_ms: None,
            revision,
            created_by: String::new(),
            imported_from: None,
            budget_of: None,
            escrowed: false,
        };
        LoadedKey {
            record,
            versions: BTreeMap::new(),
        }
    }

    fn cached_revision(cache: &KeyCache, id: &KeyId) -> Option<u64> {
        cache.get(id).map(|key| key.record.revision)
    }

    #[test]
    fn older_revision_does_not_replace_newer() {
        let cache = KeyCache::new();
        let a = id(1);
        cache.insert(loaded(&a, 2, KeyState::Suspended), cache.generation(&a));
        let kept = cache.insert(loaded(&a, 1, KeyState::Active), cache.generation(&a));
        assert_eq!(kept.record.state, KeyState::Suspended);
        cache.insert(loaded(&a, 3, KeyState::Active), cache.generation(&a));
        assert_eq!(cached_revision(&cache, &a), Some(3));
    }

    #[test]
    fn stale_record_is_not_cached_after_an_eviction() {
        let cache = KeyCache::with_shard_capacity(1);
        let (a, b) = (id(1), id(2));
        assert!(std::ptr::eq(
            cache.shard(&a).unwrap(),
            cache.shard(&b).unwrap()
        ));
        // A reader takes the generation and reads revision 1 (active) of `a` from the store...
        let reader = cache.generation(&a);
        // ...meanwhile a writer suspends `a` (revision 2) and caches it...
        cache.insert(loaded(&a, 2, KeyState::Suspended), cache.generation(&a));
        // ...and loading `b` evicts `a`.
        cache.insert(loaded(&b, 1, KeyState::Active), cache.generation(&b));
        assert_eq!(cached_revision(&cache, &a), None);

        // The reader's late insert is served to it but not cached.
        let served = cache.insert(loaded(&a, 1, KeyState::Active), reader);
        assert_eq!(served.record.revision, 1);
        assert_eq!(cached_revision(&cache, &a), None);
        assert_eq!(cached_revision(&cache, &b), Some(1));

        // A load that starts now reads revision 2 and caches it.
        let fresh = cache.generation(&a);
        cache.insert(loaded(&a, 2, KeyState::Suspended), fresh);
        assert_eq!(cached_revision(&cache, &a), Some(2));
    }

    #[test]
    fn refused_writer_keeps_a_stale_reader_out() {
        let cache = KeyCache::with_shard_capacity(1);
        let (k, a, b) = (id(1), id(2), id(3));
        cache.insert(loaded(&a, 1, KeyState::Active), cache.generation(&a));
        // A writer (suspend, compromise) takes the generation before writing `k` to the store.
        let writer = cache.generation(&k);
        // Loading `b` into the full shard evicts `a`: the generation moves.
        cache.insert(loaded(&b, 1, KeyState::Active), cache.generation(&b));
        // A reader misses `k`, takes the new generation and reads revision 1 (active).
        let reader = cache.generation(&k);
        // The writer commits revision 2 (suspended); its insert is refused, uncached.
        let served = cache.insert(loaded(&k, 2, KeyState::Suspended), writer);
        assert_eq!(served.record.revision, 2);
        assert_eq!(cached_revision(&cache, &k), None);
        // The reader's late insert of revision 1 must be refused too.
        let served = cache.insert(loaded(&k, 1, KeyState::Active), reader);
        assert_eq!(served.record.revision, 1);
        assert_eq!(cached_revision(&cache, &k), None, "stale revision cached");

        // A load that starts now reads revision 2 and caches it.
        cache.insert(loaded(&k, 2, KeyState::Suspended), cache.generation(&k));
        assert_eq!(cached_revision(&cache, &k), Some(2));
    }

    #[test]
    fn invalidated_writer_keeps_a_stale_reader_out() {
        let cache = KeyCache::new();
        let k = id(1);
        cache.insert(loaded(&k, 1, KeyState::Active), cache.generation(&k));
        // A reader misses (the entry is about to go), takes the generation, reads revision 1.
        let reader = cache.generation(&k);
        // A writer commits revision 2 but cannot offer it, so it invalidates `k`.
        cache.invalidate(&k);
        assert_eq!(cached_revision(&cache, &k), None);
        cache.insert(loaded(&k, 1, KeyState::Active), reader);
        assert_eq!(cached_revision(&cache, &k), None, "stale revision cached");

        cache.insert(loaded(&k, 2, KeyState::Suspended), cache.generation(&k));
        assert_eq!(cached_revision(&cache, &k), Some(2));
    }

    #[test]
    fn clear_empties_every_shard_and_refuses_loads_begun_before() {
        let cache = KeyCache::new();
        let (a, b) = (id(1), id(2));
        cache.insert(loaded(&a, 1, KeyState::Active), cache.generation(&a));
        let before = cache.generation(&b);
        cache.clear();
        assert_eq!(cached_revision(&cache, &a), None);
        cache.insert(loaded(&b, 1, KeyState::Active), before);
        assert_eq!(
            cached_revision(&cache, &b),
            None,
            "a load begun before was cached"
        );
        cache.insert(loaded(&b, 1, KeyState::Active), cache.generation(&b));
        assert_eq!(cached_revision(&cache, &b), Some(1));
    }

    #[test]
    fn bounded_per_shard() {
        let cache = KeyCache::with_shard_capacity(3);
        for n in 0..10 {
            let id = id(n);
            cache.insert(loaded(&id, 1, KeyState::Active), cache.generation(&id));
        }
        let shard = cache.shard(&id(0)).unwrap().read().unwrap();
        assert_eq!(shard.keys.len(), 3);
        assert_eq!(shard.generation, 7);
    }
}
