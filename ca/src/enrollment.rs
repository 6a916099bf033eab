//! Enrollment (first certificate, with a one-time token) and renewal (with the current
//! certificate, over mTLS) of system identity certificates, and certificates of other profiles
//! a system asks for over mTLS ([`issue_certificate`]).
//!
//! Enrollment and renewal issue the `system-identity` profile; every certificate follows its
//! profile (keys, usage, names, lifetime capped by the system's protection level and the
//! server's maximum, see [`crate::profiles`]).
//!
//! Both check the CSR, sign with the system's network's issuing CA, and commit one batch: the
//! certificate record, its index entry, the audit event, a guard that the system still holds
//! every DNS name in the certificate and, for enrollment, the token marked used with a
//! compare-and-swap on its exact old bytes, so one token gives at most one certificate however
//! many callers race, and a guard that it is still the system's current token. A failure stores
//! nothing; the certificate is durable before it is returned.
//!
//! An enrollment is audited under the system's identity, with `token_issued_by`: the
//! administrator who issued the token (absent for tokens stored before it was recorded).

use std::time::SystemTime;

use govtrust_store::{AuditEvent, Batch, Error as StoreError};

use crate::certificates::{self, CertRecord, CertStatus, Supersession};
use crate::csr::{self, CheckedCsr};
use crate::issuance::{self, LeafSpec};
use crate::issuer::Serial;
use crate::lineage::{self, Lineage};
use crate::profiles::{Caps, HolderKind, Profile, SYSTEM_IDENTITY};
use crate::records::{self, CurrentTokenRecord, ReEnrollmentRecord, TokenRecord};
use crate::registry::{self, SystemRecord};
use crate::timestamps::{from_unix_ms, rfc3339, unix_ms};
use crate::{Ca, Error, token};

/// Signing attempts before a serial collision is blamed on the random number generator.
const SERIAL_ATTEMPTS: usize = 3;

/// A certificate issued to a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The serial number.
    pub serial: Serial,
    /// The certificate alone, PEM.
    pub certificate_pem: String,
    /// The issuing CA then the root, PEM.
    pub chain_pem: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The identity in the certificate's URI SAN.
    pub spiffe_id: String,
}

/// The authenticated peer of an mTLS call: its SPIFFE id and certificate serial (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The URI SAN of the peer's certificate.
    pub spiffe_id: String,
    /// The serial of the peer's certificate.
    pub serial: Serial,
}

/// The compare-and-swap that marks a token used, guarded by the system's current-token pointer.
struct TokenClaim {
    key: Vec<u8>,
    unused: Vec<u8>,
    used: Vec<u8>,
    current_key: Vec<u8>,
    /// The pointer as read; `None` for a system registered before pointers were kept.
    current: Option<Vec<u8>>,
    /// Who issued the token; `None` for tokens stored before it was recorded.
    issued_by: Option<String>,
    /// For a re-enrollment: the approval and whether earlier keys are carried over.
    reenrollment: Option<ReEnrollmentRecord>,
}

impl TokenClaim {
    fn stage(&self, batch: &mut Batch) {
        batch
            .expect(self.key.clone(), Some(self.unused.clone()))
            .put(self.key.clone(), self.used.clone())
            .expect(self.current_key.clone(), self.current.clone());
    }
}

/// What is being issued, for the batch and the audit event.
struct Request<'a> {
    action: &'static str,
    actor: &'a str,
    claim: Option<TokenClaim>,
    renews: Option<&'a Serial>,
    /// For a renewal: the certificate renewed, as read, to be marked superseded in the batch.
    renewed: Option<(Vec<u8>, CertRecord)>,
    /// The generation the certificate belongs to: the caller's for a renewal; for an
    /// enrollment, the next one (staged with the batch).
    generation: Generation,
    /// The profile issued, and the lifetime asked for in days (0: the longest allowed).
    profile: &'a Profile,
    validity_days: u32,
}

/// Which enrollment generation a new certificate belongs to.
enum Generation {
    /// A renewal stays in the caller's generation.
    Same(u32),
    /// An enrollment starts the next one.
    Next(lineage::Advance),
}

