//! New enrollment tokens for registered systems, and the tokens they supersede.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Fixture, RecordingAudit, csr, setup};
use govtrust_approval::{ApprovalId, Approvals, Officer, Proposal};
use govtrust_ca::{Ca, Caller, Error, Issued, Network, ReEnrollment, Registered, TokenTtl};
use govtrust_kms::Clock;
use govtrust_store::{Batch, Committed, Entry, Error as StoreError, MemoryStore, Store};

const ADMIN: &str = "spiffe://gov.example/person/system-admin";
/// Another administrator, to tell who issued which token.
const OTHER_ADMIN: &str = "spiffe://gov.example/person/other-admin";

fn ttl(seconds: u64) -> TokenTtl {
    TokenTtl::try_from(Duration::from_secs(seconds)).unwrap()
}

fn new_token(fx: &Fixture, system: &str) -> Registered {
    fx.ca.issue_token(ADMIN, system, ttl(600), None).unwrap()
}

/// A new token for `portal` through an approved re-enrollment: `requester` asks, the security
/// administrator approves, `requester` carries it out.
fn reissue(fx: &Fixture, requester: &str, carry_keys: bool) -> Registered {
    let approvals = approvals(fx);
    let id = approved(fx, &approvals, requester, carry_keys);
    let operation = govtrust_ca::reenrollment("portal", carry_keys, ttl(600), false);
    let claim = approvals
        .claim(requester, &id, &operation, fx.clock.now())
        .unwrap();
    let approved = ReEnrollment {
        claim: &claim,
        carry_keys,
    };
    fx.ca
        .issue_token(requester, "portal", ttl(600), Some(approved))
        .unwrap()
}

fn approvals(fx: &Fixture) -> Approvals {
    Approvals::new(fx.store.clone(), Arc::new(RecordingAudit))
}

/// Files and approves a re-enrollment of `portal` asked by `requester`.
fn approved(fx: &Fixture, approvals: &Approvals, requester: &str, carry_keys: bool) -> ApprovalId {
    let proposal = Proposal {
        operation: govtrust_ca::reenrollment("portal", carry_keys, ttl(600), false),
        summary: "re-enroll portal".into(),
        approver_roles: vec!["security-admin".into()],
        required: 1,
        ttl: Duration::from_secs(3600),
    };
    let officer = Officer {
        id: requester,
        role: "system-admin",
    };
    let request = approvals
        .request(officer, proposal, fx.clock.now())
        .unwrap();
    let id = request.approval_id().unwrap();
    approvals
        .approve(SECURITY, &id, "called the system's owner", fx.clock.now())
        .unwrap();
    id
}

const SECURITY: Officer<'static> = Officer {
    id: "spiffe://gov.example/person/security-admin",
    role: "security-admin",
};

fn superseded(result: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(&result, Err(Error::TokenSuperseded { system }) if system == "portal")
}

#[test]
fn a_new_token_enrolls_and_supersedes_the_old_one() {
    let fx = setup();
    let old = fx.register("portal", 2, Network::Extranet, &[]);
    let new = new_token(&fx, "portal");
    assert!(new.token.starts_with("gt1_"));
    assert_ne!(*new.token, *old.token);
    assert_eq!(new.system, old.system);
    assert_eq!(
        new.token_expires_at,
        fx.clock.now() + Duration::from_secs(600)
    );
    let result = fx.ca.enroll(&old.token, &csr("portal", &[]));
    let message = result.as_ref().unwrap_err().to_string();
    assert!(superseded(result), "{message}");
    assert!(
        message.contains("govtrust system token --name"),
        "{message}"
    );
    assert!(!message.contains("portal"), "names the system: {message}");
    assert!(fx.tokens_unused());
    let issued = fx.ca.enroll(&new.token, &csr("portal", &[])).unwrap();
    assert_eq!(issued.spiffe_id, fx.spiffe("portal"));
}

#[test]
fn only_the_newest_of_several_tokens_enrolls() {
    let fx = setup();
    let first = fx.register("portal", 2, Network::Extranet, &[]);
    let second = new_token(&fx, "portal");
    let third = new_token(&fx, "portal");
    for old in [&first, &second] {
        assert!(superseded(fx.ca.enroll(&old.token, &csr("portal", &[]))));
    }
    fx.ca.enroll(&third.token, &csr("portal", &[])).unwrap();
}

