//! The key-usage ledger: who used which key for what, minute by minute (`kms.key.use`).
//!
//! Every authorized Encrypt, Decrypt, GenerateDataKey, Sign, Verify and GetPublicKey is counted
//! in memory per (minute, caller, key, operation), with how many of them failed. The ledger
//! writes two kinds of record, actor the caller and target the key:
//!
//! - `tally=first`: the first use in a minute by a caller of a key for an operation, made
//!   durable **before that call is answered** (concurrent first uses wait for the same write).
//!   If it cannot be written the call is answered `Unavailable` instead of its result (fail
//!   closed). Later uses in the minute only touch the in-memory counter: a lock, two map lookups
//!   and an atomic load, so the ledger costs nothing measurable at full speed.
//! - `tally=more`: the remaining uses of the minute, written in one batch for all callers and
//!   keys within [`FLUSH_INTERVAL`] after the minute ends, and on shutdown.
//!
//! `count` (and `failed`) add up: the sum over a minute's records is the number of uses. What a
//! `kill -9` can lose is therefore bounded and stated: the `more` counts of the minute in
//! progress (and of the one before, if it ended less than [`FLUSH_INTERVAL`] ago), never the
//! fact that a caller used a key for an operation in a given minute. "Who decrypted with key K
//! last Tuesday" is answered by the `kms.key.use` records with target K and `operation=decrypt`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use govtrust_kms::KeyId;
use govtrust_store::AuditEvent;
use tokio::sync::OnceCell;
use tonic::Status;

use super::journal::Journal;

/// How often ended minutes are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);
const MINUTE_MS: i64 = 60_000;

/// What a key was used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Encrypt,
    Decrypt,
    GenerateDataKey,
    Sign,
    Verify,
    PublicKey,
}

impl Operation {
    const ALL: [Operation; 6] = [
        Operation::Encrypt,
        Operation::Decrypt,
        Operation::GenerateDataKey,
        Operation::Sign,
        Operation::Verify,
        Operation::PublicKey,
    ];

    fn name(self) -> &'static str {
        match self {
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
            Operation::GenerateDataKey => "generate-data-key",
            Operation::Sign => "sign",
            Operation::Verify => "verify",
            Operation::PublicKey => "public-key",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The uses of one key by one caller for one operation in one minute.
struct Uses {
    count: u64,
    failed: u64,
    /// Whether the use the `first` record stands for failed.
    first_failed: bool,
    /// Set once the `first` record is durable.
    first: Arc<OnceCell<()>>,
}

/// Per caller, per key id, per operation.
type Table = HashMap<String, HashMap<String, [Option<Uses>; Operation::ALL.len()]>>;

/// The uses of one minute.
#[derive(Default)]
struct Minute {
    /// Minutes since the Unix epoch.
    index: i64,
    uses: Table,
}

impl Minute {
    fn new(index: i64) -> Self {
        Self {
            index,
            uses: Table::new(),
        }
    }

    /// Counts one use; the `first` record to make durable if it is not yet.
    fn count(&mut self, call: &Use<'_>, failed: bool, at_ms: i64) -> Option<Pending> {
        let keys = match self.uses.get_mut(call.caller) {
            Some(keys) => keys,
            None => self.uses.entry(call.caller.to_owned()).or_default(),
        };
        let slots = match keys.get_mut(call.key) {
            Some(slots) => slots,
            None => keys.entry(call.key.to_owned()).or_default(),
        };
        let uses = slots[call.operation.index()].get_or_insert_with(|| Uses {
            count: 0,
            failed: 0,
            first_failed: failed,
            first: Arc::new(OnceCell::new()),
        });
        uses.count = uses.count.saturating_add(1);
        uses.failed = uses.failed.saturating_add(u64::from(failed));
        if uses.first.initialized() {
            return None;
        }
        let first = Tally {
            count: 1,
            failed: u64::from(uses.first_failed),
            tally: "first",
        };
        Some(Pending {
            cell: uses.first.clone(),
            event: event(self.index, call, &first, at_ms),
        })
    }

    /// The `more` records of this minute (and the `first` ones never written), stamped `at_ms`:
    /// when they are written, so the log's times stay in order.
    fn summaries(&self, at_ms: i64) -> Vec<AuditEvent> {
        let mut events = Vec::new();
        for (caller, keys) in &self.uses {
            for (key, slots) in keys {
                for (operation, uses) in Operation::ALL.iter().zip(slots) {
                    let Some(uses) = uses else { continue };
                    let call = Use {
                        caller,
                        key,
                        operation: *operation,
                    };
                    if let Some(rest) = rest(uses) {
                        events.push(event(self.index, &call, &rest, at_ms));
                    }
                }
            }
        }
        events
    }
}

/// What a record accounts for.
struct Tally {
    count: u64,
    failed: u64,
    tally: &'static str,
}

/// The uses not yet accounted for by a durable `first` record.
fn rest(uses: &Uses) -> Option<Tally> {
    let tally = match uses.first.initialized() {
        true => Tally {
            count: uses.count.saturating_sub(1),
            failed: uses.failed.saturating_sub(u64::from(uses.first_failed)),
            tally: "more",
        },
        // The first record was never written (its write failed): this one carries all.
        false => Tally {
            count: uses.count,
            failed: uses.failed,
            tally: "more",
        },
    };
    (tally.count > 0).then_some(tally)
}

fn event(minute: i64, call: &Use<'_>, tally: &Tally, at_ms: i64) -> AuditEvent {
    let start = u64::try_from(minute.saturating_mul(MINUTE_MS)).unwrap_or(0);
    let start = crate::rfc3339::format(std::time::UNIX_EPOCH + Duration::from_millis(start));
    AuditEvent::new(at_ms, "kms.key.use", call.caller, call.key)
        .with("operation", call.operation.name())
        .with("minute", start)
        .with("count", tally.count.to_string())
        .with("failed", tally.failed.to_string())
        .with("tally", tally.tally)
}

/// One use, as the handler names it.
struct Use<'a> {
    caller: &'a str,
    key: &'a str,
    operation: Operation,
}

/// A `first` record some call must make durable before it is answered.
struct Pending {
    cell: Arc<OnceCell<()>>,
    event: AuditEvent,
}

/// The minute being counted and the ended ones not yet written.
#[derive(Default)]
struct Minutes {
    current: Minute,
    ended: Vec<Minute>,
}

impl Minutes {
    /// The minute `index`, ending the current one if it is older.
    fn at(&mut self, index: i64) -> &mut Minute {
        if self.current.index < index {
            self.end(index);
        }
        &mut self.current
    }