/// Enrolls the system `token` was issued for.
pub(crate) async fn enroll(ca: &Ca, token: &str, csr: &[u8]) -> Result<Issued, Error> {
    let now = ca.clock.now();
    let (system, claim) = claim(ca, token, now)?;
    let system = registry::system(ca.store.as_ref(), &system)?;
    let csr = csr::check(csr, &system)?;
    let carry = claim.reenrollment.as_ref().map(|r| r.carry_keys);
    let advance = lineage::advance(ca.store.as_ref(), system.name.as_str(), carry)?;
    // A token issued before re-enrollments needed approval (it records none) still re-enrolls
    // a system that enrolled before, but never with its earlier keys.
    let advance = match (carry, advance.previous.generation) {
        (None, 1..) => lineage::advance(ca.store.as_ref(), system.name.as_str(), Some(false))?,
        _ => advance,
    };
    let request = Request {
        action: "ca.enroll",
        actor: &system.spiffe_id,
        claim: Some(claim),
        renews: None,
        renewed: None,
        generation: Generation::Next(advance),
        profile: ca.profiles.get(SYSTEM_IDENTITY)?,
        validity_days: 0,
    };
    let issued = issue(ca, &system, &csr, &request, now).await;
    remember_lineage(ca, system.name.as_str(), &request, &issued);
    issued
}

/// Updates the CA's view of the system's lineage after an enrollment committed (or may have).
fn remember_lineage(ca: &Ca, system: &str, request: &Request<'_>, issued: &Result<Issued, Error>) {
    let Generation::Next(advance) = &request.generation else {
        return;
    };
    match issued {
        Ok(_) => ca.lineages.set(system, advance.next),
        Err(Error::Store(_)) => ca.lineages.reload(ca.store.as_ref(), system),
        Err(_) => {}
    }
}

/// Renews the certificate of `caller`, a system presenting a current certificate.
pub(crate) async fn renew(ca: &Ca, caller: &Caller, csr: &[u8]) -> Result<Issued, Error> {
    let now = ca.clock.now();
    let system = caller_system(ca, caller)?;
    let (raw, renewed) = caller_certificate(ca, caller, now)?;
    let generation = renewed.generation;
    let current = ca.lineage(system.name.as_str())?;
    check_generation(caller, generation, current)?;
    let csr = csr::check(csr, &system)?;
    let request = Request {
        action: "ca.renew",
        actor: &caller.spiffe_id,
        claim: None,
        renews: Some(&caller.serial),
        renewed: Some((raw, renewed)),
        generation: Generation::Same(generation),
        profile: ca.profiles.get(SYSTEM_IDENTITY)?,
        validity_days: 0,
    };
    issue(ca, &system, &csr, &request, now).await
}

/// Issues a certificate of `profile` to `caller`, a system presenting a current certificate,
/// for its own identity and DNS names registered to it, valid `validity_days` (0: the longest
/// the profile, the system's level and the server allow).
pub(crate) fn issue_certificate(
    ca: &Ca,
    caller: &Caller,
    csr: &[u8],
    profile: &str,
    validity_days: u32,
) -> Result<Issued, Error> {
    let now = ca.clock.now();
    let profile = ca.profiles.get(profile)?;
    profile.check_holder(HolderKind::System)?;
    let system = caller_system(ca, caller)?;
    let (_, current) = caller_certificate(ca, caller, now)?;
    check_generation(
        caller,
        current.generation,
        ca.lineage(system.name.as_str())?,
    )?;
    let csr = csr::check(csr, &system)?;
    let request = Request {
        action: "ca.issue",
        actor: &caller.spiffe_id,
        claim: None,
        renews: None,
        renewed: None,
        generation: Generation::Same(current.generation),
        profile,
        validity_days,
    };
    crate::waiting::block_on(issue(ca, &system, &csr, &request, now))
}

/// Checks `token` and prepares marking it used: the name of the system it enrolls, and the
/// claim.
fn claim(ca: &Ca, token: &str, now: SystemTime) -> Result<(String, TokenClaim), Error> {
    let digest = token::lookup_digest(token).ok_or(Error::TokenUnknown)?;
    let key = records::token_key(&digest);
    let unused = ca.store.get(&key)?.ok_or(Error::TokenUnknown)?;
    let record: TokenRecord = records::decode(&key, &unused)?;
    let current_key = records::current_token_key(&record.system);
    let current = ca.store.get(&current_key)?;
    check_current(&record, &digest, &current_key, current.as_deref())?;
    check_token(&record, now)?;
    let used = records::encode(&TokenRecord {
        used_at_ms: Some(unix_ms(now)),
        ..record.clone()
    })?;
    let claim = TokenClaim {
        key,
        unused,
        used,
        current_key,
        current,
        issued_by: record.issued_by.clone(),
        reenrollment: record.reenrollment.clone(),
    };
    Ok((record.system, claim))
}

