//! SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) DER for the centre's signature keys.
//!
//! Every supported key has a fixed-length public key, so its SPKI is a fixed DER prefix
//! (SEQUENCE, AlgorithmIdentifier, BIT STRING header) followed by the raw public key:
//! - P-256: id-ecPublicKey with prime256v1 (RFC 5480), 65-byte uncompressed point;
//! - P-384: id-ecPublicKey with secp384r1 (RFC 5480), 97-byte uncompressed point;
//! - Ed25519: id-Ed25519 without parameters (RFC 8410), 32 bytes;
//! - SM2 (signature and encryption keys alike): id-ecPublicKey with the SM2 curve
//!   `1.2.156.10197.1.301` (GM/T 0006, as OpenSSL writes it), 65-byte uncompressed point.

use crate::Algorithm;

const P256_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P384_PREFIX: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
const SM2_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d, 0x03, 0x42, 0x00,
];
const ED25519_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The SPKI DER of `public_key`; `None` for a symmetric algorithm or a key of the wrong length.
pub(crate) fn encode(algorithm: Algorithm, public_key: &[u8]) -> Option<Vec<u8>> {
    let (prefix, len) = match algorithm {
        Algorithm::Aes256Gcm | Algorithm::Sm4Gcm => return None,
        Algorithm::EcdsaP256Sha256 => (P256_PREFIX, 65),
        Algorithm::Sm2Sm3 | Algorithm::Sm2Encrypt => (SM2_PREFIX, 65),
        Algorithm::EcdsaP384Sha384 => (P384_PREFIX, 97),
        Algorithm::Ed25519 => (ED25519_PREFIX, 32),
    };
    (public_key.len() == len).then(|| [prefix, public_key].concat())
}

/// The uncompressed point inside an SM2 SubjectPublicKeyInfo DER.
pub(crate) fn sm2_point(spki: &[u8]) -> Option<&[u8]> {
    spki.strip_prefix(SM2_PREFIX)
        .filter(|point| point.len() == 65)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn lengths_in_the_prefix_match_the_key() {
        for (algorithm, len) in [
            (Algorithm::EcdsaP256Sha256, 65),
            (Algorithm::EcdsaP384Sha384, 97),
            (Algorithm::Ed25519, 32),
            (Algorithm::Sm2Sm3, 65),
        ] {
            let der = encode(algorithm, &vec![4u8; len]).unwrap();
            assert_eq!(usize::from(der[1]) + 2, der.len(), "{algorithm}");
            assert!(encode(algorithm, &vec![4u8; len - 1]).is_none());
        }
        assert!(encode(Algorithm::Aes256Gcm, &[0u8; 32]).is_none());
    }

    #[test]
    fn ed25519_matches_rfc8410_example() {
        // RFC 8410 §10.1.
        let key = hex::decode("19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1")
            .unwrap();
        let expected = hex::decode(
            "302a300506032b657003210019bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1",
        )
        .unwrap();
        assert_eq!(encode(Algorithm::Ed25519, &key).unwrap(), expected);
    }
}
