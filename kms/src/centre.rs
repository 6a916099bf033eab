//! [`Kms`]: the key-management centre's handle, its initialization and its seal.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use govtrust_store::{AuditEvent, AuditSink, Batch, Store};
use ring::rand::{SecureRandom, SystemRandom};

use crate::budget::EncryptionLimit;
use crate::cache::{Generation, KeyCache, LoadedKey, VersionKey};
use crate::master::MasterKey;
use crate::record::{self, KeyRecord, unix_ms};
use crate::seal::{Progress, SealConfig, Unsealed};
use crate::shares;
use crate::throttle::Throttle;
use crate::transfer::WrappingKey;
use crate::vault::{Change, RecordKey, Vault};
use crate::{Clock, Error, KeyId, SealStatus, ShareFile};

/// How long an unseal attempt lasts after its first share, unless
/// [`Kms::with_unseal_timeout`] says otherwise.
pub const DEFAULT_UNSEAL_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The actor of unseal attempts: whoever holds a share (the share is the credential).
const CUSTODIAN: &str = "custodian";

/// The key-management centre. `Send + Sync`; share it as `Arc<Kms>`.
///
/// It starts sealed ([`Kms::open`]); [`Kms::unseal`] takes custodian shares until the master key
/// is reconstructed, [`Kms::seal`] drops it again. While sealed, every key operation returns
/// [`Error::Sealed`].
pub struct Kms {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) clock: Arc<dyn Clock>,
    config: SealConfig,
    /// What the unsealed centre holds; `None` while sealed. Every operation takes the read lock
    /// once (uncontended but for a seal or an unseal); a cached key is found under it.
    unsealed: RwLock<Option<Arc<Unsealed>>>,
    /// The unseal attempt; also serializes unseal and seal.
    progress: Mutex<Progress>,
    unseal_timeout: Duration,
    pub(crate) cache: KeyCache,
    pub(crate) rng: SystemRandom,
    /// Encryptions per key version: see [`crate::budget`].
    pub(crate) limit: EncryptionLimit,
    /// Bounds the records refused and ignored unseal attempts write.
    throttle: Throttle,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("status", &self.seal_status())
            .finish_non_exhaustive()
    }
}

impl Kms {
    /// Generates the master key, splits it `threshold`-of-`shares` (2 <= M <= N <= 16), stores
    /// the seal configuration (with a commitment to every share, see [`Kms::unseal`]) and the
    /// import wrapping key (sealed), and audits `kms.init`.
    ///
    /// The master key is never written anywhere; only the returned share files hold it.
    /// [`Error::AlreadyInitialized`] if a seal configuration exists.
    pub fn initialize(
        store: &dyn Store,
        audit: &dyn AuditSink,
        clock: &dyn Clock,
        threshold: u8,
        shares: u8,
    ) -> Result<Vec<ShareFile>, Error> {
        SealConfig::check_split(threshold, shares)?;
        if Self::is_initialized(store)? {
            return Err(Error::AlreadyInitialized);
        }
        let master = MasterKey::generate()?;
        let deployment = deployment_id()?;
        let dealt = shares::deal(&master, threshold, shares)?;
        let config = SealConfig::new(
            deployment.clone(),
            threshold,
            master.check_value(&deployment)?,
            shares::commitments(&deployment, &dealt),
        );
        let batch = init_batch(store, audit, clock, &master, &config)?;
        match store.commit(batch) {
            Err(govtrust_store::Error::Conflict { .. }) => Err(Error::AlreadyInitialized),
            other => other
                .map(|_| shares::render_all(&config, &dealt))
                .map_err(Error::from),
        }
    }

    /// True when a seal configuration exists.
    pub fn is_initialized(store: &dyn Store) -> Result<bool, Error> {
        Ok(store.get(record::SEAL_KEY)?.is_some())
    }

