//! Key transfer (配发): key material wrapped to a recipient with HPKE (RFC 9180).
//!
//! Suite: base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM; the AAD is empty.
//! The plaintext is the material encoding: 32 raw bytes for AES-256-GCM, PKCS#8 DER for ECDSA
//! and Ed25519.
//!
//! The `info` binds the bundle's terms ([`BundleTerms`]), so a bundle with its recipient,
//! source, policy, encryption allotment or dates altered does not unwrap:
//!
//! ```text
//! info  = "govtrust-key-transfer-v3" || field*        field = u32 BE byte length || UTF-8 bytes
//! fields, in order: algorithm name, bundle id, source centre (deployment id), source key id,
//!   source version (decimal), exporter, recipient, exportable ("true" | "false"),
//!   encryptions (decimal), exported at and expires at (Unix milliseconds, decimal)
//! ```
//!
//! The terms are not secret: the bundle carries them in the clear and the recipient rebuilds the
//! `info` from them. Base mode authenticates the terms to whoever holds the recipient's private
//! key, not the exporting centre: anyone can wrap material they already hold with terms of their
//! choosing. The importing centre therefore trusts a bundle's claim to come from one of its own
//! keys only when its own export record agrees (see [`crate::distribution`]).
//!
//! The centre's own *import wrapping key* is an X25519 key pair created at `initialize`; its
//! private half is sealed in the store under the record key.

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::record::unix_ms;
use crate::{BundleTerms, Error};

type Kem = X25519HkdfSha256;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

const INFO_PREFIX: &[u8] = b"govtrust-key-transfer-v3";

/// Longest `info` accepted. The hpke crate panics at 2^16 - 5 bytes; terms of real bundles
/// (free-text fields are at most 1 KiB each) stay far below this.
const MAX_INFO_LEN: usize = 8192;

/// Length of an X25519 public key and of an encapsulated key.
pub(crate) const PUBLIC_KEY_LEN: usize = 32;

/// The centre's X25519 import wrapping key. `Debug` is not implemented; the private key is
/// zeroized on drop by x25519-dalek.
pub(crate) struct WrappingKey {
    private: PrivateKey,
    public: Vec<u8>,
}

impl WrappingKey {
    /// A fresh key pair from the system's CSPRNG.
    pub(crate) fn generate() -> WrappingKey {
        let (private, public) = Kem::gen_keypair();
        WrappingKey {
            private,
            public: public.to_bytes().to_vec(),
        }
    }

    /// The key pair from its serialized private key.
    pub(crate) fn from_private(bytes: &[u8]) -> Option<WrappingKey> {
        let private = PrivateKey::from_bytes(bytes).ok()?;
        let public = Kem::sk_to_pk(&private).to_bytes().to_vec();
        Some(WrappingKey { private, public })
    }

    /// The serialized private key, for sealing into the store.
    pub(crate) fn private_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = self.private.to_bytes();
        let copy = Zeroizing::new(bytes.to_vec());
        zeroize::Zeroize::zeroize(bytes.as_mut_slice());
        copy
    }

    /// The 32-byte X25519 public key.
    pub(crate) fn public(&self) -> &[u8] {
        &self.public
    }

    /// Unwraps material wrapped to this key under `terms`. `Error::Authentication` when it
    /// does not open: wrapped to another key, altered, or with other terms.
    pub(crate) fn unwrap(
        &self,
        terms: &BundleTerms,
        encapsulated_key: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let encapped =
            EncappedKey::from_bytes(encapsulated_key).map_err(|_| Error::InvalidArgument {
                field: "encapsulated_key",
                reason: format!(
                    "expected {PUBLIC_KEY_LEN} bytes, got {}",
                    encapsulated_key.len()
                ),
            })?;
        let mode = OpModeR::Base;
        let opened = hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
            &mode,
            &self.private,
            &encapped,
            &checked_info(terms)?,
            ciphertext,
            b"",
        );
        opened
            .map(Zeroizing::new)
            .map_err(|_| Error::Authentication)
    }
}

