//! Revocation and suspension of issued certificates.
//!
//! A certificate is revoked for an RFC 5280 reason (§5.3.1), for good; or suspended
//! (certificateHold) and later unsuspended, for a lost token found again. Each change commits
//! in one batch: the certificate's record (compare-and-swap on its exact old bytes, so two
//! changes cannot both win), its entry in its CA's revocation index (`ca/revoked/<ca>/<serial>`,
//! what the CRL lists) and the audit event. After the commit the CA's in-memory view
//! ([`Revocations`]) holds the change, so the server refuses the certificate on its next call,
//! and the CA's CRL is made anew.
//!
//! Who may change what is the server's policy point's business; this module enforces what the
//! states allow: a revoked certificate stays revoked, only a suspended one is unsuspended, an
//! expired one is neither suspended nor unsuspended.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use govtrust_store::{AuditEvent, Batch, Error as StoreError, Store};

use crate::certificates::CertRecord;
use crate::issuer::{Authority, Serial};
use crate::records::{self, RevokedEntry};
use crate::timestamps::{from_unix_ms, rfc3339, unix_ms};
use crate::{Ca, Error};

/// Attempts at a change that lost its compare-and-swap to a concurrent one.
const ATTEMPTS: usize = 3;

/// Why a certificate was revoked: the CRLReason codes of RFC 5280 §5.3.1 a CA may give
/// (removeFromCRL, 8, belongs to delta CRLs and is not one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    /// A suspension: the only reason that can be undone.
    CertificateHold,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl Reason {
    /// Every reason, by code.
    pub const ALL: [Reason; 9] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::CertificateHold,
        Reason::PrivilegeWithdrawn,
        Reason::AaCompromise,
    ];

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    /// The reason with CRLReason `code`.
    pub fn from_code(code: u8) -> Option<Reason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The name: `key-compromise`, `certificate-hold`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key-compromise",
            Self::CaCompromise => "ca-compromise",
            Self::AffiliationChanged => "affiliation-changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation-of-operation",
            Self::CertificateHold => "certificate-hold",
            Self::PrivilegeWithdrawn => "privilege-withdrawn",
            Self::AaCompromise => "aa-compromise",
        }
    }

    /// Whether a certificate's holder may give this reason for its own certificate.
    pub fn holder_may_give(self) -> bool {
        matches!(
            self,
            Self::KeyCompromise | Self::Superseded | Self::CessationOfOperation
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reason {
    type Err = Error;

    /// The kebab-case name (`key-compromise`) or RFC 5280's (`keyCompromise`).
    fn from_str(text: &str) -> Result<Self, Error> {
        let folded = text.replace('-', "").to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|r| r.name().replace('-', "") == folded)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|r| r.name()).collect();
                Error::invalid(
                    "reason",
                    format!(
                        "unknown revocation reason {text:?}: one of {}",
                        known.join(", ")
                    ),
                )
            })
    }
}

/// A certificate's revocation or suspension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub reason: Reason,
    pub at: SystemTime,
    /// Who revoked or suspended it.
    pub by: String,
}

impl Revocation {
    /// Whether this is a suspension (certificateHold), which can be undone.
    pub fn is_suspension(&self) -> bool {
        self.reason == Reason::CertificateHold
    }
}

/// A change of a certificate's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Revoke for good, for this reason (not certificateHold: that is [`Change::Suspend`]).
    Revoke(Reason),
    /// Put on hold (certificateHold).
    Suspend,
    /// Take off hold.
    Unsuspend,
}

impl Change {
    fn action(self) -> &'static str {
        match self {
            Self::Revoke(_) => "ca.cert.revoke",
            Self::Suspend => "ca.cert.suspend",
            Self::Unsuspend => "ca.cert.unsuspend",
        }
    }
}

