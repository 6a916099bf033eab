//! End to end: a deployment made with `init` starts sealed, unseals with 3 shares (not 2),
//! rejects a corrupted share, and after kill -9 and restart every certificate and key is there.
//! Administrator keys never land in the data directory; a role may bring its own CSR. Unseal
//! attempts expire and are audited; the security administrator can seal a running server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use support::{Deployment, Server, fails, govtrust, json, ok, openssl, openssl_csr};

fn init(dir: &Path) -> (PathBuf, PathBuf) {
    let deployment = Deployment::init(dir, &[]);
    assert!(
        deployment.output.contains("5 custodian shares"),
        "{}",
        deployment.output
    );
    (deployment.data, deployment.shares)
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

    let admins = dir.path().join("admins");
    let server = Server::start(&data, false).with_admins(&admins);
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

    let server = Server::start(&data, false).with_admins(&admins);
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
    let admins = dir.path().join("admins");
    assert_eq!(mode(&admins), 0o700);
    assert_eq!(mode(&admins.join("security-admin/key.pem")), 0o600);
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
        "--admin-out",
        dir.path().join("admins2").to_str().unwrap(),
    ]);
    let error = fails(refused);
    assert!(error.contains("not empty"), "{error}");
    assert!(!dir.path().join("admins2").exists());
    assert!(!second.exists(), "a refused init leaves no data directory");
    assert_eq!(std::fs::read(shares.join("share-1.txt")).unwrap(), before);

    let impossible = govtrust(&[
        "init",
        "--data",
        second.to_str().unwrap(),
        "--shares-out",
        dir.path().join("s3").to_str().unwrap(),
        "--admin-out",
        dir.path().join("a3").to_str().unwrap(),
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
        "--admin-out",
        dir.path().join("admins").to_str().unwrap(),
    ]);
    let error = fails(out);
    assert!(error.contains("overlap"), "{error}");
    assert!(!data.exists());
    assert!(!dir.path().join("admins").exists());

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

/// Every file under `dir` whose contents hold a PEM private key, relative to `dir`.
fn private_keys_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if String::from_utf8_lossy(&std::fs::read(&path).unwrap())
                .contains("PRIVATE KEY")
            {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn production_init_writes_no_administrator_key_into_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment::init(dir.path(), &[]);
    // The server's own TLS key must be there (it serves while sealed); nothing else.
    assert_eq!(private_keys_under(&deployment.data), ["tls/server.key"]);
    assert!(!deployment.data.join("admin").exists());
    for role in ["system-admin", "security-admin", "audit-admin"] {
        let credential = deployment.admins.join(role);
        for file in ["cert.pem", "key.pem", "ca.pem"] {
            assert!(credential.join(file).exists(), "{role}/{file}");
        }
        assert!(deployment.output.contains(credential.to_str().unwrap()));
    }
    let output = &deployment.output;
    assert!(
        output.contains("for the audit administrator only") && output.contains("then delete"),
        "{output}"
    );
}

#[test]
fn init_refuses_administrator_keys_inside_or_beside_the_data_and_the_shares() {
    let dir = tempfile::tempdir().unwrap();
    let (data, shares) = (dir.path().join("data"), dir.path().join("shares"));
    let try_init = |admin_out: Option<&Path>| {
        let mut args = vec!["init", "--data", data.to_str().unwrap()];
        args.extend(["--shares-out", shares.to_str().unwrap()]);
        if let Some(out) = admin_out {
            args.extend(["--admin-out", out.to_str().unwrap()]);
        }
        fails(govtrust(&args))
    };
    let nothing_written = || {
        assert!(!data.exists(), "a refused init left the data directory");
        assert!(!shares.exists(), "a refused init left the shares");
    };

    let error = try_init(None);
    assert!(
        error.contains("--admin-out")
            && error.contains("system-admin, security-admin, audit-admin"),
        "{error}"
    );
    nothing_written();
    // `missing/../data/admins` is inside the data directory once the directories are made.
    let detour = dir
        .path()
        .join("missing")
        .join("..")
        .join("data")
        .join("admins");
    for overlapping in [
        data.join("admin"),
        data.clone(),
        dir.path().to_path_buf(),
        detour,
    ] {
        let error = try_init(Some(&overlapping));
        assert!(
            error.contains("--admin-out") && error.contains("overlap"),
            "{error}"
        );
        nothing_written();
    }
    let error = try_init(Some(&shares.join("admins")));
    assert!(error.contains("apart from the shares"), "{error}");
    nothing_written();
    let detour = dir
        .path()
        .join("nope")
        .join("..")
        .join("shares")
        .join("admins");
    let error = try_init(Some(&detour));
    assert!(error.contains("apart from the shares"), "{error}");
    nothing_written();

    // A symbolic link does not hide the data directory.
    std::fs::create_dir(&data).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let error = try_init(Some(&link.join("admins")));
    assert!(error.contains("overlap"), "{error}");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    assert!(!shares.exists());
}

