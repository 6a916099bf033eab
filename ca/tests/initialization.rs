//! Initialization: the hierarchy, the server and administrator credentials, reopening.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{
    RecordingAudit, San, TRUST_DOMAIN, csr, init_params, pem_blocks, pem_der, setup, webpki_verify,
};
use govtrust_ca::{Ca, Error, Network, Role};
use govtrust_kms::Kms;
use govtrust_store::Store;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const YEAR_SECS: i64 = 365 * 24 * 60 * 60;

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

fn path_len(cert: &X509Certificate<'_>) -> Option<u32> {
    let constraints = cert.basic_constraints().unwrap().unwrap().value;
    assert!(constraints.ca);
    constraints.path_len_constraint
}

fn lifetime_years(cert: &X509Certificate<'_>) -> i64 {
    (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / YEAR_SECS
}

#[test]
fn hierarchy_has_the_documented_shape() {
    let fx = setup();
    let chain = fx.ca.chain();
    let root = parse(&chain.root_der);
    assert_eq!(root.subject(), root.issuer());
    assert_eq!(path_len(&root), Some(1));
    assert_eq!(lifetime_years(&root), 20);
    assert_eq!(
        root.public_key()
            .algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap()
            .to_id_string(),
        "1.3.132.0.34"
    );
    for der in [&chain.extranet_der, &chain.intranet_der] {
        let issuing = parse(der);
        assert_eq!(issuing.issuer(), root.subject());
        assert_eq!(path_len(&issuing), Some(0));
        assert_eq!(lifetime_years(&issuing), 10);
        assert!(issuing.verify_signature(Some(root.public_key())).is_ok());
        assert!(issuing.key_usage().unwrap().unwrap().value.key_cert_sign());
    }
    assert!(root.verify_signature(None).is_ok());
    assert_eq!(fx.ca.trust_domain(), TRUST_DOMAIN);
}

#[test]
fn server_credential_verifies_with_openssl_and_webpki() {
    let fx = setup();
    let server = &fx.artifacts.server;
    let blocks = pem_blocks(&server.certificate_pem);
    assert_eq!(blocks.len(), 2, "leaf then issuing CA");
    assert_eq!(blocks[1], fx.ca.chain().intranet_der);
    fx.openssl_verify(&server.certificate_pem, Network::Intranet, "sslserver");
    webpki_verify(&fx.ca, &blocks[0], Network::Intranet, true);
    let cert = parse(&blocks[0]);
    let names = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .clone();
    assert!(names.contains(&GeneralName::DNSName("govtrust.gov.example")));
    assert!(names.contains(&GeneralName::IPAddress(&[10, 0, 0, 1])));
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let key = rcgen::KeyPair::from_pem(server.private_key_pem.as_ref().unwrap()).unwrap();
    assert_eq!(
        key.public_key_raw(),
        cert.public_key().subject_public_key.data.as_ref()
    );
    assert_eq!(
        fx.ca.certificate(&server.serial).unwrap().system,
        "govtrust"
    );
}

#[test]
fn admin_credentials_are_person_certificates_with_roles() {
    let fx = setup();
    assert_eq!(fx.artifacts.admins.len(), 3);
    for (role, credential) in &fx.artifacts.admins {
        let spiffe_id = format!("spiffe://{TRUST_DOMAIN}/person/{role}");
        assert_eq!(credential.spiffe_id, spiffe_id);
        assert_eq!(fx.ca.role(&spiffe_id).unwrap(), Some(*role));
        let der = pem_der(&credential.certificate_pem);
        let cert = parse(&der);
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, role.to_string());
        let names = &cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        assert_eq!(names, &vec![GeneralName::URI(&spiffe_id)]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let record = fx.ca.certificate(&credential.serial).unwrap();
        assert_eq!(
            (record.system.as_str(), record.issuer.name()),
            (role.to_string().as_str(), "intranet")
        );
    }
    let (_, admin) = &fx.artifacts.admins[0];
    fx.openssl_verify(&admin.certificate_pem, Network::Intranet, "sslclient");
    webpki_verify(
        &fx.ca,
        &pem_der(&admin.certificate_pem),
        Network::Intranet,
        false,
    );
    let roles: Vec<Role> = fx.artifacts.admins.iter().map(|(role, _)| *role).collect();
    assert_eq!(roles, Role::ALL);
}

#[test]
fn role_is_none_for_systems_strangers_and_other_domains() {
    let fx = setup();
    assert_eq!(
        fx.ca.role("spiffe://gov.example/person/nobody").unwrap(),
        None
    );
    assert_eq!(
        fx.ca
            .role("spiffe://other.example/person/system-admin")
            .unwrap(),
        None
    );
    assert_eq!(
        fx.ca
            .role("spiffe://gov.example/org/tax/sys/system-admin")
            .unwrap(),
        None
    );
    assert_eq!(fx.ca.role("not a uri").unwrap(), None);
}

#[test]
fn initialization_records_and_audits_everything_once() {
    let fx = setup();
    assert_eq!(fx.cert_count(), 4, "server + three administrators");
    let events = fx.ca_events();
    assert_eq!(events.len(), 1);
    assert!(
        events[0].starts_with("ca.init|govtrust|gov.example|root_key=k-"),
        "{}",
        events[0]
    );
    assert!(!events[0].contains("PRIVATE KEY"));
}

#[test]
fn second_initialization_is_refused() {
    let fx = setup();
    let again = Ca::initialize(
        fx.store.clone(),
        fx.kms.clone(),
        Arc::new(RecordingAudit),
        fx.clock.clone(),
        &init_params(),
    );
    assert!(matches!(again, Err(Error::AlreadyInitialized)), "{again:?}");
}

#[test]
fn invalid_init_params_name_their_field() {
    let (store, kms, clock) = common::kms();
    let mut params = init_params();
    params.trust_domain = "Gov Example".to_owned();
    let result = Ca::initialize(
        store.clone(),
        kms.clone(),
        Arc::new(RecordingAudit),
        clock.clone(),
        &params,
    );
    assert!(
        matches!(
            result,
            Err(Error::InvalidArgument {
                field: "trust_domain",
                ..
            })
        ),
        "{result:?}"
    );
    let mut params = init_params();
    params.server_dns_names = vec!["bad_name".to_owned()];
    let result = Ca::initialize(store.clone(), kms, Arc::new(RecordingAudit), clock, &params);
    assert!(
        matches!(
            result,
            Err(Error::InvalidArgument {
                field: "server_dns_names",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(
        store
            .get(b"ca/hierarchy")
            .map(|v| v.is_none())
            .unwrap_or(false)
    );
}

#[test]
fn initialization_needs_an_unsealed_kms() {
    let (store, _, clock) = common::kms();
    let sealed =
        Arc::new(Kms::open(store.clone(), Arc::new(RecordingAudit), clock.clone()).unwrap());
    let result = Ca::initialize(
        store,
        sealed,
        Arc::new(RecordingAudit),
        clock,
        &init_params(),
    );
    assert!(
        matches!(result, Err(Error::Kms(govtrust_kms::Error::Sealed))),
        "{result:?}"
    );
}

#[test]
fn open_before_initialization_fails() {
    let (store, kms, clock) = common::kms();
    let result = Ca::open(store, kms, Arc::new(RecordingAudit), clock);
    assert!(matches!(result, Err(Error::NotInitialized)), "{result:?}");
}

#[test]
fn open_works_while_sealed_and_issuing_waits_for_unseal() {
    let fx = setup();
    let sealed =
        Arc::new(Kms::open(fx.store.clone(), Arc::new(RecordingAudit), fx.clock.clone()).unwrap());
    let ca = Ca::open(
        fx.store.clone(),
        sealed,
        Arc::new(RecordingAudit),
        fx.clock.clone(),
    )
    .unwrap();
    assert_eq!(ca.chain(), fx.ca.chain());
    assert_eq!(ca.trust_domain(), TRUST_DOMAIN);
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    let result = ca.enroll(&registered.token, &csr("portal", &[]));
    assert!(
        matches!(result, Err(Error::Kms(govtrust_kms::Error::Sealed))),
        "{result:?}"
    );
    assert_eq!(fx.cert_count(), 4);
    assert!(fx.tokens_unused());
    let reopened = Ca::open(
        fx.store.clone(),
        fx.kms.clone(),
        Arc::new(RecordingAudit),
        fx.clock.clone(),
    )
    .unwrap();
    let issued = reopened
        .enroll(
            &registered.token,
            &csr("portal", &[San::Uri(&fx.spiffe("portal"))]),
        )
        .unwrap();
    fx.openssl_verify(&issued.certificate_pem, Network::Extranet, "sslclient");
}

#[test]
fn credential_debug_redacts_the_key() {
    let fx = setup();
    let printed = format!("{:?}", fx.artifacts);
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
    assert!(printed.contains("<redacted>"));
}

#[test]
fn ca_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Ca>();
}

/// Initializes a CA on a fresh kms with `csrs`.
fn initialize_with(
    csrs: Vec<(Role, Vec<u8>)>,
) -> (
    Arc<govtrust_store::MemoryStore>,
    Result<(Ca, govtrust_ca::InitArtifacts), Error>,
) {
    let (store, kms, clock) = common::kms();
    let params = govtrust_ca::InitParams {
        admin_csrs: csrs,
        ..init_params()
    };
    let result = Ca::initialize(store.clone(), kms, Arc::new(RecordingAudit), clock, &params);
    (store, result)
}

#[test]
fn an_administrator_csr_is_certified_without_its_key_coming_here() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let spiffe_id = format!("spiffe://{TRUST_DOMAIN}/person/security-admin");
    let request = common::csr_with_key(&key, "security-admin", &[San::Uri(&spiffe_id)]);
    let (store, result) = initialize_with(vec![(Role::SecurityAdministrator, request)]);
    let (ca, artifacts) = result.unwrap();
    for (role, credential) in &artifacts.admins {
        let der = pem_der(&credential.certificate_pem);
        let cert = parse(&der);
        if *role == Role::SecurityAdministrator {
            assert!(credential.private_key_pem.is_none());
            assert_eq!(
                cert.public_key().subject_public_key.data.as_ref(),
                key.public_key_raw()
            );
            assert_eq!(credential.spiffe_id, spiffe_id);
            assert_eq!(
                ca.role(&spiffe_id).unwrap(),
                Some(Role::SecurityAdministrator)
            );
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth && !eku.server_auth);
        } else {
            let generated = credential.private_key_pem.as_ref().unwrap();
            assert!(generated.contains("PRIVATE KEY"));
        }
    }
    let events = store
        .scan(common::AUDIT_PREFIX.as_bytes(), None, usize::MAX)
        .unwrap();
    let init = events
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .find(|line| line.starts_with("ca.init|"))
        .unwrap();
    assert!(init.contains("security-admin_key=csr"), "{init}");
    assert!(init.contains("audit-admin_key=generated"), "{init}");
}

#[test]
fn a_bad_administrator_csr_fails_the_whole_initialization() {
    let mut tampered = csr("audit-admin", &[]);
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let dir = tempfile::tempdir().unwrap();
    let weak = common::openssl_csr(dir.path(), "rsa:1024", "audit-admin");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tampered, "does not prove possession"),
        (weak, "RSA-1024 keys are not allowed"),
        (csr("system-admin", &[]), "may name only audit-admin"),
        (
            csr(
                "audit-admin",
                &[San::Uri("spiffe://gov.example/person/security-admin")],
            ),
            "may name only audit-admin (common name) and spiffe://gov.example/person/audit-admin",
        ),
        (
            csr("audit-admin", &[San::Dns("ca.gov.example")]),
            "may name only",
        ),
        (b"not a request".to_vec(), "not a PKCS#10 request"),
    ];
    for (request, expected) in cases {
        let (store, result) = initialize_with(vec![(Role::AuditAdministrator, request)]);
        let Err(error) = result else {
            panic!("a bad CSR was certified ({expected})");
        };
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(matches!(error, Error::AdminCsr { ref role, .. } if role == "audit-admin"));
        assert!(chain.contains(expected), "{chain}");
        assert!(store.get(b"ca/hierarchy").unwrap().is_none(), "{chain}");
    }
    let twice = vec![
        (Role::SystemAdministrator, csr("system-admin", &[])),
        (Role::SystemAdministrator, csr("system-admin", &[])),
    ];
    let (_, result) = initialize_with(twice);
    assert!(matches!(
        result,
        Err(Error::InvalidArgument {
            field: "admin_csrs",
            ..
        })
    ));
}

