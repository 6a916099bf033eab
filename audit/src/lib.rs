//! The audit log of govtrust: a durable, append-only record of every security event.
//!
//! [`AuditLog`] implements [`govtrust_store::AuditSink`]: domain crates stage an event into the
//! batch that carries their state change, so the event is durable exactly when the change is,
//! and a change whose event cannot be written is not made (fail closed). Events are appended
//! under `audit/event/` with the store's per-prefix sequence and are never updated or deleted.
//!
//! An event is encoded before it joins the batch, and one the log cannot hold is refused with
//! [`govtrust_store::Error::Encoding`] (its source an [`Error`] saying why): an action that is not
//! a dotted lower-case name, an empty actor, or an encoding larger than the event limit (64 KiB by
//! default, so a page of events always fits a reply). The caller then drops its batch, so no
//! event is ever written empty or truncated and the state change it describes is not made.
//!
//! What it does not do yet: tamper evidence. The RFC 6962 Merkle tree with signed tree heads,
//! inclusion and consistency proofs, and the MLPS compliance engine come with the audit issue.

use std::sync::Arc;

use govtrust_store::{AuditEvent, AuditSink, Batch, Store};
use serde::{Deserialize, Serialize};

/// The store prefix under which events are appended.
const PREFIX: &[u8] = b"audit/event/";
/// Largest encoded event accepted by default, in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Why reading the audit log failed, or why an event was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event's action is not a dotted lower-case name such as `kms.key.create`.
    #[error("audit event action {action:?} is not a dotted lower-case name")]
    InvalidAction { action: String },
    /// An event names no actor.
    #[error("audit event {action} names no actor")]
    NoActor { action: String },
    /// An event's encoding is larger than the log accepts.
    #[error("audit event {action} encodes to {size} bytes, more than the limit of {limit}")]
    TooLarge {
        action: String,
        size: usize,
        limit: usize,
    },
    /// The encoder failed.
    #[error("audit event {action} cannot be encoded")]
    Encode {
        action: String,
        #[source]
        source: serde_json::Error,
    },
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
    max_event_bytes: usize,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// The log kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            max_event_bytes: MAX_EVENT_BYTES,
        }
    }

    /// The same log with a different limit on one encoded event, in bytes.
    pub fn with_event_limit(mut self, max_event_bytes: usize) -> Self {
        self.max_event_bytes = max_event_bytes;
        self
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
        let value = encode(event, self.max_event_bytes).map_err(|source| {
            govtrust_store::Error::Encoding {
                what: format!("audit event {}", printable(&event.action)),
                source: Box::new(source),
            }
        })?;
        batch.append(PREFIX, value);
        Ok(())
    }
}

/// The stored form of `event`, or why the log refuses it.
fn encode(event: &AuditEvent, limit: usize) -> Result<Vec<u8>, Error> {
    let action = || printable(&event.action);
    if !is_action(&event.action) {
        return Err(Error::InvalidAction { action: action() });
    }
    if event.actor.is_empty() {
        return Err(Error::NoActor { action: action() });
    }
    let encoded = Encoded {
        at: event.at_unix_ms,
        action: event.action.clone(),
        actor: event.actor.clone(),
        target: event.target.clone(),
        details: event.details.clone(),
    };
    let value = serde_json::to_vec(&encoded).map_err(|source| Error::Encode {
        action: action(),
        source,
    })?;
    match value.len() > limit {
        true => Err(Error::TooLarge {
            action: action(),
            size: value.len(),
            limit,
        }),
        false => Ok(value),
    }
}

/// Whether `action` is dotted lower-case words: `kms.key.create`, `authz.denied`.
fn is_action(action: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    action.len() <= 64 && action.split('.').all(word)
}

/// At most 64 characters of `text`, for error messages.
fn printable(text: &str) -> String {
    text.chars().take(64).collect()
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
    fn events_the_log_cannot_hold_are_refused_not_written_empty() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let log = AuditLog::new(store.clone()).with_event_limit(200);
        let refused = [
            AuditEvent::new(1, "", "a", "t"),
            AuditEvent::new(1, "Kms Key", "a", "t"),
            AuditEvent::new(1, "kms..key", "a", "t"),
            AuditEvent::new(1, "kms.key.create", "", "t"),
            AuditEvent::new(1, "kms.key.create", "a", "t").with("description", "x".repeat(300)),
        ];
        for event in &refused {
            let mut batch = Batch::new();
            batch.put(b"state/change".to_vec(), b"made".to_vec());
            let error = log.stage(&mut batch, event).unwrap_err();
            assert!(
                matches!(error, govtrust_store::Error::Encoding { .. }),
                "{error}"
            );
        }
        let mut batch = Batch::new();
        log.stage(
            &mut batch,
            &AuditEvent::new(1, "kms.key.create", "a", "t").with("description", "x".repeat(100)),
        )
        .unwrap();
        store.commit(batch).unwrap();
        let records = log.records(0, 10).unwrap();
        assert_eq!(records.len(), 1, "only the event that fits was written");
        assert_eq!(records[0].action, "kms.key.create");
    }

    #[test]
    fn a_too_large_event_names_its_size_and_the_limit() {
        let log = AuditLog::new(Arc::new(MemoryStore::new()));
        let event = AuditEvent::new(1, "ca.enroll", "a", "t").with("csr", "x".repeat(70_000));
        let error = log.stage(&mut Batch::new(), &event).unwrap_err();
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(
            source.contains("ca.enroll") && source.contains("65536"),
            "{source}"
        );
        assert!(
            error.to_string().contains("audit event ca.enroll"),
            "{error}"
        );
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
