//! Key distribution (配发): exportable keys leave the centre only wrapped to one named recipient,
//! as single-use bundles; wrapped keys come in through the centre's import wrapping key. The HPKE
//! suite and the binding of a bundle's terms are in [`crate::transfer`].
//!
//! A bundle is not a bearer token:
//!
//! - **Bound.** Its terms ([`BundleTerms`]: bundle id, source centre, key and version, algorithm,
//!   exporter, recipient identity, whether the copy may be exported again, export and expiry
//!   dates) are bound into the HPKE `info`: a bundle with any of them altered does not unwrap.
//! - **Addressed.** Only the recipient identity may import it, and it owns the imported key.
//! - **Single use.** Importing writes `kms/bundle/<bundle id>` with a compare-and-swap that
//!   expects it absent, in the import's batch: a second import of the same bundle is refused with
//!   the key it became and when. It expires (24 hours by default, at most 30 days).
//! - **Never widened.** The imported key is exportable only when the bundle says so; an import
//!   may narrow that, never widen it.
//! - **One nonce budget.** The source and its copies hold the same AES material, so together
//!   they must stay within one key version's random-nonce limit ([`crate::budget`]). A copy
//!   imported here counts against the source's count; a bundle to another centre carries an
//!   allotment (`encryptions`, half of what the source had left unless the exporter says
//!   otherwise) that the source gives up at export and the copy counts down there.
//! - **Accountable.** `kms.key.export` names the recipient, the bundle and the policy;
//!   `kms.key.import` names the bundle, its source centre, key and version, and the exporter.
//!   The imported key's record keeps the terms it came with ([`KeyInfo::origin`]).
//!
//! The exporting centre records every bundle under its source key (`kms/export/<id>/<bundle>`,
//! listed by [`Kms::exports`]). A bundle that names this centre as its source is imported only
//! when that record exists with the same terms (so its provenance cannot be forged), and only
//! while the source key is still active, exportable and not scheduled for destruction: a
//! bundle not yet imported dies with its source.
//!
//! What destroying the source means for copies already imported: nothing is shredded. A copy is
//! a key of its own, owned by its recipient. The destruction event of the source (and its
//! scheduling) lists every bundle exported from it and the copies imported into this centre, so
//! the security administrator can find and destroy them; bundles imported into other centres
//! are listed by bundle id and recipient. A key that must be crypto-shredded by its own
//! destruction must therefore be created non-exportable (the default).

use std::time::{Duration, SystemTime};

use govtrust_store::{AuditEvent, Batch};

use crate::budget;
use crate::error::rfc3339;
use crate::keys::check_text;
use crate::lifecycle::{self, Usage};
use crate::material::Operator;
use crate::record::{
    self, ExportRecord, ImportRecord, KeyRecord, TermsRecord, from_unix_ms, unix_ms,
};
use crate::transfer;
use crate::vault::Vault;
use crate::{
    BundleExport, BundleId, BundleTerms, Error, ExportSpec, ImportSpec, KeyId, KeyInfo, KeySpec,
    KeyState, Kms, WrappedKey,
};

/// How long a bundle can be imported when the exporter does not say.
const DEFAULT_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// Shortest and longest import windows.
const MIN_VALIDITY: Duration = Duration::from_secs(60);
const MAX_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most bundles [`Kms::exports`] lists and a destruction event names.
const MAX_LISTED: usize = 1000;
/// Longest recipient identity, in bytes (SPIFFE ids are at most 2048; ours are far shorter).
const MAX_IDENTITY_LEN: usize = 255;
/// Most bundles and copies one scheduling or destruction event names; the rest are counted
/// (`bundles_total`, `copies_total`) and listed by `kms key show`. However many bundles a key
/// has had, its destruction event stays small enough to be written.
const EVENT_LISTED: usize = 20;