#[test]
fn a_deployment_from_before_the_national_suite_gets_its_national_hierarchy_once() {
    let fx = setup();
    let national = fx.ca.national_chain().unwrap().clone();
    // As a deployment initialized before the national suite: no national hierarchy stored.
    let mut batch = govtrust_store::Batch::new();
    batch.delete(b"ca/hierarchy-national".to_vec());
    fx.store.commit(batch).unwrap();
    let open = || {
        Ca::open(
            fx.store.clone(),
            fx.kms.clone(),
            Arc::new(RecordingAudit),
            fx.clock.clone(),
        )
        .unwrap()
    };
    let old = open();
    assert!(old.national_chain().is_none());
    assert!(old.ensure_national_hierarchy().unwrap());
    let made = old.national_chain().unwrap().clone();
    assert_ne!(
        made.root_der, national.root_der,
        "a new hierarchy, new keys"
    );
    assert!(!old.ensure_national_hierarchy().unwrap(), "only once");
    // Stored: the next start serves the same one.
    assert_eq!(open().national_chain(), Some(&made));
    let (_, root) = X509Certificate::from_der(&made.root_der).unwrap();
    assert_eq!(
        root.signature_algorithm.algorithm.to_id_string(),
        "1.2.156.10197.1.501"
    );
    // A sealed kms makes none and says why.
    let mut batch = govtrust_store::Batch::new();
    batch.delete(b"ca/hierarchy-national".to_vec());
    fx.store.commit(batch).unwrap();
    let sealed_kms =
        Arc::new(Kms::open(fx.store.clone(), Arc::new(RecordingAudit), fx.clock.clone()).unwrap());
    let sealed = Ca::open(
        fx.store.clone(),
        sealed_kms,
        Arc::new(RecordingAudit),
        fx.clock.clone(),
    )
    .unwrap();
    assert!(sealed.ensure_national_hierarchy().is_err());
    assert!(sealed.national_chain().is_none());
}