#[test]
fn a_system_whose_token_expired_enrolls_with_a_new_one() {
    let fx = setup();
    let old = fx.register("portal", 2, Network::Extranet, &[]);
    fx.clock.advance(Duration::from_secs(3600));
    let result = fx.ca.enroll(&old.token, &csr("portal", &[]));
    assert!(
        matches!(&result, Err(Error::TokenExpired { system, .. }) if system == "portal"),
        "{result:?}"
    );
    // Whoever holds the expired token does not learn whose it was.
    let message = result.unwrap_err().to_string();
    assert!(!message.contains("portal"), "names the system: {message}");
    let new = new_token(&fx, "portal");
    fx.ca.enroll(&new.token, &csr("portal", &[])).unwrap();
}

fn enrolled(fx: &Fixture) -> Issued {
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    fx.ca
        .enroll(&registered.token, &csr("portal", &[]))
        .unwrap()
}

/// True when `result` refuses a token because of the certificate `serial`, valid until
/// `not_after`.
fn has_certificate(result: &Result<Registered, Error>, cert: &Issued) -> bool {
    matches!(
        result,
        Err(Error::SystemHasCertificate { system, serial, not_after })
            if system == "portal" && *serial == cert.serial && *not_after == cert.not_after
    )
}

/// What a refused token issuance must leave as it was.
#[derive(Debug, PartialEq)]
struct Tokens {
    pointer: Option<Vec<u8>>,
    tokens: Vec<String>,
    events: Vec<String>,
}

fn tokens(fx: &Fixture) -> Tokens {
    Tokens {
        pointer: fx.store.get(b"ca/systoken/portal").unwrap(),
        tokens: fx.keys("ca/token/"),
        events: fx.ca_events(),
    }
}

/// The `ca.enroll` audit lines.
fn enroll_events(fx: &Fixture) -> Vec<String> {
    let events = fx.ca_events();
    events
        .into_iter()
        .filter(|e| e.starts_with("ca.enroll|"))
        .collect()
}

#[test]
fn a_system_with_a_valid_certificate_gets_no_token() {
    let fx = setup();
    let cert = enrolled(&fx);
    let before = tokens(&fx);
    let result = fx.ca.issue_token(ADMIN, "portal", ttl(600), None);
    assert!(has_certificate(&result, &cert), "{result:?}");
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains(&format!("holds certificate {}", cert.serial))
            && message.contains("revoke it first"),
        "{message}"
    );
    assert_eq!(tokens(&fx), before);
    assert!(
        !before
            .events
            .iter()
            .any(|e| e.starts_with("ca.token.issue"))
    );
    // Still valid at the last second of its validity.
    fx.clock
        .advance(cert.not_after.duration_since(fx.clock.now()).unwrap());
    let result = fx.ca.issue_token(ADMIN, "portal", ttl(600), None);
    assert!(has_certificate(&result, &cert), "{result:?}");
    assert_eq!(tokens(&fx), before);
}

#[test]
fn a_renewed_system_gets_no_token_while_its_newest_certificate_is_valid() {
    let fx = setup();
    let first = enrolled(&fx);
    fx.clock.advance(Duration::from_secs(86_400));
    let caller = Caller {
        spiffe_id: first.spiffe_id.clone(),
        serial: first.serial.clone(),
    };
    let renewed = fx.ca.renew(&caller, &csr("portal", &[])).unwrap();
    fx.clock
        .advance(first.not_after.duration_since(fx.clock.now()).unwrap() + Duration::from_secs(1));
    let result = fx.ca.issue_token(ADMIN, "portal", ttl(600), None);
    assert!(has_certificate(&result, &renewed), "{result:?}");
}

#[test]
fn a_system_enrolled_before_latest_certificates_were_kept_gets_no_token() {
    let fx = setup();
    let cert = enrolled(&fx);
    fx.delete("ca/syscert/portal");
    let result = fx.ca.issue_token(ADMIN, "portal", ttl(600), None);
    assert!(has_certificate(&result, &cert), "{result:?}");
}

#[test]
fn a_token_issued_after_the_certificate_expired_enrolls_again() {
    let fx = setup();
    let old = enrolled(&fx);
    fx.clock
        .advance(old.not_after.duration_since(fx.clock.now()).unwrap() + Duration::from_secs(1));
    let new = reissue(&fx, OTHER_ADMIN, true);
    let issued = fx.ca.enroll(&new.token, &csr("portal", &[])).unwrap();
    assert_eq!(issued.spiffe_id, old.spiffe_id);
    assert_eq!(fx.index_count("portal"), 2);
    let result = fx.ca.issue_token(ADMIN, "portal", ttl(600), None);
    assert!(has_certificate(&result, &issued), "{result:?}");
}

