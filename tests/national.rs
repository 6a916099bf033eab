//! End to end: the national suite's keys in the key-management centre, checked with the
//! `openssl` command line (OpenSSL 3.0 has SM2, SM3 and SM4).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use support::{Server, fails, http_get, openssl};

/// The SM2 distinguishing identifier govtrust signs with (GM/T 0009's default).
const DISTID: &str = "distid:1234567812345678";

/// A dev server, an enrolled system `tax-portal` and a key of `algorithm` it owns, whose
/// public key (PEM) is in `<dir>/<public>`; the key's id.
fn system_key(
    algorithm: &str,
    public: &str,
) -> (tempfile::TempDir, Server, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let system = server.enrolled(dir.path(), "tax-portal");
    let key = server.create_key(&system, algorithm, &[]);
    assert_eq!(key["algorithm"], algorithm);
    let id = key["key_id"].as_str().unwrap().to_owned();
    let pem = server.ok(server.gt_as(&system, &["kms", "key", "public-key", &id]));
    std::fs::write(dir.path().join(public), &pem).unwrap();
    (dir, server, system, id)
}

#[test]
fn sm2_signatures_verify_with_openssl_given_the_default_id() {
    let (dir, server, system, id) = system_key("sm2-sm3", "sm2.pub");
    let id = id.as_str();
    let text = openssl(
        dir.path(),
        &["pkey", "-pubin", "-in", "sm2.pub", "-text", "-noout"],
    );
    assert!(text.contains("ASN1 OID: SM2"), "{text}");

    std::fs::write(dir.path().join("message"), b"a document to sign").unwrap();
    let signature = server.ok(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "sign",
            id,
            "--in",
            dir.path().join("message").to_str().unwrap(),
        ],
    ));
    let signature = B64.decode(signature.trim()).unwrap();
    std::fs::write(dir.path().join("message.sig"), &signature).unwrap();

    let verify = |extra: &[&str]| {
        let mut args = vec![
            "dgst",
            "-sm3",
            "-verify",
            "sm2.pub",
            "-signature",
            "message.sig",
        ];
        args.extend_from_slice(extra);
        args.push("message");
        Command::new("openssl")
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap()
    };
    let verified = verify(&["-sigopt", DISTID]);
    assert!(
        verified.status.success()
            && String::from_utf8_lossy(&verified.stdout).contains("Verified OK"),
        "{verified:?}"
    );
    // OpenSSL 3.0's own default ID is empty: without -sigopt a correct signature fails.
    let without_id = verify(&[]);
    assert!(!without_id.status.success(), "{without_id:?}");

    // The centre verifies its signature, and not over another message.
    let encoded = B64.encode(&signature);
    let path = dir.path().join("message");
    server.ok(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "verify",
            id,
            "--in",
            path.to_str().unwrap(),
            "--signature",
            &encoded,
        ],
    ));
    let refused = fails(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "verify",
            id,
            "--plaintext",
            "another document",
            "--signature",
            &encoded,
        ],
    ));
    assert!(refused.contains("NOT valid"), "{refused}");
}

#[test]
fn openssl_encrypts_to_an_sm2_key_and_the_centre_decrypts() {
    let (dir, server, system, id) = system_key("sm2-encrypt", "enc.pub");
    let id = id.as_str();
    std::fs::write(dir.path().join("secret"), b"escrowed by the centre").unwrap();
    openssl(
        dir.path(),
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "enc.pub",
            "-in",
            "secret",
            "-out",
            "secret.sm2",
        ],
    );
    let ciphertext = dir.path().join("secret.sm2");
    let decrypt = |file: &std::path::Path, key: &str| {
        server.gt_as(
            &system,
            &[
                "kms",
                "key",
                "decrypt",
                "--in",
                file.to_str().unwrap(),
                "--binary",
                "--key-id",
                key,
            ],
        )
    };
    let plaintext = server.ok(decrypt(&ciphertext, id));
    assert_eq!(plaintext, "escrowed by the centre");

    // Without the key named, the ciphertext says nothing of its key: a clear refusal.
    let unnamed = fails(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "decrypt",
            "--in",
            ciphertext.to_str().unwrap(),
            "--binary",
        ],
    ));
    assert!(unnamed.contains("gtk1"), "{unnamed}");

    // A truncated ciphertext, and one for another SM2 key: refused, naming why.
    let bytes = std::fs::read(&ciphertext).unwrap();
    let truncated = dir.path().join("truncated.sm2");
    std::fs::write(&truncated, &bytes[..bytes.len() - 5]).unwrap();
    let refused = fails(decrypt(&truncated, id));
    assert!(refused.contains("not an SM2 ciphertext"), "{refused}");
    let other = server.create_key(&system, "sm2-encrypt", &[]);
    let refused = fails(decrypt(&ciphertext, other["key_id"].as_str().unwrap()));
    assert!(refused.contains("another key"), "{refused}");

    // SM2 encryption keys do not sign; the centre's own SM2 ciphertexts decrypt in openssl's
    // format too (they are GM/T 0009 DER: check the structure openssl reads).
    let refused = fails(server.gt_as(&system, &["kms", "key", "sign", id, "--plaintext", "x"]));
    assert!(refused.contains("sign is not possible"), "{refused}");
    let made = server.ok(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "encrypt",
            id,
            "--plaintext",
            "from the centre",
        ],
    ));
    std::fs::write(
        dir.path().join("made.der"),
        B64.decode(made.trim()).unwrap(),
    )
    .unwrap();
    let parsed = openssl(
        dir.path(),
        &["asn1parse", "-inform", "DER", "-in", "made.der"],
    );
    assert_eq!(parsed.matches("INTEGER").count(), 2, "{parsed}");
    assert_eq!(parsed.matches("OCTET STRING").count(), 2, "{parsed}");
}

