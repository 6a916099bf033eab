//! Revocation, suspension, renewal grace and CRLs, checked with x509-parser and the openssl CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Fixture, csr, openssl, setup};
use govtrust_ca::{
    Authority, Caller, CertStatus, Change, Error, Issued, Network, Reason, Serial, Settings,
};
use govtrust_kms::Clock;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

fn enrolled(fx: &Fixture, name: &str) -> Issued {
    let registered = fx.register(name, 3, Network::Extranet, &[]);
    fx.ca.enroll(&registered.token, &csr(name, &[])).unwrap()
}

fn caller(issued: &Issued) -> Caller {
    Caller {
        spiffe_id: issued.spiffe_id.clone(),
        serial: issued.serial.clone(),
    }
}

const OFFICER: &str = "spiffe://gov.example/person/security-admin";

fn state_error(result: Result<govtrust_ca::CertRecord, Error>) -> String {
    match result {
        Err(Error::RevocationState { reason, .. }) => reason,
        other => panic!("expected RevocationState, got {other:?}"),
    }
}

/// The serials and reason codes the current CRL of `authority` lists, after checking its
/// signature with the CA's key.
fn crl_entries(fx: &Fixture, authority: Authority) -> Vec<(String, Option<u8>)> {
    let crl = fx.ca.crl(authority).expect("a CRL was made");
    let (rest, parsed) = CertificateRevocationList::from_der(&crl.der).unwrap();
    assert!(rest.is_empty());
    let ca_der = fx.ca.chain().der(authority).to_vec();
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    parsed.verify_signature(ca.public_key()).unwrap();
    assert_eq!(
        parsed.crl_number().map(|n| n.to_u64_digits()[0]),
        Some(crl.number)
    );
    parsed
        .iter_revoked_certificates()
        .map(|entry| {
            let serial = hex::encode(entry.raw_serial());
            (serial, entry.reason_code().map(|(_, r)| r.0))
        })
        .collect()
}

#[test]
fn a_revoked_certificate_is_listed_in_its_cas_crl_for_good() {
    let fx = setup();
    let portal = enrolled(&fx, "portal");
    let record = fx
        .ca
        .change_status(
            OFFICER,
            &portal.serial,
            Change::Revoke(Reason::KeyCompromise),
            "laptop stolen",
        )
        .unwrap();
    assert_eq!(record.status(fx.clock.now()), CertStatus::Revoked);
    let (reason, _) = fx.ca.revocation(&portal.serial).unwrap();
    assert_eq!(reason, Reason::KeyCompromise);
    assert_eq!(
        crl_entries(&fx, Authority::Extranet),
        vec![(portal.serial.to_string(), Some(1))]
    );
    let events = fx.ca_events();
    let event = events
        .iter()
        .find(|e| e.starts_with("ca.cert.revoke|"))
        .unwrap();
    assert!(event.contains("reason=key-compromise"), "{event}");
    assert!(event.contains("note=laptop stolen"), "{event}");

    // Permanent: neither revoked again, nor suspended, nor unsuspended.
    for change in [
        Change::Revoke(Reason::Superseded),
        Change::Suspend,
        Change::Unsuspend,
    ] {
        let reason = state_error(fx.ca.change_status(OFFICER, &portal.serial, change, ""));
        assert!(reason.contains("permanent"), "{reason}");
    }
    // And it renews no more.
    let refused = fx.ca.renew(&caller(&portal), &csr("portal", &[]));
    assert!(
        matches!(&refused, Err(Error::CallerNotCurrent { reason }) if reason.contains("revoked")),
        "{refused:?}"
    );
    // Other CAs' CRLs do not list it.
    fx.ca.refresh_crls().unwrap();
    assert!(crl_entries(&fx, Authority::Intranet).is_empty());
}