/// Applies `change` to the certificate `serial` on behalf of `actor`; returns the record as
/// changed. Refuses what the certificate's state does not allow, naming why; stores nothing
/// then.
pub(crate) fn apply(
    ca: &Ca,
    actor: Actor<'_>,
    serial: &Serial,
    change: Change,
    note: &str,
) -> Result<CertRecord, Error> {
    for _ in 0..ATTEMPTS {
        let (raw, record) = crate::certificates::find_raw(ca.store.as_ref(), serial)?;
        let mut batch = Batch::new();
        let request = Request {
            change,
            actor,
            note,
        };
        let changed = stage(ca, &mut batch, raw, &record, &request)?;
        match ca.store.commit(batch) {
            Ok(_) => {
                ca.revocations.set(&changed);
                return Ok(changed);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::Store(StoreError::Conflict {
        key: records::cert_key(serial),
    }))
}

/// Who asks for a change: a SPIFFE id, and the certificate it presented, if any.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub id: &'a str,
    pub certificate: Option<&'a Serial>,
}

impl<'a> From<&'a str> for Actor<'a> {
    fn from(id: &'a str) -> Self {
        Self {
            id,
            certificate: None,
        }
    }
}

/// A change asked for, by whom and why.
pub(crate) struct Request<'a> {
    pub change: Change,
    pub actor: Actor<'a>,
    pub note: &'a str,
}

/// Stages `request` for the certificate `record` (stored as `raw`) into `batch`: the record
/// guarded by its bytes, its index entry, the audit event. Returns the record as it will be;
/// once the batch commits, [`committed`] makes the change known.
pub(crate) fn stage(
    ca: &Ca,
    batch: &mut Batch,
    raw: Vec<u8>,
    record: &CertRecord,
    request: &Request<'_>,
) -> Result<CertRecord, Error> {
    let now = ca.clock.now();
    let changed = changed(record, request.change, request.actor.id, now)?;
    crate::certificates::restage(batch, raw, &changed)?;
    stage_index(batch, &changed)?;
    let event = event(&changed, request, now);
    ca.audit.stage(batch, &event)?;
    Ok(changed)
}

/// Makes a committed change known: in memory at once, and in its CA's CRL.
pub(crate) fn committed(ca: &Ca, changed: &[CertRecord]) {
    for record in changed {
        ca.revocations.set(record);
    }
    let mut authorities: Vec<Authority> = changed.iter().map(|r| r.issuer).collect();
    authorities.sort_by_key(|a| a.name());
    authorities.dedup();
    for authority in authorities {
        ca.publish_crl(authority);
    }
}

/// The record after `change`, or why the change is refused.
fn changed(
    record: &CertRecord,
    change: Change,
    actor: &str,
    now: SystemTime,
) -> Result<CertRecord, Error> {
    let refuse = |reason: String| {
        Err(Error::RevocationState {
            serial: record.serial.clone(),
            reason,
        })
    };
    let expired = now > record.not_after;
    let mut changed = record.clone();
    match (change, &record.revocation) {
        (Change::Revoke(Reason::CertificateHold), _) => {
            return Err(Error::invalid(
                "reason",
                "certificateHold is a suspension: suspend the certificate instead",
            ));
        }
        (_, Some(previous)) if !previous.is_suspension() => {
            return refuse(format!(
                "it was revoked ({}) at {} by {}; a revocation is permanent",
                previous.reason,
                rfc3339(previous.at),
                previous.by
            ));
        }
        (Change::Suspend, Some(previous)) => {
            return refuse(format!(
                "it is already suspended, since {} by {}",
                rfc3339(previous.at),
                previous.by
            ));
        }
        (Change::Unsuspend, None) => return refuse("it is not suspended".to_owned()),
        (Change::Suspend | Change::Unsuspend, _) if expired => {
            return refuse(format!("it expired at {}", rfc3339(record.not_after)));
        }
        (Change::Revoke(reason), _) => changed.revocation = Some(revocation(reason, actor, now)),
        (Change::Suspend, None) => {
            changed.revocation = Some(revocation(Reason::CertificateHold, actor, now));
        }
        (Change::Unsuspend, Some(_)) => changed.revocation = None,
    }
    Ok(changed)
}

