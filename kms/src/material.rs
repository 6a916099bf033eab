//! Key material: generating it, and loading it into ready-to-use ring key objects.
//!
//! Encodings: 32 raw bytes for AES-256-GCM, 16 for SM4-GCM; PKCS#8 DER (as ring writes and reads
//! it) for ECDSA P-256/P-384 and Ed25519, and for SM2 (the SM2 curve as the EC parameter, as
//! OpenSSL writes it). Every buffer of material this crate owns is `Zeroizing`. The ring key
//! objects (AES key schedule, private scalars) are freed on drop but not wiped: ring 0.17 offers
//! no zeroization (the SM2 and SM4 key types wipe themselves). A PKCS#11 custodian removes that
//! limit.

use ring::aead::{self, LessSafeKey, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    self, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair,
};
use zeroize::Zeroizing;

use crate::cipher::Aead;
use crate::national::{self, SM4_KEY_LEN, Sm2KeyPair, Sm4Gcm};
use crate::{Algorithm, Error};

/// Length of an AES-256 key.
pub(crate) const AES_KEY_LEN: usize = 32;

/// Length of the keys of a symmetric `algorithm` (and of the data keys it makes).
pub(crate) fn symmetric_key_len(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::Sm4Gcm => SM4_KEY_LEN,
        _ => AES_KEY_LEN,
    }
}

/// A key version loaded for use.
// Operators live behind an `Arc` in the cache; boxing the AES key would only add a hop.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Operator {
    Aes(LessSafeKey),
    Sm4(Sm4Gcm),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Sm2(Box<Sm2KeyPair>),
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
        Algorithm::Sm4Gcm => return random_bytes(SM4_KEY_LEN, rng),
        Algorithm::Sm2Sm3 | Algorithm::Sm2Encrypt => {
            return national::sm2_generate().map_err(|_| Error::Crypto {
                context: "generating an SM2 key",
            });
        }
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
            Algorithm::Sm4Gcm => Sm4Gcm::new(material).ok().map(Operator::Sm4),
            Algorithm::Sm2Sm3 | Algorithm::Sm2Encrypt => Sm2KeyPair::from_pkcs8(material)
                .ok()
                .map(|pair| Operator::Sm2(Box::new(pair))),
        }
    }

    /// The symmetric key, for encryption.
    pub(crate) fn aead(&self) -> Option<Aead<'_>> {
        match self {
            Operator::Aes(key) => Some(Aead::Aes(key)),
            Operator::Sm4(key) => Some(Aead::Sm4(key)),
            _ => None,
        }
    }

    /// The SM2 key pair, for SM2 decryption.
    pub(crate) fn sm2(&self) -> Option<&Sm2KeyPair> {
        match self {
            Operator::Sm2(pair) => Some(pair),
            _ => None,
        }
    }

    /// The raw public key (uncompressed point for ECDSA and SM2, 32 bytes for Ed25519).
    pub(crate) fn public_key(&self) -> Option<&[u8]> {
        match self {
            Operator::Aes(_) | Operator::Sm4(_) => None,
            Operator::Ecdsa(pair) => Some(pair.public_key().as_ref()),
            Operator::Ed25519(pair) => Some(pair.public_key().as_ref()),
            Operator::Sm2(pair) => Some(pair.public_key()),
        }
    }

    /// Signs `message`: DER `ECDSA-Sig-Value` for ECDSA, DER `(r, s)` for SM2, 64 raw bytes for
    /// Ed25519.
    pub(crate) fn sign(&self, message: &[u8], rng: &SystemRandom) -> Option<Vec<u8>> {
        match self {
            Operator::Aes(_) | Operator::Sm4(_) => None,
            Operator::Ecdsa(pair) => pair.sign(rng, message).ok().map(|s| s.as_ref().to_vec()),
            Operator::Ed25519(pair) => Some(pair.sign(message).as_ref().to_vec()),
            Operator::Sm2(pair) => pair.sign(message).ok(),
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
        Algorithm::Aes256Gcm | Algorithm::Sm4Gcm | Algorithm::Sm2Encrypt => return false,
        Algorithm::Sm2Sm3 => {
            return national::sm2_verify(public_key, message, signature).unwrap_or(false);
        }
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
            assert_eq!(
                operator.aead().is_some(),
                algorithm.is_symmetric(),
                "{algorithm}"
            );
            assert_eq!(operator.public_key().is_some(), !algorithm.is_symmetric());
            if let (true, Some(public)) = (algorithm.signs(), operator.public_key()) {
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
        assert!(Operator::load(Algorithm::Sm4Gcm, &[0u8; 32], &rng).is_none());
        assert!(Operator::load(Algorithm::Sm2Sm3, &p256, &rng).is_none());
        let sm2 = generate(Algorithm::Sm2Sm3, &rng).unwrap();
        assert!(Operator::load(Algorithm::EcdsaP256Sha256, &sm2, &rng).is_none());
    }
}