/// Refuses a token that is no longer its system's current one. A system registered before the
/// pointer was kept has none: its one token stands until a new one is issued.
fn check_current(
    record: &TokenRecord,
    digest: &str,
    key: &[u8],
    current: Option<&[u8]>,
) -> Result<(), Error> {
    let Some(current) = current else {
        return Ok(());
    };
    let current: CurrentTokenRecord = records::decode(key, current)?;
    match current.digest == digest {
        true => Ok(()),
        false => Err(Error::TokenSuperseded {
            system: record.system.clone(),
        }),
    }
}

fn check_token(record: &TokenRecord, now: SystemTime) -> Result<(), Error> {
    if let Some(used_at) = record.used_at_ms {
        return Err(Error::TokenUsed {
            at: from_unix_ms(used_at),
        });
    }
    let expires_at = from_unix_ms(record.expires_at_ms);
    match now >= expires_at {
        true => Err(Error::TokenExpired {
            at: expires_at,
            system: record.system.clone(),
        }),
        false => Ok(()),
    }
}

/// The registered system whose SPIFFE id the caller presents.
fn caller_system(ca: &Ca, caller: &Caller) -> Result<SystemRecord, Error> {
    let not_current = |reason: String| Error::CallerNotCurrent { reason };
    let name = ca.hierarchy.trust_domain().system_of(&caller.spiffe_id);
    let name = name.ok_or_else(|| {
        not_current(format!(
            "{} is not a system of this trust domain",
            caller.spiffe_id
        ))
    })?;
    let system = match registry::system(ca.store.as_ref(), name.as_str()) {
        Err(Error::SystemNotFound { name }) => {
            Err(not_current(format!("system {name} is not registered")))
        }
        other => other,
    }?;
    match system.spiffe_id == caller.spiffe_id {
        true => Ok(system),
        false => Err(not_current(format!(
            "{} is not the identity of system {name}",
            caller.spiffe_id
        ))),
    }
}

/// Refuses a certificate of an earlier enrollment: the system re-enrolled since.
fn check_generation(caller: &Caller, generation: u32, current: Lineage) -> Result<(), Error> {
    if generation == current.generation {
        return Ok(());
    }
    Err(Error::CallerNotCurrent {
        reason: format!(
            "certificate {} belongs to enrollment {generation} of the system, which has re-enrolled \
             since (enrollment {})",
            caller.serial, current.generation
        ),
    })
}

/// Checks that the caller's certificate is one this CA issued to it and may still renew: valid,
/// or renewed less than the renewal grace ago. Returns its record and stored bytes.
pub(crate) fn caller_certificate(
    ca: &Ca,
    caller: &Caller,
    now: SystemTime,
) -> Result<(Vec<u8>, CertRecord), Error> {
    let serial = &caller.serial;
    let not_current = |reason: String| Error::CallerNotCurrent { reason };
    let found = certificates::find_raw(ca.store.as_ref(), serial);
    let (raw, record) = match found {
        Err(Error::CertificateNotFound { .. }) => Err(not_current(format!(
            "certificate {serial} was not issued by this CA"
        ))),
        other => other,
    }?;
    if record.spiffe_id != caller.spiffe_id {
        return Err(not_current(format!(
            "certificate {serial} belongs to {}",
            record.spiffe_id
        )));
    }
    match record.status(now) {
        CertStatus::Valid => Ok((raw, record)),
        CertStatus::Superseded => within_grace(ca, raw, record, now),
        CertStatus::Expired => Err(not_current(format!(
            "certificate {serial} expired at {}",
            rfc3339(record.not_after)
        ))),
        CertStatus::Revoked | CertStatus::Suspended => {
            let revocation = record.revocation.as_ref();
            let (reason, at) = revocation.map_or(("", now), |r| (r.reason.name(), r.at));
            Err(not_current(format!(
                "certificate {serial} was revoked ({reason}) at {}",
                rfc3339(at)
            )))
        }
    }
}

