//! Key destruction: scheduled with a waiting period (7–30 days, default 30), cancellable while
//! pending, carried out by [`Kms::destroy_due`].
//!
//! While a destruction is pending every use of the key is refused and its state is left as it
//! was, so cancelling restores it. Destruction deletes every version's material from the store
//! and replaces the metadata with a tombstone (state destroyed, destroyed at), in one audited
//! batch; the cache entry is replaced by the tombstone, dropping (and zeroizing) the material.
//! Copies imported from bundles of the key are keys of their own and are not destroyed with it:
//! the scheduling and the destruction events list every bundle exported from the key
//! (`bundles`: bundle id > recipient) and the copies imported into this centre (`copies`), and
//! a bundle not yet imported can no longer be imported here (see [`crate::distribution`]).
//!
//! What "deleted from the store" does not mean: the material is sealed under the master key
//! (AES-256-GCM under the record key), and a delete only unlinks it. Until the database file is
//! compacted, freed pages may still hold the sealed bytes; copies of the database file (backups,
//! snapshots, replicas) keep them. Anyone who later holds such a copy *and* a threshold of
//! custodian shares can still open the destroyed material. This crate cannot compact: the store
//! trait has no such operation. The server should compact the database (redb
//! `Database::compact`; on PostgreSQL `VACUUM FULL`, where WAL archives are copies too) after
//! `destroy_due` destroyed keys, and backup retention decides how long copies keep the material.

use std::time::{Duration, SystemTime};

use govtrust_store::Batch;

use crate::error::rfc3339;
use crate::lifecycle;
use crate::record::{self, KeyRecord, unix_ms};
use crate::vault::{Change, Vault};
use crate::{Error, KeyId, KeyInfo, KeyState, Kms};

/// Default waiting period in days.
const DEFAULT_WAITING_DAYS: u32 = 30;
/// Allowed waiting periods in days.
const WAITING_DAYS: std::ops::RangeInclusive<u32> = 7..=30;
/// Most keys one `destroy_due` call destroys; the next call takes the rest.
const DUE_PER_CALL: usize = 1000;
/// Most versions deleted per key.
const MAX_VERSIONS: usize = 1 << 20;

impl Kms {
    /// Schedules destruction of `id` after `waiting_days` (7..=30; `None`: 30). Every use is
    /// refused from now on. Audits `kms.key.destroy.schedule`.
    pub fn schedule_destruction(
        &self,
        actor: &str,
        id: &KeyId,
        waiting_days: Option<u32>,
    ) -> Result<KeyInfo, Error> {
        self.schedule_destruction_approved(actor, id, waiting_days, &Batch::new())
    }

    /// [`Kms::schedule_destruction`] under dual control: `approval` holds the writes that mark
    /// the approved request executed; they commit in the scheduling's batch.
    pub fn schedule_destruction_approved(
        &self,
        actor: &str,
        id: &KeyId,
        waiting_days: Option<u32>,
        approval: &Batch,
    ) -> Result<KeyInfo, Error> {
        let due = self.due_date(waiting_days.unwrap_or(DEFAULT_WAITING_DAYS))?;
        let vault = self.vault()?;
        let key = self.change_key(&vault, id, |old| {
            lifecycle::check_alive(old)?;
            let record = KeyRecord {
                destruction_due_ms: Some(unix_ms(due)),
                ..old.clone()
            };
            let mut batch = approval.clone();
            batch.put(record::due_key(due, id), Vec::new());
            let event = self.event("kms.key.destroy.schedule", actor, id.as_str());
            let event = self.with_exports(&vault, id, event.with("due", rfc3339(due)))?;
            Ok(Change {
                record,
                batch,
                event,
            })
        })?;
        Ok(key.record.info())
    }

    /// The date `days` from now, after checking the waiting period.
    fn due_date(&self, days: u32) -> Result<SystemTime, Error> {
        let invalid = |reason: String| Error::InvalidArgument {
            field: "waiting_days",
            reason,
        };
        if !WAITING_DAYS.contains(&days) {
            return Err(invalid(format!(
                "{days} days: the waiting period is 7 to 30 days"
            )));
        }
        let waiting = Duration::from_secs(u64::from(days) * 86_400);
        let due = self.clock.now().checked_add(waiting);
        due.ok_or_else(|| invalid("the destruction date is out of range".into()))
    }

    /// Cancels a scheduled destruction; the key is usable again in the state it had. Audits
    /// `kms.key.destroy.cancel`.
    pub fn cancel_destruction(&self, actor: &str, id: &KeyId) -> Result<KeyInfo, Error> {
        let vault = self.vault()?;
        let key = self.change_key(&vault, id, |old| {
            lifecycle::check_not_destroyed(old)?;
            let due = old
                .destruction_due_ms
                .ok_or_else(|| Error::InvalidArgument {
                    field: "id",
                    reason: format!("key {id} has no destruction scheduled"),
                })?;
            let record = KeyRecord {
                destruction_due_ms: None,
                ..old.clone()
            };
            let mut batch = Batch::new();
            batch.delete(record::due_key(record::from_unix_ms(due), id));
            let event = self.event("kms.key.destroy.cancel", actor, id.as_str());
            Ok(Change {
                record,
                batch,
                event,
            })
        })?;
        Ok(key.record.info())
    }

