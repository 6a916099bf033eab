//! The registry of government systems, the DNS names they hold, and the one-time enrollment
//! tokens it hands out.
//!
//! The system administrator registers a system (name, organization, protection level, network,
//! DNS names); the registry stores it at `ca/system/<name>` and returns a one-time token the
//! system enrolls with. Only the token's SHA-256 digest is stored, with who issued it, and
//! `ca/systoken/<name>` points at the system's current token: [`issue_token`] replaces it, and
//! enrollment refuses every token but the current one. A new token is only issued to a system
//! that holds no valid certificate: otherwise whoever issues tokens could take over an enrolled
//! system's identity.
//!
//! Each DNS name belongs to one system: `ca/dns/<name>` names its holder, written with the
//! registration. No system may hold `localhost`, `*.localhost` or a name of the govtrust server.
//! Issuance checks again that the system holds every DNS name it certifies ([`holdings`]).

use std::fmt;
use std::time::{Duration, SystemTime};

use govtrust_approval::{Claim, Kind, Operation};
use govtrust_store::{AuditEvent, Batch, Error as StoreError, Store};
use zeroize::Zeroizing;

use crate::certificates;
use crate::identity::{Network, ProtectionLevel, Role, SERVER_IDENTITY, TrustDomain};
use crate::issuer::later;
use crate::names::{DnsName, OrgId, SystemName};
use crate::records::{
    self, CurrentTokenRecord, DnsRecord, ReEnrollmentRecord, SystemRecordV1, TokenRecord,
};
use crate::reserved::ServerNames;
use crate::timestamps::{from_unix_ms, rfc3339, unix_ms};
use crate::{Ca, Error, token};

/// Most DNS names one system may register.
const MAX_DNS_NAMES: usize = 100;
/// Attempts at issuing a token while other issuances for the same system race this one.
const TOKEN_ATTEMPTS: usize = 3;

/// How long an enrollment token stays usable: 1 second to 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenTtl(Duration);

impl TokenTtl {
    /// The shortest allowed lifetime.
    pub const MIN: Duration = Duration::from_secs(1);
    /// The longest allowed lifetime.
    pub const MAX: Duration = Duration::from_secs(7 * 24 * 60 * 60);

    /// The lifetime.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl TryFrom<Duration> for TokenTtl {
    type Error = Error;

    fn try_from(ttl: Duration) -> Result<Self, Error> {
        if (Self::MIN..=Self::MAX).contains(&ttl) {
            Ok(Self(ttl))
        } else {
            Err(Error::invalid(
                "token_ttl",
                format!("{} s is not between 1 s and 7 days", ttl.as_secs_f64()),
            ))
        }
    }
}

/// A request to register a system, validated field by field.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The system's name: its certificates' common name.
    pub name: SystemName,
    /// The organization (department) running it.
    pub org_id: OrgId,
    /// Its tiered-protection level; decides certificate lifetimes.
    pub protection_level: ProtectionLevel,
    /// The network whose issuing CA certifies it.
    pub network: Network,
    /// DNS names the system may put in its certificates.
    pub dns_names: Vec<DnsName>,
    /// How long the enrollment token stays usable.
    pub token_ttl: TokenTtl,
}

/// A registered system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRecord {
    /// The system's name.
    pub name: SystemName,
    /// Its organization.
    pub org_id: OrgId,
    /// Its tiered-protection level.
    pub level: ProtectionLevel,
    /// The network whose issuing CA certifies it.
    pub network: Network,
    /// `spiffe://<trust-domain>/org/<org>/sys/<name>`.
    pub spiffe_id: String,
    /// DNS names it may put in its certificates, sorted.
    pub dns_names: Vec<DnsName>,
    /// When it was registered.
    pub registered_at: SystemTime,
}

/// A new enrollment token, with the system it enrolls: from a registration or
/// [`Ca::issue_token`](crate::Ca::issue_token).
pub struct Registered {
    /// The registered system.
    pub system: SystemRecord,
    /// The token, shown once to the administrator; zeroized on drop, redacted in `Debug`.
    pub token: Zeroizing<String>,
    /// When the token stops being usable.
    pub token_expires_at: SystemTime,
}

