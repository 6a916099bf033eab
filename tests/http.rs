//! The configuration file and the plain-HTTP port for relying parties, end to end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{Server, fails, govtrust, http_get, ok, openssl};

#[test]
fn config_check_names_the_bad_key_and_serve_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:1\"\n[crl]\nnext_updte = \"1d\"\n",
    )
    .unwrap();
    let error = fails(govtrust(&["config", "check", bad.to_str().unwrap()]));
    assert!(error.contains("next_updte"), "{error}");
    assert!(error.contains("bad.toml"), "{error}");
    let range = dir.path().join("range.toml");
    std::fs::write(&range, "[ocsp]\nnext_update = \"1h\"\nrefresh = \"2h\"\n").unwrap();
    let error = fails(govtrust(&["config", "check", range.to_str().unwrap()]));
    assert!(error.contains("ocsp.refresh"), "{error}");

    let good = dir.path().join("govtrust.toml");
    std::fs::write(
        &good,
        "http_listen = \"127.0.0.1:0\"\npublic_url = \"https://pki.gov.example/\"\n\
         [certificates]\nrenewal_grace = \"2h\"\n",
    )
    .unwrap();
    let shown = ok(govtrust(&["config", "check", good.to_str().unwrap()]));
    assert!(
        shown.contains("public_url = \"https://pki.gov.example\""),
        "{shown}"
    );
    assert!(shown.contains("renewal_grace = \"2h\""), "{shown}");
    assert!(shown.contains("next_update = \"7d\""), "{shown}");

    // The file's HTTP address (port 0) is used, the flag's gRPC address wins.
    let server = Server::start_with(
        &dir.path().join("data"),
        true,
        &["--config", good.to_str().unwrap()],
    );
    let health = http_get(&server.http_url("/healthz"));
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(
        health.text().contains("\"sealed\":false"),
        "{}",
        health.text()
    );
}

#[test]
fn relying_parties_fetch_ca_certificates_bundles_and_metrics_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());

    for ca in ["root", "extranet", "intranet"] {
        let answer = http_get(&server.http_url(&format!("/ca/{ca}.crt")));
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("application/pkix-cert"));
        assert!(answer.header("cache-control").unwrap().contains("max-age="));
        let file = dir.path().join(format!("{ca}.der"));
        std::fs::write(&file, &answer.body).unwrap();
        let subject = openssl(
            dir.path(),
            &[
                "x509",
                "-inform",
                "DER",
                "-in",
                file.to_str().unwrap(),
                "-noout",
                "-subject",
            ],
        );
        assert!(subject.to_lowercase().contains(ca), "{subject}");
    }
    assert_eq!(http_get(&server.http_url("/ca/nope.crt")).status, 404);

    // The PEM bundle verifies the server's own certificate chain.
    let bundle = http_get(&server.http_url("/bundle.pem"));
    assert_eq!(bundle.text().matches("BEGIN CERTIFICATE").count(), 3);
    let bundle_file = dir.path().join("bundle.pem");
    std::fs::write(&bundle_file, &bundle.body).unwrap();
    let admin_cert = server.admin("audit-admin").join("cert.pem");
    let verified = openssl(
        dir.path(),
        &[
            "verify",
            "-CAfile",
            bundle_file.to_str().unwrap(),
            admin_cert.to_str().unwrap(),
        ],
    );
    assert!(verified.contains(": OK"), "{verified}");

    let json: serde_json::Value =
        serde_json::from_slice(&http_get(&server.http_url("/bundle.json")).body).unwrap();
    let keys = json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{json}");
    assert_eq!(keys[0]["use"], "x509-svid");
    assert_eq!(keys[0]["crv"], "P-384");

    let metrics = http_get(&server.http_url("/metrics"));
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let page = metrics.text();
    assert!(page.contains("govtrust_kms_sealed 0\n"), "{page}");
    assert!(
        page.contains("govtrust_http_requests_total{endpoint=\"bundle\"} 2\n"),
        "{page}"
    );
}

#[test]
fn a_client_that_never_sends_its_request_is_cut_off_and_others_are_served() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let address = server.http.trim_start_matches("http://").to_owned();
    let mut silent: Vec<std::net::TcpStream> = (0..50)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    assert_eq!(http_get(&server.http_url("/healthz")).status, 200);
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    for stream in &mut silent {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        let read = stream.read(&mut byte);
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the silent connection was not closed"
        );
    }
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(10),
        "closed after {waited:?}"
    );
}

#[test]
fn a_flood_of_connections_closes_its_own_oldest_instead_of_locking_others_out() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let address: std::net::SocketAddr = server.http.trim_start_matches("http://").parse().unwrap();
    // 260 connections from one address that send nothing: its share is 256.
    let mut held = Vec::new();
    for _ in 0..260 {
        let socket = connect_from([127, 0, 0, 9], address);
        held.push(socket);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut closed = 0;
    for stream in held.iter_mut().take(10) {
        stream
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let mut byte = [0u8; 1];
        if matches!(stream.read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 4, "the address's 4 oldest connections made way");
    // Everyone else, and the same address, are still served.
    assert_eq!(http_get(&server.http_url("/healthz")).status, 200);
}

/// A TCP connection to `to` from the local address `from` (any of 127/8).
fn connect_from(from: [u8; 4], to: std::net::SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind((std::net::Ipv4Addr::from(from), 0).into())
            .unwrap();
        socket.connect(to).await.unwrap().into_std().unwrap()
    })
}