impl Kms {
    /// Wraps a version of an exportable, active key to `spec.recipient_public_key` with HPKE, as
    /// a single-use bundle that only `spec.recipient` may import. Records the bundle under the
    /// key and audits `kms.key.export`, in one batch guarded by the key's record as checked, so
    /// a key changed meanwhile is not exported.
    pub fn wrap_for_recipient(
        &self,
        actor: &str,
        id: &KeyId,
        spec: ExportSpec,
    ) -> Result<WrappedKey, Error> {
        let vault = self.vault()?;
        let stored = vault.stored(id)?;
        let record = &stored.record;
        let version = exportable_version(record, spec.version)?;
        let mut batch = Batch::new();
        let encryptions = self.allot(record, version, &spec, &mut batch)?;
        let terms = self.terms(actor, record, version, encryptions, &spec)?;
        let material = vault.material(id, version, record.algorithm)?;
        let (encapsulated_key, ciphertext) =
            transfer::wrap(&spec.recipient_public_key, &terms, &material)?;
        let export = ExportRecord {
            terms: TermsRecord::from(&terms),
            imported: None,
        };
        let key = record::export_key(id, &terms.id);
        batch.expect_absent(key.clone());
        batch.put(
            key,
            vault.seal_json(&record::export_aad(id, &terms.id), &export)?,
        );
        let event = self
            .event("kms.key.export", actor, id.as_str())
            .with("version", version.to_string())
            .with("bundle", terms.id.to_string())
            .with("recipient", terms.recipient.clone())
            .with(
                "recipient_public_key",
                hex::encode(&spec.recipient_public_key),
            )
            .with("exportable", terms.exportable.to_string())
            .with("encryptions", terms.encryptions.to_string())
            .with("expires", rfc3339(terms.expires_at));
        vault.audit_use(&*self.audit, &stored, batch, &event)?;
        Ok(WrappedKey {
            encapsulated_key,
            ciphertext,
            terms,
        })
    }

    /// The encryptions a bundle of `version` of `record` allots its copy, set aside in `batch`
    /// from the version's budget: only an AES key wrapped to another centre gets any. A copy
    /// imported into this centre counts against the source's own budget instead (a bundle wrapped
    /// to this centre's wrapping key can be opened nowhere else).
    fn allot(
        &self,
        record: &KeyRecord,
        version: u32,
        spec: &ExportSpec,
        batch: &mut Batch,
    ) -> Result<u64, Error> {
        let refused = |reason: &str| Error::InvalidArgument {
            field: "encryptions",
            reason: reason.to_owned(),
        };
        if !record.algorithm.is_symmetric() {
            return match spec.encryptions {
                None | Some(0) => Ok(0),
                Some(_) => Err(refused("only AES keys encrypt; this is a signing key")),
            };
        }
        if spec.recipient_public_key == self.wrapping_public_key()? {
            return match spec.encryptions {
                None | Some(0) => Ok(0),
                Some(_) => Err(refused(
                    "the bundle is for this centre, where the copy counts against the source \
                     key's own encryptions",
                )),
            };
        }
        let counted = record.budget_identity(version);
        budget::allot(
            &*self.store,
            &counted.key,
            counted.version,
            self.limit,
            spec.encryptions,
            batch,
        )
    }

    /// The terms of a new bundle of `version` of `record`.
    fn terms(
        &self,
        actor: &str,
        record: &KeyRecord,
        version: u32,
        encryptions: u64,
        spec: &ExportSpec,
    ) -> Result<BundleTerms, Error> {
        check_identity("recipient", &spec.recipient)?;
        let validity = validity(spec.valid_for)?;
        let exported_at = from_unix_ms(unix_ms(self.clock.now()));
        let expires_at =
            exported_at
                .checked_add(validity)
                .ok_or_else(|| Error::InvalidArgument {
                    field: "valid_for",
                    reason: "the expiry date is out of range".into(),
                })?;
        Ok(BundleTerms {
            id: BundleId::generate()?,
            source_centre: self.deployment_id().to_owned(),
            source_key: record.id.clone(),
            source_version: version,
            algorithm: record.algorithm,
            exporter: actor.to_owned(),
            recipient: spec.recipient.clone(),
            exportable: spec.exportable,
            encryptions,
            exported_at,
            expires_at,
        })
    }