    /// Opens the centre, sealed. [`Error::NotInitialized`] when there is no seal configuration.
    pub fn open(
        store: Arc<dyn Store>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Result<Kms, Error> {
        let config = store.get(record::SEAL_KEY)?.ok_or(Error::NotInitialized)?;
        Ok(Kms {
            config: SealConfig::decode(&config)?,
            store,
            audit,
            clock,
            unsealed: RwLock::new(None),
            progress: Mutex::new(Progress::default()),
            unseal_timeout: DEFAULT_UNSEAL_TIMEOUT,
            cache: KeyCache::new(),
            rng: SystemRandom::new(),
            limit: EncryptionLimit::default(),
            throttle: Throttle::default(),
        })
    }

    /// Sets how long an unseal attempt lasts after its first share (default
    /// [`DEFAULT_UNSEAL_TIMEOUT`]): when it runs out, the shares given are forgotten.
    pub fn with_unseal_timeout(mut self, timeout: Duration) -> Kms {
        self.unseal_timeout = timeout;
        self
    }

    /// The centre with another encryption limit per key version than the default 2^30 (see
    /// [`EncryptionLimit`]); for tests, and for deployments that want a wider margin.
    pub fn with_encryption_limit(mut self, limit: EncryptionLimit) -> Kms {
        self.limit = limit;
        self
    }

    /// Where the seal stands. Reports an expired attempt as progress 0 and `progress_reset`.
    pub fn seal_status(&self) -> SealStatus {
        self.status_of(&self.progress())
    }

    /// True until enough shares have reconstructed the master key, and again after a seal.
    pub fn is_sealed(&self) -> bool {
        self.read_unsealed().is_none()
    }

    /// Takes one custodian's share file, from an unnamed place (`init`, dev mode); see
    /// [`Kms::unseal_from`].
    pub fn unseal(&self, share: &[u8]) -> Result<SealStatus, Error> {
        self.unseal_from(share, "local")
    }

    /// Takes one custodian's share file, sent from `peer` (an address, for the audit log).
    ///
    /// Rejects with [`Error::InvalidShare`] a damaged file (checksum), a share of another
    /// deployment, a share that is not the one issued for its index at initialization (its
    /// commitment in the seal configuration does not match: a forged or foreign share) and a
    /// share already given; a rejected share takes no place and the attempt keeps its progress.
    /// When `threshold` distinct shares are in, reconstructs the master key and checks it
    /// against the stored check value: on mismatch [`Error::UnsealFailed`] and the attempt
    /// starts over (with the commitments this means the seal configuration was altered; the
    /// check stays as defence in depth); on success the centre is unsealed. When already
    /// unsealed, returns the status.
    ///
    /// An attempt expires [`Kms::with_unseal_timeout`] after its first share: its shares are
    /// forgotten (`kms.unseal.expired`) and the next answer has `progress_reset`.
    ///
    /// Every attempt is audited, actor `custodian`, with the share's index and `peer`:
    /// `kms.unseal.share` (accepted, or ignored when already unsealed), `kms.unseal.rejected`
    /// (with the reason), `kms.unseal` (unsealed) or `kms.unseal.failed`. An accepted share
    /// whose event cannot be written is taken back, and the store's error returned.
    ///
    /// `share` is secret: the caller should hold it in a zeroizing buffer. It is not copied
    /// here except into zeroizing buffers, and no error message or event echoes it.
    pub fn unseal_from(&self, share: &[u8], peer: &str) -> Result<SealStatus, Error> {
        let mut progress = self.progress();
        self.expire(&mut progress)?;
        if !self.is_sealed() {
            let index = shares::claimed_index(share);
            let event =
                self.attempt_event("kms.unseal.share", index, peer, "ignored: already unsealed");
            self.commit_throttled(event)?;
            return Ok(self.answer(&mut progress));
        }
        let index = match self.take_share(&mut progress, share) {
            Ok(index) => index,
            Err(error) => return self.reject(share, peer, error),
        };
        if progress.len() >= usize::from(self.config.threshold) {
            let master = progress.combine(self.config.threshold);
            self.finish_unseal(master, index, peer)?;
        } else {
            let accepted = format!("accepted ({}/{})", progress.len(), self.config.threshold);
            self.audit_attempt("kms.unseal.share", Some(index), peer, &accepted)
                .inspect_err(|_| progress.remove(index))?;
        }
        Ok(self.answer(&mut progress))
    }

    /// Seals the centre at once: drops the record key, the import wrapping key and every cached
    /// key from memory (their buffers are zeroized; see [`crate::material`] for ring's key
    /// objects) and forgets an unseal attempt in progress. From now on every key operation is
    /// [`Error::Sealed`] until `threshold` shares unseal it again. Operations that began before
    /// finish with the keys they hold, which are dropped when the last of them ends.
    ///
    /// Audits `kms.seal` with `actor`, `peer` and `reason`. The centre is sealed even when
    /// the event cannot be written (sealing is the safe direction); the store's error is
    /// returned then, so the caller learns the event is missing. Sealing a sealed centre is
    /// allowed and audited too.
    pub fn seal(&self, actor: &str, peer: &str, reason: &str) -> Result<SealStatus, Error> {
        crate::keys::check_text("reason", reason)?;
        let mut progress = self.progress();
        let was_sealed = self.drop_unsealed().is_none();
        progress.clear();
        let event = self
            .event("kms.seal", actor, &self.config.deployment_id)
            .with("peer", peer)
            .with("reason", reason)
            .with("was", if was_sealed { "sealed" } else { "unsealed" });
        self.commit_event(&event)?;
        tracing::warn!(%actor, %peer, "key-management centre sealed");
        Ok(self.answer(&mut progress))
    }

    /// Forgets the shares of an unseal attempt that has expired, audited `kms.unseal.expired`;
    /// true when there was one. The server calls this periodically, so expired shares do not
    /// stay in memory until the next unseal call.
    pub fn expire_unseal_attempt(&self) -> Result<bool, Error> {
        self.expire(&mut self.progress())
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_unsealed(&self) -> std::sync::RwLockReadGuard<'_, Option<Arc<Unsealed>>> {
        self.unsealed.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The status with `progress` as it stands now.
    fn status_of(&self, progress: &Progress) -> SealStatus {
        let expired = progress.is_expired(self.clock.now(), self.unseal_timeout);
        let shares = if expired { 0 } else { progress.len() };
        let mut status = self.config.status(self.is_sealed(), shares);
        status.progress_reset = expired || progress.was_expired();
        status.attempt_expires_at = progress
            .expires_at(self.unseal_timeout)
            .filter(|_| !expired);
        status
    }

    /// The answer to an unseal or seal: the status, reporting (once) an attempt that expired.
    fn answer(&self, progress: &mut Progress) -> SealStatus {
        let reset = progress.take_expired();
        let mut status = self.status_of(progress);
        status.progress_reset = reset;
        status
    }

    /// Drops the shares of an expired attempt and audits it; true when there was one.
    fn expire(&self, progress: &mut Progress) -> Result<bool, Error> {
        let dropped = progress.expire(self.clock.now(), self.unseal_timeout);
        if dropped == 0 {
            return Ok(false);
        }
        let timeout = self.unseal_timeout.as_secs().to_string();
        let event = self
            .event("kms.unseal.expired", "govtrust", &self.config.deployment_id)
            .with("shares", dropped.to_string())
            .with("timeout_seconds", timeout);
        self.commit_event(&event)?;
        tracing::warn!(
            shares = dropped,
            "unseal attempt expired: its shares were forgotten"
        );
        Ok(true)
    }

    /// Parses `share` and adds it to the attempt; returns its index.
    fn take_share(&self, progress: &mut Progress, share: &[u8]) -> Result<u8, Error> {
        let share = shares::parse(share, &self.config)?;
        let index = share.index;
        progress.add(share, self.clock.now())?;
        Ok(index)
    }

    /// Audits a rejected share and returns `error`.
    fn reject<T>(&self, share: &[u8], peer: &str, error: Error) -> Result<T, Error> {
        let index = shares::claimed_index(share);
        let event = self
            .attempt_event("kms.unseal.rejected", index, peer, "rejected")
            .with("reason", error.to_string());
        if self.commit_throttled(event)? {
            tracing::warn!(%peer, %error, "unseal share rejected");
        }
        Err(error)
    }

    /// Commits a refused or ignored attempt's `event` unless the window's allowance is spent
    /// (see [`crate::throttle`]); true when it was written.
    fn commit_throttled(&self, event: AuditEvent) -> Result<bool, Error> {
        let Some(left_out) = self.throttle.admit(self.clock.now()) else {
            return Ok(false);
        };
        let event = match left_out {
            0 => event,
            n => event.with("suppressed", n.to_string()),
        };
        self.commit_event(&event)?;
        Ok(true)
    }

    /// Checks a reconstructed master key and, when right, unseals with it; `index` is the
    /// share that completed the attempt.
    fn finish_unseal(&self, master: Option<MasterKey>, index: u8, peer: &str) -> Result<(), Error> {
        let right = match &master {
            Some(master) => self.config.accepts(master)?,
            None => false,
        };
        let Some(master) = master.filter(|_| right) else {
            self.audit_attempt("kms.unseal.failed", Some(index), peer, "failed")?;
            return Err(Error::UnsealFailed {
                reason: "the shares do not reconstruct this deployment's master key".into(),
            });
        };
        let records = master.record_key(&self.config.deployment_id)?;
        let wrapping = Vault {
            store: &*self.store,
            key: RecordKey::Borrowed(&records),
        }
        .wrapping()?;
        self.audit_attempt("kms.unseal", Some(index), peer, "unsealed")?;
        let digests = master.digest_key(&self.config.deployment_id);
        let unsealed = Arc::new(Unsealed {
            records,
            wrapping,
            digests,
        });
        *self
            .unsealed
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(unsealed);
        tracing::info!(deployment = %self.config.deployment_id, "key-management centre unsealed");
        Ok(())
    }

    /// A keyed digest of `data`: HMAC-SHA256 under a key derived from the master key for
    /// `label` (HKDF-SHA256), 64 lowercase hex characters. For identifiers that must be found
    /// again but never stored in plain (a person's national ID): without the master key a copy
    /// of the store cannot test guesses against it. The same label and data give the same
    /// digest for the life of the deployment; another label gives an unrelated one.
    ///
    /// [`Error::Sealed`] while sealed. Neither `data` nor the digest is logged or audited here.
    pub fn keyed_digest(&self, label: &str, data: &[u8]) -> Result<String, Error> {
        let digest = self.unsealed()?.digests.digest(label, data)?;
        Ok(hex::encode(digest))
    }

    /// This deployment's id (`d-…`): the source centre named by the bundles it exports.
    pub(crate) fn deployment_id(&self) -> &str {
        &self.config.deployment_id
    }

    /// Takes the unsealed state out and empties the cache, under the write lock: no operation
    /// finds a cached key afterwards. Returns what was taken (dropped by the caller).
    fn drop_unsealed(&self) -> Option<Arc<Unsealed>> {
        let mut unsealed = self
            .unsealed
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let taken = unsealed.take();
        self.cache.clear();
        taken
    }

    /// An unseal attempt's event: actor `custodian`, the share's index and the peer.
    fn attempt_event(
        &self,
        action: &str,
        index: Option<u8>,
        peer: &str,
        outcome: &str,
    ) -> AuditEvent {
        let index = index.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
        self.event(action, CUSTODIAN, &self.config.deployment_id)
            .with("share", index)
            .with("peer", peer)
            .with("outcome", outcome)
    }

    /// Commits an unseal attempt's event on its own.
    fn audit_attempt(
        &self,
        action: &str,
        index: Option<u8>,
        peer: &str,
        outcome: &str,
    ) -> Result<(), Error> {
        self.commit_event(&self.attempt_event(action, index, peer, outcome))
    }

    /// The unsealed state, or [`Error::Sealed`]. Held by an operation until it ends.
    pub(crate) fn unsealed(&self) -> Result<Arc<Unsealed>, Error> {
        self.read_unsealed().clone().ok_or(Error::Sealed)
    }

    /// The store through the record key, or [`Error::Sealed`].
    pub(crate) fn vault(&self) -> Result<Vault<'_>, Error> {
        Ok(Vault {
            store: &*self.store,
            key: RecordKey::Unsealed(self.unsealed()?),
        })
    }

    /// An audit event dated now.
    pub(crate) fn event(&self, action: &str, actor: &str, target: &str) -> AuditEvent {
        event(&*self.clock, action, actor, target)
    }

    /// Commits an audit event on its own: a batch holding only the event.
    fn commit_event(&self, event: &AuditEvent) -> Result<(), Error> {
        let mut batch = Batch::new();
        self.audit.stage(&mut batch, event)?;
        self.store.commit(batch)?;
        Ok(())
    }

    /// The key `id`, from the cache or loaded into it.
    pub(crate) fn loaded(&self, id: &KeyId) -> Result<Arc<LoadedKey>, Error> {
        if let Some(key) = self.cached(id)? {
            return Ok(key);
        }
        let vault = self.vault()?;
        // Taken before the store is read: see `cache`.
        let since = self.cache.generation(id);
        let record = vault.stored(id)?.record;
        self.refresh(&vault, record, since)
    }

    /// The cached key `id`, looked up under the read lock; [`Error::Sealed`] while sealed.
    /// The hot path: one read lock, one map lookup.
    fn cached(&self, id: &KeyId) -> Result<Option<Arc<LoadedKey>>, Error> {
        let unsealed = self.read_unsealed();
        if unsealed.is_none() {
            return Err(Error::Sealed);
        }
        Ok(self.cache.get(id))
    }

    /// Changes the key `id` with [`Vault::update`] and caches the record written.
    pub(crate) fn change_key<F>(
        &self,
        vault: &Vault<'_>,
        id: &KeyId,
        change: F,
    ) -> Result<Arc<LoadedKey>, Error>
    where
        F: FnMut(&KeyRecord) -> Result<Change, Error>,
    {
        // Taken before the store is read: see `cache`.
        let since = self.cache.generation(id);
        let record = vault
            .update(&*self.audit, id, change)
            .inspect_err(|error| {
                if matches!(error, Error::Store(_)) {
                    // The change may have been committed all the same: see `cache`.
                    self.cache.invalidate(id);
                }
            })?;
        self.refresh(vault, record, since)
    }

    /// Loads `record`'s versions (reusing those already cached) and caches the result;
    /// `since` is the cache generation taken before `record` was read or written. When the
    /// versions cannot be loaded, invalidates `record`'s id, so that a writer that committed
    /// `record` leaves no older revision cached (see `cache`).
    pub(crate) fn refresh(
        &self,
        vault: &Vault<'_>,
        record: KeyRecord,
        since: Generation,
    ) -> Result<Arc<LoadedKey>, Error> {
        let versions = self
            .versions(vault, &record)
            .inspect_err(|_| self.cache.invalidate(&record.id))?;
        let id = record.id.clone();
        let key = self.cache.insert(LoadedKey { record, versions }, since);
        if !self.is_current(vault) {
            // A seal came between opening `vault` and the insert: keep nothing cached.
            self.cache.invalidate(&id);
        }
        Ok(key)
    }

    /// True when `vault` was opened on the unsealed state the centre holds now. A seal
    /// empties the cache after taking that state out, so an insert made afterwards by an
    /// operation that began before it is found here and undone.
    fn is_current(&self, vault: &Vault<'_>) -> bool {
        let current = self.read_unsealed();
        match (vault.unsealed(), current.as_ref()) {
            (Some(mine), Some(current)) => Arc::ptr_eq(mine, current),
            _ => false,
        }
    }

    /// `record`'s versions ready for use, reusing those already cached; none when destroyed.
    fn versions(
        &self,
        vault: &Vault<'_>,
        record: &KeyRecord,
    ) -> Result<BTreeMap<u32, Arc<VersionKey>>, Error> {
        let cached = self.cache.get(&record.id);
        let mut versions = BTreeMap::new();
        let live = record.destroyed_at_ms.is_none();
        for version in record.versions.iter().map(|v| v.version).filter(|_| live) {
            let reused = cached
                .as_ref()
                .and_then(|key| key.versions.get(&version).cloned());
            let loaded = match reused {
                Some(loaded) => loaded,
                None => Arc::new(vault.version_key(record, version, &self.rng)?),
            };
            versions.insert(version, loaded);
        }
        Ok(versions)
    }
}

/// The batch that initializes a deployment: seal configuration, wrapping key, `kms.init`.
fn init_batch(
    store: &dyn Store,
    audit: &dyn AuditSink,
    clock: &dyn Clock,
    master: &MasterKey,
    config: &SealConfig,
) -> Result<Batch, Error> {
    let records = master.record_key(&config.deployment_id)?;
    let mut batch = Batch::new();
    batch.expect_absent(record::SEAL_KEY);
    batch.put(record::SEAL_KEY, config.encode()?);
    Vault {
        store,
        key: RecordKey::Borrowed(&records),
    }
    .put_wrapping(&mut batch, &WrappingKey::generate())?;
    let event = event(clock, "kms.init", "govtrust", &config.deployment_id)
        .with("threshold", config.threshold.to_string())
        .with("shares", config.shares.to_string());
    audit.stage(&mut batch, &event)?;
    Ok(batch)
}

/// An audit event dated by `clock`.
fn event(clock: &dyn Clock, action: &str, actor: &str, target: &str) -> AuditEvent {
    let at = i64::try_from(unix_ms(clock.now())).unwrap_or(i64::MAX);
    AuditEvent::new(at, action, actor, target)
}

/// A fresh deployment id: `d-` and 32 hex characters.
fn deployment_id() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Crypto {
            context: "random deployment id",
        })?;
    Ok(format!("d-{}", hex::encode(bytes)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Weak;

    use govtrust_store::MemoryStore;

    use super::*;
    use crate::{Algorithm, KeySpec, SystemClock};

    #[test]
    fn kms_is_send_and_sync() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Kms>();
    }

    /// Drops events: these tests look at memory, not the log.
    struct NoAudit;

    impl AuditSink for NoAudit {
        fn stage(&self, _: &mut Batch, _: &AuditEvent) -> Result<(), govtrust_store::Error> {
            Ok(())
        }
    }

    /// An unsealed 2-of-2 centre with one cached AES key.
    fn unsealed_with_key() -> (Kms, Vec<ShareFile>, KeyId) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let shares = Kms::initialize(&*store, &NoAudit, &SystemClock, 2, 2).unwrap();
        let kms = Kms::open(store, Arc::new(NoAudit), Arc::new(SystemClock)).unwrap();
        for share in &shares {
            kms.unseal(share.contents.as_bytes()).unwrap();
        }
        let spec = KeySpec {
            algorithm: Algorithm::Aes256Gcm,
            exportable: false,
            owner: "spiffe://gov.example/person/x".into(),
            owner_generation: 0,
            description: String::new(),
            pre_active: false,
            internal: false,
        };
        let id = kms.create_key("test", spec).unwrap().id;
        kms.encrypt(&id, b"p", b"").unwrap();
        (kms, shares, id)
    }

    #[test]
    fn seal_drops_the_unsealed_state_and_every_cached_key() {
        let (kms, shares, id) = unsealed_with_key();
        let unsealed: Weak<Unsealed> = Arc::downgrade(&kms.unsealed().unwrap());
        let cached: Weak<LoadedKey> = Arc::downgrade(&kms.cache.get(&id).unwrap());
        kms.seal("test", "local", "").unwrap();
        assert!(
            unsealed.upgrade().is_none(),
            "the record key is still in memory"
        );
        assert!(
            cached.upgrade().is_none(),
            "a cached key is still in memory"
        );
        assert!(matches!(kms.encrypt(&id, b"p", b""), Err(Error::Sealed)));
        for share in &shares {
            kms.unseal(share.contents.as_bytes()).unwrap();
        }
        kms.encrypt(&id, b"p", b"").unwrap();
    }

    #[test]
    fn a_load_begun_before_a_seal_caches_nothing_after_it() {
        let (kms, _, id) = unsealed_with_key();
        kms.cache.invalidate(&id);
        // A reader opened the vault and read the record before the seal...
        let vault = kms.vault().unwrap();
        let since = kms.cache.generation(&id);
        let record = vault.stored(&id).unwrap().record;
        kms.seal("test", "local", "").unwrap();
        // ...and offers it after: it is served, not cached.
        let served = kms.refresh(&vault, record, since).unwrap();
        assert_eq!(served.record.id, id);
        drop(served);
        assert!(
            kms.cache.get(&id).is_none(),
            "a key was cached while sealed"
        );
        // A writer's fresh generation after the seal is refused too.
        let record = vault.stored(&id).unwrap().record;
        let since = kms.cache.generation(&id);
        kms.refresh(&vault, record, since).unwrap();
        assert!(
            kms.cache.get(&id).is_none(),
            "a key was cached while sealed"
        );
    }
}
