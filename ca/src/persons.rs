//! Persons (civil servants): registered by a security administrator acting as RA officer, who
//! hands them a one-time token; they enroll with it for a certificate of a person profile
//! (`person`, `document-signing`, `encryption`), as systems enroll.
//!
//! A person is stored at `ca/person/<id>` beside the administrators, whose records carry a role
//! where a registered person's carry none: a person certificate never authenticates as an
//! administrator. The national ID is kept only as a keyed digest (HMAC-SHA256 under a key the
//! kms derives from its master key, [`govtrust_kms::Kms::keyed_digest`]), indexed at
//! `ca/nationalid/<digest>` so one person is registered once; the ID itself is never stored,
//! logged or audited. Person ids and system names share the certificate holders' namespace:
//! each registration's batch expects the other's record absent.
//!
//! Tokens are stored by digest at `ca/persontoken/<digest>`; `ca/persontok/<id>` points at the
//! person's current one, and a new token ([`issue_token`]) supersedes it.

use std::fmt;
use std::time::{Duration, SystemTime};

use govtrust_store::{AuditEvent, Batch, Error as StoreError};
use zeroize::Zeroizing;

use crate::certificates::{self, CertRecord};
use crate::csr::{self, CheckedPersonCsr};
use crate::enrollment::Issued;
use crate::identity::{Network, Role, SERVER_IDENTITY};
use crate::issuance::{self, LeafSpec};
use crate::issuer::later;
use crate::names::PersonId;
use crate::profiles::{Caps, HolderKind, Profile};
use crate::records::{
    self, CurrentTokenRecord, NationalIdRecord, PersonRecord, PersonTokenRecord,
    RegisteredPersonRecord,
};
use crate::registry::TokenTtl;
use crate::timestamps::{from_unix_ms, rfc3339, unix_ms};
use crate::{Ca, Error, token};

/// The label of national-ID digests.
const NATIONAL_ID: &str = "national-id";
/// Longest name or department: the upper bound of commonName and organizationName.
const MAX_TEXT: usize = 64;
/// Longest national ID.
const MAX_NATIONAL_ID: usize = 32;
/// Signing attempts before a serial collision is blamed on the random number generator.
const SERIAL_ATTEMPTS: usize = 3;

/// A person's name or department as certificates show it: 1 to 64 characters, no control
/// characters, no space at either end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayText(String);

impl DisplayText {
    /// Parses `value` for the request field `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, Error> {
        let count = value.chars().count();
        if count == 0 || count > MAX_TEXT {
            return Err(Error::invalid(
                field,
                format!("must be 1 to {MAX_TEXT} characters"),
            ));
        }
        if value.chars().any(char::is_control) || value.trim() != value {
            return Err(Error::invalid(
                field,
                "no control characters, and no spaces at either end",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A national ID (身份证号): letters and digits, uppercased; 1 to 32 of them. Zeroized on drop,
/// redacted in `Debug`: it is only ever digested.
pub struct NationalId(Zeroizing<String>);

impl NationalId {
    /// Parses the request field `national_id`; the error does not echo it.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let valid = (1..=MAX_NATIONAL_ID).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric());
        match valid {
            true => Ok(Self(Zeroizing::new(value.to_ascii_uppercase()))),
            false => Err(Error::invalid(
                "national_id",
                format!("must be 1 to {MAX_NATIONAL_ID} letters and digits"),
            )),
        }
    }
}

impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NationalId(<redacted>)")
    }
}

/// A request to register a person, validated field by field.
#[derive(Debug)]
pub struct PersonRegistration {
    /// The person's id: the last segment of `spiffe://<td>/person/<id>`, and the holder name of
    /// its certificates (lowercase `[a-z0-9-]`).
    pub id: PersonId,
    /// The person's name: the certificates' common name.
    pub name: DisplayText,
    /// The department: the certificates' organization.
    pub department: DisplayText,
    /// Kept only as a keyed digest.
    pub national_id: NationalId,
    /// The network whose issuing CA certifies the person.
    pub network: Network,
    /// How long the enrollment token stays usable.
    pub token_ttl: TokenTtl,
}

/// A registered person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The person's id.
    pub id: String,
    /// The name.
    pub name: String,
    /// The department.
    pub department: String,
    /// The network of the CA that certifies the person.
    pub network: Network,
    /// `spiffe://<trust-domain>/person/<id>`.
    pub spiffe_id: String,
    /// When the person was registered.
    pub registered_at: SystemTime,
}

