//! Sealed values: AES-256-GCM boxes the centre keeps in the store.
//!
//! A sealed value is `nonce (12 bytes) || ciphertext || tag (16 bytes)` with a fresh random
//! nonce. The AAD is never stored: the reader rebuilds it from where it found the value (key id,
//! version, purpose), so a value moved to another place fails to open.

use ring::aead::{self, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::Error;

/// An AES-256-GCM key that seals and opens values. The key schedule lives inside ring, which
/// frees it on drop without wiping it.
pub(crate) struct SealingKey(LessSafeKey);

impl SealingKey {
    /// Derives a sealing key from `secret` with HKDF-SHA256.
    pub(crate) fn derive(secret: &[u8], salt: &[u8], info: &[u8]) -> Result<SealingKey, Error> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret);
        let info = [info];
        let okm = prk
            .expand(&info, &aead::AES_256_GCM)
            .map_err(|_| Error::Crypto {
                context: "deriving a sealing key",
            })?;
        Ok(SealingKey(LessSafeKey::new(UnboundKey::from(okm))))
    }

    /// Seals `plaintext` bound to `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce = random_nonce()?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + aead::MAX_TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let body = out.get_mut(NONCE_LEN..).unwrap_or_default();
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            .map_err(|_| Error::Crypto {
                context: "sealing a record",
            })?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a sealed value; `None` when it does not authenticate under `aad`.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (nonce, body) = sealed.split_first_chunk::<NONCE_LEN>()?;
        let mut buffer = Zeroizing::new(body.to_vec());
        let nonce = Nonce::assume_unique_for_key(*nonce);
        let len = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .ok()?
            .len();
        buffer.truncate(len);
        Some(buffer)
    }
}

/// A fresh random 96-bit nonce.
pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN], Error> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| Error::Crypto {
            context: "random nonce",
        })?;
    Ok(nonce)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::derive(&[7u8; 32], b"salt", b"info").unwrap()
    }

    #[test]
    fn round_trip_and_binding() {
        let sealed = key().seal(b"here", b"secret").unwrap();
        assert_eq!(key().open(b"here", &sealed).unwrap().as_slice(), b"secret");
        assert!(key().open(b"there", &sealed).is_none());
        assert!(key().open(b"here", &sealed[..10]).is_none());
    }

    #[test]
    fn different_info_gives_different_keys() {
        let other = SealingKey::derive(&[7u8; 32], b"salt", b"other").unwrap();
        let sealed = key().seal(b"here", b"secret").unwrap();
        assert!(other.open(b"here", &sealed).is_none());
    }
}
