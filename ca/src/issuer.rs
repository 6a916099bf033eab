//! The one signing path of the CA: an [`Issuer`] is one CA of the hierarchy, its certificate
//! and its key in custody (`Arc<dyn Signer>`, from the kms), and every certificate the CA signs
//! goes through [`Issuer::sign`] (the root's own through [`self_signed`]): leaves
//! (`issuance`) and the issuing CAs (`hierarchy`).
//!
//! It also holds what every certificate shares: its [`Serial`], how far validity starts in the
//! past ([`CLOCK_SKEW`]) and validity arithmetic ([`later`]), and [`Authority`], the name of a
//! CA as records and the API give it.
//!
//! rcgen signs through its `SigningKey` trait, which can only report a bare `RemoteKeyError`:
//! the adapter here keeps the signer's own error and hands it back, so a sealed kms stays
//! [`Error::Kms`], not a certificate error. No CA private key ever exists in this crate.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use govtrust_kms::{Error as KmsError, Signer};
use rcgen::{
    CertificateParams, CertificateRevocationListParams, PublicKeyData, SerialNumber,
    SignatureAlgorithm, SigningKey, SubjectPublicKeyInfo,
};
use ring::rand::SecureRandom;

use crate::Error;

/// How far `not_before` is set back, for relying parties whose clocks run a little behind.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// The first byte of every serial this CA issues: non-zero and below 0x80, so the DER INTEGER
/// is positive and minimal whatever the 16 bytes after it are.
const SERIAL_PREFIX: u8 = 0x01;
/// Bytes of a serial this CA issues: the prefix, the issuing time and the random part.
const SERIAL_LEN: usize = 17;
/// Bytes of the issuing time in a serial: milliseconds since 1970, big-endian (enough until
/// the year 10889).
const SERIAL_TIME_LEN: usize = 6;
/// The longest serial RFC 5280 (§4.1.2.2) allows, in bytes.
const SERIAL_MAX: usize = 20;

/// `at + after`, or an error if that is past what `SystemTime` can hold.
pub(crate) fn later(at: SystemTime, after: Duration) -> Result<SystemTime, Error> {
    at.checked_add(after)
        .ok_or_else(|| Error::invalid("time", "certificate validity overflows the clock"))
}

/// A certificate serial number: the content octets of its DER INTEGER, 1 to 20 of them
/// (RFC 5280 §4.1.2.2), written as lowercase hex.
///
/// Serials this CA issues are a fixed first byte, the issuing time in milliseconds (6 bytes)
/// and 80 random bits, 17 bytes in all, so they always encode as a positive INTEGER of exactly
/// 17 bytes and their hex form is canonical. The random part is more than the 64 bits of
/// CSPRNG output the CA/Browser Forum asks for, so serials stay unpredictable; the time in
/// front makes new serials sort after older ones, so the store appends a new certificate's
/// records instead of touching a random page of a large index.
/// Serials order as their hex forms do, which is how the store orders them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A fresh serial for a certificate issued at `now`.
    pub(crate) fn generate(rng: &dyn SecureRandom, now: SystemTime) -> Result<Self, Error> {
        let millis = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let millis = u64::try_from(millis).unwrap_or(u64::MAX).to_be_bytes();
        let mut bytes = [0u8; SERIAL_LEN];
        bytes[0] = SERIAL_PREFIX;
        bytes[1..1 + SERIAL_TIME_LEN].copy_from_slice(&millis[8 - SERIAL_TIME_LEN..]);
        rng.fill(&mut bytes[1 + SERIAL_TIME_LEN..])
            .map_err(|_| Error::RandomUnavailable)?;
        Ok(Self(bytes.to_vec()))
    }

    /// Parses hex (either case), 1 to 20 bytes; [`Error::InvalidArgument`] on `serial`
    /// otherwise.
    pub fn parse(text: &str) -> Result<Serial, Error> {
        Self::parse_field("serial", text)
    }

    /// [`Serial::parse`], with errors naming `field`.
    pub(crate) fn parse_field(field: &'static str, text: &str) -> Result<Serial, Error> {
        let bytes = Some(text)
            .filter(|t| !t.is_empty() && t.len() <= 2 * SERIAL_MAX)
            .and_then(|t| hex::decode(t).ok());
        bytes.map(Serial).ok_or_else(|| {
            Error::invalid(
                field,
                format!("{text:?} is not a hexadecimal serial number"),
            )
        })
    }

    /// The content octets of the DER INTEGER.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The serial whose DER INTEGER has the content octets `bytes`, if there are 1 to 20 of
    /// them (RFC 5280 §4.1.2.2).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Serial> {
        (1..=SERIAL_MAX)
            .contains(&bytes.len())
            .then(|| Serial(bytes.to_vec()))
    }

    /// The serial as rcgen writes it.
    pub(crate) fn number(&self) -> SerialNumber {
        SerialNumber::from_slice(&self.0)
    }
}

impl FromStr for Serial {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Serial::parse(text)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One CA of the hierarchy, by the name a certificate's record gives its issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Authority {
    /// The root CA: the trust anchor, which certifies the issuing CAs.
    Root,
    /// The issuing CA of the extranet.
    Extranet,
    /// The issuing CA of the intranet.
    Intranet,
}

