//! Registering systems and the tokens they get.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use govtrust_kms::Clock;

use std::time::Duration;

use common::setup;
use govtrust_ca::{
    DnsName, Error, Network, OrgId, ProtectionLevel, Registration, SystemName, TokenTtl,
};
use govtrust_store::Store;

fn registration(name: &str) -> Registration {
    Registration {
        name: SystemName::try_from(name).unwrap(),
        org_id: OrgId::try_from("tax").unwrap(),
        protection_level: ProtectionLevel::try_from(3).unwrap(),
        network: Network::Extranet,
        dns_names: vec![DnsName::try_from("portal.gov.example").unwrap()],
        token_ttl: TokenTtl::try_from(Duration::from_secs(600)).unwrap(),
    }
}

#[test]
fn registration_stores_the_system_and_only_a_token_digest() {
    let fx = setup();
    let registered = fx
        .ca
        .register_system(
            "spiffe://gov.example/person/security-admin",
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
        event.starts_with("ca.system.register|spiffe://gov.example/person/security-admin|portal|"),
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