/// A renewed certificate may renew again only within the renewal grace, so a lost answer does
/// not strand its holder while a stolen copy cannot renew for ever.
fn within_grace(
    ca: &Ca,
    raw: Vec<u8>,
    record: CertRecord,
    now: SystemTime,
) -> Result<(Vec<u8>, CertRecord), Error> {
    let Some(superseded) = &record.superseded else {
        return Ok((raw, record));
    };
    if let Some((reason, _)) = ca.revocation(&superseded.by) {
        let standing = match reason {
            crate::revocation::Reason::CertificateHold => "suspended".to_owned(),
            reason => format!("revoked ({reason})"),
        };
        return Err(Error::CallerNotCurrent {
            reason: format!(
                "certificate {} was renewed by {}, which is {standing}: its predecessors renew \
                 no more",
                record.serial, superseded.by
            ),
        });
    }
    let grace = ca.settings.renewal_grace;
    if superseded
        .at
        .checked_add(grace)
        .is_some_and(|end| now < end)
    {
        return Ok((raw, record));
    }
    Err(Error::CallerNotCurrent {
        reason: format!(
            "certificate {} was renewed at {} (by {}), more than the renewal grace of {} s ago: \
             renew with the newest certificate",
            record.serial,
            rfc3339(superseded.at),
            superseded.by,
            grace.as_secs()
        ),
    })
}

/// Signs and stores a certificate for `system`, retrying on a serial collision.
async fn issue(
    ca: &Ca,
    system: &SystemRecord,
    csr: &CheckedCsr,
    request: &Request<'_>,
    now: SystemTime,
) -> Result<Issued, Error> {
    let profile = request.profile;
    profile.check_key(csr.key)?;
    profile.check_dns(csr.dns_names.len())?;
    let caps = Caps {
        level: Some(system.level),
        server: ca.settings.max_validity,
    };
    let validity = ca.profiles.validity(profile, caps, request.validity_days)?;
    let holdings = registry::holdings(ca, system, &csr.dns_names)?;
    for _ in 0..SERIAL_ATTEMPTS {
        let mut record = sign(ca, system, csr, (profile, validity), now)?;
        let mut batch = Batch::new();
        if let Some(claim) = &request.claim {
            claim.stage(&mut batch);
        }
        record.generation = match &request.generation {
            Generation::Same(generation) => *generation,
            Generation::Next(advance) => {
                advance.stage(&mut batch);
                advance.next.generation
            }
        };
        for holding in &holdings {
            holding.stage(&mut batch);
        }
        let renewed = request
            .renewed
            .as_ref()
            .map(|(raw, renewed)| stage_superseded(&mut batch, raw.clone(), renewed, &record, now))
            .transpose()?;
        certificates::stage(&mut batch, &record)?;
        ca.audit
            .stage(&mut batch, &event(request, &record, csr, now))?;
        if commit(ca, batch, &record, request).await? {
            if let Some(renewed) = &renewed {
                ca.revocations.supersede(renewed);
            }
            return Ok(issued(ca, record));
        }
    }
    Err(Error::RandomUnavailable)
}

/// Stages `renewed` (stored as `raw`) marked as renewed by `by`, and its entry in the index of
/// renewed certificates; returns it as it will be. Once the batch commits, the CA's view
/// must learn it ([`crate::revocation::Revocations::supersede`]).
pub(crate) fn stage_superseded(
    batch: &mut Batch,
    raw: Vec<u8>,
    renewed: &CertRecord,
    by: &CertRecord,
    now: SystemTime,
) -> Result<CertRecord, Error> {
    let superseded = superseded(renewed, by, now);
    certificates::restage(batch, raw, &superseded)?;
    crate::revocation::stage_supersession(batch, &superseded)?;
    Ok(superseded)
}

/// `renewed` marked as renewed by `by` (the grace runs from its first renewal).
pub(crate) fn superseded(renewed: &CertRecord, by: &CertRecord, now: SystemTime) -> CertRecord {
    let at = renewed.superseded.as_ref().map_or(now, |s| s.at);
    CertRecord {
        superseded: Some(Supersession {
            by: by.serial.clone(),
            at,
        }),
        ..renewed.clone()
    }
}

/// Commits an issuance: `Ok(false)` when the serial was taken (sign again).
async fn commit(
    ca: &Ca,
    batch: Batch,
    record: &CertRecord,
    request: &Request<'_>,
) -> Result<bool, Error> {
    match ca.store.submit(batch).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { key }) if key == records::cert_key(&record.serial) => Ok(false),
        Err(StoreError::Conflict { key }) => Err(lost(ca, key, record, request)),
        Err(e) => Err(e.into()),
    }
}

