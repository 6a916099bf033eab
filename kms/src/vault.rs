//! The vault: sealed key records in the store, read and written through the record key.
//!
//! Every write is one store batch with the audit event staged into it. Changes to an existing key
//! are compare-and-swap on the sealed metadata bytes read before the change, and are rebuilt and
//! retried a few times when another writer got there first.

use std::sync::Arc;
use std::time::SystemTime;

use govtrust_store::{AuditEvent, AuditSink, Batch, Store};
use ring::rand::SystemRandom;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::budget::Budget;
use crate::cache::VersionKey;
use crate::material::Operator;
use crate::record::{self, KeyRecord};
use crate::seal::Unsealed;
use crate::sealed::SealingKey;
use crate::transfer::WrappingKey;
use crate::{Algorithm, Error, KeyId};

/// How many times a conflicting write is rebuilt before giving up.
const ATTEMPTS: usize = 8;

/// A key's metadata as read: the sealed bytes (for compare-and-swap) and the record.
pub(crate) struct Stored {
    pub(crate) raw: Vec<u8>,
    pub(crate) record: KeyRecord,
}

/// What a change to an existing key writes besides its metadata.
pub(crate) struct Change {
    pub(crate) record: KeyRecord,
    /// Further writes (material, indexes).
    pub(crate) batch: Batch,
    pub(crate) event: AuditEvent,
}

/// The store seen through the record key.
pub(crate) struct Vault<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) key: RecordKey<'a>,
}

/// The record key a vault seals and opens with.
pub(crate) enum RecordKey<'a> {
    /// A key the caller holds (initialization, unsealing).
    Borrowed(&'a SealingKey),
    /// The unsealed centre's, held for as long as the vault lives: a concurrent
    /// [`crate::Kms::seal`] cannot drop it from under an operation, it is dropped when the
    /// last operation that began before the seal ends.
    Unsealed(Arc<Unsealed>),
}

impl std::ops::Deref for RecordKey<'_> {
    type Target = SealingKey;

    fn deref(&self) -> &SealingKey {
        match self {
            Self::Borrowed(key) => key,
            Self::Unsealed(unsealed) => &unsealed.records,
        }
    }
}

impl Vault<'_> {
    /// The unsealed state this vault was opened on; `None` for a borrowed key.
    pub(crate) fn unsealed(&self) -> Option<&Arc<Unsealed>> {
        match &self.key {
            RecordKey::Borrowed(_) => None,
            RecordKey::Unsealed(unsealed) => Some(unsealed),
        }
    }
}

