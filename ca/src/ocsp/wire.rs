//! The ASN.1 of RFC 6960 (OCSP), as `der` types: what goes over the wire, nothing more.
//!
//! The module of RFC 6960 §4 is `DEFINITIONS EXPLICIT TAGS`: every context-specific tag below
//! is explicit except the three alternatives of `CertStatus`, which the RFC marks `IMPLICIT`.
//! Names the RFC leaves open (`requestorName`, `byName`, a request's signature, the
//! certificates of a response) are kept as raw `Any` values: decoded as one well-formed TLV,
//! re-encoded byte for byte, never interpreted.

use der::asn1::{Any, BitString, GeneralizedTime, Int, Null, ObjectIdentifier, OctetString};
use der::{Choice, Decode, Encode, Enumerated, Sequence};

use crate::Error;

/// id-pkix-ocsp-basic: the type of a `BasicOCSPResponse` in `ResponseBytes`.
pub(crate) const ID_PKIX_OCSP_BASIC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce: the nonce extension (RFC 6960 §4.4.1, RFC 8954).
pub(crate) const ID_PKIX_OCSP_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-sha1, a CertID hash.
pub(crate) const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-sha256, a CertID hash.
pub(crate) const ID_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// ecdsa-with-SHA256 (RFC 5758).
pub(crate) const ECDSA_WITH_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384 (RFC 5758).
pub(crate) const ECDSA_WITH_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// id-Ed25519 (RFC 8410).
pub(crate) const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// `AlgorithmIdentifier` (RFC 5280 §4.1.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct AlgorithmIdentifier {
    pub algorithm: ObjectIdentifier,
    #[asn1(optional = "true")]
    pub parameters: Option<Any>,
}

/// `Extension` (RFC 5280 §4.1): `critical` is `DEFAULT FALSE`, so FALSE is never encoded.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct Extension {
    pub extn_id: ObjectIdentifier,
    #[asn1(default = "bool::default")]
    pub critical: bool,
    pub extn_value: OctetString,
}

/// `Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension`.
pub(crate) type Extensions = Vec<Extension>;

/// `OCSPRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct OcspRequest {
    pub tbs_request: TbsRequest,
    /// `[0] EXPLICIT Signature`: tolerated, never checked.
    #[asn1(context_specific = "0", optional = "true")]
    pub optional_signature: Option<Any>,
}

/// `TBSRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct TbsRequest {
    /// `[0] EXPLICIT Version DEFAULT v1`: absent in DER, v1 (0) the only version there is.
    #[asn1(context_specific = "0", optional = "true")]
    pub version: Option<u8>,
    /// `[1] EXPLICIT GeneralName`.
    #[asn1(context_specific = "1", optional = "true")]
    pub requestor_name: Option<Any>,
    pub request_list: Vec<SingleRequest>,
    #[asn1(context_specific = "2", optional = "true")]
    pub request_extensions: Option<Extensions>,
}

/// `Request` (one certificate asked about).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct SingleRequest {
    pub req_cert: CertId,
    #[asn1(context_specific = "0", optional = "true")]
    pub single_request_extensions: Option<Extensions>,
}

/// `CertID`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct CertId {
    pub hash_algorithm: AlgorithmIdentifier,
    pub issuer_name_hash: OctetString,
    pub issuer_key_hash: OctetString,
    pub serial_number: Int,
}

/// `OCSPResponseStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u32)]
pub(crate) enum ResponseStatus {
    Successful = 0,
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

/// `OCSPResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct OcspResponse {
    pub response_status: ResponseStatus,
    #[asn1(context_specific = "0", optional = "true")]
    pub response_bytes: Option<ResponseBytes>,
}

/// `ResponseBytes`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct ResponseBytes {
    pub response_type: ObjectIdentifier,
    pub response: OctetString,
}

/// `BasicOCSPResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct BasicOcspResponse {
    pub tbs_response_data: ResponseData,
    pub signature_algorithm: AlgorithmIdentifier,
    pub signature: BitString,
    /// `[0] EXPLICIT SEQUENCE OF Certificate`.
    #[asn1(context_specific = "0", optional = "true")]
    pub certs: Option<Vec<Any>>,
}

/// `ResponseData`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct ResponseData {
    /// `[0] EXPLICIT Version DEFAULT v1`: never written.
    #[asn1(context_specific = "0", optional = "true")]
    pub version: Option<u8>,
    pub responder_id: ResponderId,
    pub produced_at: GeneralizedTime,
    pub responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", optional = "true")]
    pub response_extensions: Option<Extensions>,
}

/// `ResponderID`.
#[derive(Clone, Debug, PartialEq, Eq, Choice)]
pub(crate) enum ResponderId {
    /// `[1] Name`.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Any),
    /// `[2] KeyHash`: the SHA-1 of the responder's public key (the BIT STRING's value).
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

/// `SingleResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct SingleResponse {
    pub cert_id: CertId,
    pub cert_status: CertStatus,
    pub this_update: GeneralizedTime,
    #[asn1(context_specific = "0", optional = "true")]
    pub next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", optional = "true")]
    pub single_extensions: Option<Extensions>,
}

/// `CertStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Choice)]
pub(crate) enum CertStatus {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

/// `RevokedInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(crate) struct RevokedInfo {
    pub revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", optional = "true")]
    pub revocation_reason: Option<CrlReason>,
}

/// `CRLReason` (RFC 5280 §5.3.1); 7 is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u32)]
pub(crate) enum CrlReason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    RemoveFromCrl = 8,
    PrivilegeWithdrawn = 9,
    AaCompromise = 10,
}

impl CrlReason {
    /// The reason with RFC 5280 code `code`, if there is one.
    pub(crate) fn from_code(code: u8) -> Option<CrlReason> {
        CrlReason::try_from(u32::from(code)).ok()
    }
}

/// `der`, an `OCSPResponse`, decoded with these types (the `BasicOCSPResponse` inside too) and
/// encoded again: the same bytes for any DER response. For the tests.
pub(crate) fn reencoded(der: &[u8]) -> Result<Vec<u8>, Error> {
    let fault = |e: der::Error| Error::OcspEncoding {
        detail: e.to_string(),
    };
    let mut response = OcspResponse::from_der(der).map_err(fault)?;
    if let Some(bytes) = response.response_bytes.as_mut() {
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(fault)?;
        bytes.response = OctetString::new(basic.to_der().map_err(fault)?).map_err(fault)?;
    }
    response.to_der().map_err(fault)
}