fn revocation(reason: Reason, actor: &str, now: SystemTime) -> Revocation {
    Revocation {
        reason,
        at: now,
        by: actor.to_owned(),
    }
}

/// Puts the certificate in its CA's revocation index, or takes it out.
fn stage_index(batch: &mut Batch, record: &CertRecord) -> Result<(), Error> {
    let key = records::revoked_key(record.issuer.name(), &record.serial);
    match &record.revocation {
        Some(revocation) => {
            let entry = RevokedEntry {
                reason: revocation.reason.code(),
                at_ms: unix_ms(revocation.at),
                not_after_ms: unix_ms(record.not_after),
            };
            batch.put(key, records::encode(&entry)?);
        }
        None => {
            batch.delete(key);
        }
    }
    Ok(())
}

fn event(record: &CertRecord, request: &Request<'_>, now: SystemTime) -> AuditEvent {
    let Request {
        change,
        actor,
        note,
    } = *request;
    let event = AuditEvent::new(
        unix_ms(now),
        change.action(),
        actor.id,
        record.serial.to_string(),
    )
    .with("holder", record.system.as_str())
    .with("spiffe_id", record.spiffe_id.as_str())
    .with("issuer", record.issuer.name());
    let event = match actor.certificate {
        Some(serial) => event.with("actor_certificate", serial.to_string()),
        None => event,
    };
    let event = match change {
        Change::Revoke(reason) => event.with("reason", reason.name()),
        Change::Suspend => event.with("reason", Reason::CertificateHold.name()),
        Change::Unsuspend => event,
    };
    match note {
        "" => event,
        note => event.with("note", note),
    }
}

/// The revoked and suspended certificates of every CA, and the renewed ones that have not
/// expired, in memory: what the server checks each caller's certificate against. Loaded from
/// the revocation and supersession indexes when the CA opens and kept up to date by every
/// change this process commits (one server process per store).
#[derive(Default)]
pub(crate) struct Revocations {
    by_serial: RwLock<HashMap<Serial, (Reason, SystemTime)>>,
    /// Renewed certificates: when first renewed, and by which certificate last.
    superseded: RwLock<HashMap<Serial, (SystemTime, Serial)>>,
}

impl Revocations {
    /// Reads every CA's revocation index; renewed certificates that expired before `now` (by
    /// the CA's clock) are left out.
    pub(crate) fn load(store: &dyn Store, now: SystemTime) -> Result<Self, Error> {
        let mut by_serial = HashMap::new();
        for authority in Authority::ALL {
            for (serial, entry) in index(store, authority)? {
                let reason = Reason::from_code(entry.reason).unwrap_or(Reason::Unspecified);
                by_serial.insert(serial, (reason, from_unix_ms(entry.at_ms)));
            }
        }
        Ok(Self {
            by_serial: RwLock::new(by_serial),
            superseded: RwLock::new(superseded_index(store, now)?),
        })
    }

    /// When `serial` was first renewed and by which certificate last, if it was.
    pub(crate) fn superseded(&self, serial: &Serial) -> Option<(SystemTime, Serial)> {
        let map = self
            .superseded
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(serial).cloned()
    }

    /// Records the renewal of `record` (whose `superseded` is set), after its batch committed.
    pub(crate) fn supersede(&self, record: &CertRecord) {
        let Some(supersession) = &record.superseded else {
            return;
        };
        let mut map = self
            .superseded
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.insert(
            record.serial.clone(),
            (supersession.at, supersession.by.clone()),
        );
    }

    /// Why and since when `serial` is revoked or suspended, if it is.
    pub(crate) fn get(&self, serial: &Serial) -> Option<(Reason, SystemTime)> {
        let map = self
            .by_serial
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(serial).copied()
    }

