//! Certificate profiles: one certificate of each, checked by openssl, and each refusal a clear
//! error that stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Fixture, San, csr, csr_with_key, openssl_csr, pem_der, setup};
use govtrust_ca::{
    Caller, DisplayText, Error, Issued, NationalId, Network, PersonRegistration, PersonToken,
    Serial, Settings, TokenTtl,
};
use govtrust_store::Store;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

const BASE: &str = "http://127.0.0.1:8080";

/// A CA whose certificates point to [`BASE`].
fn fixture() -> Fixture {
    let fx = setup();
    let settings = Settings {
        base_url: Some(BASE.to_owned()),
        ..Settings::default()
    };
    Fixture {
        ca: fx.ca.with_settings(settings),
        ..fx
    }
}

/// System `portal` (level 3, extranet, DNS portal.gov.example) enrolled; its caller.
fn portal(fx: &Fixture) -> Caller {
    let registered = fx.register("portal", 3, Network::Extranet, &["portal.gov.example"]);
    let issued = fx
        .ca
        .enroll(&registered.token, &csr("portal", &[]))
        .unwrap();
    Caller {
        spiffe_id: issued.spiffe_id,
        serial: issued.serial.clone(),
    }
}

/// What the certificate says: key usage and extended key usage (as openssl names them), the
/// names, the CRL distribution point and the authority information access.
fn contents(issued: &Issued) -> String {
    let der = pem_der(&issued.certificate_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let mut out = Vec::new();
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::KeyUsage(usage) => out.push(format!("ku: {usage}")),
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let mut names = Vec::new();
                if eku.server_auth {
                    names.push("serverAuth".to_owned());
                }
                if eku.client_auth {
                    names.push("clientAuth".to_owned());
                }
                if eku.email_protection {
                    names.push("emailProtection".to_owned());
                }
                names.extend(eku.other.iter().map(|oid| oid.to_id_string()));
                out.push(format!("eku: {}", names.join(", ")));
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                let names: Vec<String> = san.general_names.iter().map(|n| n.to_string()).collect();
                out.push(format!("san: {}", names.join(", ")));
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                out.push(format!("cdp: {points:?}"));
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for access in &aia.accessdescs {
                    if let GeneralName::URI(uri) = access.access_location {
                        out.push(format!("aia: {uri}"));
                    }
                }
            }
            ParsedExtension::SubjectKeyIdentifier(_) => out.push("ski".to_owned()),
            ParsedExtension::AuthorityKeyIdentifier(_) => out.push("aki".to_owned()),
            _ => {}
        }
    }
    out.join("\n")
}

fn days(issued: &Issued) -> u64 {
    issued
        .not_after
        .duration_since(issued.not_before)
        .unwrap()
        .as_secs()
        / 86_400
}

