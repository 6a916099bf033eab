//! The CA's storage layout: keys and the JSON records stored under them.
//!
//! Records are private to this crate; public types convert from them. Layout:
//!
//! | key | value |
//! |---|---|
//! | `ca/hierarchy` | [`HierarchyRecord`]: trust domain, CA key ids and certificates, the server's names |
//! | `ca/system/<name>` | [`SystemRecordV1`] |
//! | `ca/dns/<dns name>` | [`DnsRecord`]: the one system holding the name |
//! | `ca/token/<sha256 hex of token>` | [`TokenRecord`] (the token itself is never stored) |
//! | `ca/systoken/<system>` | [`CurrentTokenRecord`]: the only token of the system that may enroll |
//! | `ca/cert/<serial hex>` | [`CertRecordV1`] |
//! | `ca/bysys/<system or person>/<serial hex>` | empty: index of certificates by holder |
//! | `ca/syscert/<system or person>` | [`LatestCertRecord`]: the holder's most recently recorded certificate |
//! | `ca/person/<id>` | [`PersonRecord`]: an administrator's role, or a registered person's name, department, network and national-ID digest |
//! | `ca/nationalid/<keyed digest>` | [`NationalIdRecord`]: the person registered with that national ID |
//! | `ca/persontoken/<sha256 hex of token>` | [`PersonTokenRecord`] |
//! | `ca/persontok/<person>` | [`CurrentTokenRecord`]: the only token of the person that may enroll |
//! | `ca/lineage/<system>` | [`LineageRecord`]: enrollment generation and key floor |
//! | `ca/revoked/<ca>/<serial hex>` | [`RevokedEntry`]: what the CRL of `<ca>` lists (revoked and suspended certificates) |
//! | `ca/crl/<ca>` | [`CrlRecordV1`]: the CA's current CRL and its number |
//! | `ca/superseded/<serial hex>` | [`SupersededEntry`]: a renewed certificate, what renewed it and when |
//! | `ca/ocsp/<ca>` | the CA's delegated OCSP responder: its kms key and certificate |

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::issuer::Serial;

/// Key of the CA hierarchy.
pub(crate) const HIERARCHY: &[u8] = b"ca/hierarchy";
/// Prefix of certificate records.
pub(crate) const CERT_PREFIX: &str = "ca/cert/";
/// Prefix of the DNS-name index.
const DNS_PREFIX: &str = "ca/dns/";

/// Key of a system's record.
pub(crate) fn system_key(name: &str) -> Vec<u8> {
    format!("ca/system/{name}").into_bytes()
}

/// Key of an enrollment token's record, by the token's digest.
pub(crate) fn token_key(digest: &str) -> Vec<u8> {
    format!("ca/token/{digest}").into_bytes()
}

/// Key of the index entry of a DNS name: which system holds it.
pub(crate) fn dns_key(name: &str) -> Vec<u8> {
    format!("{DNS_PREFIX}{name}").into_bytes()
}

/// The DNS name of an index key, if `key` is one.
pub(crate) fn dns_name_of(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.strip_prefix(DNS_PREFIX.as_bytes())?).ok()
}

/// Key of the pointer to a system's current enrollment token.
pub(crate) fn current_token_key(system: &str) -> Vec<u8> {
    format!("ca/systoken/{system}").into_bytes()
}

/// Key of a certificate record.
pub(crate) fn cert_key(serial: &Serial) -> Vec<u8> {
    format!("{CERT_PREFIX}{serial}").into_bytes()
}

/// Prefix of the certificate index of one holder.
pub(crate) fn holder_prefix(holder: &str) -> String {
    format!("ca/bysys/{holder}/")
}

/// Key of the record of a holder's most recently recorded certificate.
pub(crate) fn latest_cert_key(holder: &str) -> Vec<u8> {
    format!("ca/syscert/{holder}").into_bytes()
}

/// Key of a system's enrollment lineage.
pub(crate) fn lineage_key(system: &str) -> Vec<u8> {
    format!("ca/lineage/{system}").into_bytes()
}

/// Prefix of the revocation index of one CA: what its CRL lists.
pub(crate) fn revoked_prefix(ca: &str) -> String {
    format!("ca/revoked/{ca}/")
}

/// Key of one entry of a CA's revocation index.
pub(crate) fn revoked_key(ca: &str, serial: &Serial) -> Vec<u8> {
    format!("ca/revoked/{ca}/{serial}").into_bytes()
}

/// Key of a CA's delegated OCSP responder.
pub(crate) fn ocsp_key(ca: &str) -> Vec<u8> {
    format!("ca/ocsp/{ca}").into_bytes()
}

/// Prefix of the index of renewed certificates.
pub(crate) const SUPERSEDED_PREFIX: &str = "ca/superseded/";

/// Key of a renewed certificate's index entry.
pub(crate) fn superseded_key(serial: &Serial) -> Vec<u8> {
    format!("{SUPERSEDED_PREFIX}{serial}").into_bytes()
}

/// Key of a CA's current CRL.
pub(crate) fn crl_key(ca: &str) -> Vec<u8> {
    format!("ca/crl/{ca}").into_bytes()
}

/// Key of a person's record.
pub(crate) fn person_key(id: &str) -> Vec<u8> {
    format!("ca/person/{id}").into_bytes()
}

/// Key of the national-ID index entry, by the ID's keyed digest.
pub(crate) fn national_id_key(digest: &str) -> Vec<u8> {
    format!("ca/nationalid/{digest}").into_bytes()
}