#[test]
fn sm4_gcm_keys_encrypt_and_refuse_a_flipped_tag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let system = server.enrolled(dir.path(), "tax-portal");
    let key = server.create_key(&system, "sm4-gcm", &[]);
    let id = key["key_id"].as_str().unwrap();
    let ciphertext = server.ok(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "encrypt",
            id,
            "--plaintext",
            "records",
            "--aad",
            "tax",
        ],
    ));
    let plaintext = server.ok(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "decrypt",
            "--ciphertext",
            ciphertext.trim(),
            "--aad",
            "tax",
        ],
    ));
    assert_eq!(plaintext, "records");
    let mut bytes = B64.decode(ciphertext.trim()).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    let refused = fails(server.gt_as(
        &system,
        &[
            "kms",
            "key",
            "decrypt",
            "--ciphertext",
            &B64.encode(&bytes),
            "--aad",
            "tax",
        ],
    ));
    assert!(refused.contains("authenticat"), "{refused}");
}

#[test]
fn the_national_hierarchy_verifies_with_openssl_and_gmssl() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    for name in ["root", "extranet", "intranet"] {
        let answer = http_get(&server.http_url(&format!("/ca/national-{name}.crt")));
        assert_eq!(answer.status, 200, "{name}");
        assert_eq!(answer.header("content-type"), Some("application/pkix-cert"));
        std::fs::write(dir.path().join(format!("{name}.der")), &answer.body).unwrap();
        openssl(
            dir.path(),
            &[
                "x509",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.der"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
        let text = openssl(
            dir.path(),
            &["x509", "-in", &format!("{name}.pem"), "-noout", "-text"],
        );
        assert!(text.contains("Signature Algorithm: SM2-with-SM3"), "{text}");
        assert!(text.contains("ASN1 OID: SM2"), "{text}");
        assert!(text.contains("CA:TRUE"), "{text}");
        let title = format!(
            "govtrust National {}{} CA",
            &name[..1].to_uppercase(),
            &name[1..]
        );
        assert!(text.contains(&title), "{text}");
    }
    assert_eq!(
        http_get(&server.http_url("/ca/national-nope.crt")).status,
        404
    );

    // OpenSSL 3.0 applies the SM2 ID to the target certificate only: link by link.
    for (issuer, cert) in [("root", "root"), ("root", "extranet"), ("root", "intranet")] {
        let verified = Command::new("openssl")
            .current_dir(dir.path())
            .args(["verify", "-partial_chain", "-vfyopt", DISTID, "-CAfile"])
            .args([format!("{issuer}.pem"), format!("{cert}.pem")])
            .output()
            .unwrap();
        assert!(
            verified.status.success(),
            "{issuer} -> {cert}: {verified:?}"
        );
    }
    // The international root does not certify the national CAs.
    let international = http_get(&server.http_url("/ca/root.crt")).body;
    std::fs::write(dir.path().join("intl.der"), international).unwrap();
    openssl(
        dir.path(),
        &[
            "x509", "-inform", "DER", "-in", "intl.der", "-out", "intl.pem",
        ],
    );
    let crossed = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "verify",
            "-partial_chain",
            "-vfyopt",
            DISTID,
            "-CAfile",
            "intl.pem",
            "extranet.pem",
        ])
        .output()
        .unwrap();
    assert!(!crossed.status.success());

    // The whole chain with a second, independent SM2 implementation (gmssl from PyPI), which the
    // script first checks refuses a changed TBS and another key.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sm2_chain.py");
    let checked = Command::new("python3")
        .current_dir(dir.path())
        .arg(&script)
        .args([
            "root.der",
            "root.der",
            "root.der",
            "extranet.der",
            "root.der",
            "intranet.der",
        ])
        .output()
        .expect("python3 runs");
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert_eq!(said.matches("verified under").count(), 3, "{said}");
    // A certificate signed by another SM2 key does not verify under the root.
    let wrong = Command::new("python3")
        .current_dir(dir.path())
        .arg(&script)
        .args(["extranet.der", "intranet.der"])
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "{}",
        String::from_utf8_lossy(&wrong.stdout)
    );
}