impl fmt::Debug for Registered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registered")
            .field("system", &self.system)
            .field("token", &"<redacted>")
            .field("token_expires_at", &self.token_expires_at)
            .finish()
    }
}

/// Registers a system for `actor`: the system, its DNS names, its token digest and the audit
/// event in one batch.
pub(crate) fn register(
    ca: &Ca,
    actor: &str,
    registration: Registration,
) -> Result<Registered, Error> {
    validate(&ca.server_names, &registration)?;
    // Stored times have millisecond precision; return what is stored.
    let now = from_unix_ms(unix_ms(ca.clock.now()));
    let expires_at = later(now, registration.token_ttl.get())?;
    let system = system_record(ca.hierarchy.trust_domain(), registration, now);
    let token = token::generate(&ca.rng)?;
    let mut batch = Batch::new();
    stage_system(&mut batch, &system)?;
    stage_dns_names(&mut batch, &system)?;
    let issued = IssuedToken {
        digest: token::digest(&token),
        expires_at,
        issued_by: actor,
        reenrollment: None,
    };
    stage_token(&mut batch, &issued, &system.name, None)?;
    ca.audit
        .stage(&mut batch, &register_event(actor, &system, expires_at, now))?;
    commit(ca.store.as_ref(), batch, &system.name)?;
    Ok(Registered {
        system,
        token,
        token_expires_at: expires_at,
    })
}

/// Commits a registration; a conflict on the system's key means the name is taken, on a DNS
/// name's key that another system holds it.
fn commit(store: &dyn Store, batch: Batch, name: &SystemName) -> Result<(), Error> {
    match store.commit(batch) {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { key }) if key == records::system_key(name.as_str()) => {
            Err(Error::SystemExists {
                name: name.to_string(),
            })
        }
        Err(StoreError::Conflict { key }) if key == records::person_key(name.as_str()) => Err(
            Error::invalid("name", format!("{name:?} is the id of a registered person")),
        ),
        Err(StoreError::Conflict { key }) => Err(dns_name_taken(store, key)),
        Err(e) => Err(e.into()),
    }
}

/// The error for a registration that lost a compare-and-swap on `key`: normally a DNS name
/// another system holds.
fn dns_name_taken(store: &dyn Store, key: Vec<u8>) -> Error {
    let Some(name) = records::dns_name_of(&key).map(str::to_owned) else {
        return Error::Store(StoreError::Conflict { key });
    };
    match holder(store, &key) {
        Ok(Some((_, system))) => Error::DnsNameTaken { name, system },
        Ok(None) => Error::Store(StoreError::Conflict { key }),
        Err(e) => e,
    }
}

/// The stored index entry at `key` and the system it names, if there is one.
fn holder(store: &dyn Store, key: &[u8]) -> Result<Option<(Vec<u8>, String)>, Error> {
    let Some(value) = store.get(key)? else {
        return Ok(None);
    };
    let record: DnsRecord = records::decode(key, &value)?;
    Ok(Some((value, record.system)))
}

/// An approved re-enrollment being carried out: the claim on the approval and whether the new
/// enrollment keeps the keys of earlier ones.
#[derive(Debug, Clone, Copy)]
pub struct ReEnrollment<'a> {
    /// The approved request, claimed by the requester.
    pub claim: &'a Claim,
    /// Whether the keys of the system's earlier enrollments stay reachable.
    pub carry_keys: bool,
}

/// How a new token for a registered system is asked for.
#[derive(Clone, Copy)]
pub struct TokenRequest<'a> {
    pub ttl: TokenTtl,
    /// An approved re-enrollment (for a system that has held a certificate).
    pub reenrollment: Option<ReEnrollment<'a>>,
    /// Revoke (superseded) the system's certificates that still stand in the token's batch,
    /// instead of refusing the token while one does. Part of what a re-enrollment approves.
    pub revoke_current: bool,
}

/// The act a re-enrollment approval is for: a new token for `system`, usable for `ttl`,
/// keeping or withholding the keys of its earlier enrollments, and revoking the certificates
/// that still stand if `revoke_current`.
pub fn reenrollment(
    system: &str,
    carry_keys: bool,
    ttl: TokenTtl,
    revoke_current: bool,
) -> Operation {
    let operation = Operation::new(Kind::ReEnrollment, system)
        .with("carry_keys", carry_keys.to_string())
        .with("token_ttl_seconds", ttl.get().as_secs().to_string());
    match revoke_current {
        true => operation.with("revoke_current", "true"),
        false => operation,
    }
}

