//! Key transfer (配发): key material wrapped to a recipient with HPKE (RFC 9180).
//!
//! Suite: base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. The info string is
//! `govtrust-key-transfer-v1|<algorithm name>`, so material wrapped as one algorithm does not
//! unwrap as another; the AAD is empty. The plaintext is the material encoding: 32 raw bytes for
//! AES-256-GCM, PKCS#8 DER for ECDSA and Ed25519.
//!
//! The centre's own *import wrapping key* is an X25519 key pair created at `initialize`; its
//! private half is sealed in the store under the record key.

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::{Algorithm, Error};

type Kem = X25519HkdfSha256;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

const INFO_PREFIX: &[u8] = b"govtrust-key-transfer-v1|";

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

    /// Unwraps material wrapped to this key as `algorithm`. `Error::Authentication` when it
    /// does not open.
    pub(crate) fn unwrap(
        &self,
        algorithm: Algorithm,
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
            &info(algorithm),
            ciphertext,
            b"",
        );
        opened
            .map(Zeroizing::new)
            .map_err(|_| Error::Authentication)
    }
}

/// Wraps `material` of `algorithm` to the X25519 `recipient` public key. Returns the
/// encapsulated key and the ciphertext.
pub(crate) fn wrap(
    recipient: &[u8],
    algorithm: Algorithm,
    material: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let recipient = recipient_key(recipient)?;
    let mode = OpModeS::Base;
    let (encapped, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem>(
        &mode,
        &recipient,
        &info(algorithm),
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

/// The HPKE info string for `algorithm`.
fn info(algorithm: Algorithm) -> Vec<u8> {
    [INFO_PREFIX, algorithm.name().as_bytes()].concat()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn wrap_then_unwrap() {
        let key = WrappingKey::generate();
        let (enc, ct) = wrap(key.public(), Algorithm::Aes256Gcm, b"material").unwrap();
        let opened = key.unwrap(Algorithm::Aes256Gcm, &enc, &ct).unwrap();
        assert_eq!(opened.as_slice(), b"material");
    }

    #[test]
    fn algorithm_is_bound() {
        let key = WrappingKey::generate();
        let (enc, ct) = wrap(key.public(), Algorithm::Aes256Gcm, b"material").unwrap();
        assert!(matches!(
            key.unwrap(Algorithm::Ed25519, &enc, &ct),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn private_key_round_trips() {
        let key = WrappingKey::generate();
        let again = WrappingKey::from_private(&key.private_bytes()).unwrap();
        assert_eq!(again.public(), key.public());
    }

    #[test]
    fn bad_recipients_are_invalid_arguments() {
        let short = wrap(&[1u8; 31], Algorithm::Aes256Gcm, b"m");
        assert!(matches!(
            short,
            Err(Error::InvalidArgument {
                field: "recipient_public_key",
                ..
            })
        ));
        let low_order = wrap(&[0u8; 32], Algorithm::Aes256Gcm, b"m");
        assert!(matches!(
            low_order,
            Err(Error::InvalidArgument {
                field: "recipient_public_key",
                ..
            })
        ));
    }
}
