//! End to end: administrators renew their own certificates, `renew --daemon` keeps a system's
//! renewed, and the server renews its TLS certificate two thirds into its lifetime without a
//! restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Server, binary, json, ok, openssl};

fn serial(cert: &Path) -> String {
    let out = openssl(
        cert.parent().unwrap(),
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    );
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

fn copy_credential(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["cert.pem", "key.pem", "ca.pem"] {
        if from.join(file).exists() {
            std::fs::copy(from.join(file), to.join(file)).unwrap();
        }
    }
}

#[test]
fn an_administrator_renews_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let officer = dir.path().join("officer");
    copy_credential(&server.admin("security-admin"), &officer);
    let before = serial(&officer.join("cert.pem"));
    let renewed = json(&ok(server.gt_as(&officer, &["admin", "renew", "--json"])));
    let after = serial(&officer.join("cert.pem"));
    assert_ne!(before, after);
    assert_eq!(renewed["serial"], after);
    assert_eq!(
        renewed["spiffe_id"],
        "spiffe://gov.example/person/security-admin"
    );
    let mode = std::fs::metadata(officer.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The new certificate acts as the role; the old one is superseded, linked to it.
    ok(server.gt_as(&officer, &["kms", "key", "list"]));
    let old = json(&ok(
        server.gt_as(&officer, &["cert", "show", &before, "--json"])
    ));
    assert_eq!(old["status"], "superseded");
    assert_eq!(old["superseded_by"], after);
    // An administrator cannot renew into another role.
    let error =
        support::fails(server.gt_as(&officer, &["admin", "renew", "--name", "audit-admin"]));
    assert!(
        error.contains("InvalidArgument") || error.contains("not allowed"),
        "{error}"
    );
}

#[test]
fn the_renew_daemon_renews_keeps_the_names_and_the_key_private_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let token = server.register("web-portal", &["--dns", "portal.gov.example"]);
    let out = dir.path().join("web-portal");
    ok(server.gt(&[
        "enroll",
        "--token",
        &token,
        "--out",
        out.to_str().unwrap(),
        "--dns",
        "portal.gov.example",
    ]));
    let first = serial(&out.join("cert.pem"));
    // Renew when 10,000 days are left: at once, then not again for a minute.
    let daemon = Command::new(binary())
        .args([
            "renew",
            "--daemon",
            "--when-left",
            "10000d",
            "--identity",
            out.to_str().unwrap(),
        ])
        .env("GOVTRUST_SERVER", &server.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while serial(&out.join("cert.pem")) == first {
        assert!(Instant::now() < deadline, "the daemon did not renew");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let second = serial(&out.join("cert.pem"));
    assert_ne!(second, first);
    let text = openssl(
        &out,
        &[
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            "cert.pem",
        ],
    );
    assert!(
        text.contains("DNS:portal.gov.example"),
        "the renewal kept the DNS name: {text}"
    );
    let mode = std::fs::metadata(out.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let pid = daemon.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = daemon.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        serial(&out.join("cert.pem")),
        second,
        "renewed once in the minute"
    );
    // The renewed credential works.
    server.create_key(&out, "aes-256-gcm", &[]);
}

/// The serial of the certificate the server presents on `port`.
fn presented_serial(dir: &Path, port: &str) -> String {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    let pem: String = shown
        .split_inclusive('\n')
        .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE"))
        .take_while(|line| !line.starts_with("-----END CERTIFICATE"))
        .collect::<String>()
        + "-----END CERTIFICATE-----\n";
    let file = dir.join("presented.pem");
    std::fs::write(&file, pem).unwrap();
    serial(&file)
}

#[test]
fn the_server_renews_its_tls_certificate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, true);
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let initial = serial(&data.join("tls/server.pem"));
    assert_eq!(presented_serial(dir.path(), &port), initial);
    server.stop();
    // 300 days on, the 397-day certificate is past two thirds of its lifetime.
    let server = Server::start_with(&data, true, &["--dev-clock-offset-days", "300"]);
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while serial(&data.join("tls/server.pem")) == initial {
        assert!(Instant::now() < deadline, "not renewed: {}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let renewed = serial(&data.join("tls/server.pem"));
    assert_eq!(
        presented_serial(dir.path(), &port),
        renewed,
        "served without a restart"
    );
    assert!(
        server
            .log()
            .contains("renewed the server's TLS certificate"),
        "{}",
        server.log()
    );
    let key_mode = std::fs::metadata(data.join("tls/server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
}

#[test]
fn a_renewed_certificate_stops_at_the_grace_or_when_its_successor_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), true, &["--renewal-grace", "3s"]);
    let tax = server.enrolled(dir.path(), "tax-portal");
    let old = dir.path().join("tax-old");
    copy_credential(&tax, &old);
    let old_serial = serial(&old.join("cert.pem"));
    ok(server.gt(&["renew", "--identity", tax.to_str().unwrap()]));
    let new_serial = serial(&tax.join("cert.pem"));

    // Within the grace the old certificate still works, but it may not revoke its successor,
    // and neither may a system learn of certificates that are not its own.
    server.create_key(&old, "aes-256-gcm", &[]);
    let error = support::fails(server.gt_as(
        &old,
        &["cert", "revoke", &new_serial, "--reason", "key-compromise"],
    ));
    assert!(
        error.contains("PermissionDenied") && error.contains("only its own"),
        "{error}"
    );
    let error = support::fails(server.gt_as(
        &tax,
        &[
            "cert",
            "revoke",
            &"7e".repeat(17),
            "--reason",
            "key-compromise",
        ],
    ));
    assert!(
        error.contains("PermissionDenied") && !error.contains("NotFound"),
        "{error}"
    );

    // Suspending the newest certificate stops its predecessor at once.
    let officer = server.admin("security-admin");
    ok(server.gt_as(&officer, &["cert", "suspend", &new_serial]));
    let error = support::fails(server.gt_as(
        &old,
        &["kms", "key", "create", "--algorithm", "aes-256-gcm"],
    ));
    assert!(error.contains("revoked or suspended"), "{error}");
    let error = support::fails(server.gt(&["renew", "--identity", old.to_str().unwrap()]));
    assert!(
        error.contains("Unauthenticated") || error.contains("suspended"),
        "{error}"
    );
    ok(server.gt_as(&officer, &["cert", "unsuspend", &new_serial]));

    // Past the grace the old certificate is refused, the new one serves.
    std::thread::sleep(Duration::from_secs(4));
    let error = support::fails(server.gt_as(
        &old,
        &["kms", "key", "create", "--algorithm", "aes-256-gcm"],
    ));
    assert!(error.contains("use the newest certificate"), "{error}");
    server.create_key(&tax, "aes-256-gcm", &[]);
    // The audit log names the certificate a holder acted with.
    ok(server.gt_as(
        &tax,
        &["cert", "revoke", &old_serial, "--reason", "superseded"],
    ));
    let audit = ok(server.gt_as(
        &server.admin("audit-admin"),
        &["audit", "list", "--action", "ca.cert.revoke", "--json"],
    ));
    assert!(
        audit.contains(&format!("\"actor_certificate\":\"{new_serial}\""))
            || audit.contains(&new_serial),
        "{audit}"
    );
}
