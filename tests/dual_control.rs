//! End to end: no single administrator takes over a system's identity, keys or data; acts on
//! another's assets that destroy or re-assign them need a second officer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use support::{Server, fails, json, ok};

/// Enrolls `tax-portal`, which makes a key and encrypts "taxpayer records" with it: its
/// credential directory, the key and the ciphertext.
fn secret_of_tax_portal(server: &Server, work: &Path) -> (PathBuf, String, String) {
    let tax = server.enrolled(work, "tax-portal");
    let key = server.create_key(&tax, "aes-256-gcm", &[])["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ciphertext = encrypt(server, &tax, &key, "taxpayer records");
    (tax, key, ciphertext)
}

fn encrypt(server: &Server, identity: &Path, key: &str, text: &str) -> String {
    let args = ["kms", "key", "encrypt", key, "--plaintext", text];
    ok(server.gt_as(identity, &args)).trim().to_owned()
}

fn decrypt(server: &Server, identity: &Path, ciphertext: &str) -> std::process::Output {
    server.gt_as(
        identity,
        &["kms", "key", "decrypt", "--ciphertext", ciphertext],
    )
}

fn approval_id(output: &str) -> String {
    let value = json(output);
    let id = value["pending_approval"]["approval_id"].as_str();
    id.unwrap_or_else(|| panic!("no pending approval in {output}"))
        .to_owned()
}

fn audit_actions(server: &Server) -> Vec<String> {
    let log = ok(server.gt_as(&server.admin("audit-admin"), &["audit", "list", "--json"]));
    let events = json(&log);
    let events = events.as_array().unwrap();
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_system_administrator_alone_cannot_take_over_a_lapsed_identity_or_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let server = Server::dev(work);
    let (_, key, ciphertext) = secret_of_tax_portal(&server, work);
    // Its level-3 certificate lasts 180 days: not expiring within 30 days, but within 200.
    let expiring = |within: &str| {
        let args = ["cert", "list", "--system", "tax-portal", "--json"];
        let within = ["--expiring-within", within];
        let listed = ok(server.gt_as(&server.admin("audit-admin"), &[&args[..], &within].concat()));
        json(&listed).as_array().unwrap().len()
    };
    assert_eq!((expiring("30d"), expiring("200d")), (0, 1));
    let data = server.data.clone();
    server.kill();

    // 200 days later the level-3 certificate (180 days) has lapsed.
    let server = Server::start_with(&data, true, &["--dev-clock-offset-days", "200"]);
    let system_admin = server.admin("system-admin");
    let security_admin = server.admin("security-admin");
    // The server judges the certificate by its own clock: lapsed.
    let listed = ok(server.gt_as(
        &server.admin("audit-admin"),
        &["cert", "list", "--system", "tax-portal", "--json"],
    ));
    assert_eq!(json(&listed)[0]["status"], "expired", "{listed}");
    let token = |extra: &[&str]| {
        let mut args = vec!["system", "token", "--name", "tax-portal", "--json"];
        args.extend_from_slice(extra);
        server.gt_as(&system_admin, &args)
    };

    // The token is not given: a re-enrollment request is filed instead.
    let filed = ok(token(&[]));
    assert!(json(&filed)["enrollment_token"].is_null(), "{filed}");
    let id = approval_id(&filed);
    assert_eq!(json(&filed)["pending_approval"]["status"], "pending");

    // The requester cannot approve, nor the audit administrator; nothing runs before approval.
    let own = fails(server.gt_as(&system_admin, &["approval", "approve", &id]));
    assert!(
        own.contains("PermissionDenied") && own.contains("requester"),
        "{own}"
    );
    let auditor = fails(server.gt_as(&server.admin("audit-admin"), &["approval", "approve", &id]));
    assert!(
        auditor.contains("PermissionDenied") && auditor.contains("security-admin"),
        "{auditor}"
    );
    let early = fails(token(&["--approval", &id]));
    assert!(
        early.contains("FailedPrecondition") && early.contains("pending"),
        "{early}"
    );

    // The security administrator approves; it cannot carry the act out itself.
    ok(server.gt_as(
        &security_admin,
        &[
            "approval",
            "approve",
            &id,
            "--reason",
            "called the tax bureau",
        ],
    ));
    let stolen = fails(server.gt_as(
        &security_admin,
        &["system", "token", "--name", "tax-portal", "--approval", &id],
    ));
    assert!(stolen.contains("PermissionDenied"), "{stolen}");
    // Only exactly the approved act: carrying the keys over was not approved.
    let wider = fails(token(&["--approval", &id, "--carry-keys"]));
    assert!(wider.contains("FailedPrecondition"), "{wider}");
    let longer = fails(token(&["--approval", &id, "--token-ttl", "604800"]));
    assert!(longer.contains("FailedPrecondition"), "{longer}");

    let issued = json(&ok(token(&["--approval", &id])));
    let new_token = issued["enrollment_token"].as_str().unwrap().to_owned();
    let replay = fails(token(&["--approval", &id]));
    assert!(
        replay.contains("FailedPrecondition") && replay.contains("executed"),
        "{replay}"
    );

    // Whoever enrolls with it is tax-portal, but not the tax-portal that owned the key.
    let taker = work.join("taker");
    ok(server.gt(&[
        "enroll",
        "--token",
        &new_token,
        "--out",
        taker.to_str().unwrap(),
    ]));
    let denied = fails(decrypt(&server, &taker, &ciphertext));
    assert!(denied.contains("PermissionDenied"), "{denied}");
    let shown = fails(server.gt_as(&taker, &["kms", "key", "show", &key]));
    assert!(shown.contains("PermissionDenied"), "{shown}");
    // The new enrollment works with keys of its own.
    let fresh = server.create_key(&taker, "aes-256-gcm", &[]);
    assert_eq!(fresh["owner_generation"], 2, "{fresh}");
    let own_key = fresh["key_id"].as_str().unwrap();
    let mine = encrypt(&server, &taker, own_key, "new records");
    ok(decrypt(&server, &taker, &mine));

    let actions = audit_actions(&server);
    for action in [
        "approval.request",
        "approval.approve",
        "approval.execute",
        "ca.token.issue",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} missing: {actions:?}"
        );
    }
}

