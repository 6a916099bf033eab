//! Unit tests of the approval life cycle over the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_store::{AuditEvent, AuditSink, Batch, MemoryStore, Store};

use super::*;

const SYS: Officer<'static> = Officer {
    id: "spiffe://gov.example/person/system-admin",
    role: "system-admin",
};
const SEC: Officer<'static> = Officer {
    id: "spiffe://gov.example/person/security-admin",
    role: "security-admin",
};
const SEC2: Officer<'static> = Officer {
    id: "spiffe://gov.example/person/security-admin-2",
    role: "security-admin",
};
const AUD: Officer<'static> = Officer {
    id: "spiffe://gov.example/person/audit-admin",
    role: "audit-admin",
};

/// Appends each event's action under `audit/`, so tests can read what was audited.
struct Actions;

impl AuditSink for Actions {
    fn stage(&self, batch: &mut Batch, event: &AuditEvent) -> Result<(), govtrust_store::Error> {
        batch.append(b"audit/".to_vec(), event.action.clone().into_bytes());
        Ok(())
    }
}

fn approvals() -> (Approvals, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    (Approvals::new(store.clone(), Arc::new(Actions)), store)
}

fn audited(store: &dyn Store) -> Vec<String> {
    let entries = store.scan(b"audit/", None, 100).unwrap();
    entries
        .into_iter()
        .map(|(_, v)| String::from_utf8(v).unwrap())
        .collect()
}

fn operation() -> Operation {
    Operation::new(Kind::ReEnrollment, "tax-portal").with("carry_keys", "false")
}

fn proposal(required: u8) -> Proposal {
    Proposal {
        operation: operation(),
        summary: "new enrollment token for tax-portal".into(),
        approver_roles: vec!["security-admin".into()],
        required,
        ttl: Duration::from_secs(3600),
    }
}

fn id(request: &Request) -> ApprovalId {
    request.approval_id().unwrap()
}

#[test]
fn approved_request_executes_once_for_its_requester() {
    let (approvals, store) = approvals();
    let now = SystemTime::now();
    let request = approvals.request(SYS, proposal(1), now).unwrap();
    assert_eq!(request.status(now), Status::Pending);
    let approved = approvals
        .approve(SEC, &id(&request), "checked by phone", now)
        .unwrap();
    assert_eq!(approved.status(now), Status::Approved);
    let claim = approvals
        .claim(SYS.id, &id(&request), &operation(), now)
        .unwrap();
    store.commit(claim.batch().clone()).unwrap();
    assert_eq!(
        approvals.get(&id(&request)).unwrap().status(now),
        Status::Executed
    );
    let replay = approvals.claim(SYS.id, &id(&request), &operation(), now);
    assert!(matches!(
        replay,
        Err(Error::WrongStatus {
            status: Status::Executed,
            ..
        })
    ));
    assert_eq!(
        audited(store.as_ref()),
        ["approval.request", "approval.approve", "approval.execute"]
    );
}

#[test]
fn a_claim_committed_twice_applies_once() {
    let (approvals, store) = approvals();
    let now = SystemTime::now();
    let request = approvals.request(SYS, proposal(1), now).unwrap();
    approvals.approve(SEC, &id(&request), "", now).unwrap();
    let first = approvals
        .claim(SYS.id, &id(&request), &operation(), now)
        .unwrap();
    let second = approvals
        .claim(SYS.id, &id(&request), &operation(), now)
        .unwrap();
    store.commit(first.batch().clone()).unwrap();
    assert!(store.commit(second.batch().clone()).is_err());
}

#[test]
fn the_requester_never_approves_and_nobody_approves_twice() {
    let (approvals, _) = approvals();
    let now = SystemTime::now();
    let own = Officer {
        id: SYS.id,
        role: "security-admin",
    };
    let request = approvals.request(own, proposal(2), now).unwrap();
    let refused = approvals.approve(own, &id(&request), "", now).unwrap_err();
    assert!(matches!(refused, Error::NotAllowed { .. }), "{refused}");
    assert!(refused.to_string().contains("requester"), "{refused}");
    approvals.approve(SEC, &id(&request), "", now).unwrap();
    let twice = approvals.approve(SEC, &id(&request), "", now).unwrap_err();
    assert!(matches!(twice, Error::NotAllowed { .. }), "{twice}");
    let approved = approvals.approve(SEC2, &id(&request), "", now).unwrap();
    assert_eq!(approved.status(now), Status::Approved);
}

#[test]
fn only_named_roles_decide() {
    let (approvals, _) = approvals();
    let now = SystemTime::now();
    let request = approvals.request(SYS, proposal(1), now).unwrap();
    let refused = approvals.approve(AUD, &id(&request), "", now).unwrap_err();
    assert!(matches!(refused, Error::WrongRole { .. }), "{refused}");
    assert!(refused.to_string().contains("security-admin"), "{refused}");
    assert!(approvals.reject(AUD, &id(&request), "no", now).is_err());
    assert_eq!(
        approvals.get(&id(&request)).unwrap().status(now),
        Status::Pending
    );
}