#[test]
fn a_suspension_is_listed_as_certificate_hold_and_lifted_by_unsuspend() {
    let fx = setup();
    let portal = enrolled(&fx, "portal");
    let suspended = fx
        .ca
        .change_status(OFFICER, &portal.serial, Change::Suspend, "token lost")
        .unwrap();
    assert_eq!(suspended.status(fx.clock.now()), CertStatus::Suspended);
    assert_eq!(
        crl_entries(&fx, Authority::Extranet),
        vec![(portal.serial.to_string(), Some(6))]
    );
    let first = fx.ca.crl(Authority::Extranet).unwrap().number;
    let reason = state_error(
        fx.ca
            .change_status(OFFICER, &portal.serial, Change::Suspend, ""),
    );
    assert!(reason.contains("already suspended"), "{reason}");
    assert!(fx.ca.renew(&caller(&portal), &csr("portal", &[])).is_err());

    let lifted = fx
        .ca
        .change_status(OFFICER, &portal.serial, Change::Unsuspend, "found it")
        .unwrap();
    assert_eq!(lifted.status(fx.clock.now()), CertStatus::Valid);
    assert!(fx.ca.revocation(&portal.serial).is_none());
    assert!(crl_entries(&fx, Authority::Extranet).is_empty());
    assert!(fx.ca.crl(Authority::Extranet).unwrap().number > first);
    let reason = state_error(
        fx.ca
            .change_status(OFFICER, &portal.serial, Change::Unsuspend, ""),
    );
    assert!(reason.contains("not suspended"), "{reason}");

    // A suspended certificate may be revoked for good.
    fx.ca
        .change_status(OFFICER, &portal.serial, Change::Suspend, "")
        .unwrap();
    fx.ca
        .change_status(
            OFFICER,
            &portal.serial,
            Change::Revoke(Reason::KeyCompromise),
            "",
        )
        .unwrap();
    let reason = state_error(
        fx.ca
            .change_status(OFFICER, &portal.serial, Change::Unsuspend, ""),
    );
    assert!(
        reason.contains("key-compromise") && reason.contains("permanent"),
        "{reason}"
    );
}

#[test]
fn bad_changes_are_refused_and_store_nothing() {
    let fx = setup();
    let portal = enrolled(&fx, "portal");
    let before = fx.ca_events().len();
    let unknown = Serial::parse(&"7e".repeat(17)).unwrap();
    let result = fx.ca.change_status(OFFICER, &unknown, Change::Suspend, "");
    assert!(
        matches!(result, Err(Error::CertificateNotFound { .. })),
        "{result:?}"
    );
    let hold = fx.ca.change_status(
        OFFICER,
        &portal.serial,
        Change::Revoke(Reason::CertificateHold),
        "",
    );
    assert!(
        matches!(
            hold,
            Err(Error::InvalidArgument {
                field: "reason",
                ..
            })
        ),
        "{hold:?}"
    );
    fx.clock.advance(Duration::from_secs(400 * 86_400));
    let reason = state_error(
        fx.ca
            .change_status(OFFICER, &portal.serial, Change::Suspend, ""),
    );
    assert!(reason.contains("expired"), "{reason}");
    assert_eq!(fx.ca_events().len(), before);
    assert!(fx.keys("ca/revoked/").is_empty());
}

#[test]
fn a_renewed_certificate_renews_again_only_within_the_grace() {
    let fx = setup();
    let fx = Fixture {
        ca: fx.ca.with_settings(Settings {
            renewal_grace: Duration::from_secs(600),
            ..Settings::default()
        }),
        ..fx
    };
    let first = enrolled(&fx, "portal");
    let second = fx.ca.renew(&caller(&first), &csr("portal", &[])).unwrap();
    let record = fx.ca.certificate(&first.serial).unwrap();
    assert_eq!(record.status(fx.clock.now()), CertStatus::Superseded);
    assert_eq!(record.superseded.as_ref().unwrap().by, second.serial);
    // The answer was lost: the first certificate renews again, within the grace.
    fx.clock.advance(Duration::from_secs(300));
    let third = fx.ca.renew(&caller(&first), &csr("portal", &[])).unwrap();
    let record = fx.ca.certificate(&first.serial).unwrap();
    assert_eq!(record.superseded.as_ref().unwrap().by, third.serial);
    // The grace runs from the first renewal: 10 minutes after it, no more.
    fx.clock.advance(Duration::from_secs(301));
    let refused = fx.ca.renew(&caller(&first), &csr("portal", &[]));
    assert!(
        matches!(&refused, Err(Error::CallerNotCurrent { reason }) if reason.contains("renewal grace")),
        "{refused:?}"
    );
    // A revoked one never, even within the grace.
    let fourth = fx.ca.renew(&caller(&third), &csr("portal", &[])).unwrap();
    fx.ca
        .change_status(
            OFFICER,
            &third.serial,
            Change::Revoke(Reason::Superseded),
            "",
        )
        .unwrap();
    assert!(fx.ca.renew(&caller(&third), &csr("portal", &[])).is_err());
    assert!(fx.ca.renew(&caller(&fourth), &csr("portal", &[])).is_ok());
}