#[test]
fn enrollment_is_audited_with_who_issued_the_token() {
    let fx = setup();
    let cert = enrolled(&fx);
    let events = enroll_events(&fx);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].contains(&format!("token_issued_by={ADMIN}")),
        "{events:?}"
    );
    fx.clock
        .advance(cert.not_after.duration_since(fx.clock.now()).unwrap() + Duration::from_secs(1));
    let new = reissue(&fx, OTHER_ADMIN, false);
    fx.ca.enroll(&new.token, &csr("portal", &[])).unwrap();
    let events = enroll_events(&fx);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[1].starts_with(&format!("ca.enroll|{}|", fx.spiffe("portal")))
            && events[1].contains(&format!("token_issued_by={OTHER_ADMIN}")),
        "{events:?}"
    );
}

#[test]
fn a_token_stored_before_its_issuer_was_recorded_enrolls_without_it() {
    let fx = setup();
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    let key = fx.keys("ca/token/").remove(0);
    fx.rewrite(&key, |record| {
        record.as_object_mut().unwrap().remove("issued_by").unwrap();
    });
    fx.ca
        .enroll(&registered.token, &csr("portal", &[]))
        .unwrap();
    let events = enroll_events(&fx);
    assert!(!events[0].contains("token_issued_by"), "{events:?}");
}

/// A store that runs `before` once, just before the first batch committed through it.
struct Interleaved {
    inner: Arc<MemoryStore>,
    before: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Store for Interleaved {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan(prefix, start_after, limit)
    }

    fn last(&self, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.inner.last(prefix)
    }

    fn commit(&self, batch: Batch) -> Result<Committed, StoreError> {
        let before = self.before.lock().unwrap().take();
        if let Some(before) = before {
            before();
        }
        self.inner.commit(batch)
    }
}

#[test]
fn an_enrollment_between_the_check_and_the_new_token_refuses_the_token() {
    let fx = setup();
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    let open = |store: Arc<dyn Store>| {
        Ca::open(
            store,
            fx.kms.clone(),
            Arc::new(RecordingAudit),
            fx.clock.clone(),
        )
        .unwrap()
    };
    let enrolling = open(fx.store.clone());
    let enrolled = Arc::new(Mutex::new(None));
    let slot = enrolled.clone();
    let token = registered.token.to_string();
    let enroll = move || {
        let issued = enrolling.enroll(&token, &csr("portal", &[])).unwrap();
        *slot.lock().unwrap() = Some(issued);
    };
    let racing = open(Arc::new(Interleaved {
        inner: fx.store.clone(),
        before: Mutex::new(Some(Box::new(enroll))),
    }));
    let before = fx.store.get(b"ca/systoken/portal").unwrap();
    let result = racing.issue_token(ADMIN, "portal", ttl(600), None);
    let cert = enrolled.lock().unwrap().take().expect("enrolled first");
    assert!(has_certificate(&result, &cert), "{result:?}");
    assert_eq!(fx.store.get(b"ca/systoken/portal").unwrap(), before);
    assert_eq!(fx.keys("ca/token/").len(), 1);
    assert!(
        !fx.ca_events()
            .iter()
            .any(|e| e.starts_with("ca.token.issue"))
    );
}

#[test]
fn token_issuance_is_audited_without_the_token() {
    let fx = setup();
    fx.register("portal", 2, Network::Extranet, &[]);
    let new = new_token(&fx, "portal");
    let events = fx.ca_events();
    let issued: Vec<_> = events
        .iter()
        .filter(|e| e.starts_with("ca.token.issue|"))
        .collect();
    assert_eq!(issued.len(), 1, "{events:?}");
    let event = issued[0];
    assert!(
        event.starts_with(&format!("ca.token.issue|{ADMIN}|portal|")),
        "{event}"
    );
    assert!(event.contains("token_expires_at="), "{event}");
    assert!(!event.contains(new.token.as_str()), "{event}");
}

#[test]
fn unknown_systems_get_no_token() {
    let fx = setup();
    let result = fx.ca.issue_token(ADMIN, "ghost", ttl(600), None);
    assert!(
        matches!(&result, Err(Error::SystemNotFound { name }) if name == "ghost"),
        "{result:?}"
    );
    let result = fx.ca.issue_token(ADMIN, "../hierarchy", ttl(600), None);
    assert!(
        matches!(result, Err(Error::InvalidArgument { field: "name", .. })),
        "{result:?}"
    );
    assert!(fx.keys("ca/token/").is_empty());
    assert!(
        !fx.ca_events()
            .iter()
            .any(|e| e.starts_with("ca.token.issue"))
    );
}