    fn end(&mut self, next: i64) {
        let ended = std::mem::replace(&mut self.current, Minute::new(next));
        if !ended.uses.is_empty() {
            self.ended.push(ended);
        }
    }
}

/// The ledger: one per server.
pub struct Ledger {
    journal: Journal,
    minutes: Mutex<Minutes>,
}

impl Ledger {
    pub fn new(journal: Journal) -> Self {
        Self {
            journal,
            minutes: Mutex::new(Minutes::default()),
        }
    }

    /// Counts `caller`'s use of `key` for `operation`, whose result is `outcome`, and passes the
    /// outcome on once the use is accountable.
    pub async fn record<T>(
        &self,
        caller: &str,
        key: &KeyId,
        operation: Operation,
        outcome: Result<T, Status>,
    ) -> Result<T, Status> {
        let call = Use {
            caller,
            key: key.as_str(),
            operation,
        };
        let at_ms = self.journal.now_ms();
        if let Some(pending) = self.count(&call, outcome.is_err(), at_ms) {
            self.make_durable(pending).await?;
        }
        outcome
    }

    fn count(&self, call: &Use<'_>, failed: bool, at_ms: i64) -> Option<Pending> {
        let minute = at_ms.div_euclid(MINUTE_MS);
        self.minutes().at(minute).count(call, failed, at_ms)
    }

    /// The counters. Every update leaves them consistent, so a panic elsewhere while the lock
    /// was held (poisoning it) does not make them unusable.
    fn minutes(&self) -> std::sync::MutexGuard<'_, Minutes> {
        self.minutes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn make_durable(&self, pending: Pending) -> Result<(), Status> {
        let Pending { cell, event } = pending;
        let write = || self.journal.write(vec![event.clone()]);
        cell.get_or_try_init(write)
            .await
            .map(drop)
            .map_err(|error| {
                tracing::error!(error = format!("{error:#}"), "cannot record a key use");
                Status::unavailable(
                    "this key use cannot be recorded in the audit log, so its result is withheld; \
                 the server log has the details",
                )
            })
    }

    /// Writes the counts of ended minutes (all minutes with `everything`, at shutdown).
    pub async fn flush(&self, everything: bool) {
        let now_ms = self.journal.now_ms();
        let now = now_ms.div_euclid(MINUTE_MS);
        let ended = {
            let mut minutes = self.minutes();
            if everything || minutes.current.index < now {
                minutes.end(now);
            }
            std::mem::take(&mut minutes.ended)
        };
        let events: Vec<AuditEvent> = ended.iter().flat_map(|m| m.summaries(now_ms)).collect();
        if let Err(error) = self.journal.write(events).await {
            tracing::error!(
                error = format!("{error:#}"),
                "cannot write key-usage counts; keeping them to retry"
            );
            let mut minutes = self.minutes();
            let newer = std::mem::replace(&mut minutes.ended, ended);
            minutes.ended.extend(newer);
        }
    }

