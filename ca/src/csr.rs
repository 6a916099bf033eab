//! Certificate signing requests from systems: decoding, key policy, proof of possession and
//! name policy.
//!
//! Checks run in this order, and the first failure is the error:
//! 1. the bytes are a PKCS#10 request, DER (strictly: the unsigned outer tags too) or PEM
//!    ([`Error::InvalidCsr`]);
//! 2. the key is ECDSA P-256/P-384, Ed25519, RSA of 2048 to 8192 bits, or SM2 (a point on the
//!    SM2 curve) ([`Error::KeyNotAllowed`]) — before the signature, so a refused key is named as
//!    such;
//! 3. the signature algorithm is allowed (no SHA-1; SM2-with-SM3 only for an SM2 key) and the
//!    signature verifies: proof of possession ([`Error::InvalidCsr`]). An SM2 signature is
//!    checked with the default ID `1234567812345678` of GM/T 0009, which `openssl req -sigopt
//!    distid:1234567812345678` uses; a request signed with another ID fails here;
//! 4. every common name is the system's name, every requested SAN is one of the system's
//!    registered DNS names or its own SPIFFE id ([`Error::NameNotAllowed`]).
//!
//! Nothing else is taken from the request: the CA sets subject, extensions and validity.
//!
//! An administrator's request ([`check_administrator`], `govtrust init --admin-csr`) passes
//! steps 1 to 3 the same way; in step 4 its common name, if any, must be the role's name and
//! the only name it may request is the role's own SPIFFE id ([`Error::InvalidCsr`]).

use std::borrow::Cow;
use std::fmt;

use rcgen::SubjectPublicKeyInfo;
use x509_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::{SubjectPublicKeyInfo as ParsedSpki, X509Name};

use crate::Error;
use crate::names::DnsName;
use crate::registry::SystemRecord;

/// Largest request accepted, DER or PEM.
const MAX_CSR: usize = 64 * 1024;
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
const ALLOWED_KEYS: &str = "use ECDSA P-256 or P-384, Ed25519, RSA of at least 2048 bits, or SM2";
/// The SM2 curve (GM/T 0006), the EC parameter of an SM2 key.
const OID_SM2_CURVE: &str = govtrust_kms::suite::oid::SM2_CURVE;
/// SM2 signature with SM3 (GM/T 0006).
const OID_SM2_WITH_SM3: &str = govtrust_kms::suite::oid::SM2_WITH_SM3;

/// The algorithm and size of a request's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa {
        bits: usize,
    },
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    /// SM2 (national suite).
    Sm2,
}

impl KeyKind {
    /// RSA keys may also encipher keys (TLS 1.2 RSA key exchange).
    pub(crate) fn enciphers(self) -> bool {
        matches!(self, Self::Rsa { .. })
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "RSA-{bits}"),
            Self::EcdsaP256 => f.write_str("ECDSA P-256"),
            Self::EcdsaP384 => f.write_str("ECDSA P-384"),
            Self::Ed25519 => f.write_str("Ed25519"),
            Self::Sm2 => f.write_str("SM2"),
        }
    }
}

/// The subject's public key, as a certificate will carry it.
#[derive(Debug)]
pub(crate) enum SubjectKey {
    /// A key of the international suite, which rcgen certifies.
    International(SubjectPublicKeyInfo),
    /// An SM2 key (its SubjectPublicKeyInfo DER), which only the national CAs certify.
    Sm2(
        #[expect(
            dead_code,
            reason = "read once national-suite profiles issue SM2 leaves (the next step of the \
                      national suite); until then every profile refuses SM2 keys"
        )]
        Vec<u8>,
    ),
}

impl SubjectKey {
    /// The key rcgen certifies; an SM2 key is refused (only national-suite profiles certify
    /// one, through the national CAs).
    pub(crate) fn international(&self) -> Result<&SubjectPublicKeyInfo, Error> {
        match self {
            Self::International(key) => Ok(key),
            Self::Sm2(_) => Err(Error::key(
                "SM2 keys are certified only by the national CAs, through a national-suite profile",
            )),
        }
    }
}

/// The subject key of `spki`, of kind `key`.
fn subject_key(key: KeyKind, spki: &ParsedSpki<'_>) -> Result<SubjectKey, Error> {
    if key == KeyKind::Sm2 {
        return Ok(SubjectKey::Sm2(spki.raw.to_vec()));
    }
    SubjectPublicKeyInfo::from_der(spki.raw)
        .map(SubjectKey::International)
        .map_err(|e| Error::key(format!("{key} keys are not supported here ({e})")))
}

