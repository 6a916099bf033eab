//! Custody of signing keys: the [`Signer`] trait, and the centre's own signers.
//!
//! A [`Signer`] is a signing key held somewhere else: its holder signs, the caller never sees
//! the private key. [`Kms::signer`] hands out one for a signature key of this centre; a
//! hardware security module (PKCS#11) or an SM2 key will implement the same trait. The trait
//! is kept minimal so that any such custodian can.
//!
//! A centre's signer signs through [`Kms::sign`], so every call is checked as that one is: a
//! sealed centre, a suspended, retired or destroyed key, or one whose destruction is scheduled
//! refuses to sign, whenever the signer was made.

use std::sync::Arc;

use crate::{Algorithm, Error, KeyId, Kms};

/// A signing key in someone's custody.
pub trait Signer: Send + Sync {
    /// The signature algorithm.
    fn algorithm(&self) -> Algorithm;

    /// The public key, as SubjectPublicKeyInfo DER.
    fn public_key_der(&self) -> &[u8];

    /// Signs `message`, hashing it as the algorithm says. ECDSA gives a DER `ECDSA-Sig-Value`,
    /// Ed25519 64 raw bytes: the encodings an X.509 signature carries.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

impl Kms {
    /// A signer for the signature key `id`: its primary version's public key, and signing with
    /// [`Kms::sign`]. Needs the centre unsealed. Refuses a symmetric key
    /// ([`Error::WrongAlgorithm`]) and a key whose public key may not be read (destroyed, or
    /// scheduled for destruction); a key that may not sign now (suspended, for one) still gives
    /// a signer, which refuses each signature as [`Kms::sign`] does.
    ///
    /// The public key is read once: after the key is rotated, make a new signer.
    pub fn signer(self: &Arc<Self>, id: &KeyId) -> Result<Arc<dyn Signer>, Error> {
        let algorithm = self.loaded(id)?.record.algorithm;
        if !algorithm.signs() {
            return Err(Error::WrongAlgorithm {
                id: id.clone(),
                algorithm,
                operation: "sign",
            });
        }
        let public = self.public_key(id, None)?;
        Ok(Arc::new(KmsSigner {
            kms: Arc::clone(self),
            id: id.clone(),
            algorithm: public.algorithm,
            public_key_der: public.spki_der,
        }))
    }
}

/// A signature key of this centre.
struct KmsSigner {
    kms: Arc<Kms>,
    id: KeyId,
    algorithm: Algorithm,
    public_key_der: Vec<u8>,
}

impl Signer for KmsSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.kms.sign(&self.id, message)?.signature)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use govtrust_store::{AuditEvent, AuditSink, Batch, MemoryStore, Store};
    use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};

    use super::*;
    use crate::{KeySpec, KeyState, StateChange, SystemClock};

    struct NoAudit;

    impl AuditSink for NoAudit {
        fn stage(&self, _: &mut Batch, _: &AuditEvent) -> Result<(), govtrust_store::Error> {
            Ok(())
        }
    }

    /// An unsealed 2-of-2 centre.
    fn unsealed() -> Arc<Kms> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let shares = Kms::initialize(&*store, &NoAudit, &SystemClock, 2, 2).unwrap();
        let kms = Kms::open(store, Arc::new(NoAudit), Arc::new(SystemClock)).unwrap();
        for share in &shares {
            kms.unseal(share.contents.as_bytes()).unwrap();
        }
        Arc::new(kms)
    }

    fn key(kms: &Kms, algorithm: Algorithm) -> KeyId {
        let spec = KeySpec {
            algorithm,
            exportable: false,
            owner: "spiffe://gov.example/person/x".into(),
            owner_generation: 0,
            description: String::new(),
            pre_active: false,
            internal: false,
        };
        kms.create_key("test", spec).unwrap().id
    }

    /// True when `signature` verifies under the SPKI `public`, checked with ring alone (SM2
    /// with the national module's verifier).
    fn verifies(algorithm: Algorithm, public: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let (_, spki) = SubjectPublicKeyInfo::from_der(public).unwrap();
        let verification: &'static dyn VerificationAlgorithm = match algorithm {
            Algorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
            Algorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
            Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::Sm2Sm3 => {
                let point = spki.subject_public_key.data.as_ref();
                return crate::national::sm2_verify(point, message, signature).unwrap();
            }
            _ => panic!("not a signature algorithm"),
        };
        UnparsedPublicKey::new(verification, spki.subject_public_key.data.as_ref())
            .verify(message, signature)
            .is_ok()
    }

    #[test]
    fn a_signer_signs_what_its_public_key_verifies() {
        let kms = unsealed();
        for algorithm in Algorithm::ALL.into_iter().filter(|a| a.signs()) {
            let id = key(&kms, algorithm);
            let signer = kms.signer(&id).unwrap();
            assert_eq!(signer.algorithm(), algorithm);
            assert_eq!(
                signer.public_key_der(),
                kms.public_key(&id, None).unwrap().spki_der
            );
            let signature = signer.sign(b"tbsCertificate").unwrap();
            assert!(verifies(
                algorithm,
                signer.public_key_der(),
                b"tbsCertificate",
                &signature
            ));
            assert!(
                kms.verify(&id, None, b"tbsCertificate", &signature)
                    .unwrap()
            );
            assert!(!verifies(
                algorithm,
                signer.public_key_der(),
                b"other",
                &signature
            ));
        }
    }

    #[test]
    fn an_aes_key_gives_no_signer() {
        let kms = unsealed();
        let id = key(&kms, Algorithm::Aes256Gcm);
        let refused = kms.signer(&id).map(|_| ()).unwrap_err();
        assert!(
            matches!(
                &refused,
                Error::WrongAlgorithm {
                    algorithm: Algorithm::Aes256Gcm,
                    operation: "sign",
                    ..
                }
            ),
            "{refused:?}"
        );
        assert_eq!(
            refused.to_string(),
            format!("key {id} is an aes-256-gcm key: sign is not possible with it")
        );
    }

    #[test]
    fn a_suspended_key_refuses_through_its_signer_as_through_the_centre() {
        let kms = unsealed();
        let id = key(&kms, Algorithm::EcdsaP256Sha256);
        let signer = kms.signer(&id).unwrap();
        kms.set_state("test", &id, StateChange::Suspend, "")
            .unwrap();
        let direct = kms.sign(&id, b"m").unwrap_err();
        let through = signer.sign(b"m").unwrap_err();
        assert!(
            matches!(
                &through,
                Error::KeyState {
                    state: KeyState::Suspended,
                    operation: "sign",
                    ..
                }
            ),
            "{through:?}"
        );
        assert_eq!(through.to_string(), direct.to_string());
        // A signer made while suspended refuses too; resumed, both sign again.
        let later = kms.signer(&id).unwrap();
        assert!(later.sign(b"m").is_err());
        kms.set_state("test", &id, StateChange::Resume, "").unwrap();
        signer.sign(b"m").unwrap();
        later.sign(b"m").unwrap();
    }

    #[test]
    fn a_destroyed_key_refuses_through_its_signer_as_through_the_centre() {
        let kms = unsealed();
        let id = key(&kms, Algorithm::Ed25519);
        let signer = kms.signer(&id).unwrap();
        kms.destroy_now("test", &id, "test", &Batch::new()).unwrap();
        let direct = kms.sign(&id, b"m").unwrap_err();
        let through = signer.sign(b"m").unwrap_err();
        assert!(
            matches!(&through, Error::KeyDestroyed { .. }),
            "{through:?}"
        );
        assert_eq!(through.to_string(), direct.to_string());
        let refused = kms.signer(&id).map(|_| ()).unwrap_err();
        assert!(matches!(refused, Error::KeyDestroyed { .. }), "{refused:?}");
    }

    #[test]
    fn a_sealed_centre_refuses_through_a_signer() {
        let kms = unsealed();
        let id = key(&kms, Algorithm::EcdsaP384Sha384);
        let signer = kms.signer(&id).unwrap();
        kms.seal("test", "local", "").unwrap();
        assert!(matches!(signer.sign(b"m"), Err(Error::Sealed)));
        assert!(matches!(kms.signer(&id).map(|_| ()), Err(Error::Sealed)));
    }
}
