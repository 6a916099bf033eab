//! Dual control (双人控制) for govtrust: acts that destroy or re-assign what belongs to someone
//! else run only after a second officer approved them.
//!
//! One mechanism serves every such act. A feature declares only its [`Kind`]; the request names
//! the requester, the target, what it will do (the *operation*: name/value pairs that identify
//! the act exactly), which roles may approve, how many distinct approvers it needs, and when it
//! expires. The life of a request:
//!
//! 1. [`Approvals::request`] stores it, pending, and audits `approval.request`.
//! 2. [`Approvals::approve`] by officers of an allowed role, never the requester and each officer
//!    once, audited `approval.approve`; with enough approvals the request is approved.
//!    [`Approvals::reject`] by an allowed officer or the requester ends it, audited.
//! 3. The requester carries the act out: [`Approvals::claim`] checks the request is approved,
//!    unexpired, unexecuted, and is for exactly this act, and returns a [`Claim`] whose batch
//!    marks the request executed (compare-and-swap on its stored bytes) and audits
//!    `approval.execute`. The feature commits its own change in that batch, so the act runs once,
//!    atomically with its audit event; a replay, an expired or a rejected request fails.
//!
//! The requester, not the approver, carries the act out, so a secret the act yields (an
//! enrollment token) reaches only the requester, and the approver never holds it.
//!
//! What it does not do: decide which acts need approval (the domain crates and the server's
//! policy point do), or authenticate officers (the server passes verified identities and roles).

mod error;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use govtrust_store::{AuditEvent, AuditSink, Batch, Store};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use error::Error;

/// The store prefix of requests: `approval/request/<id>`.
const PREFIX: &[u8] = b"approval/request/";
/// The store prefix of the open-request index: `approval/open/<sha256 of requester and act>`.
const OPEN_PREFIX: &[u8] = b"approval/open/";
/// Shortest and longest lifetime of a request.
const TTL: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600);
/// Longest free text (reasons, summaries, parameter values), in bytes.
const MAX_TEXT: usize = 1024;
/// Largest page of [`Approvals::list`].
const MAX_PAGE: usize = 1000;

/// What an approval request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A new enrollment token for a system that has held a certificate (re-enrollment).
    ReEnrollment,
    /// Destroying a key now, without the waiting period.
    ImmediateDestruction,
    /// Changing the state of a key the requester does not own.
    KeyStateChange,
    /// Recovering an escrowed key.
    KeyRecovery,
    /// Recovering an escrowed key for a judicial authority.
    JudicialRecovery,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 5] = [
        Kind::ReEnrollment,
        Kind::ImmediateDestruction,
        Kind::KeyStateChange,
        Kind::KeyRecovery,
        Kind::JudicialRecovery,
    ];

    /// The kind's name: `re-enrollment`, `immediate-destruction`, `key-state-change`,
    /// `key-recovery`, `judicial-recovery`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ReEnrollment => "re-enrollment",
            Kind::ImmediateDestruction => "immediate-destruction",
            Kind::KeyStateChange => "key-state-change",
            Kind::KeyRecovery => "key-recovery",
            Kind::JudicialRecovery => "judicial-recovery",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| invalid("kind", format!("unknown approval kind {text:?}")))
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for approvals.
    Pending,
    /// Approved by enough officers; the requester may carry it out once.
    Approved,
    /// Rejected by an officer or withdrawn by the requester.
    Rejected,
    /// Expired before it was carried out.
    Expired,
    /// Carried out.
    Executed,
}

impl Status {
    /// Every status, in a fixed order.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Approved,
        Status::Rejected,
        Status::Expired,
        Status::Executed,
    ];

    /// The status's name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Executed => "executed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A request's identifier: `ap-` and 32 lower-case hex characters (128 random bits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApprovalId(String);

