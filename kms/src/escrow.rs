//! Key escrow for the dual-certificate system (双证书, GM/T 0034 / GB/T 25056): the
//! key-management centre generates the SM2 *encryption* key pair of a subject, keeps it
//! (escrow), and hands the private key to the subject only inside an SM2 digital envelope
//! sealed to the subject's own *signing* key, which never leaves the subject and is never
//! escrowed (there is no call that takes one).
//!
//! The libraries of GM/T 0034:
//! - **backup pool (备用库):** pairs generated in advance, sealed under the record key at
//!   `kms/pool/sm2/<pool id>`, so assigning one costs no key generation;
//!   [`Kms::fill_escrow_pool`] tops it up (audited as `kms.escrow.pool`) and
//!   [`Kms::escrow_encryption_key`] takes one, generating a fresh pair only when the pool is
//!   empty;
//! - **active library (在用库):** an assigned pair is an `sm2-encrypt` key of its owner, internal
//!   (no caller uses it through the key API) and never exportable, marked
//!   [`KeyOrigin::Escrowed`](crate::KeyOrigin::Escrowed);
//! - **history library (历史库):** not yet: moving a key there when its certificate expires or
//!   is revoked comes with dual-certificate enrollment, as does refilling the pool in the
//!   server's background. Nothing outside this crate's tests calls this module yet.
//!
//! The caller must take the recipient signing key from the owner's verified request (the SM2
//! key its CSR proved possession of), never from anything else the caller says: whoever names
//! the recipient receives the escrowed private key.
//!
//! Taking a pooled pair is a compare-and-swap on its pool entry in the same batch that writes
//! the new key, so two enrollments never receive the same pair.

use govtrust_store::Batch;
use zeroize::Zeroizing;

use crate::national::{self, Sm2KeyPair};
use crate::record::unix_ms;
use crate::{Algorithm, Error, KeyInfo, KeySpec, KeyState, Kms};

/// Where pooled SM2 encryption pairs wait.
const POOL_PREFIX: &str = "kms/pool/sm2/";
/// Most pairs one call of [`Kms::fill_escrow_pool`] adds.
pub const POOL_MAX: usize = 4096;

/// An escrowed encryption key, as assigned.
#[derive(Debug)]
pub struct Escrowed {
    /// The new key (algorithm `sm2-encrypt`), in the owner's active library.
    pub key: KeyInfo,
    /// Its public key, the uncompressed SM2 point (for the encryption certificate).
    pub public_key: Vec<u8>,
    /// Its private key in an SM2 digital envelope (`SM2EnvelopedKey`, GB/T 35276 §7.4) that
    /// only the holder of the recipient signing key opens.
    pub envelope: Vec<u8>,
}

fn pool_aad(id: &str) -> Vec<u8> {
    format!("govtrust-kms-v1|pool|sm2|{id}").into_bytes()
}

impl Kms {
    /// How many pre-generated SM2 encryption pairs wait in the pool.
    pub fn escrow_pool_size(&self) -> Result<usize, Error> {
        Ok(self.pool_entries(usize::MAX)?.len())
    }

    /// Generates SM2 encryption pairs until the pool holds `target` (at most [`POOL_MAX`] added
    /// per call); returns how many were added. Needs the centre unsealed.
    pub fn fill_escrow_pool(&self, target: usize) -> Result<usize, Error> {
        self.vault()?;
        let have = self.escrow_pool_size()?;
        let wanted = target.saturating_sub(have).min(POOL_MAX);
        // One durable, audited batch per 64 pairs; a centre sealed meanwhile stops the filling.
        let mut left = wanted;
        while left > 0 {
            let vault = self.vault()?;
            let count = left.min(64);
            let mut batch = Batch::new();
            for _ in 0..count {
                let material = generate_pair()?;
                let id = crate::types::random_id("p-", "pool id")?;
                let sealed = vault.key.seal(&pool_aad(&id), &material)?;
                let key = format!("{POOL_PREFIX}{id}").into_bytes();
                batch.expect_absent(key.clone()).put(key, sealed);
            }
            let event = self
                .event("kms.escrow.pool", "govtrust", "sm2-encrypt")
                .with("added", count.to_string());
            self.audit.stage(&mut batch, &event)?;
            self.store.commit(batch)?;
            left -= count;
        }
        if wanted > 0 {
            tracing::debug!(added = wanted, "escrow pool filled");
        }
        Ok(wanted)
    }