/// `openssl req` for an SM2 key `key` (made by `openssl genpkey -algorithm sm2`), signed with
/// SM3 and the SM2 ID `distid` (OpenSSL's own empty ID when `None`).
fn sm2_csr(dir: &std::path::Path, key: &str, csr: &str, subject: &str, distid: Option<&str>) {
    let mut args = vec![
        "req", "-new", "-key", key, "-sm3", "-out", csr, "-subj", subject,
    ];
    let sigopt = distid.map(|id| format!("distid:{id}"));
    if let Some(sigopt) = &sigopt {
        args.extend(["-sigopt", sigopt]);
    }
    openssl(dir, &args);
}

#[test]
fn sm2_requests_prove_possession_with_the_default_id_and_meet_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let server = Server::dev(work);
    let token = server.register("portal", &[]);
    openssl(work, &["genpkey", "-algorithm", "sm2", "-out", "sm2.key"]);
    let enroll = |csr: &str| {
        fails(server.gt(&[
            "enroll",
            "--token",
            &token,
            "--csr",
            work.join(csr).to_str().unwrap(),
            "--out",
            work.join("out").to_str().unwrap(),
        ]))
    };

    // Signed with OpenSSL's own (empty) ID, or another ID: no proof of possession.
    sm2_csr(work, "sm2.key", "empty-id.csr", "/CN=portal", None);
    let refused = enroll("empty-id.csr");
    assert!(
        refused.contains("does not verify with the ID 1234567812345678"),
        "{refused}"
    );
    sm2_csr(
        work,
        "sm2.key",
        "other-id.csr",
        "/CN=portal",
        Some("ALICE123@YAHOO.COM"),
    );
    let refused = enroll("other-id.csr");
    assert!(refused.contains("does not prove possession"), "{refused}");

    // A broken signature: one byte of the signature changed.
    sm2_csr(
        work,
        "sm2.key",
        "good.csr",
        "/CN=portal",
        Some("1234567812345678"),
    );
    let der = openssl(
        work,
        &[
            "req", "-in", "good.csr", "-outform", "DER", "-out", "good.der",
        ],
    );
    assert!(der.is_empty());
    let mut bytes = std::fs::read(work.join("good.der")).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    std::fs::write(work.join("broken.der"), &bytes).unwrap();
    let refused = enroll("broken.der");
    assert!(refused.contains("SM2"), "{refused}");

    // A point off the SM2 curve: the key is refused before anything else.
    let good = std::fs::read(work.join("good.der")).unwrap();
    let curve = [
        0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d, 0x03, 0x42, 0x00,
    ];
    let at = good.windows(curve.len()).position(|w| w == curve).unwrap() + curve.len();
    let mut off_curve = good.clone();
    off_curve[at + 64] ^= 0x01; // the point's last byte (y)
    std::fs::write(work.join("off-curve.der"), &off_curve).unwrap();
    let refused = enroll("off-curve.der");
    assert!(refused.contains("the SM2 key is not valid"), "{refused}");

    // A proper SM2 request passes the checks and meets the profile's key rule, which names
    // the rule: the international system profile certifies no SM2 key.
    let refused = enroll("good.csr");
    assert!(
        refused.contains("keys.algorithms") && refused.contains("key sm2 not allowed"),
        "{refused}"
    );
    // Nothing was issued; the token still works.
    let listed = server.ok(server.gt_as(
        &server.admin("system-admin"),
        &["cert", "list", "--system", "portal", "--json"],
    ));
    assert_eq!(support::json(&listed).as_array().unwrap().len(), 0);
}