#[test]
fn crls_of_every_ca_read_with_openssl_and_a_revoked_leaf_fails_crl_check() {
    let fx = setup();
    let portal = enrolled(&fx, "portal");
    let good = enrolled(&fx, "payroll");
    let made = fx.ca.refresh_crls().unwrap();
    assert_eq!(made.len(), 3, "a CRL for the root and each issuing CA");
    assert!(
        fx.ca.refresh_crls().unwrap().is_empty(),
        "fresh CRLs are kept"
    );
    fx.ca
        .change_status(
            OFFICER,
            &portal.serial,
            Change::Revoke(Reason::CessationOfOperation),
            "",
        )
        .unwrap();
    let dir = fx.dir.path();
    for authority in Authority::ALL {
        let crl = fx.ca.crl(authority).unwrap();
        let file = fx.write(&format!("{authority}.crl"), &crl.der);
        let text = openssl(
            dir,
            &["crl", "-inform", "DER", "-noout", "-text", "-in"],
            &[&file],
        );
        assert!(text.contains("X509v3 CRL Number"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    }
    let extranet = fx.ca.crl(Authority::Extranet).unwrap();
    let text = openssl(
        dir,
        &["crl", "-inform", "DER", "-noout", "-text", "-in"],
        &[&fx.write("x.crl", &extranet.der)],
    );
    assert!(text.contains("Cessation Of Operation"), "{text}");
    let crls = [Authority::Root, Authority::Extranet].map(|a| pem_crl(&fx.ca.crl(a).unwrap().der));
    let crl_file = fx.write("crls.pem", crls.concat());
    let verify = |leaf: &Issued| {
        let chain = fx.ca.chain();
        let root = fx.write("root.pem", &chain.root_pem);
        let issuing = fx.write("issuing.pem", &chain.extranet_pem);
        let leaf = fx.write("leaf.pem", &leaf.certificate_pem);
        openssl(
            dir,
            &["verify", "-crl_check_all", "-CRLfile"],
            &[
                &crl_file,
                Path::new("-CAfile"),
                &root,
                Path::new("-untrusted"),
                &issuing,
                &leaf,
            ],
        )
    };
    assert!(verify(&good).contains("leaf.pem: OK"), "{}", verify(&good));
    let revoked = verify(&portal);
    assert!(revoked.contains("certificate revoked"), "{revoked}");
}

fn pem_crl(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
        lines.join("\n")
    )
}

#[test]
fn revocations_survive_reopening_the_ca() {
    let fx = setup();
    let portal = enrolled(&fx, "portal");
    fx.ca
        .change_status(OFFICER, &portal.serial, Change::Suspend, "")
        .unwrap();
    let number = fx.ca.crl(Authority::Extranet).unwrap().number;
    let reopened = govtrust_ca::Ca::open(
        fx.store.clone(),
        fx.kms.clone(),
        std::sync::Arc::new(common::RecordingAudit),
        fx.clock.clone(),
    )
    .unwrap();
    let (reason, _) = reopened.revocation(&portal.serial).unwrap();
    assert_eq!(reason, Reason::CertificateHold);
    assert_eq!(reopened.crl(Authority::Extranet).unwrap().number, number);
    let record = reopened
        .change_status(OFFICER, &portal.serial, Change::Unsuspend, "")
        .unwrap();
    assert!(record.revocation.is_none());
    assert_eq!(
        reopened.crl(Authority::Extranet).unwrap().number,
        number + 1
    );
}

#[test]
fn a_certificate_whose_validity_ends_before_it_begins_is_not_valid_and_panics_nothing() {
    let fx = setup();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["x.example".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2030, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    struct NoCrls;
    impl govtrust_ca::CrlSource for NoCrls {
        fn fetch(&self, _: &str) -> Result<Vec<u8>, String> {
            Err("none".into())
        }
    }
    let question = govtrust_ca::Question {
        chain: &der,
        purpose: govtrust_ca::Purpose::Any,
        at: None,
        name: None,
    };
    let verdict = fx.ca.verify(&question, &NoCrls).unwrap();
    assert!(!verdict.valid());
    assert!(
        verdict
            .problems
            .iter()
            .any(|p| p.to_string().contains("ends before it begins")),
        "{verdict:?}"
    );
}
