//! Answering OCSP requests for every CA of the hierarchy, from responses signed in advance.
//!
//! A request for one certificate without a nonce (what browsers, openssl and most relying
//! parties send) is answered from a cache of signed responses keyed by its CertID's encoding.
//! A cached response is served while it is younger than the refresh interval *and* the
//! certificate's revocation state (held in memory, see `revocation`) is still the one it was
//! signed with: a revocation or suspension shows in the very next answer, with no cache to
//! invalidate. Anything else (a nonce, several CertIDs) is signed on the spot.
//!
//! Serials the CA never issued are answered `unknown` and not cached, so random serials cannot
//! push real answers out of the cache; a CertID naming another CA gets `unauthorized`, a
//! malformed request `malformedRequest`, a sealed kms `tryLater`. Nothing here panics on
//! input.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use super::delegate::{self, Delegate};
use super::{CertId, Request, Status, Times, refusal};
use crate::certificates;
use crate::issuer::{Authority, Serial, later};
use crate::revocation::Reason;
use crate::{Ca, Error};

/// Signed responses kept at most; beyond it a tenth of them (arbitrary ones) make way.
const CACHE_LIMIT: usize = 100_000;

/// What an answer said, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Good,
    Revoked,
    Unknown,
    /// Several certificates, or a nonce: signed on the spot.
    Signed,
    Unauthorized,
    Malformed,
    /// The kms could not sign (sealed) or another internal failure.
    Failed,
}

impl Outcome {
    /// The name: `good`, `revoked`, `unknown`, `signed`, `unauthorized`, `malformed`, `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Revoked => "revoked",
            Self::Unknown => "unknown",
            Self::Signed => "signed",
            Self::Unauthorized => "unauthorized",
            Self::Malformed => "malformed",
            Self::Failed => "failed",
        }
    }
}

/// An answer to an OCSP request: the `OCSPResponse` DER and, for a response that may be
/// cached by HTTP, when it was made and until when it is fresh.
#[derive(Debug, Clone)]
pub struct Answer {
    pub der: Arc<Vec<u8>>,
    pub outcome: Outcome,
    /// thisUpdate and nextUpdate of a cacheable response (one CertID, no nonce).
    pub validity: Option<(SystemTime, SystemTime)>,
}

impl Answer {
    fn unsigned(der: &'static [u8], outcome: Outcome) -> Self {
        Self {
            der: Arc::new(der.to_vec()),
            outcome,
            validity: None,
        }
    }
}

/// What a certificate's standing was when a response was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Good,
    Revoked(Reason, SystemTime),
}

/// A signed response for one CertID.
struct Cached {
    der: Arc<Vec<u8>>,
    standing: Standing,
    this_update: SystemTime,
    next_update: SystemTime,
}

/// The OCSP side of the CA: each CA's responder and the signed responses.
#[derive(Default)]
pub(crate) struct Ocsp {
    delegates: Mutex<[Option<Arc<Delegate>>; 3]>,
    cache: RwLock<HashMap<Vec<u8>, Cached>>,
}

fn slot(authority: Authority) -> usize {
    match authority {
        Authority::Root => 0,
        Authority::Extranet => 1,
        Authority::Intranet => 2,
    }
}

impl Ocsp {
    /// The answer to the OCSP request `der`.
    pub(crate) fn answer(&self, ca: &Ca, der: &[u8]) -> Answer {
        let request = match Request::parse(der) {
            Ok(request) => request,
            Err(error) => return Answer::unsigned(refusal(&error), Outcome::Malformed),
        };
        let answered = match request.single() {
            Some(id) => self.single(ca, id),
            None => self.signed(ca, &request),
        };
        answered.unwrap_or_else(|error| {
            let outcome = match error {
                Error::OcspUnauthorized { .. } => Outcome::Unauthorized,
                Error::OcspMalformed { .. } => Outcome::Malformed,
                _ => Outcome::Failed,
            };
            if outcome == Outcome::Failed {
                tracing::warn!(%error, "an OCSP request could not be answered");
            }
            Answer::unsigned(refusal(&error), outcome)
        })
    }

    /// The answer to `der` if it is one certificate without a nonce whose cached response
    /// still holds: no store read, no signature, nothing that blocks. With `nonce_optional`,
    /// a request for one certificate with a nonce gets that response too, without its nonce
    /// (RFC 5019 §2.1: a responder may leave the nonce out), for when signing is rationed.
    pub(crate) fn cached_answer(
        &self,
        ca: &Ca,
        der: &[u8],
        nonce_optional: bool,
    ) -> Option<Answer> {
        let request = Request::parse(der).ok()?;
        let id = match (request.single(), request.cert_ids()) {
            (Some(id), _) => id,
            (None, [id]) if nonce_optional => id,
            _ => return None,
        };
        self.cached(ca, id, standing(ca, id.serial()), ca.clock.now())
    }

