//! An OCSP request, parsed at the edge: [`Request::parse`] turns untrusted DER into the
//! certificates asked about ([`CertId`]) and the nonce, or an [`Error::OcspMalformed`] that
//! names the [`Defect`]. It never panics, whatever the bytes.

use std::collections::HashSet;
use std::fmt;

use der::asn1::{Null, OctetString};
use der::{Any, Decode, Encode};

use super::wire::{self, Extension, ID_PKIX_OCSP_NONCE, ID_SHA1, ID_SHA256};
use crate::{Error, Serial};

/// The largest request read, in bytes. Real ones are a few hundred; a signed one with its
/// certificates a few thousand.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;
/// The most certificates one request may ask about.
pub const MAX_CERT_IDS: usize = 64;
/// The longest nonce accepted, in bytes (RFC 8954 §2.1).
pub const MAX_NONCE_LEN: usize = 32;

/// What is wrong with a malformed OCSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Defect {
    /// Longer than [`MAX_REQUEST_LEN`].
    TooLong { len: usize, max: usize },
    /// Not a DER `OCSPRequest`: a wrong tag, a bad or impossible length, trailing bytes, a
    /// non-canonical value. `detail` is the decoder's account of it, with the byte offset.
    Encoding { detail: String },
    /// A version other than v1.
    Version { version: u8 },
    /// The request asks about no certificate.
    NoCertificates,
    /// The request asks about more than [`MAX_CERT_IDS`] certificates.
    TooManyCertificates { count: usize, max: usize },
    /// A CertID hashed with an algorithm other than SHA-1 or SHA-256 (its OID).
    UnsupportedHash { algorithm: String },
    /// A CertID's hash algorithm has parameters other than absent or NULL.
    HashParameters,
    /// A CertID's hash (`field`) has the wrong length for its algorithm.
    HashLength {
        field: &'static str,
        expected: usize,
        found: usize,
    },
    /// A CertID's serial is longer than the 20 bytes RFC 5280 allows.
    SerialLength { len: usize },
    /// The nonce extension does not hold a DER OCTET STRING of 1 to [`MAX_NONCE_LEN`] bytes.
    Nonce { detail: String },
    /// An extension appears twice in one list (its OID).
    DuplicateExtension { extension: String },
    /// A critical extension this responder does not know (its OID).
    CriticalExtension { extension: String },
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len, max } => write!(f, "{len} bytes, more than {max}"),
            Self::Encoding { detail } => write!(f, "not a DER OCSPRequest: {detail}"),
            Self::Version { version } => write!(f, "version {version}, not v1 (0)"),
            Self::NoCertificates => f.write_str("it asks about no certificate"),
            Self::TooManyCertificates { count, max } => {
                write!(f, "it asks about {count} certificates, more than {max}")
            }
            Self::UnsupportedHash { algorithm } => {
                write!(f, "CertID hash {algorithm} is neither SHA-1 nor SHA-256")
            }
            Self::HashParameters => {
                f.write_str("CertID hash parameters are neither absent nor NULL")
            }
            Self::HashLength {
                field,
                expected,
                found,
            } => write!(f, "{field} is {found} bytes, not {expected}"),
            Self::SerialLength { len } => write!(f, "serial is {len} bytes, more than 20"),
            Self::Nonce { detail } => write!(f, "nonce: {detail}"),
            Self::DuplicateExtension { extension } => write!(f, "extension {extension} twice"),
            Self::CriticalExtension { extension } => {
                write!(f, "unknown critical extension {extension}")
            }
        }
    }
}

/// An [`Error::OcspMalformed`].
fn malformed(defect: Defect) -> Error {
    Error::OcspMalformed { defect }
}

/// A hash a CertID may be computed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-1: what most clients still send (openssl's default).
    Sha1,
    /// SHA-256.
    Sha256,
}

impl HashAlgorithm {
    /// Both, SHA-1 first.
    pub const ALL: [HashAlgorithm; 2] = [HashAlgorithm::Sha1, HashAlgorithm::Sha256];

