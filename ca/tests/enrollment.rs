//! Enrollment with a one-time token: issued certificates and every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{
    Fixture, San, csr, csr_with_key, openssl_csr, pem_blocks, pem_der, setup, webpki_verify,
};
use govtrust_ca::{Error, Issued, Network, Serial};
use govtrust_kms::Clock;
use rcgen::KeyPair;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

fn unix(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Enrolls `portal` (level 2, extranet, DNS portal.gov.example and www.gov.example).
fn enroll_portal(fx: &Fixture, sans: &[San<'_>]) -> Issued {
    let registered = fx.register(
        "portal",
        2,
        Network::Extranet,
        &["portal.gov.example", "www.gov.example"],
    );
    fx.ca
        .enroll(&registered.token, &csr("portal", sans))
        .unwrap()
}

#[test]
fn enrolled_certificate_has_the_system_identity() {
    let fx = setup();
    let spiffe = fx.spiffe("portal");
    let issued = enroll_portal(&fx, &[San::Dns("Portal.gov.example"), San::Uri(&spiffe)]);
    assert_eq!(issued.spiffe_id, spiffe);
    let der = pem_der(&issued.certificate_pem);
    let cert = parse(&der);
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    let org = cert
        .subject()
        .iter_organization()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!((cn, org), ("portal", "tax"));
    let names = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(
        names,
        &vec![
            GeneralName::URI(&spiffe),
            GeneralName::DNSName("portal.gov.example")
        ]
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_encipherment() && !ku.key_cert_sign());
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    assert!(
        cert.iter_extensions()
            .any(|e| e.oid.to_id_string() == "2.5.29.14"),
        "SKI"
    );
    assert!(
        cert.iter_extensions()
            .any(|e| e.oid.to_id_string() == "2.5.29.35"),
        "AKI"
    );
    assert_eq!(cert.issuer(), parse(&fx.ca.chain().extranet_der).subject());
}

#[test]
fn serial_is_128_random_bits_stored_as_lowercase_hex() {
    let fx = setup();
    let issued = enroll_portal(&fx, &[]);
    let der = pem_der(&issued.certificate_pem);
    let cert = parse(&der);
    let serial = cert.raw_serial();
    assert_eq!(
        serial.len(),
        17,
        "a fixed positive first byte, then 128 random bits"
    );
    assert_eq!(serial[0], 0x01);
    assert_eq!(issued.serial.to_string(), hex::encode(serial));
    let upper = Serial::parse(&issued.serial.to_string().to_uppercase()).unwrap();
    let record = fx.ca.certificate(&upper).unwrap();
    assert_eq!(record.der, der);
    assert_eq!(
        (record.system.as_str(), record.issuer.name(), record.network),
        ("portal", "extranet", Network::Extranet)
    );
    assert!(record.revocation.is_none() && record.superseded.is_none());
    assert_eq!(fx.index_count("portal"), 1);
}

#[test]
fn validity_follows_the_protection_level() {
    let fx = setup();
    for (level, days) in [(1, 397), (2, 365), (3, 180), (4, 90)] {
        let name = format!("sys-level{level}");
        let registered = fx.register(&name, level, Network::Intranet, &[]);
        let issued = fx.ca.enroll(&registered.token, &csr(&name, &[])).unwrap();
        let der = pem_der(&issued.certificate_pem);
        let validity = parse(&der).validity().clone();
        let now = unix(fx.clock.now());
        assert_eq!(validity.not_before.timestamp(), now - 60, "level {level}");
        assert_eq!(
            validity.not_after.timestamp() - validity.not_before.timestamp(),
            days * 86_400,
            "level {level}"
        );
        assert_eq!(
            (unix(issued.not_before), unix(issued.not_after)),
            (
                validity.not_before.timestamp(),
                validity.not_after.timestamp()
            )
        );
    }
}

#[test]
fn enrolled_certificate_verifies_with_openssl_and_webpki() {
    let fx = setup();
    let issued = enroll_portal(&fx, &[San::Dns("www.gov.example")]);
    let chain = pem_blocks(&issued.chain_pem);
    assert_eq!(
        chain,
        vec![
            fx.ca.chain().extranet_der.clone(),
            fx.ca.chain().root_der.clone()
        ]
    );
    fx.openssl_verify(&issued.certificate_pem, Network::Extranet, "sslclient");
    fx.openssl_verify(&issued.certificate_pem, Network::Extranet, "sslserver");
    let der = pem_der(&issued.certificate_pem);
    webpki_verify(&fx.ca, &der, Network::Extranet, false);
    webpki_verify(&fx.ca, &der, Network::Extranet, true);
}

#[test]
fn enrollment_is_audited_and_marks_the_token_used() {
    let fx = setup();
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    let issued = fx
        .ca
        .enroll(&registered.token, &csr("portal", &[]))
        .unwrap();
    let events = fx.ca_events();
    let enroll = events.iter().find(|e| e.starts_with("ca.enroll|")).unwrap();
    assert!(
        enroll.starts_with(&format!(
            "ca.enroll|{}|{}|",
            fx.spiffe("portal"),
            issued.serial
        )),
        "{enroll}"
    );
    assert!(!events.iter().any(|e| e.contains(registered.token.as_str())));
    assert!(!fx.tokens_unused());
}

#[test]
fn other_key_types_and_pem_requests_are_accepted() {
    let fx = setup();
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let ed25519 = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    for (name, key) in [("sys-p384", p384), ("sys-ed25519", ed25519)] {
        let registered = fx.register(name, 3, Network::Intranet, &[]);
        let der = csr_with_key(&key, name, &[]);
        let issued = fx.ca.enroll(&registered.token, &der).unwrap();
        let cert_der = pem_der(&issued.certificate_pem);
        assert_eq!(
            parse(&cert_der)
                .public_key()
                .subject_public_key
                .data
                .as_ref(),
            key.public_key_raw()
        );
        fx.openssl_verify(&issued.certificate_pem, Network::Intranet, "sslclient");
    }
    let registered = fx.register("sys-pem", 3, Network::Intranet, &[]);
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sys-pem");
    let pem = params
        .serialize_request(&KeyPair::generate().unwrap())
        .unwrap()
        .pem()
        .unwrap();
    let issued = fx.ca.enroll(&registered.token, pem.as_bytes());
    assert!(issued.is_ok(), "{issued:?}");
}

#[test]
fn rsa_2048_requests_from_openssl_get_key_encipherment() {
    let fx = setup();
    let registered = fx.register("legacy", 1, Network::Intranet, &[]);
    let der = openssl_csr(fx.dir.path(), "rsa:2048", "legacy");
    let issued = fx.ca.enroll(&registered.token, &der).unwrap();
    let cert_der = pem_der(&issued.certificate_pem);
    let cert = parse(&cert_der);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment());
    fx.openssl_verify(&issued.certificate_pem, Network::Intranet, "sslserver");
}

/// Registers `portal`, enrolls with `request` and asserts the error matched and nothing was
/// stored: no new certificate, no index entry, the token still unused, no enroll event.
fn refused(fx: &Fixture, request: &[u8]) -> Error {
    let registered = fx.register("portal", 2, Network::Extranet, &["portal.gov.example"]);
    let before = fx.cert_count();
    let error = fx.ca.enroll(&registered.token, request).unwrap_err();
    assert_eq!(fx.cert_count(), before);
    assert_eq!(fx.index_count("portal"), 0);
    assert!(fx.tokens_unused());
    assert!(!fx.ca_events().iter().any(|e| e.starts_with("ca.enroll")));
    error
}

#[test]
fn garbage_is_an_invalid_csr() {
    let fx = setup();
    let error = refused(&fx, b"\x30\x82garbage bytes");
    assert!(matches!(error, Error::InvalidCsr { .. }), "{error}");
}

#[test]
fn wrong_common_name_is_not_allowed() {
    let fx = setup();
    let error = refused(&fx, &csr("payroll", &[]));
    assert!(
        matches!(&error, Error::NameNotAllowed { name, system } if name == "payroll" && system == "portal"),
        "{error}"
    );
}

#[test]
fn unregistered_dns_name_is_not_allowed() {
    let fx = setup();
    let error = refused(
        &fx,
        &csr(
            "portal",
            &[San::Dns("portal.gov.example"), San::Dns("evil.gov.example")],
        ),
    );
    assert!(
        matches!(&error, Error::NameNotAllowed { name, .. } if name == "evil.gov.example"),
        "{error}"
    );
}

#[test]
fn foreign_uri_is_not_allowed() {
    let fx = setup();
    let foreign = "spiffe://gov.example/org/finance/sys/portal";
    let error = refused(&fx, &csr("portal", &[San::Uri(foreign)]));
    assert!(
        matches!(&error, Error::NameNotAllowed { name, .. } if name == foreign),
        "{error}"
    );
}

#[test]
fn ip_and_email_names_are_not_allowed() {
    let fx = setup();
    let error = refused(&fx, &csr("portal", &[San::Ip("10.1.2.3")]));
    assert!(matches!(error, Error::NameNotAllowed { .. }), "{error}");
    let fx = setup();
    let error = refused(&fx, &csr("portal", &[San::Email("ops@gov.example")]));
    assert!(matches!(error, Error::NameNotAllowed { .. }), "{error}");
}

#[test]
fn rsa_1024_is_not_allowed() {
    let fx = setup();
    let error = refused(&fx, &openssl_csr(fx.dir.path(), "rsa:1024", "portal"));
    assert!(
        matches!(&error, Error::KeyNotAllowed { reason } if reason.contains("RSA-1024")),
        "{error}"
    );
}

#[test]
fn other_curves_are_not_allowed() {
    let fx = setup();
    let error = refused(&fx, &secp256k1_csr(&fx));
    assert!(
        matches!(&error, Error::KeyNotAllowed { reason } if reason.contains("1.3.132.0.10")),
        "{error}"
    );
}

/// A CSR for `portal` on secp256k1, made by openssl.
fn secp256k1_csr(fx: &Fixture) -> Vec<u8> {
    let params = fx.write(
        "k1.pem",
        common::openssl(fx.dir.path(), &["ecparam", "-name", "secp256k1"], &[]),
    );
    openssl_csr(fx.dir.path(), &format!("ec:{}", params.display()), "portal")
}

#[test]
fn broken_signature_is_an_invalid_csr() {
    let fx = setup();
    let mut der = openssl_csr(fx.dir.path(), "rsa:2048", "portal");
    // The signature BIT STRING is the last element of the request: flip its last byte.
    *der.last_mut().unwrap() ^= 0x01;
    let error = refused(&fx, &der);
    assert!(
        matches!(&error, Error::InvalidCsr { reason } if reason.contains("signature does not verify")),
        "{error}"
    );
}

#[test]
fn unknown_and_malformed_tokens_are_unknown() {
    let fx = setup();
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    let mut forged = registered.token.to_string();
    forged.replace_range(10..11, if &forged[10..11] == "A" { "B" } else { "A" });
    for token in [forged.as_str(), "", "gt1_", "not-a-token"] {
        let result = fx.ca.enroll(token, &csr("portal", &[]));
        assert!(
            matches!(result, Err(Error::TokenUnknown)),
            "{token}: {result:?}"
        );
    }
    assert!(fx.tokens_unused());
    assert_eq!(fx.index_count("portal"), 0);
}

#[test]
fn used_token_is_refused_and_stores_nothing() {
    let fx = setup();
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    fx.ca
        .enroll(&registered.token, &csr("portal", &[]))
        .unwrap();
    let enrolled_at = fx.clock.now();
    fx.clock.advance(Duration::from_secs(5));
    let count = fx.cert_count();
    let result = fx.ca.enroll(&registered.token, &csr("portal", &[]));
    let Err(Error::TokenUsed { at }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(unix(at), unix(enrolled_at));
    assert_eq!(fx.cert_count(), count);
    assert_eq!(fx.index_count("portal"), 1);
}

#[test]
fn expired_token_is_refused_and_stores_nothing() {
    let fx = setup();
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    fx.clock.advance(Duration::from_secs(3600));
    let result = fx.ca.enroll(&registered.token, &csr("portal", &[]));
    let Err(Error::TokenExpired { at, system }) = &result else {
        panic!("{result:?}")
    };
    assert_eq!(*at, registered.token_expires_at);
    assert_eq!(system, "portal");
    let message = result.unwrap_err().to_string();
    assert!(message.contains('T'), "RFC 3339 date in the message");
    assert!(
        message.contains("ask a system administrator")
            && message.contains("`govtrust system token --name <system>`"),
        "{message}"
    );
    assert!(!message.contains("portal"), "names the system: {message}");
    assert!(fx.tokens_unused());
    assert_eq!(fx.index_count("portal"), 0);
}

#[test]
fn concurrent_enrollments_with_one_token_give_one_certificate() {
    let fx = Arc::new(setup());
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    let token = Arc::new(registered.token.to_string());
    let requests = 8;
    let barrier = Arc::new(Barrier::new(requests));
    let threads: Vec<_> = (0..requests)
        .map(|_| {
            let (fx, token, barrier) = (fx.clone(), token.clone(), barrier.clone());
            let request = csr("portal", &[]);
            std::thread::spawn(move || {
                barrier.wait();
                fx.ca.enroll(&token, &request)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(Error::TokenUsed { .. }))),
        "{results:?}"
    );
    assert_eq!(fx.index_count("portal"), 1);
    assert_eq!(
        fx.ca_events()
            .iter()
            .filter(|e| e.starts_with("ca.enroll"))
            .count(),
        1
    );
}