    /// Assigns an SM2 encryption key pair to `owner` (its enrollment generation
    /// `owner_generation`): a pooled pair when there is one, else a fresh one. The pair becomes
    /// an `sm2-encrypt` key of `owner`, internal and never exportable, escrowed here; its
    /// private key goes back enveloped to `recipient_signing_key` (the uncompressed SM2 point of
    /// the owner's own signing key, or its SubjectPublicKeyInfo DER). Audited as
    /// `kms.escrow.assign`.
    pub fn escrow_encryption_key(
        &self,
        actor: &str,
        owner: &str,
        owner_generation: u32,
        recipient_signing_key: &[u8],
        description: &str,
    ) -> Result<Escrowed, Error> {
        let recipient = sm2_point(recipient_signing_key)?;
        let vault = self.vault()?;
        let spec = KeySpec {
            algorithm: Algorithm::Sm2Encrypt,
            exportable: false,
            owner: owner.to_owned(),
            owner_generation,
            description: description.to_owned(),
            pre_active: false,
            internal: true,
        };
        // A pooled pair, claimed in the key's own batch; on a lost race, the next one.
        for (entry, sealed) in self.pool_entries(8)? {
            let id = entry
                .strip_prefix(POOL_PREFIX.as_bytes())
                .map(|id| String::from_utf8_lossy(id).into_owned())
                .unwrap_or_default();
            let Some(material) = vault.key.open(&pool_aad(&id), &sealed) else {
                // Never handed out; left for an operator to look at.
                tracing::warn!(pool_id = %id, "a pooled SM2 pair does not unseal; skipped");
                continue;
            };
            match self.assign(actor, &spec, &material, recipient, Some((&entry, &sealed))) {
                // Another assignment took this pair first.
                Err(Error::Conflict { .. }) => continue,
                other => return other,
            }
        }
        let material = generate_pair()?;
        self.assign(actor, &spec, &material, recipient, None)
    }

    /// Writes the escrowed key of `spec` with `material`, taking the pool entry `taken` (its
    /// key and sealed bytes) in the same batch.
    fn assign(
        &self,
        actor: &str,
        spec: &KeySpec,
        material: &Zeroizing<Vec<u8>>,
        recipient: &[u8],
        taken: Option<(&[u8], &[u8])>,
    ) -> Result<Escrowed, Error> {
        let pair = Sm2KeyPair::from_pkcs8(material).map_err(|_| Error::Corrupt {
            context: "an escrow pair is not an SM2 key".into(),
        })?;
        let envelope = national::sm2_envelope(recipient, &pair).map_err(|e| Error::Crypto {
            context: if matches!(e, national::NationalError::PublicKey) {
                "the recipient signing key is not an SM2 public key"
            } else {
                "sealing the envelope"
            },
        })?;
        let mut record = self.new_record(spec, KeyState::Active, actor)?;
        record.escrowed = true;
        let event = self
            .creation_event("kms.escrow.assign", actor, &record)
            .with("pooled", taken.is_some().to_string())
            .with("at", unix_ms(self.clock.now()).to_string());
        let id = record.id.clone();
        let key = self.store_new(record, material, &event, || {
            let mut batch = Batch::new();
            if let Some((entry, sealed)) = taken {
                // Taken meanwhile: no use retrying with it.
                if self.store.get(entry)?.as_deref() != Some(sealed) {
                    return Err(Error::Conflict { id: id.clone() });
                }
                batch.expect(entry.to_vec(), Some(sealed.to_vec()));
                batch.delete(entry.to_vec());
            }
            Ok(batch)
        })?;
        Ok(Escrowed {
            key,
            public_key: pair.public_key().to_vec(),
            envelope,
        })
    }

    /// Up to `limit` pool entries: store key and sealed material.
    fn pool_entries(&self, limit: usize) -> Result<Vec<govtrust_store::Entry>, Error> {
        let mut entries = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .store
                .scan(POOL_PREFIX.as_bytes(), after.as_deref(), 256)?;
            let last = page.len() < 256;
            for (key, value) in page {
                after = Some(key.clone());
                entries.push((key, value));
                if entries.len() >= limit {
                    return Ok(entries);
                }
            }
            if last {
                return Ok(entries);
            }
        }
    }
}

/// A fresh SM2 pair, PKCS#8.
fn generate_pair() -> Result<Zeroizing<Vec<u8>>, Error> {
    national::sm2_generate().map_err(|_| Error::Crypto {
        context: "generating an SM2 key pair",
    })
}

/// The uncompressed SM2 point of `key`: the point itself, or the point inside an SM2
/// SubjectPublicKeyInfo DER.
fn sm2_point(key: &[u8]) -> Result<&[u8], Error> {
    let point = match key.len() {
        national::SM2_PUBLIC_KEY_LEN => key,
        _ => crate::spki::sm2_point(key).ok_or_else(|| Error::InvalidArgument {
            field: "recipient_signing_key",
            reason: "not an SM2 public key (an uncompressed point or its SubjectPublicKeyInfo)"
                .into(),
        })?,
    };
    national::sm2_check_public_key(point).map_err(|e| Error::InvalidArgument {
        field: "recipient_signing_key",
        reason: e.to_string(),
    })?;
    Ok(point)
}
