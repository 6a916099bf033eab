//! [`RedbStore`]: the embedded [`Store`], one redb file, with group commit.
//!
//! Reads run on the calling thread, each in its own read transaction (a consistent snapshot).
//! Writes go to one writer thread, which owns the only write transaction:
//!
//! 1. it blocks for a batch, then takes every batch already queued behind it (at most
//!    [`MAX_GROUP`]): the group;
//! 2. it opens one write transaction with [`Durability::Immediate`] and applies the group's
//!    batches in arrival order. Each batch's conditions see the batches before it; a batch whose
//!    condition fails is rejected alone with [`Error::Conflict`];
//! 3. it commits once, so the whole group shares one fsync, and only then answers every caller.
//!    A group that writes nothing (only conflicts and empty batches) is not committed at all.
//!
//! If the transaction fails, every batch of the group gets [`Error::Backend`]. A failed redb
//! commit may still have reached the disk (redb does not promise a rollback); redb then refuses
//! further writes until the store is reopened.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};

use crate::apply::{self, Outcome, Sequences};
use crate::submitted::{Replier, Reply, Slot, Submitted};
use crate::{Batch, Committed, Entry, Error, Store, keys};

/// The one table: every key of the store.
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// A key or value of [`KV`], borrowed from a transaction.
type Guard<'a> = redb::AccessGuard<'a, &'static [u8]>;

/// At most this many batches share one write transaction.
const MAX_GROUP: usize = 1024;

/// A batch on its way to the writer, with the slot its answer goes to.
struct Request {
    batch: Batch,
    reply: Replier,
}

/// The redb backend. Dropping it stops the writer thread after the batches already queued.
pub struct RedbStore {
    db: Arc<Database>,
    /// `None` only while dropping.
    requests: Option<Sender<Request>>,
    /// `None` only while dropping.
    writer: Option<JoinHandle<()>>,
}

impl RedbStore {
    /// Opens the store at `path`, creating the file if it does not exist, and starts its writer
    /// thread. A file left by a crash is recovered (redb repairs it on open).
    pub fn open(path: &Path) -> Result<RedbStore, Error> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let db = Database::create(path).map_err(|e| failed(e.into()))?;
        create_table(&db).map_err(|e| failed(e.into()))?;
        let db = Arc::new(db);
        let (requests, queue) = mpsc::channel();
        let writer = Writer {
            db: Arc::clone(&db),
            sequences: Sequences::default(),
        };
        let writer = thread::Builder::new()
            .name("govtrust-store-writer".into())
            .spawn(move || writer.run(&queue))
            .map_err(|e| failed(e.into()))?;
        Ok(RedbStore {
            db,
            requests: Some(requests),
            writer: Some(writer),
        })
    }

    /// The table, in a fresh read transaction (which the table keeps alive).
    fn snapshot(&self) -> Result<ReadOnlyTable<&'static [u8], &'static [u8]>, Error> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| Error::backend("begin read transaction", e))?;
        txn.open_table(KV)
            .map_err(|e| Error::backend("open table kv to read", e))
    }
}

/// Creates the table, so read transactions always find it.
fn create_table(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(KV)?;
    txn.commit()?;
    Ok(())
}

impl Store for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let value = self
            .snapshot()?
            .get(key)
            .map_err(|e| Error::backend("read a key", e))?;
        Ok(value.map(|value| value.value().to_vec()))
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
        let table = self.snapshot()?;
        let range = table
            .range::<&[u8]>(bounds)
            .map_err(|e| Error::backend("scan", e))?;
        range
            .take(limit)
            .map(|entry| owned(entry, "scan"))
            .collect()
    }

    fn last(&self, prefix: &[u8]) -> Result<Option<Entry>, Error> {
        let end = keys::prefix_end(prefix);
        let Some(bounds) = keys::scan_bounds(prefix, None, end.as_deref()) else {
            return Ok(None);
        };
        let table = self.snapshot()?;
        let mut range = table
            .range::<&[u8]>(bounds)
            .map_err(|e| Error::backend("last", e))?;
        range
            .next_back()
            .map(|entry| owned(entry, "last"))
            .transpose()
    }

    fn commit(&self, batch: Batch) -> Result<Committed, Error> {
        self.submit(batch).wait()
    }

    fn submit(&self, batch: Batch) -> Submitted {
        let Some(requests) = self.requests.as_ref() else {
            return Submitted::ready(Err(Error::Closed));
        };
        let slot = Arc::new(Slot::default());
        let reply = Replier::new(&slot);
        // A failed send drops the request, whose replier answers `Closed`.
        let _ = requests.send(Request { batch, reply });
        Submitted::waiting(slot)
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer's loop once it has answered what is queued.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the store's writer thread panicked");
        }
    }
}