#[test]
fn an_administrator_brings_a_csr_made_with_openssl_and_uses_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), "auditor", "/CN=audit-admin", &[]);
    let argument = format!("audit-admin={}", csr.display());
    let deployment = Deployment::init(dir.path(), &["--admin-csr", &argument]);
    let auditor = deployment.admins.join("audit-admin");
    assert!(auditor.join("cert.pem").exists() && auditor.join("ca.pem").exists());
    assert!(
        !auditor.join("key.pem").exists(),
        "a key was generated for a CSR role"
    );
    assert!(deployment.admins.join("security-admin/key.pem").exists());
    assert!(
        deployment.output.contains("holds the CSR's key"),
        "{}",
        deployment.output
    );
    let verified = openssl(
        &auditor,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-untrusted",
            "cert.pem",
            "-purpose",
            "sslclient",
            "cert.pem",
        ],
    );
    assert!(verified.contains("OK"), "{verified}");

    let server = deployment.serve(&[]);
    deployment.unseal(&server);
    let (cert, key) = (auditor.join("cert.pem"), dir.path().join("auditor.key"));
    let as_auditor = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--cert", cert.to_str().unwrap()]);
        all.extend(["--key", key.to_str().unwrap()]);
        server.gt(&all)
    };
    let events = json(&ok(as_auditor(&["audit", "list", "--json"])));
    let init = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "ca.init")
        .unwrap()
        .clone();
    assert_eq!(init["details"]["audit-admin_key"], "csr");
    assert_eq!(init["details"]["security-admin_key"], "generated");
    // The role came with the certificate: the auditor reads, and may not create keys.
    let denied = fails(as_auditor(&[
        "kms",
        "key",
        "create",
        "--algorithm",
        "aes-256-gcm",
    ]));
    assert!(denied.contains("PermissionDenied"), "{denied}");
}

#[test]
fn a_refused_administrator_csr_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "weak.key",
            "-out",
            "weak.csr",
            "-subj",
            "/CN=security-admin",
        ],
    );
    let weak = dir.path().join("weak.csr");
    let wrong_name = openssl_csr(dir.path(), "other", "/CN=system-admin", &[]);
    for (csr, expected) in [
        (weak, "RSA-1024 keys are not allowed"),
        (wrong_name, "may name only security-admin"),
    ] {
        let root = tempfile::tempdir().unwrap();
        let (data, shares, admins) = (
            root.path().join("data"),
            root.path().join("shares"),
            root.path().join("admins"),
        );
        let argument = format!("security-admin={}", csr.display());
        let error = fails(govtrust(&[
            "init",
            "--data",
            data.to_str().unwrap(),
            "--shares-out",
            shares.to_str().unwrap(),
            "--admin-out",
            admins.to_str().unwrap(),
            "--admin-csr",
            &argument,
        ]));
        assert!(
            error.contains("the CSR for security-admin was refused") && error.contains(expected),
            "{error}"
        );
        for left in [data, shares, admins] {
            assert!(!left.exists(), "{} was left behind", left.display());
        }
    }
}