/// A person's new one-time enrollment token.
pub struct PersonToken {
    /// The person.
    pub person: Person,
    /// The token, shown once; zeroized on drop, redacted in `Debug`.
    pub token: Zeroizing<String>,
    /// When it stops being usable.
    pub expires_at: SystemTime,
}

impl fmt::Debug for PersonToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonToken")
            .field("person", &self.person)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Registers a person for `actor`: the record, the national-ID index entry, the token and the
/// audit event in one batch.
pub(crate) fn register(
    ca: &Ca,
    actor: &str,
    registration: PersonRegistration,
) -> Result<PersonToken, Error> {
    refuse_reserved(registration.id.as_str())?;
    let kms = ca.hierarchy.kms();
    let digest = kms.keyed_digest(NATIONAL_ID, registration.national_id.0.as_bytes())?;
    let now = from_unix_ms(unix_ms(ca.clock.now()));
    let person = Person {
        spiffe_id: ca
            .hierarchy
            .trust_domain()
            .person_id(registration.id.as_str()),
        id: registration.id.to_string(),
        name: registration.name.0,
        department: registration.department.0,
        network: registration.network,
        registered_at: now,
    };
    let mut batch = Batch::new();
    stage_person(&mut batch, &person, actor, &digest)?;
    let (token, expires_at) = stage_token(
        ca,
        &mut batch,
        (&person.id, None),
        actor,
        registration.token_ttl,
    )?;
    let event = AuditEvent::new(
        unix_ms(now),
        "ca.person.register",
        actor,
        person.id.as_str(),
    )
    .with("spiffe_id", person.spiffe_id.as_str())
    .with("department", person.department.as_str())
    .with("network", person.network.as_str())
    .with("token_expires_at", rfc3339(expires_at));
    ca.audit.stage(&mut batch, &event)?;
    commit_registration(ca, batch, &person, &digest)?;
    Ok(PersonToken {
        person,
        token,
        expires_at,
    })
}

/// Ids of govtrust's own identities are no person's.
fn refuse_reserved(id: &str) -> Result<(), Error> {
    let reserved = id == SERVER_IDENTITY || Role::ALL.iter().any(|r| r.as_str() == id);
    match reserved {
        true => Err(Error::invalid(
            "id",
            format!("{id:?} is reserved for govtrust's own identities"),
        )),
        false => Ok(()),
    }
}

fn stage_person(
    batch: &mut Batch,
    person: &Person,
    actor: &str,
    digest: &str,
) -> Result<(), Error> {
    let record = PersonRecord {
        role: None,
        spiffe_id: person.spiffe_id.clone(),
        created_at_ms: unix_ms(person.registered_at),
        registered: Some(RegisteredPersonRecord {
            name: person.name.clone(),
            department: person.department.clone(),
            network: person.network.to_string(),
            national_id_digest: digest.to_owned(),
            registered_by: actor.to_owned(),
        }),
    };
    let key = records::person_key(&person.id);
    let index = NationalIdRecord {
        person: person.id.clone(),
    };
    batch
        .expect_absent(key.clone())
        .put(key, records::encode(&record)?)
        .expect_absent(records::system_key(&person.id))
        .expect_absent(records::national_id_key(digest))
        .put(records::national_id_key(digest), records::encode(&index)?);
    Ok(())
}

/// Stages a new token for `person` replacing the current one (`previous`, the pointer as
/// read); returns the token and its expiry.
fn stage_token(
    ca: &Ca,
    batch: &mut Batch,
    (person, previous): (&str, Option<Vec<u8>>),
    actor: &str,
    ttl: TokenTtl,
) -> Result<(Zeroizing<String>, SystemTime), Error> {
    let now = from_unix_ms(unix_ms(ca.clock.now()));
    let expires_at = later(now, ttl.get())?;
    let token = token::generate(&ca.rng)?;
    let digest = token::digest(&token);
    let record = PersonTokenRecord {
        person: person.to_owned(),
        expires_at_ms: unix_ms(expires_at),
        used_at_ms: None,
        issued_by: actor.to_owned(),
    };
    let pointer = CurrentTokenRecord {
        digest: digest.clone(),
    };
    let current = records::current_person_token_key(person);
    batch
        .expect_absent(records::person_token_key(&digest))
        .put(
            records::person_token_key(&digest),
            records::encode(&record)?,
        )
        .expect(current.clone(), previous)
        .put(current, records::encode(&pointer)?);
    Ok((token, expires_at))
}

