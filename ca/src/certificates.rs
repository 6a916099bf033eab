//! The record of every issued certificate, and queries over it.
//!
//! Each certificate is stored at `ca/cert/<serial>` with an index entry at
//! `ca/bysys/<holder>/<serial>` and its serial at `ca/syscert/<holder>` (the holder's latest),
//! in the same batch as the change that issued it.

use std::time::SystemTime;

use govtrust_store::{Batch, Store};

use crate::identity::Network;
use crate::issuance::Leaf;
use crate::issuer::{Authority, Serial};
use crate::records::{self, CertRecordV1, LatestCertRecord, RevocationRecord, SupersededRecord};
use crate::revocation::{Reason, Revocation};
use crate::timestamps::{from_unix_ms, unix_ms};
use crate::{Error, pem};

/// Page size when the caller asks for 0.
const DEFAULT_PAGE: usize = 100;
/// Largest page.
const MAX_PAGE: usize = 1000;

/// Where a certificate stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertStatus {
    /// Within its validity period, neither revoked nor suspended nor renewed.
    Valid,
    /// Past its `not_after`.
    Expired,
    /// Revoked, for good.
    Revoked,
    /// On hold (certificateHold): refused until unsuspended.
    Suspended,
    /// Renewed: still within its validity period, but another certificate took its place.
    Superseded,
}

/// A certificate's renewal: which certificate took its place and when it first did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supersession {
    /// The newest certificate renewed from it.
    pub by: Serial,
    /// When it was first renewed.
    pub at: SystemTime,
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    /// The serial number.
    pub serial: Serial,
    /// The holder: a system name, a person id (the administrator role) or `govtrust`.
    pub system: String,
    /// The identity in the certificate's URI SAN.
    pub spiffe_id: String,
    /// The network of the issuing CA.
    pub network: Network,
    /// The issuing CA.
    pub issuer: Authority,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// The holder's enrollment generation the certificate belongs to (see [`crate::Lineage`]);
    /// 0 for certificates recorded before generations were kept, and for non-systems.
    pub generation: u32,
    /// Its revocation or suspension, if any.
    pub revocation: Option<Revocation>,
    /// Its renewal, if it was renewed.
    pub superseded: Option<Supersession>,
    /// The profile it was issued by; `None` for the certificates of initialization and those
    /// recorded before profiles were kept (system identities).
    pub profile: Option<String>,
}

impl CertRecord {
    /// The certificate's status at `now`: a revocation first, then expiry, then suspension
    /// and renewal.
    pub fn status(&self, now: SystemTime) -> CertStatus {
        match &self.revocation {
            Some(r) if !r.is_suspension() => CertStatus::Revoked,
            _ if now > self.not_after => CertStatus::Expired,
            Some(_) => CertStatus::Suspended,
            None if self.superseded.is_some() => CertStatus::Superseded,
            None => CertStatus::Valid,
        }
    }

    /// Whether the certificate may authenticate its holder at `now`: within its validity
    /// period, neither revoked nor suspended (a renewed one still may, until it expires).
    pub fn usable(&self, now: SystemTime) -> bool {
        matches!(self.status(now), CertStatus::Valid | CertStatus::Superseded)
    }

    /// Whether the certificate still stands at `now`: neither expired nor revoked (a
    /// suspended one may be unsuspended).
    pub fn live(&self, now: SystemTime) -> bool {
        !matches!(self.status(now), CertStatus::Expired | CertStatus::Revoked)
    }

    fn stored(&self) -> CertRecordV1 {
        CertRecordV1 {
            serial: self.serial.to_string(),
            holder: self.system.clone(),
            spiffe_id: self.spiffe_id.clone(),
            network: self.network.to_string(),
            issuer: self.issuer.to_string(),
            not_before_ms: unix_ms(self.not_before),
            not_after_ms: unix_ms(self.not_after),
            der: records::base64(&self.der),
            revoked: self.revocation.is_some(),
            generation: self.generation,
            revocation: self.revocation.as_ref().map(|r| RevocationRecord {
                reason: r.reason.code(),
                at_ms: unix_ms(r.at),
                by: r.by.clone(),
            }),
            superseded: self.superseded.as_ref().map(|s| SupersededRecord {
                by: s.by.to_string(),
                at_ms: unix_ms(s.at),
            }),
            profile: self.profile.clone(),
        }
    }

