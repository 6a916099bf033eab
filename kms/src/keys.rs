//! Key management: creating, reading, listing, rotating keys and changing their state.

use govtrust_store::{AuditEvent, Batch};
use zeroize::Zeroizing;

use crate::lifecycle::{self, Usage};
use crate::material;
use crate::record::{KeyRecord, VersionRecord, unix_ms};
use crate::vault::{Change, Vault};
use crate::{Error, KeyId, KeyInfo, KeySpec, KeyState, Kms, StateChange};

/// Page size of `list_keys` when the caller asks for 0.
const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page `list_keys` returns.
const MAX_PAGE_SIZE: usize = 1000;
/// Longest owner, description or reason accepted, in bytes.
const MAX_TEXT_LEN: usize = 1024;

impl Kms {
    /// Creates a key with fresh material (version 1), active unless `spec.pre_active`.
    /// Audits `kms.key.create`.
    pub fn create_key(&self, actor: &str, spec: KeySpec) -> Result<KeyInfo, Error> {
        self.vault()?;
        let material = material::generate(spec.algorithm, &self.rng)?;
        let state = if spec.pre_active {
            KeyState::PreActive
        } else {
            KeyState::Active
        };
        self.insert_key(actor, "kms.key.create", &spec, state, &material)
    }

    /// Writes a new key with `material` as version 1, audited as `action`.
    fn insert_key(
        &self,
        actor: &str,
        action: &str,
        spec: &KeySpec,
        state: KeyState,
        material: &Zeroizing<Vec<u8>>,
    ) -> Result<KeyInfo, Error> {
        let record = self.new_record(spec, state, actor)?;
        let event = self.creation_event(action, actor, &record);
        self.store_new(record, material, &event, || Ok(Batch::new()))
    }

    /// Writes the new key `record` with `material` as its first version, the audit `event`
    /// and what `extra` adds (rebuilt on every attempt), in one batch; caches it.
    pub(crate) fn store_new(
        &self,
        record: KeyRecord,
        material: &Zeroizing<Vec<u8>>,
        event: &AuditEvent,
        extra: impl FnMut() -> Result<Batch, Error>,
    ) -> Result<KeyInfo, Error> {
        let vault = self.vault()?;
        let since = self.cache.generation(&record.id);
        vault.create(&*self.audit, &record, material, event, extra)?;
        Ok(self.refresh(&vault, record, since)?.record.info())
    }

    /// The audit event of a new key.
    pub(crate) fn creation_event(
        &self,
        action: &str,
        actor: &str,
        record: &KeyRecord,
    ) -> AuditEvent {
        self.event(action, actor, record.id.as_str())
            .with("algorithm", record.algorithm.name())
            .with("state", record.state.name())
            .with("exportable", record.exportable.to_string())
            .with("internal", record.internal.to_string())
            .with("owner", record.owner.clone())
    }

    /// The record of a new key, version 1, made by `actor`.
    pub(crate) fn new_record(
        &self,
        spec: &KeySpec,
        state: KeyState,
        actor: &str,
    ) -> Result<KeyRecord, Error> {
        check_text("owner", &spec.owner)?;
        check_text("description", &spec.description)?;
        let now = unix_ms(self.clock.now());
        Ok(KeyRecord {
            id: KeyId::generate()?,
            algorithm: spec.algorithm,
            state,
            primary_version: 1,
            versions: vec![VersionRecord {
                version: 1,
                created_at_ms: now,
            }],
            exportable: spec.exportable,
            owner: spec.owner.clone(),
            owner_generation: spec.owner_generation,
            description: spec.description.clone(),
            internal: spec.internal,
            created_at_ms: now,
            destruction_due_ms: None,
            destroyed_at_ms: None,
            revision: 0,
            created_by: actor.to_owned(),
            imported_from: None,
            budget_of: None,
            escrowed: false,
        })
    }

    /// A key's metadata; for a destroyed key, its tombstone.
    pub fn key(&self, id: &KeyId) -> Result<KeyInfo, Error> {
        Ok(self.loaded(id)?.record.info())
    }

