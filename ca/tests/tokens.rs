//! New enrollment tokens for registered systems, and the tokens they supersede.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Fixture, csr, setup};
use govtrust_ca::{Error, Network, Registered, TokenTtl};
use govtrust_kms::Clock;

const ADMIN: &str = "spiffe://gov.example/person/system-admin";

fn ttl(seconds: u64) -> TokenTtl {
    TokenTtl::try_from(Duration::from_secs(seconds)).unwrap()
}

fn new_token(fx: &Fixture, system: &str) -> Registered {
    fx.ca.issue_token(ADMIN, system, ttl(600)).unwrap()
}

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
        message.contains("govtrust system token --name portal"),
        "{message}"
    );
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
        matches!(result, Err(Error::TokenExpired { .. })),
        "{result:?}"
    );
    let new = new_token(&fx, "portal");
    fx.ca.enroll(&new.token, &csr("portal", &[])).unwrap();
}

#[test]
fn a_token_issued_after_enrollment_enrolls_again() {
    let fx = setup();
    let old = fx.register("portal", 2, Network::Extranet, &[]);
    fx.ca.enroll(&old.token, &csr("portal", &[])).unwrap();
    let new = new_token(&fx, "portal");
    fx.ca.enroll(&new.token, &csr("portal", &[])).unwrap();
    assert_eq!(fx.index_count("portal"), 2);
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
    let result = fx.ca.issue_token(ADMIN, "ghost", ttl(600));
    assert!(
        matches!(&result, Err(Error::SystemNotFound { name }) if name == "ghost"),
        "{result:?}"
    );
    let result = fx.ca.issue_token(ADMIN, "../hierarchy", ttl(600));
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