impl ApprovalId {
    /// Parses `ap-` followed by exactly 32 lower-case hex characters.
    pub fn parse(text: &str) -> Result<ApprovalId, Error> {
        let valid = text.len() == 35
            && text
                .strip_prefix("ap-")
                .is_some_and(|hex| hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        if valid {
            Ok(ApprovalId(text.to_owned()))
        } else {
            let shown: String = text.chars().take(64).collect();
            Err(invalid(
                "approval_id",
                format!("{shown:?} is not an approval id (ap- and 32 hex digits)"),
            ))
        }
    }

    fn generate(rng: &SystemRandom) -> Result<ApprovalId, Error> {
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes).map_err(|_| Error::Random)?;
        Ok(ApprovalId(format!("ap-{}", hex::encode(bytes))))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store key of the request: a batch that carries a [`Claim`] and fails on this key
    /// lost the request to another call.
    pub fn store_key(&self) -> Vec<u8> {
        [PREFIX, self.0.as_bytes()].concat()
    }
}

impl fmt::Debug for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A verified officer: identity (SPIFFE id) and role name (`system-admin`, `security-admin`,
/// `audit-admin`).
#[derive(Debug, Clone, Copy)]
pub struct Officer<'a> {
    pub id: &'a str,
    pub role: &'a str,
}

/// The act a request is for, exactly: a feature builds it the same way when it asks and when it
/// carries the act out, and [`Approvals::claim`] refuses any difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The kind of act.
    #[serde(with = "kind_name")]
    pub kind: Kind,
    /// What the act is done to: a system name, a key id.
    pub target: String,
    /// The act's parameters, as name/value pairs in a fixed order.
    pub parameters: Vec<(String, String)>,
}

impl Operation {
    /// An operation without parameters.
    pub fn new(kind: Kind, target: impl Into<String>) -> Self {
        Self {
            kind,
            target: target.into(),
            parameters: Vec::new(),
        }
    }

    /// Adds a parameter.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((name.into(), value.into()));
        self
    }

    fn describe(&self) -> String {
        let parameters: Vec<String> = self
            .parameters
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        format!(
            "{} of {} ({})",
            self.kind,
            self.target,
            parameters.join(", ")
        )
    }
}

/// What a feature asks approval for.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub operation: Operation,
    /// One line for the approver: what will happen if they approve.
    pub summary: String,
    /// Roles whose officers may approve or reject.
    pub approver_roles: Vec<String>,
    /// Distinct approvals needed, 1 to 5.
    pub required: u8,
    /// How long the request may wait to be approved and carried out.
    pub ttl: Duration,
}

/// One officer's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The officer's identity.
    pub by: String,
    /// The officer's role.
    pub role: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Why, as the officer said.
    pub reason: String,
}

/// An approval request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub operation: Operation,
    pub summary: String,
    /// Who asked, and their role.
    pub requester: String,
    pub requester_role: String,
    pub approver_roles: Vec<String>,
    pub required: u8,
    pub approvals: Vec<Decision>,
    pub rejection: Option<Decision>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub executed_at_ms: Option<u64>,
}

impl Request {
    /// Where the request stands at `now`.
    pub fn status(&self, now: SystemTime) -> Status {
        if self.executed_at_ms.is_some() {
            Status::Executed
        } else if self.rejection.is_some() {
            Status::Rejected
        } else if unix_ms(now) >= self.expires_at_ms {
            Status::Expired
        } else if self.approvals.len() >= usize::from(self.required) {
            Status::Approved
        } else {
            Status::Pending
        }
    }

    /// The request's id, parsed.
    pub fn approval_id(&self) -> Result<ApprovalId, Error> {
        ApprovalId::parse(&self.id)
    }

    /// When it expires.
    pub fn expires_at(&self) -> SystemTime {
        from_unix_ms(self.expires_at_ms)
    }

    /// The approvers' identities, comma separated, for audit events.
    pub fn approvers(&self) -> String {
        let names: Vec<&str> = self.approvals.iter().map(|d| d.by.as_str()).collect();
        names.join(",")
    }
}

/// An approved request being carried out: commit [`Claim::batch`]'s writes together with the
/// act, in one batch.
#[derive(Debug)]
pub struct Claim {
    request: Request,
    batch: Batch,
}

impl Claim {
    /// The approved request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The writes that mark the request executed (compare-and-swap on its stored bytes) and
    /// its `approval.execute` event. Start the act's batch from a copy of it.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }
}

/// The approval requests of a deployment.
#[derive(Clone)]
pub struct Approvals {
    store: Arc<dyn Store>,
    audit: Arc<dyn AuditSink>,
    rng: SystemRandom,
}

impl fmt::Debug for Approvals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Approvals")
    }
}