/// Issues a new enrollment token to the system named `system`, superseding every earlier one;
/// [`Error::SystemHasCertificate`] if the system holds a valid certificate,
/// [`Error::ApprovalRequired`] if it ever held one and no approved `reenrollment` is given.
pub(crate) fn issue_token(
    ca: &Ca,
    actor: &str,
    system: &str,
    request: TokenRequest<'_>,
) -> Result<Registered, Error> {
    let name = SystemName::try_from(system)?;
    let system = self::system(ca.store.as_ref(), name.as_str())?;
    if let Some(approved) = request.reenrollment {
        check_approved(&system, approved, request)?;
    }
    let raced = [
        records::current_token_key(name.as_str()),
        records::latest_cert_key(name.as_str()),
    ];
    for _ in 1..TOKEN_ATTEMPTS {
        match try_issue_token(ca, actor, &system, request) {
            Err(Error::Store(StoreError::Conflict { key })) if raced.contains(&key) => continue,
            other => return other,
        }
    }
    try_issue_token(ca, actor, &system, request)
}

/// Refuses an approval for another act than re-enrolling `system` this way.
fn check_approved(
    system: &SystemRecord,
    approved: ReEnrollment<'_>,
    request: TokenRequest<'_>,
) -> Result<(), Error> {
    let wanted = reenrollment(
        system.name.as_str(),
        approved.carry_keys,
        request.ttl,
        request.revoke_current,
    );
    let request = approved.claim.request();
    if request.operation == wanted {
        return Ok(());
    }
    Err(Error::Approval(govtrust_approval::Error::Mismatch {
        id: request.approval_id()?,
        approved: format!("{:?}", request.operation),
        attempted: format!("{wanted:?}"),
    }))
}

/// One attempt of [`issue_token`]; fails with a conflict on the system's current-token key when
/// another token was issued meanwhile, on its latest-certificate key when a certificate was.
fn try_issue_token(
    ca: &Ca,
    actor: &str,
    system: &SystemRecord,
    request: TokenRequest<'_>,
) -> Result<Registered, Error> {
    let TokenRequest {
        ttl,
        reenrollment,
        revoke_current,
    } = request;
    let now = from_unix_ms(unix_ms(ca.clock.now()));
    let ever_held = certificates::ever_held(ca.store.as_ref(), system.name.as_str())?;
    if reenrollment.is_none() && ever_held && revoke_current {
        return Err(Error::ApprovalRequired {
            system: system.name.to_string(),
            operation: self::reenrollment(system.name.as_str(), false, ttl, true),
        });
    }
    let mut batch = Batch::new();
    let revoked = match revoke_current && reenrollment.is_some() {
        true => revoke_live(ca, &mut batch, actor, &system.name, now)?,
        false => {
            uncertified(ca, &system.name, now)?.stage(&mut batch);
            Vec::new()
        }
    };
    if reenrollment.is_none() && ever_held {
        return Err(Error::ApprovalRequired {
            system: system.name.to_string(),
            operation: self::reenrollment(system.name.as_str(), false, ttl, false),
        });
    }
    let previous = ca
        .store
        .get(&records::current_token_key(system.name.as_str()))?;
    let expires_at = later(now, ttl.get())?;
    let token = token::generate(&ca.rng)?;
    let issued = IssuedToken {
        digest: token::digest(&token),
        expires_at,
        issued_by: actor,
        reenrollment: reenrollment.map(|approved| ReEnrollmentRecord {
            approval: approved.claim.request().id.clone(),
            carry_keys: approved.carry_keys,
        }),
    };
    if let Some(approved) = reenrollment {
        batch.extend(approved.claim.batch().clone());
    }
    stage_token(&mut batch, &issued, &system.name, previous)?;
    let event = token_event(actor, system, expires_at, now);
    let event = match &issued.reenrollment {
        Some(approved) => event
            .with("approval", approved.approval.clone())
            .with("carry_keys", approved.carry_keys.to_string()),
        None => event,
    };
    let revoked_serials: Vec<String> = revoked.iter().map(|r| r.serial.to_string()).collect();
    let event = match revoked_serials.is_empty() {
        true => event,
        false => event.with("revoked", revoked_serials.join(",")),
    };
    ca.audit.stage(&mut batch, &event)?;
    commit_token(ca, batch, reenrollment)?;
    crate::revocation::committed(ca, &revoked);
    Ok(Registered {
        system: system.clone(),
        token,
        token_expires_at: expires_at,
    })
}

