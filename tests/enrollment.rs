//! End to end: register, enroll with an `openssl req` CSR, verify with `openssl verify`, renew
//! over mTLS, and refuse callers without a certificate of this CA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{Server, fails, foreign_credential, json, ok, openssl, openssl_csr};

#[test]
fn openssl_csr_enrolls_and_openssl_verifies_the_chain_then_renew_works_over_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let token = server.register("tax-portal", &["--dns", "tax.gov.example"]);

    let csr = openssl_csr(
        dir.path(),
        "tax",
        "/CN=tax-portal",
        &["-addext", "subjectAltName=DNS:tax.gov.example"],
    );
    let out = dir.path().join("tax");
    let enrolled = json(&ok(server.gt(&[
        "enroll",
        "--token",
        &token,
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])));
    assert_eq!(
        enrolled["spiffe_id"],
        "spiffe://gov.example/org/finance/sys/tax-portal"
    );

    let verified = openssl(
        &out,
        &[
            "verify",
            "-CAfile",
            server.root().to_str().unwrap(),
            "-untrusted",
            "chain.pem",
            "cert.pem",
        ],
    );
    assert!(verified.contains("cert.pem: OK"), "{verified}");
    let text = openssl(&out, &["x509", "-in", "cert.pem", "-noout", "-text"]);
    assert!(
        text.contains("URI:spiffe://gov.example/org/finance/sys/tax-portal"),
        "{text}"
    );
    assert!(text.contains("DNS:tax.gov.example"), "{text}");
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );

    // Renew over mTLS with the current certificate (the CLI makes a new key here).
    std::fs::copy(dir.path().join("tax.key"), out.join("key.pem")).unwrap();
    let renewed = json(&ok(server.gt_as(&out, &["renew", "--json"])));
    assert_eq!(renewed["spiffe_id"], enrolled["spiffe_id"]);
    assert_ne!(renewed["serial"], enrolled["serial"]);
    let verified = openssl(
        &out,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-untrusted",
            "chain.pem",
            "cert.pem",
        ],
    );
    assert!(verified.contains("OK"), "{verified}");

    // The renewed identity works for further calls.
    let key = server.create_key(&out, "aes-256-gcm", &[]);
    assert_eq!(
        key["owner"],
        "spiffe://gov.example/org/finance/sys/tax-portal"
    );
}

#[test]
fn calls_without_a_client_certificate_or_with_a_foreign_one_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());

    let anonymous = fails(server.gt(&["cert", "list"]));
    assert!(
        anonymous.contains("Unauthenticated") && anonymous.contains("client certificate"),
        "{anonymous}"
    );
    let anonymous = fails(server.gt(&["kms", "key", "list"]));
    assert!(anonymous.contains("Unauthenticated"), "{anonymous}");

    // A CA of our own making, and a client certificate from it with the same SPIFFE id as an admin.
    let foreign = foreign_credential(dir.path(), "spiffe://gov.example/person/security-admin");
    let refused = fails(server.gt_as(
        &foreign,
        &[
            "kms",
            "key",
            "list",
            "--ca",
            server.root().to_str().unwrap(),
        ],
    ));
    assert!(
        refused.contains("Unauthenticated") && refused.contains("rejected"),
        "{refused}"
    );

    // The genuine administrator is let in.
    ok(server.gt_as(&server.admin("security-admin"), &["kms", "key", "list"]));
}

#[test]
fn administrator_roles_are_separated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let denied = fails(server.gt_as(
        &server.admin("audit-admin"),
        &[
            "system",
            "register",
            "--name",
            "x",
            "--org",
            "o",
            "--level",
            "2",
            "--network",
            "intranet",
        ],
    ));
    assert!(denied.contains("PermissionDenied"), "{denied}");
    let denied = fails(server.gt_as(
        &server.admin("system-admin"),
        &["kms", "key", "create", "--algorithm", "ed25519"],
    ));
    assert!(denied.contains("PermissionDenied"), "{denied}");
    ok(server.gt_as(&server.admin("audit-admin"), &["cert", "list"]));
}
