//! The storage layer of govtrust: a small ordered key-value [`Store`] trait and its backends.
//!
//! Every write is an atomic [`Batch`] of puts, deletes and appends, guarded by optional
//! compare-and-swap [`Condition`]s. A batch either applies whole or not at all, and a batch whose
//! `commit` returned `Ok` is durable: it survives `kill -9` and power loss (the backend has synced
//! it to stable storage before answering).
//!
//! Backends:
//! - [`MemoryStore`]: in memory, for unit tests of the domain crates.
//! - [`RedbStore`]: the embedded default, one file, ACID. Concurrent committers share one fsync
//!   (group commit): a dedicated writer thread drains every batch waiting, applies them in one
//!   write transaction and syncs once.
//!
//! [`conformance`] is the one test suite every backend must pass.
//!
//! What it does not do: interpret keys or values (domain crates own their encodings), or
//! encrypt (key records are sealed by the kms before they reach the store).

mod apply;
pub mod audit;
mod batch;
pub mod conformance;
mod error;
mod keys;
mod memory;
mod redb_store;
mod submitted;

pub use audit::{AuditEvent, AuditSink};
pub use batch::{Batch, Condition, Op};
pub use error::Error;
pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use submitted::Submitted;

/// A key-value pair returned by a scan.
pub type Entry = (Vec<u8>, Vec<u8>);

/// What a successful commit tells the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The full keys the batch's [`Op::Append`]s were written at, in batch order.
    pub appended: Vec<Vec<u8>>,
}

/// An ordered key-value store with atomic, durable batches.
///
/// Keys and values are bytes; keys sort lexicographically. Calls block: async callers run them
/// with `tokio::task::spawn_blocking`, except [`Store::submit`], whose answer can be awaited.
pub trait Store: Send + Sync + 'static {
    /// The value at `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;

    /// Up to `limit` entries whose key starts with `prefix`, in key order, starting strictly
    /// after `start_after` when given (for paging).
    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, Error>;

    /// The entry with the greatest key starting with `prefix`, if any.
    fn last(&self, prefix: &[u8]) -> Result<Option<Entry>, Error>;

    /// Applies `batch` atomically and durably.
    ///
    /// Every [`Condition`] is checked first, against the state left by all batches committed
    /// before this one; if one fails, nothing of the batch is applied and
    /// [`Error::Conflict`] names the key. When this returns `Ok`, the batch is on stable storage.
    fn commit(&self, batch: Batch) -> Result<Committed, Error>;

    /// [`Store::commit`] without holding the caller: the answer is awaited (or waited for)
    /// through the returned [`Submitted`]. Stores that commit on the caller's thread answer
    /// at once (the default).
    fn submit(&self, batch: Batch) -> Submitted {
        Submitted::ready(self.commit(batch))
    }
}