/// Commits a new token; a conflict on the approval means another call carried it out first.
fn commit_token(
    ca: &Ca,
    batch: Batch,
    reenrollment: Option<ReEnrollment<'_>>,
) -> Result<(), Error> {
    let approval = reenrollment
        .map(|approved| approved.claim.request().approval_id())
        .transpose()?;
    match (ca.store.commit(batch), approval) {
        (Err(StoreError::Conflict { key }), Some(id)) if key == id.store_key() => {
            Err(Error::Approval(govtrust_approval::Error::Raced { id }))
        }
        (other, _) => other.map(|_| ()).map_err(Error::from),
    }
}

/// Stages the revocation (superseded) of every certificate of `system` that still stands,
/// guarded as [`uncertified`] guards, so a certificate issued meanwhile fails the batch.
fn revoke_live(
    ca: &Ca,
    batch: &mut Batch,
    actor: &str,
    system: &SystemName,
    now: SystemTime,
) -> Result<Vec<crate::CertRecord>, Error> {
    let key = records::latest_cert_key(system.as_str());
    let latest = ca.store.get(&key)?;
    batch.expect(key, latest);
    let request = crate::revocation::Request {
        change: crate::revocation::Change::Revoke(crate::revocation::Reason::Superseded),
        actor: actor.into(),
        note: "re-enrollment with --revoke-current",
    };
    let mut revoked: Vec<crate::CertRecord> = Vec::new();
    for record in certificates::live_all(ca.store.as_ref(), system.as_str(), now)? {
        let (raw, record) = certificates::find_raw(ca.store.as_ref(), &record.serial)?;
        revoked.push(crate::revocation::stage(ca, batch, raw, &record, &request)?);
    }
    Ok(revoked)
}

/// The guard that a system held no valid certificate when a new token for it commits.
///
/// A check alone would race an enrollment: with the system's current token, an enrollment may
/// commit between the check and the new token's batch, and the system would hold a valid
/// certificate and a fresh token. The token's batch cannot expect the certificate index (a
/// batch compares single keys, and a new certificate adds a key under the index's prefix), so
/// it expects `ca/syscert/<system>` unchanged: every recorded certificate rewrites it with its
/// serial (`certificates::stage`), by enrollment, renewal or any later issuing path alike. The
/// system record could serve too, but rewriting it with every renewal would make it a hot
/// record that its own edits race. The other order is covered by enrollment, which expects the
/// current-token pointer a new token replaces.
struct Uncertified {
    key: Vec<u8>,
    /// The record as read before the index was checked; `None` before any certificate was
    /// recorded with it.
    latest: Option<Vec<u8>>,
}

impl Uncertified {
    fn stage(&self, batch: &mut Batch) {
        batch.expect(self.key.clone(), self.latest.clone());
    }
}

/// Checks that `system` holds no certificate valid at `now` (neither expired nor revoked).
fn uncertified(ca: &Ca, system: &SystemName, now: SystemTime) -> Result<Uncertified, Error> {
    // Read before the index: a certificate recorded after this read fails the guard, one
    // recorded before it is in the index.
    let key = records::latest_cert_key(system.as_str());
    let latest = ca.store.get(&key)?;
    match certificates::live_of(ca.store.as_ref(), system.as_str(), now)? {
        Some(cert) => Err(Error::SystemHasCertificate {
            system: system.to_string(),
            serial: cert.serial,
            not_after: cert.not_after,
        }),
        None => Ok(Uncertified { key, latest }),
    }
}

/// The index entry showing that a system holds a DNS name, as a guard for an issuing batch.
pub(crate) struct Holding {
    key: Vec<u8>,
    stored: Option<Vec<u8>>,
    record: Vec<u8>,
}

