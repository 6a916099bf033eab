//! How a [`Batch`] applies to a table: the one algorithm every embedded backend runs, so that
//! their semantics cannot drift apart.
//!
//! Conditions are checked first, against the table as it stands (which, inside a redb group,
//! includes the batches applied before this one). Then the ops apply in order. An op that cannot
//! apply (an exhausted append sequence) undoes the ops before it, so the batch is rejected whole.
//! A failing table (I/O) is reported as such: its state is then unknown and the caller must
//! abandon the transaction.

use std::collections::HashMap;

use crate::{Batch, Committed, Error, Op, keys};

/// At most this many prefixes keep a cached sequence; past it the cache starts over.
const MAX_CACHED_PREFIXES: usize = 4096;

/// The primitive operations a backend offers inside one write transaction.
pub(crate) trait Table {
    /// The value at `key`.
    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;
    /// Sets `key` to `value`, returning the previous value.
    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, Error>;
    /// Removes `key`, returning the previous value.
    fn remove(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;
    /// The sequence of the greatest appended key of `prefix` (see [`keys`]).
    fn last_sequence(&self, prefix: &[u8]) -> Result<Option<u64>, Error>;
}

/// What became of a batch whose table did not fail.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every op was written.
    Applied(Committed),
    /// Nothing of the batch is in the table; the caller gets this error.
    Rejected(Error),
}

impl Outcome {
    /// The answer for the caller of `commit`.
    pub(crate) fn into_result(self) -> Result<Committed, Error> {
        match self {
            Self::Applied(committed) => Ok(committed),
            Self::Rejected(error) => Err(error),
        }
    }
}

/// Applies `batch` to `table`, numbering appends with `sequences`.
///
/// `Err` means the table failed part-way: abandon the transaction and discard `sequences`'
/// pending numbers.
pub(crate) fn apply(
    table: &mut impl Table,
    sequences: &mut Sequences,
    batch: &Batch,
) -> Result<Outcome, Error> {
    for condition in &batch.conditions {
        if table.value(&condition.key)? != condition.expected {
            return Ok(Outcome::Rejected(Error::Conflict {
                key: condition.key.clone(),
            }));
        }
    }
    let mut undo = Undo::default();
    let mut appended = Vec::new();
    for op in &batch.ops {
        if let Err(rejection) = write(table, sequences, op, &mut undo, &mut appended)? {
            undo.roll_back(table, sequences)?;
            return Ok(Outcome::Rejected(rejection));
        }
    }
    Ok(Outcome::Applied(Committed { appended }))
}

/// Writes one op, recording what it overwrote. The inner `Err` rejects the batch.
fn write(
    table: &mut impl Table,
    sequences: &mut Sequences,
    op: &Op,
    undo: &mut Undo,
    appended: &mut Vec<Vec<u8>>,
) -> Result<Result<(), Error>, Error> {
    match op {
        Op::Put { key, value } => {
            undo.record(key.clone(), table.insert(key, value)?);
            sequences.forget(key);
        }
        Op::Delete { key } => {
            undo.record(key.clone(), table.remove(key)?);
            sequences.forget(key);
        }
        Op::Append { prefix, value } => {
            let Some(seq) = sequences.next(table, prefix)? else {
                return Ok(Err(exhausted(prefix)));
            };
            let key = keys::sequenced(prefix, seq);
            let previous = table.insert(&key, value)?;
            appended.push(key.clone());
            undo.record(key, previous);
        }
    }
    Ok(Ok(()))
}

/// The rejection of an append whose prefix already holds sequence `u64::MAX`.
fn exhausted(prefix: &[u8]) -> Error {
    let prefix = String::from_utf8_lossy(prefix);
    Error::backend(
        format!("append under prefix {prefix} rejected"),
        "the prefix's sequence numbers are exhausted",
    )
}

/// The previous values of the keys a batch wrote, to put back if the batch is rejected.
#[derive(Default)]
struct Undo {
    previous: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Undo {
    /// Remembers that `key` held `previous` before the write just made.
    fn record(&mut self, key: Vec<u8>, previous: Option<Vec<u8>>) {
        self.previous.push((key, previous));
    }

    /// Restores every recorded key, newest first.
    fn roll_back(self, table: &mut impl Table, sequences: &mut Sequences) -> Result<(), Error> {
        for (key, previous) in self.previous.into_iter().rev() {
            match previous {
                Some(value) => table.insert(&key, &value)?,
                None => table.remove(&key)?,
            };
            sequences.forget(&key);
        }
        Ok(())
    }
}

/// A cache of the last sequence of each prefix, so an append need not search the table.
///
/// Numbers assigned inside a transaction stay pending until [`Sequences::commit`] (the
/// transaction is durable) or [`Sequences::discard`] (it was abandoned), so a failed group never
/// leaves the cache ahead of the table. A write of a key that could be an appended key of a
/// prefix makes the prefix unknown again, so puts and deletes of such keys keep the exact
/// semantics of a table search.
#[derive(Debug, Default)]
pub(crate) struct Sequences {
    /// Last sequence per prefix, as of the last durable transaction.
    durable: HashMap<Vec<u8>, u64>,
    /// Changes of the transaction in progress; `None`: unknown, search the table.
    pending: HashMap<Vec<u8>, Option<u64>>,
}

impl Sequences {
    /// Takes the next sequence of `prefix`; `None` when it is exhausted.
    fn next(&mut self, table: &impl Table, prefix: &[u8]) -> Result<Option<u64>, Error> {
        let cached = match self.pending.get(prefix) {
            Some(pending) => *pending,
            None => self.durable.get(prefix).copied(),
        };
        let last = match cached {
            Some(last) => Some(last),
            None => table.last_sequence(prefix)?,
        };
        let next = last.unwrap_or(0).checked_add(1);
        self.pending.insert(prefix.to_vec(), next.or(last));
        Ok(next)
    }

    /// Marks unknown the prefix whose sequence a write of `key` may have changed.
    fn forget(&mut self, key: &[u8]) {
        let Some(prefix) = keys::sequence_prefix(key) else {
            return;
        };
        if self.pending.contains_key(prefix) || self.durable.contains_key(prefix) {
            self.pending.insert(prefix.to_vec(), None);
        }
    }

    /// The transaction is durable: its numbers become the cache.
    pub(crate) fn commit(&mut self) {
        for (prefix, last) in self.pending.drain() {
            match last {
                Some(last) => self.durable.insert(prefix, last),
                None => self.durable.remove(&prefix),
            };
        }
        if self.durable.len() > MAX_CACHED_PREFIXES {
            self.durable.clear();
        }
    }

    /// The transaction was abandoned: forgets its numbers.
    pub(crate) fn discard(&mut self) {
        self.pending.clear();
    }
}