#[test]
fn a_system_gets_a_certificate_of_each_of_its_profiles() {
    let fx = fixture();
    let caller = portal(&fx);
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cases = [
        (
            "tls-server",
            csr("portal", &[San::Dns("portal.gov.example")]),
            "sslserver",
        ),
        ("tls-client", csr("portal", &[]), "sslclient"),
        ("document-signing", csr("portal", &[]), "smimesign"),
        ("encryption", csr_with_key(&p384, "portal", &[]), "any"),
    ];
    let mut seen = Vec::new();
    for (profile, request, purpose) in cases {
        let issued = fx
            .ca
            .issue_certificate(&caller, &request, profile, 0)
            .unwrap();
        fx.openssl_verify(&issued.certificate_pem, Network::Extranet, purpose);
        assert_eq!(days(&issued), 180, "{profile}: level 3 caps it");
        let record = fx.ca.certificate(&issued.serial).unwrap();
        assert_eq!(record.profile.as_deref(), Some(profile));
        assert_eq!(record.system, "portal");
        let text = contents(&issued);
        for expected in [
            "ski",
            "aki",
            "/crl/extranet.crl",
            "aia: http://127.0.0.1:8080/ocsp",
            "aia: http://127.0.0.1:8080/ca/extranet.crt",
        ] {
            assert!(text.contains(expected), "{profile}: {expected}\n{text}");
        }
        seen.push(format!("{profile}\n{text}"));
    }
    let lines = |profile: &str| {
        let text = seen
            .iter()
            .find(|t| t.starts_with(&format!("{profile}\n")))
            .unwrap();
        text.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let expected = [
        ("tls-server", "ku: Digital Signature"),
        ("tls-server", "eku: serverAuth"),
        (
            "tls-server",
            "san: URI(spiffe://gov.example/org/tax/sys/portal), DNSName(portal.gov.example)",
        ),
        ("tls-client", "eku: clientAuth"),
        (
            "tls-client",
            "san: URI(spiffe://gov.example/org/tax/sys/portal)",
        ),
        ("document-signing", "ku: Digital Signature, Non Repudiation"),
        (
            "document-signing",
            "eku: emailProtection, 1.3.6.1.5.5.7.3.36",
        ),
        ("encryption", "ku: Key Agreement"),
        ("encryption", "eku: emailProtection"),
    ];
    for (profile, line) in expected {
        assert!(
            lines(profile).iter().any(|l| l == line),
            "{profile}: {line}\n{seen:?}"
        );
    }
    let events = fx.ca_events().join("\n");
    assert_eq!(events.matches("ca.issue|").count(), 4, "{events}");
    assert!(events.contains("profile=document-signing"), "{events}");
}

#[test]
fn enrollment_issues_the_system_identity_profile_at_the_levels_lifetime() {
    let fx = fixture();
    let registered = fx.register("ledger", 4, Network::Intranet, &["ledger.gov.example"]);
    let request = csr("ledger", &[San::Dns("ledger.gov.example")]);
    let issued = fx.ca.enroll(&registered.token, &request).unwrap();
    assert_eq!(days(&issued), 90);
    let text = contents(&issued);
    assert!(text.contains("eku: serverAuth, clientAuth"), "{text}");
    assert!(text.contains("/crl/intranet.crl"), "{text}");
    let record = fx.ca.certificate(&issued.serial).unwrap();
    assert_eq!(record.profile.as_deref(), Some("system-identity"));
}

/// Asserts `result` is a refusal by `profile`'s `rule` and that nothing was stored.
fn refused(
    fx: &Fixture,
    before: usize,
    result: Result<Issued, Error>,
    profile: &str,
    rule: &str,
) -> String {
    let message = match result {
        Err(Error::ProfileRefused {
            profile: p,
            rule: r,
            reason,
        }) if p == profile && r == rule => reason,
        other => panic!("expected a refusal by {profile} ({rule}), got {other:?}"),
    };
    assert_eq!(fx.cert_count(), before, "nothing stored");
    message
}

#[test]
fn requests_outside_the_profile_are_refused_naming_the_rule_and_store_nothing() {
    let fx = fixture();
    let caller = portal(&fx);
    let before = fx.cert_count();
    let events = fx.ca_events().len();
    let dns = [San::Dns("portal.gov.example")];

    let result = fx
        .ca
        .issue_certificate(&caller, &csr("portal", &dns), "tls-client", 0);
    refused(&fx, before, result, "tls-client", "names.dns");
    let result = fx
        .ca
        .issue_certificate(&caller, &csr("portal", &[]), "tls-server", 0);
    refused(&fx, before, result, "tls-server", "names.dns_required");
    let result = fx
        .ca
        .issue_certificate(&caller, &csr("portal", &dns), "tls-server", 200);
    let reason = refused(&fx, before, result, "tls-server", "max_validity_days");
    assert!(reason.contains("protection level 3's 180 days"), "{reason}");
    let result = fx
        .ca
        .issue_certificate(&caller, &csr("portal", &dns), "tls-server", 800);
    let reason = refused(&fx, before, result, "tls-server", "max_validity_days");
    assert!(reason.contains("the profile's 397 days"), "{reason}");
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let request = csr_with_key(&p384, "portal", &[]);
    let result = fx
        .ca
        .issue_certificate(&caller, &request, "document-signing", 0);
    let reason = refused(&fx, before, result, "document-signing", "keys.algorithms");
    assert!(
        reason.contains("ecdsa-p384 not allowed (allowed: ecdsa-p256, ed25519, rsa)"),
        "{reason}"
    );
    let rsa = openssl_csr(fx.dir.path(), "rsa:2048", "portal");
    let result = fx
        .ca
        .issue_certificate(&caller, &rsa, "document-signing", 0);
    refused(&fx, before, result, "document-signing", "keys.rsa_min_bits");
    let result = fx
        .ca
        .issue_certificate(&caller, &csr("portal", &[]), "person", 0);
    refused(&fx, before, result, "person", "holders");

    let foreign = [San::Dns("payroll.gov.example")];
    let result = fx
        .ca
        .issue_certificate(&caller, &csr("portal", &foreign), "tls-server", 0);
    assert!(
        matches!(result, Err(Error::NameNotAllowed { .. })),
        "{result:?}"
    );
    let result = fx
        .ca
        .issue_certificate(&caller, &csr("portal", &[]), "root-ca", 0);
    assert!(
        matches!(&result, Err(Error::InvalidArgument { field: "profile", reason }) if reason.contains("tls-server")),
        "{result:?}"
    );
    assert_eq!(fx.cert_count(), before);
    assert_eq!(fx.ca_events().len(), events, "no event for a refusal");
}

#[test]
fn a_certificate_of_an_earlier_enrollment_or_a_stranger_gets_nothing() {
    let fx = fixture();
    let stranger = Caller {
        spiffe_id: "spiffe://gov.example/org/tax/sys/nobody".to_owned(),
        serial: Serial::parse("01ab").unwrap(),
    };
    let result = fx
        .ca
        .issue_certificate(&stranger, &csr("nobody", &[]), "tls-client", 0);
    assert!(
        matches!(result, Err(Error::CallerNotCurrent { .. })),
        "{result:?}"
    );
}

fn registration(id: &str, national_id: &str) -> PersonRegistration {
    PersonRegistration {
        id: id.try_into().unwrap(),
        name: DisplayText::parse("name", "张伟").unwrap(),
        department: DisplayText::parse("department", "Finance Bureau").unwrap(),
        national_id: NationalId::parse(national_id).unwrap(),
        network: Network::Intranet,
        token_ttl: TokenTtl::try_from(Duration::from_secs(3600)).unwrap(),
    }
}

const SECURITY: &str = "spiffe://gov.example/person/security-admin";
const NATIONAL_ID: &str = "11010519491231002X";

fn register_person(fx: &Fixture) -> PersonToken {
    fx.ca
        .register_person(SECURITY, registration("zhang-wei", NATIONAL_ID))
        .unwrap()
}

#[test]
fn a_person_enrolls_with_a_token_for_each_person_profile() {
    let fx = fixture();
    let mut token = register_person(&fx);
    assert_eq!(
        token.person.spiffe_id,
        "spiffe://gov.example/person/zhang-wei"
    );
    let spiffe = token.person.spiffe_id.clone();
    for (profile, purpose) in [
        ("person", "sslclient"),
        ("document-signing", "smimesign"),
        ("encryption", "any"),
    ] {
        let request = csr("zhang-wei", &[San::Uri(&spiffe)]);
        let issued = fx
            .ca
            .enroll_person(&token.token, &request, profile, 0)
            .unwrap();
        fx.openssl_verify(&issued.certificate_pem, Network::Intranet, purpose);
        let text = contents(&issued);
        assert!(text.contains("/crl/intranet.crl"), "{text}");
        assert!(text.contains(&format!("san: URI({spiffe})")), "{text}");
        let der = pem_der(&issued.certificate_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.subject().to_string(), "CN=张伟, O=Finance Bureau");
        // The token is used up; the next profile needs a new one.
        let again = fx.ca.enroll_person(&token.token, &request, profile, 0);
        assert!(matches!(again, Err(Error::TokenUsed { .. })), "{again:?}");
        token = fx
            .ca
            .issue_person_token(
                SECURITY,
                "zhang-wei",
                TokenTtl::try_from(Duration::from_secs(60)).unwrap(),
            )
            .unwrap();
    }
    // A person holds no administrator role.
    assert_eq!(fx.ca.role(&spiffe).unwrap(), None);
    let events = fx.ca_events().join("\n");
    assert!(
        events.contains("ca.person.register|spiffe://gov.example/person/security-admin|zhang-wei|"),
        "{events}"
    );
    assert_eq!(events.matches("ca.person.enroll|").count(), 3, "{events}");
}

#[test]
fn the_national_id_is_stored_only_as_a_keyed_digest_and_registers_once() {
    let fx = fixture();
    register_person(&fx);
    for (key, value) in fx.store.scan(b"", None, usize::MAX).unwrap() {
        let text = String::from_utf8_lossy(&value);
        assert!(
            !text.contains(NATIONAL_ID),
            "{}",
            String::from_utf8_lossy(&key)
        );
        assert!(!String::from_utf8_lossy(&key).contains(NATIONAL_ID));
    }
    assert_eq!(fx.keys("ca/nationalid/").len(), 1);
    // The same national ID, however written, is the same person.
    let again = fx.ca.register_person(
        SECURITY,
        registration("zhang-wei-2", &NATIONAL_ID.to_lowercase()),
    );
    match again {
        Err(Error::PersonExists { reason, .. }) => {
            assert!(
                reason.contains("national ID") && reason.contains("zhang-wei"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let taken = fx
        .ca
        .register_person(SECURITY, registration("zhang-wei", "110105"));
    assert!(
        matches!(taken, Err(Error::PersonExists { .. })),
        "{taken:?}"
    );
    let role = fx
        .ca
        .register_person(SECURITY, registration("audit-admin", "110106"));
    assert!(
        matches!(role, Err(Error::InvalidArgument { field: "id", .. })),
        "{role:?}"
    );
    assert!(format!("{:?}", NationalId::parse(NATIONAL_ID).unwrap()).contains("redacted"));
}

#[test]
fn persons_and_systems_do_not_share_a_name() {
    let fx = fixture();
    fx.register("portal", 3, Network::Extranet, &[]);
    let clash = fx
        .ca
        .register_person(SECURITY, registration("portal", "110107"));
    assert!(
        matches!(&clash, Err(Error::PersonExists { reason, .. }) if reason.contains("system")),
        "{clash:?}"
    );
    register_person(&fx);
    let registration = govtrust_ca::Registration {
        name: "zhang-wei".try_into().unwrap(),
        org_id: "tax".try_into().unwrap(),
        protection_level: 1.try_into().unwrap(),
        network: Network::Extranet,
        dns_names: Vec::new(),
        token_ttl: TokenTtl::try_from(Duration::from_secs(60)).unwrap(),
    };
    let clash = fx
        .ca
        .register_system("spiffe://gov.example/person/system-admin", registration);
    assert!(
        matches!(clash, Err(Error::InvalidArgument { field: "name", .. })),
        "{clash:?}"
    );
}

#[test]
fn a_persons_request_outside_its_profile_stores_nothing() {
    let fx = fixture();
    let token = register_person(&fx);
    let before = fx.cert_count();
    let spiffe = token.person.spiffe_id.clone();
    let dns = csr(
        "zhang-wei",
        &[San::Uri(&spiffe), San::Dns("zhang.gov.example")],
    );
    let result = fx.ca.enroll_person(&token.token, &dns, "person", 0);
    refused(&fx, before, result, "person", "names.dns");
    let result = fx
        .ca
        .enroll_person(&token.token, &csr("zhang-wei", &[]), "person", 366);
    refused(&fx, before, result, "person", "max_validity_days");
    let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let request = csr_with_key(&ed25519, "zhang-wei", &[]);
    let result = fx.ca.enroll_person(&token.token, &request, "person", 0);
    refused(&fx, before, result, "person", "keys.algorithms");
    let result = fx
        .ca
        .enroll_person(&token.token, &csr("zhang-wei", &[]), "tls-server", 0);
    refused(&fx, before, result, "tls-server", "holders");
    let other = csr("someone-else", &[]);
    let result = fx.ca.enroll_person(&token.token, &other, "person", 0);
    assert!(
        matches!(result, Err(Error::InvalidCsr { .. })),
        "{result:?}"
    );
    // The token still works after every refusal.
    let ok = fx
        .ca
        .enroll_person(&token.token, &csr("zhang-wei", &[]), "person", 30);
    assert_eq!(days(&ok.unwrap()), 30);
}