impl Approvals {
    /// The requests kept in `store`, audited through `audit`.
    pub fn new(store: Arc<dyn Store>, audit: Arc<dyn AuditSink>) -> Self {
        Self {
            store,
            audit,
            rng: SystemRandom::new(),
        }
    }

    /// Files a pending request by `requester` at `now`; audits `approval.request`.
    pub fn request(
        &self,
        requester: Officer<'_>,
        proposal: Proposal,
        now: SystemTime,
    ) -> Result<Request, Error> {
        check_proposal(&proposal)?;
        let open_key = open_key(requester.id, &proposal.operation)?;
        if let Some(pending) = self.open(&open_key, now)? {
            return Ok(pending);
        }
        let request = Request {
            id: ApprovalId::generate(&self.rng)?.0,
            summary: proposal.summary,
            requester: requester.id.to_owned(),
            requester_role: requester.role.to_owned(),
            approver_roles: proposal.approver_roles,
            required: proposal.required,
            approvals: Vec::new(),
            rejection: None,
            created_at_ms: unix_ms(now),
            expires_at_ms: unix_ms(now).saturating_add(millis(proposal.ttl)),
            executed_at_ms: None,
            operation: proposal.operation,
        };
        let key = ApprovalId::parse(&request.id)?.store_key();
        let mut batch = Batch::new();
        batch.expect_absent(key.clone()).put(key, encode(&request)?);
        batch.put(open_key, request.id.clone().into_bytes());
        let event = event(&request, "approval.request", requester.id, now)
            .with("expires_at", rfc3339(request.expires_at()));
        self.audit.stage(&mut batch, &event)?;
        self.store.commit(batch)?;
        Ok(request)
    }

    /// Records `approver`'s approval of the pending request `id`; audits `approval.approve`.
    /// The requester may not approve, nor an officer twice, nor one of a role not named.
    pub fn approve(
        &self,
        approver: Officer<'_>,
        id: &ApprovalId,
        reason: &str,
        now: SystemTime,
    ) -> Result<Request, Error> {
        check_text("reason", reason)?;
        let (raw, mut request) = self.stored(id)?;
        require_status(id, &request, Status::Pending, now)?;
        check_approver(id, &request, approver)?;
        request.approvals.push(decision(approver, reason, now));
        let status = request.status(now);
        let event = event(&request, "approval.approve", approver.id, now)
            .with("decision_reason", reason)
            .with("approvals", request.approvals.len().to_string())
            .with("status", status.name());
        self.replace(id, raw, &request, &event)?;
        Ok(request)
    }

    /// Ends the pending or approved request `id`: rejected by an officer who may decide it, or
    /// withdrawn by its requester. Audits `approval.reject`.
    pub fn reject(
        &self,
        officer: Officer<'_>,
        id: &ApprovalId,
        reason: &str,
        now: SystemTime,
    ) -> Result<Request, Error> {
        check_text("reason", reason)?;
        let (raw, mut request) = self.stored(id)?;
        if request.status(now) != Status::Approved {
            require_status(id, &request, Status::Pending, now)?;
        }
        if officer.id != request.requester {
            check_role(id, &request, officer)?;
        }
        request.rejection = Some(decision(officer, reason, now));
        let event =
            event(&request, "approval.reject", officer.id, now).with("decision_reason", reason);
        self.replace(id, raw, &request, &event)?;
        Ok(request)
    }

    /// Checks that `executor` may now carry out `operation` under the request `id`, and returns
    /// the writes that mark it executed. Refuses a request that is not approved, has expired, was
    /// carried out already, was made by someone else, or approved another act.
    pub fn claim(
        &self,
        executor: &str,
        id: &ApprovalId,
        operation: &Operation,
        now: SystemTime,
    ) -> Result<Claim, Error> {
        let (raw, mut request) = self.stored(id)?;
        require_status(id, &request, Status::Approved, now)?;
        if request.requester != executor {
            return Err(Error::NotRequester {
                id: id.clone(),
                requester: request.requester,
                caller: executor.to_owned(),
            });
        }
        if &request.operation != operation {
            return Err(Error::Mismatch {
                id: id.clone(),
                approved: request.operation.describe(),
                attempted: operation.describe(),
            });
        }
        request.executed_at_ms = Some(unix_ms(now));
        let event = event(&request, "approval.execute", executor, now)
            .with("approved_by", request.approvers());
        let mut batch = Batch::new();
        self.stage_replace(&mut batch, id, raw, &request, &event)?;
        Ok(Claim { request, batch })
    }

