//! End to end: relying parties verify certificates (`govtrust cert verify`), of this deployment
//! and of another CA of the province once a security administrator added it to the trust
//! bundle; the other CA's revocations come from the CRL its certificates name, fetched over
//! HTTP from a server this test runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use support::{Server, fails, http_get, json, ok, openssl, openssl_ca, openssl_csr};

/// `cert verify` as `identity`: (exit success, stdout + stderr).
fn verify(server: &Server, identity: &Path, file: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["cert", "verify", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = server.gt_as(identity, &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn serial(cert: &Path) -> String {
    let out = openssl(
        cert.parent().unwrap(),
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    );
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

#[test]
fn a_relying_party_learns_every_reason_a_certificate_of_this_ca_is_not_good() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let tax = server.enrolled(dir.path(), "tax-portal");
    let payroll = server.enrolled(dir.path(), "payroll");
    let cert = tax.join("cert.pem");
    let id = "spiffe://gov.example/org/finance/sys/tax-portal";

    let (good, out) = verify(
        &server,
        &payroll,
        &cert,
        &["--purpose", "server-auth", "--name", id],
    );
    assert!(
        good && out.contains(": valid") && out.contains("anchor root"),
        "{out}"
    );

    // Three reasons at once: wrong usage, wrong name, and (in 2030) expired.
    let (good, out) = verify(
        &server,
        &payroll,
        &cert,
        &[
            "--purpose",
            "document-signing",
            "--name",
            "www.example.org",
            "--at",
            "2030-01-01T00:00:00Z",
        ],
    );
    assert!(!good, "{out}");
    for reason in [
        "expired at",
        "wrong key usage",
        "not valid for www.example.org",
    ] {
        assert!(out.contains(reason), "{reason}: {out}");
    }
    assert!(
        !out.contains("untrusted"),
        "an expired certificate's issuer is still known: {out}"
    );
    // Before it was issued (2020): not yet valid, and nothing else wrong.
    let (good, out) = verify(&server, &payroll, &cert, &["--at", "2020-01-01T00:00:00Z"]);
    assert!(!good && out.contains("not valid before 20"), "{out}");
    assert!(
        !out.contains("expired") && !out.contains("untrusted"),
        "{out}"
    );

    let officer = server.admin("security-admin");
    ok(server.gt_as(&officer, &["cert", "suspend", &serial(&cert)]));
    let (good, out) = verify(&server, &payroll, &cert, &[]);
    assert!(!good && out.contains("suspended since"), "{out}");
    ok(server.gt_as(
        &officer,
        &[
            "cert",
            "revoke",
            &serial(&cert),
            "--reason",
            "key-compromise",
        ],
    ));
    let (good, out) = verify(&server, &payroll, &cert, &["--json"]);
    assert!(!good, "{out}");
    let verdict = json(&out);
    assert_eq!(verdict["valid"], false);
    assert!(
        verdict["problems"][0]
            .as_str()
            .unwrap()
            .contains("revoked (key-compromise)"),
        "{verdict}"
    );

    // A certificate of a CA nobody trusts, and garbage.
    let foreign = openssl_ca(dir.path(), "f", "/CN=stranger", 5, &[]);
    let (good, out) = verify(&server, &payroll, &foreign, &[]);
    assert!(!good && out.contains("untrusted issuer"), "{out}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let error = fails(server.gt_as(&payroll, &["cert", "verify", garbage.to_str().unwrap()]));
    assert!(
        error.contains("InvalidArgument") && error.contains("chain"),
        "{error}"
    );
    // Verification needs a certificate of this deployment.
    let error = fails(server.gt(&["cert", "verify", cert.to_str().unwrap()]));
    assert!(error.contains("Unauthenticated"), "{error}");
}

/// Another CA of the province, made with the openssl CLI: its key and certificate, an
/// `openssl ca` database, and the CRL it publishes at `crl_url` (written to `ca.crl`, DER).
struct OtherCa {
    dir: PathBuf,
    crl_url: String,
}

impl OtherCa {
    fn new(dir: &Path, crl_url: &str) -> OtherCa {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
             default_md = sha256\ndefault_crl_days = 7\n",
        )
        .unwrap();
        let subject = "/CN=Province Health CA/O=Health Commission";
        let usage = ["-addext", "keyUsage=critical,keyCertSign,cRLSign"];
        openssl_ca(dir, "ca", subject, 365, &usage);
        let other = OtherCa {
            dir: dir.to_path_buf(),
            crl_url: crl_url.to_owned(),
        };
        other.publish_crl();
        other
    }

    /// A server certificate for `name` naming the CRL's URL.
    fn issue(&self, name: &str) -> PathBuf {
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{name}\n\
                 crlDistributionPoints=URI:{}\n",
                self.crl_url
            ),
        )
        .unwrap();
        let (csr, cert) = (format!("{name}.csr"), format!("{name}.pem"));
        openssl_csr(&self.dir, name, &format!("/CN={name}"), &[]);
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-out",
                &cert,
                "-extfile",
                ext.to_str().unwrap(),
            ],
        );
        self.dir.join(cert)
    }

    fn revoke(&self, cert: &Path) {
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-keyfile",
                "ca.key",
                "-cert",
                "ca.pem",
                "-revoke",
                cert.to_str().unwrap(),
                "-crl_reason",
                "keyCompromise",
            ],
        );
        self.publish_crl();
    }

    fn publish_crl(&self) {
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-keyfile",
                "ca.key",
                "-cert",
                "ca.pem",
                "-gencrl",
                "-out",
                "ca.crl.pem",
            ],
        );
        openssl(
            &self.dir,
            &[
                "crl",
                "-in",
                "ca.crl.pem",
                "-outform",
                "DER",
                "-out",
                "ca.crl",
            ],
        );
    }
}