#[test]
fn a_system_registered_before_token_pointers_keeps_its_token_until_a_new_one() {
    let fx = setup();
    let old = fx.register("portal", 2, Network::Extranet, &[]);
    fx.delete("ca/systoken/portal");
    let renewed = new_token(&fx, "portal");
    assert!(superseded(fx.ca.enroll(&old.token, &csr("portal", &[]))));
    fx.ca.enroll(&renewed.token, &csr("portal", &[])).unwrap();

    let legacy = fx.register("payroll", 2, Network::Extranet, &[]);
    fx.delete("ca/systoken/payroll");
    fx.ca.enroll(&legacy.token, &csr("payroll", &[])).unwrap();
}

#[test]
fn a_system_that_held_a_certificate_is_re_enrolled_only_with_an_approval() {
    let fx = setup();
    let old = enrolled(&fx);
    fx.clock
        .advance(old.not_after.duration_since(fx.clock.now()).unwrap() + Duration::from_secs(1));
    let before = tokens(&fx);
    let result = fx.ca.issue_token(ADMIN, "portal", ttl(600), None);
    let Err(Error::ApprovalRequired { system, operation }) = &result else {
        panic!("{result:?}");
    };
    assert_eq!(system, "portal");
    assert_eq!(
        *operation,
        govtrust_ca::reenrollment("portal", false, ttl(600), false)
    );
    assert!(result.unwrap_err().to_string().contains("approval"));
    assert_eq!(tokens(&fx), before, "a refused token stores nothing");
}

#[test]
fn an_approval_gives_one_token_and_only_for_the_approved_act() {
    let fx = setup();
    let old = enrolled(&fx);
    fx.clock
        .advance(old.not_after.duration_since(fx.clock.now()).unwrap() + Duration::from_secs(1));
    let approvals = approvals(&fx);
    let id = approved(&fx, &approvals, ADMIN, false);
    // Carrying the keys over was not approved.
    let wider = govtrust_ca::reenrollment("portal", true, ttl(600), false);
    assert!(approvals.claim(ADMIN, &id, &wider, fx.clock.now()).is_err());
    let operation = govtrust_ca::reenrollment("portal", false, ttl(600), false);
    let claim = approvals
        .claim(ADMIN, &id, &operation, fx.clock.now())
        .unwrap();
    let forged = ReEnrollment {
        claim: &claim,
        carry_keys: true,
    };
    let result = fx.ca.issue_token(ADMIN, "portal", ttl(600), Some(forged));
    assert!(matches!(result, Err(Error::Approval(_))), "{result:?}");
    let approved = ReEnrollment {
        claim: &claim,
        carry_keys: false,
    };
    fx.ca
        .issue_token(ADMIN, "portal", ttl(600), Some(approved))
        .unwrap();
    let replay = fx.ca.issue_token(ADMIN, "portal", ttl(600), Some(approved));
    assert!(matches!(replay, Err(Error::Approval(_))), "{replay:?}");
    assert!(
        approvals
            .claim(ADMIN, &id, &operation, fx.clock.now())
            .is_err()
    );
}

#[test]
fn re_enrollment_starts_a_new_generation_and_cuts_off_the_old_certificate() {
    let fx = setup();
    let old = enrolled(&fx);
    assert_eq!(fx.ca.lineage("portal").unwrap().generation, 1);
    let old_serial = old.serial.clone();
    fx.clock
        .advance(old.not_after.duration_since(fx.clock.now()).unwrap() + Duration::from_secs(1));
    let new = reissue(&fx, ADMIN, false);
    let issued = fx.ca.enroll(&new.token, &csr("portal", &[])).unwrap();
    let lineage = fx.ca.lineage("portal").unwrap();
    assert_eq!((lineage.generation, lineage.key_floor), (2, 2));
    assert_eq!(fx.ca.certificate(&issued.serial).unwrap().generation, 2);
    assert_eq!(fx.ca.certificate(&old_serial).unwrap().generation, 1);
    assert!(
        !lineage.reaches(2, 1),
        "keys of the first enrollment stay out of reach"
    );
    assert!(
        !lineage.reaches(1, 2),
        "the old certificate reaches nothing"
    );
    let events = enroll_events(&fx);
    assert!(events[1].contains("generation=2") && events[1].contains("carry_keys=false"));
}