    fn set(&self, record: &CertRecord) {
        let mut map = self
            .by_serial
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match &record.revocation {
            Some(r) => map.insert(record.serial.clone(), (r.reason, r.at)),
            None => map.remove(&record.serial),
        };
    }
}

/// Stages the index entry of `record`, renewed (its `superseded` set), into `batch`.
pub(crate) fn stage_supersession(batch: &mut Batch, record: &CertRecord) -> Result<(), Error> {
    let Some(supersession) = &record.superseded else {
        return Ok(());
    };
    let entry = crate::records::SupersededEntry {
        by: supersession.by.to_string(),
        at_ms: unix_ms(supersession.at),
        not_after_ms: unix_ms(record.not_after),
    };
    batch.put(
        records::superseded_key(&record.serial),
        records::encode(&entry)?,
    );
    Ok(())
}

/// The renewed certificates that have not expired.
fn superseded_index(
    store: &dyn Store,
    now: SystemTime,
) -> Result<HashMap<Serial, (SystemTime, Serial)>, Error> {
    let prefix = records::SUPERSEDED_PREFIX;
    let now_ms = unix_ms(now);
    let mut map = HashMap::new();
    let mut start: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(prefix.as_bytes(), start.as_deref(), INDEX_PAGE)?;
        let full = page.len() == INDEX_PAGE;
        for (key, value) in &page {
            let corrupt =
                |e: Error| Error::corrupt(format!("{}: {e}", String::from_utf8_lossy(key)));
            let text = String::from_utf8_lossy(key.get(prefix.len()..).unwrap_or_default());
            let entry: crate::records::SupersededEntry = records::decode(key, value)?;
            if entry.not_after_ms < now_ms {
                continue;
            }
            let serial = Serial::parse(&text).map_err(corrupt)?;
            let by = Serial::parse(&entry.by).map_err(corrupt)?;
            map.insert(serial, (from_unix_ms(entry.at_ms), by));
        }
        match (full, page.last()) {
            (true, Some((key, _))) => start = Some(key.clone()),
            _ => return Ok(map),
        }
    }
}

/// Page size when reading a revocation index.
const INDEX_PAGE: usize = 10_000;

/// Every entry of `authority`'s revocation index, in serial order.
pub(crate) fn index(
    store: &dyn Store,
    authority: Authority,
) -> Result<Vec<(Serial, RevokedEntry)>, Error> {
    let prefix = records::revoked_prefix(authority.name());
    let mut entries = Vec::new();
    let mut start: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(prefix.as_bytes(), start.as_deref(), INDEX_PAGE)?;
        let full = page.len() == INDEX_PAGE;
        for (key, value) in &page {
            let text = String::from_utf8_lossy(key.get(prefix.len()..).unwrap_or_default());
            let corrupt =
                |e: Error| Error::corrupt(format!("{}: {e}", String::from_utf8_lossy(key)));
            let serial = Serial::parse(&text).map_err(corrupt)?;
            entries.push((serial, records::decode(key, value)?));
        }
        match (full, page.last()) {
            (true, Some((key, _))) => start = Some(key.clone()),
            _ => return Ok(entries),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reasons_have_their_rfc_5280_codes_and_names() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
            assert_eq!(reason.name().parse::<Reason>().unwrap(), reason);
        }
        assert_eq!(Reason::from_code(7), None);
        assert_eq!(Reason::from_code(8), None);
        assert_eq!(
            "keyCompromise".parse::<Reason>().unwrap(),
            Reason::KeyCompromise
        );
        let unknown = "stolen".parse::<Reason>().unwrap_err().to_string();
        assert!(unknown.contains("key-compromise"), "{unknown}");
        assert!(Reason::KeyCompromise.holder_may_give());
        assert!(!Reason::CaCompromise.holder_may_give());
    }
}
