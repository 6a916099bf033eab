//! Key records: what the centre stores about a key, where, and the AAD that seals it there.
//!
//! Store layout (every value but the seal configuration and the due index is sealed, see
//! [`crate::sealed`]):
//!
//! | store key | value | AAD |
//! |---|---|---|
//! | `kms/seal` | seal configuration, plain JSON | — |
//! | `kms/wrapping` | import wrapping key (X25519 private key) | `govtrust-kms-v1\|wrapping\|x25519` |
//! | `kms/meta/<id>` | [`KeyRecord`] JSON | `govtrust-kms-v1\|meta\|<id>` |
//! | `kms/material/<id>/<version as 8 hex>` | key material | `govtrust-kms-v1\|material\|<id>\|<version>\|<algorithm>` |
//! | `kms/due/<unix ms as 16 hex>/<id>` | empty: destruction index | — |
//! | `kms/export/<id>/<bundle id>` | [`ExportRecord`] JSON: a bundle exported from key `<id>` | `govtrust-kms-v1\|export\|<id>\|<bundle id>` |
//! | `kms/bundle/<bundle id>` | [`ImportRecord`] JSON: the bundle was imported (single use) | `govtrust-kms-v1\|bundle\|<bundle id>` |
//! | `kms/pool/sm2/<pool id>` | a pre-generated SM2 encryption key pair (PKCS#8), waiting to be escrowed (see `escrow`) | `govtrust-kms-v1\|pool\|sm2\|<pool id>` |
//! | `kms/nonces/<id>/<version as 8 hex>` | u64 BE: encryptions reserved under that version (kept when the key is destroyed: copies here count against it) | — |
//!
//! The material encoding is 32 raw bytes for AES-256-GCM and PKCS#8 DER for ECDSA and Ed25519.
//! The AAD binds a value to its place, so a record copied or swapped onto another key, version
//! or algorithm fails to unseal. The due index holds no secret (key ids and dates); it only
//! spares `destroy_due` from unsealing every record, and each entry is checked against the
//! sealed record before anything is destroyed. The encryption counts hold no secret either (see
//! [`crate::budget`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{
    Algorithm, BundleExport, BundleId, BundleImport, BundleTerms, KeyId, KeyInfo, KeyOrigin,
    KeyState, VersionInfo,
};

pub(crate) const SEAL_KEY: &[u8] = b"kms/seal";
pub(crate) const WRAPPING_KEY: &[u8] = b"kms/wrapping";
pub(crate) const WRAPPING_AAD: &[u8] = b"govtrust-kms-v1|wrapping|x25519";
pub(crate) const META_PREFIX: &str = "kms/meta/";
pub(crate) const DUE_PREFIX: &str = "kms/due/";

/// `kms/meta/<id>`.
pub(crate) fn meta_key(id: &KeyId) -> Vec<u8> {
    format!("{META_PREFIX}{id}").into_bytes()
}

/// AAD of a key's metadata.
pub(crate) fn meta_aad(id: &KeyId) -> Vec<u8> {
    format!("govtrust-kms-v1|meta|{id}").into_bytes()
}

/// `kms/material/<id>/`: every version of a key.
pub(crate) fn material_prefix(id: &KeyId) -> Vec<u8> {
    format!("kms/material/{id}/").into_bytes()
}

/// `kms/material/<id>/<version as 8 hex>`.
pub(crate) fn material_key(id: &KeyId, version: u32) -> Vec<u8> {
    format!("kms/material/{id}/{version:08x}").into_bytes()
}

/// AAD of one version's material.
pub(crate) fn material_aad(id: &KeyId, version: u32, algorithm: Algorithm) -> Vec<u8> {
    format!("govtrust-kms-v1|material|{id}|{version}|{algorithm}").into_bytes()
}

/// `kms/due/<unix ms as 16 hex>/<id>`: sorts by date.
pub(crate) fn due_key(at: SystemTime, id: &KeyId) -> Vec<u8> {
    format!("{DUE_PREFIX}{:016x}/{id}", unix_ms(at)).into_bytes()
}

/// `kms/export/<id>/`: the bundles exported from a key.
pub(crate) fn export_prefix(id: &KeyId) -> Vec<u8> {
    format!("kms/export/{id}/").into_bytes()
}

/// `kms/export/<id>/<bundle id>`.
pub(crate) fn export_key(id: &KeyId, bundle: &BundleId) -> Vec<u8> {
    format!("kms/export/{id}/{bundle}").into_bytes()
}

/// AAD of an export record.
pub(crate) fn export_aad(id: &KeyId, bundle: &BundleId) -> Vec<u8> {
    format!("govtrust-kms-v1|export|{id}|{bundle}").into_bytes()
}

