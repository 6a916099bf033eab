//! Enrollment generations: which enrollment of a system a certificate, and a key, belong to.
//!
//! A system's identity is more than its SPIFFE id. Every enrollment (a certificate for a
//! one-time token) starts a new *generation*; renewals stay in it. A key records the generation
//! of its owner when it was created, and a certificate the generation it was issued in. A
//! system reaches a key only with a certificate of its current generation, and only keys of a
//! generation at or above its *key floor*. The first enrollment keeps the floor at 0, so keys
//! made for a system before it enrolled are its own. A re-enrollment needs an approved request
//! (dual control, see `registry`); it raises the floor to the new generation unless the
//! approval says the keys are carried over. So whoever re-enrolls a system, even with an
//! approved token, does not reach the keys of the system's earlier life unless two officers
//! agreed to exactly that, and certificates of an earlier generation reach nothing.
//!
//! Generations are kept at `ca/lineage/<system>`, written in the enrollment's batch; the CA
//! caches them in memory (one node: see the crate docs).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use govtrust_store::{Batch, Store};

use crate::Error;
use crate::records::{self, LineageRecord};

/// A system's current enrollment generation and its key floor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lineage {
    /// The current generation: 0 before the first enrollment (or before generations were kept).
    pub generation: u32,
    /// The oldest generation whose keys the current one reaches.
    pub key_floor: u32,
}

impl Lineage {
    /// True when a certificate of `certificate_generation` may reach a key created under
    /// `key_generation`.
    pub fn reaches(self, certificate_generation: u32, key_generation: u32) -> bool {
        certificate_generation == self.generation
            && (self.key_floor..=self.generation).contains(&key_generation)
    }

    /// The lineage after one more enrollment: re-enrollments raise the floor unless `carry`.
    pub(crate) fn next(self, reenrollment: Option<bool>) -> Result<Lineage, Error> {
        let generation = self
            .generation
            .checked_add(1)
            .ok_or_else(|| Error::corrupt("enrollment generation overflow"))?;
        let key_floor = match reenrollment {
            Some(false) => generation,
            Some(true) | None => self.key_floor,
        };
        Ok(Lineage {
            generation,
            key_floor,
        })
    }
}

/// Moving a system to its next generation, as a guard and a write of an issuing batch.
pub(crate) struct Advance {
    key: Vec<u8>,
    stored: Option<Vec<u8>>,
    pub(crate) previous: Lineage,
    pub(crate) next: Lineage,
    record: Vec<u8>,
}

impl Advance {
    /// Requires the lineage to be unchanged when `batch` commits, and writes the next one.
    pub(crate) fn stage(&self, batch: &mut Batch) {
        batch
            .expect(self.key.clone(), self.stored.clone())
            .put(self.key.clone(), self.record.clone());
    }
}

/// The in-memory view of every system's lineage, filled from the store on first use.
#[derive(Debug, Default)]
pub(crate) struct Lineages {
    known: RwLock<HashMap<String, Lineage>>,
}

impl Lineages {
    /// The lineage of `system`.
    pub(crate) fn get(&self, store: &dyn Store, system: &str) -> Result<Lineage, Error> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(lineage) = known.get(system) {
            return Ok(*lineage);
        }
        drop(known);
        let (_, lineage) = load(store, system)?;
        // An enrollment that commits meanwhile sets its lineage after committing, so a value
        // read before it never replaces the newer one.
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        Ok(*known.entry(system.to_owned()).or_insert(lineage))
    }

    /// Records that `system` moved to `lineage` (after its batch committed).
    pub(crate) fn set(&self, system: &str, lineage: Lineage) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        known.insert(system.to_owned(), lineage);
    }

    /// Reads `system`'s lineage again from the store and keeps it, after a batch that may or
    /// may not have committed; forgets it if the store cannot be read.
    pub(crate) fn reload(&self, store: &dyn Store, system: &str) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        match load(store, system) {
            Ok((_, lineage)) => known.insert(system.to_owned(), lineage),
            Err(_) => known.remove(system),
        };
    }
}

/// The stored lineage of `system`, with its bytes for a compare-and-swap.
pub(crate) fn load(store: &dyn Store, system: &str) -> Result<(Option<Vec<u8>>, Lineage), Error> {
    let key = records::lineage_key(system);
    let Some(value) = store.get(&key)? else {
        return Ok((None, Lineage::default()));
    };
    let record: LineageRecord = records::decode(&key, &value)?;
    let lineage = Lineage {
        generation: record.generation,
        key_floor: record.key_floor,
    };
    Ok((Some(value), lineage))
}

/// Prepares moving `system` to its next generation (`reenrollment`: `None` for a first
/// enrollment, else whether keys are carried over).
pub(crate) fn advance(
    store: &dyn Store,
    system: &str,
    reenrollment: Option<bool>,
) -> Result<Advance, Error> {
    let (stored, current) = load(store, system)?;
    let next = current.next(reenrollment)?;
    let record = records::encode(&LineageRecord {
        generation: next.generation,
        key_floor: next.key_floor,
    })?;
    Ok(Advance {
        key: records::lineage_key(system),
        stored,
        previous: current,
        next,
        record,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn first_enrollment_keeps_keys_made_before_it() {
        let first = Lineage::default().next(None).unwrap();
        assert_eq!(
            first,
            Lineage {
                generation: 1,
                key_floor: 0
            }
        );
        assert!(first.reaches(1, 0));
        assert!(first.reaches(1, 1));
    }

    #[test]
    fn re_enrollment_withholds_earlier_keys_unless_carried() {
        let first = Lineage::default().next(None).unwrap();
        let fresh = first.next(Some(false)).unwrap();
        assert!(!fresh.reaches(2, 1), "keys of the earlier life");
        assert!(fresh.reaches(2, 2));
        assert!(!fresh.reaches(1, 1), "an old certificate reaches nothing");
        let carried = first.next(Some(true)).unwrap();
        assert!(carried.reaches(2, 1));
        assert!(carried.reaches(2, 0));
        assert!(!carried.reaches(1, 1));
        assert!(!carried.reaches(2, 3), "keys of a later generation");
    }
}
