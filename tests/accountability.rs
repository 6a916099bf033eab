//! End to end: refused calls and key use are accountable. Denials, authentication failures and
//! failed enrollments are in the audit log with who, from where, which method and why; the
//! key-usage ledger says who used which key for what, how often, per minute.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Server, fails, foreign_credential, json, ok, openssl_csr};

const TAX: &str = "spiffe://gov.example/org/finance/sys/tax";
const HEALTH: &str = "spiffe://gov.example/org/finance/sys/health";
const ENCRYPT: &str = "/govtrust.kms.v1.KeyManagement/Encrypt";
const LIST_KEYS: &str = "/govtrust.kms.v1.KeyManagement/ListKeys";
const ENROLL: &str = "/govtrust.ca.v1.CertificateAuthority/Enroll";

/// Registers and enrolls system `name`; its token and credential directory.
fn enrolled(server: &Server, dir: &Path, name: &str) -> (String, PathBuf) {
    let token = server.register(name, &[]);
    let out = dir.join(name);
    ok(server.gt(&["enroll", "--token", &token, "--out", out.to_str().unwrap()]));
    (token, out)
}

fn encrypt(server: &Server, identity: &Path, key: &str) -> std::process::Output {
    server.gt_as(
        identity,
        &[
            "kms",
            "key",
            "encrypt",
            key,
            "--plaintext",
            "invoice",
            "--aad",
            "42",
        ],
    )
}

fn events(server: &Server) -> Vec<Value> {
    let text = ok(server.gt_as(&server.admin("audit-admin"), &["audit", "list", "--json"]));
    json(&text).as_array().unwrap().clone()
}

fn detail<'a>(event: &'a Value, name: &str) -> &'a str {
    event["details"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {event}"))
}

/// The events with `action`, `actor` and `target`.
fn matching<'a>(events: &'a [Value], action: &str, actor: &str, target: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["action"] == action && e["actor"] == actor && e["target"] == target)
        .collect()
}

/// The sum of `count` over `events` (records of a tally add up).
fn total(events: &[&Value]) -> u64 {
    events
        .iter()
        .map(|e| detail(e, "count").parse::<u64>().unwrap())
        .sum()
}

/// The uses the ledger records of `key` by `caller` for `operation`.
fn uses(events: &[Value], caller: &str, key: &str, operation: &str) -> u64 {
    let records: Vec<&Value> = matching(events, "kms.key.use", caller, key)
        .into_iter()
        .filter(|e| detail(e, "operation") == operation)
        .collect();
    total(&records)
}