/// Why an issuance lost a compare-and-swap on `key`: another enrollment used the token, a new
/// token superseded it, or another system claimed a DNS name first.
fn lost(ca: &Ca, key: Vec<u8>, record: &CertRecord, request: &Request<'_>) -> Error {
    if let Some((_, renewed)) = &request.renewed
        && key == records::cert_key(&renewed.serial)
    {
        return Error::CallerNotCurrent {
            reason: format!(
                "certificate {} was renewed or revoked while this renewal ran; renew again",
                renewed.serial
            ),
        };
    }
    if let Some(claim) = &request.claim {
        if key == claim.key {
            return token_lost(ca, key);
        }
        if key == claim.current_key {
            return Error::TokenSuperseded {
                system: record.system.clone(),
            };
        }
    }
    match records::dns_name_of(&key) {
        Some(name) => Error::NameNotAllowed {
            name: name.to_owned(),
            system: record.system.clone(),
        },
        None => Error::Store(StoreError::Conflict { key }),
    }
}

/// Why a token claim lost its compare-and-swap: normally, another enrollment used it.
fn token_lost(ca: &Ca, key: Vec<u8>) -> Error {
    let stored = ca.store.get(&key).ok().flatten();
    let record = stored.and_then(|value| records::decode::<TokenRecord>(&key, &value).ok());
    match record.and_then(|r| r.used_at_ms) {
        Some(used_at) => Error::TokenUsed {
            at: from_unix_ms(used_at),
        },
        None => Error::Store(StoreError::Conflict { key }),
    }
}

/// Signs the system's certificate of `profile`, valid for `validity`, with its network's
/// issuing CA.
fn sign(
    ca: &Ca,
    system: &SystemRecord,
    csr: &CheckedCsr,
    (profile, validity): (&Profile, std::time::Duration),
    now: SystemTime,
) -> Result<CertRecord, Error> {
    let issuer = ca.hierarchy.issuer(system.network)?;
    let spec = LeafSpec {
        common_name: system.name.as_str(),
        organization: Some(system.org_id.as_str()),
        spiffe_id: &system.spiffe_id,
        dns_names: &csr.dns_names,
        ips: &[],
        usage: profile.usage(csr.key),
        validity,
        base_url: ca.settings.base_url.as_deref(),
    };
    let leaf = issuance::issue(
        &issuer,
        &spec,
        csr.public_key.international()?,
        now,
        &ca.rng,
    )?;
    let mut record = certificates::from_leaf(
        leaf,
        system.name.as_str(),
        &system.spiffe_id,
        system.network,
        issuer.authority(),
    );
    record.profile = Some(profile.name().to_owned());
    Ok(record)
}

fn event(
    request: &Request<'_>,
    record: &CertRecord,
    csr: &CheckedCsr,
    now: SystemTime,
) -> AuditEvent {
    let event = AuditEvent::new(
        unix_ms(now),
        request.action,
        request.actor,
        record.serial.to_string(),
    )
    .with("system", record.system.as_str())
    .with("spiffe_id", record.spiffe_id.as_str())
    .with("issuer", record.issuer.name())
    .with("key", csr.key.to_string())
    .with("profile", request.profile.name())
    .with("not_after", rfc3339(record.not_after))
    .with("generation", record.generation.to_string());
    let event = match request.claim.as_ref().and_then(|c| c.reenrollment.as_ref()) {
        Some(approved) => event
            .with("approval", approved.approval.as_str())
            .with("carry_keys", approved.carry_keys.to_string()),
        None => event,
    };
    let issued_by = request.claim.as_ref().and_then(|c| c.issued_by.as_deref());
    let event = match issued_by {
        Some(admin) => event.with("token_issued_by", admin),
        None => event,
    };
    match request.renews {
        Some(previous) => event.with("renews", previous.to_string()),
        None => event,
    }
}

fn issued(ca: &Ca, record: CertRecord) -> Issued {
    Issued {
        chain_pem: ca.hierarchy.chain_pem(record.network),
        serial: record.serial,
        certificate_pem: record.pem,
        not_before: record.not_before,
        not_after: record.not_after,
        spiffe_id: record.spiffe_id,
    }
}