    /// Audits `approval.refused`: `caller` tried to carry out or decide the request `id` and was
    /// refused for `reason` (an expired, executed, rejected or different act). Refusals are
    /// security events too; the request itself is unchanged.
    pub fn record_refusal(
        &self,
        caller: &str,
        id: &ApprovalId,
        reason: &Error,
        now: SystemTime,
    ) -> Result<(), Error> {
        let at = i64::try_from(unix_ms(now)).unwrap_or(i64::MAX);
        let event = AuditEvent::new(at, "approval.refused", caller, id.as_str())
            .with("reason", reason.to_string());
        let mut batch = Batch::new();
        self.audit.stage(&mut batch, &event)?;
        self.store.commit(batch)?;
        Ok(())
    }

    /// The request `id`.
    pub fn get(&self, id: &ApprovalId) -> Result<Request, Error> {
        Ok(self.stored(id)?.1)
    }

    /// Up to `page_size` requests (0: 100) after the id `page_token`, in id order, with the
    /// status `only` at `now` if given; and the next page's token.
    pub fn list(
        &self,
        only: Option<Status>,
        now: SystemTime,
        page_size: usize,
        page_token: Option<&ApprovalId>,
    ) -> Result<(Vec<Request>, Option<String>), Error> {
        let size = if page_size == 0 {
            100
        } else {
            page_size.min(MAX_PAGE)
        };
        let start = page_token.map(ApprovalId::store_key);
        let mut found = Vec::new();
        let mut after = start;
        loop {
            let entries = self.store.scan(PREFIX, after.as_deref(), MAX_PAGE)?;
            let Some((last, _)) = entries.last() else {
                return Ok((found, None));
            };
            after = Some(last.clone());
            for (key, value) in &entries {
                let request = decode(key, value)?;
                if only.is_none_or(|status| request.status(now) == status) {
                    found.push(request);
                }
                if found.len() == size {
                    return Ok((found, Some(id_of(key))));
                }
            }
        }
    }

    /// The pending request the open-request index entry `key` names, if it is still pending.
    fn open(&self, key: &[u8], now: SystemTime) -> Result<Option<Request>, Error> {
        let Some(id) = self.store.get(key)? else {
            return Ok(None);
        };
        let id = ApprovalId::parse(&String::from_utf8_lossy(&id))?;
        let request = self.get(&id)?;
        Ok(Some(request).filter(|r| r.status(now) == Status::Pending))
    }

    fn stored(&self, id: &ApprovalId) -> Result<(Vec<u8>, Request), Error> {
        let key = id.store_key();
        let raw = self
            .store
            .get(&key)?
            .ok_or_else(|| Error::NotFound { id: id.clone() })?;
        let request = decode(&key, &raw)?;
        Ok((raw, request))
    }

    fn replace(
        &self,
        id: &ApprovalId,
        raw: Vec<u8>,
        request: &Request,
        event: &AuditEvent,
    ) -> Result<(), Error> {
        let mut batch = Batch::new();
        self.stage_replace(&mut batch, id, raw, request, event)?;
        match self.store.commit(batch) {
            Err(govtrust_store::Error::Conflict { key }) if key == id.store_key() => {
                Err(Error::Raced { id: id.clone() })
            }
            other => other.map(|_| ()).map_err(Error::from),
        }
    }

    fn stage_replace(
        &self,
        batch: &mut Batch,
        id: &ApprovalId,
        raw: Vec<u8>,
        request: &Request,
        event: &AuditEvent,
    ) -> Result<(), Error> {
        batch
            .expect(id.store_key(), Some(raw))
            .put(id.store_key(), encode(request)?);
        self.audit.stage(batch, event)?;
        Ok(())
    }
}

/// The key of the index entry naming `requester`'s open request for `operation`: asking again
/// for the same act while one is pending returns it instead of filing another.
fn open_key(requester: &str, operation: &Operation) -> Result<Vec<u8>, Error> {
    let encoded = serde_json::to_vec(&(requester, operation)).map_err(|_| Error::Corrupt {
        key: "open request index".into(),
    })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &encoded);
    Ok([OPEN_PREFIX, hex::encode(digest).as_bytes()].concat())
}

