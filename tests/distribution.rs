//! End to end: distribution (配发). An exportable key leaves only wrapped (HPKE) to one named
//! recipient, as a single-use bundle; a non-exportable key does not leave. Every attack on a
//! bundle is performed with the real binary and refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use support::{Server, fails, json, ok};

const ARCHIVE: &str = "spiffe://gov.example/org/finance/sys/archive";
const INTRUDER: &str = "spiffe://gov.example/org/finance/sys/intruder";
const SECURITY: &str = "spiffe://gov.example/person/security-admin";

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
    let export = |key: &str, to: &str| {
        gt(&[
            "kms",
            "key",
            "export",
            key,
            "--to",
            to,
            "--recipient",
            recipient.trim(),
            "--out",
            bundle,
        ])
    };

    let kept = create(&[]);
    let refused = fails(export(&kept, SECURITY));
    assert!(
        refused.contains("PermissionDenied") && refused.contains("exportable"),
        "{refused}"
    );

    let exportable = create(&["--exportable"]);
    let refused = fails(export(&exportable, "anyone"));
    assert!(
        refused.contains("InvalidArgument") && refused.contains("recipient"),
        "{refused}"
    );
    let allotted = fails(gt(&[
        "kms",
        "key",
        "export",
        &exportable,
        "--to",
        SECURITY,
        "--recipient",
        recipient.trim(),
        "--encryptions",
        "5",
        "--out",
        bundle,
    ]));
    assert!(
        allotted.contains("encryptions") && allotted.contains("signing key"),
        "{allotted}"
    );
    ok(export(&exportable, SECURITY));
    let text = std::fs::read_to_string(bundle).unwrap();
    let file = json(&text);
    assert_eq!(file["format"], "govtrust-wrapped-key-v3");
    assert_eq!(file["algorithm"], "ed25519");
    assert_eq!(file["encryptions"], 0, "a signing key's copy gets none");
    assert_eq!(file["recipient"], SECURITY);
    assert_eq!(file["key_id"], exportable.as_str());
    let imported = json(&ok(gt(&["kms", "key", "import", "--in", bundle, "--json"])));
    let imported = imported["key_id"].as_str().unwrap();
    assert_ne!(imported, exportable);
    assert_eq!(
        ok(gt(&["kms", "key", "public-key", imported])),
        ok(gt(&["kms", "key", "public-key", &exportable]))
    );

    // A system cannot export a key it does not own.
    let system = server.enrolled(dir.path(), "archive");
    let denied = fails(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "export",
            &exportable,
            "--to",
            ARCHIVE,
            "--recipient",
            recipient.trim(),
            "--out",
            bundle,
        ],
    ));
    assert!(denied.contains("PermissionDenied"), "{denied}");
}