impl Holding {
    /// Requires the entry to be unchanged when `batch` commits, and writes it: a system
    /// registered before the index existed claims its names at its next issuance.
    pub(crate) fn stage(&self, batch: &mut Batch) {
        batch
            .expect(self.key.clone(), self.stored.clone())
            .put(self.key.clone(), self.record.clone());
    }
}

/// Checks that `system` may still hold each of `names`: none is reserved and no other system
/// holds it. [`Error::NameNotAllowed`] otherwise.
pub(crate) fn holdings(
    ca: &Ca,
    system: &SystemRecord,
    names: &[DnsName],
) -> Result<Vec<Holding>, Error> {
    names.iter().map(|name| holding(ca, system, name)).collect()
}

fn holding(ca: &Ca, system: &SystemRecord, name: &DnsName) -> Result<Holding, Error> {
    let not_allowed = || Error::NameNotAllowed {
        name: name.to_string(),
        system: system.name.to_string(),
    };
    ca.server_names.refuse(name).map_err(|_| not_allowed())?;
    let key = records::dns_key(name.as_str());
    let (stored, holder) = match holder(ca.store.as_ref(), &key)? {
        Some((value, holder)) => (Some(value), holder),
        None => (None, system.name.to_string()),
    };
    if holder != system.name.as_str() {
        return Err(not_allowed());
    }
    let record = records::encode(&DnsRecord { system: holder })?;
    Ok(Holding {
        key,
        stored,
        record,
    })
}

/// The system named `name`.
pub(crate) fn system(store: &dyn Store, name: &str) -> Result<SystemRecord, Error> {
    let key = records::system_key(name);
    let value = store.get(&key)?.ok_or_else(|| Error::SystemNotFound {
        name: name.to_owned(),
    })?;
    from_record(&key, records::decode(&key, &value)?)
}

/// Checks what the field types cannot: reserved names and the number of DNS names.
fn validate(server_names: &ServerNames, registration: &Registration) -> Result<(), Error> {
    refuse_reserved(&registration.name)?;
    if registration.dns_names.len() > MAX_DNS_NAMES {
        return Err(Error::invalid(
            "dns_names",
            format!("at most {MAX_DNS_NAMES} names"),
        ));
    }
    registration
        .dns_names
        .iter()
        .try_for_each(|name| server_names.refuse(name))
}

/// Names of govtrust's own identities cannot be system names: certificates are indexed by
/// holder name.
fn refuse_reserved(name: &SystemName) -> Result<(), Error> {
    let reserved =
        name.as_str() == SERVER_IDENTITY || Role::ALL.iter().any(|r| r.as_str() == name.as_str());
    match reserved {
        true => Err(Error::invalid(
            "name",
            format!("{name:?} is reserved for govtrust's own identities"),
        )),
        false => Ok(()),
    }
}

fn system_record(
    trust_domain: &TrustDomain,
    registration: Registration,
    now: SystemTime,
) -> SystemRecord {
    let mut dns_names = registration.dns_names;
    dns_names.sort();
    dns_names.dedup();
    SystemRecord {
        spiffe_id: trust_domain.system_id(&registration.org_id, &registration.name),
        name: registration.name,
        org_id: registration.org_id,
        level: registration.protection_level,
        network: registration.network,
        dns_names,
        registered_at: now,
    }
}

fn stage_system(batch: &mut Batch, system: &SystemRecord) -> Result<(), Error> {
    let key = records::system_key(system.name.as_str());
    let record = SystemRecordV1 {
        name: system.name.to_string(),
        org_id: system.org_id.to_string(),
        level: u32::from(system.level.get()),
        network: system.network.to_string(),
        spiffe_id: system.spiffe_id.clone(),
        dns_names: system.dns_names.iter().map(ToString::to_string).collect(),
        registered_at_ms: unix_ms(system.registered_at),
    };
    // Systems and persons share the holders' namespace.
    batch
        .expect_absent(key.clone())
        .put(key, records::encode(&record)?)
        .expect_absent(records::person_key(system.name.as_str()));
    Ok(())
}

/// Claims the system's DNS names: the batch fails on a name another system holds.
fn stage_dns_names(batch: &mut Batch, system: &SystemRecord) -> Result<(), Error> {
    let record = records::encode(&DnsRecord {
        system: system.name.to_string(),
    })?;
    for name in &system.dns_names {
        let key = records::dns_key(name.as_str());
        batch.expect_absent(key.clone()).put(key, record.clone());
    }
    Ok(())
}