    /// Up to `page_size` keys (0: 100, at most 1000) in id order, after `page_token`; and the
    /// token of the next page, if there may be one.
    pub fn list_keys(
        &self,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<KeyInfo>, Option<String>), Error> {
        let vault = self.vault()?;
        let size = if page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            page_size.min(MAX_PAGE_SIZE)
        };
        let after = page_token.map(page_token_id).transpose()?;
        let mut records = vault.list(after.as_ref(), size + 1)?;
        let more = records.len() > size;
        records.truncate(size);
        let next = records.last().filter(|_| more).map(|r| r.id.to_string());
        Ok((records.iter().map(KeyRecord::info).collect(), next))
    }

    /// Adds a new primary version with fresh material; older versions still decrypt and verify.
    /// Only active keys rotate. Audits `kms.key.rotate`.
    pub fn rotate_key(&self, actor: &str, id: &KeyId) -> Result<KeyInfo, Error> {
        let vault = self.vault()?;
        let key = self.change_key(&vault, id, |old| self.rotation(&vault, old, actor))?;
        Ok(key.record.info())
    }

    /// The change that adds a new primary version with fresh material to `old`.
    pub(crate) fn rotation(
        &self,
        vault: &Vault<'_>,
        old: &KeyRecord,
        actor: &str,
    ) -> Result<Change, Error> {
        lifecycle::check_usage(old, Usage::Rotate)?;
        let version =
            old.latest_version()
                .checked_add(1)
                .ok_or_else(|| Error::InvalidArgument {
                    field: "id",
                    reason: format!("key {} has no version numbers left", old.id),
                })?;
        let mut record = old.clone();
        let created_at_ms = unix_ms(self.clock.now());
        record.versions.push(VersionRecord {
            version,
            created_at_ms,
        });
        record.primary_version = version;
        let material = material::generate(record.algorithm, &self.rng)?;
        let mut batch = Batch::new();
        vault.put_material(&mut batch, &record, version, &material)?;
        let event = self.event("kms.key.rotate", actor, old.id.as_str());
        let event = event.with("version", version.to_string());
        Ok(Change {
            record,
            batch,
            event,
        })
    }

    /// Applies a lifecycle state change (NIST SP 800-57): pre-active → active (activate);
    /// active ⇄ suspended (suspend, resume); pre-active, active or suspended → deactivated;
    /// anything but destroyed → compromised. Others are [`Error::IllegalTransition`]; a key
    /// pending destruction refuses every change. Audits `kms.key.state`.
    pub fn set_state(
        &self,
        actor: &str,
        id: &KeyId,
        change: StateChange,
        reason: &str,
    ) -> Result<KeyInfo, Error> {
        self.change_state(actor, id, change, reason, &Batch::new())
    }

    /// [`Kms::set_state`] under dual control: `approval` holds the writes that mark the approved
    /// request executed (see the `govtrust-approval` crate); they commit in the change's batch,
    /// so the change happens once, with its audit event, or not at all.
    pub fn set_state_approved(
        &self,
        actor: &str,
        id: &KeyId,
        change: StateChange,
        reason: &str,
        approval: &Batch,
    ) -> Result<KeyInfo, Error> {
        self.change_state(actor, id, change, reason, approval)
    }

    fn change_state(
        &self,
        actor: &str,
        id: &KeyId,
        change: StateChange,
        reason: &str,
        approval: &Batch,
    ) -> Result<KeyInfo, Error> {
        check_text("reason", reason)?;
        let vault = self.vault()?;
        let key = self.change_key(&vault, id, |old| {
            let state = lifecycle::apply(old, change)?;
            let record = KeyRecord {
                state,
                ..old.clone()
            };
            let event = self
                .event("kms.key.state", actor, id.as_str())
                .with("from", old.state.name())
                .with("to", state.name())
                .with("change", change.name())
                .with("reason", reason);
            Ok(Change {
                record,
                batch: approval.clone(),
                event,
            })
        })?;
        Ok(key.record.info())
    }

    /// Audits one use (`operation`: `decrypt`, `verify`, …) of `id` by `actor` when the key is
    /// deactivated or compromised: such keys protect nothing new, and every use of them is
    /// accounted for on its own, durably, before the caller gets the result. Nothing for keys
    /// in other states.
    pub fn audit_retired_use(&self, actor: &str, id: &KeyId, operation: &str) -> Result<(), Error> {
        let vault = self.vault()?;
        let stored = vault.stored(id)?;
        if !lifecycle::retired(stored.record.state) {
            return Ok(());
        }
        let event = self
            .event("kms.key.use.retired", actor, id.as_str())
            .with("operation", operation)
            .with("state", stored.record.state.name());
        vault.audit_use(&*self.audit, &stored, Batch::new(), &event)
    }
}

/// A page token: the id of the last key of the previous page.
fn page_token_id(token: &str) -> Result<KeyId, Error> {
    KeyId::parse(token).map_err(|_| Error::InvalidArgument {
        field: "page_token",
        reason: "not a token returned by list_keys".into(),
    })
}

/// Bounds free text that goes into records and audit events, and refuses control characters
/// (line breaks, terminal escapes), which could forge lines in a human view of the audit log.
pub(crate) fn check_text(field: &'static str, text: &str) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidArgument { field, reason };
    if text.len() > MAX_TEXT_LEN {
        return Err(invalid(format!("longer than {MAX_TEXT_LEN} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("control characters are not allowed".into()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_control_characters() {
        for bad in ["a\nb", "a\r", "\t", "\u{1b}[2K", "\u{7f}", "\u{85}", "\0"] {
            let error = check_text("reason", bad).unwrap_err();
            assert_eq!(
                error.to_string(),
                "invalid reason: control characters are not allowed",
                "{bad:?}"
            );
        }
        for good in [
            "",
            "rotated after audit",
            "税务系统签名密钥 (2024)",
            "a\u{200b}b",
        ] {
            check_text("reason", good).unwrap();
        }
    }

    #[test]
    fn text_is_bounded() {
        check_text("owner", &"x".repeat(MAX_TEXT_LEN)).unwrap();
        assert!(matches!(
            check_text("owner", &"x".repeat(MAX_TEXT_LEN + 1)),
            Err(Error::InvalidArgument { field: "owner", .. })
        ));
    }
}