    fn from_stored(key: &[u8], record: CertRecordV1) -> Result<Self, Error> {
        let context = String::from_utf8_lossy(key).into_owned();
        let der = records::unbase64(&record.der, &context)?;
        let corrupt = |e: Error| Error::corrupt(format!("{context}: {e}"));
        let revocation = record
            .revocation
            .map(|r| revocation(&context, r))
            .transpose()?;
        let superseded = record
            .superseded
            .map(|s| -> Result<Supersession, Error> {
                Ok(Supersession {
                    by: s.by.parse().map_err(corrupt)?,
                    at: from_unix_ms(s.at_ms),
                })
            })
            .transpose()?;
        Ok(Self {
            network: record.network.parse().map_err(corrupt)?,
            pem: pem::certificate(&der),
            serial: record.serial.parse().map_err(corrupt)?,
            system: record.holder,
            spiffe_id: record.spiffe_id,
            issuer: record.issuer.parse().map_err(corrupt)?,
            not_before: from_unix_ms(record.not_before_ms),
            not_after: from_unix_ms(record.not_after_ms),
            der,
            generation: record.generation,
            revocation,
            superseded,
            profile: record.profile,
        })
    }
}

/// The revocation a stored record holds; `context` names the record in errors.
fn revocation(context: &str, record: RevocationRecord) -> Result<Revocation, Error> {
    let reason = Reason::from_code(record.reason).ok_or_else(|| {
        Error::corrupt(format!(
            "{context}: unknown revocation reason {}",
            record.reason
        ))
    })?;
    Ok(Revocation {
        reason,
        at: from_unix_ms(record.at_ms),
        by: record.by,
    })
}

/// Which certificates to list; every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFilter {
    /// Only this holder's certificates.
    pub system: Option<String>,
    /// Only certificates with this status now.
    pub status: Option<CertStatus>,
    /// Only certificates whose `not_after` is before this time.
    pub expiring_before: Option<SystemTime>,
}

impl CertFilter {
    fn matches(&self, record: &CertRecord, now: SystemTime) -> bool {
        self.status
            .is_none_or(|status| record.status(now) == status)
            && self
                .expiring_before
                .is_none_or(|before| record.not_after < before)
    }
}

/// Adds `record`, its index entry and its holder's latest serial to `batch`; the batch fails
/// on a serial already taken.
pub(crate) fn stage(batch: &mut Batch, record: &CertRecord) -> Result<(), Error> {
    let key = records::cert_key(&record.serial);
    let index = format!(
        "{}{}",
        records::holder_prefix(&record.system),
        record.serial
    );
    let latest = LatestCertRecord {
        serial: record.serial.to_string(),
    };
    batch
        .expect_absent(key.clone())
        .put(key, records::encode(&record.stored())?)
        .put(index, Vec::new())
        .put(
            records::latest_cert_key(&record.system),
            records::encode(&latest)?,
        );
    Ok(())
}

/// True when any certificate was ever recorded for `holder`, valid or not.
pub(crate) fn ever_held(store: &dyn Store, holder: &str) -> Result<bool, Error> {
    Ok(!next_serials(store, Some(holder), None, 1)?.is_empty())
}

/// Every certificate of `holder` that is live at `now` (neither expired nor revoked).
pub(crate) fn live_all(
    store: &dyn Store,
    holder: &str,
    now: SystemTime,
) -> Result<Vec<CertRecord>, Error> {
    let mut live = Vec::new();
    let mut after: Option<Serial> = None;
    loop {
        let serials = next_serials(store, Some(holder), after.as_ref(), DEFAULT_PAGE)?;
        let exhausted = serials.len() < DEFAULT_PAGE;
        for serial in serials {
            let record = find(store, &serial)?;
            if record.live(now) {
                live.push(record);
            }
            after = Some(serial);
        }
        if exhausted {
            return Ok(live);
        }
    }
}

/// A certificate of `holder` that is live at `now` (neither expired nor revoked), if it holds
/// one.
pub(crate) fn live_of(
    store: &dyn Store,
    holder: &str,
    now: SystemTime,
) -> Result<Option<CertRecord>, Error> {
    Ok(live_all(store, holder, now)?.into_iter().next())
}

/// The certificate with `serial`.
pub(crate) fn find(store: &dyn Store, serial: &Serial) -> Result<CertRecord, Error> {
    find_raw(store, serial).map(|(_, record)| record)
}