    /// The algorithm with OID `oid`, if it is one of these.
    fn from_oid(oid: &der::asn1::ObjectIdentifier) -> Option<HashAlgorithm> {
        Self::ALL.into_iter().find(|hash| hash.oid() == *oid)
    }

    fn oid(self) -> der::asn1::ObjectIdentifier {
        match self {
            Self::Sha1 => ID_SHA1,
            Self::Sha256 => ID_SHA256,
        }
    }

    /// The digest in ring.
    pub(crate) fn digest(self) -> &'static ring::digest::Algorithm {
        match self {
            Self::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &ring::digest::SHA256,
        }
    }

    /// The length of a digest, in bytes.
    fn len(self) -> usize {
        self.digest().output_len()
    }
}

/// One certificate asked about: the hashes of its issuer's name and key, and its serial.
///
/// A CertID keeps the encoding it was read or built with: a response repeats it exactly, and
/// [`CertId::as_der`] is the key for a cache of responses signed in advance.
#[derive(Clone)]
pub struct CertId {
    hash: HashAlgorithm,
    serial: Serial,
    der: Vec<u8>,
    wire: wire::CertId,
}

/// CertIDs are equal when their encodings are.
impl PartialEq for CertId {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for CertId {}

impl std::hash::Hash for CertId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.der.hash(state);
    }
}

impl CertId {
    /// Checks a CertID from the wire.
    fn from_wire(id: wire::CertId) -> Result<CertId, Error> {
        let algorithm = &id.hash_algorithm;
        let hash = HashAlgorithm::from_oid(&algorithm.algorithm).ok_or_else(|| {
            malformed(Defect::UnsupportedHash {
                algorithm: algorithm.algorithm.to_string(),
            })
        })?;
        check_parameters(algorithm.parameters.as_ref())?;
        check_hash_len(hash, "issuerNameHash", id.issuer_name_hash.as_bytes())?;
        check_hash_len(hash, "issuerKeyHash", id.issuer_key_hash.as_bytes())?;
        let bytes = id.serial_number.as_bytes();
        let serial = Serial::from_bytes(bytes)
            .ok_or_else(|| malformed(Defect::SerialLength { len: bytes.len() }))?;
        let der = encode(&id)?;
        Ok(CertId {
            hash,
            serial,
            der,
            wire: id,
        })
    }

    /// The CertID of `serial` under the issuer with hashes `name_hash` and `key_hash`, written
    /// as openssl writes one (hash parameters NULL).
    pub(crate) fn build(
        hash: HashAlgorithm,
        name_hash: &[u8],
        key_hash: &[u8],
        serial: &Serial,
    ) -> Result<CertId, Error> {
        let serial_number = integer(serial)?;
        let id = wire::CertId {
            hash_algorithm: wire::AlgorithmIdentifier {
                algorithm: hash.oid(),
                parameters: Some(Any::from(Null)),
            },
            issuer_name_hash: octets(name_hash)?,
            issuer_key_hash: octets(key_hash)?,
            serial_number,
        };
        Self::from_wire(id)
    }

    /// The hash the issuer's name and key were hashed with.
    pub fn hash_algorithm(&self) -> HashAlgorithm {
        self.hash
    }

    /// The hash of the issuer's name (the DER of the certificate's issuer field).
    pub fn issuer_name_hash(&self) -> &[u8] {
        self.wire.issuer_name_hash.as_bytes()
    }

    /// The hash of the issuer's public key (the value of its subjectPublicKey BIT STRING).
    pub fn issuer_key_hash(&self) -> &[u8] {
        self.wire.issuer_key_hash.as_bytes()
    }

    /// The serial asked about.
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// The DER of the CertID, as received: a response answers with exactly these bytes.
    pub fn as_der(&self) -> &[u8] {
        &self.der
    }

    /// The wire form, for a response.
    pub(crate) fn wire(&self) -> &wire::CertId {
        &self.wire
    }
}