/// Key of a person's enrollment token, by the token's digest.
pub(crate) fn person_token_key(digest: &str) -> Vec<u8> {
    format!("ca/persontoken/{digest}").into_bytes()
}

/// Key of the pointer to a person's current enrollment token.
pub(crate) fn current_person_token_key(person: &str) -> Vec<u8> {
    format!("ca/persontok/{person}").into_bytes()
}

/// One CA of the hierarchy: its kms key and certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CaRecord {
    pub key_id: String,
    /// The certificate, DER in standard base64.
    pub certificate: String,
}

/// The CA hierarchy, written once by `initialize`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HierarchyRecord {
    pub trust_domain: String,
    pub root: CaRecord,
    pub extranet: CaRecord,
    pub intranet: CaRecord,
    pub created_at_ms: i64,
    /// The server's names at initialization; absent in hierarchies stored before they were
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerRecord>,
    /// The public base URL given at initialization; absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

/// The names of the govtrust server, which no system may hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerRecord {
    pub dns_names: Vec<String>,
    pub ips: Vec<String>,
}

/// A registered system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SystemRecordV1 {
    pub name: String,
    pub org_id: String,
    pub level: u32,
    pub network: String,
    pub spiffe_id: String,
    pub dns_names: Vec<String>,
    pub registered_at_ms: i64,
}

/// The system holding a DNS name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DnsRecord {
    pub system: String,
}

/// The digest of a system's current enrollment token; every other token of the system is
/// superseded. Absent for systems registered before it was kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CurrentTokenRecord {
    pub digest: String,
}

/// A one-time enrollment token, stored by digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub system: String,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    /// Who issued it: the administrator who registered the system, or who issued a new token.
    /// Absent in tokens stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
    /// For a re-enrollment: the approval that allowed the token and whether the new enrollment
    /// keeps the keys of earlier ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reenrollment: Option<ReEnrollmentRecord>,
}

/// The approved re-enrollment a token was issued under.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReEnrollmentRecord {
    pub approval: String,
    pub carry_keys: bool,
}

/// A system's enrollment generation and the oldest generation whose keys it may reach.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct LineageRecord {
    pub generation: u32,
    pub key_floor: u32,
}

/// The serial of the certificate most recently recorded for a holder. Every recorded
/// certificate rewrites it, so a batch expecting the bytes read earlier fails if any
/// certificate was issued to the holder meanwhile. Absent for holders with no certificate
/// recorded since it was kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LatestCertRecord {
    pub serial: String,
}

/// An issued certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CertRecordV1 {
    pub serial: String,
    /// The holder: a system name, a person id or `govtrust`.
    pub holder: String,
    pub spiffe_id: String,
    pub network: String,
    pub issuer: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    /// DER in standard base64.
    pub der: String,
    pub revoked: bool,
    /// The holder's enrollment generation; absent (0) before generations were kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u32,
    /// Why, when and by whom it was revoked or suspended (certificateHold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationRecord>,
    /// The certificate that renewed this one, and when it first was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<SupersededRecord>,
    /// The profile it was issued by; absent for initialization's and older certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A certificate's revocation or suspension.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RevocationRecord {
    /// RFC 5280 CRLReason code; 6 (certificateHold) is a suspension.
    pub reason: u8,
    pub at_ms: i64,
    pub by: String,
}

/// A certificate's renewal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SupersededRecord {
    /// The newest certificate that renewed it.
    pub by: String,
    /// When it was first renewed: the renewal grace runs from here.
    pub at_ms: i64,
}

/// A renewed certificate, indexed so the server can refuse it once the renewal grace is over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SupersededEntry {
    pub by: String,
    pub at_ms: i64,
    pub not_after_ms: i64,
}

/// One certificate a CA's CRL lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RevokedEntry {
    pub reason: u8,
    pub at_ms: i64,
    /// When the certificate expires: after that the CRL leaves it out (RFC 5280 §3.3).
    pub not_after_ms: i64,
}

/// A CA's current CRL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CrlRecordV1 {
    pub number: u64,
    pub this_update_ms: i64,
    pub next_update_ms: i64,
    /// DER in standard base64.
    pub der: String,
    /// Entries listed.
    pub entries: u64,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// A person identity: an administrator with its role, or a registered civil servant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PersonRecord {
    /// The administrator role; absent for registered persons, who have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub spiffe_id: String,
    pub created_at_ms: i64,
    /// A registered person's details; absent for administrators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<RegisteredPersonRecord>,
}

/// What the registration of a person (a civil servant) recorded. The national ID is kept only
/// as a keyed digest (see `govtrust_kms::Kms::keyed_digest`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RegisteredPersonRecord {
    pub name: String,
    pub department: String,
    pub network: String,
    /// Hex HMAC-SHA256 of the national ID under the kms's digest key.
    pub national_id_digest: String,
    pub registered_by: String,
}

/// The person registered with a national ID (by its keyed digest).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NationalIdRecord {
    pub person: String,
}

/// A person's one-time enrollment token, stored by digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PersonTokenRecord {
    pub person: String,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    pub issued_by: String,
}

/// `record` as JSON.
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(record).map_err(|e| Error::corrupt(format!("cannot encode record: {e}")))
}

/// The record stored under `key`.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(value)
        .map_err(|e| Error::corrupt(format!("{}: {e}", String::from_utf8_lossy(key))))
}

/// Standard base64 of `der`.
pub(crate) fn base64(der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// The bytes of a stored base64 field; `context` names it in errors.
pub(crate) fn unbase64(text: &str, context: &str) -> Result<Vec<u8>, Error> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::corrupt(format!("{context}: {e}")))
}