/// The certificate with `serial` and its record's stored bytes (for a compare-and-swap).
pub(crate) fn find_raw(store: &dyn Store, serial: &Serial) -> Result<(Vec<u8>, CertRecord), Error> {
    let key = records::cert_key(serial);
    let value = store.get(&key)?.ok_or_else(|| Error::CertificateNotFound {
        serial: serial.clone(),
    })?;
    let record = CertRecord::from_stored(&key, records::decode(&key, &value)?)?;
    Ok((value, record))
}

/// Adds to `batch` the rewrite of a recorded certificate, guarded by its stored bytes `raw`
/// (the batch fails if it changed meanwhile).
pub(crate) fn restage(batch: &mut Batch, raw: Vec<u8>, record: &CertRecord) -> Result<(), Error> {
    let key = records::cert_key(&record.serial);
    batch
        .expect(key.clone(), Some(raw))
        .put(key, records::encode(&record.stored())?);
    Ok(())
}

/// One page of certificates matching `filter`, and the token of the next page if there may be
/// one (the last page can then be empty).
pub(crate) fn list(
    store: &dyn Store,
    filter: &CertFilter,
    now: SystemTime,
    page_size: usize,
    page_token: Option<&str>,
) -> Result<(Vec<CertRecord>, Option<String>), Error> {
    let page_size = match page_size {
        0 => DEFAULT_PAGE,
        size => size.min(MAX_PAGE),
    };
    let mut after = page_token
        .map(|t| Serial::parse_field("page_token", t))
        .transpose()?;
    let mut page = Vec::new();
    loop {
        let serials = next_serials(store, filter.system.as_deref(), after.as_ref(), page_size)?;
        let exhausted = serials.len() < page_size;
        for serial in serials {
            let record = find(store, &serial)?;
            after = Some(serial);
            page.extend(Some(record).filter(|r| filter.matches(r, now)));
            if page.len() == page_size {
                return Ok((page, after.as_ref().map(Serial::to_string)));
            }
        }
        if exhausted {
            return Ok((page, None));
        }
    }
}

/// Up to `limit` serials after `after`, of one holder or of all certificates.
fn next_serials(
    store: &dyn Store,
    holder: Option<&str>,
    after: Option<&Serial>,
    limit: usize,
) -> Result<Vec<Serial>, Error> {
    let prefix = match holder {
        Some(holder) => records::holder_prefix(holder),
        None => records::CERT_PREFIX.to_owned(),
    };
    let start = after.map(|serial| format!("{prefix}{serial}").into_bytes());
    let entries = store.scan(prefix.as_bytes(), start.as_deref(), limit)?;
    let serial = |key: &[u8]| {
        let text = String::from_utf8_lossy(key.get(prefix.len()..).unwrap_or_default());
        Serial::parse(&text)
            .map_err(|e| Error::corrupt(format!("{}: {e}", String::from_utf8_lossy(key))))
    };
    entries.iter().map(|(key, _)| serial(key)).collect()
}

/// The record of a freshly signed leaf.
pub(crate) fn from_leaf(
    leaf: Leaf,
    holder: &str,
    spiffe_id: &str,
    network: Network,
    issuer: Authority,
) -> CertRecord {
    CertRecord {
        pem: pem::certificate(&leaf.der),
        serial: leaf.serial,
        system: holder.to_owned(),
        spiffe_id: spiffe_id.to_owned(),
        network,
        issuer,
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        der: leaf.der,
        generation: 0,
        revocation: None,
        superseded: None,
        profile: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A record as stored before serials and issuers were typed: it reads back, and writes back
    /// the same JSON.
    #[test]
    fn stored_records_keep_their_json() {
        let stored = concat!(
            r#"{"serial":"01a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5","holder":"portal","#,
            r#""spiffe_id":"spiffe://gov.example/org/tax/sys/portal","network":"extranet","#,
            r#""issuer":"extranet","not_before_ms":1750000000000,"not_after_ms":1760000000000,"#,
            r#""der":"MAA=","revoked":false,"generation":2}"#
        );
        let key = b"ca/cert/01a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5";
        let record =
            CertRecord::from_stored(key, records::decode(key, stored.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            record.serial,
            Serial::parse("01a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5").unwrap()
        );
        assert_eq!(record.issuer, Authority::Extranet);
        assert_eq!(records::cert_key(&record.serial), key);
        let written = records::encode(&record.stored()).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), stored);
    }
}
