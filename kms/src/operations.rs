//! Cryptographic operations: encrypt, decrypt, data keys, sign, verify, public keys.
//!
//! The hot path: a cache lookup, the lifecycle check on the cached record, an atomic count
//! down of the version's encryption budget, then ring. No store access (but one reservation per
//! 2^16 encryptions of a version, see [`crate::budget`]), no unsealing, no key derivation.

use std::sync::Arc;

use crate::cache::{LoadedKey, VersionKey};
use crate::cipher::Aead;
use crate::lifecycle::{self, Usage};
use crate::material;
use crate::national::{self, NationalError};
use crate::{
    Algorithm, DataKey, Decrypted, Encrypted, Error, KeyId, Kms, PublicKey, Signed, cipher, spki,
};

/// How many times one encryption rotates an exhausted key before giving up.
const ROTATIONS: usize = 4;

impl Kms {
    /// Encrypts with the key's primary version.
    ///
    /// A symmetric key (AES-256-GCM or SM4-GCM, random nonce): `aad` must be given again to
    /// decrypt, and the ciphertext is self-describing: `gtk1` | id length | key id | version
    /// (u32 BE) | 12-byte nonce | GCM ciphertext and tag, the header authenticated with the
    /// caller's AAD.
    ///
    /// An SM2 encryption key: the GM/T 0009 DER ciphertext (C1C3C2) that any SM2 implementation
    /// reads, naming no key (decrypt it with the key id given); SM2 takes no AAD.
    pub fn encrypt(&self, id: &KeyId, plaintext: &[u8], aad: &[u8]) -> Result<Encrypted, Error> {
        let key = self.usable(id, Usage::Encrypt)?;
        if key.record.algorithm == Algorithm::Sm2Encrypt {
            return sm2_encrypt(&key, plaintext, aad);
        }
        self.encrypt_for(id, Usage::Encrypt, plaintext, aad)
    }

    /// Encrypts under the primary version, taking one encryption of its budget (see
    /// [`crate::budget`]); when the version has none left, rotates the key and goes on under
    /// the new version.
    fn encrypt_for(
        &self,
        id: &KeyId,
        usage: Usage,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Encrypted, Error> {
        let mut attempts = 0;
        loop {
            let key = self.usable(id, usage)?;
            let version = version(&key, None)?;
            let counted = key.record.budget_identity(version.version);
            match version
                .budget
                .take(&*self.store, &counted.key, counted.version, self.limit)
            {
                Ok(()) => return seal(&key, version, plaintext, aad),
                Err(limit @ Error::EncryptionLimit { .. }) if attempts < ROTATIONS => {
                    self.rotate_exhausted(id, version.version, limit)?;
                }
                Err(error) => return Err(error),
            }
            attempts += 1;
        }
    }

    /// Rotates `id` because its primary version `exhausted` reached the encryption limit,
    /// unless another caller rotated it already. Audits `kms.key.rotate` by `govtrust`. When
    /// the key cannot rotate, returns `limit` (the store's own failures as they are).
    fn rotate_exhausted(&self, id: &KeyId, exhausted: u32, limit: Error) -> Result<(), Error> {
        let vault = self.vault()?;
        let reason = format!(
            "version {exhausted} reached its encryption limit of {}",
            self.limit.per_version()
        );
        // Taken before the store is read: see `cache`.
        let since = self.cache.generation(id);
        let mut rotated_meanwhile = None;
        let rotated = self.change_key(&vault, id, |old| {
            if old.primary_version != exhausted {
                rotated_meanwhile = Some(old.clone());
                return Err(Error::Conflict { id: id.clone() });
            }
            let mut change = self.rotation(&vault, old, "govtrust")?;
            change.event = change.event.with("reason", reason.as_str());
            Ok(change)
        });
        match rotated {
            Ok(_) => {
                tracing::info!(key = %id, %reason, "key rotated");
                Ok(())
            }
            Err(Error::Conflict { .. }) => {
                // Another caller rotated; its record may not be cached yet, so cache the one
                // read here (unless a newer one is), then encrypt again under its primary.
                if let Some(record) = rotated_meanwhile {
                    self.refresh(&vault, record, since)?;
                }
                Ok(())
            }
            Err(error @ Error::Store(_)) => Err(error),
            Err(_) => Err(limit),
        }
    }

    /// The key id and version a ciphertext names, from its header alone: the server authorizes
    /// the caller for that key before calling [`Kms::decrypt`]. Works while sealed.
    pub fn ciphertext_key(ciphertext: &[u8]) -> Result<(KeyId, u32), Error> {
        let header = cipher::parse(ciphertext)?;
        Ok((header.key_id, header.version))
    }

    /// True when `ciphertext` is in the self-describing format, which names its key; false
    /// for anything else, such as an SM2 ciphertext (which must be decrypted with its key named).
    pub fn ciphertext_names_key(ciphertext: &[u8]) -> bool {
        cipher::is_framed(ciphertext)
    }

    /// Decrypts a ciphertext from [`Kms::encrypt`] or [`Kms::generate_data_key`] with the same
    /// `aad`. With `expected`, refuses a ciphertext of another key.
    ///
    /// An SM2 ciphertext (GM/T 0009 DER, from [`Kms::encrypt`] or any SM2 implementation, e.g.
    /// `openssl pkeyutl -encrypt`) names no key: `expected` must be the SM2 encryption key. The
    /// primary version is tried first, then the three newest others (the SM3 check value inside
    /// the ciphertext tells the right one).
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        expected: Option<&KeyId>,
    ) -> Result<Decrypted, Error> {
        self.unsealed()?;
        if !cipher::is_framed(ciphertext)
            && let Some(id) = expected
        {
            let key = self.usable(id, Usage::Decrypt)?;
            if key.record.algorithm == Algorithm::Sm2Encrypt {
                return sm2_decrypt(&key, ciphertext, aad);
            }
        }
        let header = cipher::parse(ciphertext)?;
        if let Some(expected) = expected.filter(|e| **e != header.key_id) {
            return Err(Error::InvalidArgument {
                field: "key_id",
                reason: format!(
                    "the ciphertext was made with key {}, not {expected}",
                    header.key_id
                ),
            });
        }
        let key = self.usable(&header.key_id, Usage::Decrypt)?;
        let version = version(&key, Some(header.version))?;
        let plaintext = cipher::open(aead(&key, version)?, &header, ciphertext, aad)?;
        Ok(Decrypted {
            plaintext,
            key_id: header.key_id,
            version: header.version,
        })
    }

