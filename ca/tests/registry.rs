//! Registering systems and the tokens they get.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use govtrust_kms::Clock;

use std::time::Duration;

use std::sync::Arc;

use common::{Fixture, RecordingAudit, San, csr, setup};
use govtrust_ca::{
    Ca, DnsName, Error, Network, OrgId, ProtectionLevel, Registration, SystemName, TokenTtl,
};
use govtrust_store::Store;

fn registration(name: &str) -> Registration {
    with_dns(name, &["portal.gov.example"])
}

fn with_dns(name: &str, dns: &[&str]) -> Registration {
    Registration {
        name: SystemName::try_from(name).unwrap(),
        org_id: OrgId::try_from("tax").unwrap(),
        protection_level: ProtectionLevel::try_from(3).unwrap(),
        network: Network::Extranet,
        dns_names: dns.iter().map(|d| DnsName::try_from(*d).unwrap()).collect(),
        token_ttl: TokenTtl::try_from(Duration::from_secs(600)).unwrap(),
    }
}

/// The reason of an `InvalidArgument` on `dns_names`; panics on any other result.
fn dns_refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::InvalidArgument {
            field: "dns_names",
            reason,
        }) => reason,
        other => panic!("{other:?}"),
    }
}

/// True when nothing of system `name` is stored: no record, DNS name, token or audit event.
fn nothing_stored(fx: &Fixture, name: &str) -> bool {
    let key = format!("ca/system/{name}");
    let events = fx.ca_events();
    fx.store.get(key.as_bytes()).unwrap().is_none()
        && fx.keys(&format!("ca/systoken/{name}")).is_empty()
        && !events.iter().any(|e| e.contains(&format!("|{name}|")))
}

#[test]
fn registration_stores_the_system_and_only_a_token_digest() {
    let fx = setup();
    let registered = fx
        .ca
        .register_system(
            "spiffe://gov.example/person/system-admin",
            registration("portal"),
        )
        .unwrap();
    assert!(registered.token.starts_with("gt1_"));
    assert_eq!(
        registered.system.spiffe_id,
        "spiffe://gov.example/org/tax/sys/portal"
    );
    assert_eq!(
        registered.token_expires_at,
        fx.clock.now() + Duration::from_secs(600)
    );
    let everything = fx.store.scan(b"", None, usize::MAX).unwrap();
    let token = registered.token.as_bytes();
    assert!(
        everything
            .iter()
            .all(|(k, v)| !k.windows(token.len()).any(|w| w == token)
                && !v.windows(token.len()).any(|w| w == token))
    );
    assert!(fx.store.get(b"ca/system/portal").unwrap().is_some());
    let events = fx.ca_events();
    let event = events
        .iter()
        .find(|e| e.starts_with("ca.system.register|"))
        .unwrap();
    assert!(
        event.starts_with("ca.system.register|spiffe://gov.example/person/system-admin|portal|"),
        "{event}"
    );
}

#[test]
fn duplicate_registration_is_refused() {
    let fx = setup();
    fx.ca
        .register_system("admin", registration("portal"))
        .unwrap();
    let again = fx.ca.register_system("admin", registration("portal"));
    assert!(
        matches!(&again, Err(Error::SystemExists { name }) if name == "portal"),
        "{again:?}"
    );
    assert_eq!(
        fx.store.scan(b"ca/token/", None, usize::MAX).unwrap().len(),
        1
    );
}

#[test]
fn reserved_names_are_refused() {
    let fx = setup();
    let result = fx.ca.register_system("admin", registration("govtrust"));
    assert!(
        matches!(result, Err(Error::InvalidArgument { field: "name", .. })),
        "{result:?}"
    );
}

#[test]
fn invalid_fields_are_named() {
    assert!(matches!(
        SystemName::try_from("Portal"),
        Err(Error::InvalidArgument { field: "name", .. })
    ));
    assert!(matches!(
        OrgId::try_from("-tax"),
        Err(Error::InvalidArgument {
            field: "org_id",
            ..
        })
    ));
    assert!(matches!(
        DnsName::try_from("a..b"),
        Err(Error::InvalidArgument {
            field: "dns_names",
            ..
        })
    ));
    assert!(matches!(
        ProtectionLevel::try_from(5),
        Err(Error::InvalidArgument {
            field: "protection_level",
            ..
        })
    ));
    assert!(matches!(
        TokenTtl::try_from(Duration::ZERO),
        Err(Error::InvalidArgument {
            field: "token_ttl",
            ..
        })
    ));
    let message = SystemName::try_from("Portal").unwrap_err().to_string();
    assert!(message.starts_with("invalid name:"), "{message}");
}

#[test]
fn registered_debug_redacts_the_token() {
    let fx = setup();
    let registered = fx
        .ca
        .register_system("admin", registration("portal"))
        .unwrap();
    let printed = format!("{registered:?}");
    assert!(!printed.contains(registered.token.as_str()));
    assert!(printed.contains("<redacted>"));
}

#[test]
fn loopback_names_are_refused() {
    let fx = setup();
    for name in ["localhost", "LocalHost", "api.localhost"] {
        let reason = dns_refusal(
            fx.ca
                .register_system("admin", with_dns("portal", &["ok.gov.example", name])),
        );
        assert!(reason.contains("loopback"), "{reason}");
    }
    assert!(nothing_stored(&fx, "portal"));
    assert!(fx.keys("ca/dns/").is_empty() && fx.keys("ca/token/").is_empty());
}

