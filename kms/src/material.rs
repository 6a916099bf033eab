//! Key material: generating it, and loading it into ready-to-use ring key objects.
//!
//! Encodings: 32 raw bytes for AES-256-GCM; PKCS#8 DER (as ring writes and reads it) for ECDSA
//! P-256/P-384 and Ed25519. Every buffer of material this crate owns is `Zeroizing`. The ring
//! key objects (AES key schedule, private scalars) are freed on drop but not wiped: ring 0.17
//! offers no zeroization. A PKCS#11 custodian removes that limit.

use ring::aead::{self, LessSafeKey, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    self, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair,
};
use zeroize::Zeroizing;

use crate::{Algorithm, Error};

/// Length of an AES-256 key.
pub(crate) const AES_KEY_LEN: usize = 32;

/// A key version loaded for use.
// Operators live behind an `Arc` in the cache; boxing the AES key would only add a hop.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Operator {
    Aes(LessSafeKey),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Fresh material for `algorithm`, in its encoding.
pub(crate) fn generate(
    algorithm: Algorithm,
    rng: &SystemRandom,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let document = match algorithm {
        Algorithm::Aes256Gcm => return random_bytes(AES_KEY_LEN, rng),
        Algorithm::EcdsaP256Sha256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng)
        }
        Algorithm::EcdsaP384Sha384 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, rng)
        }
        Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(rng),
    };
    let document = document.map_err(|_| Error::Crypto {
        context: "generating key material",
    })?;
    Ok(Zeroizing::new(document.as_ref().to_vec()))
}

/// `len` random bytes.
pub(crate) fn random_bytes(len: usize, rng: &SystemRandom) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    rng.fill(&mut bytes).map_err(|_| Error::Crypto {
        context: "random bytes",
    })?;
    Ok(bytes)
}

impl Operator {
    /// Loads `material` as `algorithm`; `None` when ring rejects it.
    pub(crate) fn load(
        algorithm: Algorithm,
        material: &[u8],
        rng: &SystemRandom,
    ) -> Option<Operator> {
        match algorithm {
            Algorithm::Aes256Gcm if material.len() == AES_KEY_LEN => {
                let key = UnboundKey::new(&aead::AES_256_GCM, material).ok()?;
                Some(Operator::Aes(LessSafeKey::new(key)))
            }
            Algorithm::Aes256Gcm => None,
            Algorithm::EcdsaP256Sha256 => ecdsa(&ECDSA_P256_SHA256_ASN1_SIGNING, material, rng),
            Algorithm::EcdsaP384Sha384 => ecdsa(&ECDSA_P384_SHA384_ASN1_SIGNING, material, rng),
            Algorithm::Ed25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(material)
                .ok()
                .map(Operator::Ed25519),
        }
    }

    /// The AES key, for encryption.
    pub(crate) fn aead(&self) -> Option<&LessSafeKey> {
        match self {
            Operator::Aes(key) => Some(key),
            _ => None,
        }
    }

    /// The raw public key (uncompressed point for ECDSA, 32 bytes for Ed25519).
    pub(crate) fn public_key(&self) -> Option<&[u8]> {
        match self {
            Operator::Aes(_) => None,
            Operator::Ecdsa(pair) => Some(pair.public_key().as_ref()),
            Operator::Ed25519(pair) => Some(pair.public_key().as_ref()),
        }
    }

    /// Signs `message`: DER `ECDSA-Sig-Value` for ECDSA, 64 raw bytes for Ed25519.
    pub(crate) fn sign(&self, message: &[u8], rng: &SystemRandom) -> Option<Vec<u8>> {
        match self {
            Operator::Aes(_) => None,
            Operator::Ecdsa(pair) => pair.sign(rng, message).ok().map(|s| s.as_ref().to_vec()),
            Operator::Ed25519(pair) => Some(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// Verifies `signature` over `message` with the raw `public_key` of `algorithm`.
pub(crate) fn verify(
    algorithm: Algorithm,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    let verification: &dyn signature::VerificationAlgorithm = match algorithm {
        Algorithm::Aes256Gcm => return false,
        Algorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        Algorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
        Algorithm::Ed25519 => &signature::ED25519,
    };
    signature::UnparsedPublicKey::new(verification, public_key)
        .verify(message, signature)
        .is_ok()
}

fn ecdsa(
    algorithm: &'static EcdsaSigningAlgorithm,
    pkcs8: &[u8],
    rng: &SystemRandom,
) -> Option<Operator> {
    EcdsaKeyPair::from_pkcs8(algorithm, pkcs8, rng)
        .ok()
        .map(Operator::Ecdsa)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_loadable_material() {
        let rng = SystemRandom::new();
        for algorithm in Algorithm::ALL {
            let material = generate(algorithm, &rng).unwrap();
            let operator = Operator::load(algorithm, &material, &rng).unwrap();
            if let Some(public) = operator.public_key() {
                let signature = operator.sign(b"m", &rng).unwrap();
                assert!(verify(algorithm, public, b"m", &signature));
                assert!(!verify(algorithm, public, b"n", &signature));
            }
        }
    }

    #[test]
    fn material_of_another_algorithm_is_rejected() {
        let rng = SystemRandom::new();
        let p256 = generate(Algorithm::EcdsaP256Sha256, &rng).unwrap();
        assert!(Operator::load(Algorithm::EcdsaP384Sha384, &p256, &rng).is_none());
        assert!(Operator::load(Algorithm::Ed25519, &p256, &rng).is_none());
        assert!(Operator::load(Algorithm::Aes256Gcm, &p256, &rng).is_none());
        assert!(Operator::load(Algorithm::Aes256Gcm, &[0u8; 16], &rng).is_none());
    }
}
