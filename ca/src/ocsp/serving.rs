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
    /// The entity tag of a cacheable response: a digest of it, made once when it was signed.
    pub tag: Option<Arc<str>>,
}

impl Answer {
    /// A fixed, unsigned response (an error status), never cached.
    pub fn unsigned(der: &'static [u8], outcome: Outcome) -> Self {
        Self {
            der: Arc::new(der.to_vec()),
            outcome,
            validity: None,
            tag: None,
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
    /// The certificate's serial: its standing is checked on every hit.
    serial: Serial,
    standing: Standing,
    this_update: SystemTime,
    next_update: SystemTime,
    tag: Arc<str>,
}

impl Cached {
    fn answer(&self) -> Answer {
        Answer {
            der: self.der.clone(),
            outcome: match self.standing {
                Standing::Good => Outcome::Good,
                Standing::Revoked(..) => Outcome::Revoked,
            },
            validity: Some((self.this_update, self.next_update)),
            tag: Some(self.tag.clone()),
        }
    }

    /// Whether it may be served at `now` for a certificate whose standing is `standing`.
    fn holds(&self, ca: &Ca, standing: Standing, now: SystemTime) -> bool {
        let fresh = self
            .this_update
            .checked_add(ca.settings.ocsp.refresh)
            .is_some_and(|end| now < end.min(self.next_update));
        fresh && self.standing == standing
    }
}

/// Signed responses by key, bounded: beyond [`CACHE_LIMIT`] a tenth (arbitrary ones) make way.
type Kept = RwLock<HashMap<Vec<u8>, Arc<Cached>>>;

/// The OCSP side of the CA: each CA's responder and the responses signed in advance, by the
/// encoding of their CertID and by the exact bytes of the requests they answered (a repeated
/// request is found without being parsed).
#[derive(Default)]
pub(crate) struct Ocsp {
    delegates: Mutex<[Option<Arc<Delegate>>; 3]>,
    by_cert_id: Kept,
    by_request: Kept,
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
            Some(id) => self.single(ca, id, der),
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
        if let Some(answer) = self.repeated(ca, der) {
            return Some(answer);
        }
        let request = Request::parse(der).ok()?;
        let id = match (request.single(), request.cert_ids()) {
            (Some(id), _) => id,
            (None, [id]) if nonce_optional => id,
            _ => return None,
        };
        self.cached(ca, id, standing(ca, id.serial()), ca.clock.now())
    }

    /// The response kept for exactly the request `der`, if it still holds.
    fn repeated(&self, ca: &Ca, der: &[u8]) -> Option<Answer> {
        let cached = {
            let by_request = self
                .by_request
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            by_request.get(der)?.clone()
        };
        let standing = standing(ca, &cached.serial);
        cached
            .holds(ca, standing, ca.clock.now())
            .then(|| cached.answer())
    }

    /// One certificate, no nonce (the request `der`): the cached response if it still holds,
    /// else a new one.
    fn single(&self, ca: &Ca, id: &CertId, der: &[u8]) -> Result<Answer, Error> {
        let now = ca.clock.now();
        let standing = standing(ca, id.serial());
        if let Some(answer) = self.cached(ca, id, standing, now) {
            return Ok(answer);
        }
        let (authority, delegate) = self.responder_for(ca, id)?;
        let status = status(ca, authority, id.serial())?;
        let times = times(ca, now)?;
        let signed = delegate.responder.presign(id, status, &times)?;
        let cached = Arc::new(Cached {
            tag: tag(&signed),
            der: Arc::new(signed),
            serial: id.serial().clone(),
            standing,
            this_update: now,
            next_update: times.next_update.unwrap_or(now),
        });
        let outcome = match status {
            Status::Good => Outcome::Good,
            Status::Revoked { .. } => Outcome::Revoked,
            Status::Unknown => Outcome::Unknown,
        };
        if status != Status::Unknown {
            self.keep(id, der, cached.clone());
        }
        Ok(Answer {
            outcome,
            ..cached.answer()
        })
    }

    fn cached(&self, ca: &Ca, id: &CertId, standing: Standing, now: SystemTime) -> Option<Answer> {
        let by_cert_id = self
            .by_cert_id
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let hit = by_cert_id.get(id.as_der())?;
        hit.holds(ca, standing, now).then(|| hit.answer())
    }

    /// Keeps `cached`, the response for `id`, also under the bytes of the request `der`.
    fn keep(&self, id: &CertId, der: &[u8], cached: Arc<Cached>) {
        for (kept, key) in [(&self.by_cert_id, id.as_der()), (&self.by_request, der)] {
            let mut kept = kept.write().unwrap_or_else(PoisonError::into_inner);
            if kept.len() >= CACHE_LIMIT {
                let victims: Vec<Vec<u8>> = kept.keys().take(CACHE_LIMIT / 10).cloned().collect();
                for victim in victims {
                    kept.remove(&victim);
                }
            }
            kept.insert(key.to_vec(), cached.clone());
        }
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
            tag: None,
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

/// The entity tag of a response: the first 16 bytes of its SHA-256, hex, quoted.
fn tag(der: &[u8]) -> Arc<str> {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex = hex::encode(digest.as_ref().get(..16).unwrap_or_default());
    Arc::from(format!("\"{hex}\""))
}

fn times(ca: &Ca, now: SystemTime) -> Result<Times, Error> {
    Ok(Times {
        produced_at: now,
        this_update: now,
        next_update: Some(later(now, ca.settings.ocsp.next_update)?),
    })
}