impl fmt::Debug for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertId")
            .field("hash", &self.hash)
            .field("issuer_name_hash", &hex::encode(self.issuer_name_hash()))
            .field("issuer_key_hash", &hex::encode(self.issuer_key_hash()))
            .field("serial", &self.serial)
            .finish()
    }
}

/// An OCSP request: the certificates asked about, in order, and the nonce if it has one.
///
/// The requestor's name and any signature are ignored (this responder answers anyone), and so
/// are extensions it does not know unless they are critical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    cert_ids: Vec<CertId>,
    nonce: Option<Vec<u8>>,
}

impl Request {
    /// Parses a DER `OCSPRequest` (the body of a POST, or a GET's path decoded from base64).
    ///
    /// [`Error::OcspMalformed`] for anything but one well-formed v1 request about 1 to
    /// [`MAX_CERT_IDS`] certificates with SHA-1 or SHA-256 CertIDs, at most
    /// [`MAX_REQUEST_LEN`] bytes, with nothing after it; never a panic.
    pub fn parse(der: &[u8]) -> Result<Request, Error> {
        if der.len() > MAX_REQUEST_LEN {
            return Err(malformed(Defect::TooLong {
                len: der.len(),
                max: MAX_REQUEST_LEN,
            }));
        }
        let request = wire::OcspRequest::from_der(der).map_err(|e| {
            malformed(Defect::Encoding {
                detail: e.to_string(),
            })
        })?;
        Request::try_from(request.tbs_request)
    }

    /// The certificates asked about, in the request's order.
    pub fn cert_ids(&self) -> &[CertId] {
        &self.cert_ids
    }

    /// The nonce (the octets inside the extension's OCTET STRING), which a response repeats.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }

    /// The one certificate of a request without a nonce: a response signed in advance for this
    /// CertID answers the request as well as a fresh one. `None` for a request with a nonce
    /// or about several certificates, which need a response of their own.
    pub fn single(&self) -> Option<&CertId> {
        match (self.cert_ids.as_slice(), &self.nonce) {
            ([id], None) => Some(id),
            _ => None,
        }
    }
}

impl TryFrom<wire::TbsRequest> for Request {
    type Error = Error;

    fn try_from(tbs: wire::TbsRequest) -> Result<Request, Error> {
        match tbs.version {
            None | Some(0) => {}
            Some(version) => return Err(malformed(Defect::Version { version })),
        }
        let count = tbs.request_list.len();
        if count == 0 {
            return Err(malformed(Defect::NoCertificates));
        }
        if count > MAX_CERT_IDS {
            return Err(malformed(Defect::TooManyCertificates {
                count,
                max: MAX_CERT_IDS,
            }));
        }
        let nonce = request_nonce(tbs.request_extensions.as_deref().unwrap_or_default())?;
        let cert_ids = tbs
            .request_list
            .into_iter()
            .map(single_request)
            .collect::<Result<_, _>>()?;
        Ok(Request { cert_ids, nonce })
    }
}

/// One `Request` of the list: its CertID, once its extensions pass.
fn single_request(request: wire::SingleRequest) -> Result<CertId, Error> {
    let extensions = request.single_request_extensions.unwrap_or_default();
    check_extensions(&extensions, &[])?;
    CertId::from_wire(request.req_cert)
}

/// The nonce among the request's extensions, if there is one.
fn request_nonce(extensions: &[Extension]) -> Result<Option<Vec<u8>>, Error> {
    check_extensions(extensions, &[ID_PKIX_OCSP_NONCE])?;
    extensions
        .iter()
        .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
        .map(|e| nonce_value(e.extn_value.as_bytes()))
        .transpose()
}

/// The nonce in an extension value: a DER OCTET STRING of 1 to [`MAX_NONCE_LEN`] bytes.
fn nonce_value(value: &[u8]) -> Result<Vec<u8>, Error> {
    let nonce = OctetString::from_der(value).map_err(|e| {
        malformed(Defect::Nonce {
            detail: format!("not a DER OCTET STRING: {e}"),
        })
    })?;
    let len = nonce.as_bytes().len();
    if !(1..=MAX_NONCE_LEN).contains(&len) {
        return Err(malformed(Defect::Nonce {
            detail: format!("{len} bytes, not 1 to {MAX_NONCE_LEN}"),
        }));
    }
    Ok(nonce.into_bytes().into_vec())
}

