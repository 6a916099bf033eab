//! Entry points for the fuzz targets in `fuzz/` (outside the workspace), the property tests and
//! the integration tests. Not part of the API: hidden from the docs, no stability promise.

use std::time::SystemTime;

use crate::registry::SystemRecord;
use crate::{DnsName, Error, Network, OrgId, ProtectionLevel, SystemName, csr, ocsp};

/// The fixture system's name: its certificates' common name.
pub const SYSTEM: &str = "ledger";
/// The one DNS name the fixture system holds.
pub const DNS_NAME: &str = "ledger.finance.gov.example";
/// The fixture system's SPIFFE id.
pub const SPIFFE_ID: &str = "spiffe://gov.example/org/finance/sys/ledger";

/// Checks a certificate signing request (DER or PEM) as an enrollment of the fixture system
/// does; the key's kind (`ECDSA P-256`, `RSA-2048`, ...) and the DNS names it may hold.
pub fn csr(bytes: &[u8]) -> Result<(String, Vec<String>), Error> {
    let checked = csr::check(bytes, &system()?)?;
    let names = checked.dns_names.iter().map(|n| n.to_string()).collect();
    Ok((checked.key.to_string(), names))
}

/// An `OCSPResponse` (and the `BasicOCSPResponse` in it, if any) decoded with the crate's OCSP
/// types and encoded again: a DER response comes back byte for byte.
pub fn ocsp_response_reencoded(der: &[u8]) -> Result<Vec<u8>, Error> {
    ocsp::wire::reencoded(der)
}

/// The fixture system: `ledger` of `finance`, level 3, extranet, holding [`DNS_NAME`].
fn system() -> Result<SystemRecord, Error> {
    Ok(SystemRecord {
        name: SystemName::try_from(SYSTEM)?,
        org_id: OrgId::try_from("finance")?,
        level: ProtectionLevel::try_from(3)?,
        network: Network::Extranet,
        spiffe_id: SPIFFE_ID.to_owned(),
        dns_names: vec![DnsName::try_from(DNS_NAME)?],
        registered_at: SystemTime::UNIX_EPOCH,
    })
}
