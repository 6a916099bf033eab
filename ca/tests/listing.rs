//! Certificate lookup and listing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use govtrust_kms::Clock;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{csr, setup};
use govtrust_ca::{CertFilter, CertStatus, Error, Network, Serial};

#[test]
fn pages_cover_every_certificate_once() {
    let fx = setup();
    for name in ["a", "b", "c"] {
        let registered = fx.register(name, 2, Network::Extranet, &[]);
        fx.ca.enroll(&registered.token, &csr(name, &[])).unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let (page, next) = fx
            .ca
            .list_certificates(&CertFilter::default(), 2, token.as_deref())
            .unwrap();
        assert!(page.len() <= 2);
        for record in page {
            assert!(seen.insert(record.serial));
        }
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "4 from initialization, 3 enrolled");
    let (all, next) = fx
        .ca
        .list_certificates(&CertFilter::default(), 0, None)
        .unwrap();
    assert_eq!((all.len(), next), (7, None));
}

#[test]
fn filters_by_system_status_and_expiry() {
    let fx = setup();
    let short = fx.register("short", 4, Network::Intranet, &[]);
    let short = fx.ca.enroll(&short.token, &csr("short", &[])).unwrap();
    let long = fx.register("long", 1, Network::Intranet, &[]);
    fx.ca.enroll(&long.token, &csr("long", &[])).unwrap();
    let by_system = CertFilter {
        system: Some("short".to_owned()),
        ..CertFilter::default()
    };
    let (page, _) = fx.ca.list_certificates(&by_system, 10, None).unwrap();
    assert_eq!(
        page.iter().map(|r| &r.serial).collect::<Vec<_>>(),
        [&short.serial]
    );
    let soon = CertFilter {
        expiring_before: Some(fx.clock.now() + Duration::from_secs(100 * 86_400)),
        ..CertFilter::default()
    };
    let (page, _) = fx.ca.list_certificates(&soon, 10, None).unwrap();
    assert_eq!(
        page.iter().map(|r| r.system.as_str()).collect::<Vec<_>>(),
        ["short"]
    );
    fx.clock.advance(Duration::from_secs(91 * 86_400));
    let expired = CertFilter {
        status: Some(CertStatus::Expired),
        ..CertFilter::default()
    };
    let (page, _) = fx.ca.list_certificates(&expired, 10, None).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].status(fx.clock.now()), CertStatus::Expired);
    let valid = CertFilter {
        status: Some(CertStatus::Valid),
        ..CertFilter::default()
    };
    assert_eq!(
        fx.ca.list_certificates(&valid, 10, None).unwrap().0.len(),
        5
    );
}

#[test]
fn lookups_of_unknown_or_malformed_serials_fail() {
    let fx = setup();
    let result = Serial::parse(&"1".repeat(32)).and_then(|s| fx.ca.certificate(&s));
    assert!(
        matches!(result, Err(Error::CertificateNotFound { .. })),
        "{result:?}"
    );
    let result = Serial::parse("zz").and_then(|s| fx.ca.certificate(&s));
    assert!(
        matches!(
            result,
            Err(Error::InvalidArgument {
                field: "serial",
                ..
            })
        ),
        "{result:?}"
    );
    let result = fx
        .ca
        .list_certificates(&CertFilter::default(), 10, Some("ca/"));
    assert!(
        matches!(
            result,
            Err(Error::InvalidArgument {
                field: "page_token",
                ..
            })
        ),
        "{result:?}"
    );
}
