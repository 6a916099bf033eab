//! End to end: every state change is in the audit log, durably, and only the audit
//! administrator reads it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{Server, fails, json, ok};

#[test]
fn every_state_change_is_audited_and_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let token = server.register("ledger", &[]);
    let system = dir.path().join("ledger");
    ok(server.gt(&[
        "enroll",
        "--token",
        &token,
        "--out",
        system.to_str().unwrap(),
    ]));
    ok(server.gt_as(&system, &["renew"]));
    let key = server.create_key(&system, "ecdsa-p256", &[]);
    let key_id = key["key_id"].as_str().unwrap();
    ok(server.gt_as(&system, &["kms", "key", "rotate", key_id]));
    ok(server.gt_as(&system, &["kms", "key", "state", key_id, "suspend"]));
    ok(server.gt_as(&system, &["kms", "key", "destroy", key_id, "--days", "7"]));
    let data = server.data.clone();
    server.kill();

    let server = Server::start_with(&data, true, &[]);
    let auditor = server.admin("audit-admin");
    let text = ok(server.gt_as(&auditor, &["audit", "list", "--json"]));
    assert!(
        !text.contains(&token),
        "the audit log never holds an enrollment token"
    );
    let events = json(&text);
    let events = events.as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "kms.init",
        "kms.unseal",
        "ca.init",
        "ca.system.register",
        "ca.enroll",
        "ca.renew",
        "kms.key.create",
        "kms.key.rotate",
        "kms.key.state",
        "kms.key.destroy.schedule",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    let rotate = events
        .iter()
        .find(|e| e["action"] == "kms.key.rotate")
        .unwrap();
    assert_eq!(
        rotate["actor"],
        "spiffe://gov.example/org/finance/sys/ledger"
    );
    assert_eq!(rotate["target"], key_id);

    let denied = fails(server.gt_as(&server.admin("security-admin"), &["audit", "list"]));
    assert!(denied.contains("PermissionDenied"), "{denied}");
    let denied = fails(server.gt_as(&system, &["audit", "list"]));
    assert!(denied.contains("PermissionDenied"), "{denied}");
}

#[test]
fn a_closed_output_pipe_ends_the_client_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let auditor = server.admin("audit-admin");
    for args in [
        &["audit", "list"][..],
        &["audit", "list", "--json"],
        &["cert", "list"],
        &["kms", "key", "list", "--json"],
    ] {
        // The reader is gone before the client writes its first line (`... | head -0`).
        let mut child = server
            .command_as(&auditor, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !stderr.contains("panicked"),
            "{args:?}: {:?} {stderr}",
            output.status
        );
    }
}