    /// Destroys `id` at once, without the waiting period, on behalf of `actor`: only under dual
    /// control, so `approval` holds the writes that mark the approved request executed; they
    /// commit in the destruction's batch. Material is deleted and evicted as by
    /// [`Kms::destroy_due`], a tombstone remains, and `kms.key.destroy` names the actor, the
    /// reason and `immediate=true`. A key already destroyed fails with [`Error::KeyDestroyed`].
    pub fn destroy_now(
        &self,
        actor: &str,
        id: &KeyId,
        reason: &str,
        approval: &Batch,
    ) -> Result<KeyInfo, Error> {
        crate::keys::check_text("reason", reason)?;
        let vault = self.vault()?;
        let now = self.clock.now();
        let key = self.change_key(&vault, id, |old| {
            lifecycle::check_not_destroyed(old)?;
            let mut change = self.tombstone(&vault, old, now)?;
            change.batch.extend(approval.clone());
            change.event.actor = actor.to_owned();
            change.event = change
                .event
                .with("immediate", "true")
                .with("reason", reason);
            Ok(change)
        })?;
        tracing::info!(key = %id, actor, "key destroyed at once under dual control");
        Ok(key.record.info())
    }

    /// Destroys every key whose destruction date has passed: deletes its material from the
    /// store, leaves a tombstone, evicts the material from memory, audits `kms.key.destroy`.
    /// Returns the ids destroyed. The server calls this periodically.
    ///
    /// The material is sealed under the master key; until the database file is compacted,
    /// freed pages may still hold the sealed bytes; copies of the database file keep them. The
    /// caller should compact the store after a call that destroyed keys (see the module docs).
    ///
    /// A key whose record is corrupt or missing is skipped (and logged) so it cannot block the
    /// others.
    pub fn destroy_due(&self) -> Result<Vec<KeyId>, Error> {
        let vault = self.vault()?;
        let now = self.clock.now();
        let mut destroyed = Vec::new();
        for id in vault.due(now, DUE_PER_CALL)? {
            match self.destroy(&vault, &id, now) {
                Ok(true) => destroyed.push(id),
                Ok(false) | Err(Error::Conflict { .. }) => {}
                Err(error @ (Error::Corrupt { .. } | Error::KeyNotFound { .. })) => {
                    tracing::error!(key = %id, %error, "cannot destroy key");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(destroyed)
    }

    /// Destroys `id` if its destruction is due at `now`; false when it is not (any more).
    fn destroy(&self, vault: &Vault<'_>, id: &KeyId, now: SystemTime) -> Result<bool, Error> {
        if !is_due(&vault.stored(id)?.record, now) {
            return Ok(false);
        }
        self.change_key(vault, id, |old| {
            if !is_due(old, now) {
                // Cancelled since the check above; `destroy_due` skips it.
                return Err(Error::Conflict { id: id.clone() });
            }
            self.tombstone(vault, old, now)
        })?;
        tracing::info!(key = %id, "key destroyed");
        Ok(true)
    }

    /// The change that destroys `old`: material and due index deleted, tombstone written.
    fn tombstone(
        &self,
        vault: &Vault<'_>,
        old: &KeyRecord,
        now: SystemTime,
    ) -> Result<Change, Error> {
        let mut batch = Batch::new();
        for (key, _) in vault
            .store
            .scan(&record::material_prefix(&old.id), None, MAX_VERSIONS)?
        {
            batch.delete(key);
        }
        // The encryption counts stay: copies of this key's material imported here count
        // against them (see `crate::budget`), and would start afresh if they were gone.
        if let Some(due) = old.destruction_due_ms {
            batch.delete(record::due_key(record::from_unix_ms(due), &old.id));
        }
        let record = KeyRecord {
            state: KeyState::Destroyed,
            destruction_due_ms: None,
            destroyed_at_ms: Some(unix_ms(now)),
            ..old.clone()
        };
        let event = self
            .event("kms.key.destroy", "govtrust", old.id.as_str())
            .with("was", old.state.name());
        let event = self.with_exports(vault, &old.id, event)?;
        Ok(Change {
            record,
            batch,
            event,
        })
    }
}

/// True when `record`'s destruction is scheduled at or before `now` and not yet carried out.
fn is_due(record: &KeyRecord, now: SystemTime) -> bool {
    record.destroyed_at_ms.is_none()
        && record
            .destruction_due_ms
            .is_some_and(|due| due <= unix_ms(now))
}