/// A request that passed every check: what the certificate will hold.
#[derive(Debug)]
pub(crate) struct CheckedCsr {
    pub key: KeyKind,
    pub public_key: SubjectKey,
    /// The registered DNS names the request asked for, without duplicates.
    pub dns_names: Vec<DnsName>,
}

/// Checks `csr` (DER or PEM) as a request of `system`.
pub(crate) fn check(csr: &[u8], system: &SystemRecord) -> Result<CheckedCsr, Error> {
    let der = der(csr)?;
    let request = decode(&der)?;
    let spki = &request.certification_request_info.subject_pki;
    let key = key_kind(spki)?;
    prove_possession(&request, key)?;
    check_subject(&request.certification_request_info.subject, system)?;
    let dns_names = requested_names(&request, system)?;
    let public_key = subject_key(key, spki)?;
    Ok(CheckedCsr {
        key,
        public_key,
        dns_names,
    })
}

/// An administrator's request: its key, checked as a system's is.
#[derive(Debug)]
pub(crate) struct CheckedAdminCsr {
    pub key: KeyKind,
    pub public_key: SubjectPublicKeyInfo,
}

/// Checks `csr` (DER or PEM) as the request of the administrator `role` (`system-admin`, ...)
/// whose identity is `spiffe_id`.
pub(crate) fn check_administrator(
    csr: &[u8],
    role: &str,
    spiffe_id: &str,
) -> Result<CheckedAdminCsr, Error> {
    let der = der(csr)?;
    let request = decode(&der)?;
    let spki = &request.certification_request_info.subject_pki;
    let key = key_kind(spki)?;
    prove_possession(&request, key)?;
    check_administrator_names(&request, role, spiffe_id)?;
    let public_key = subject_key(key, spki)?;
    let public_key = match public_key {
        SubjectKey::International(key) => key,
        SubjectKey::Sm2(_) => {
            return Err(Error::key(
                "administrator credentials use the international suite: use ECDSA P-256 or \
                 P-384, Ed25519 or RSA",
            ));
        }
    };
    Ok(CheckedAdminCsr { key, public_key })
}

/// A person's request: its key and how many DNS names it asks for (the profile decides).
#[derive(Debug)]
pub(crate) struct CheckedPersonCsr {
    pub key: KeyKind,
    pub public_key: SubjectKey,
    pub dns_names: usize,
}

/// Checks `csr` (DER or PEM) as the request of the person `id` named `name` whose identity is
/// `spiffe_id`: steps 1 to 3 as for a system; its common name, if any, is the person's id or
/// name, its only URI the SPIFFE id, and it asks for no other name but DNS names, which it
/// counts for the profile to judge ([`Error::InvalidCsr`] otherwise).
pub(crate) fn check_person(
    csr: &[u8],
    (id, name): (&str, &str),
    spiffe_id: &str,
) -> Result<CheckedPersonCsr, Error> {
    let der = der(csr)?;
    let request = decode(&der)?;
    let spki = &request.certification_request_info.subject_pki;
    let key = key_kind(spki)?;
    prove_possession(&request, key)?;
    let refuse = |asked: &str| {
        Error::csr(format!(
            "it asks for the name {asked:?}; a person's request may name only {id} or {name} \
             (common name) and {spiffe_id}"
        ))
    };
    for attribute in request
        .certification_request_info
        .subject
        .iter_common_name()
    {
        let common = attribute
            .as_str()
            .map_err(|_| Error::csr("the common name is not a text string"))?;
        if common != id && common != name {
            return Err(refuse(common));
        }
    }
    let mut dns_names = 0;
    for general in requested_general_names(&request)? {
        match general {
            GeneralName::DNSName(_) => dns_names += 1,
            GeneralName::URI(uri) if *uri == spiffe_id => {}
            other => return Err(refuse(&other.to_string())),
        }
    }
    let public_key = subject_key(key, spki)?;
    Ok(CheckedPersonCsr {
        key,
        public_key,
        dns_names,
    })
}

/// Every name the request's subjectAltName extensions ask for.
fn requested_general_names<'a>(
    request: &'a X509CertificationRequest<'a>,
) -> Result<Vec<&'a GeneralName<'a>>, Error> {
    let mut names = Vec::new();
    for extension in request.requested_extensions().into_iter().flatten() {
        match extension {
            ParsedExtension::SubjectAlternativeName(san) => names.extend(san.general_names.iter()),
            ParsedExtension::ParseError { error } => {
                return Err(Error::csr(format!(
                    "a requested extension cannot be decoded: {error}"
                )));
            }
            _ => {}
        }
    }
    Ok(names)
}