    /// Writes ended minutes every [`FLUSH_INTERVAL`], for ever.
    pub async fn run(self: Arc<Self>) {
        let mut interval = tokio::time::interval(FLUSH_INTERVAL);
        loop {
            interval.tick().await;
            self.flush(false).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use govtrust_audit::{AuditLog, Record};
    use govtrust_kms::Clock;
    use govtrust_store::{MemoryStore, Store};

    use super::*;

    struct FixedClock(Mutex<SystemTime>);

    impl Clock for FixedClock {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    const KEY: &str = "k-0123456789abcdef0123456789abcdef";

    fn ledger() -> (Ledger, AuditLog, Arc<FixedClock>) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let log = AuditLog::new(store.clone());
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = Arc::new(FixedClock(Mutex::new(start)));
        let journal = Journal::new(store, Arc::new(log.clone()), clock.clone());
        (Ledger::new(journal), log, clock)
    }

    fn detail<'a>(record: &'a Record, name: &str) -> &'a str {
        record
            .details
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    async fn uses(ledger: &Ledger, caller: &str, operation: Operation, n: usize, fail: bool) {
        let key = KeyId::parse(KEY).unwrap();
        for _ in 0..n {
            let outcome = if fail {
                Err(Status::invalid_argument("bad aad"))
            } else {
                Ok(())
            };
            let _ = ledger.record(caller, &key, operation, outcome).await;
        }
    }

    #[tokio::test]
    async fn the_first_use_is_durable_at_once_and_the_rest_is_counted_per_minute() {
        let (ledger, log, clock) = ledger();
        uses(&ledger, "a", Operation::Decrypt, 5, false).await;
        uses(&ledger, "a", Operation::Decrypt, 2, true).await;
        uses(&ledger, "b", Operation::Encrypt, 1, false).await;
        let written = log.records(0, 100).unwrap();
        assert_eq!(
            written.len(),
            2,
            "one first-use record per caller and operation"
        );
        assert_eq!(written[0].action, "kms.key.use");
        assert_eq!(written[0].actor, "a");
        assert_eq!(written[0].target, KEY);
        assert_eq!(detail(&written[0], "operation"), "decrypt");
        assert_eq!(detail(&written[0], "tally"), "first");

        ledger.flush(false).await;
        assert_eq!(
            log.records(0, 100).unwrap().len(),
            2,
            "the minute is not over"
        );
        *clock.0.lock().unwrap() += Duration::from_secs(60);
        ledger.flush(false).await;
        let written = log.records(0, 100).unwrap();
        assert_eq!(written.len(), 3, "b's single use needs no second record");
        assert_eq!(detail(&written[2], "tally"), "more");
        assert_eq!(detail(&written[2], "count"), "6");
        assert_eq!(detail(&written[2], "failed"), "2");
        assert_eq!(detail(&written[0], "minute"), detail(&written[2], "minute"));
    }

    #[tokio::test]
    async fn shutdown_writes_the_minute_in_progress_and_a_new_minute_starts_afresh() {
        let (ledger, log, clock) = ledger();
        uses(&ledger, "a", Operation::Sign, 3, false).await;
        ledger.flush(true).await;
        let written = log.records(0, 100).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(detail(&written[1], "count"), "2");
        *clock.0.lock().unwrap() += Duration::from_secs(60);
        uses(&ledger, "a", Operation::Sign, 1, false).await;
        let written = log.records(0, 100).unwrap();
        assert_eq!(
            written.len(),
            3,
            "the next minute's first use is recorded again"
        );
        assert_ne!(detail(&written[0], "minute"), detail(&written[2], "minute"));
    }

    #[tokio::test]
    async fn a_use_that_cannot_be_recorded_is_not_answered() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // An audit log that refuses every event stands for one that cannot be written.
        let log = AuditLog::new(store.clone()).with_event_limit(10);
        let journal = Journal::new(store, Arc::new(log), Arc::new(govtrust_kms::SystemClock));
        let ledger = Ledger::new(journal);
        let key = KeyId::parse(KEY).unwrap();
        let answer = ledger
            .record("a", &key, Operation::Decrypt, Ok("plaintext"))
            .await;
        assert_eq!(answer.unwrap_err().code(), tonic::Code::Unavailable);
    }
}