#[test]
fn an_approved_re_enrollment_that_carries_the_keys_reaches_them() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let server = Server::dev(work);
    let (_, _, ciphertext) = secret_of_tax_portal(&server, work);
    let data = server.data.clone();
    server.kill();

    let server = Server::start_with(&data, true, &["--dev-clock-offset-days", "200"]);
    let system_admin = server.admin("system-admin");
    let args = [
        "system",
        "token",
        "--name",
        "tax-portal",
        "--carry-keys",
        "--json",
    ];
    let id = approval_id(&ok(server.gt_as(&system_admin, &args)));
    ok(server.gt_as(
        &server.admin("security-admin"),
        &["approval", "approve", &id],
    ));
    let mut again = args.to_vec();
    again.extend_from_slice(&["--approval", &id]);
    let issued = json(&ok(server.gt_as(&system_admin, &again)));
    let token = issued["enrollment_token"].as_str().unwrap();
    let renewed = work.join("renewed");
    ok(server.gt(&[
        "enroll",
        "--token",
        token,
        "--out",
        renewed.to_str().unwrap(),
    ]));
    let plain = ok(decrypt(&server, &renewed, &ciphertext));
    assert_eq!(plain.trim(), "taxpayer records");
}

#[test]
fn one_security_administrator_cannot_ruin_a_systems_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let server = Server::dev(work);
    let (tax, key, ciphertext) = secret_of_tax_portal(&server, work);
    let security_admin = server.admin("security-admin");
    let system_admin = server.admin("system-admin");

    // Scheduling the destruction of another's key stops every use at once: a second officer.
    let schedule = ["kms", "key", "destroy", &key, "--days", "7", "--json"];
    let id = approval_id(&ok(server.gt_as(&security_admin, &schedule)));
    ok(decrypt(&server, &tax, &ciphertext));
    ok(server.gt_as(&system_admin, &["approval", "approve", &id]));
    let mut carry_out = schedule.to_vec();
    carry_out.extend_from_slice(&["--approval", &id]);
    let scheduled = json(&ok(server.gt_as(&security_admin, &carry_out)));
    assert!(
        !scheduled["destruction_scheduled_at"]
            .as_str()
            .unwrap()
            .is_empty(),
        "{scheduled}"
    );
    // The owner cancels it on its own.
    ok(server.gt_as(&tax, &["kms", "key", "cancel-destroy", &key]));
    ok(decrypt(&server, &tax, &ciphertext));

    // Marking another's key compromised files a request; the key is untouched meanwhile.
    let compromise = [
        "kms",
        "key",
        "state",
        &key,
        "compromised",
        "--reason",
        "leak",
        "--json",
    ];
    let id = approval_id(&ok(server.gt_as(&security_admin, &compromise)));
    encrypt(&server, &tax, &key, "still active");
    let own = fails(server.gt_as(&security_admin, &["approval", "approve", &id]));
    assert!(own.contains("PermissionDenied"), "{own}");
    ok(server.gt_as(
        &system_admin,
        &["approval", "approve", &id, "--reason", "confirmed"],
    ));
    let mut carry_out = compromise.to_vec();
    carry_out.extend_from_slice(&["--approval", &id]);
    let changed = json(&ok(server.gt_as(&security_admin, &carry_out)));
    assert_eq!(changed["state"], "compromised", "{changed}");

    // A compromised key protects nothing new, but the owner still reads its data, audited.
    let refused = fails(server.gt_as(&tax, &["kms", "key", "encrypt", &key, "--plaintext", "x"]));
    assert!(refused.contains("FailedPrecondition"), "{refused}");
    let plain = ok(decrypt(&server, &tax, &ciphertext));
    assert_eq!(plain.trim(), "taxpayer records");
    assert!(
        audit_actions(&server)
            .iter()
            .any(|a| a == "kms.key.use.retired")
    );

    // Immediate destruction: always a second officer.
    let destroy = [
        "kms",
        "key",
        "destroy",
        &key,
        "--now",
        "--reason",
        "court order",
        "--json",
    ];
    let id = approval_id(&ok(server.gt_as(&security_admin, &destroy)));
    ok(decrypt(&server, &tax, &ciphertext));
    ok(server.gt_as(&system_admin, &["approval", "approve", &id]));
    let mut carry_out = destroy.to_vec();
    carry_out.extend_from_slice(&["--approval", &id]);
    let destroyed = json(&ok(server.gt_as(&security_admin, &carry_out)));
    assert_eq!(destroyed["state"], "destroyed", "{destroyed}");
    let gone = fails(decrypt(&server, &tax, &ciphertext));
    assert!(gone.contains("destroyed"), "{gone}");
    let listed = ok(server.gt_as(&system_admin, &["approval", "list", "--status", "executed"]));
    assert_eq!(listed.lines().count(), 3, "{listed}");

    // A system follows and withdraws its own requests, and sees no one else's.
    let other = server.create_key(&tax, "aes-256-gcm", &[])["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let destroy_own = ["kms", "key", "destroy", &other, "--now", "--json"];
    let own = approval_id(&ok(server.gt_as(&tax, &destroy_own)));
    let again = approval_id(&ok(server.gt_as(&tax, &destroy_own)));
    assert_eq!(
        own, again,
        "asking again returns the pending request, not a new one"
    );
    ok(server.gt_as(&tax, &["approval", "show", &own]));
    let mine = ok(server.gt_as(&tax, &["approval", "list"]));
    assert_eq!(mine.lines().count(), 1, "{mine}");
    let foreign = fails(server.gt_as(&tax, &["approval", "show", &id]));
    assert!(foreign.contains("PermissionDenied"), "{foreign}");
    ok(server.gt_as(
        &tax,
        &["approval", "reject", &own, "--reason", "changed my mind"],
    ));
    let refused = fails(server.gt_as(&tax, &["approval", "approve", &own]));
    assert!(
        refused.contains("FailedPrecondition") || refused.contains("PermissionDenied"),
        "{refused}"
    );
}