/// An administrator's request may name only its role (common name) and its SPIFFE id.
fn check_administrator_names(
    request: &X509CertificationRequest<'_>,
    role: &str,
    spiffe_id: &str,
) -> Result<(), Error> {
    let refuse = |name: &str| {
        Error::csr(format!(
            "it asks for the name {name:?}; an administrator's request may name only {role} \
             (common name) and {spiffe_id}"
        ))
    };
    for attribute in request
        .certification_request_info
        .subject
        .iter_common_name()
    {
        let name = attribute
            .as_str()
            .map_err(|_| Error::csr("the common name is not a text string"))?;
        if name != role {
            return Err(refuse(name));
        }
    }
    for extension in request.requested_extensions().into_iter().flatten() {
        match extension {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::URI(uri) if *uri == spiffe_id => {}
                        other => return Err(refuse(&other.to_string())),
                    }
                }
            }
            ParsedExtension::ParseError { error } => {
                return Err(Error::csr(format!(
                    "a requested extension cannot be decoded: {error}"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The DER of `csr`, decoding PEM if it is PEM.
fn der(csr: &[u8]) -> Result<Cow<'_, [u8]>, Error> {
    if csr.is_empty() || csr.len() > MAX_CSR {
        return Err(Error::csr(format!(
            "must be 1 to {MAX_CSR} bytes, got {}",
            csr.len()
        )));
    }
    if !csr.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Ok(Cow::Borrowed(csr));
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(csr)
        .map_err(|e| Error::csr(format!("cannot decode PEM: {e}")))?;
    match pem.label.as_str() {
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Ok(Cow::Owned(pem.contents)),
        other => Err(Error::csr(format!(
            "PEM block is {other:?}, not CERTIFICATE REQUEST"
        ))),
    }
}

fn decode(der: &[u8]) -> Result<X509CertificationRequest<'_>, Error> {
    check_outer_tags(der)?;
    match X509CertificationRequest::from_der(der) {
        Ok(([], request)) => Ok(request),
        Ok(_) => Err(Error::csr("trailing bytes after the request")),
        Err(e) => Err(Error::csr(format!("not a PKCS#10 request: {e}"))),
    }
}

/// Checks the tags of the parts the signature does not cover, which x509-parser reads by tag
/// number alone: `SEQUENCE { info SEQUENCE, SEQUENCE { OBJECT IDENTIFIER, .. }, BIT STRING }`,
/// each universal and constructed exactly when a SEQUENCE, and a signature of whole bytes.
/// Without this a request whose signature algorithm is an OCTET STRING, whose outer SEQUENCE is
/// context-tagged or whose signature claims unused bits passes: not DER, and one signed request
/// would have many encodings.
fn check_outer_tags(der: &[u8]) -> Result<(), Error> {
    let request = element(der, Tag::Sequence, "the request")?;
    let (rest, info) = Any::from_der(request).map_err(|_| not_der("the request info"))?;
    expect(&info, Tag::Sequence, "the request info")?;
    let (rest, algorithm) = Any::from_der(rest).map_err(|_| not_der("the signature algorithm"))?;
    expect(&algorithm, Tag::Sequence, "the signature algorithm")?;
    element(
        algorithm.data,
        Tag::Oid,
        "the signature algorithm's identifier",
    )?;
    let (_, signature) = Any::from_der(rest).map_err(|_| not_der("the signature"))?;
    expect(&signature, Tag::BitString, "the signature")?;
    match signature.data.first() {
        Some(0) => Ok(()),
        _ => Err(Error::csr(
            "the signature BIT STRING does not hold whole bytes (unused bits must be 0)",
        )),
    }
}

/// The contents of the first element of `der`, which must be a `tag`.
fn element<'a>(der: &'a [u8], tag: Tag, what: &str) -> Result<&'a [u8], Error> {
    let (_, any) = Any::from_der(der).map_err(|_| not_der(what))?;
    expect(&any, tag, what)?;
    Ok(any.data)
}

fn expect(any: &Any<'_>, tag: Tag, what: &str) -> Result<(), Error> {
    let header = &any.header;
    let constructed = tag == Tag::Sequence;
    if header.class() == Class::Universal
        && header.tag() == tag
        && header.is_constructed() == constructed
    {
        return Ok(());
    }
    Err(Error::csr(format!(
        "{what} is not a DER {tag} (found {:?} tag {})",
        header.class(),
        header.tag()
    )))
}