/// A new token as stored: its digest, expiry and issuer.
struct IssuedToken<'a> {
    digest: String,
    expires_at: SystemTime,
    issued_by: &'a str,
    reenrollment: Option<ReEnrollmentRecord>,
}

/// Stores a token (by digest) and makes it the system's current token, provided the current
/// pointer still holds `previous` (`None`: the system has none yet).
fn stage_token(
    batch: &mut Batch,
    token: &IssuedToken<'_>,
    system: &SystemName,
    previous: Option<Vec<u8>>,
) -> Result<(), Error> {
    let key = records::token_key(&token.digest);
    let record = TokenRecord {
        system: system.to_string(),
        expires_at_ms: unix_ms(token.expires_at),
        used_at_ms: None,
        issued_by: Some(token.issued_by.to_owned()),
        reenrollment: token.reenrollment.clone(),
    };
    batch
        .expect_absent(key.clone())
        .put(key, records::encode(&record)?);
    let current = records::current_token_key(system.as_str());
    let pointer = CurrentTokenRecord {
        digest: token.digest.clone(),
    };
    batch
        .expect(current.clone(), previous)
        .put(current, records::encode(&pointer)?);
    Ok(())
}

fn register_event(
    actor: &str,
    system: &SystemRecord,
    expires_at: SystemTime,
    now: SystemTime,
) -> AuditEvent {
    AuditEvent::new(
        unix_ms(now),
        "ca.system.register",
        actor,
        system.name.as_str(),
    )
    .with("org_id", system.org_id.as_str())
    .with("protection_level", system.level.to_string())
    .with("network", system.network.as_str())
    .with("spiffe_id", system.spiffe_id.as_str())
    .with(
        "dns_names",
        system
            .dns_names
            .iter()
            .map(DnsName::as_str)
            .collect::<Vec<_>>()
            .join(","),
    )
    .with("token_expires_at", rfc3339(expires_at))
}

fn token_event(
    actor: &str,
    system: &SystemRecord,
    expires_at: SystemTime,
    now: SystemTime,
) -> AuditEvent {
    AuditEvent::new(unix_ms(now), "ca.token.issue", actor, system.name.as_str())
        .with("spiffe_id", system.spiffe_id.as_str())
        .with("token_expires_at", rfc3339(expires_at))
}

/// The public form of a stored system; a record that does not validate is corrupt.
fn from_record(key: &[u8], record: SystemRecordV1) -> Result<SystemRecord, Error> {
    let corrupt = |e: Error| Error::corrupt(format!("{}: {e}", String::from_utf8_lossy(key)));
    let dns_names = record
        .dns_names
        .iter()
        .map(|n| DnsName::try_from(n.as_str()))
        .collect::<Result<_, _>>();
    Ok(SystemRecord {
        name: SystemName::try_from(record.name).map_err(corrupt)?,
        org_id: OrgId::try_from(record.org_id).map_err(corrupt)?,
        level: ProtectionLevel::try_from(record.level).map_err(corrupt)?,
        network: record.network.parse().map_err(corrupt)?,
        spiffe_id: record.spiffe_id,
        dns_names: dns_names.map_err(corrupt)?,
        registered_at: from_unix_ms(record.registered_at_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ttl_is_one_second_to_seven_days() {
        assert!(TokenTtl::try_from(Duration::ZERO).is_err());
        assert!(TokenTtl::try_from(Duration::from_millis(999)).is_err());
        assert!(TokenTtl::try_from(Duration::from_secs(1)).is_ok());
        assert!(TokenTtl::try_from(TokenTtl::MAX).is_ok());
        let too_long = TokenTtl::try_from(TokenTtl::MAX + Duration::from_secs(1));
        assert!(matches!(
            too_long,
            Err(Error::InvalidArgument {
                field: "token_ttl",
                ..
            })
        ));
    }

    #[test]
    fn reserved_names_are_refused() {
        for name in ["govtrust", "system-admin", "audit-admin", "security-admin"] {
            let name = SystemName::try_from(name).ok();
            assert!(name.is_some_and(|n| refuse_reserved(&n).is_err()));
        }
    }
}
