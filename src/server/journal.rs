//! Audit events the server writes itself, outside any domain batch: refused calls
//! ([`super::refusals`]) and key use ([`super::usage`]).
//!
//! Events go through the same [`AuditSink`] as the domains' events, so they land in the one
//! log, in sequence, under the same encoding rules; each call to [`Journal::write`] is one
//! durable batch (concurrent writers share the store's group commit).

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use govtrust_kms::Clock;
use govtrust_store::{AuditEvent, AuditSink, Batch, Store};

/// Writes server-made audit events durably.
#[derive(Clone)]
pub struct Journal {
    store: Arc<dyn Store>,
    sink: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

impl Journal {
    pub fn new(store: Arc<dyn Store>, sink: Arc<dyn AuditSink>, clock: Arc<dyn Clock>) -> Self {
        Self { store, sink, clock }
    }

    /// The server's clock (the one the domains stamp their events with).
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Milliseconds since the Unix epoch on the server's clock.
    pub fn now_ms(&self) -> i64 {
        unix_ms(self.now())
    }

    /// Appends `events` in one batch; returns once they are on stable storage.
    pub async fn write(&self, events: Vec<AuditEvent>) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let journal = self.clone();
        tokio::task::spawn_blocking(move || journal.write_now(&events))
            .await
            .context("the audit writer task failed")?
    }

    fn write_now(&self, events: &[AuditEvent]) -> anyhow::Result<()> {
        let mut batch = Batch::new();
        for event in events {
            self.sink.stage(&mut batch, event)?;
        }
        self.store.commit(batch)?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch (0 before 1970, the maximum after year 292 million).
pub fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use govtrust_audit::AuditLog;
    use govtrust_kms::SystemClock;
    use govtrust_store::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn events_are_durable_in_the_log_and_a_refused_one_writes_none_of_its_batch() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let log = AuditLog::new(store.clone());
        let journal = Journal::new(store, Arc::new(log.clone()), Arc::new(SystemClock));
        let event = |action: &str| AuditEvent::new(journal.now_ms(), action, "a", "t");
        journal
            .write(vec![event("authz.denied"), event("kms.key.use")])
            .await
            .unwrap();
        assert!(
            journal
                .write(vec![event("authz.denied"), event("Not An Action")])
                .await
                .is_err()
        );
        let actions: Vec<String> = log
            .records(0, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(actions, ["authz.denied", "kms.key.use"]);
    }
}