    /// The X25519 public key of the centre's import wrapping key: wrap keys to it for
    /// [`Kms::import_key`].
    pub fn wrapping_public_key(&self) -> Result<Vec<u8>, Error> {
        Ok(self.unsealed()?.wrapping.public().to_vec())
    }

    /// Unwraps a bundle wrapped to [`Kms::wrapping_public_key`] under `spec.terms`, checks that
    /// `actor` is its recipient, that it has not expired, was not imported before and is not
    /// widened, and stores it as a new key (version 1, active) owned by the recipient, with the
    /// terms as its origin. Audits `kms.key.import`.
    pub fn import_key(&self, actor: &str, spec: ImportSpec) -> Result<KeyInfo, Error> {
        let wrapping = &self.unsealed()?.wrapping;
        let terms = &spec.terms;
        check_terms_text(terms)?;
        let material = wrapping
            .unwrap(terms, &spec.encapsulated_key, &spec.ciphertext)
            .map_err(|error| match error {
                Error::Authentication => Error::BundleUnwrap {
                    bundle: terms.id.clone(),
                },
                other => other,
            })?;
        check_import(terms, actor, spec.exportable, self.clock.now())?;
        if Operator::load(terms.algorithm, &material, &self.rng).is_none() {
            return Err(Error::InvalidArgument {
                field: "ciphertext",
                reason: format!(
                    "the unwrapped material is not a valid {} key",
                    terms.algorithm
                ),
            });
        }
        let key_spec = KeySpec {
            algorithm: terms.algorithm,
            exportable: spec.exportable,
            owner: terms.recipient.clone(),
            owner_generation: spec.owner_generation,
            description: spec.description.clone(),
            pre_active: false,
            internal: false,
        };
        let mut record = self.new_record(&key_spec, KeyState::Active, actor)?;
        record.imported_from = Some(TermsRecord::from(terms));
        let vault = self.vault()?;
        if terms.source_centre == self.deployment_id() {
            // A source that does not exist fails the claim below, with the bundle named.
            match vault.stored(&terms.source_key) {
                Err(Error::KeyNotFound { .. }) => {}
                source => {
                    let source = source?.record;
                    record.budget_of = Some(source.budget_identity(terms.source_version));
                }
            }
        }
        let import = ImportRecord {
            key: record.id.clone(),
            by: actor.to_owned(),
            at_ms: record.created_at_ms,
        };
        let event = import_event(self.creation_event("kms.key.import", actor, &record), terms);
        self.store_new(record, &material, &event, || {
            self.claim(&vault, terms, &import)
        })
    }

    /// The writes that use up `terms`' bundle: its import record, which must be absent; for a
    /// bundle of this centre also its export record marked imported, guarded by the source
    /// key's record as checked; for an AES key from another centre the count of its copy's
    /// encryptions, started so that it makes no more than the bundle allots.
    fn claim(
        &self,
        vault: &Vault<'_>,
        terms: &BundleTerms,
        import: &ImportRecord,
    ) -> Result<Batch, Error> {
        let key = record::bundle_key(&terms.id);
        let aad = record::bundle_aad(&terms.id);
        if let Some((_, used)) = vault.get_json::<ImportRecord>(&key, &aad)? {
            return Err(Error::BundleUsed {
                bundle: terms.id.clone(),
                key: used.key,
                at: from_unix_ms(used.at_ms),
            });
        }
        let mut batch = Batch::new();
        batch.expect_absent(key.clone());
        batch.put(key, vault.seal_json(&aad, import)?);
        if terms.source_centre == self.deployment_id() {
            claim_local(vault, terms, import, &mut batch)?;
        } else if terms.algorithm.is_symmetric() {
            budget::start_copy(&import.key, self.limit, terms.encryptions, &mut batch);
        }
        Ok(batch)
    }