/// Commits a registration; a conflict names what was taken.
fn commit_registration(ca: &Ca, batch: Batch, person: &Person, digest: &str) -> Result<(), Error> {
    let taken = |reason: String| Error::PersonExists {
        id: person.id.clone(),
        reason,
    };
    match ca.store.commit(batch) {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { key }) if key == records::person_key(&person.id) => {
            Err(taken("a person with this id is registered".to_owned()))
        }
        Err(StoreError::Conflict { key }) if key == records::system_key(&person.id) => {
            Err(taken("a system with this name is registered".to_owned()))
        }
        Err(StoreError::Conflict { key }) if key == records::national_id_key(digest) => {
            let holder = ca.store.get(&key)?;
            let holder = holder.and_then(|v| records::decode::<NationalIdRecord>(&key, &v).ok());
            let holder = holder.map_or_else(String::new, |h| format!(" as {}", h.person));
            Err(taken(format!(
                "a person with this national ID is registered{holder}"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Issues a new enrollment token to the registered person `id`; earlier ones stop working.
pub(crate) fn issue_token(
    ca: &Ca,
    actor: &str,
    id: &str,
    ttl: TokenTtl,
) -> Result<PersonToken, Error> {
    let person = find(ca, id)?;
    let previous = ca.store.get(&records::current_person_token_key(id))?;
    let mut batch = Batch::new();
    let (token, expires_at) = stage_token(ca, &mut batch, (id, previous), actor, ttl)?;
    let event = AuditEvent::new(unix_ms(ca.clock.now()), "ca.person.token", actor, id)
        .with("token_expires_at", rfc3339(expires_at));
    ca.audit.stage(&mut batch, &event)?;
    match ca.store.commit(batch) {
        Err(StoreError::Conflict { .. }) => Err(Error::TokenSuperseded {
            system: id.to_owned(),
        }),
        other => other.map(|_| ()).map_err(Error::from),
    }?;
    Ok(PersonToken {
        person,
        token,
        expires_at,
    })
}

/// The registered person `id` ([`Error::PersonNotFound`] for unknown ids and administrators).
pub(crate) fn find(ca: &Ca, id: &str) -> Result<Person, Error> {
    let not_found = || Error::PersonNotFound { id: id.to_owned() };
    let key = records::person_key(id);
    let value = ca.store.get(&key)?.ok_or_else(not_found)?;
    let record: PersonRecord = records::decode(&key, &value)?;
    let registered = record.registered.ok_or_else(not_found)?;
    let network = registered
        .network
        .parse()
        .map_err(|e| Error::corrupt(format!("{}: {e}", String::from_utf8_lossy(&key))))?;
    Ok(Person {
        id: id.to_owned(),
        name: registered.name,
        department: registered.department,
        network,
        spiffe_id: record.spiffe_id,
        registered_at: from_unix_ms(record.created_at_ms),
    })
}

/// The claim on a person's token: marked used in the issuing batch, guarded by its current
/// pointer.
struct Claim {
    key: Vec<u8>,
    unused: Vec<u8>,
    used: Vec<u8>,
    current_key: Vec<u8>,
    current: Option<Vec<u8>>,
    issued_by: String,
}

impl Claim {
    fn stage(&self, batch: &mut Batch) {
        batch
            .expect(self.key.clone(), Some(self.unused.clone()))
            .put(self.key.clone(), self.used.clone())
            .expect(self.current_key.clone(), self.current.clone());
    }
}

/// Checks `token` and prepares marking it used: the person it enrolls, and the claim.
fn claim(ca: &Ca, token: &str, now: SystemTime) -> Result<(String, Claim), Error> {
    let digest = token::lookup_digest(token).ok_or(Error::TokenUnknown)?;
    let key = records::person_token_key(&digest);
    let unused = ca.store.get(&key)?.ok_or(Error::TokenUnknown)?;
    let record: PersonTokenRecord = records::decode(&key, &unused)?;
    let current_key = records::current_person_token_key(&record.person);
    let current = ca.store.get(&current_key)?;
    let pointer = current
        .as_deref()
        .map(|value| records::decode::<CurrentTokenRecord>(&current_key, value))
        .transpose()?;
    if pointer.is_some_and(|p| p.digest != digest) {
        return Err(Error::TokenSuperseded {
            system: record.person,
        });
    }
    check_unused(&record, now)?;
    let used = records::encode(&PersonTokenRecord {
        used_at_ms: Some(unix_ms(now)),
        ..record.clone()
    })?;
    let claim = Claim {
        key,
        unused,
        used,
        current_key,
        current,
        issued_by: record.issued_by,
    };
    Ok((record.person, claim))
}

fn check_unused(record: &PersonTokenRecord, now: SystemTime) -> Result<(), Error> {
    if let Some(used_at) = record.used_at_ms {
        return Err(Error::TokenUsed {
            at: from_unix_ms(used_at),
        });
    }
    let expires_at = from_unix_ms(record.expires_at_ms);
    match now >= expires_at {
        true => Err(Error::TokenExpired {
            at: expires_at,
            system: record.person.clone(),
        }),
        false => Ok(()),
    }
}

/// Issues the person `token` was issued to a certificate of `profile` for the key of `csr`,
/// valid `validity_days` (0: the longest the profile and the server allow).
pub(crate) fn enroll(
    ca: &Ca,
    token: &str,
    csr: &[u8],
    profile: &str,
    validity_days: u32,
) -> Result<Issued, Error> {
    let now = ca.clock.now();
    let (id, claim) = claim(ca, token, now)?;
    let person = find(ca, &id)?;
    let profile = ca.profiles.get(profile)?;
    profile.check_holder(HolderKind::Person)?;
    let csr = csr::check_person(csr, (&person.id, &person.name), &person.spiffe_id)?;
    profile.check_key(csr.key)?;
    profile.check_dns(csr.dns_names)?;
    let caps = Caps {
        level: None,
        server: ca.settings.max_validity,
    };
    let validity = ca.profiles.validity(profile, caps, validity_days)?;
    for _ in 0..SERIAL_ATTEMPTS {
        let record = sign(ca, &person, &csr, (profile, validity), now)?;
        let mut batch = Batch::new();
        claim.stage(&mut batch);
        certificates::stage(&mut batch, &record)?;
        let event = enroll_event(&record, &csr, (profile, &claim.issued_by), now);
        ca.audit.stage(&mut batch, &event)?;
        match ca.store.commit(batch) {
            Ok(_) => return Ok(issued(ca, record)),
            Err(StoreError::Conflict { key }) if key == records::cert_key(&record.serial) => {}
            Err(StoreError::Conflict { key }) if key == claim.key => return Err(used(ca, key)),
            Err(StoreError::Conflict { .. }) => return Err(Error::TokenSuperseded { system: id }),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::RandomUnavailable)
}

/// Why a claim lost its compare-and-swap: another enrollment used the token.
fn used(ca: &Ca, key: Vec<u8>) -> Error {
    let stored = ca.store.get(&key).ok().flatten();
    let record = stored.and_then(|v| records::decode::<PersonTokenRecord>(&key, &v).ok());
    match record.and_then(|r| r.used_at_ms) {
        Some(at) => Error::TokenUsed {
            at: from_unix_ms(at),
        },
        None => Error::Store(StoreError::Conflict { key }),
    }
}

/// Signs the person's certificate of `profile` with the person's network's issuing CA.
fn sign(
    ca: &Ca,
    person: &Person,
    csr: &CheckedPersonCsr,
    (profile, validity): (&Profile, Duration),
    now: SystemTime,
) -> Result<CertRecord, Error> {
    let issuer = ca.hierarchy.issuer(person.network)?;
    let spec = LeafSpec {
        common_name: &person.name,
        organization: Some(&person.department),
        spiffe_id: &person.spiffe_id,
        dns_names: &[],
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
    let authority = issuer.authority();
    let mut record = certificates::from_leaf(
        leaf,
        &person.id,
        &person.spiffe_id,
        person.network,
        authority,
    );
    record.profile = Some(profile.name().to_owned());
    Ok(record)
}

fn enroll_event(
    record: &CertRecord,
    csr: &CheckedPersonCsr,
    (profile, issued_by): (&Profile, &str),
    now: SystemTime,
) -> AuditEvent {
    AuditEvent::new(
        unix_ms(now),
        "ca.person.enroll",
        record.spiffe_id.as_str(),
        record.serial.to_string(),
    )
    .with("person", record.system.as_str())
    .with("issuer", record.issuer.name())
    .with("key", csr.key.to_string())
    .with("profile", profile.name())
    .with("not_after", rfc3339(record.not_after))
    .with("token_issued_by", issued_by)
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
