//! Certificate revocation lists (RFC 5280 v2, with CRL number and authority key identifier),
//! one per CA of the hierarchy, the root's included.
//!
//! A CRL lists every certificate in its CA's revocation index that has not expired (RFC 5280
//! §3.3 lets a CRL drop expired certificates), suspended ones with reason certificateHold. It
//! is made anew at once after every change of its CA's index ([`Publisher::publish`]) and
//! whenever it is older than the refresh interval, signed through the CA's [`Issuer`], stored
//! at `ca/crl/<ca>` with a compare-and-swap on the previous one (so its number only grows) and
//! kept in memory for the HTTP port.
//!
//! Publishing coalesces: each change takes a ticket; a CRL begun after a change was committed
//! covers it, so however many revocations arrive at once, at most one signing runs per CA and
//! each waits for at most the one after its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use govtrust_store::{Batch, Store};
use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};

use crate::issuer::{Authority, later};
use crate::records::{self, CrlRecordV1};
use crate::revocation::{self, Reason};
use crate::timestamps::{from_unix_ms, to_x509, unix_ms};
use crate::{Ca, Error};

/// A signed CRL of one CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    pub authority: Authority,
    /// The CRL number: every newer CRL of the CA has a larger one.
    pub number: u64,
    pub this_update: SystemTime,
    pub next_update: SystemTime,
    /// How many certificates it lists.
    pub entries: u64,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

/// How long a signed status document (a CRL, an OCSP response) is valid and how often it is
/// made anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// From thisUpdate to nextUpdate.
    pub next_update: Duration,
    /// A document older than this is made anew even if nothing changed.
    pub refresh: Duration,
}

/// The current CRL of each CA and the tickets of changes not yet published.
pub(crate) struct Publisher {
    current: RwLock<[Option<Arc<Crl>>; 3]>,
    /// Per CA: the ticket of the latest change.
    changes: [AtomicU64; 3],
    /// Per CA: the ticket the latest published CRL covers; held while one is made.
    published: [Mutex<u64>; 3],
}

fn slot(authority: Authority) -> usize {
    match authority {
        Authority::Root => 0,
        Authority::Extranet => 1,
        Authority::Intranet => 2,
    }
}

impl Publisher {
    /// The CRLs stored in `store`.
    pub(crate) fn load(store: &dyn Store) -> Result<Self, Error> {
        let mut current: [Option<Arc<Crl>>; 3] = Default::default();
        for authority in Authority::ALL {
            current[slot(authority)] = stored(store, authority)?.map(|(_, crl)| Arc::new(crl));
        }
        Ok(Self {
            current: RwLock::new(current),
            changes: Default::default(),
            published: Default::default(),
        })
    }

    /// No CRL yet (a new CA).
    pub(crate) fn empty() -> Self {
        Self {
            current: RwLock::default(),
            changes: Default::default(),
            published: Default::default(),
        }
    }

    /// The current CRL of `authority`, if one was made.
    pub(crate) fn current(&self, authority: Authority) -> Option<Arc<Crl>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current[slot(authority)].clone()
    }

    /// Takes a ticket for a change of `authority`'s index that has just been committed.
    pub(crate) fn changed(&self, authority: Authority) -> u64 {
        self.changes[slot(authority)].fetch_add(1, Ordering::AcqRel) + 1
    }

    /// A CRL of `authority` that covers change `ticket`: the current one if it does, else a
    /// new one (made by this call, or by the one that held the lock before it).
    pub(crate) fn publish(
        &self,
        ca: &Ca,
        authority: Authority,
        ticket: u64,
    ) -> Result<Arc<Crl>, Error> {
        let mut published = self.published[slot(authority)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *published >= ticket
            && let Some(crl) = self.current(authority)
        {
            return Ok(crl);
        }
        let covers = self.changes[slot(authority)].load(Ordering::Acquire);
        let crl = Arc::new(make(ca, authority)?);
        *published = covers;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        current[slot(authority)] = Some(crl.clone());
        Ok(crl)
    }

    /// Makes anew every CRL that is missing or older than the refresh interval at `now`;
    /// returns the CRLs made.
    pub(crate) fn refresh(&self, ca: &Ca, now: SystemTime) -> Result<Vec<Arc<Crl>>, Error> {
        let mut made = Vec::new();
        for authority in Authority::ALL {
            let due = self.current(authority).is_none_or(|crl| {
                crl.this_update
                    .checked_add(ca.settings.crl.refresh)
                    .is_none_or(|at| now >= at)
            });
            if due {
                let ticket = self.changes[slot(authority)].load(Ordering::Acquire) + 1;
                made.push(self.publish(ca, authority, ticket)?);
            }
        }
        Ok(made)
    }
}