/// `kms/bundle/<bundle id>`: written once, when the bundle is imported.
pub(crate) fn bundle_key(bundle: &BundleId) -> Vec<u8> {
    format!("kms/bundle/{bundle}").into_bytes()
}

/// AAD of an import record.
pub(crate) fn bundle_aad(bundle: &BundleId) -> Vec<u8> {
    format!("govtrust-kms-v1|bundle|{bundle}").into_bytes()
}

/// `kms/nonces/<id>/<version as 8 hex>`.
pub(crate) fn nonces_key(id: &KeyId, version: u32) -> Vec<u8> {
    format!("kms/nonces/{id}/{version:08x}").into_bytes()
}

/// A key's metadata as stored (sealed). Never holds material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyRecord {
    #[serde(with = "text")]
    pub(crate) id: KeyId,
    #[serde(with = "text")]
    pub(crate) algorithm: Algorithm,
    #[serde(with = "text")]
    pub(crate) state: KeyState,
    pub(crate) primary_version: u32,
    pub(crate) versions: Vec<VersionRecord>,
    pub(crate) exportable: bool,
    pub(crate) owner: String,
    /// The owner's enrollment generation when the key was created; absent (0) in records
    /// written before it was kept.
    #[serde(default)]
    pub(crate) owner_generation: u32,
    pub(crate) description: String,
    pub(crate) internal: bool,
    pub(crate) created_at_ms: u64,
    /// When a scheduled destruction is due.
    pub(crate) destruction_due_ms: Option<u64>,
    pub(crate) destroyed_at_ms: Option<u64>,
    /// Incremented by every write, so the cache keeps the newest record it has seen.
    pub(crate) revision: u64,
    /// Who generated or imported the key (absent in records written before it was kept).
    #[serde(default)]
    pub(crate) created_by: String,
    /// The bundle the key was imported from; `None`: generated here.
    #[serde(default)]
    pub(crate) imported_from: Option<TermsRecord>,
    /// For a copy imported from a key of this centre: whose encryption budget its version 1
    /// counts against (the same material). `None`: its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) budget_of: Option<BudgetOf>,
    /// An encryption key pair generated for its owner's dual certificate and escrowed here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) escrowed: bool,
}

/// The key version whose encryption budget another key's version 1 shares: a copy of the
/// same material must not get a fresh 2^30 random nonces (see [`crate::budget`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetOf {
    #[serde(with = "text")]
    pub(crate) key: KeyId,
    pub(crate) version: u32,
}

/// [`BundleTerms`] as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TermsRecord {
    #[serde(with = "text")]
    pub(crate) id: BundleId,
    pub(crate) source_centre: String,
    #[serde(with = "text")]
    pub(crate) source_key: KeyId,
    pub(crate) source_version: u32,
    #[serde(with = "text")]
    pub(crate) algorithm: Algorithm,
    pub(crate) exporter: String,
    pub(crate) recipient: String,
    pub(crate) exportable: bool,
    /// Absent in records written before copies were allotted encryptions.
    #[serde(default)]
    pub(crate) encryptions: u64,
    pub(crate) exported_at_ms: u64,
    pub(crate) expires_at_ms: u64,
}

/// A bundle exported from a key (sealed, at `kms/export/<id>/<bundle id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRecord {
    pub(crate) terms: TermsRecord,
    /// Set when the bundle was imported into this centre.
    pub(crate) imported: Option<ImportRecord>,
}

/// A bundle's import (sealed, at `kms/bundle/<bundle id>`): its presence makes the bundle used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportRecord {
    #[serde(with = "text")]
    pub(crate) key: KeyId,
    pub(crate) by: String,
    pub(crate) at_ms: u64,
}

/// One version's public metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionRecord {
    pub(crate) version: u32,
    pub(crate) created_at_ms: u64,
}

impl KeyRecord {
    /// The key version whose encryption budget `version` of this key counts against: its own,
    /// except version 1 of a copy imported from a key of this centre.
    pub(crate) fn budget_identity(&self, version: u32) -> BudgetOf {
        match &self.budget_of {
            Some(shared) if version == 1 => shared.clone(),
            _ => BudgetOf {
                key: self.id.clone(),
                version,
            },
        }
    }

