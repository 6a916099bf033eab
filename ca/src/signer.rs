//! CA keys held in the kms, as rcgen signing keys.
//!
//! A [`CaKey`] names a kms key and carries its public key; [`KmsSigner`] implements rcgen's
//! [`SigningKey`] by asking the kms to sign, so no CA private key ever exists in this crate.
//! rcgen's trait can only report a bare `RemoteKeyError`, so the signer keeps the kms error and
//! [`KmsSigner::error`] hands it back (a sealed kms stays a kms error, not a certificate error).

use std::cell::RefCell;
use std::sync::Arc;

use govtrust_kms::{Error as KmsError, KeyId, Kms};
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey, SubjectPublicKeyInfo};

use crate::Error;

/// A CA key: the kms key id and its public key.
pub(crate) struct CaKey {
    kms: Arc<Kms>,
    id: KeyId,
    public: SubjectPublicKeyInfo,
}

impl CaKey {
    /// The key `id` in `kms`, whose SubjectPublicKeyInfo is `spki_der`.
    pub(crate) fn new(kms: Arc<Kms>, id: KeyId, spki_der: &[u8]) -> Result<Self, Error> {
        let public = SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(Error::certificate("CA public key"))?;
        Ok(Self { kms, id, public })
    }

    /// The kms key id.
    pub(crate) fn id(&self) -> &KeyId {
        &self.id
    }

    /// The public key, as a certificate's subject key.
    pub(crate) fn public(&self) -> &SubjectPublicKeyInfo {
        &self.public
    }

    /// A signer for one certificate (or a few): it records the kms error, if any.
    pub(crate) fn signer(&self) -> KmsSigner<'_> {
        KmsSigner {
            key: self,
            failure: RefCell::new(None),
        }
    }
}

/// An rcgen signing key that signs with the kms.
pub(crate) struct KmsSigner<'a> {
    key: &'a CaKey,
    failure: RefCell<Option<KmsError>>,
}

impl KmsSigner<'_> {
    /// The error to report for `source`, an rcgen failure while this signer was in use: the kms
    /// error if the kms failed, else the rcgen error with `context`.
    pub(crate) fn error(&self, context: &'static str, source: rcgen::Error) -> Error {
        match self.failure.borrow_mut().take() {
            Some(kms) => Error::Kms(kms),
            None => Error::Certificate { context, source },
        }
    }
}

impl PublicKeyData for KmsSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.key.public.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key.public.algorithm()
    }
}

impl SigningKey for KmsSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self.key.kms.sign(&self.key.id, msg) {
            Ok(signed) => Ok(signed.signature),
            Err(e) => {
                tracing::warn!(key = %self.key.id, error = %e, "kms refused to sign a certificate");
                *self.failure.borrow_mut() = Some(e);
                Err(rcgen::Error::RemoteKeyError)
            }
        }
    }
}
