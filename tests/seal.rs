//! End to end: a deployment made with `init` starts sealed, unseals with 3 shares (not 2),
//! rejects a corrupted share, and after kill -9 and restart every certificate and key is there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use support::{Server, fails, govtrust, json, ok};

fn init(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    let shares = dir.join("shares");
    let out = govtrust(&[
        "init",
        "--data",
        data.to_str().unwrap(),
        "--shares-out",
        shares.to_str().unwrap(),
    ]);
    let text = ok(out);
    assert!(text.contains("5 custodian shares"), "{text}");
    (data, shares)
}

fn unseal(server: &Server, share: &Path) -> serde_json::Value {
    json(&ok(server.gt(&[
        "unseal",
        "--share",
        share.to_str().unwrap(),
        "--json",
    ])))
}

#[test]
fn restart_comes_up_sealed_unseals_with_three_shares_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (data, shares) = init(dir.path());
    let share = |n: u32| shares.join(format!("share-{n}.txt"));

    let server = Server::start(&data, false);
    let status = json(&ok(server.gt(&["status", "--json"])));
    assert_eq!(status["sealed"], true);
    let sealed = fails(server.gt_as(
        &server.admin("security-admin"),
        &["kms", "key", "create", "--algorithm", "aes-256-gcm"],
    ));
    assert!(
        sealed.contains("FailedPrecondition") && sealed.contains("sealed"),
        "{sealed}"
    );
    for n in 1..=3 {
        unseal(&server, &share(n));
    }

    // State worth keeping: a key, a ciphertext, an enrolled system.
    let admin = server.admin("security-admin");
    let key = server.create_key(&admin, "aes-256-gcm", &[]);
    let key_id = key["key_id"].as_str().unwrap().to_owned();
    let ciphertext = ok(server.gt_as(
        &admin,
        &[
            "kms",
            "key",
            "encrypt",
            &key_id,
            "--plaintext",
            "kept across restarts",
            "--aad",
            "a",
        ],
    ));
    let token = server.register("records", &[]);
    let enrolled = json(&ok(server.gt(&[
        "enroll",
        "--token",
        &token,
        "--out",
        dir.path().join("records").to_str().unwrap(),
        "--json",
    ])));
    server.kill();

    let server = Server::start(&data, false);
    assert_eq!(json(&ok(server.gt(&["status", "--json"])))["sealed"], true);
    assert_eq!(unseal(&server, &share(2))["progress"], 1);

    let mut corrupted = std::fs::read_to_string(share(4)).unwrap();
    let at = corrupted.find("share: ").unwrap() + 10;
    let flipped = if &corrupted[at..=at] == "A" { "B" } else { "A" };
    corrupted.replace_range(at..=at, flipped);
    std::fs::write(dir.path().join("bad-share.txt"), corrupted).unwrap();
    let rejected = fails(server.gt(&[
        "unseal",
        "--share",
        dir.path().join("bad-share.txt").to_str().unwrap(),
    ]));
    assert!(rejected.contains("InvalidArgument"), "{rejected}");
    let duplicate = fails(server.gt(&["unseal", "--share", share(2).to_str().unwrap()]));
    assert!(duplicate.contains("InvalidArgument"), "{duplicate}");

    let status = unseal(&server, &share(5));
    assert_eq!(
        (status["sealed"].clone(), status["progress"].clone()),
        (true.into(), 2.into())
    );
    let sealed = fails(server.gt_as(&admin, &["kms", "key", "show", &key_id]));
    assert!(sealed.contains("sealed"), "{sealed}");
    assert_eq!(unseal(&server, &share(1))["sealed"], false);

    let plain = ok(server.gt_as(
        &admin,
        &[
            "kms",
            "key",
            "decrypt",
            "--ciphertext",
            ciphertext.trim(),
            "--aad",
            "a",
        ],
    ));
    assert_eq!(plain, "kept across restarts");
    let serial = enrolled["serial"].as_str().unwrap();
    let shown = json(&ok(server.gt_as(
        &server.admin("system-admin"),
        &["cert", "show", serial, "--json"],
    )));
    assert_eq!(
        shown["spiffe_id"],
        "spiffe://gov.example/org/finance/sys/records"
    );
}

#[test]
fn init_keeps_secrets_private_and_never_overwrites_shares() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (data, shares) = init(dir.path());
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("govtrust.redb")), 0o600);
    assert_eq!(mode(&data.join("tls/server.key")), 0o600);
    assert_eq!(mode(&data.join("admin/security-admin/key.pem")), 0o600);
    assert_eq!(mode(&shares.join("share-1.txt")), 0o600);

    // A second deployment may not write over the first one's shares.
    let before = std::fs::read(shares.join("share-1.txt")).unwrap();
    let second = dir.path().join("second");
    let refused = govtrust(&[
        "init",
        "--data",
        second.to_str().unwrap(),
        "--shares-out",
        shares.to_str().unwrap(),
    ]);
    let error = fails(refused);
    assert!(error.contains("not empty"), "{error}");
    assert!(!second.exists(), "a refused init leaves no data directory");
    assert_eq!(std::fs::read(shares.join("share-1.txt")).unwrap(), before);

    let impossible = govtrust(&[
        "init",
        "--data",
        second.to_str().unwrap(),
        "--shares-out",
        dir.path().join("s3").to_str().unwrap(),
        "--threshold",
        "1",
    ]);
    let error = fails(impossible);
    assert!(error.contains("threshold"), "{error}");
    assert!(!second.exists());
}

#[test]
fn init_and_dev_mode_never_delete_what_they_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inside = data.join("shares");
    let out = govtrust(&[
        "init",
        "--data",
        data.to_str().unwrap(),
        "--shares-out",
        inside.to_str().unwrap(),
    ]);
    let error = fails(out);
    assert!(error.contains("overlap"), "{error}");
    assert!(!data.exists());

    // A directory with someone's files is not a dev deployment: refused, and left alone.
    let occupied = dir.path().join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "mine").unwrap();
    let out = govtrust(&[
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--data",
        occupied.to_str().unwrap(),
    ]);
    let error = fails(out);
    assert!(error.contains("deletes nothing"), "{error}");
    assert_eq!(
        std::fs::read_to_string(occupied.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&occupied).unwrap().count(), 1);
}