/// Refuses a list with an extension twice, or with a critical one not in `known`.
fn check_extensions(
    extensions: &[Extension],
    known: &[der::asn1::ObjectIdentifier],
) -> Result<(), Error> {
    let mut seen = HashSet::with_capacity(extensions.len());
    for extension in extensions {
        let name = || extension.extn_id.to_string();
        if !seen.insert(extension.extn_id.as_bytes()) {
            return Err(malformed(Defect::DuplicateExtension { extension: name() }));
        }
        if extension.critical && !known.contains(&extension.extn_id) {
            return Err(malformed(Defect::CriticalExtension { extension: name() }));
        }
    }
    Ok(())
}

/// Hash parameters must be absent or NULL (RFC 5754 §2 allows both).
fn check_parameters(parameters: Option<&Any>) -> Result<(), Error> {
    match parameters {
        None => Ok(()),
        Some(any) if any.decode_as::<Null>().is_ok() => Ok(()),
        Some(_) => Err(malformed(Defect::HashParameters)),
    }
}

fn check_hash_len(hash: HashAlgorithm, field: &'static str, value: &[u8]) -> Result<(), Error> {
    match value.len() == hash.len() {
        true => Ok(()),
        false => Err(malformed(Defect::HashLength {
            field,
            expected: hash.len(),
            found: value.len(),
        })),
    }
}

/// The nonce extension a response carries for `nonce`.
pub(crate) fn nonce_extension(nonce: &[u8]) -> Result<Extension, Error> {
    let value = encode(&octets(nonce)?)?;
    Ok(Extension {
        extn_id: ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: octets(&value)?,
    })
}

/// `serial` as a DER INTEGER, if its bytes are a minimal encoding (as every serial this CA
/// issues is, and every serial read from a CertID).
fn integer(serial: &Serial) -> Result<der::asn1::Int, Error> {
    let bytes = serial.as_bytes();
    let minimal = match bytes {
        [0x00, next, ..] => *next >= 0x80,
        [0xff, next, ..] => *next < 0x80,
        _ => true,
    };
    let int = minimal.then(|| der::asn1::Int::new(bytes).ok()).flatten();
    int.ok_or_else(|| {
        Error::invalid(
            "serial",
            format!("{serial} is not the minimal encoding of an INTEGER"),
        )
    })
}

/// An OCTET STRING holding `bytes`.
pub(crate) fn octets(bytes: &[u8]) -> Result<OctetString, Error> {
    OctetString::new(bytes).map_err(encoding_error)
}

/// The DER of `value`.
pub(crate) fn encode(value: &impl Encode) -> Result<Vec<u8>, Error> {
    value.to_der().map_err(encoding_error)
}

