//! Renewal over mTLS with the current certificate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Fixture, San, csr, pem_der, setup};
use govtrust_ca::{Caller, Error, Issued, Network, Serial};
use x509_parser::prelude::{FromDer, X509Certificate};

fn enrolled(fx: &Fixture) -> Issued {
    let registered = fx.register("portal", 4, Network::Intranet, &["portal.gov.example"]);
    fx.ca
        .enroll(&registered.token, &csr("portal", &[]))
        .unwrap()
}

fn caller(issued: &Issued) -> Caller {
    Caller {
        spiffe_id: issued.spiffe_id.clone(),
        serial: issued.serial.clone(),
    }
}

fn not_current(result: Result<Issued, Error>) -> String {
    match result {
        Err(Error::CallerNotCurrent { reason }) => reason,
        other => panic!("expected CallerNotCurrent, got {other:?}"),
    }
}

#[test]
fn renewal_keeps_the_identity_with_a_new_serial() {
    let fx = setup();
    let first = enrolled(&fx);
    fx.clock.advance(Duration::from_secs(86_400));
    let renewed = fx
        .ca
        .renew(
            &caller(&first),
            &csr("portal", &[San::Dns("portal.gov.example")]),
        )
        .unwrap();
    assert_ne!(renewed.serial, first.serial);
    assert_eq!(renewed.spiffe_id, first.spiffe_id);
    let (old_der, new_der) = (
        pem_der(&first.certificate_pem),
        pem_der(&renewed.certificate_pem),
    );
    let (old, new) = (
        X509Certificate::from_der(&old_der).unwrap().1,
        X509Certificate::from_der(&new_der).unwrap().1,
    );
    assert_eq!(old.subject(), new.subject());
    let validity = new.validity();
    assert_eq!(
        validity.not_after.timestamp() - validity.not_before.timestamp(),
        90 * 86_400,
        "level 4"
    );
    assert!(renewed.not_after > first.not_after);
    assert_eq!(fx.index_count("portal"), 2);
    let events = fx.ca_events();
    let renew = events.iter().find(|e| e.starts_with("ca.renew|")).unwrap();
    assert!(
        renew.contains(&format!("renews={}", first.serial)),
        "{renew}"
    );
    fx.openssl_verify(&renewed.certificate_pem, Network::Intranet, "sslserver");
}

#[test]
fn renewal_with_an_unknown_serial_fails() {
    let fx = setup();
    let first = enrolled(&fx);
    let unknown = Caller {
        serial: Serial::parse(&"7f".repeat(16)).unwrap(),
        ..caller(&first)
    };
    let reason = not_current(fx.ca.renew(&unknown, &csr("portal", &[])));
    assert!(reason.contains("was not issued by this CA"), "{reason}");
    assert_eq!(fx.index_count("portal"), 1);
}

#[test]
fn renewal_with_someone_elses_certificate_fails() {
    let fx = setup();
    let first = enrolled(&fx);
    let other = fx.register("payroll", 2, Network::Intranet, &[]);
    let payroll = fx.ca.enroll(&other.token, &csr("payroll", &[])).unwrap();
    let stolen = Caller {
        spiffe_id: first.spiffe_id.clone(),
        serial: payroll.serial.clone(),
    };
    let reason = not_current(fx.ca.renew(&stolen, &csr("portal", &[])));
    assert!(reason.contains("belongs to"), "{reason}");
}

#[test]
fn renewal_by_a_person_or_an_unregistered_system_fails() {
    let fx = setup();
    let (_, admin) = &fx.artifacts.admins[0];
    let person = Caller {
        spiffe_id: admin.spiffe_id.clone(),
        serial: admin.serial.clone(),
    };
    not_current(fx.ca.renew(&person, &csr("system-admin", &[])));
    let ghost = Caller {
        spiffe_id: fx.spiffe("ghost"),
        serial: admin.serial.clone(),
    };
    let reason = not_current(fx.ca.renew(&ghost, &csr("ghost", &[])));
    assert!(reason.contains("not registered"), "{reason}");
}

#[test]
fn renewal_with_an_expired_certificate_fails() {
    let fx = setup();
    let first = enrolled(&fx);
    fx.clock.advance(Duration::from_secs(91 * 86_400));
    let reason = not_current(fx.ca.renew(&caller(&first), &csr("portal", &[])));
    assert!(reason.contains("expired at"), "{reason}");
}

#[test]
fn renewal_checks_the_csr_like_enrollment() {
    let fx = setup();
    let first = enrolled(&fx);
    let result = fx.ca.renew(
        &caller(&first),
        &csr("portal", &[San::Dns("other.gov.example")]),
    );
    assert!(
        matches!(result, Err(Error::NameNotAllowed { .. })),
        "{result:?}"
    );
    let result = fx.ca.renew(&caller(&first), b"junk");
    assert!(
        matches!(result, Err(Error::InvalidCsr { .. })),
        "{result:?}"
    );
    assert_eq!(fx.index_count("portal"), 1);
}
