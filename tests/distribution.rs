//! End to end: distribution (配发). An exportable key leaves only wrapped (HPKE) to a
//! recipient's public key and imports intact; a non-exportable key does not leave.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{Server, fails, json, ok};

#[test]
fn exportable_keys_travel_wrapped_and_others_stay() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let gt = |args: &[&str]| server.gt_as(&admin, args);
    let create = |extra: &[&str]| {
        server.create_key(&admin, "ed25519", extra)["key_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let recipient = ok(gt(&["kms", "wrapping-key"]));
    let bundle = dir.path().join("bundle.json");
    let bundle = bundle.to_str().unwrap();

    let kept = create(&[]);
    let refused = fails(gt(&[
        "kms",
        "key",
        "export",
        &kept,
        "--recipient",
        recipient.trim(),
        "--out",
        bundle,
    ]));
    assert!(
        refused.contains("PermissionDenied") && refused.contains("exportable"),
        "{refused}"
    );

    let exportable = create(&["--exportable"]);
    ok(gt(&[
        "kms",
        "key",
        "export",
        &exportable,
        "--recipient",
        recipient.trim(),
        "--out",
        bundle,
    ]));
    let text = std::fs::read_to_string(bundle).unwrap();
    assert!(text.contains("\"algorithm\": \"ed25519\""), "{text}");
    let imported = json(&ok(gt(&["kms", "key", "import", "--in", bundle, "--json"])));
    let imported = imported["key_id"].as_str().unwrap();
    assert_ne!(imported, exportable);
    assert_eq!(
        ok(gt(&["kms", "key", "public-key", imported])),
        ok(gt(&["kms", "key", "public-key", &exportable]))
    );

    // A system cannot export a key it does not own.
    let token = server.register("archive", &[]);
    let system = dir.path().join("archive");
    ok(server.gt(&[
        "enroll",
        "--token",
        &token,
        "--out",
        system.to_str().unwrap(),
    ]));
    let denied = fails(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "export",
            &exportable,
            "--recipient",
            recipient.trim(),
            "--out",
            bundle,
        ],
    ));
    assert!(denied.contains("PermissionDenied"), "{denied}");
}