/// The CRL stored for `authority` with its stored bytes, if any.
fn stored(store: &dyn Store, authority: Authority) -> Result<Option<(Vec<u8>, Crl)>, Error> {
    let key = records::crl_key(authority.name());
    let Some(raw) = store.get(&key)? else {
        return Ok(None);
    };
    let record: CrlRecordV1 = records::decode(&key, &raw)?;
    let der = records::unbase64(&record.der, &String::from_utf8_lossy(&key))?;
    let crl = Crl {
        authority,
        number: record.number,
        this_update: from_unix_ms(record.this_update_ms),
        next_update: from_unix_ms(record.next_update_ms),
        entries: record.entries,
        der,
    };
    Ok(Some((raw, crl)))
}

/// Signs and stores the next CRL of `authority`.
fn make(ca: &Ca, authority: Authority) -> Result<Crl, Error> {
    let store = ca.store.as_ref();
    let previous = stored(store, authority)?;
    let number = previous.as_ref().map_or(0, |(_, crl)| crl.number) + 1;
    let now = ca.clock.now();
    let now_ms = unix_ms(now);
    let listed: Vec<RevokedCertParams> = revocation::index(store, authority)?
        .into_iter()
        .filter(|(_, entry)| entry.not_after_ms >= now_ms)
        .map(|(serial, entry)| revoked(serial.number(), entry.reason, entry.at_ms))
        .collect::<Result<_, _>>()?;
    let next_update = later(now, ca.settings.crl.next_update)?;
    let params = CertificateRevocationListParams {
        this_update: to_x509(now)?,
        next_update: to_x509(next_update)?,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: listed,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let der = ca.hierarchy.signing(authority)?.sign_crl(&params)?;
    let crl = Crl {
        authority,
        number,
        this_update: now,
        next_update,
        entries: params.revoked_certs.len() as u64,
        der,
    };
    save(store, previous.map(|(raw, _)| raw), &crl)?;
    Ok(crl)
}

/// Stores `crl` in place of the CRL read as `previous`.
fn save(store: &dyn Store, previous: Option<Vec<u8>>, crl: &Crl) -> Result<(), Error> {
    let key = records::crl_key(crl.authority.name());
    let record = CrlRecordV1 {
        number: crl.number,
        this_update_ms: unix_ms(crl.this_update),
        next_update_ms: unix_ms(crl.next_update),
        der: records::base64(&crl.der),
        entries: crl.entries,
    };
    let mut batch = Batch::new();
    batch
        .expect(key.clone(), previous)
        .put(key, records::encode(&record)?);
    store.commit(batch)?;
    Ok(())
}

/// One CRL entry. RFC 5280 §5.3.1: the reason code `unspecified` should be left out.
fn revoked(serial: SerialNumber, reason: u8, at_ms: i64) -> Result<RevokedCertParams, Error> {
    let reason = Reason::from_code(reason)
        .filter(|r| *r != Reason::Unspecified)
        .map(rcgen_reason);
    Ok(RevokedCertParams {
        serial_number: serial,
        revocation_time: to_x509(from_unix_ms(at_ms))?,
        reason_code: reason,
        invalidity_date: None,
    })
}

fn rcgen_reason(reason: Reason) -> RevocationReason {
    match reason {
        Reason::Unspecified => RevocationReason::Unspecified,
        Reason::KeyCompromise => RevocationReason::KeyCompromise,
        Reason::CaCompromise => RevocationReason::CaCompromise,
        Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
        Reason::Superseded => RevocationReason::Superseded,
        Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
        Reason::CertificateHold => RevocationReason::CertificateHold,
        Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        Reason::AaCompromise => RevocationReason::AaCompromise,
    }
}