#[test]
fn a_bundle_is_not_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let archive = server.enrolled(dir.path(), "archive");
    let intruder = server.enrolled(dir.path(), "intruder");
    let wrapping = ok(server.gt_as(&admin, &["kms", "wrapping-key"]));
    let source = server.create_key(&admin, "aes-256-gcm", &["--exportable"]);
    let source = source["key_id"].as_str().unwrap().to_owned();
    let path = dir.path().join("bundle.json");
    let bundle = path.to_str().unwrap();
    let out = ok(server.gt_as(
        &admin,
        &[
            "kms",
            "key",
            "export",
            &source,
            "--to",
            ARCHIVE,
            "--recipient",
            wrapping.trim(),
            "--out",
            bundle,
        ],
    ));
    assert!(
        out.contains(&format!("only {ARCHIVE} can import it")),
        "{out}"
    );
    let file = json(&std::fs::read_to_string(bundle).unwrap());
    let bundle_id = file["bundle_id"].as_str().unwrap().to_owned();
    let import = |who: &Path, file: &str, extra: &[&str]| {
        let mut args = vec!["kms", "key", "import", "--in", file, "--json"];
        args.extend_from_slice(extra);
        server.gt_as(who, &args)
    };

    // Another system, and the security administrator, cannot import it.
    for (who, identity) in [(&intruder, INTRUDER), (&admin, SECURITY)] {
        let refused = fails(import(who, bundle, &[]));
        assert!(
            refused.contains("PermissionDenied")
                && refused.contains(ARCHIVE)
                && refused.contains(identity),
            "{refused}"
        );
    }
    // Readdressing the bundle breaks it.
    let forged = dir.path().join("forged.json");
    let mut readdressed = file.clone();
    readdressed["recipient"] = INTRUDER.into();
    std::fs::write(&forged, readdressed.to_string()).unwrap();
    let refused = fails(import(&intruder, forged.to_str().unwrap(), &[]));
    assert!(
        refused.contains("InvalidArgument") && refused.contains("does not unwrap"),
        "{refused}"
    );
    // The recipient cannot widen it.
    let refused = fails(import(&archive, bundle, &["--exportable"]));
    assert!(
        refused.contains("PermissionDenied") && refused.contains("re-export"),
        "{refused}"
    );
    let refused = fails(import(&archive, bundle, &["--owner", INTRUDER]));
    assert!(
        refused.contains("InvalidArgument") && refused.contains("owner"),
        "{refused}"
    );

    // The recipient imports it, once.
    let copy = json(&ok(import(&archive, bundle, &[])));
    let copy_id = copy["key_id"].as_str().unwrap().to_owned();
    assert_eq!(copy["owner"], ARCHIVE);
    assert_eq!(copy["exportable"], false);
    assert_eq!(copy["created_by"], ARCHIVE);
    assert_eq!(copy["origin"], "imported");
    assert_eq!(copy["imported_from"]["source_key_id"], source.as_str());
    assert_eq!(copy["imported_from"]["bundle_id"], bundle_id.as_str());
    assert_eq!(copy["imported_from"]["exporter"], SECURITY);
    let refused = fails(import(&archive, bundle, &[]));
    assert!(
        refused.contains("AlreadyExists")
            && refused.contains(&format!(
                "bundle {bundle_id} was already imported as key {copy_id}"
            )),
        "{refused}"
    );
    let shown = ok(server.gt_as(&archive, &["kms", "key", "show", &copy_id]));
    assert!(
        shown.contains(&format!("imported from key {source}")),
        "{shown}"
    );

    // The source lists the bundle and the copy.
    let shown = json(&ok(
        server.gt_as(&admin, &["kms", "key", "show", &source, "--json"])
    ));
    assert_eq!(shown["origin"], "generated");
    let exports = shown["exports"].as_array().unwrap();
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0]["terms"]["recipient"], ARCHIVE);
    assert_eq!(exports[0]["imported_as"], copy_id.as_str());

    // The audit log names both ends.
    let events = json(&ok(
        server.gt_as(&server.admin("audit-admin"), &["audit", "list", "--json"])
    ));
    let events = events.as_array().unwrap();
    let find = |action: &str| events.iter().find(|e| e["action"] == action).unwrap();
    let exported = find("kms.key.export");
    assert_eq!(exported["details"]["recipient"], ARCHIVE);
    assert_eq!(exported["details"]["bundle"], bundle_id.as_str());
    let imported = find("kms.key.import");
    assert_eq!(imported["actor"], ARCHIVE);
    assert_eq!(imported["details"]["bundle"], bundle_id.as_str());
    assert_eq!(imported["details"]["source_key"], source.as_str());
    assert_eq!(imported["details"]["source_version"], "1");
    assert_eq!(imported["details"]["exporter"], SECURITY);

    // A bundle of the old format, bound to nobody, is refused by name.
    let old = dir.path().join("old.json");
    let mut unbound = file.clone();
    unbound["format"] = "govtrust-wrapped-key-v1".into();
    std::fs::write(&old, unbound.to_string()).unwrap();
    let refused = fails(import(&archive, old.to_str().unwrap(), &[]));
    assert!(refused.contains("names no recipient"), "{refused}");
}