impl Authority {
    /// Every CA, root first.
    pub const ALL: [Authority; 3] = [Authority::Root, Authority::Extranet, Authority::Intranet];

    /// The name: `root`, `extranet` or `intranet`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Extranet => "extranet",
            Self::Intranet => "intranet",
        }
    }

    /// The name in titles: `Root`, `Extranet`, `Intranet`.
    pub fn title(self) -> &'static str {
        match self {
            Self::Root => "Root",
            Self::Extranet => "Extranet",
            Self::Intranet => "Intranet",
        }
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Authority {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Authority::ALL
            .into_iter()
            .find(|a| a.name() == text)
            .ok_or_else(|| {
                Error::invalid(
                    "issuer",
                    format!("unknown CA {text:?}: expected root, extranet or intranet"),
                )
            })
    }
}

/// A CA that signs: its certificate and its key in custody.
pub(crate) struct Issuer<'a> {
    authority: Authority,
    certificate: &'a [u8],
    not_after: SystemTime,
    signer: Arc<dyn Signer>,
}

impl<'a> Issuer<'a> {
    /// The CA `authority`, whose certificate (DER) ends at `not_after`, signing with `signer`.
    pub(crate) fn new(
        authority: Authority,
        certificate: &'a [u8],
        not_after: SystemTime,
        signer: Arc<dyn Signer>,
    ) -> Self {
        Self {
            authority,
            certificate,
            not_after,
            signer,
        }
    }

    /// Which CA this is.
    pub(crate) fn authority(&self) -> Authority {
        self.authority
    }

    /// When the CA certificate expires; nothing it issues may outlive it.
    pub(crate) fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Signs a certificate for `subject` built from `params`.
    pub(crate) fn sign(
        &self,
        params: &CertificateParams,
        subject: &impl PublicKeyData,
    ) -> Result<Vec<u8>, Error> {
        let key = CustodyKey::new(self.authority, &*self.signer)?;
        let issuer = rcgen::Issuer::from_ca_cert_der(&self.certificate.into(), &key)
            .map_err(Error::certificate("parse issuing CA certificate"))?;
        let certificate = params
            .signed_by(subject, &issuer)
            .map_err(|e| key.error("sign certificate", e))?;
        Ok(certificate.der().to_vec())
    }
}

impl Issuer<'_> {
    /// Signs the CRL `params` describe.
    pub(crate) fn sign_crl(
        &self,
        params: &CertificateRevocationListParams,
    ) -> Result<Vec<u8>, Error> {
        let key = CustodyKey::new(self.authority, &*self.signer)?;
        let issuer = rcgen::Issuer::from_ca_cert_der(&self.certificate.into(), &key)
            .map_err(Error::certificate("parse issuing CA certificate"))?;
        let crl = params
            .signed_by(&issuer)
            .map_err(|e| key.error("sign CRL", e))?;
        Ok(crl.der().to_vec())
    }
}

/// The certificate `params` describe, for the key of `signer` and signed by it: the root CA's.
pub(crate) fn self_signed(
    authority: Authority,
    signer: &dyn Signer,
    params: &CertificateParams,
) -> Result<Vec<u8>, Error> {
    let key = CustodyKey::new(authority, signer)?;
    let certificate = params
        .self_signed(&key)
        .map_err(|e| key.error("sign root CA certificate", e))?;
    Ok(certificate.der().to_vec())
}

/// The public key of `signer`, as a certificate's subject key.
pub(crate) fn subject_key(signer: &dyn Signer) -> Result<SubjectPublicKeyInfo, Error> {
    SubjectPublicKeyInfo::from_der(signer.public_key_der())
        .map_err(Error::certificate("CA public key"))
}

/// A signer as an rcgen signing key, for one certificate (or a few): it keeps the signer's
/// error, if any.
struct CustodyKey<'a> {
    authority: Authority,
    signer: &'a dyn Signer,
    public: SubjectPublicKeyInfo,
    failure: RefCell<Option<KmsError>>,
}

impl<'a> CustodyKey<'a> {
    fn new(authority: Authority, signer: &'a dyn Signer) -> Result<Self, Error> {
        Ok(Self {
            authority,
            signer,
            public: subject_key(signer)?,
            failure: RefCell::new(None),
        })
    }

    /// The error to report for `source`, an rcgen failure while this key was in use: the
    /// signer's error if it failed, else the rcgen error with `context`.
    fn error(&self, context: &'static str, source: rcgen::Error) -> Error {
        match self.failure.borrow_mut().take() {
            Some(kms) => Error::Kms(kms),
            None => Error::Certificate { context, source },
        }
    }
}

impl PublicKeyData for CustodyKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.public.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.public.algorithm()
    }
}