    /// The bundles exported from key `id` (at most 1000, in bundle id order), with the key each
    /// became where it was imported into this centre. Tombstones keep them.
    pub fn exports(&self, id: &KeyId) -> Result<Vec<BundleExport>, Error> {
        let vault = self.vault()?;
        vault.stored(id)?;
        Ok(exports(&vault, id)?
            .iter()
            .map(ExportRecord::export)
            .collect())
    }

    /// `event` with the bundles exported from `id` and the copies imported here, if any: for
    /// the scheduling and the destruction of a key.
    pub(crate) fn with_exports(
        &self,
        vault: &Vault<'_>,
        id: &KeyId,
        event: AuditEvent,
    ) -> Result<AuditEvent, Error> {
        let exports = exports(vault, id)?;
        if exports.is_empty() {
            return Ok(event);
        }
        let bundles: Vec<String> = exports
            .iter()
            .map(|e| format!("{}>{}", e.terms.id, e.terms.recipient))
            .collect();
        let copies = exports.iter().filter_map(|e| e.imported.as_ref());
        let copies: Vec<String> = copies.map(|i| i.key.to_string()).collect();
        Ok(event
            .with("bundles", listed(&bundles))
            .with("bundles_total", bundles.len().to_string())
            .with("copies", listed(&copies))
            .with("copies_total", copies.len().to_string()))
    }
}

/// The first [`EVENT_LISTED`] of `items`, comma separated.
fn listed(items: &[String]) -> String {
    let shown: Vec<&str> = items
        .iter()
        .take(EVENT_LISTED)
        .map(String::as_str)
        .collect();
    shown.join(",")
}

/// The export records of key `id`.
fn exports(vault: &Vault<'_>, id: &KeyId) -> Result<Vec<ExportRecord>, Error> {
    let entries = vault
        .store
        .scan(&record::export_prefix(id), None, MAX_LISTED)?;
    entries
        .iter()
        .map(|(key, raw)| {
            let bundle = bundle_of(key)?;
            vault.open_json(key, &record::export_aad(id, &bundle), raw)
        })
        .collect()
}

/// The bundle id at the end of `kms/export/<id>/<bundle id>`.
fn bundle_of(store_key: &[u8]) -> Result<BundleId, Error> {
    let text = String::from_utf8_lossy(store_key);
    let id = text.rsplit('/').next().unwrap_or_default();
    BundleId::parse(id).map_err(|_| Error::Corrupt {
        context: format!("store key {text} does not end in a bundle id"),
    })
}

/// For a bundle that names this centre as its source: checks this centre exported it with
/// these terms and its source key may still be exported, and adds to `batch` the export record
/// marked imported, guarded by the source key's record and the export record as read.
fn claim_local(
    vault: &Vault<'_>,
    terms: &BundleTerms,
    import: &ImportRecord,
    batch: &mut Batch,
) -> Result<(), Error> {
    let unknown = || Error::BundleUnknown {
        bundle: terms.id.clone(),
        source_key: terms.source_key.clone(),
    };
    let source = match vault.stored(&terms.source_key) {
        Err(Error::KeyNotFound { .. }) => return Err(unknown()),
        other => other?,
    };
    let key = record::export_key(&terms.source_key, &terms.id);
    let aad = record::export_aad(&terms.source_key, &terms.id);
    let (raw, mut export) = vault
        .get_json::<ExportRecord>(&key, &aad)?
        .ok_or_else(unknown)?;
    if export.terms != TermsRecord::from(terms) {
        return Err(unknown());
    }
    check_source(&source.record, &terms.id)?;
    export.imported = Some(import.clone());
    batch.expect(record::meta_key(&terms.source_key), Some(source.raw));
    batch.expect(key.clone(), Some(raw));
    batch.put(key, vault.seal_json(&aad, &export)?);
    Ok(())
}

