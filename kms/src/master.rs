//! The deployment's master key and the keys derived from it.
//!
//! The master key exists in memory only: at `initialize` (to split it into shares, then dropped)
//! and during an unseal (reconstructed from shares, checked, used to derive the record key, then
//! dropped). It is never written anywhere. It is not used directly as a cipher key:
//! - the *record key* (HKDF-SHA256, info `govtrust-kms-record-v1`) seals every key record;
//! - the *check key* (HKDF-SHA256, info `govtrust-kms-check-v1`) seals the check value that
//!   tells a right master key from a wrong one.
//!
//! - the *digest key* (HKDF-SHA256, info `govtrust-kms-digest-v1`), a pseudorandom key from
//!   which each label's HMAC-SHA256 key is expanded: keyed digests of identifiers that must
//!   not be stored in plain (a person's national ID), see [`crate::Kms::keyed_digest`].
//!
//! All derivations use the deployment id as the HKDF salt.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Error;
use crate::sealed::SealingKey;

/// Length of the master key in bytes.
pub(crate) const MASTER_KEY_LEN: usize = 32;

const RECORD_INFO: &[u8] = b"govtrust-kms-record-v1";
const CHECK_INFO: &[u8] = b"govtrust-kms-check-v1";
const DIGEST_INFO: &[u8] = b"govtrust-kms-digest-v1";
const CHECK_PLAINTEXT: &[u8] = b"govtrust master key check v1";

/// The 256-bit master key. Zeroized on drop; no `Clone`, and `Debug` is redacted.
pub(crate) struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh master key from the system's CSPRNG.
    pub(crate) fn generate() -> Result<MasterKey, Error> {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        SystemRandom::new()
            .fill(key.as_mut_slice())
            .map_err(|_| Error::Crypto {
                context: "generating the master key",
            })?;
        Ok(MasterKey(key))
    }

    /// A master key from reconstructed bytes; `None` unless exactly 32 bytes.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<MasterKey> {
        if bytes.len() != MASTER_KEY_LEN {
            return None;
        }
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        // Cannot panic: the lengths were just checked equal.
        key.copy_from_slice(bytes);
        Some(MasterKey(key))
    }

    /// The raw key, for splitting into shares only.
    pub(crate) fn expose(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// The key that seals every key record of `deployment`.
    pub(crate) fn record_key(&self, deployment: &str) -> Result<SealingKey, Error> {
        SealingKey::derive(self.expose(), deployment.as_bytes(), RECORD_INFO)
    }

    /// The digest key of `deployment`: see [`DigestKey`].
    pub(crate) fn digest_key(&self, deployment: &str) -> DigestKey {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, deployment.as_bytes());
        let prk = salt.extract(self.expose());
        DigestKey(prk)
    }

    /// A check value: a constant sealed under the check key, AAD the deployment id.
    pub(crate) fn check_value(&self, deployment: &str) -> Result<Vec<u8>, Error> {
        let key = SealingKey::derive(self.expose(), deployment.as_bytes(), CHECK_INFO)?;
        key.seal(deployment.as_bytes(), CHECK_PLAINTEXT)
    }

    /// True when `check` was made by [`MasterKey::check_value`] with this key and deployment.
    pub(crate) fn matches(&self, deployment: &str, check: &[u8]) -> Result<bool, Error> {
        let key = SealingKey::derive(self.expose(), deployment.as_bytes(), CHECK_INFO)?;
        let opened = key.open(deployment.as_bytes(), check);
        Ok(opened.is_some_and(|plain| bool::from(plain.as_slice().ct_eq(CHECK_PLAINTEXT))))
    }
}

/// The keys of keyed digests: a pseudorandom key (HKDF-extract of the master key), from which
/// the HMAC-SHA256 key of each label is expanded (info `govtrust-kms-digest-v1` and the label),
/// so digests under one label say nothing about another's. Its bytes live inside ring; `Debug`
/// prints nothing of it.
pub(crate) struct DigestKey(hkdf::Prk);

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DigestKey(<redacted>)")
    }
}

impl DigestKey {
    /// HMAC-SHA256 of `data` under the key of `label`.
    pub(crate) fn digest(&self, label: &str, data: &[u8]) -> Result<[u8; 32], Error> {
        let info = [DIGEST_INFO, b"/", label.as_bytes()];
        let okm = self
            .0
            .expand(&info, hmac::HMAC_SHA256)
            .map_err(|_| Error::Crypto {
                context: "deriving a digest key",
            })?;
        let tag = hmac::sign(&hmac::Key::from(okm), data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn check_value_tells_keys_apart() {
        let key = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let check = key.check_value("d-1").unwrap();
        assert!(key.matches("d-1", &check).unwrap());
        assert!(!other.matches("d-1", &check).unwrap());
        assert!(!key.matches("d-2", &check).unwrap());
    }

    #[test]
    fn keyed_digests_depend_on_key_deployment_and_label() {
        let key = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let digest =
            |k: &MasterKey, d: &str, l: &str| k.digest_key(d).digest(l, b"110101").unwrap();
        let one = digest(&key, "d-1", "national-id");
        assert_eq!(one, digest(&key, "d-1", "national-id"));
        assert_ne!(one, digest(&other, "d-1", "national-id"));
        assert_ne!(one, digest(&key, "d-2", "national-id"));
        assert_ne!(one, digest(&key, "d-1", "passport"));
        assert_eq!(
            format!("{:?}", key.digest_key("d-1")),
            "DigestKey(<redacted>)"
        );
    }

    #[test]
    fn from_bytes_wants_32_bytes() {
        assert!(MasterKey::from_bytes(&[1u8; 31]).is_none());
        assert!(MasterKey::from_bytes(&[1u8; 33]).is_none());
        assert_eq!(
            MasterKey::from_bytes(&[1u8; 32]).unwrap().expose(),
            &[1u8; 32]
        );
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let key = MasterKey::generate().unwrap();
        let printed = format!("{key:?}");
        assert!(!printed.contains(&hex::encode(key.expose())));
        assert!(!printed.contains(&hex::encode_upper(key.expose())));
        assert!(!printed.contains(&format!("{:?}", key.expose())));
        assert!(
            !printed
                .as_bytes()
                .windows(8)
                .any(|w| key.expose().windows(8).any(|k| k == w))
        );
    }
}