impl Vault<'_> {
    /// The metadata of `id`; `KeyNotFound` when there is none.
    pub(crate) fn stored(&self, id: &KeyId) -> Result<Stored, Error> {
        let raw = self
            .store
            .get(&record::meta_key(id))?
            .ok_or_else(|| Error::KeyNotFound { id: id.clone() })?;
        let record = self.open_meta(id, &raw)?;
        Ok(Stored { raw, record })
    }

    /// Unseals and decodes metadata found at `id`'s place.
    pub(crate) fn open_meta(&self, id: &KeyId, raw: &[u8]) -> Result<KeyRecord, Error> {
        let corrupt = |what: &str| Error::Corrupt {
            context: format!("metadata of key {id} {what}"),
        };
        let json = self
            .key
            .open(&record::meta_aad(id), raw)
            .ok_or_else(|| corrupt("does not unseal"))?;
        let record: KeyRecord =
            serde_json::from_slice(&json).map_err(|_| corrupt("does not decode"))?;
        if &record.id != id {
            return Err(corrupt("names another key"));
        }
        Ok(record)
    }

    /// Seals `value` as JSON bound to `aad`.
    pub(crate) fn seal_json<T: Serialize>(&self, aad: &[u8], value: &T) -> Result<Vec<u8>, Error> {
        let json = Zeroizing::new(serde_json::to_vec(value).map_err(|_| Error::Crypto {
            context: "encoding a record",
        })?);
        self.key.seal(aad, &json)
    }

    /// Unseals and decodes the JSON value `raw` found at `key`.
    pub(crate) fn open_json<T: DeserializeOwned>(
        &self,
        key: &[u8],
        aad: &[u8],
        raw: &[u8],
    ) -> Result<T, Error> {
        let corrupt = |what: &str| Error::Corrupt {
            context: format!("record {} {what}", String::from_utf8_lossy(key)),
        };
        let json = self
            .key
            .open(aad, raw)
            .ok_or_else(|| corrupt("does not unseal"))?;
        serde_json::from_slice(&json).map_err(|_| corrupt("does not decode"))
    }

    /// The sealed JSON value at `key` and its raw bytes (for compare-and-swap), if any.
    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        key: &[u8],
        aad: &[u8],
    ) -> Result<Option<(Vec<u8>, T)>, Error> {
        let Some(raw) = self.store.get(key)? else {
            return Ok(None);
        };
        let value = self.open_json(key, aad, &raw)?;
        Ok(Some((raw, value)))
    }

    fn seal_meta(&self, record: &KeyRecord) -> Result<Vec<u8>, Error> {
        let json = Zeroizing::new(serde_json::to_vec(record).map_err(|_| Error::Crypto {
            context: "encoding key metadata",
        })?);
        self.key.seal(&record::meta_aad(&record.id), &json)
    }

    /// The material of one version, unsealed.
    pub(crate) fn material(
        &self,
        id: &KeyId,
        version: u32,
        algorithm: Algorithm,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let corrupt = |what: &str| Error::Corrupt {
            context: format!("material of key {id} version {version} {what}"),
        };
        let sealed = self
            .store
            .get(&record::material_key(id, version))?
            .ok_or_else(|| corrupt("is missing"))?;
        let aad = record::material_aad(id, version, algorithm);
        self.key
            .open(&aad, &sealed)
            .ok_or_else(|| corrupt("does not unseal"))
    }

    /// One version loaded for use.
    pub(crate) fn version_key(
        &self,
        record: &KeyRecord,
        version: u32,
        rng: &SystemRandom,
    ) -> Result<VersionKey, Error> {
        let material = self.material(&record.id, version, record.algorithm)?;
        let operator =
            Operator::load(record.algorithm, &material, rng).ok_or_else(|| Error::Corrupt {
                context: format!(
                    "material of key {} version {version} is not a valid {} key",
                    record.id, record.algorithm
                ),
            })?;
        Ok(VersionKey {
            version,
            operator,
            budget: Budget::default(),
        })
    }

    /// Adds the sealed material of one version to `batch`.
    pub(crate) fn put_material(
        &self,
        batch: &mut Batch,
        record: &KeyRecord,
        version: u32,
        material: &[u8],
    ) -> Result<(), Error> {
        let aad = record::material_aad(&record.id, version, record.algorithm);
        batch.put(
            record::material_key(&record.id, version),
            self.key.seal(&aad, material)?,
        );
        Ok(())
    }

    /// Writes a new key: its metadata (which must not exist yet), version 1's material, the
    /// audit event and what `extra` builds (again on every attempt), in one batch.
    pub(crate) fn create(
        &self,
        audit: &dyn AuditSink,
        record: &KeyRecord,
        material: &[u8],
        event: &AuditEvent,
        mut extra: impl FnMut() -> Result<Batch, Error>,
    ) -> Result<(), Error> {
        self.commit_retrying(&record.id, || {
            let mut batch = extra()?;
            batch.expect_absent(record::meta_key(&record.id));
            batch.put(record::meta_key(&record.id), self.seal_meta(record)?);
            self.put_material(&mut batch, record, record.primary_version, material)?;
            audit.stage(&mut batch, event)?;
            Ok((batch, ()))
        })
    }

    /// Changes an existing key: reads its metadata, lets `change` decide, writes the result
    /// compare-and-swap with the audit event. Returns the record written.
    pub(crate) fn update<F>(
        &self,
        audit: &dyn AuditSink,
        id: &KeyId,
        mut change: F,
    ) -> Result<KeyRecord, Error>
    where
        F: FnMut(&KeyRecord) -> Result<Change, Error>,
    {
        self.commit_retrying(id, || {
            let stored = self.stored(id)?;
            let Change {
                mut record,
                mut batch,
                event,
            } = change(&stored.record)?;
            record.revision = stored.record.revision.saturating_add(1);
            batch.expect(record::meta_key(id), Some(stored.raw));
            batch.put(record::meta_key(id), self.seal_meta(&record)?);
            audit.stage(&mut batch, &event)?;
            Ok((batch, record))
        })
    }

    /// Stages `event` into `batch` with a guard that `id`'s metadata is still `stored`, and
    /// commits: an audited operation (export) that leaves the key's record as it was checked.
    pub(crate) fn audit_use(
        &self,
        audit: &dyn AuditSink,
        stored: &Stored,
        mut batch: Batch,
        event: &AuditEvent,
    ) -> Result<(), Error> {
        batch.expect(
            record::meta_key(&stored.record.id),
            Some(stored.raw.clone()),
        );
        audit.stage(&mut batch, event)?;
        match self.store.commit(batch) {
            Ok(_) => Ok(()),
            Err(govtrust_store::Error::Conflict { .. }) => Err(Error::Conflict {
                id: stored.record.id.clone(),
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Commits the batch `build` makes, building it again after a compare-and-swap conflict.
    fn commit_retrying<T>(
        &self,
        id: &KeyId,
        mut build: impl FnMut() -> Result<(Batch, T), Error>,
    ) -> Result<T, Error> {
        for attempt in 1..=ATTEMPTS {
            let (batch, value) = build()?;
            match self.store.commit(batch) {
                Ok(_) => return Ok(value),
                Err(govtrust_store::Error::Conflict { .. }) => {
                    tracing::debug!(key = %id, attempt, "key record changed concurrently; retrying");
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(Error::Conflict { id: id.clone() })
    }

    /// Up to `limit` key records after `start_after`, in id order.
    pub(crate) fn list(
        &self,
        start_after: Option<&KeyId>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, Error> {
        let start = start_after.map(record::meta_key);
        let entries = self
            .store
            .scan(record::META_PREFIX.as_bytes(), start.as_deref(), limit)?;
        entries
            .iter()
            .map(|(key, raw)| self.open_meta(&id_of(key)?, raw))
            .collect()
    }

    /// Ids of keys whose destruction is due at or before `now`, by the due index.
    pub(crate) fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<KeyId>, Error> {
        let entries = self
            .store
            .scan(record::DUE_PREFIX.as_bytes(), None, limit)?;
        let now_key = record::due_key(now, &KeyId::parse("k-ffffffffffffffffffffffffffffffff")?);
        let due = entries
            .into_iter()
            .take_while(|(key, _)| key.as_slice() <= now_key.as_slice());
        due.map(|(key, _)| id_of(&key)).collect()
    }

    /// Stores the import wrapping key, sealed, in `batch`.
    pub(crate) fn put_wrapping(
        &self,
        batch: &mut Batch,
        wrapping: &WrappingKey,
    ) -> Result<(), Error> {
        batch.put(
            record::WRAPPING_KEY,
            self.key
                .seal(record::WRAPPING_AAD, &wrapping.private_bytes())?,
        );
        Ok(())
    }

    /// The import wrapping key.
    pub(crate) fn wrapping(&self) -> Result<WrappingKey, Error> {
        let corrupt = |what: &str| Error::Corrupt {
            context: format!("import wrapping key {what}"),
        };
        let sealed = self
            .store
            .get(record::WRAPPING_KEY)?
            .ok_or_else(|| corrupt("is missing"))?;
        let private = self
            .key
            .open(record::WRAPPING_AAD, &sealed)
            .ok_or_else(|| corrupt("does not unseal"))?;
        WrappingKey::from_private(&private).ok_or_else(|| corrupt("is not an X25519 key"))
    }
}

/// The key id at the end of a store key (`kms/meta/<id>`, `kms/due/<date>/<id>`).
fn id_of(store_key: &[u8]) -> Result<KeyId, Error> {
    let text = String::from_utf8_lossy(store_key);
    let id = text.rsplit('/').next().unwrap_or_default();
    KeyId::parse(id).map_err(|_| Error::Corrupt {
        context: format!("store key {text} does not end in a key id"),
    })
}