#[test]
fn refusals_and_key_use_are_in_the_audit_log_with_who_where_what_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let server = Server::dev(work);
    let (tax_token, tax) = enrolled(&server, work, "tax");
    let (_, health) = enrolled(&server, work, "health");

    // A system tries another system's key, three times.
    let health_key = server.create_key(&health, "aes-256-gcm", &[]);
    let health_key = health_key["key_id"].as_str().unwrap();
    for _ in 0..3 {
        let denied = fails(encrypt(&server, &tax, health_key));
        assert!(denied.contains("PermissionDenied"), "{denied}");
    }
    // A caller with a foreign certificate claiming an administrator's identity.
    let foreign = foreign_credential(work, "spiffe://gov.example/person/security-admin");
    let root = server.root();
    let refused = fails(server.gt_as(
        &foreign,
        &["kms", "key", "list", "--ca", root.to_str().unwrap()],
    ));
    assert!(refused.contains("Unauthenticated"), "{refused}");
    // A used enrollment token, replayed.
    let again = work.join("again");
    let replayed = fails(server.gt(&[
        "enroll",
        "--token",
        &tax_token,
        "--out",
        again.to_str().unwrap(),
    ]));
    assert!(
        replayed.contains("Unauthenticated") && replayed.contains("used"),
        "{replayed}"
    );
    // An unknown token, and a CSR the CA refuses for a system's fresh token.
    let unknown = "gt1_0000000000000000000000000000000000000000000";
    fails(server.gt(&[
        "enroll",
        "--token",
        unknown,
        "--out",
        again.to_str().unwrap(),
    ]));
    let fresh = server.register("portal", &[]);
    let wrong_name = openssl_csr(work, "wrong", "/CN=someone-else", &[]);
    let refused_csr = fails(server.gt(&[
        "enroll",
        "--token",
        &fresh,
        "--csr",
        wrong_name.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]));
    assert!(refused_csr.contains("InvalidArgument"), "{refused_csr}");
    // The system uses its own key several times.
    let own = server.create_key(&tax, "aes-256-gcm", &[]);
    let own = own["key_id"].as_str().unwrap();
    let mut ciphertext = String::new();
    for _ in 0..3 {
        ciphertext = ok(encrypt(&server, &tax, own)).trim().to_owned();
    }
    for _ in 0..2 {
        ok(server.gt_as(
            &tax,
            &[
                "kms",
                "key",
                "decrypt",
                "--ciphertext",
                &ciphertext,
                "--aad",
                "42",
            ],
        ));
    }
    let wrong_aad = fails(server.gt_as(
        &tax,
        &[
            "kms",
            "key",
            "decrypt",
            "--ciphertext",
            &ciphertext,
            "--aad",
            "43",
        ],
    ));
    assert!(wrong_aad.contains("InvalidArgument"), "{wrong_aad}");

    // Before shutdown, the first of each refusal and each first use are there already.
    let early = events(&server);
    // The first denial was written when it happened; its repeats wait for the window's end
    // (a window is 60 s, so one more record only if this test ran across one's end).
    let early_denials = matching(&early, "authz.denied", TAX, ENCRYPT);
    assert!((1..=2).contains(&early_denials.len()), "{early_denials:?}");
    assert_eq!(detail(early_denials[0], "count"), "1");
    // (Two first uses if the calls straddled a minute boundary.)
    let early_uses = uses(&early, TAX, own, "encrypt");
    assert!(
        (1..=2).contains(&early_uses),
        "first use durable at once: {early_uses}"
    );
    let data = server.data.clone();
    server.stop();

    let server = Server::start_with(&data, true, &[]);
    let events = events(&server);

    let denials = matching(&events, "authz.denied", TAX, ENCRYPT);
    assert_eq!(total(&denials), 3, "three denials, counted: {denials:?}");
    let first = denials[0];
    assert!(detail(first, "peer").starts_with("127.0.0.1:"), "{first}");
    assert_eq!(detail(first, "code"), "PermissionDenied");
    assert!(detail(first, "reason").contains(health_key), "{first}");
    assert!(
        detail(first, "certificate").starts_with("sha256:"),
        "{first}"
    );

    let failures: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "authn.failed" && e["target"] == LIST_KEYS)
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure = failures[0];
    let actor = failure["actor"].as_str().unwrap();
    assert!(
        actor.starts_with("sha256:") && actor.len() == 71,
        "{failure}"
    );
    assert_eq!(detail(failure, "certificate"), actor);
    assert!(
        detail(failure, "peer").starts_with("127.0.0.1:"),
        "{failure}"
    );
    assert!(detail(failure, "reason").contains("rejected"), "{failure}");

    let enroll_failures: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "ca.enroll.failed" && e["target"] == ENROLL)
        .collect();
    assert_eq!(enroll_failures.len(), 3, "{enroll_failures:?}");
    let reasons: Vec<&str> = enroll_failures
        .iter()
        .map(|e| detail(e, "reason"))
        .collect();
    assert!(
        reasons[1].contains("unknown enrollment token"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("someone-else"), "{reasons:?}");
    assert_eq!(detail(enroll_failures[2], "code"), "InvalidArgument");
    let token_failure = enroll_failures[0];
    assert!(
        token_failure["actor"]
            .as_str()
            .unwrap()
            .starts_with("token:")
    );
    assert!(
        detail(token_failure, "reason").contains("already used"),
        "{token_failure}"
    );
    assert!(detail(token_failure, "peer").starts_with("127.0.0.1:"));
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains(&tax_token),
        "the audit log never holds a token"
    );

    assert_eq!(uses(&events, TAX, own, "encrypt"), 3);
    assert_eq!(uses(&events, TAX, own, "decrypt"), 3);
    let decrypts = matching(&events, "kms.key.use", TAX, own);
    let failed: u64 = decrypts
        .iter()
        .filter(|e| detail(e, "operation") == "decrypt")
        .map(|e| detail(e, "failed").parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        failed, 1,
        "the decrypt with the wrong AAD is counted as failed"
    );
    assert_eq!(
        uses(&events, TAX, health_key, "encrypt"),
        0,
        "a denied call is no use"
    );
    assert_eq!(uses(&events, HEALTH, health_key, "encrypt"), 0);

    // The audit administrator reads the ledger as sentences.
    let ledger = ok(server.gt_as(
        &server.admin("audit-admin"),
        &["audit", "list", "--action", "kms.key.use", "--target", own],
    ));
    assert!(
        ledger.contains("encrypt x1") && ledger.contains("[first]"),
        "{ledger}"
    );
    assert!(
        ledger.contains("decrypt x") && ledger.contains("(1 failed)"),
        "{ledger}"
    );
    assert!(!ledger.contains("authz.denied"), "{ledger}");
}

#[test]
fn a_crash_keeps_the_first_use_of_every_minute() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let (_, tax) = enrolled(&server, dir.path(), "tax");
    let key = server.create_key(&tax, "aes-256-gcm", &[]);
    let key = key["key_id"].as_str().unwrap();
    for _ in 0..4 {
        ok(encrypt(&server, &tax, key));
    }
    let data = server.data.clone();
    server.kill();

    let server = Server::start_with(&data, true, &[]);
    let events = events(&server);
    let recorded = uses(&events, TAX, key, "encrypt");
    assert!(
        (1..=4).contains(&recorded),
        "the use survives kill -9 (the counts of the minute in progress may not): {recorded}"
    );
}