/// Serves the file `crl` (read anew for each request) at any path, over plain HTTP, counting
/// requests.
fn serve_crl(crl: PathBuf) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = std::fs::read(&crl).unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (format!("http://{address}/health-ca.crl"), served)
}

#[test]
fn another_cas_certificates_are_accepted_once_trusted_and_its_crl_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let relying = server.enrolled(dir.path(), "hospital-portal");
    let other_dir = dir.path().join("health-ca");
    let (url, served) = serve_crl(other_dir.join("ca.crl"));
    let other = OtherCa::new(&other_dir, &url);
    let clinic = other.issue("clinic.health.example");
    let args = [
        "--purpose",
        "server-auth",
        "--name",
        "clinic.health.example",
    ];

    let (good, out) = verify(&server, &relying, &clinic, &args);
    assert!(!good && out.contains("untrusted issuer"), "{out}");

    // Only a security administrator may add it.
    let ca_file = other_dir.join("ca.pem");
    let add = [
        "trust",
        "add",
        ca_file.to_str().unwrap(),
        "--name",
        "health-ca",
        "--note",
        "MoU 2026-14",
    ];
    for intruder in [
        relying.clone(),
        server.admin("system-admin"),
        server.admin("audit-admin"),
    ] {
        assert!(fails(server.gt_as(&intruder, &add)).contains("PermissionDenied"));
    }
    let officer = server.admin("security-admin");
    ok(server.gt_as(&officer, &add));
    let error = fails(server.gt_as(&officer, &add));
    assert!(
        error.contains("already in the trust bundle") || error.contains("exists"),
        "{error}"
    );
    let leaf_as_ca = fails(server.gt_as(
        &officer,
        &["trust", "add", clinic.to_str().unwrap(), "--name", "leaf"],
    ));
    assert!(leaf_as_ca.contains("not a CA certificate"), "{leaf_as_ca}");
    // A CA that takes our root's name, or the name `root`, is refused.
    let twin = openssl_ca(
        dir.path(),
        "twin",
        "/CN=govtrust Root CA/O=gov.example",
        5,
        &[],
    );
    let error = fails(server.gt_as(
        &officer,
        &["trust", "add", twin.to_str().unwrap(), "--name", "twin"],
    ));
    assert!(error.contains("already the name of root"), "{error}");
    let error = fails(server.gt_as(
        &officer,
        &["trust", "add", ca_file.to_str().unwrap(), "--name", "root"],
    ));
    assert!(error.contains("own root"), "{error}");

    let (good, out) = verify(&server, &relying, &clinic, &args);
    assert!(good && out.contains("anchor health-ca"), "{out}");
    assert!(
        served.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the CRL was fetched"
    );

    // The bundle relying parties fetch carries it, over HTTP and gRPC.
    let pem = http_get(&server.http_url("/bundle.pem")).text();
    assert!(
        pem.contains(
            &std::fs::read_to_string(&ca_file)
                .unwrap()
                .trim()
                .lines()
                .nth(1)
                .unwrap()
                .to_owned()
        )
    );
    let bundle: serde_json::Value =
        serde_json::from_slice(&http_get(&server.http_url("/bundle.json")).body).unwrap();
    assert_eq!(bundle["keys"].as_array().unwrap().len(), 2, "{bundle}");
    assert_eq!(bundle["spiffe_sequence"], 2);
    let listed = json(&ok(server.gt(&["trust", "list", "--json"])));
    assert_eq!(listed["anchors"][1]["name"], "health-ca");

    // The other CA revokes the clinic's certificate; the next fetch of its CRL shows it (the
    // server keeps a CRL at most until its nextUpdate or an hour: restart to see it now).
    other.revoke(&clinic);
    let server = {
        let data = server.data.clone();
        server.stop();
        Server::start(&data, true)
    };
    let (good, out) = verify(&server, &relying, &clinic, &args);
    assert!(!good && out.contains("revoked (key-compromise)"), "{out}");

    // Removed from the bundle: untrusted again; both acts are in the audit log.
    ok(server.gt_as(
        &officer,
        &["trust", "remove", "health-ca", "--note", "MoU ended"],
    ));
    let (good, out) = verify(&server, &relying, &clinic, &args);
    assert!(!good && out.contains("untrusted issuer"), "{out}");
    let audit = ok(server.gt_as(
        &server.admin("audit-admin"),
        &["audit", "list", "--action", "ca.trust", "--json"],
    ));
    assert!(
        audit.contains("ca.trust.add") && audit.contains("ca.trust.remove"),
        "{audit}"
    );
    assert!(audit.contains("MoU 2026-14"), "{audit}");
}