/// Wraps `material` to the X25519 `recipient` public key under `terms`. Returns the
/// encapsulated key and the ciphertext.
pub(crate) fn wrap(
    recipient: &[u8],
    terms: &BundleTerms,
    material: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let recipient = recipient_key(recipient)?;
    let mode = OpModeS::Base;
    let (encapped, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem>(
        &mode,
        &recipient,
        &checked_info(terms)?,
        material,
        b"",
    )
    .map_err(|_| Error::InvalidArgument {
        field: "recipient_public_key",
        reason: "not a usable X25519 public key (a low-order point?)".into(),
    })?;
    Ok((encapped.to_bytes().to_vec(), ciphertext))
}

fn recipient_key(bytes: &[u8]) -> Result<<Kem as hpke::Kem>::PublicKey, Error> {
    <Kem as hpke::Kem>::PublicKey::from_bytes(bytes).map_err(|_| Error::InvalidArgument {
        field: "recipient_public_key",
        reason: format!(
            "expected a {PUBLIC_KEY_LEN}-byte X25519 public key, got {} bytes",
            bytes.len()
        ),
    })
}

/// The HPKE info for `terms`, refused (instead of a panic in hpke) when too long.
fn checked_info(terms: &BundleTerms) -> Result<Vec<u8>, Error> {
    let info = info(terms);
    if info.len() > MAX_INFO_LEN {
        return Err(Error::InvalidArgument {
            field: "terms",
            reason: format!(
                "the bundle's terms take {} bytes; at most {MAX_INFO_LEN}",
                info.len()
            ),
        });
    }
    Ok(info)
}

/// The HPKE info for `terms`: see the module docs.
pub(crate) fn info(terms: &BundleTerms) -> Vec<u8> {
    let fields = [
        terms.algorithm.name().to_owned(),
        terms.id.to_string(),
        terms.source_centre.clone(),
        terms.source_key.to_string(),
        terms.source_version.to_string(),
        terms.exporter.clone(),
        terms.recipient.clone(),
        terms.exportable.to_string(),
        terms.encryptions.to_string(),
        unix_ms(terms.exported_at).to_string(),
        unix_ms(terms.expires_at).to_string(),
    ];
    let mut info = INFO_PREFIX.to_vec();
    for field in &fields {
        // Fields are bounded far below 4 GiB by the request size limits.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        info.extend_from_slice(&len.to_be_bytes());
        info.extend_from_slice(field.as_bytes());
    }
    info
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::{Algorithm, BundleId, KeyId};

    fn terms() -> BundleTerms {
        BundleTerms {
            id: BundleId::generate().unwrap(),
            source_centre: "d-0123".into(),
            source_key: KeyId::generate().unwrap(),
            source_version: 1,
            algorithm: Algorithm::Aes256Gcm,
            exporter: "spiffe://gov/org/a/sys/x".into(),
            recipient: "spiffe://gov/org/b/sys/y".into(),
            exportable: false,
            encryptions: 1 << 29,
            exported_at: UNIX_EPOCH + Duration::from_millis(1_000),
            expires_at: UNIX_EPOCH + Duration::from_millis(2_000),
        }
    }

    #[test]
    fn wrap_then_unwrap() {
        let key = WrappingKey::generate();
        let (enc, ct) = wrap(key.public(), &terms(), b"material").unwrap();
        assert!(key.unwrap(&terms(), &enc, &ct).is_err(), "a new bundle id");
        let terms = terms();
        let (enc, ct) = wrap(key.public(), &terms, b"material").unwrap();
        let opened = key.unwrap(&terms, &enc, &ct).unwrap();
        assert_eq!(opened.as_slice(), b"material");
    }

    #[test]
    fn every_term_is_bound() {
        let key = WrappingKey::generate();
        let terms = terms();
        let (enc, ct) = wrap(key.public(), &terms, b"material").unwrap();
        let later = terms.expires_at + Duration::from_millis(1);
        let altered: [&dyn Fn(&mut BundleTerms); 11] = [
            &|t| t.id = BundleId::generate().unwrap(),
            &|t| t.source_centre.push('x'),
            &|t| t.source_key = KeyId::generate().unwrap(),
            &|t| t.source_version = 2,
            &|t| t.algorithm = Algorithm::Ed25519,
            &|t| t.exporter.push('x'),
            &|t| t.recipient = "spiffe://gov/org/c/sys/z".into(),
            &|t| t.exportable = true,
            &|t| t.encryptions += 1,
            &|t| t.exported_at = UNIX_EPOCH,
            &|t| t.expires_at = later,
        ];
        for (n, alter) in altered.iter().enumerate() {
            let mut changed = terms.clone();
            alter(&mut changed);
            assert!(
                matches!(key.unwrap(&changed, &enc, &ct), Err(Error::Authentication)),
                "field {n}"
            );
        }
    }

    #[test]
    fn fields_cannot_slide_into_each_other() {
        let mut a = terms();
        let mut b = terms();
        b.id = a.id.clone();
        b.source_key = a.source_key.clone();
        a.exporter = "spiffe://x".into();
        a.recipient = "y".into();
        b.exporter = "spiffe://".into();
        b.recipient = "xy".into();
        assert_ne!(info(&a), info(&b));
    }

    #[test]
    fn oversized_terms_are_refused_not_a_panic() {
        let key = WrappingKey::generate();
        let mut terms = terms();
        terms.exporter = "x".repeat(70_000);
        for result in [
            wrap(key.public(), &terms, b"m").map(|_| ()),
            key.unwrap(&terms, &[9u8; 32], b"c").map(|_| ()),
        ] {
            assert!(matches!(
                result,
                Err(Error::InvalidArgument { field: "terms", .. })
            ));
        }
    }

    #[test]
    fn private_key_round_trips() {
        let key = WrappingKey::generate();
        let again = WrappingKey::from_private(&key.private_bytes()).unwrap();
        assert_eq!(again.public(), key.public());
    }

    #[test]
    fn bad_recipients_are_invalid_arguments() {
        let short = wrap(&[1u8; 31], &terms(), b"m");
        assert!(matches!(
            short,
            Err(Error::InvalidArgument {
                field: "recipient_public_key",
                ..
            })
        ));
        let low_order = wrap(&[0u8; 32], &terms(), b"m");
        assert!(matches!(
            low_order,
            Err(Error::InvalidArgument {
                field: "recipient_public_key",
                ..
            })
        ));
    }
}