/// Refuses a bundle whose source key (of this centre) may no longer be exported.
fn check_source(source: &KeyRecord, bundle: &BundleId) -> Result<(), Error> {
    let reason = if let Some(at) = source.destroyed_at_ms {
        format!("was destroyed at {}", rfc3339(from_unix_ms(at)))
    } else if let Some(at) = source.destruction_due_ms {
        format!(
            "is scheduled for destruction at {}",
            rfc3339(from_unix_ms(at))
        )
    } else if !lifecycle::permits(source.state, Usage::Export) {
        format!("is {}", source.state)
    } else {
        return Ok(());
    };
    Err(Error::BundleRevoked {
        bundle: bundle.clone(),
        source_key: source.id.clone(),
        reason,
    })
}

/// Bounds the free text of a bundle's terms (it goes into records and audit events) and
/// refuses control characters, before anything else is done with them.
fn check_terms_text(terms: &BundleTerms) -> Result<(), Error> {
    check_text("exporter", &terms.exporter)?;
    check_text("recipient", &terms.recipient)?;
    check_text("source_centre", &terms.source_centre)
}

/// Checks an authenticated bundle's terms against who imports it, when, and how.
fn check_import(
    terms: &BundleTerms,
    importer: &str,
    exportable: bool,
    now: SystemTime,
) -> Result<(), Error> {
    if terms.recipient != importer {
        return Err(Error::NotRecipient {
            bundle: terms.id.clone(),
            recipient: terms.recipient.clone(),
            importer: importer.to_owned(),
        });
    }
    if now >= terms.expires_at {
        return Err(Error::BundleExpired {
            bundle: terms.id.clone(),
            at: terms.expires_at,
        });
    }
    if exportable && !terms.exportable {
        return Err(Error::BundleWidened {
            bundle: terms.id.clone(),
            what: "re-export, so the imported key cannot be exportable",
        });
    }
    Ok(())
}

/// The import event, naming where the key comes from.
fn import_event(event: AuditEvent, terms: &BundleTerms) -> AuditEvent {
    event
        .with("bundle", terms.id.to_string())
        .with("source_centre", terms.source_centre.clone())
        .with("source_key", terms.source_key.to_string())
        .with("source_version", terms.source_version.to_string())
        .with("exporter", terms.exporter.clone())
        .with("exported_at", rfc3339(terms.exported_at))
}

/// An identity a bundle is addressed to: a SPIFFE URI.
fn check_identity(field: &'static str, identity: &str) -> Result<(), Error> {
    check_text(field, identity)?;
    if identity.len() > MAX_IDENTITY_LEN {
        return Err(Error::InvalidArgument {
            field,
            reason: format!("longer than {MAX_IDENTITY_LEN} bytes: no SPIFFE id of ours is"),
        });
    }
    let valid = identity
        .strip_prefix("spiffe://")
        .is_some_and(|rest| rest.contains('/') && !rest.starts_with('/'));
    if !valid {
        return Err(Error::InvalidArgument {
            field,
            reason: format!(
                "{identity:?} is not an identity (spiffe://<trust-domain>/...): a bundle is \
                 addressed to the one identity that may import it"
            ),
        });
    }
    Ok(())
}

/// The import window of a new bundle.
fn validity(requested: Option<Duration>) -> Result<Duration, Error> {
    let validity = requested.unwrap_or(DEFAULT_VALIDITY);
    if !(MIN_VALIDITY..=MAX_VALIDITY).contains(&validity) {
        return Err(Error::InvalidArgument {
            field: "valid_for",
            reason: format!(
                "{} seconds: a bundle is valid for 1 minute to 30 days",
                validity.as_secs()
            ),
        });
    }
    Ok(validity)
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