    /// A fresh data key for envelope encryption, in plain and encrypted under `id`.
    ///
    /// The data key is of the wrapping key's suite: 32 bytes (AES-256) under an AES key, 16
    /// bytes (SM4) under an SM4 key.
    pub fn generate_data_key(&self, id: &KeyId, aad: &[u8]) -> Result<DataKey, Error> {
        let algorithm = self.usable(id, Usage::GenerateDataKey)?.record.algorithm;
        let len = material::symmetric_key_len(algorithm);
        let plaintext = material::random_bytes(len, &self.rng)?;
        let encrypted = self.encrypt_for(id, Usage::GenerateDataKey, &plaintext, aad)?;
        Ok(DataKey {
            plaintext,
            encrypted,
        })
    }

    /// Signs `message` with the primary version: ECDSA gives a DER `ECDSA-Sig-Value`, Ed25519
    /// 64 raw bytes.
    pub fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signed, Error> {
        let key = self.usable(id, Usage::Sign)?;
        let version = version(&key, None)?;
        let signature = version
            .operator
            .sign(message, &self.rng)
            .ok_or(Error::Crypto { context: "signing" })?;
        Ok(Signed {
            signature,
            key_id: id.clone(),
            version: version.version,
        })
    }

    /// Verifies `signature` over `message` with `version` (`None`: the primary version).
    pub fn verify(
        &self,
        id: &KeyId,
        version: Option<u32>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error> {
        let key = self.usable(id, Usage::Verify)?;
        let public = public(&key, self::version(&key, version)?)?;
        Ok(material::verify(
            key.record.algorithm,
            public,
            message,
            signature,
        ))
    }

    /// The public key of `version` (`None`: the primary version) as SubjectPublicKeyInfo DER.
    pub fn public_key(&self, id: &KeyId, version: Option<u32>) -> Result<PublicKey, Error> {
        let key = self.usable(id, Usage::PublicKey)?;
        let version = self::version(&key, version)?;
        let algorithm = key.record.algorithm;
        let spki_der = spki::encode(algorithm, public(&key, version)?).ok_or(Error::Crypto {
            context: "encoding a public key",
        })?;
        Ok(PublicKey {
            spki_der,
            algorithm,
            version: version.version,
        })
    }

    /// The key `id`, checked for `usage`.
    fn usable(&self, id: &KeyId, usage: Usage) -> Result<Arc<LoadedKey>, Error> {
        let key = self.loaded(id)?;
        lifecycle::check_usage(&key.record, usage)?;
        Ok(key)
    }
}

/// Encrypts `plaintext` under `version` of `key`.
fn seal(
    key: &LoadedKey,
    version: &VersionKey,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Encrypted, Error> {
    let id = &key.record.id;
    let ciphertext = cipher::seal(aead(key, version)?, id, version.version, plaintext, aad)?;
    Ok(Encrypted {
        ciphertext,
        key_id: id.clone(),
        version: version.version,
    })
}

/// Most plaintext one SM2 encryption takes: SM2 protects keys and short secrets (its KDF runs
/// over the whole message, with no streaming), so bulk data goes under an SM4 data key.
pub const SM2_MAX_PLAINTEXT: usize = 64 * 1024;
/// The longest SM2 ciphertext decrypted: the plaintext limit and the DER overhead (C1, C3).
const SM2_MAX_CIPHERTEXT: usize = SM2_MAX_PLAINTEXT + 128;
/// Versions of an SM2 key a ciphertext is tried against: the primary and the three newest
/// others, so a caller cannot make one call cost a decryption per version of a key rotated
/// many times. Older ciphertexts: re-encrypt them before rotating further.
const SM2_VERSIONS_TRIED: usize = 4;

/// Encrypts `plaintext` to the primary version of the SM2 encryption key `key`.
fn sm2_encrypt(key: &LoadedKey, plaintext: &[u8], aad: &[u8]) -> Result<Encrypted, Error> {
    if plaintext.len() > SM2_MAX_PLAINTEXT {
        return Err(Error::InvalidArgument {
            field: "plaintext",
            reason: format!(
                "SM2 encrypts at most {SM2_MAX_PLAINTEXT} bytes; encrypt bulk data under an \
                 sm4-gcm data key"
            ),
        });
    }
    if !aad.is_empty() {
        return Err(Error::InvalidArgument {
            field: "aad",
            reason: "SM2 encryption takes no additional authenticated data".into(),
        });
    }
    let version = version(key, None)?;
    let ciphertext =
        national::sm2_encrypt(public(key, version)?, plaintext).map_err(|error| match error {
            NationalError::EmptyPlaintext => Error::InvalidArgument {
                field: "plaintext",
                reason: error.to_string(),
            },
            _ => Error::Crypto {
                context: "SM2 encryption",
            },
        })?;
    Ok(Encrypted {
        ciphertext,
        key_id: key.record.id.clone(),
        version: version.version,
    })
}

/// Decrypts the SM2 `ciphertext` with whichever version of `key` it was made for.
fn sm2_decrypt(key: &LoadedKey, ciphertext: &[u8], aad: &[u8]) -> Result<Decrypted, Error> {
    if !aad.is_empty() {
        return Err(Error::InvalidArgument {
            field: "aad",
            reason: "SM2 ciphertexts carry no additional authenticated data".into(),
        });
    }
    if ciphertext.len() > SM2_MAX_CIPHERTEXT {
        return Err(Error::InvalidArgument {
            field: "ciphertext",
            reason: format!(
                "an SM2 ciphertext holds at most {SM2_MAX_PLAINTEXT} bytes; this one is {} bytes",
                ciphertext.len()
            ),
        });
    }
    for version in key.versions_newest_primary_first().take(SM2_VERSIONS_TRIED) {
        let pair = version.operator.sm2().ok_or_else(|| Error::Corrupt {
            context: format!("key {} holds no SM2 key pair", key.record.id),
        })?;
        if let Ok(plaintext) = pair.decrypt(ciphertext) {
            return Ok(Decrypted {
                plaintext,
                key_id: key.record.id.clone(),
                version: version.version,
            });
        }
    }
    Err(Error::MalformedCiphertext {
        reason: format!(
            "it is not an SM2 ciphertext (GM/T 0009 DER) for key {}: malformed, altered, or \
             made for another key",
            key.record.id
        ),
    })
}

/// `version` of `key`, or its primary version.
fn version(key: &LoadedKey, version: Option<u32>) -> Result<&VersionKey, Error> {
    key.version(version)
        .map(|v| &**v)
        .ok_or_else(|| Error::UnknownVersion {
            id: key.record.id.clone(),
            version: version.unwrap_or(key.record.primary_version),
        })
}

/// The symmetric key of a version of a key checked to be symmetric.
fn aead<'a>(key: &LoadedKey, version: &'a VersionKey) -> Result<Aead<'a>, Error> {
    let corrupt = || Error::Corrupt {
        context: format!("key {} holds no symmetric key", key.record.id),
    };
    version.operator.aead().ok_or_else(corrupt)
}

/// The raw public key of a version of a key checked to be a signature key.
fn public<'a>(key: &LoadedKey, version: &'a VersionKey) -> Result<&'a [u8], Error> {
    let corrupt = || Error::Corrupt {
        context: format!("key {} holds no key pair", key.record.id),
    };
    version.operator.public_key().ok_or_else(corrupt)
}