#[test]
fn a_token_from_before_dual_control_never_carries_keys_into_a_re_enrollment() {
    let fx = setup();
    let old = enrolled(&fx);
    fx.clock
        .advance(old.not_after.duration_since(fx.clock.now()).unwrap() + Duration::from_secs(1));
    let new = reissue(&fx, ADMIN, true);
    // Strip the approval from the stored token, as a token issued before approvals existed.
    for (key, value) in fx.store.scan(b"ca/token/", None, usize::MAX).unwrap() {
        let mut record: serde_json::Value = serde_json::from_slice(&value).unwrap();
        if record.get("reenrollment").is_some() {
            record.as_object_mut().unwrap().remove("reenrollment");
            let mut batch = Batch::new();
            batch.put(key, serde_json::to_vec(&record).unwrap());
            fx.store.commit(batch).unwrap();
        }
    }
    fx.ca.enroll(&new.token, &csr("portal", &[])).unwrap();
    let lineage = fx.ca.lineage("portal").unwrap();
    assert_eq!((lineage.generation, lineage.key_floor), (2, 2));
}

#[test]
fn an_approved_re_enrollment_with_revoke_current_revokes_what_stands_in_the_tokens_step() {
    let fx = setup();
    let first = enrolled(&fx);
    let approvals = approvals(&fx);
    // Without it, a system with a valid certificate gets no token.
    let refused = fx.ca.issue_token(ADMIN, "portal", ttl(600), None);
    assert!(
        matches!(&refused, Err(e @ Error::SystemHasCertificate { .. }) if e.to_string().contains("--revoke-current")),
        "{refused:?}"
    );
    // With it but no approval yet: the act to approve, which says so.
    let unapproved = govtrust_ca::TokenRequest {
        ttl: ttl(600),
        reenrollment: None,
        revoke_current: true,
    };
    let asked = fx.ca.issue_token_revoking(ADMIN, "portal", unapproved);
    assert!(
        matches!(&asked, Err(Error::ApprovalRequired { operation, .. }) if *operation == govtrust_ca::reenrollment("portal", false, ttl(600), true)),
        "{asked:?}"
    );
    let operation = govtrust_ca::reenrollment("portal", false, ttl(600), true);
    let proposal = Proposal {
        operation: operation.clone(),
        summary: "re-enroll portal, revoking what stands".into(),
        approver_roles: vec!["security-admin".into()],
        required: 1,
        ttl: Duration::from_secs(3600),
    };
    let officer = Officer {
        id: ADMIN,
        role: "system-admin",
    };
    let request = approvals
        .request(officer, proposal, fx.clock.now())
        .unwrap();
    let id = request.approval_id().unwrap();
    approvals
        .approve(SECURITY, &id, "owner asked", fx.clock.now())
        .unwrap();
    // An approval with revoke_current cannot be carried out as one without it.
    let narrower = govtrust_ca::reenrollment("portal", false, ttl(600), false);
    assert!(
        approvals
            .claim(ADMIN, &id, &narrower, fx.clock.now())
            .is_err()
    );
    let claim = approvals
        .claim(ADMIN, &id, &operation, fx.clock.now())
        .unwrap();
    let request = govtrust_ca::TokenRequest {
        ttl: ttl(600),
        reenrollment: Some(ReEnrollment {
            claim: &claim,
            carry_keys: false,
        }),
        revoke_current: true,
    };
    let token = fx
        .ca
        .issue_token_revoking(ADMIN, "portal", request)
        .unwrap();
    let record = fx.ca.certificate(&first.serial).unwrap();
    let revocation = record.revocation.unwrap();
    assert_eq!(revocation.reason, govtrust_ca::Reason::Superseded);
    assert_eq!(revocation.by, ADMIN);
    assert!(fx.ca.revocation(&first.serial).is_some());
    let events = fx.ca_events();
    let issued = events
        .iter()
        .find(|e| e.starts_with("ca.token.issue|"))
        .unwrap();
    assert!(
        issued.contains(&format!("revoked={}", first.serial)),
        "{issued}"
    );
    assert!(events.iter().any(|e| e.starts_with("ca.cert.revoke|")));
    let crl = fx.ca.crl(govtrust_ca::Authority::Extranet).unwrap();
    assert_eq!(crl.entries, 1);
    fx.ca.enroll(&token.token, &csr("portal", &[])).unwrap();
}
