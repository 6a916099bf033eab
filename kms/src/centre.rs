//! [`Kms`]: the key-management centre's handle, its initialization and its seal.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use govtrust_store::{AuditEvent, AuditSink, Batch, Store};
use ring::rand::{SecureRandom, SystemRandom};

use crate::budget::EncryptionLimit;
use crate::cache::{Generation, KeyCache, LoadedKey, VersionKey};
use crate::master::MasterKey;
use crate::record::{self, KeyRecord, unix_ms};
use crate::seal::{Progress, SealConfig, Unsealed};
use crate::shares;
use crate::transfer::WrappingKey;
use crate::vault::{Change, Vault};
use crate::{Clock, Error, KeyId, SealStatus, ShareFile};

/// The key-management centre. `Send + Sync`; share it as `Arc<Kms>`.
///
/// It starts sealed ([`Kms::open`]); [`Kms::unseal`] takes custodian shares until the master key
/// is reconstructed. While sealed, every key operation returns [`Error::Sealed`].
pub struct Kms {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) clock: Arc<dyn Clock>,
    config: SealConfig,
    unsealed: OnceLock<Unsealed>,
    progress: Mutex<Progress>,
    pub(crate) cache: KeyCache,
    pub(crate) rng: SystemRandom,
    /// Encryptions per key version: see [`crate::budget`].
    pub(crate) limit: EncryptionLimit,
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
            unsealed: OnceLock::new(),
            progress: Mutex::new(Progress::default()),
            cache: KeyCache::new(),
            rng: SystemRandom::new(),
            limit: EncryptionLimit::default(),
        })
    }

    /// The centre with another encryption limit per key version than the default 2^30 (see
    /// [`EncryptionLimit`]); for tests, and for deployments that want a wider margin.
    pub fn with_encryption_limit(mut self, limit: EncryptionLimit) -> Kms {
        self.limit = limit;
        self
    }

    /// Where the seal stands.
    pub fn seal_status(&self) -> SealStatus {
        let progress = self
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        self.config.status(self.is_sealed(), progress)
    }

    /// True until enough shares have reconstructed the master key.
    pub fn is_sealed(&self) -> bool {
        self.unsealed.get().is_none()
    }

    /// Takes one custodian's share file.
    ///
    /// Rejects with [`Error::InvalidShare`] a damaged file (checksum), a share of another
    /// deployment, a share that is not the one issued for its index at initialization (its
    /// commitment in the seal configuration does not match: a forged or foreign share) and a
    /// share already given; a rejected share takes no place and the attempt keeps its progress.
    /// When `threshold` distinct shares are in, reconstructs the master key and checks it
    /// against the stored check value: on mismatch [`Error::UnsealFailed`] and the attempt
    /// starts over (with the commitments this means the seal configuration was altered; the
    /// check stays as defence in depth); on success the centre is unsealed and `kms.unseal`
    /// audited. When already unsealed, returns the status.
    ///
    /// `share` is secret: the caller should hold it in a zeroizing buffer. It is not copied
    /// here except into zeroizing buffers, and no error message echoes it.
    pub fn unseal(&self, share: &[u8]) -> Result<SealStatus, Error> {
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.is_sealed() {
            return Ok(self.config.status(false, 0));
        }
        progress.add(shares::parse(share, &self.config)?)?;
        if progress.len() >= usize::from(self.config.threshold) {
            let master = progress.combine(self.config.threshold);
            self.finish_unseal(master)?;
        }
        Ok(self.config.status(self.is_sealed(), progress.len()))
    }

    /// Checks a reconstructed master key and, when right, unseals with it.
    fn finish_unseal(&self, master: Option<MasterKey>) -> Result<(), Error> {
        let right = match &master {
            Some(master) => self.config.accepts(master)?,
            None => false,
        };
        let Some(master) = master.filter(|_| right) else {
            self.audit_now("kms.unseal.failed", "custodian", &self.config.deployment_id)?;
            return Err(Error::UnsealFailed {
                reason: "the shares do not reconstruct this deployment's master key".into(),
            });
        };
        let records = master.record_key(&self.config.deployment_id)?;
        let wrapping = Vault {
            store: &*self.store,
            key: &records,
        }
        .wrapping()?;
        self.audit_now("kms.unseal", "custodian", &self.config.deployment_id)?;
        // Cannot fail: `unseal` holds the progress lock and saw the centre sealed.
        let _ = self.unsealed.set(Unsealed { records, wrapping });
        tracing::info!(deployment = %self.config.deployment_id, "key-management centre unsealed");
        Ok(())
    }

    /// This deployment's id (`d-…`): the source centre named by the bundles it exports.
    pub(crate) fn deployment_id(&self) -> &str {
        &self.config.deployment_id
    }

    /// The unsealed state, or [`Error::Sealed`].
    pub(crate) fn unsealed(&self) -> Result<&Unsealed, Error> {
        self.unsealed.get().ok_or(Error::Sealed)
    }

    /// The store through the record key, or [`Error::Sealed`].
    pub(crate) fn vault(&self) -> Result<Vault<'_>, Error> {
        Ok(Vault {
            store: &*self.store,
            key: &self.unsealed()?.records,
        })
    }

    /// An audit event dated now.
    pub(crate) fn event(&self, action: &str, actor: &str, target: &str) -> AuditEvent {
        event(&*self.clock, action, actor, target)
    }

    /// Commits an audit event on its own.
    fn audit_now(&self, action: &str, actor: &str, target: &str) -> Result<(), Error> {
        let mut batch = Batch::new();
        self.audit
            .stage(&mut batch, &self.event(action, actor, target))?;
        self.store.commit(batch)?;
        Ok(())
    }

    /// The key `id`, from the cache or loaded into it.
    pub(crate) fn loaded(&self, id: &KeyId) -> Result<Arc<LoadedKey>, Error> {
        let vault = self.vault()?;
        if let Some(key) = self.cache.get(id) {
            return Ok(key);
        }
        // Taken before the store is read: see `cache`.
        let since = self.cache.generation(id);
        let record = vault.stored(id)?.record;
        self.refresh(&vault, record, since)
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
        Ok(self.cache.insert(LoadedKey { record, versions }, since))
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
        key: &records,
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
mod tests {
    use super::Kms;

    #[test]
    fn kms_is_send_and_sync() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Kms>();
    }
}
