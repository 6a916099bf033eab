//! [`MemoryStore`]: the [`Store`] in memory, for unit tests of the domain crates.
//!
//! It runs the same batch algorithm as [`RedbStore`](crate::RedbStore) and passes the same
//! [`conformance`](crate::conformance) suite. It is not durable: everything is lost on drop.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::apply::{self, Sequences};
use crate::{Batch, Committed, Entry, Error, Store, keys};

/// The entries, in key order.
type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An ordered map behind a mutex; commits are serialized and atomic, never durable.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<Map>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The map, locked. A poisoned lock (a thread panicked holding it) is an error, not a panic.
    fn entries(&self) -> Result<MutexGuard<'_, Map>, Error> {
        self.entries
            .lock()
            .map_err(|poisoned| Error::backend("memory store lock", poisoned.to_string()))
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.entries()?.get(key).cloned())
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, Error> {
        let end = keys::prefix_end(prefix);
        let Some(bounds) = keys::scan_bounds(prefix, start_after, end.as_deref()) else {
            return Ok(Vec::new());
        };
        let entries = self.entries()?;
        let range = entries.range::<[u8], _>(bounds).take(limit);
        Ok(range
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn last(&self, prefix: &[u8]) -> Result<Option<Entry>, Error> {
        let end = keys::prefix_end(prefix);
        let Some(bounds) = keys::scan_bounds(prefix, None, end.as_deref()) else {
            return Ok(None);
        };
        let entries = self.entries()?;
        let last = entries.range::<[u8], _>(bounds).next_back();
        Ok(last.map(|(key, value)| (key.clone(), value.clone())))
    }

    fn commit(&self, batch: Batch) -> Result<Committed, Error> {
        let mut entries = self.entries()?;
        // A fresh cache per commit: searching the map is as cheap as caching would be.
        apply::apply(&mut *entries, &mut Sequences::default(), &batch)?.into_result()
    }
}

/// Map operations cannot fail.
impl apply::Table for Map {
    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.get(key).cloned())
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(BTreeMap::insert(self, key.to_vec(), value.to_vec()))
    }

    fn remove(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(BTreeMap::remove(self, key))
    }

    fn last_sequence(&self, prefix: &[u8]) -> Result<Option<u64>, Error> {
        let ceiling = keys::sequence_ceiling(prefix);
        let range = self.range::<[u8], _>(keys::sequence_bounds(prefix, &ceiling));
        Ok(range
            .rev()
            .find_map(|(key, _)| keys::sequence_of(prefix, key)))
    }
}
