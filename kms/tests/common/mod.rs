//! Shared fixtures: an audit sink that writes events into the batch, a clock that can be moved,
//! and an initialized, unsealed centre on a memory store.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use govtrust_kms::{Algorithm, Clock, EncryptionLimit, KeyId, KeySpec, Kms, ShareFile};
use govtrust_store::{AuditEvent, AuditSink, Batch, MemoryStore, Store};

pub const AUDIT_PREFIX: &[u8] = b"audit/";

/// Appends `action|actor|target` and a `|name=value` per detail to the batch, so only
/// committed events are seen.
#[derive(Default)]
pub struct TestAudit;

impl AuditSink for TestAudit {
    fn stage(&self, batch: &mut Batch, event: &AuditEvent) -> Result<(), govtrust_store::Error> {
        let mut line = format!("{}|{}|{}", event.action, event.actor, event.target);
        for (name, value) in &event.details {
            line.push_str(&format!("|{name}={value}"));
        }
        batch.append(AUDIT_PREFIX, line);
        Ok(())
    }
}

/// The actor, target and details of every committed event of `action`.
pub fn audit_events(store: &dyn Store, action: &str) -> Vec<BTreeMap<String, String>> {
    let of_action = audit_log(store)
        .into_iter()
        .filter(|line| line.split('|').next() == Some(action));
    of_action
        .map(|line| {
            let mut parts = line.split('|').skip(1);
            let mut event = BTreeMap::new();
            event.insert("actor".to_owned(), parts.next().unwrap().to_owned());
            event.insert("target".to_owned(), parts.next().unwrap().to_owned());
            for detail in parts {
                let (name, value) = detail.split_once('=').unwrap();
                event.insert(name.to_owned(), value.to_owned());
            }
            event
        })
        .collect()
}

/// Every committed audit event, as `action|actor|target`.
pub fn audit_log(store: &dyn Store) -> Vec<String> {
    let entries = store.scan(AUDIT_PREFIX, None, usize::MAX).unwrap();
    entries
        .into_iter()
        .map(|(_, v)| String::from_utf8(v).unwrap())
        .collect()
}

/// The actions of the committed audit events.
pub fn audit_actions(store: &dyn Store) -> Vec<String> {
    audit_log(store)
        .iter()
        .map(|l| l.split('|').next().unwrap().to_owned())
        .collect()
}

/// A clock that stands still until moved.
pub struct FakeClock(Mutex<SystemTime>);

impl FakeClock {
    pub fn new() -> FakeClock {
        FakeClock(Mutex::new(UNIX_EPOCH + Duration::from_secs(1_750_000_000)))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }

    pub fn advance_days(&self, days: u64) {
        *self.0.lock().unwrap() += Duration::from_secs(days * 86_400);
    }

    /// Now plus `days`, truncated to milliseconds as records store it.
    pub fn now_plus_days(&self, days: u64) -> SystemTime {
        let at = self.now() + Duration::from_secs(days * 86_400);
        let ms = at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        UNIX_EPOCH + Duration::from_millis(ms)
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// An initialized centre and what it was made with.
pub struct Centre {
    pub kms: Kms,
    pub store: Arc<dyn Store>,
    pub clock: Arc<FakeClock>,
    pub shares: Vec<ShareFile>,
}

impl Centre {
    /// A 3-of-5 centre on `store`, sealed.
    pub fn sealed_on(store: Arc<dyn Store>) -> Centre {
        let clock = Arc::new(FakeClock::new());
        let shares = Kms::initialize(&*store, &TestAudit, &*clock, 3, 5).unwrap();
        let kms = Kms::open(Arc::clone(&store), Arc::new(TestAudit), clock.clone()).unwrap();
        Centre {
            kms,
            store,
            clock,
            shares,
        }
    }

    /// A 3-of-5 centre on a memory store, sealed.
    pub fn sealed() -> Centre {
        Centre::sealed_on(Arc::new(MemoryStore::new()))
    }

    /// A 3-of-5 centre on a memory store, unsealed.
    pub fn unsealed() -> Centre {
        let centre = Centre::sealed();
        centre.unseal(&centre.kms);
        centre
    }

    /// Unseals `kms` with shares 1, 3 and 5.
    pub fn unseal(&self, kms: &Kms) {
        for index in [0, 2, 4] {
            kms.unseal(self.shares[index].contents.as_bytes()).unwrap();
        }
        assert!(!kms.is_sealed());
    }

    /// A 3-of-5 centre on a memory store, unsealed, with `limit` encryptions per key version.
    pub fn unsealed_with(limit: EncryptionLimit) -> Centre {
        let sealed = Centre::sealed();
        let centre = Centre {
            kms: sealed.reopen().with_encryption_limit(limit),
            ..sealed
        };
        centre.unseal(&centre.kms);
        centre
    }

    /// A new handle on the same store, as after a restart: sealed, empty cache.
    pub fn reopen(&self) -> Kms {
        Kms::open(
            Arc::clone(&self.store),
            Arc::new(TestAudit),
            self.clock.clone(),
        )
        .unwrap()
    }

    /// Creates an active key.
    pub fn create(&self, algorithm: Algorithm) -> KeyId {
        self.kms
            .create_key("spiffe://gov.example/admin", spec(algorithm))
            .unwrap()
            .id
    }

    /// Creates an exportable active key.
    pub fn create_exportable(&self, algorithm: Algorithm) -> KeyId {
        let spec = KeySpec {
            exportable: true,
            ..spec(algorithm)
        };
        self.kms
            .create_key("spiffe://gov.example/admin", spec)
            .unwrap()
            .id
    }
}

/// A spec for an active, non-exportable key.
pub fn spec(algorithm: Algorithm) -> KeySpec {
    KeySpec {
        algorithm,
        exportable: false,
        owner: "spiffe://gov.example/system/tax".into(),
        owner_generation: 0,
        description: "test key".into(),
        pre_active: false,
        internal: false,
    }
}

/// Rewrites one `name: value` line of a share file and recomputes the checksum, as a forger
/// who can edit the file would.
pub fn forge(share: &str, name: &str, value: &str) -> String {
    let mut lines: Vec<String> = share.lines().map(str::to_owned).collect();
    let prefix = format!("{name}: ");
    let line = lines.iter_mut().find(|l| l.starts_with(&prefix)).unwrap();
    *line = format!("{prefix}{value}");
    lines.pop();
    let mut body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let checksum = hex::encode(ring::digest::digest(&ring::digest::SHA256, body.as_bytes()));
    body.push_str(&format!("checksum: {checksum}\n"));
    body
}

/// The value of `name` in a share file.
pub fn field<'a>(share: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    share
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap()
}

/// An audit sink that can be made to fail, as a full or broken audit log would.
#[derive(Default)]
pub struct SwitchAudit(std::sync::atomic::AtomicBool);

impl SwitchAudit {
    pub fn fail(&self, fail: bool) {
        self.0.store(fail, std::sync::atomic::Ordering::SeqCst);
    }
}

impl AuditSink for SwitchAudit {
    fn stage(&self, batch: &mut Batch, event: &AuditEvent) -> Result<(), govtrust_store::Error> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(govtrust_store::Error::Closed);
        }
        TestAudit.stage(batch, event)
    }
}