/// An [`Error::OcspEncoding`] for a `der` failure.
pub(crate) fn encoding_error(error: der::Error) -> Error {
    Error::OcspEncoding {
        detail: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use der::asn1::ObjectIdentifier;

    use super::*;

    /// `openssl ocsp -issuer ca.pem -cert leaf.pem -reqout req.der` (OpenSSL 3.0): one SHA-1
    /// CertID for serial 01aa and a 16-byte nonce.
    const OPENSSL_REQUEST: &str = "30683066303f303d303b300906052b0e03021a05000414bf7052c8b9c0f7\
        60c89123e099815eb2c03942260414216280a72711a0552cf534e8e98b093b8fddec0b020201aaa2233021\
        301f06092b060105050730010204120410b0c9b204ce901f51c01b070221e20179";

    fn oid(text: &str) -> ObjectIdentifier {
        ObjectIdentifier::new(text).unwrap()
    }

    /// A CertID for `serial` with SHA-1 hashes of the right length.
    fn cert_id(serial: &[u8]) -> wire::CertId {
        wire::CertId {
            hash_algorithm: wire::AlgorithmIdentifier {
                algorithm: ID_SHA1,
                parameters: Some(Any::from(Null)),
            },
            issuer_name_hash: OctetString::new([1; 20]).unwrap(),
            issuer_key_hash: OctetString::new([2; 20]).unwrap(),
            serial_number: der::asn1::Int::new(serial).unwrap(),
        }
    }

    fn extension(id: ObjectIdentifier, critical: bool, value: &[u8]) -> Extension {
        Extension {
            extn_id: id,
            critical,
            extn_value: OctetString::new(value).unwrap(),
        }
    }

    fn nonce(bytes: &[u8]) -> Extension {
        nonce_extension(bytes).unwrap()
    }

    fn tbs(ids: Vec<wire::CertId>, extensions: Option<Vec<Extension>>) -> wire::TbsRequest {
        let request_list = ids
            .into_iter()
            .map(|req_cert| wire::SingleRequest {
                req_cert,
                single_request_extensions: None,
            })
            .collect();
        wire::TbsRequest {
            version: None,
            requestor_name: None,
            request_list,
            request_extensions: extensions,
        }
    }

    fn der(tbs: wire::TbsRequest) -> Vec<u8> {
        wire::OcspRequest {
            tbs_request: tbs,
            optional_signature: None,
        }
        .to_der()
        .unwrap()
    }

    fn defect(bytes: &[u8]) -> Defect {
        match Request::parse(bytes) {
            Err(Error::OcspMalformed { defect }) => defect,
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn an_openssl_request_parses() {
        let bytes = hex::decode(OPENSSL_REQUEST).unwrap();
        let request = Request::parse(&bytes).unwrap();
        let [id] = request.cert_ids() else {
            panic!("{request:?}")
        };
        assert_eq!(id.hash_algorithm(), HashAlgorithm::Sha1);
        assert_eq!(id.serial().to_string(), "01aa");
        assert_eq!(
            hex::encode(id.issuer_name_hash()),
            "bf7052c8b9c0f760c89123e099815eb2c0394226"
        );
        assert_eq!(
            hex::encode(id.issuer_key_hash()),
            "216280a72711a0552cf534e8e98b093b8fddec0b"
        );
        assert_eq!(
            hex::encode(request.nonce().unwrap()),
            "b0c9b204ce901f51c01b070221e20179"
        );
        // The CertID is kept as sent: bytes 8 to 69 of the request.
        assert_eq!(id.as_der(), &bytes[8..69]);
        // A request with a nonce needs its own response.
        assert_eq!(request.single(), None);
    }

    #[test]
    fn a_request_without_nonce_has_a_single_cert_id() {
        let bytes = der(tbs(vec![cert_id(&[0x01, 0xaa])], None));
        let request = Request::parse(&bytes).unwrap();
        assert_eq!(request.nonce(), None);
        assert_eq!(request.single(), request.cert_ids().first());
        let two = der(tbs(vec![cert_id(&[1]), cert_id(&[2])], None));
        let request = Request::parse(&two).unwrap();
        assert_eq!(request.cert_ids().len(), 2);
        assert_eq!(request.single(), None);
    }

    #[test]
    fn sha256_cert_ids_are_accepted_and_others_refused() {
        let mut id = cert_id(&[1]);
        id.hash_algorithm.algorithm = ID_SHA256;
        id.issuer_name_hash = OctetString::new([1; 32]).unwrap();
        id.issuer_key_hash = OctetString::new([2; 32]).unwrap();
        let request = Request::parse(&der(tbs(vec![id.clone()], None))).unwrap();
        assert_eq!(
            request.cert_ids()[0].hash_algorithm(),
            HashAlgorithm::Sha256
        );

        id.hash_algorithm.algorithm = oid("2.16.840.1.101.3.4.2.2"); // SHA-384
        assert_eq!(
            defect(&der(tbs(vec![id], None))),
            Defect::UnsupportedHash {
                algorithm: "2.16.840.1.101.3.4.2.2".into()
            }
        );
    }

    #[test]
    fn hash_parameters_may_be_absent_or_null_only() {
        let mut id = cert_id(&[1]);
        id.hash_algorithm.parameters = None;
        Request::parse(&der(tbs(vec![id.clone()], None))).unwrap();
        id.hash_algorithm.parameters = Some(Any::from_der(&[0x04, 0x01, 0x00]).unwrap());
        assert_eq!(defect(&der(tbs(vec![id], None))), Defect::HashParameters);
    }

    #[test]
    fn hashes_must_have_their_algorithms_length() {
        let mut id = cert_id(&[1]);
        id.issuer_key_hash = OctetString::new([2; 32]).unwrap();
        assert_eq!(
            defect(&der(tbs(vec![id], None))),
            Defect::HashLength {
                field: "issuerKeyHash",
                expected: 20,
                found: 32
            }
        );
    }

    #[test]
    fn serials_longer_than_20_bytes_are_refused() {
        Request::parse(&der(tbs(vec![cert_id(&[0x7f; 20])], None))).unwrap();
        assert_eq!(
            defect(&der(tbs(vec![cert_id(&[0x7f; 21])], None))),
            Defect::SerialLength { len: 21 }
        );
    }

    #[test]
    fn a_request_about_no_certificate_is_refused() {
        assert_eq!(defect(&der(tbs(vec![], None))), Defect::NoCertificates);
    }

    #[test]
    fn a_request_about_too_many_certificates_is_refused() {
        let ids = vec![cert_id(&[1]); MAX_CERT_IDS];
        Request::parse(&der(tbs(ids.clone(), None))).unwrap();
        let more = [ids, vec![cert_id(&[1])]].concat();
        assert_eq!(
            defect(&der(tbs(more, None))),
            Defect::TooManyCertificates {
                count: MAX_CERT_IDS + 1,
                max: MAX_CERT_IDS
            }
        );
    }

    #[test]
    fn only_version_1_is_read() {
        let mut explicit = tbs(vec![cert_id(&[1])], None);
        explicit.version = Some(0);
        Request::parse(&der(explicit.clone())).unwrap();
        explicit.version = Some(1);
        assert_eq!(defect(&der(explicit)), Defect::Version { version: 1 });
    }

    #[test]
    fn trailing_bytes_wrong_tags_and_absurd_lengths_are_encoding_defects() {
        let good = der(tbs(vec![cert_id(&[1])], None));
        let mut trailing = good.clone();
        trailing.push(0);
        let mut wrong_tag = good.clone();
        wrong_tag[0] = 0x31; // a SET
        // A SEQUENCE that claims 4 GiB.
        let absurd = [0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00];
        let cases: [(&[u8], &str); 5] = [
            (&trailing, "trailing"),
            (&wrong_tag, "tag"),
            (&absurd, ""),
            (&good[..good.len() - 1], ""),
            (&[], ""),
        ];
        for (bytes, mention) in cases {
            match defect(bytes) {
                Defect::Encoding { detail } => assert!(detail.contains(mention), "{detail}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_request_longer_than_the_limit_is_refused_before_decoding() {
        let long = vec![0u8; MAX_REQUEST_LEN + 1];
        assert_eq!(
            defect(&long),
            Defect::TooLong {
                len: MAX_REQUEST_LEN + 1,
                max: MAX_REQUEST_LEN
            }
        );
    }

    #[test]
    fn nonces_are_1_to_32_bytes_in_an_octet_string() {
        for len in [1, 16, 32] {
            let bytes = der(tbs(vec![cert_id(&[1])], Some(vec![nonce(&vec![7; len])])));
            assert_eq!(
                Request::parse(&bytes).unwrap().nonce(),
                Some(&vec![7; len][..])
            );
        }
        let too_long = der(tbs(vec![cert_id(&[1])], Some(vec![nonce(&[7; 33])])));
        assert!(matches!(defect(&too_long), Defect::Nonce { .. }));
        let empty = der(tbs(vec![cert_id(&[1])], Some(vec![nonce(&[])])));
        assert!(matches!(defect(&empty), Defect::Nonce { .. }));
        // The nonce bare, not in an OCTET STRING (what some old clients sent).
        let bare = extension(ID_PKIX_OCSP_NONCE, false, &[7; 16]);
        let bare = der(tbs(vec![cert_id(&[1])], Some(vec![bare])));
        assert!(matches!(defect(&bare), Defect::Nonce { .. }));
    }

    #[test]
    fn extensions_twice_or_unknown_and_critical_are_refused() {
        let ids = || vec![cert_id(&[1])];
        let twice = der(tbs(ids(), Some(vec![nonce(&[1; 16]), nonce(&[2; 16])])));
        assert!(matches!(defect(&twice), Defect::DuplicateExtension { .. }));
        let unknown = oid("1.3.6.1.5.5.7.48.1.7"); // service locator
        let ignored = extension(unknown, false, &[0x05, 0x00]);
        Request::parse(&der(tbs(ids(), Some(vec![ignored])))).unwrap();
        let critical = extension(unknown, true, &[0x05, 0x00]);
        assert_eq!(
            defect(&der(tbs(ids(), Some(vec![critical.clone()])))),
            Defect::CriticalExtension {
                extension: "1.3.6.1.5.5.7.48.1.7".into()
            }
        );
        let mut critical_nonce = nonce(&[1; 16]);
        critical_nonce.critical = true;
        Request::parse(&der(tbs(ids(), Some(vec![critical_nonce])))).unwrap();
        // The same rule for one certificate's extensions.
        let mut one = tbs(ids(), None);
        one.request_list[0].single_request_extensions = Some(vec![critical]);
        assert!(matches!(
            defect(&der(one)),
            Defect::CriticalExtension { .. }
        ));
    }

    #[test]
    fn a_signature_and_a_requestor_name_are_ignored() {
        let mut tbs = tbs(vec![cert_id(&[1])], None);
        // [4] directoryName with an empty Name.
        tbs.requestor_name = Some(Any::from_der(&[0xa4, 0x02, 0x30, 0x00]).unwrap());
        let request = wire::OcspRequest {
            tbs_request: tbs,
            optional_signature: Some(Any::from_der(&[0x30, 0x00]).unwrap()),
        };
        Request::parse(&request.to_der().unwrap()).unwrap();
    }

    #[test]
    fn a_built_cert_id_parses_back_to_itself() {
        let serial = Serial::parse("01aa").unwrap();
        let built = CertId::build(HashAlgorithm::Sha1, &[1; 20], &[2; 20], &serial).unwrap();
        let bytes = der(tbs(vec![cert_id(&[0x01, 0xaa])], None));
        assert_eq!(&Request::parse(&bytes).unwrap().cert_ids()[0], &built);
        // Serials that are no minimal INTEGER are refused, not silently rewritten.
        for text in ["0001", "ff80"] {
            let serial = Serial::parse(text).unwrap();
            assert!(CertId::build(HashAlgorithm::Sha1, &[1; 20], &[2; 20], &serial).is_err());
        }
        // A negative serial (some old CAs issued them) is kept as its content octets.
        let negative = Serial::parse("80").unwrap();
        CertId::build(HashAlgorithm::Sha1, &[1; 20], &[2; 20], &negative).unwrap();
    }

    #[test]
    fn defects_say_what_is_wrong() {
        let message = Error::OcspMalformed {
            defect: Defect::NoCertificates,
        }
        .to_string();
        assert_eq!(
            message,
            "malformed OCSP request: it asks about no certificate"
        );
        let bytes = [0x30, 0x03, 0x30, 0x01, 0x00, 0x00];
        let message = Request::parse(&bytes).unwrap_err().to_string();
        assert!(
            message.starts_with("malformed OCSP request: not a DER OCSPRequest"),
            "{message}"
        );
    }
}
