//! End to end: every bad input gets a clear error and leaves nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use support::{Server, fails, json, ok, openssl, openssl_csr};

fn enroll_csr(server: &Server, token: &str, csr: &Path, out: &Path) -> String {
    fails(server.gt(&[
        "enroll",
        "--token",
        token,
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]))
}

fn certificates_of(server: &Server, system: &str) -> usize {
    let listed = ok(server.gt_as(
        &server.admin("system-admin"),
        &["cert", "list", "--system", system, "--json"],
    ));
    json(&listed).as_array().unwrap().len()
}

#[test]
fn bad_csrs_and_tokens_are_refused_with_clear_errors_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let server = Server::dev(work);
    let out = work.join("out");
    let token = server.register("portal", &[]);

    let garbage = work.join("garbage.csr");
    std::fs::write(&garbage, b"this is not a certificate request").unwrap();
    let error = enroll_csr(&server, &token, &garbage, &out);
    assert!(
        error.contains("InvalidArgument") && error.contains("certificate signing request"),
        "{error}"
    );

    openssl(
        work,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "rsa.key",
            "-out",
            "rsa.csr",
            "-subj",
            "/CN=portal",
        ],
    );
    let error = enroll_csr(&server, &token, &work.join("rsa.csr"), &out);
    assert!(
        error.contains("InvalidArgument") && error.contains("1024"),
        "{error}"
    );

    let good = openssl_csr(work, "good", "/CN=portal", &[]);
    openssl(
        work,
        &[
            "req", "-in", "good.csr", "-outform", "DER", "-out", "good.der",
        ],
    );
    let mut der = std::fs::read(work.join("good.der")).unwrap();
    let last = der.len() - 3;
    der[last] ^= 0x55;
    std::fs::write(work.join("broken.der"), der).unwrap();
    let error = enroll_csr(&server, &token, &work.join("broken.der"), &out);
    assert!(
        error.contains("InvalidArgument") && error.contains("signature"),
        "{error}"
    );

    let wrong_name = openssl_csr(work, "wrong", "/CN=someone-else", &[]);
    let error = enroll_csr(&server, &token, &wrong_name, &out);
    assert!(
        error.contains("InvalidArgument") && error.contains("someone-else"),
        "{error}"
    );
    let wrong_dns = openssl_csr(
        work,
        "dns",
        "/CN=portal",
        &["-addext", "subjectAltName=DNS:bank.example"],
    );
    let error = enroll_csr(&server, &token, &wrong_dns, &out);
    assert!(
        error.contains("InvalidArgument") && error.contains("bank.example"),
        "{error}"
    );

    let error = enroll_csr(&server, "gt1_unknown-token", &good, &out);
    assert!(error.contains("Unauthenticated"), "{error}");
    assert_eq!(
        certificates_of(&server, "portal"),
        0,
        "refused enrollments stored nothing"
    );

    // The token survived every refusal: it still works once, and only once.
    ok(server.gt(&[
        "enroll",
        "--token",
        &token,
        "--csr",
        good.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let error = enroll_csr(&server, &token, &good, &out);
    assert!(
        error.contains("Unauthenticated") && error.contains("used"),
        "{error}"
    );
    assert_eq!(certificates_of(&server, "portal"), 1);

    let short = server.register("short-lived", &["--token-ttl", "1"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let csr = openssl_csr(work, "short", "/CN=short-lived", &[]);
    let error = enroll_csr(&server, &short, &csr, &out);
    assert!(
        error.contains("Unauthenticated") && error.contains("expired"),
        "{error}"
    );
    assert!(
        error.contains("system token"),
        "the error says what to do next: {error}"
    );
    assert_eq!(certificates_of(&server, "short-lived"), 0);

    // The system administrator issues a new token; the old one is superseded.
    let system_admin = server.admin("system-admin");
    let reissued = ok(server.gt_as(
        &system_admin,
        &["system", "token", "--name", "short-lived", "--json"],
    ));
    let fresh = json(&reissued)["enrollment_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let error = enroll_csr(&server, &short, &csr, &out);
    assert!(error.contains("Unauthenticated"), "{error}");
    ok(server.gt(&[
        "enroll",
        "--token",
        &fresh,
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(certificates_of(&server, "short-lived"), 1);
    // Once enrolled, nobody can take the identity over with a new token.
    let refused = fails(server.gt_as(&system_admin, &["system", "token", "--name", "short-lived"]));
    assert!(
        refused.contains("FailedPrecondition") && refused.contains("holds certificate"),
        "{refused}"
    );
    let denied = fails(server.gt_as(
        &server.admin("security-admin"),
        &["system", "token", "--name", "short-lived"],
    ));
    assert!(denied.contains("PermissionDenied"), "{denied}");
}

#[test]
fn no_system_may_hold_the_servers_name_or_another_systems_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("system-admin");
    let register = |name: &str, dns: &str| {
        server.gt_as(
            &admin,
            &[
                "system",
                "register",
                "--name",
                name,
                "--org",
                "o",
                "--level",
                "2",
                "--network",
                "intranet",
                "--dns",
                dns,
            ],
        )
    };
    let error = fails(register("evil", "localhost"));
    assert!(
        error.contains("InvalidArgument") && error.contains("localhost"),
        "{error}"
    );
    ok(register("portal", "portal.gov.example"));
    let error = fails(register("copycat", "portal.gov.example"));
    assert!(
        error.contains("AlreadyExists") && error.contains("portal.gov.example"),
        "{error}"
    );
    let listed = ok(server.gt_as(&admin, &["cert", "list", "--system", "copycat", "--json"]));
    assert_eq!(json(&listed).as_array().unwrap().len(), 0);
    let error = fails(server.gt_as(&admin, &["system", "token", "--name", "copycat"]));
    assert!(
        error.contains("NotFound"),
        "nothing of the refused registration was stored: {error}"
    );
}

#[test]
fn tampered_ciphertexts_wrong_aad_and_unusable_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let gt = |args: &[&str]| server.gt_as(&admin, args);
    let key = server.create_key(&admin, "aes-256-gcm", &[]);
    let key_id = key["key_id"].as_str().unwrap();
    let ciphertext = ok(gt(&[
        "kms",
        "key",
        "encrypt",
        key_id,
        "--plaintext",
        "tax records",
        "--aad",
        "case-1",
    ]));
    let ciphertext = ciphertext.trim();

    let error = fails(gt(&[
        "kms",
        "key",
        "decrypt",
        "--ciphertext",
        ciphertext,
        "--aad",
        "case-2",
    ]));
    assert!(
        error.contains("InvalidArgument") && error.contains("authentication"),
        "{error}"
    );
    let mut tampered = ciphertext.to_owned();
    let at = tampered.len() - 6;
    let flipped = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, flipped);
    let error = fails(gt(&[
        "kms",
        "key",
        "decrypt",
        "--ciphertext",
        &tampered,
        "--aad",
        "case-1",
    ]));
    assert!(
        error.contains("InvalidArgument") && error.contains("authentication"),
        "{error}"
    );
    assert_eq!(
        ok(gt(&[
            "kms",
            "key",
            "decrypt",
            "--ciphertext",
            ciphertext,
            "--aad",
            "case-1"
        ])),
        "tax records"
    );

    ok(gt(&[
        "kms",
        "key",
        "state",
        key_id,
        "suspend",
        "--reason",
        "investigation",
    ]));
    let error = fails(gt(&["kms", "key", "encrypt", key_id, "--plaintext", "x"]));
    assert!(
        error.contains("FailedPrecondition") && error.contains("suspended"),
        "{error}"
    );
    let error = fails(gt(&["kms", "key", "state", key_id, "activate"]));
    assert!(error.contains("FailedPrecondition"), "{error}");
    ok(gt(&["kms", "key", "state", key_id, "resume"]));
    ok(gt(&["kms", "key", "encrypt", key_id, "--plaintext", "x"]));

    let error = fails(gt(&["kms", "key", "destroy", key_id, "--days", "3"]));
    assert!(error.contains("InvalidArgument"), "{error}");
    let scheduled = json(&ok(gt(&[
        "kms", "key", "destroy", key_id, "--days", "7", "--json",
    ])));
    assert!(
        !scheduled["destruction_scheduled_at"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let error = fails(gt(&[
        "kms",
        "key",
        "decrypt",
        "--ciphertext",
        ciphertext,
        "--aad",
        "case-1",
    ]));
    assert!(
        error.contains("FailedPrecondition") && error.contains("destr"),
        "{error}"
    );
    ok(gt(&["kms", "key", "cancel-destroy", key_id]));
    assert_eq!(
        ok(gt(&[
            "kms",
            "key",
            "decrypt",
            "--ciphertext",
            ciphertext,
            "--aad",
            "case-1"
        ])),
        "tax records"
    );
}

#[test]
fn a_destroyed_key_is_gone_and_says_when_it_went() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let key = server.create_key(&admin, "aes-256-gcm", &[]);
    let key_id = key["key_id"].as_str().unwrap().to_owned();
    let ciphertext = ok(server.gt_as(
        &admin,
        &["kms", "key", "encrypt", &key_id, "--plaintext", "x"],
    ));
    ok(server.gt_as(&admin, &["kms", "key", "destroy", &key_id, "--days", "7"]));
    let data = server.data.clone();
    server.kill();

    // Eight days later the waiting period is over; the sweep at start-up destroys the key.
    let server = Server::start_with(&data, true, &["--dev-clock-offset-days", "8"]);
    let shown = json(&ok(
        server.gt_as(&admin, &["kms", "key", "show", &key_id, "--json"])
    ));
    assert_eq!(shown["state"], "destroyed");
    assert!(!shown["destroyed_at"].as_str().unwrap().is_empty());
    let error = fails(server.gt_as(
        &admin,
        &["kms", "key", "decrypt", "--ciphertext", ciphertext.trim()],
    ));
    assert!(
        error.contains("FailedPrecondition") && error.contains("destroyed at"),
        "{error}"
    );
    let error = fails(server.gt_as(
        &admin,
        &["kms", "key", "encrypt", &key_id, "--plaintext", "x"],
    ));
    assert!(
        error.contains("FailedPrecondition") && error.contains("destroyed"),
        "{error}"
    );
    let error = fails(server.gt_as(&admin, &["kms", "key", "rotate", &key_id]));
    assert!(error.contains("FailedPrecondition"), "{error}");
}
