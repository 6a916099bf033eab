//! End to end: one certificate of each profile from the real binary (a system's over mTLS, a
//! person's with a one-time token), each accepted by `openssl verify -purpose`, pointing to the
//! server's HTTP port (SKI, AKI, CRL distribution point, AIA), and linted by an independent
//! linter, pkilint, with the CA certificates; a person's certificate exported as PKCS#12 and
//! read by `openssl pkcs12`; requests outside a profile refused with nothing stored.
//!
//! pkilint is a Python package: `pip install pkilint==0.13.3` (`.ci/run` installs it). Without
//! `lint_pkix_cert` on the PATH the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Server, fails, http_get, json, ok, openssl};

/// pkilint 0.13's known false positives, filtered by exactly these codes and values:
/// its URI validator knows only web schemes, and it wants a dot in every domain name.
const SPIFFE_URI: (&str, &str) = ("pkix.invalid_uri_syntax", "\"spiffe://");
const LOCALHOST: (&str, &str) = ("pkix.invalid_domain_name_syntax", "\"localhost\"");

/// One certificate to check: where it is and which `openssl verify -purpose` it serves.
struct Issued {
    name: String,
    dir: PathBuf,
    purpose: &'static str,
    issuer: &'static str,
}

fn issued(name: &str, dir: PathBuf, purpose: &'static str, issuer: &'static str) -> Issued {
    Issued {
        name: name.to_owned(),
        dir,
        purpose,
        issuer,
    }
}

#[test]
fn every_profile_verifies_lints_clean_and_points_to_the_http_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let system = enrolled_system(&server, dir.path());
    let mut certificates = vec![
        issued("system-identity", system.clone(), "sslserver", "extranet"),
        issued("system-identity", system.clone(), "sslclient", "extranet"),
    ];
    for (profile, purpose, extra) in [
        ("tls-server", "sslserver", &["--dns", "tax.gov.example"][..]),
        ("tls-client", "sslclient", &[]),
        ("document-signing", "smimesign", &[]),
        // OpenSSL has no purpose for a key-agreement-only (EC) encryption certificate: its
        // smimeencrypt wants keyEncipherment, which the RSA one below has.
        ("encryption", "any", &[]),
    ] {
        let out = system_certificate(&server, &system, dir.path(), profile, extra);
        certificates.push(issued(profile, out, purpose, "extranet"));
    }
    openssl(
        dir.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "enc-rsa.key",
            "-out",
            "enc-rsa.csr",
            "-subj",
            "/CN=tax-portal",
        ],
    );
    let csr = dir.path().join("enc-rsa.csr");
    let out = system_certificate(
        &server,
        &system,
        &dir.path().join("rsa"),
        "encryption",
        &["--csr", csr.to_str().unwrap()],
    );
    certificates.push(issued("encryption (RSA)", out, "smimeencrypt", "extranet"));
    let person = person_certificates(&server, dir.path());
    for (profile, purpose) in [
        ("person", "sslclient"),
        ("document-signing", "smimesign"),
        ("encryption", "any"),
    ] {
        let out = person.join(profile);
        certificates.push(issued(
            &format!("person {profile}"),
            out,
            purpose,
            "intranet",
        ));
    }
    for certificate in &certificates {
        verify(&server, certificate);
        points_to_the_http_port(&server, certificate);
    }
    let mut linted: Vec<(String, PathBuf)> = certificates
        .iter()
        .map(|c| (c.name.clone(), c.dir.join("cert.pem")))
        .collect();
    linted.extend(ca_certificates(&server, dir.path()));
    linted.push((
        "dev server".to_owned(),
        server_certificate(&server, dir.path()),
    ));
    let mut findings = Vec::new();
    let mut filtered = 0;
    for (name, file) in &linted {
        let lint = lint(name, file);
        eprintln!(
            "pkilint {name}: {} warnings, {} known false positives",
            lint.warnings.len(),
            lint.filtered
        );
        for warning in &lint.warnings {
            eprintln!("    {warning}");
        }
        findings.extend(lint.errors);
        filtered += lint.filtered;
    }
    assert!(
        findings.is_empty(),
        "pkilint found errors:\n{}",
        findings.join("\n")
    );
    // pkilint ran: every leaf's SPIFFE URI, and the dev server's localhost, were flagged.
    let leaves = certificates.len() + 1;
    assert_eq!(filtered, leaves + 1, "known false positives seen");
}