#[test]
fn every_role_by_csr_needs_no_admin_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "init".to_owned(),
        "--data".to_owned(),
        dir.path().join("data").display().to_string(),
        "--shares-out".to_owned(),
        dir.path().join("shares").display().to_string(),
    ];
    for role in ["system-admin", "security-admin", "audit-admin"] {
        let csr = openssl_csr(dir.path(), role, &format!("/CN={role}"), &[]);
        args.push("--admin-csr".to_owned());
        args.push(format!("{role}={}", csr.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(govtrust(&args));
    let data = dir.path().join("data");
    assert_eq!(private_keys_under(&data), ["tls/server.key"]);
    assert!(data.join("admin/audit-admin/cert.pem").exists());
}

#[test]
fn the_security_administrator_seals_a_running_server_and_it_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment::init(dir.path(), &[]);
    let server = deployment.serve(&[]);
    deployment.unseal(&server);
    let security = server.admin("security-admin");
    let key = server.create_key(&security, "aes-256-gcm", &[]);
    let key_id = key["key_id"].as_str().unwrap().to_owned();
    let encrypt = ["kms", "key", "encrypt", &key_id, "--plaintext", "p"];
    let ciphertext = ok(server.gt_as(&security, &encrypt));

    for role in ["system-admin", "audit-admin"] {
        let denied = fails(server.gt_as(&server.admin(role), &["seal"]));
        assert!(denied.contains("PermissionDenied"), "{denied}");
    }
    let anonymous = fails(server.gt(&["seal"]));
    assert!(anonymous.contains("Unauthenticated"), "{anonymous}");
    ok(server.gt_as(&security, &["kms", "key", "show", &key_id]));

    let sealed = ok(server.gt_as(&security, &["seal", "--reason", "drill"]));
    assert!(sealed.contains("sealed"), "{sealed}");
    for args in [
        &encrypt[..],
        &["kms", "key", "decrypt", "--ciphertext", ciphertext.trim()],
        &["kms", "key", "show", &key_id],
        &["kms", "key", "create", "--algorithm", "aes-256-gcm"],
    ] {
        let refused = fails(server.gt_as(&security, args));
        assert!(
            refused.contains("FailedPrecondition") && refused.contains("sealed"),
            "{args:?}: {refused}"
        );
    }
    assert_eq!(json(&ok(server.gt(&["status", "--json"])))["sealed"], true);

    // The audit log is not sealed: the auditor reads who sealed, and the unseal attempts.
    let auditor = server.admin("audit-admin");
    let events = json(&ok(server.gt_as(&auditor, &["audit", "list", "--json"])));
    let events = events.as_array().unwrap();
    let seal = events.iter().find(|e| e["action"] == "kms.seal").unwrap();
    assert_eq!(seal["actor"], "spiffe://gov.example/person/security-admin");
    assert_eq!(seal["details"]["reason"], "drill");
    assert!(
        seal["details"]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(!seal["time"].as_str().unwrap().is_empty());

    deployment.unseal(&server);
    let plain = ok(server.gt_as(
        &security,
        &["kms", "key", "decrypt", "--ciphertext", ciphertext.trim()],
    ));
    assert_eq!(plain, "p");
}

#[test]
fn unseal_attempts_are_audited_expire_and_status_hides_the_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment::init(dir.path(), &[]);
    let server = deployment.serve(&["--unseal-timeout", "2s"]);
    let unseal =
        |share: &Path| server.gt(&["unseal", "--share", share.to_str().unwrap(), "--json"]);

    let first = json(&ok(unseal(&deployment.share(1))));
    assert_eq!(
        (first["progress"].clone(), first["deployment_id"].clone()),
        (1.into(), "".into())
    );
    assert!(!first["attempt_expires_at"].as_str().unwrap().is_empty());
    let status = json(&ok(server.gt(&["status", "--json"])));
    assert_eq!(
        status["deployment_id"], "",
        "an anonymous caller learned the deployment id"
    );
    let mut bad = std::fs::read_to_string(deployment.share(2)).unwrap();
    bad = bad.replace("index: 2", "index: 9");
    std::fs::write(dir.path().join("bad.txt"), bad).unwrap();
    let rejected = fails(unseal(&dir.path().join("bad.txt")));
    assert!(rejected.contains("InvalidArgument"), "{rejected}");

    std::thread::sleep(std::time::Duration::from_millis(2500));
    let late = json(&ok(unseal(&deployment.share(2))));
    assert_eq!(
        late["progress"], 1,
        "a share older than the timeout still counted"
    );
    assert_eq!(late["progress_reset"], true);
    let text = ok(server.gt(&["unseal", "--share", deployment.share(3).to_str().unwrap()]));
    assert!(text.contains("sealed: 2/3"), "{text}");
    ok(unseal(&deployment.share(4)));

    let auditor = server.admin("audit-admin");
    let status = json(&ok(server.gt_as(&auditor, &["status", "--json"])));
    assert!(
        status["deployment_id"].as_str().unwrap().starts_with("d-"),
        "{status}"
    );
    let events = json(&ok(server.gt_as(&auditor, &["audit", "list", "--json"])));
    let attempts: Vec<(String, String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("kms.unseal"))
        .filter(|e| {
            e["details"]["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.1:"))
        })
        .map(|e| {
            assert_eq!(e["actor"], "custodian");
            (
                e["action"].as_str().unwrap().to_owned(),
                e["details"]["share"].as_str().unwrap().to_owned(),
                e["details"]["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("kms.unseal.share", "1", "accepted (1/3)"),
        ("kms.unseal.rejected", "9", "rejected"),
        ("kms.unseal.share", "2", "accepted (1/3)"),
        ("kms.unseal.share", "3", "accepted (2/3)"),
        ("kms.unseal", "4", "unsealed"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, s, o)| (a.to_string(), s.to_string(), o.to_string()))
        .collect();
    assert_eq!(attempts, expected);
    let all = events.as_array().unwrap();
    assert!(all.iter().any(|e| e["action"] == "kms.unseal.expired"));
    let rejected = all
        .iter()
        .find(|e| e["action"] == "kms.unseal.rejected")
        .unwrap();
    assert!(
        rejected["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("checksum"),
        "{rejected}"
    );
}