impl SigningKey for CustodyKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer.sign(msg).map_err(|e| {
            tracing::warn!(ca = %self.authority, error = %e, "the kms refused to sign a certificate");
            *self.failure.borrow_mut() = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use govtrust_kms::Algorithm;
    use rcgen::{DnType, IsCa, KeyPair};
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;

    /// A custodian other than the kms: an rcgen key in memory, which can be told to refuse.
    struct Custodian {
        key: KeyPair,
        spki: Vec<u8>,
        refuse: bool,
    }

    impl Custodian {
        fn new(refuse: bool) -> Arc<Self> {
            let key = KeyPair::generate().unwrap();
            let spki = key.subject_public_key_info();
            Arc::new(Self { key, spki, refuse })
        }
    }

    impl Signer for Custodian {
        fn algorithm(&self) -> Algorithm {
            Algorithm::EcdsaP256Sha256
        }

        fn public_key_der(&self) -> &[u8] {
            &self.spki
        }

        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KmsError> {
            match self.refuse {
                true => Err(KmsError::Sealed),
                false => Ok(SigningKey::sign(&self.key, message).unwrap()),
            }
        }
    }

    fn ca_params(name: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
    }

    #[test]
    fn an_issuer_signs_with_whatever_custodian_holds_its_key() {
        let root = Custodian::new(false);
        let der = self_signed(Authority::Root, &*root, &ca_params("root")).unwrap();
        let (_, root_cert) = X509Certificate::from_der(&der).unwrap();
        root_cert.verify_signature(None).unwrap();
        let issuer = Issuer::new(Authority::Root, &der, SystemTime::now(), root.clone());
        let subject = Custodian::new(false);
        let leaf = issuer
            .sign(&ca_params("leaf"), &subject_key(&*subject).unwrap())
            .unwrap();
        let (_, leaf_cert) = X509Certificate::from_der(&leaf).unwrap();
        leaf_cert
            .verify_signature(Some(root_cert.public_key()))
            .unwrap();
        assert_eq!(leaf_cert.public_key().raw, subject.public_key_der());
        assert_eq!(leaf_cert.issuer(), root_cert.subject());
    }

    #[test]
    fn a_refusal_to_sign_is_the_custodians_error() {
        let refusing = Custodian::new(true);
        let refused = self_signed(Authority::Root, &*refusing, &ca_params("root"));
        assert!(
            matches!(refused, Err(Error::Kms(KmsError::Sealed))),
            "{refused:?}"
        );
        let root = Custodian::new(false);
        let der = self_signed(Authority::Root, &*root, &ca_params("root")).unwrap();
        let issuer = Issuer::new(Authority::Root, &der, SystemTime::now(), refusing.clone());
        let refused = issuer.sign(&ca_params("leaf"), &subject_key(&*root).unwrap());
        assert!(
            matches!(refused, Err(Error::Kms(KmsError::Sealed))),
            "{refused:?}"
        );
    }

    #[test]
    fn serials_are_a_positive_prefix_the_time_and_80_random_bits() {
        let rng = ring::rand::SystemRandom::new();
        let at = UNIX_EPOCH + Duration::from_millis(0x0123_4567_89ab);
        let serials: Vec<Vec<u8>> = (0..200)
            .map(|_| Serial::generate(&rng, at).unwrap().0)
            .collect();
        for serial in &serials {
            assert_eq!(serial[0], SERIAL_PREFIX);
            assert_eq!(serial[1..7], [0x01, 0x23, 0x45, 0x67, 0x89, 0xab]);
            assert_eq!(hex::encode(serial).len(), 34);
        }
        // Every bit of the 10 random bytes takes both values across 200 draws.
        for bit in 0..80 {
            let set = serials
                .iter()
                .filter(|s| s[7 + bit / 8] & (0x80 >> (bit % 8)) != 0)
                .count();
            assert!(set > 0 && set < serials.len(), "bit {bit} never varies");
        }
        // A later millisecond sorts after, whatever the random parts.
        let later = Serial::generate(&rng, at + Duration::from_millis(1)).unwrap();
        assert!(serials.iter().all(|s| s < &later.0));
    }

    #[test]
    fn serials_parse_from_hex_and_print_as_lowercase_hex() {
        let serial = Serial::parse("01AbCd").unwrap();
        assert_eq!(serial.as_bytes(), [0x01, 0xab, 0xcd]);
        assert_eq!(serial.to_string(), "01abcd");
        assert_eq!(format!("{serial:?}"), "01abcd");
        assert_eq!("01abcd".parse::<Serial>().unwrap(), serial);
        assert_eq!(
            Serial::parse(&"7f".repeat(20)).unwrap().as_bytes().len(),
            20
        );
        for malformed in ["", "zz", "abc", "../ca/hierarchy", &"7f".repeat(21)] {
            let refused = Serial::parse(malformed);
            assert!(
                matches!(
                    refused,
                    Err(Error::InvalidArgument {
                        field: "serial",
                        ..
                    })
                ),
                "{malformed:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn authorities_are_named_as_records_store_them() {
        for authority in Authority::ALL {
            assert_eq!(authority.name().parse::<Authority>().unwrap(), authority);
        }
        assert_eq!(Authority::Intranet.to_string(), "intranet");
        assert!("Root".parse::<Authority>().is_err());
    }
}