    /// One certificate, no nonce: the cached response if it still holds, else a new one.
    fn single(&self, ca: &Ca, id: &CertId) -> Result<Answer, Error> {
        let now = ca.clock.now();
        let standing = standing(ca, id.serial());
        if let Some(answer) = self.cached(ca, id, standing, now) {
            return Ok(answer);
        }
        let (authority, delegate) = self.responder_for(ca, id)?;
        let status = status(ca, authority, id.serial())?;
        let times = times(ca, now)?;
        let der = Arc::new(delegate.responder.presign(id, status, &times)?);
        let next_update = times.next_update.unwrap_or(now);
        let outcome = match status {
            Status::Good => Outcome::Good,
            Status::Revoked { .. } => Outcome::Revoked,
            Status::Unknown => Outcome::Unknown,
        };
        if status != Status::Unknown {
            self.keep(id, der.clone(), standing, now, next_update);
        }
        Ok(Answer {
            der,
            outcome,
            validity: Some((now, next_update)),
        })
    }

    fn cached(&self, ca: &Ca, id: &CertId, standing: Standing, now: SystemTime) -> Option<Answer> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let hit = cache.get(id.as_der())?;
        let fresh = hit
            .this_update
            .checked_add(ca.settings.ocsp.refresh)
            .is_some_and(|end| now < end.min(hit.next_update));
        (fresh && hit.standing == standing).then(|| Answer {
            der: hit.der.clone(),
            outcome: match standing {
                Standing::Good => Outcome::Good,
                Standing::Revoked(..) => Outcome::Revoked,
            },
            validity: Some((hit.this_update, hit.next_update)),
        })
    }

    fn keep(
        &self,
        id: &CertId,
        der: Arc<Vec<u8>>,
        standing: Standing,
        this_update: SystemTime,
        next_update: SystemTime,
    ) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            let victims: Vec<Vec<u8>> = cache.keys().take(CACHE_LIMIT / 10).cloned().collect();
            for key in victims {
                cache.remove(&key);
            }
        }
        let cached = Cached {
            der,
            standing,
            this_update,
            next_update,
        };
        cache.insert(id.as_der().to_vec(), cached);
    }

    /// Several certificates or a nonce: signed now, by the responder of the first CertID's
    /// CA (a request mixing CAs is answered `unauthorized`).
    fn signed(&self, ca: &Ca, request: &Request) -> Result<Answer, Error> {
        let first = request.cert_ids().first().ok_or(Error::OcspMalformed {
            defect: super::Defect::NoCertificates,
        })?;
        let (authority, delegate) = self.responder_for(ca, first)?;
        let now = ca.clock.now();
        let times = times(ca, now)?;
        let lookup = |serial: &Serial| status(ca, authority, serial);
        let der = delegate.responder.respond(request, lookup, &times)?;
        Ok(Answer {
            der: Arc::new(der),
            outcome: Outcome::Signed,
            validity: None,
        })
    }

    /// The CA `id` names and its responder, made or replaced if need be.
    fn responder_for(&self, ca: &Ca, id: &CertId) -> Result<(Authority, Arc<Delegate>), Error> {
        let now = ca.clock.now();
        let mut delegates = self
            .delegates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for authority in Authority::ALL {
            let current = &mut delegates[slot(authority)];
            if current.as_ref().is_none_or(|d| now >= d.replace_at) {
                *current = Some(Arc::new(delegate::load_or_make(ca, authority)?));
            }
            if let Some(delegate) = current.as_ref()
                && delegate.responder.answers_for(id)
            {
                return Ok((authority, delegate.clone()));
            }
        }
        Err(Error::OcspUnauthorized {
            serial: id.serial().clone(),
        })
    }
}

/// The standing of `serial` as the CA holds it in memory now.
fn standing(ca: &Ca, serial: &Serial) -> Standing {
    match ca.revocations.get(serial) {
        Some((reason, at)) => Standing::Revoked(reason, at),
        None => Standing::Good,
    }
}

/// What OCSP says of `serial` of the CA `authority`: unknown unless that CA issued it.
fn status(ca: &Ca, authority: Authority, serial: &Serial) -> Result<Status, Error> {
    // The root answers for the issuing CAs it certified (they are in no certificate record).
    if authority == Authority::Root && issuing_ca(ca, serial) {
        return Ok(Status::Good);
    }
    let record = match certificates::find(ca.store.as_ref(), serial) {
        Err(Error::CertificateNotFound { .. }) => return Ok(Status::Unknown),
        other => other?,
    };
    if record.issuer != authority {
        return Ok(Status::Unknown);
    }
    Ok(match standing(ca, serial) {
        Standing::Good => Status::Good,
        Standing::Revoked(reason, at) => Status::Revoked {
            at,
            reason: (reason != Reason::Unspecified).then_some(reason.code()),
        },
    })
}

/// Whether `serial` is one of this deployment's issuing CA certificates.
fn issuing_ca(ca: &Ca, serial: &Serial) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let chain = ca.chain();
    [&chain.extranet_der, &chain.intranet_der]
        .iter()
        .any(|der| {
            X509Certificate::from_der(der)
                .is_ok_and(|(_, cert)| cert.raw_serial() == serial.as_bytes())
        })
}

fn times(ca: &Ca, now: SystemTime) -> Result<Times, Error> {
    Ok(Times {
        produced_at: now,
        this_update: now,
        next_update: Some(later(now, ca.settings.ocsp.next_update)?),
    })
}