/// An entry of a redb range, copied out.
fn owned(
    entry: Result<(Guard<'_>, Guard<'_>), redb::StorageError>,
    context: &'static str,
) -> Result<Entry, Error> {
    let (key, value) = entry.map_err(|e| Error::backend(context, e))?;
    Ok((key.value().to_vec(), value.value().to_vec()))
}

/// The writer thread's state.
struct Writer {
    db: Arc<Database>,
    sequences: Sequences,
}

impl Writer {
    /// Writes groups until the store is dropped.
    fn run(mut self, queue: &Receiver<Request>) {
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            group.extend(queue.try_iter().take(MAX_GROUP - 1));
            tracing::trace!(batches = group.len(), "store group commit");
            let replies = self.write(&group);
            for (request, reply) in group.into_iter().zip(replies) {
                request.reply.send(reply);
            }
        }
    }

    /// Writes one group; one answer per batch, in order.
    fn write(&mut self, group: &[Request]) -> Vec<Reply> {
        match self.transact(group) {
            Ok(outcomes) => {
                self.sequences.commit();
                outcomes.into_iter().map(Outcome::into_result).collect()
            }
            Err(error) => {
                self.sequences.discard();
                let cause = describe(&error);
                tracing::error!(error = %cause, "store group commit failed");
                group
                    .iter()
                    .map(|_| Err(Error::backend("group commit", cause.clone())))
                    .collect()
            }
        }
    }

    /// Applies the group in one durable write transaction.
    fn transact(&mut self, group: &[Request]) -> Result<Vec<Outcome>, Error> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| Error::backend("begin write", e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| Error::backend("set durability", e))?;
        let outcomes = {
            let table = txn
                .open_table(KV)
                .map_err(|e| Error::backend("open table kv", e))?;
            let mut table = KvTable(table);
            let apply =
                |request: &Request| apply::apply(&mut table, &mut self.sequences, &request.batch);
            group.iter().map(apply).collect::<Result<Vec<_>, _>>()?
        };
        if !writes_anything(group, &outcomes) {
            // Only conflicts and checks: nothing to make durable, so no fsync.
            txn.abort()
                .map_err(|e| Error::backend("abort write transaction", e))?;
            return Ok(outcomes);
        }
        txn.commit()
            .map_err(|e| Error::backend("commit write transaction", e))?;
        Ok(outcomes)
    }
}

/// Whether some batch of the group was applied and has ops.
fn writes_anything(group: &[Request], outcomes: &[Outcome]) -> bool {
    let applied = |(request, outcome): (&Request, &Outcome)| {
        matches!(outcome, Outcome::Applied(_)) && !request.batch.ops.is_empty()
    };
    group.iter().zip(outcomes).any(applied)
}

/// An error and its sources, on one line, to hand to every caller of a failed group.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The table inside the writer's transaction.
struct KvTable<'txn>(redb::Table<'txn, &'static [u8], &'static [u8]>);

impl apply::Table for KvTable<'_> {
    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let value = self
            .0
            .get(key)
            .map_err(|e| Error::backend("read a condition's key", e))?;
        Ok(value.map(|value| value.value().to_vec()))
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let previous = self
            .0
            .insert(key, value)
            .map_err(|e| Error::backend("insert", e))?;
        Ok(previous.map(|previous| previous.value().to_vec()))
    }

    fn remove(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let previous = self
            .0
            .remove(key)
            .map_err(|e| Error::backend("remove", e))?;
        Ok(previous.map(|previous| previous.value().to_vec()))
    }

    fn last_sequence(&self, prefix: &[u8]) -> Result<Option<u64>, Error> {
        let ceiling = keys::sequence_ceiling(prefix);
        let bounds = keys::sequence_bounds(prefix, &ceiling);
        let range = self
            .0
            .range::<&[u8]>(bounds)
            .map_err(|e| Error::backend("find sequence", e))?;
        for entry in range.rev() {
            let (key, _) = entry.map_err(|e| Error::backend("find sequence", e))?;
            if let Some(seq) = keys::sequence_of(prefix, key.value()) {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }
}