#[test]
fn only_the_requester_carries_out_and_only_the_approved_act() {
    let (approvals, _) = approvals();
    let now = SystemTime::now();
    let request = approvals.request(SYS, proposal(1), now).unwrap();
    let early = approvals
        .claim(SYS.id, &id(&request), &operation(), now)
        .unwrap_err();
    assert!(
        matches!(
            early,
            Error::WrongStatus {
                status: Status::Pending,
                ..
            }
        ),
        "{early}"
    );
    approvals.approve(SEC, &id(&request), "", now).unwrap();
    let stranger = approvals
        .claim(SEC.id, &id(&request), &operation(), now)
        .unwrap_err();
    assert!(matches!(stranger, Error::NotRequester { .. }), "{stranger}");
    let other = Operation::new(Kind::ReEnrollment, "health-records").with("carry_keys", "false");
    let mismatch = approvals
        .claim(SYS.id, &id(&request), &other, now)
        .unwrap_err();
    assert!(matches!(mismatch, Error::Mismatch { .. }), "{mismatch}");
    let wider = Operation::new(Kind::ReEnrollment, "tax-portal").with("carry_keys", "true");
    assert!(approvals.claim(SYS.id, &id(&request), &wider, now).is_err());
}

#[test]
fn expired_and_rejected_requests_cannot_be_used() {
    let (approvals, _) = approvals();
    let now = SystemTime::now();
    let request = approvals.request(SYS, proposal(1), now).unwrap();
    approvals.approve(SEC, &id(&request), "", now).unwrap();
    let later = now + Duration::from_secs(3601);
    let expired = approvals
        .claim(SYS.id, &id(&request), &operation(), later)
        .unwrap_err();
    assert!(matches!(expired, Error::Expired { .. }), "{expired}");
    let pending = approvals.request(SYS, proposal(1), now).unwrap();
    approvals
        .reject(SEC, &id(&pending), "not verified", now)
        .unwrap();
    let rejected = approvals.approve(SEC2, &id(&pending), "", now).unwrap_err();
    assert!(matches!(
        rejected,
        Error::WrongStatus {
            status: Status::Rejected,
            ..
        }
    ));
    let late = approvals.request(SYS, proposal(1), now).unwrap();
    assert!(matches!(
        approvals.approve(SEC, &id(&late), "", later),
        Err(Error::Expired { .. })
    ));
}

#[test]
fn asking_again_while_pending_returns_the_same_request() {
    let (approvals, store) = approvals();
    let now = SystemTime::now();
    let first = approvals.request(SYS, proposal(1), now).unwrap();
    let again = approvals.request(SYS, proposal(1), now).unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(audited(store.as_ref()), ["approval.request"]);
    approvals.reject(SYS, &id(&first), "", now).unwrap();
    let fresh = approvals.request(SYS, proposal(1), now).unwrap();
    assert_ne!(
        fresh.id, first.id,
        "a request that is no longer pending is not reused"
    );
    let other = Officer {
        id: "spiffe://gov.example/person/other",
        role: "system-admin",
    };
    assert_ne!(
        approvals.request(other, proposal(1), now).unwrap().id,
        fresh.id
    );
}

#[test]
fn the_requester_may_withdraw() {
    let (approvals, _) = approvals();
    let now = SystemTime::now();
    let request = approvals.request(SYS, proposal(1), now).unwrap();
    let withdrawn = approvals
        .reject(SYS, &id(&request), "sent by mistake", now)
        .unwrap();
    assert_eq!(withdrawn.status(now), Status::Rejected);
}

#[test]
fn lists_by_status_in_pages() {
    let (approvals, _) = approvals();
    let now = SystemTime::now();
    let ids: Vec<_> = (0..5)
        .map(|n| {
            let mut proposal = proposal(1);
            proposal.operation.target = format!("system-{n}");
            id(&approvals.request(SYS, proposal, now).unwrap())
        })
        .collect();
    approvals.approve(SEC, &ids[2], "", now).unwrap();
    let (pending, _) = approvals.list(Some(Status::Pending), now, 0, None).unwrap();
    assert_eq!(pending.len(), 4);
    let (first, next) = approvals.list(None, now, 2, None).unwrap();
    assert_eq!(first.len(), 2);
    let next = ApprovalId::parse(&next.unwrap()).unwrap();
    let (rest, _) = approvals.list(None, now, 10, Some(&next)).unwrap();
    assert_eq!(rest.len(), 3);
}

#[test]
fn bad_proposals_and_ids_are_refused_by_name() {
    let (approvals, store) = approvals();
    let now = SystemTime::now();
    let mut bad = proposal(0);
    assert!(
        approvals
            .request(SYS, bad.clone(), now)
            .unwrap_err()
            .to_string()
            .contains("required")
    );
    bad.required = 1;
    bad.summary = "line\nforged".into();
    assert!(
        approvals
            .request(SYS, bad.clone(), now)
            .unwrap_err()
            .to_string()
            .contains("summary")
    );
    bad.summary = String::new();
    bad.ttl = Duration::from_secs(30 * 24 * 3600);
    assert!(
        approvals
            .request(SYS, bad, now)
            .unwrap_err()
            .to_string()
            .contains("ttl")
    );
    assert!(ApprovalId::parse("ap-xyz").is_err());
    assert!(ApprovalId::parse(&format!("ap-{}", "A".repeat(32))).is_err());
    assert!(audited(store.as_ref()).is_empty());
}
