//! End to end: revocation and suspension as relying parties see them, through the real
//! `openssl` CLI: CRLs fetched from the HTTP port (`openssl verify -crl_check`), OCSP
//! (`openssl ocsp -url`), and the gRPC port refusing a revoked client certificate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{Server, fails, http_get, http_request, json, ok, openssl, openssl_ca};

/// A certificate file's serial, lower-case hex.
fn serial(cert: &Path) -> String {
    let out = openssl(
        cert.parent().unwrap(),
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    );
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// Fetches `path` from the HTTP port into `dir/name`.
fn fetch(server: &Server, path: &str, dir: &Path, name: &str) -> PathBuf {
    let answer = http_get(&server.http_url(path));
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
    let file = dir.join(name);
    std::fs::write(&file, &answer.body).unwrap();
    file
}

/// `openssl verify -crl_check` of `cert` with the CRL and CA certificates fetched over HTTP.
fn verify_with_crl(server: &Server, dir: &Path, cert: &Path) -> String {
    let root = fetch(server, "/ca/root.crt", dir, "root.der");
    let issuing = fetch(server, "/ca/extranet.crt", dir, "extranet.der");
    let crl = fetch(server, "/crl/extranet.crl", dir, "extranet.crl");
    let pem = |der: &Path, kind: &str| {
        let out = der.with_extension(format!("{kind}.pem"));
        let command = if kind == "crl" { "crl" } else { "x509" };
        openssl(
            dir,
            &[
                command,
                "-inform",
                "DER",
                "-in",
                der.to_str().unwrap(),
                "-out",
                out.to_str().unwrap(),
            ],
        );
        out
    };
    let (root, issuing, crl) = (pem(&root, "cert"), pem(&issuing, "cert"), pem(&crl, "crl"));
    let output = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(["verify", "-crl_check", "-CRLfile", crl.to_str().unwrap()])
        .args([
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            issuing.to_str().unwrap(),
        ])
        .arg(cert)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `openssl ocsp` for `cert` against the server's responder; its output.
fn ocsp(server: &Server, dir: &Path, cert: &Path, extra: &[&str]) -> String {
    let issuing = fetch(server, "/ca/extranet.crt", dir, "issuer.der");
    let issuing_pem = dir.join("issuer.pem");
    openssl(
        dir,
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            issuing.to_str().unwrap(),
            "-out",
            issuing_pem.to_str().unwrap(),
        ],
    );
    let url = server.http_url("/ocsp");
    let mut args = vec!["ocsp", "-issuer", issuing_pem.to_str().unwrap(), "-cert"];
    args.push(cert.to_str().unwrap());
    let root = server.root();
    args.extend(["-url", &url, "-CAfile", root.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let output = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(&args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn relying_parties_see_a_revocation_in_the_crl_and_ocsp_and_the_grpc_port_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let tax = server.enrolled(dir.path(), "tax-portal");
    let payroll = server.enrolled(dir.path(), "payroll");
    let (tax_cert, payroll_cert) = (tax.join("cert.pem"), payroll.join("cert.pem"));
    // Before: both good, in the CRL and in OCSP (with and without a nonce).
    assert!(verify_with_crl(&server, dir.path(), &tax_cert).contains(": OK"));
    let answer = ocsp(&server, dir.path(), &tax_cert, &["-no_nonce"]);
    assert!(
        answer.contains("Response verify OK") && answer.contains(": good"),
        "{answer}"
    );
    let answer = ocsp(&server, dir.path(), &tax_cert, &[]);
    assert!(
        answer.contains("Response verify OK") && answer.contains(": good"),
        "{answer}"
    );
    server.create_key(&tax, "aes-256-gcm", &[]);

    // The security administrator revokes tax-portal's certificate for key compromise.
    let officer = server.admin("security-admin");
    let revoked_at = Instant::now();
    let shown = ok(server.gt_as(
        &officer,
        &[
            "cert",
            "revoke",
            &serial(&tax_cert),
            "--reason",
            "key-compromise",
            "--note",
            "laptop lost",
            "--json",
        ],
    ));
    assert_eq!(json(&shown)["status"], "revoked");
    assert_eq!(json(&shown)["revocation"]["reason"], "key-compromise");

    // Within a second: the gRPC port refuses it, OCSP says revoked with the reason, and
    // the CRL lists it.
    let refused = fails(server.gt_as(&tax, &["kms", "key", "list"]));
    assert!(
        revoked_at.elapsed() < Duration::from_secs(1),
        "took {:?}",
        revoked_at.elapsed()
    );
    assert!(
        refused.contains("Unauthenticated") && refused.contains("revoked (key-compromise)"),
        "{refused}"
    );
    let answer = ocsp(&server, dir.path(), &tax_cert, &["-no_nonce"]);
    assert!(
        answer.contains(": revoked") && answer.contains("Reason: keyCompromise"),
        "{answer}"
    );
    let crl_check = verify_with_crl(&server, dir.path(), &tax_cert);
    assert!(crl_check.contains("certificate revoked"), "{crl_check}");
    assert!(verify_with_crl(&server, dir.path(), &payroll_cert).contains(": OK"));
    let renew = fails(server.gt(&["renew", "--identity", tax.to_str().unwrap()]));
    assert!(renew.contains("revoked"), "{renew}");

    // Monitoring sees it.
    let metrics = http_get(&server.http_url("/metrics")).text();
    for line in [
        "govtrust_ca_revocations_total{action=\"revoke\"} 1",
        "govtrust_crl_entries{ca=\"extranet\"} 1",
        "govtrust_ca_certificates_issued_total{operation=\"enroll\"} 2",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }

    // The audit log says who did it, why and when.
    let audit = ok(server.gt_as(
        &server.admin("audit-admin"),
        &["audit", "list", "--action", "ca.cert.revoke", "--json"],
    ));
    assert!(
        audit.contains("spiffe://gov.example/person/security-admin"),
        "{audit}"
    );
    assert!(
        audit.contains("laptop lost") && audit.contains("key-compromise"),
        "{audit}"
    );
}

#[test]
fn a_suspended_certificate_is_on_hold_in_ocsp_and_good_again_after_unsuspend() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let tax = server.enrolled(dir.path(), "tax-portal");
    let cert = tax.join("cert.pem");
    let officer = server.admin("security-admin");
    ok(server.gt_as(
        &officer,
        &["cert", "suspend", &serial(&cert), "--note", "token lost"],
    ));
    let answer = ocsp(&server, dir.path(), &cert, &["-no_nonce"]);
    assert!(
        answer.contains(": revoked") && answer.contains("Reason: certificateHold"),
        "{answer}"
    );
    let refused = fails(server.gt_as(&tax, &["kms", "key", "list"]));
    assert!(refused.contains("suspended"), "{refused}");
    ok(server.gt_as(
        &officer,
        &["cert", "unsuspend", &serial(&cert), "--note", "found"],
    ));
    let answer = ocsp(&server, dir.path(), &cert, &["-no_nonce"]);
    assert!(
        answer.contains("Response verify OK") && answer.contains(": good"),
        "{answer}"
    );
    server.create_key(&tax, "aes-256-gcm", &[]);
    assert!(verify_with_crl(&server, dir.path(), &cert).contains(": OK"));
}

#[test]
fn who_may_revoke_what_and_bad_requests_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let tax = server.enrolled(dir.path(), "tax-portal");
    let payroll = server.enrolled(dir.path(), "payroll");
    let tax_serial = serial(&tax.join("cert.pem"));
    let officer = server.admin("security-admin");
    let revoke = |identity: &Path, serial: &str, reason: &str| {
        server.gt_as(identity, &["cert", "revoke", serial, "--reason", reason])
    };
    // Another system, the system administrator and the audit administrator may not.
    for intruder in [
        payroll.clone(),
        server.admin("system-admin"),
        server.admin("audit-admin"),
    ] {
        let error = fails(revoke(&intruder, &tax_serial, "key-compromise"));
        assert!(error.contains("PermissionDenied"), "{error}");
    }
    // The security administrator may not revoke another administrator's certificate.
    let auditor = serial(&server.admin("audit-admin").join("cert.pem"));
    let error = fails(revoke(&officer, &auditor, "affiliation-changed"));
    assert!(error.contains("an administrator's certificate"), "{error}");
    // The holder may not suspend, nor give an officer's reason.
    let error = fails(server.gt_as(&tax, &["cert", "suspend", &tax_serial]));
    assert!(error.contains("PermissionDenied"), "{error}");
    let error = fails(revoke(&tax, &tax_serial, "privilege-withdrawn"));
    assert!(error.contains("PermissionDenied"), "{error}");
    // Unknown and malformed serials.
    let error = fails(revoke(&officer, &"7e".repeat(17), "key-compromise"));
    assert!(
        error.contains("NotFound") && error.contains("no certificate with serial"),
        "{error}"
    );
    let error = fails(revoke(&officer, "not-hex", "key-compromise"));
    assert!(
        error.contains("InvalidArgument") && error.contains("serial"),
        "{error}"
    );
    // The holder revokes its own for key compromise; then it cannot be unsuspended.
    ok(revoke(&tax, &tax_serial, "key-compromise"));
    let error = fails(server.gt_as(&officer, &["cert", "unsuspend", &tax_serial]));
    assert!(
        error.contains("FailedPrecondition") && error.contains("permanent"),
        "{error}"
    );
    let listed = ok(server.gt_as(&officer, &["cert", "list", "--status", "revoked", "--json"]));
    let listed = json(&listed);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        listed[0]["revocation"]["revoked_by"],
        "spiffe://gov.example/org/finance/sys/tax-portal"
    );
}

#[test]
fn the_ocsp_responder_answers_unknown_unauthorized_and_malformed_and_caches_get_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let tax = server.enrolled(dir.path(), "tax-portal");
    let cert = tax.join("cert.pem");
    // A garbage request: malformedRequest (OCSPResponseStatus 1), over POST and GET.
    let url = server.http_url("/ocsp");
    let answer = http_request("POST", &url, Some(("application/ocsp-request", b"garbage")));
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/ocsp-response")
    );
    assert_eq!(answer.body, [0x30, 0x03, 0x0a, 0x01, 0x01]);
    let answer = http_get(&server.http_url("/ocsp/Z2FyYmFnZQ%3D%3D"));
    assert_eq!(answer.body, [0x30, 0x03, 0x0a, 0x01, 0x01]);

    // A certificate of another CA: unauthorized.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    let ca = openssl_ca(&foreign, "ca", "/CN=Other CA", 10, &[]);
    let request = foreign.join("req.der");
    openssl(
        &foreign,
        &[
            "ocsp",
            "-issuer",
            ca.to_str().unwrap(),
            "-serial",
            "0x1234",
            "-no_nonce",
            "-reqout",
            request.to_str().unwrap(),
        ],
    );
    let body = std::fs::read(&request).unwrap();
    let answer = http_request("POST", &url, Some(("application/ocsp-request", &body)));
    assert_eq!(answer.body, [0x30, 0x03, 0x0a, 0x01, 0x06], "unauthorized");

    // A serial this CA never issued: unknown.
    let answer = ocsp(
        &server,
        dir.path(),
        &cert,
        &["-no_nonce", "-serial", "0x017777"],
    );
    assert!(answer.contains(": unknown"), "{answer}");

    // GET of a known certificate: cacheable, with an ETag that a revalidation matches.
    let request = dir.path().join("tax.req");
    let issuer = fetch(&server, "/ca/extranet.crt", dir.path(), "x.der");
    let issuer_pem = dir.path().join("x.pem");
    openssl(
        dir.path(),
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            issuer.to_str().unwrap(),
            "-out",
            issuer_pem.to_str().unwrap(),
        ],
    );
    openssl(
        dir.path(),
        &[
            "ocsp",
            "-issuer",
            issuer_pem.to_str().unwrap(),
            "-cert",
            cert.to_str().unwrap(),
            "-no_nonce",
            "-reqout",
            request.to_str().unwrap(),
        ],
    );
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&request).unwrap());
    let path = format!(
        "/ocsp/{}",
        encoded
            .replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D")
    );
    let first = http_get(&server.http_url(&path));
    assert_eq!(first.status, 200);
    let cache = first.header("cache-control").unwrap();
    let max_age: u64 = cache
        .split(',')
        .find_map(|part| part.trim().strip_prefix("max-age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 0 && max_age <= 300, "{cache}");
    assert!(first.header("last-modified").is_some() && first.header("expires").is_some());
    let second = http_get(&server.http_url(&path));
    assert_eq!(second.body, first.body, "the same pre-signed response");
    let tag = first.header("etag").unwrap().to_owned();
    let revalidated = {
        let url = server.http_url(&path);
        let rest = url.strip_prefix("http://").unwrap();
        let (host, target) = rest.split_at(rest.find('/').unwrap());
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(stream, "GET {target} HTTP/1.1\r\nHost: {host}\r\nIf-None-Match: {tag}\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        raw
    };
    assert!(revalidated.starts_with("HTTP/1.1 304"), "{revalidated}");
    let metrics = http_get(&server.http_url("/metrics")).text();
    assert!(
        metrics.contains("govtrust_ocsp_responses_total{status=\"malformed\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("govtrust_ocsp_responses_total{status=\"unauthorized\"} 1"),
        "{metrics}"
    );
}

/// pkilint's ERROR and FATAL findings (and the WARNING ones, printed) for `file`, linted by
/// `command` (`lint_crl` or `lint_ocsp_response`) with `args`.
fn pkilint(command: &str, args: &[&str], file: &Path) -> Vec<String> {
    let output = std::process::Command::new(command)
        .arg("lint")
        .args(args)
        .args(["-s", "WARNING"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "pkilint's {command} is needed ({e}): install it with `pip install \
                 pkilint==0.13.3` (.ci/run does)"
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.trim().is_empty(),
        "{command} failed on {} ({}): {stderr}",
        file.display(),
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines().filter(|l| l.contains("(WARNING)")) {
        eprintln!("{command} {}: {line}", file.display());
    }
    stdout
        .lines()
        .filter(|line| line.contains("(ERROR)") || line.contains("(FATAL)"))
        .map(|line| format!("{}: {line}", file.display()))
        .collect()
}

#[test]
fn crls_and_ocsp_answers_pass_pkilint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let good = server.enrolled(dir.path(), "tax-portal").join("cert.pem");
    let revoked = server.enrolled(dir.path(), "payroll").join("cert.pem");
    let held = server.enrolled(dir.path(), "archive").join("cert.pem");
    let officer = server.admin("security-admin");
    let change = |action: &str, cert: &Path, extra: &[&str]| {
        let serial = serial(cert);
        let mut args = vec!["cert", action, serial.as_str()];
        args.extend_from_slice(extra);
        ok(server.gt_as(&officer, &args));
    };
    change("revoke", &revoked, &["--reason", "key-compromise"]);
    change("suspend", &held, &[]);

    let mut findings = Vec::new();
    // Every CA's CRL, as relying parties fetch it; the root's covers CA certificates only
    // (an ARL in pkilint's terms).
    for (ca, kind) in [("root", "ARL"), ("extranet", "CRL"), ("intranet", "CRL")] {
        let path = format!("/crl/{ca}.crl");
        let answer = http_get(&server.http_url(&path));
        assert_eq!(answer.status, 200, "GET {path}");
        assert_eq!(answer.header("content-type"), Some("application/pkix-crl"));
        let file = dir.path().join(format!("{ca}.crl"));
        std::fs::write(&file, &answer.body).unwrap();
        findings.extend(pkilint("lint_crl", &["-t", kind, "-p", "PKIX"], &file));
    }
    let extranet = openssl(
        dir.path(),
        &[
            "crl",
            "-inform",
            "DER",
            "-noout",
            "-text",
            "-in",
            "extranet.crl",
        ],
    );
    assert!(
        extranet.contains("Key Compromise") && extranet.contains("Certificate Hold"),
        "{extranet}"
    );

    // OCSP: good, revoked and on hold, each from the cache (no nonce) and signed on the spot
    // (with a nonce); and a malformed request's answer.
    for (name, cert) in [("good", &good), ("revoked", &revoked), ("held", &held)] {
        for nonce in [false, true] {
            let file = dir.path().join(format!("{name}-{nonce}.ocsp"));
            let mut extra = vec!["-respout", file.to_str().unwrap(), "-resp_text"];
            if !nonce {
                extra.push("-no_nonce");
            }
            let text = ocsp(&server, dir.path(), cert, &extra);
            assert!(text.contains("Response verify OK"), "{text}");
            // The delegated responder's certificate says not to check its own status.
            assert!(text.contains("OCSP No Check"), "{text}");
            findings.extend(pkilint("lint_ocsp_response", &[], &file));
        }
    }
    let malformed = http_get(&server.http_url("/ocsp/Z2FyYmFnZQ%3D%3D"));
    let file = dir.path().join("malformed.ocsp");
    std::fs::write(&file, &malformed.body).unwrap();
    findings.extend(pkilint("lint_ocsp_response", &[], &file));
    assert!(
        findings.is_empty(),
        "pkilint findings:\n{}",
        findings.join("\n")
    );
}

/// Seconds since 1970 of an ISO 8601 time as `openssl -dateopt iso_8601` prints it
/// (`2026-12-07 20:54:54Z`).
fn iso_seconds(text: &str) -> i64 {
    let digits: Vec<i64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap())
        .collect();
    let [year, month, day, hour, minute, second] = digits[..] else {
        panic!("not an ISO 8601 time: {text}");
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hour * 3600 + minute * 60 + second
}

/// The CRL number, lastUpdate and nextUpdate (seconds since 1970) of the CA's CRL on the HTTP
/// port, waiting (up to 20 s) for a server that has just started to make it.
fn crl_times(server: &Server, dir: &Path, ca: &str) -> (u64, i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = format!("/crl/{ca}.crl");
    let answer = loop {
        let answer = http_get(&server.http_url(&path));
        if answer.status == 200 || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
    let file = dir.join(format!("{ca}.crl"));
    std::fs::write(&file, &answer.body).unwrap();
    let file = file.to_str().unwrap();
    let number = openssl(
        dir,
        &["crl", "-inform", "DER", "-noout", "-crlnumber", "-in", file],
    );
    let number = number
        .trim()
        .trim_start_matches("crlNumber=")
        .trim_start_matches("0x");
    let dates = openssl(
        dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-noout",
            "-lastupdate",
            "-nextupdate",
            "-dateopt",
            "iso_8601",
            "-in",
            file,
        ],
    );
    let date = |label: &str| {
        let line = dates.lines().find(|l| l.starts_with(label)).unwrap();
        iso_seconds(&line[label.len()..])
    };
    let number = u64::from_str_radix(number, 16).unwrap_or_else(|_| panic!("{number}"));
    (number, date("lastUpdate="), date("nextUpdate="))
}

#[test]
fn crls_are_made_anew_once_older_than_the_refresh_interval_before_they_go_stale() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let before: Vec<_> = ["root", "extranet", "intranet"]
        .iter()
        .map(|ca| crl_times(&server, dir.path(), ca))
        .collect();
    let data = server.data.clone();
    server.kill();

    // Two days on: past the refresh interval (1 day), before nextUpdate (7 days). The server
    // makes every CRL anew on its own, without a revocation to prompt it.
    let server = Server::start_with(&data, true, &["--dev-clock-offset-days", "2"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    for (ca, (number, last, next)) in ["root", "extranet", "intranet"].iter().zip(before) {
        assert_eq!(next - last, 7 * 86_400, "{ca}: nextUpdate 7 days on");
        loop {
            let (now_number, now_last, now_next) = crl_times(&server, dir.path(), ca);
            if now_number > number {
                assert!(
                    now_last >= last + 2 * 86_400,
                    "{ca}: made by the server's clock"
                );
                assert_eq!(now_next - now_last, 7 * 86_400);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{ca}: CRL {now_number} still the one of two days ago"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
