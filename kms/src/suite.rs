//! Algorithm suites: the international algorithms and China's commercial (national) ones, as one
//! value that profiles, CAs and keys carry, and the object identifiers they map to.
//!
//! | | international | national |
//! |---|---|---|
//! | signatures | ECDSA P-256 with SHA-256 | SM2 with SM3 (GB/T 32918.2), ID `1234567812345678` |
//! | public-key encryption | (HPKE for key distribution) | SM2 (GB/T 32918.4), C1C3C2 DER |
//! | hash | SHA-256 | SM3 (GB/T 32905) |
//! | authenticated encryption | AES-256-GCM | SM4-GCM (GB/T 32907, RFC 8998) |
//!
//! Everything that depends on the suite asks the value, never a name or an algorithm deep in a
//! function: what key a CA of the suite signs with ([`Suite::signature`]), what a data key is
//! ([`Suite::aead`]), what an SPKI or signature says it is ([`oid`]).

use std::fmt;
use std::str::FromStr;

use crate::{Algorithm, Error};

/// An algorithm suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Suite {
    /// ECDSA P-256/P-384, Ed25519, SHA-256, AES-256-GCM.
    #[default]
    International,
    /// SM2, SM3, SM4 (商用密码).
    National,
}

/// A hash function of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    Sha256,
    Sm3,
}

impl Hash {
    /// Its name: `sha256` or `sm3`.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Sm3 => "sm3",
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> [u8; 32] {
        match self {
            Hash::Sha256 => {
                let digest = ring::digest::digest(&ring::digest::SHA256, data);
                let mut out = [0u8; 32];
                out.copy_from_slice(digest.as_ref());
                out
            }
            Hash::Sm3 => crate::national::sm3(data),
        }
    }
}

impl Suite {
    /// Both suites.
    pub const ALL: [Suite; 2] = [Suite::International, Suite::National];

    /// Its name: `international` or `national`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::International => "international",
            Suite::National => "national",
        }
    }

    /// The algorithm of the suite's signature keys (CAs, OCSP signers, tree heads).
    pub fn signature(self) -> Algorithm {
        match self {
            Suite::International => Algorithm::EcdsaP256Sha256,
            Suite::National => Algorithm::Sm2Sm3,
        }
    }

    /// The suite's authenticated encryption, for keys and data keys.
    pub fn aead(self) -> Algorithm {
        match self {
            Suite::International => Algorithm::Aes256Gcm,
            Suite::National => Algorithm::Sm4Gcm,
        }
    }

    /// The suite's public-key encryption, if it has one a key can be escrowed for.
    pub fn public_key_encryption(self) -> Option<Algorithm> {
        match self {
            Suite::International => None,
            Suite::National => Some(Algorithm::Sm2Encrypt),
        }
    }

    /// The suite's hash.
    pub fn hash(self) -> Hash {
        match self {
            Suite::International => Hash::Sha256,
            Suite::National => Hash::Sm3,
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Suite {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Suite::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| Error::InvalidArgument {
                field: "suite",
                reason: format!("unknown suite {text:?}: expected international or national"),
            })
    }
}

/// Object identifiers of the suites' algorithms, dotted.
pub mod oid {
    /// `id-ecPublicKey` (RFC 5480): the SPKI algorithm of P-256, P-384 and SM2 keys.
    pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    /// `prime256v1` (RFC 5480).
    pub const P256: &str = "1.2.840.10045.3.1.7";
    /// `secp384r1` (RFC 5480).
    pub const P384: &str = "1.3.132.0.34";
    /// `id-Ed25519` (RFC 8410).
    pub const ED25519: &str = "1.3.101.112";
    /// `ecdsa-with-SHA256` (RFC 5758).
    pub const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
    /// `ecdsa-with-SHA384` (RFC 5758).
    pub const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
    /// The SM2 curve, as the SPKI parameter of an SM2 key (GM/T 0006).
    pub const SM2_CURVE: &str = "1.2.156.10197.1.301";
    /// SM2 signature with SM3 (GM/T 0006, GM/T 0015 certificates).
    pub const SM2_WITH_SM3: &str = "1.2.156.10197.1.501";
    /// SM3 (GM/T 0006).
    pub const SM3: &str = "1.2.156.10197.1.401";
    /// SM4 (GM/T 0006).
    pub const SM4: &str = "1.2.156.10197.1.104";
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn each_suite_names_its_algorithms() {
        for suite in Suite::ALL {
            assert_eq!(suite.name().parse::<Suite>().unwrap(), suite);
            assert_eq!(suite.signature().suite(), suite);
            assert_eq!(suite.aead().suite(), suite);
            assert!(suite.signature().signs());
            assert!(suite.aead().is_symmetric());
            if let Some(pke) = suite.public_key_encryption() {
                assert_eq!(pke.suite(), suite);
                assert!(pke.encrypts() && !pke.is_symmetric() && !pke.signs());
            }
        }
        assert!("gm".parse::<Suite>().is_err());
        assert_eq!(
            hex::encode(Hash::Sm3.digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(Hash::Sha256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