fn not_der(what: &str) -> Error {
    Error::csr(format!("not a PKCS#10 request: {what} is not DER"))
}

/// The key's kind, if this CA certifies it.
fn key_kind(spki: &ParsedSpki<'_>) -> Result<KeyKind, Error> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        rsa(spki)
    } else if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        curve(spki)
    } else if *algorithm == OID_SIG_ED25519 {
        Ok(KeyKind::Ed25519)
    } else if *algorithm == OID_KEY_TYPE_DSA {
        Err(Error::key(format!(
            "DSA keys are not allowed; {ALLOWED_KEYS}"
        )))
    } else {
        Err(Error::key(format!(
            "key algorithm {algorithm} is not allowed; {ALLOWED_KEYS}"
        )))
    }
}

fn rsa(spki: &ParsedSpki<'_>) -> Result<KeyKind, Error> {
    let Ok(PublicKey::RSA(key)) = spki.parsed() else {
        return Err(Error::csr("the RSA public key cannot be decoded"));
    };
    let bits = bit_length(key.modulus);
    if bits < MIN_RSA_BITS {
        return Err(Error::key(format!(
            "RSA-{bits} keys are not allowed: RSA keys need at least {MIN_RSA_BITS} bits"
        )));
    }
    if bits > MAX_RSA_BITS {
        return Err(Error::key(format!(
            "RSA-{bits} keys are not allowed: at most {MAX_RSA_BITS} bits"
        )));
    }
    Ok(KeyKind::Rsa { bits })
}

/// The bit length of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = bytes.get(start..).unwrap_or_default();
    significant.first().map_or(0, |first| {
        significant.len() * 8 - first.leading_zeros() as usize
    })
}

fn curve(spki: &ParsedSpki<'_>) -> Result<KeyKind, Error> {
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    match curve {
        Some(oid) if oid == OID_EC_P256 => Ok(KeyKind::EcdsaP256),
        Some(oid) if oid == OID_NIST_EC_P384 => Ok(KeyKind::EcdsaP384),
        Some(oid) if oid.to_id_string() == OID_SM2_CURVE => {
            govtrust_kms::national::sm2_check_public_key(&spki.subject_public_key.data)
                .map_err(|e| Error::key(format!("the SM2 key is not valid: {e}")))?;
            Ok(KeyKind::Sm2)
        }
        Some(oid) => Err(Error::key(format!(
            "elliptic curve {oid} is not allowed; {ALLOWED_KEYS}"
        ))),
        None => Err(Error::key(format!(
            "EC keys without a named curve are not allowed; {ALLOWED_KEYS}"
        ))),
    }
}

/// Checks the signature algorithm and that the signature verifies with the request's key.
fn prove_possession(request: &X509CertificationRequest<'_>, key: KeyKind) -> Result<(), Error> {
    let allowed = [
        OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA,
        OID_PKCS1_SHA512WITHRSA,
        OID_PKCS1_RSASSAPSS,
        OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384,
        OID_SIG_ED25519,
    ];
    let algorithm = &request.signature_algorithm.algorithm;
    let sm2_key = key == KeyKind::Sm2;
    if algorithm.to_id_string() == OID_SM2_WITH_SM3 && sm2_key {
        return prove_sm2_possession(request);
    }
    if sm2_key {
        return Err(Error::csr(format!(
            "signature algorithm {algorithm} is not allowed for an SM2 key: sign the request \
             with SM2-with-SM3 ({OID_SM2_WITH_SM3})"
        )));
    }
    if !allowed.contains(algorithm) {
        return Err(Error::csr(format!(
            "signature algorithm {algorithm} is not allowed"
        )));
    }
    request.verify_signature().map_err(|_| {
        Error::csr("signature does not verify: the request does not prove possession of its key")
    })
}

/// Checks an SM2 request's signature (SM2-with-SM3 over the request info, ID
/// `1234567812345678`) with its own key.
fn prove_sm2_possession(request: &X509CertificationRequest<'_>) -> Result<(), Error> {
    let info = &request.certification_request_info;
    let verified = govtrust_kms::national::sm2_verify(
        &info.subject_pki.subject_public_key.data,
        info.raw,
        &request.signature_value.data,
    );
    match verified {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::csr(format!(
            "SM2 signature does not verify with the ID {}: the request does not prove \
             possession of its key (sign it with `-sigopt distid:{}`)",
            govtrust_kms::national::DEFAULT_ID,
            govtrust_kms::national::DEFAULT_ID
        ))),
        Err(e) => Err(Error::csr(format!("the SM2 signature is malformed: {e}"))),
    }
}

