//! The audit log fails closed: a state change whose event the log refuses is not made.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use govtrust_audit::AuditLog;
use govtrust_kms::{Algorithm, KeySpec, KeyState, Kms, StateChange, SystemClock};
use govtrust_store::{Error as StoreError, MemoryStore, Store};

const OWNER: &str = "spiffe://gov.example/org/finance/sys/tax";

/// An unsealed centre whose audit log accepts events of at most `limit` bytes.
fn centre(limit: usize) -> (Kms, AuditLog) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let log = AuditLog::new(store.clone()).with_event_limit(limit);
    let shares = Kms::initialize(&*store, &log, &SystemClock, 2, 3).unwrap();
    let kms = Kms::open(store, Arc::new(log.clone()), Arc::new(SystemClock)).unwrap();
    for share in &shares[..2] {
        kms.unseal(share.contents.as_bytes()).unwrap();
    }
    (kms, log)
}

fn spec() -> KeySpec {
    KeySpec {
        algorithm: Algorithm::Aes256Gcm,
        exportable: false,
        owner: OWNER.to_owned(),
        owner_generation: 0,
        description: String::new(),
        pre_active: false,
        internal: false,
    }
}

#[test]
fn a_state_change_whose_event_is_refused_is_not_made() {
    let (kms, log) = centre(800);
    let key = kms.create_key(OWNER, spec()).unwrap();
    let before = log.records(0, 100).unwrap().len();

    let long_reason = "r".repeat(1000);
    let error = kms
        .set_state(OWNER, &key.id, StateChange::Suspend, &long_reason)
        .unwrap_err();
    assert!(
        matches!(
            error,
            govtrust_kms::Error::Store(StoreError::Encoding { .. })
        ),
        "{error}"
    );
    assert_eq!(
        kms.key(&key.id).unwrap().state,
        KeyState::Active,
        "the refused change was not made"
    );
    let records = log.records(0, 100).unwrap();
    assert_eq!(records.len(), before, "no event was written, empty or not");
    assert!(records.iter().all(|r| !r.action.is_empty()));

    kms.set_state(OWNER, &key.id, StateChange::Suspend, "short")
        .unwrap();
    assert_eq!(kms.key(&key.id).unwrap().state, KeyState::Suspended);
    let last = log.records(0, 100).unwrap().pop().unwrap();
    assert_eq!(last.action, "kms.key.state");
}
