//! Key distribution (配发): exportable keys leave the centre only wrapped to a recipient's X25519
//! public key; wrapped keys come in through the centre's import wrapping key. The HPKE suite and
//! encodings are in [`crate::transfer`].

use crate::lifecycle::{self, Usage};
use crate::material::Operator;
use crate::record::KeyRecord;
use crate::transfer;
use crate::{Error, ImportSpec, KeyId, KeyInfo, KeySpec, KeyState, Kms, WrappedKey};

impl Kms {
    /// Wraps `version` (`None`: the primary version) of an exportable, active key to the 32-byte
    /// X25519 `recipient_public_key` with HPKE. Audits `kms.key.export`; the audit commit is
    /// guarded by the key's record as checked, so a key changed meanwhile is not exported.
    pub fn wrap_for_recipient(
        &self,
        actor: &str,
        id: &KeyId,
        version: Option<u32>,
        recipient_public_key: &[u8],
    ) -> Result<WrappedKey, Error> {
        let vault = self.vault()?;
        let stored = vault.stored(id)?;
        let record = &stored.record;
        let version = exportable_version(record, version)?;
        let material = vault.material(id, version, record.algorithm)?;
        let (encapsulated_key, ciphertext) =
            transfer::wrap(recipient_public_key, record.algorithm, &material)?;
        let event = self
            .event("kms.key.export", actor, id.as_str())
            .with("version", version.to_string())
            .with("recipient", hex::encode(recipient_public_key));
        vault.audit_use(&*self.audit, &stored, &event)?;
        Ok(WrappedKey {
            encapsulated_key,
            ciphertext,
            algorithm: record.algorithm,
            key_id: id.clone(),
            version,
        })
    }

    /// The X25519 public key of the centre's import wrapping key: wrap keys to it for
    /// [`Kms::import_key`].
    pub fn wrapping_public_key(&self) -> Result<Vec<u8>, Error> {
        Ok(self.unsealed()?.wrapping.public().to_vec())
    }

    /// Unwraps a key wrapped to [`Kms::wrapping_public_key`], checks it is a valid
    /// `spec.algorithm` key, and stores it as a new key (version 1, active). Audits
    /// `kms.key.import`.
    pub fn import_key(&self, actor: &str, spec: ImportSpec) -> Result<KeyInfo, Error> {
        let wrapping = &self.unsealed()?.wrapping;
        let material = wrapping.unwrap(spec.algorithm, &spec.encapsulated_key, &spec.ciphertext)?;
        if Operator::load(spec.algorithm, &material, &self.rng).is_none() {
            return Err(Error::InvalidArgument {
                field: "ciphertext",
                reason: format!(
                    "the unwrapped material is not a valid {} key",
                    spec.algorithm
                ),
            });
        }
        let key_spec = KeySpec {
            algorithm: spec.algorithm,
            exportable: spec.exportable,
            owner: spec.owner,
            owner_generation: 0,
            description: spec.description,
            pre_active: false,
            internal: false,
        };
        self.insert_key(
            actor,
            "kms.key.import",
            &key_spec,
            KeyState::Active,
            &material,
        )
    }
}

/// Checks that `version` (`None`: the primary) of `record` may be exported; returns its number.
fn exportable_version(record: &KeyRecord, version: Option<u32>) -> Result<u32, Error> {
    lifecycle::check_alive(record)?;
    if !record.exportable {
        return Err(Error::NotExportable {
            id: record.id.clone(),
        });
    }
    lifecycle::check_usage(record, Usage::Export)?;
    let version = version.unwrap_or(record.primary_version);
    if !record.versions.iter().any(|v| v.version == version) {
        return Err(Error::UnknownVersion {
            id: record.id.clone(),
            version,
        });
    }
    Ok(version)
}