/// Registers and enrolls `tax-portal` (extranet, level 3, DNS tax.gov.example).
fn enrolled_system(server: &Server, dir: &Path) -> PathBuf {
    let token = server.register("tax-portal", &["--dns", "tax.gov.example"]);
    let out = dir.join("tax-portal");
    let args = ["enroll", "--token", &token, "--dns", "tax.gov.example"];
    ok(server.gt(&[&args[..], &["--out", out.to_str().unwrap()]].concat()));
    out
}

/// A certificate of `profile` for the system in `identity`, in `dir/<profile>`.
fn system_certificate(
    server: &Server,
    identity: &Path,
    dir: &Path,
    profile: &str,
    extra: &[&str],
) -> PathBuf {
    let out = dir.join(profile);
    let args = ["cert", "issue", "--profile", profile, "--json"];
    let issued = json(&ok(server.gt_as(
        identity,
        &[&args[..], extra, &["--out", out.to_str().unwrap()]].concat(),
    )));
    assert_eq!(
        issued["spiffe_id"],
        "spiffe://gov.example/org/finance/sys/tax-portal"
    );
    out
}

/// Registers person `zhang-wei` and enrolls a certificate of each person profile, each with a
/// token of its own, into `dir/zhang-wei/<profile>`.
fn person_certificates(server: &Server, dir: &Path) -> PathBuf {
    let security = server.admin("security-admin");
    let register = [
        "person",
        "register",
        "--id",
        "zhang-wei",
        "--name",
        "Zhang Wei",
        "--department",
        "Finance Bureau",
        "--json",
    ];
    let registered = server
        .command_as(&security, &register)
        .env("GOVTRUST_NATIONAL_ID", "11010519491231002X")
        .output()
        .unwrap();
    let mut token = json(&ok(registered))["enrollment_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = dir.join("zhang-wei");
    for profile in ["person", "document-signing", "encryption"] {
        let target = out.join(profile);
        let args = ["person", "enroll", "--profile", profile, "--token", &token];
        ok(server.gt(&[&args[..], &["--out", target.to_str().unwrap()]].concat()));
        let again = ["person", "token", "--id", "zhang-wei", "--json"];
        token = json(&ok(server.gt_as(&security, &again)))["enrollment_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    out
}

/// `openssl verify -purpose` of the certificate against the root and its chain.
fn verify(server: &Server, certificate: &Issued) {
    let root = server.root();
    let args = ["verify", "-x509_strict", "-purpose", certificate.purpose];
    let args = [
        &args[..],
        &[
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            "chain.pem",
            "cert.pem",
        ],
    ]
    .concat();
    let verified = openssl(&certificate.dir, &args);
    assert!(
        verified.contains("cert.pem: OK"),
        "{} ({}): {verified}",
        certificate.name,
        certificate.purpose
    );
}

/// The certificate names its issuer's CRL, OCSP and certificate on the server's HTTP port.
fn points_to_the_http_port(server: &Server, certificate: &Issued) {
    let text = openssl(
        &certificate.dir,
        &["x509", "-in", "cert.pem", "-noout", "-text"],
    );
    let issuer = certificate.issuer;
    for expected in [
        "X509v3 Subject Key Identifier".to_owned(),
        "X509v3 Authority Key Identifier".to_owned(),
        "X509v3 CRL Distribution Points".to_owned(),
        format!("URI:{}", server.http_url(&format!("/crl/{issuer}.crl"))),
        format!("OCSP - URI:{}", server.http_url("/ocsp")),
        format!(
            "CA Issuers - URI:{}",
            server.http_url(&format!("/ca/{issuer}.crt"))
        ),
    ] {
        assert!(
            text.contains(&expected),
            "{}: no {expected}\n{text}",
            certificate.name
        );
    }
}

/// The dev server's own certificate (the first of its chain file), alone in a file.
fn server_certificate(server: &Server, dir: &Path) -> PathBuf {
    let chain = std::fs::read_to_string(server.data.join("tls/server.pem")).unwrap();
    let end = "-----END CERTIFICATE-----";
    let leaf = chain.split_inclusive(end).next().unwrap();
    assert!(leaf.contains("BEGIN CERTIFICATE"), "{chain}");
    let file = dir.join("server.pem");
    std::fs::write(&file, format!("{}\n", leaf.trim_start())).unwrap();
    file
}

/// The three CA certificates, fetched from the HTTP port (the caIssuers URLs), as DER files.
fn ca_certificates(server: &Server, dir: &Path) -> Vec<(String, PathBuf)> {
    ["root", "extranet", "intranet"]
        .iter()
        .map(|ca| {
            let answer = http_get(&server.http_url(&format!("/ca/{ca}.crt")));
            assert_eq!(answer.status, 200, "{ca}");
            let file = dir.join(format!("{ca}.crt"));
            std::fs::write(&file, &answer.body).unwrap();
            if *ca != "root" {
                // The issuing CAs point to the root's CRL and certificate (dev init knew the URL).
                let args = ["x509", "-inform", "DER", "-noout", "-text", "-in"];
                let text = openssl(dir, &[&args[..], &[file.to_str().unwrap()]].concat());
                for expected in [
                    format!("URI:{}", server.http_url("/crl/root.crl")),
                    format!("CA Issuers - URI:{}", server.http_url("/ca/root.crt")),
                ] {
                    assert!(text.contains(&expected), "{ca}: no {expected}\n{text}");
                }
            }
            (format!("{ca} CA"), file)
        })
        .collect()
}

/// What pkilint said of one certificate.
struct Lint {
    /// ERROR and FATAL findings, but the known false positives.
    errors: Vec<String>,
    /// WARNING findings.
    warnings: Vec<String>,
    /// Known false positives left out.
    filtered: usize,
}

/// pkilint's findings for `file` (`lint -s WARNING`).
fn lint(name: &str, file: &Path) -> Lint {
    let output = Command::new("lint_pkix_cert")
        .args(["lint", "-s", "WARNING"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "pkilint is needed ({e}): install it with `pip install pkilint==0.13.3` \
                 (.ci/run does)"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.trim().is_empty(),
        "pkilint failed on {name} ({}): {stderr}",
        output.status
    );
    let server = name == "dev server";
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let severe = |line: &&&str| line.contains("(ERROR)") || line.contains("(FATAL)");
    let is_known = |line: &&&str| known(line, SPIFFE_URI) || (server && known(line, LOCALHOST));
    Lint {
        errors: lines
            .iter()
            .filter(severe)
            .filter(|line| !is_known(line))
            .map(|line| format!("{name}: {line}"))
            .collect(),
        warnings: lines
            .iter()
            .filter(|line| line.contains("(WARNING)"))
            .map(|line| (*line).to_owned())
            .collect(),
        filtered: lines.iter().filter(severe).filter(is_known).count(),
    }
}

/// Whether `line` is the false positive `(code, value)`.
fn known(line: &str, (code, value): (&str, &str)) -> bool {
    line.starts_with(&format!("{code} (ERROR): ")) && line.contains(value)
}

#[test]
fn a_person_certificate_exports_as_pkcs12_that_openssl_reads() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let person = person_certificates(&server, dir.path()).join("person");
    let password = dir.path().join("password");
    std::fs::write(&password, "correct horse battery staple\n").unwrap();
    let p12 = dir.path().join("zhang-wei.p12");
    let exported = Command::new(support::binary())
        .args(["cert", "export", "--pkcs12", "--json"])
        .arg("--cert")
        .arg(person.join("cert.pem"))
        .arg("--key")
        .arg(person.join("key.pem"))
        .arg("--chain")
        .arg(person.join("chain.pem"))
        .arg("--out")
        .arg(&p12)
        .arg("--password-file")
        .arg(&password)
        .output()
        .unwrap();
    ok(exported);
    let passin = format!("file:{}", password.display());
    let info = openssl(
        dir.path(),
        &[
            "pkcs12",
            "-info",
            "-nokeys",
            "-in",
            p12.to_str().unwrap(),
            "-passin",
            &passin,
        ],
    );
    assert!(info.contains("CN=Zhang Wei"), "{info}");
    assert!(info.contains("CN=govtrust Root CA"), "{info}");
    // The key is in it, encrypted: openssl decrypts it with the password.
    let key = openssl(
        dir.path(),
        &[
            "pkcs12",
            "-in",
            p12.to_str().unwrap(),
            "-nocerts",
            "-nodes",
            "-passin",
            &passin,
        ],
    );
    assert!(key.contains("BEGIN PRIVATE KEY"), "{key}");
    // A wrong password reads nothing.
    std::fs::write(&password, "wrong\n").unwrap();
    let wrong = Command::new("openssl")
        .args([
            "pkcs12",
            "-info",
            "-nokeys",
            "-in",
            p12.to_str().unwrap(),
            "-passin",
            &passin,
        ])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    // The password never comes from the command line.
    let refused = fails(server.gt(&["cert", "export", "--pkcs12", "--password", "x"]));
    assert!(refused.contains("--password"), "{refused}");
}

#[test]
fn requests_outside_a_profile_are_refused_by_rule_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let system = enrolled_system(&server, dir.path());
    let admin = server.admin("system-admin");
    let count = || {
        let listed = ok(server.gt_as(&admin, &["cert", "list", "--json"]));
        json(&listed).as_array().unwrap().len()
    };
    let before = count();
    let out = dir.path().join("refused");
    let out = out.to_str().unwrap();
    for (args, says) in [
        (
            &["--profile", "tls-server", "--dns", "payroll.gov.example"][..],
            "payroll.gov.example",
        ),
        (
            &["--profile", "tls-client", "--dns", "tax.gov.example"],
            "(names.dns)",
        ),
        (
            &[
                "--profile",
                "tls-server",
                "--dns",
                "tax.gov.example",
                "--validity-days",
                "200",
            ],
            "protection level 3's 180 days",
        ),
        (
            &["--profile", "document-signing", "--key-type", "p384"],
            "key ecdsa-p384 not allowed",
        ),
        (&["--profile", "person"], "(holders)"),
    ] {
        let refused = fails(server.gt_as(
            &system,
            &[&["cert", "issue", "--out", out][..], args].concat(),
        ));
        assert!(
            refused.contains("InvalidArgument") && refused.contains(says),
            "{args:?}: {refused}"
        );
    }
    assert_eq!(count(), before, "nothing stored");
    // A person's certificate administers nothing, however it was issued.
    let person = person_certificates(&server, dir.path()).join("person");
    std::fs::copy(server.root(), person.join("ca.pem")).unwrap();
    let denied = fails(server.gt_as(&person, &["cert", "list"]));
    assert!(denied.contains("PermissionDenied"), "{denied}");
    let denied = fails(server.gt_as(&person, &["person", "token", "--id", "zhang-wei"]));
    assert!(denied.contains("PermissionDenied"), "{denied}");
}

#[test]
fn a_bad_profile_directory_stops_the_server_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/profiles");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, profiles.join(path.file_name().unwrap())).unwrap();
    }
    let bad = profiles.join("tls-client.toml");
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(
        &bad,
        text.replace("max_validity_days = 397", "max_validity_days = \"a year\""),
    )
    .unwrap();
    let output = Command::new(support::binary())
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--profiles")
        .arg(&profiles)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tls-client.toml") && stderr.contains("max_validity_days"),
        "{stderr}"
    );
}
