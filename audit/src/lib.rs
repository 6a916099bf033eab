//! The audit log of govtrust: a durable, append-only record of every security event.
//!
//! [`AuditLog`] implements [`govtrust_store::AuditSink`]: domain crates stage an event into the
//! batch that carries their state change, so the event is durable exactly when the change is,
//! and a change whose event cannot be written is not made (fail closed). Events are appended
//! under `audit/event/` with the store's per-prefix sequence and are never updated or deleted.
//!
//! What it does not do yet: tamper evidence. The RFC 6962 Merkle tree with signed tree heads,
//! inclusion and consistency proofs, and the MLPS compliance engine come with the audit issue.

use std::sync::Arc;

use govtrust_store::{AuditEvent, AuditSink, Batch, Store};
use serde::{Deserialize, Serialize};

/// The store prefix under which events are appended.
const PREFIX: &[u8] = b"audit/event/";

/// Why reading the audit log failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An entry does not decode: the log was altered outside govtrust.
    #[error("audit entry {sequence} is corrupt")]
    Corrupt {
        sequence: u64,
        #[source]
        source: serde_json::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] govtrust_store::Error),
}

/// One recorded event with its position in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the log, from 1, without gaps.
    pub sequence: u64,
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: i64,
    pub action: String,
    pub actor: String,
    pub target: String,
    pub details: Vec<(String, String)>,
}

/// The wire form of an event inside the store (the sequence is the key).
#[derive(Serialize, Deserialize)]
struct Encoded {
    at: i64,
    action: String,
    actor: String,
    target: String,
    details: Vec<(String, String)>,
}

/// The store-backed append-only audit log.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// The log kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Up to `limit` records with a sequence greater than `after`, oldest first.
    pub fn records(&self, after: u64, limit: usize) -> Result<Vec<Record>, Error> {
        let start = sequence_key(after);
        let entries = self.store.scan(PREFIX, Some(&start), limit)?;
        entries
            .iter()
            .map(|(key, value)| decode(key, value))
            .collect()
    }
}

impl AuditSink for AuditLog {
    fn stage(&self, batch: &mut Batch, event: &AuditEvent) -> Result<(), govtrust_store::Error> {
        let encoded = Encoded {
            at: event.at_unix_ms,
            action: event.action.clone(),
            actor: event.actor.clone(),
            target: event.target.clone(),
            details: event.details.clone(),
        };
        // Serializing a struct of strings and integers to JSON cannot fail.
        let value = serde_json::to_vec(&encoded).unwrap_or_default();
        batch.append(PREFIX, value);
        Ok(())
    }
}

fn sequence_key(sequence: u64) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn decode(key: &[u8], value: &[u8]) -> Result<Record, Error> {
    let sequence = key
        .get(PREFIX.len()..)
        .and_then(|tail| <[u8; 8]>::try_from(tail).ok())
        .map_or(0, u64::from_be_bytes);
    let encoded: Encoded =
        serde_json::from_slice(value).map_err(|source| Error::Corrupt { sequence, source })?;
    Ok(Record {
        sequence,
        at_unix_ms: encoded.at,
        action: encoded.action,
        actor: encoded.actor,
        target: encoded.target,
        details: encoded.details,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use govtrust_store::MemoryStore;

    #[test]
    fn staged_events_are_readable_in_order_after_commit() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let log = AuditLog::new(store.clone());
        for action in ["kms.init", "kms.unseal", "ca.enroll"] {
            let mut batch = Batch::new();
            log.stage(
                &mut batch,
                &AuditEvent::new(7, action, "custodian", "t").with("k", "v"),
            )
            .unwrap();
            store.commit(batch).unwrap();
        }
        let records = log.records(0, 10).unwrap();
        let actions: Vec<_> = records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["kms.init", "kms.unseal", "ca.enroll"]);
        assert_eq!(
            records.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(records[0].details, [("k".to_owned(), "v".to_owned())]);
        assert_eq!(log.records(2, 10).unwrap().len(), 1);
    }

    #[test]
    fn an_uncommitted_batch_leaves_no_event() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let log = AuditLog::new(store.clone());
        let mut batch = Batch::new();
        log.stage(&mut batch, &AuditEvent::new(1, "ca.enroll", "a", "b"))
            .unwrap();
        drop(batch);
        assert!(log.records(0, 10).unwrap().is_empty());
    }
}