    /// The public view of the record.
    pub(crate) fn info(&self) -> KeyInfo {
        KeyInfo {
            id: self.id.clone(),
            algorithm: self.algorithm,
            state: self.state,
            primary_version: self.primary_version,
            versions: self.versions.iter().map(VersionRecord::info).collect(),
            exportable: self.exportable,
            owner: self.owner.clone(),
            owner_generation: self.owner_generation,
            description: self.description.clone(),
            internal: self.internal,
            created_at: from_unix_ms(self.created_at_ms),
            destruction_scheduled_at: self.destruction_due_ms.map(from_unix_ms),
            destroyed_at: self.destroyed_at_ms.map(from_unix_ms),
            created_by: self.created_by.clone(),
            origin: match &self.imported_from {
                Some(terms) => KeyOrigin::Imported(Box::new(terms.terms())),
                None if self.escrowed => KeyOrigin::Escrowed,
                None => KeyOrigin::Generated,
            },
        }
    }

    /// The newest version number.
    pub(crate) fn latest_version(&self) -> u32 {
        self.versions.iter().map(|v| v.version).max().unwrap_or(0)
    }
}

impl TermsRecord {
    /// The public view.
    pub(crate) fn terms(&self) -> BundleTerms {
        BundleTerms {
            id: self.id.clone(),
            source_centre: self.source_centre.clone(),
            source_key: self.source_key.clone(),
            source_version: self.source_version,
            algorithm: self.algorithm,
            exporter: self.exporter.clone(),
            recipient: self.recipient.clone(),
            exportable: self.exportable,
            encryptions: self.encryptions,
            exported_at: from_unix_ms(self.exported_at_ms),
            expires_at: from_unix_ms(self.expires_at_ms),
        }
    }
}

impl From<&BundleTerms> for TermsRecord {
    fn from(terms: &BundleTerms) -> TermsRecord {
        TermsRecord {
            id: terms.id.clone(),
            source_centre: terms.source_centre.clone(),
            source_key: terms.source_key.clone(),
            source_version: terms.source_version,
            algorithm: terms.algorithm,
            exporter: terms.exporter.clone(),
            recipient: terms.recipient.clone(),
            exportable: terms.exportable,
            encryptions: terms.encryptions,
            exported_at_ms: unix_ms(terms.exported_at),
            expires_at_ms: unix_ms(terms.expires_at),
        }
    }
}

impl ExportRecord {
    /// The public view.
    pub(crate) fn export(&self) -> BundleExport {
        BundleExport {
            terms: self.terms.terms(),
            imported: self.imported.as_ref().map(|i| BundleImport {
                key: i.key.clone(),
                by: i.by.clone(),
                at: from_unix_ms(i.at_ms),
            }),
        }
    }
}

impl VersionRecord {
    fn info(&self) -> VersionInfo {
        VersionInfo {
            version: self.version,
            created_at: from_unix_ms(self.created_at_ms),
        }
    }
}

/// Milliseconds since the Unix epoch; times before it count as 0.
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// Serde as text, through `Display` and `FromStr`.
mod text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(crate) fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(crate) fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_through_json() {
        let record = KeyRecord {
            id: KeyId::generate().unwrap(),
            algorithm: Algorithm::EcdsaP384Sha384,
            state: KeyState::PreActive,
            primary_version: 1,
            versions: vec![VersionRecord {
                version: 1,
                created_at_ms: 5,
            }],
            exportable: true,
            owner: "spiffe://gov/x".into(),
            owner_generation: 3,
            description: "d".into(),
            internal: false,
            created_at_ms: 5,
            destruction_due_ms: Some(9),
            destroyed_at_ms: None,
            revision: 3,
            created_by: "spiffe://gov/admin".into(),
            imported_from: None,
            budget_of: None,
            escrowed: false,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("\"ecdsa-p384-sha384\"") && json.contains("\"pre-active\""));
        assert_eq!(serde_json::from_str::<KeyRecord>(&json).unwrap(), record);
    }

    #[test]
    fn records_written_before_origin_was_kept_still_decode() {
        let json = r#"{"id":"k-0123456789abcdef0123456789abcdef","algorithm":"aes-256-gcm","state":"active","primary_version":1,"versions":[{"version":1,"created_at_ms":5}],"exportable":false,"owner":"o","description":"","internal":false,"created_at_ms":5,"destruction_due_ms":null,"destroyed_at_ms":null,"revision":0}"#;
        let record: KeyRecord = serde_json::from_str(json).unwrap();
        assert_eq!(record.created_by, "");
        assert_eq!(record.info().origin, KeyOrigin::Generated);
    }

    #[test]
    fn due_keys_sort_by_date() {
        let id = KeyId::generate().unwrap();
        let early = due_key(from_unix_ms(9), &id);
        let late = due_key(from_unix_ms(0x100), &id);
        assert!(early < late);
    }
}