#[test]
fn the_servers_names_are_refused_in_any_case() {
    let fx = setup();
    for name in ["govtrust.gov.example", "GovTrust.GOV.example"] {
        let reason = dns_refusal(fx.ca.register_system("admin", with_dns("portal", &[name])));
        assert_eq!(
            reason, "\"govtrust.gov.example\" is the govtrust server's name",
            "{name}"
        );
    }
    assert!(nothing_stored(&fx, "portal"));
}

#[test]
fn the_servers_names_are_stored_with_the_hierarchy() {
    let fx = setup();
    let hierarchy = fx.store.get(b"ca/hierarchy").unwrap().unwrap();
    let record: serde_json::Value = serde_json::from_slice(&hierarchy).unwrap();
    assert_eq!(
        record["server"],
        serde_json::json!({"dns_names": ["govtrust.gov.example"], "ips": ["10.0.0.1"]})
    );
}

#[test]
fn a_hierarchy_stored_without_server_names_takes_them_from_the_server_certificate() {
    let fx = setup();
    fx.rewrite("ca/hierarchy", |record| {
        record.as_object_mut().unwrap().remove("server");
    });
    let ca = Ca::open(
        fx.store.clone(),
        fx.kms.clone(),
        Arc::new(RecordingAudit),
        fx.clock.clone(),
    )
    .unwrap();
    let result = ca.register_system("admin", with_dns("portal", &["govtrust.gov.example"]));
    assert!(dns_refusal(result).contains("govtrust server's name"));
    assert!(ca.register_system("admin", registration("portal")).is_ok());
}

#[test]
fn a_dns_name_belongs_to_one_system() {
    let fx = setup();
    fx.ca
        .register_system("admin", registration("portal"))
        .unwrap();
    let second = fx.ca.register_system(
        "admin",
        with_dns("payroll", &["payroll.gov.example", "portal.gov.example"]),
    );
    let Err(Error::DnsNameTaken { name, system }) = &second else {
        panic!("{second:?}")
    };
    assert_eq!(
        (name.as_str(), system.as_str()),
        ("portal.gov.example", "portal")
    );
    let message = second.unwrap_err().to_string();
    assert_eq!(
        message,
        "DNS name portal.gov.example is already held by system portal"
    );
    assert!(nothing_stored(&fx, "payroll"));
    assert_eq!(fx.keys("ca/dns/"), ["ca/dns/portal.gov.example"]);
    assert_eq!(fx.keys("ca/token/").len(), 1);
    let index = fx.store.get(b"ca/dns/portal.gov.example").unwrap().unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&index).unwrap()["system"],
        "portal"
    );
}

#[test]
fn issuance_refuses_a_dns_name_the_system_no_longer_holds() {
    let fx = setup();
    let registered = fx.register("portal", 2, Network::Extranet, &["portal.gov.example"]);
    fx.rewrite("ca/dns/portal.gov.example", |record| {
        record["system"] = "payroll".into();
    });
    let result = fx.ca.enroll(
        &registered.token,
        &csr("portal", &[San::Dns("portal.gov.example")]),
    );
    assert!(
        matches!(&result, Err(Error::NameNotAllowed { name, system })
            if name == "portal.gov.example" && system == "portal"),
        "{result:?}"
    );
    assert_eq!(fx.cert_count(), 4, "only the initialization certificates");
    assert!(fx.tokens_unused());
}

#[test]
fn a_system_registered_before_the_index_claims_its_names_at_issuance() {
    let fx = setup();
    let portal = fx.register("portal", 2, Network::Extranet, &["portal.gov.example"]);
    let payroll = fx.register("payroll", 2, Network::Extranet, &["payroll.gov.example"]);
    // As stored before the index existed: both hold the name, neither in the index.
    fx.delete("ca/dns/portal.gov.example");
    fx.rewrite("ca/system/payroll", |record| {
        record["dns_names"] = serde_json::json!(["portal.gov.example"]);
    });
    let request = |cn| csr(cn, &[San::Dns("portal.gov.example")]);
    fx.ca.enroll(&portal.token, &request("portal")).unwrap();
    assert_eq!(
        fx.keys("ca/dns/"),
        ["ca/dns/payroll.gov.example", "ca/dns/portal.gov.example"]
    );
    let result = fx.ca.enroll(&payroll.token, &request("payroll"));
    assert!(
        matches!(&result, Err(Error::NameNotAllowed { system, .. }) if system == "payroll"),
        "{result:?}"
    );
}

#[test]
fn issuance_refuses_reserved_names_of_systems_registered_before_the_check() {
    let fx = setup();
    let registered = fx.register("portal", 2, Network::Extranet, &[]);
    fx.rewrite("ca/system/portal", |record| {
        record["dns_names"] = serde_json::json!(["govtrust.gov.example", "localhost"]);
    });
    for name in ["govtrust.gov.example", "localhost"] {
        let result = fx
            .ca
            .enroll(&registered.token, &csr("portal", &[San::Dns(name)]));
        assert!(
            matches!(&result, Err(Error::NameNotAllowed { name: n, .. }) if n == name),
            "{result:?}"
        );
    }
    assert!(fx.keys("ca/dns/").is_empty());
}