/// Every common name in the subject must be the system's name.
fn check_subject(subject: &X509Name<'_>, system: &SystemRecord) -> Result<(), Error> {
    for attribute in subject.iter_common_name() {
        let name = attribute
            .as_str()
            .map_err(|_| Error::csr("the common name is not a text string"))?;
        if name != system.name.as_str() {
            return Err(not_allowed(name, system));
        }
    }
    Ok(())
}

/// The DNS names requested in a subjectAltName extension, each one the system may hold.
fn requested_names(
    request: &X509CertificationRequest<'_>,
    system: &SystemRecord,
) -> Result<Vec<DnsName>, Error> {
    let mut names: Vec<DnsName> = Vec::new();
    for extension in request.requested_extensions().into_iter().flatten() {
        match extension {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    if let Some(dns) =
                        allowed_name(name, system)?.filter(|dns| !names.contains(dns))
                    {
                        names.push(dns);
                    }
                }
            }
            ParsedExtension::ParseError { error } => {
                return Err(Error::csr(format!(
                    "a requested extension cannot be decoded: {error}"
                )));
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The DNS name `name` stands for if the system may hold it, `None` for its own SPIFFE id.
fn allowed_name(name: &GeneralName<'_>, system: &SystemRecord) -> Result<Option<DnsName>, Error> {
    match name {
        GeneralName::DNSName(dns) => {
            let wanted = dns.to_ascii_lowercase();
            let registered = system.dns_names.iter().find(|d| d.as_str() == wanted);
            registered
                .cloned()
                .map(Some)
                .ok_or_else(|| not_allowed(dns, system))
        }
        GeneralName::URI(uri) if *uri == system.spiffe_id => Ok(None),
        GeneralName::URI(uri) => Err(not_allowed(uri, system)),
        other => Err(not_allowed(&other.to_string(), system)),
    }
}

fn not_allowed(name: &str, system: &SystemRecord) -> Error {
    Error::NameNotAllowed {
        name: name.to_owned(),
        system: system.name.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn bit_length_ignores_leading_zeros() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x01, 0xff]), 9);
    }

    #[test]
    fn garbage_is_an_invalid_csr() {
        for input in [
            &b""[..],
            b"\x30\x03\x02\x01",
            b"-----BEGIN CERTIFICATE REQUEST-----\n!!\n",
        ] {
            assert!(matches!(
                der(input).and_then(|d| decode(&d).map(|_| ())),
                Err(Error::InvalidCsr { .. })
            ));
        }
    }

    /// A request from rcgen, DER.
    fn request() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ledger");
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    /// Offsets of the outer tag, the signature algorithm's tag, its identifier's tag, the
    /// signature's tag and the signature's unused-bits byte.
    fn outer_offsets(der: &[u8]) -> [usize; 5] {
        // Where a suffix of `der` starts.
        let offset = |rest: &[u8]| der.len() - rest.len();
        let (_, request) = Any::from_der(der).unwrap();
        let (rest, _info) = Any::from_der(request.data).unwrap();
        let algorithm_at = offset(rest);
        let (after_algorithm, algorithm) = Any::from_der(rest).unwrap();
        let algorithm_header = rest.len() - after_algorithm.len() - algorithm.data.len();
        let (_, signature) = Any::from_der(after_algorithm).unwrap();
        [
            0,
            algorithm_at,
            algorithm_at + algorithm_header,
            offset(after_algorithm),
            offset(signature.data),
        ]
    }

    /// x509-parser reads the unsigned outer parts by tag number alone; found by the proptest
    /// probe: each of these requests passed before `check_outer_tags`.
    #[test]
    fn non_der_outer_encodings_are_refused() {
        let der = request();
        assert!(decode(&der).is_ok());
        let [outer, algorithm, oid, signature, unused_bits] = outer_offsets(&der);
        for (position, xor, names) in [
            (outer, 0x20, "the request"),
            (outer, 0x40, "the request"),
            (algorithm, 0x80, "the signature algorithm"),
            (oid, 0x02, "identifier"),
            (oid, 0x80, "identifier"),
            (signature, 0x40, "the signature"),
            (unused_bits, 0x01, "unused bits"),
        ] {
            let mut mutated = der.clone();
            mutated[position] ^= xor;
            match decode(&mutated) {
                Err(Error::InvalidCsr { reason }) => assert!(reason.contains(names), "{reason}"),
                Err(other) => panic!("byte {position} ^ {xor:#x}: {other}"),
                Ok(_) => panic!("byte {position} ^ {xor:#x} was accepted"),
            }
        }
    }
}