fn check_proposal(proposal: &Proposal) -> Result<(), Error> {
    check_text("summary", &proposal.summary)?;
    check_text("target", &proposal.operation.target)?;
    for (name, value) in &proposal.operation.parameters {
        check_text("parameter name", name)?;
        check_text("parameter value", value)?;
    }
    if proposal.approver_roles.is_empty() {
        return Err(invalid("approver_roles", "no role may approve".into()));
    }
    if !(1..=5).contains(&proposal.required) {
        return Err(invalid(
            "required",
            format!("{} is not 1 to 5", proposal.required),
        ));
    }
    if !TTL.contains(&proposal.ttl) {
        return Err(invalid(
            "ttl",
            format!(
                "{} s is not between 60 s and 7 days",
                proposal.ttl.as_secs()
            ),
        ));
    }
    Ok(())
}

fn require_status(
    id: &ApprovalId,
    request: &Request,
    wanted: Status,
    now: SystemTime,
) -> Result<(), Error> {
    match request.status(now) {
        status if status == wanted => Ok(()),
        Status::Expired => Err(Error::Expired {
            id: id.clone(),
            expired_at: request.expires_at(),
        }),
        status => Err(Error::WrongStatus {
            id: id.clone(),
            status,
            wanted,
        }),
    }
}

fn check_approver(id: &ApprovalId, request: &Request, approver: Officer<'_>) -> Result<(), Error> {
    let not_allowed = |reason| Error::NotAllowed {
        id: id.clone(),
        officer: approver.id.to_owned(),
        reason,
    };
    if approver.id == request.requester {
        return Err(not_allowed(
            "the requester never approves their own request",
        ));
    }
    if request.approvals.iter().any(|d| d.by == approver.id) {
        return Err(not_allowed(
            "they approved it already; it needs another officer",
        ));
    }
    check_role(id, request, approver)
}

fn check_role(id: &ApprovalId, request: &Request, officer: Officer<'_>) -> Result<(), Error> {
    if request
        .approver_roles
        .iter()
        .any(|role| role == officer.role)
    {
        return Ok(());
    }
    Err(Error::WrongRole {
        id: id.clone(),
        officer: officer.id.to_owned(),
        role: officer.role.to_owned(),
        allowed: request.approver_roles.clone(),
    })
}

fn decision(officer: Officer<'_>, reason: &str, now: SystemTime) -> Decision {
    Decision {
        by: officer.id.to_owned(),
        role: officer.role.to_owned(),
        at_ms: unix_ms(now),
        reason: reason.to_owned(),
    }
}

fn event(request: &Request, action: &str, actor: &str, now: SystemTime) -> AuditEvent {
    let at = i64::try_from(unix_ms(now)).unwrap_or(i64::MAX);
    let mut event = AuditEvent::new(at, action, actor, request.id.clone())
        .with("kind", request.operation.kind.name())
        .with("target", request.operation.target.clone())
        .with("requester", request.requester.clone());
    for (name, value) in &request.operation.parameters {
        event = event.with(name.clone(), value.clone());
    }
    event
}

/// Bounds free text and refuses control characters, which could forge lines in a human view of
/// the audit log.
fn check_text(field: &'static str, text: &str) -> Result<(), Error> {
    if text.len() > MAX_TEXT {
        return Err(invalid(field, format!("longer than {MAX_TEXT} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "control characters are not allowed".into()));
    }
    Ok(())
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidArgument { field, reason }
}

fn encode(request: &Request) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(request).map_err(|_| Error::Corrupt {
        key: request.id.clone(),
    })
}

fn decode(key: &[u8], value: &[u8]) -> Result<Request, Error> {
    let corrupt = || Error::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
    };
    let request: Request = serde_json::from_slice(value).map_err(|_| corrupt())?;
    if request.id.as_bytes() != key.get(PREFIX.len()..).unwrap_or_default() {
        return Err(corrupt());
    }
    Ok(request)
}

fn id_of(key: &[u8]) -> String {
    String::from_utf8_lossy(key.get(PREFIX.len()..).unwrap_or_default()).into_owned()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, millis)
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// `at` as RFC 3339 text in UTC.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let seconds = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(seconds)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|dt| dt.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{seconds} s after the Unix epoch"))
}

mod kind_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Kind;

    pub(super) fn serialize<S: Serializer>(kind: &Kind, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(kind.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Kind, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
