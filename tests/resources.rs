//! End to end: what a peer without a client certificate can make the server spend.
//!
//! The attacker speaks raw TLS + HTTP/2 (the `h2` crate), so it can do what no gRPC client
//! does: declare a large message, send all of it but the last byte, and hold the call open.
//! The server's memory (VmRSS from `/proc`) must stay bounded while an authenticated client
//! keeps being served; every held call is answered with a clear status. Also: reflection
//! outside `--dev` is only for callers with a certificate, and the documented KMS payload
//! bound holds in both directions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::{Deployment, Server, fails, ok};
use tokio_rustls::TlsConnector;

const ENROLL: &str = "/govtrust.ca.v1.CertificateAuthority/Enroll";
const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const HEALTH: &str = "/grpc.health.v1.Health/Check";

/// gRPC status codes the tests look for.
const OUT_OF_RANGE: u32 = 11;
const RESOURCE_EXHAUSTED: u32 = 8;
const DEADLINE_EXCEEDED: u32 = 4;
const UNAUTHENTICATED: u32 = 16;

/// A TLS + HTTP/2 client speaking frames directly.
struct Peer {
    port: u16,
    connector: TlsConnector,
}

impl Peer {
    /// A peer trusting the deployment's root, presenting `identity` (cert.pem + key.pem) if given.
    fn new(server: &Server, identity: Option<&Path>) -> Peer {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(server.root()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(dir) => {
                let chain = CertificateDer::pem_file_iter(dir.join("cert.pem"))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let port = port(server);
        Peer {
            port,
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// One HTTP/2 connection; its frames are driven by a task of the current runtime.
    async fn connect(&self) -> h2::client::SendRequest<Bytes> {
        self.connect_from([127, 0, 0, 1]).await.unwrap()
    }

    /// One HTTP/2 connection from the local address `source` (any of 127/8), if the server
    /// lets it get that far.
    async fn connect_from(&self, source: [u8; 4]) -> Option<h2::client::SendRequest<Bytes>> {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind((std::net::Ipv4Addr::from(source), 0).into())
            .unwrap();
        let tcp = socket
            .connect(([127, 0, 0, 1], self.port).into())
            .await
            .ok()?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = self.connector.connect(name, tcp).await.ok()?;
        let (send, connection) = h2::client::handshake(tls).await.ok()?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Some(send)
    }
}

/// Whether a health check on a fresh connection from `source` is answered SERVING; the
/// connection is returned to be held open.
async fn healthy_connection(
    peer: &Peer,
    source: [u8; 4],
) -> Option<h2::client::SendRequest<Bytes>> {
    let mut send = peer.connect_from(source).await?;
    healthy(&mut send).await.then_some(send)
}

/// Whether a health check on the connection `send` is answered SERVING.
async fn healthy(send: &mut h2::client::SendRequest<Bytes>) -> bool {
    let Some(call) = start_call(send, HEALTH, 0, &[], true).await else {
        return false;
    };
    let answer = outcome(call, Duration::from_secs(10)).await;
    // grpc.health.v1.HealthCheckResponse { status: SERVING }
    answer.is_some_and(|(code, _, body)| code == 0 && body.ends_with(&[0x08, 0x01]))
}

/// A gRPC call whose request body is still open (and, for an attack, incomplete).
struct Call {
    response: h2::client::ResponseFuture,
    _body: h2::SendStream<Bytes>,
}

/// Starts a call to `path` whose first message declares `declared` bytes and carries `sent`.
/// None if the server grants no stream within a second (its per-connection stream limit).
async fn start_call(
    send: &mut h2::client::SendRequest<Bytes>,
    path: &str,
    declared: u32,
    sent: &[u8],
    finish: bool,
) -> Option<Call> {
    let ready = tokio::time::timeout(Duration::from_secs(1), send.clone().ready())
        .await
        .ok()?
        .ok()?;
    *send = ready;
    let request = http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = send.send_request(request, false).ok()?;
    let mut frame = BytesMut::with_capacity(5 + sent.len());
    frame.put_u8(0);
    frame.put_u32(declared);
    frame.put_slice(sent);
    body.send_data(frame.freeze(), finish).ok()?;
    Some(Call {
        response,
        _body: body,
    })
}

/// The gRPC status a call ended with (code, message) and the bytes of its response messages;
/// None if the server did not answer within `wait`.
async fn outcome(call: Call, wait: Duration) -> Option<(u32, String, Vec<u8>)> {
    tokio::time::timeout(wait, async move {
        let response = call.response.await.ok()?;
        if let Some(status) = grpc_status(response.headers()) {
            return Some((status.0, status.1, Vec::new()));
        }
        let mut body = response.into_body();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.ok()?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.ok()??;
        let (code, message) = grpc_status(&trailers)?;
        Some((code, message, data))
    })
    .await
    .ok()?
}

fn grpc_status(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some((code, message))
}

fn percent_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(decoded) if byte == b'%' => {
                out.push(decoded);
                rest = &tail[2..];
            }
            _ => {
                out.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The server's resident memory in KiB.
fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Opens `connections` connections without a certificate, the n-th from 127.0.`net`.n+1, and
/// on each starts up to `per_connection` Enroll calls declaring `declared` bytes and sending
/// all but the last.
async fn half_sent_enrolls(
    peer: &Peer,
    (net, connections): (u8, usize),
    per_connection: usize,
    declared: u32,
) -> Vec<Call> {
    let sent = vec![0x41u8; usize::try_from(declared).unwrap() - 1];
    let mut calls = Vec::new();
    for n in 0..connections {
        let source = [127, 0, net, 1 + u8::try_from(n).unwrap()];
        let mut send = peer.connect_from(source).await.unwrap();
        for _ in 0..per_connection {
            match start_call(&mut send, ENROLL, declared, &sent, false).await {
                Some(call) => calls.push(call),
                None => break,
            }
        }
    }
    calls
}

/// Tallies the status codes of `calls`, each given until `wait` elapses.
async fn tally(calls: Vec<Call>, wait: Duration) -> Vec<(u32, String)> {
    let waiting: Vec<_> = calls
        .into_iter()
        .map(|call| tokio::spawn(outcome(call, wait)))
        .collect();
    let mut codes = Vec::new();
    for task in waiting {
        let (code, message, _) =
            task.await
                .unwrap()
                .unwrap_or((u32::MAX, String::new(), Vec::new()));
        codes.push((code, message));
    }
    codes
}

fn count(codes: &[(u32, String)], code: u32) -> usize {
    codes.iter().filter(|(c, _)| *c == code).count()
}

#[test]
fn half_sent_requests_without_a_certificate_neither_pin_memory_nor_starve_callers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let key = server.create_key(&admin, "aes-256-gcm", &[]);
    let key_id = key["key_id"].as_str().unwrap().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let peer = Peer::new(&server, None);
    let before = rss_kib(&server);

    // 24 calls declaring just under 4 MiB (tonic's default limit) on 3 connections from 3
    // addresses: refused at once, naming the limit. Then 128 calls declaring 64 KiB on 16
    // connections from 16 addresses; all hold their last byte back.
    let (large, small) = runtime.block_on(async {
        let large = half_sent_enrolls(&peer, (7, 3), 8, 4 * 1024 * 1024 - 16).await;
        let large = tally(large, Duration::from_secs(5)).await;
        let small = half_sent_enrolls(&peer, (8, 16), 8, 64 * 1024).await;
        (large, small)
    });
    let started = Instant::now();
    let mut peak = before;
    while started.elapsed() < Duration::from_secs(4) {
        peak = peak.max(rss_kib(&server));
        std::thread::sleep(Duration::from_millis(100));
    }

    // Meanwhile an authenticated client is served promptly.
    for n in 0..3 {
        let call = Instant::now();
        let text = format!("under attack {n}");
        ok(server.gt_as(
            &admin,
            &["kms", "key", "encrypt", &key_id, "--plaintext", &text],
        ));
        let took = call.elapsed();
        assert!(took < Duration::from_secs(5), "an Encrypt took {took:?}");
        peak = peak.max(rss_kib(&server));
    }
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "server VmRSS {before} KiB before the attack, peak {peak} KiB while {} + {} half-sent \
         calls were held: +{grown_mib} MiB",
        large.len(),
        small.len()
    );
    assert!(grown_mib < 24, "the attack pinned {grown_mib} MiB");

    // Every held call is answered: the oversized ones at once, naming the limit; beyond the
    // share of calls without a certificate, at once; the rest when the body deadline passes.
    let small = runtime.block_on(tally(small, Duration::from_secs(20)));
    assert_eq!(count(&large, OUT_OF_RANGE), large.len(), "{large:?}");
    assert!(large[0].1.contains("65536"), "{large:?}");
    assert!(count(&small, RESOURCE_EXHAUSTED) > 0, "{small:?}");
    assert_eq!(
        count(&small, RESOURCE_EXHAUSTED) + count(&small, DEADLINE_EXCEEDED),
        small.len(),
        "{small:?}"
    );
    let busy = small
        .iter()
        .find(|(c, _)| *c == RESOURCE_EXHAUSTED)
        .unwrap();
    assert!(busy.1.contains("without a client certificate"), "{busy:?}");
    let slow = small.iter().find(|(c, _)| *c == DEADLINE_EXCEEDED).unwrap();
    assert!(slow.1.contains("within 10s"), "{slow:?}");
}

#[test]
fn connections_without_a_certificate_cannot_take_every_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let peer = Peer::new(&server, None);
    let before = rss_kib(&server);

    // One address gets 32 connections without a certificate: its 33rd closes its own oldest
    // (so a flood from one address behind a NAT cannot lock its neighbours out).
    let mut oldest = runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..33 {
            held.push(healthy_connection(&peer, [127, 0, 0, 2]).await.unwrap());
        }
        let first = held.remove(0);
        let mut first = [first];
        assert_eq!(serving(&mut first).await, 0, "the first is still served");
        assert_eq!(serving(&mut held).await, 32);
        held
    });

    // 512 more from 16 other addresses (32 each): the server keeps the newest 512 and closes
    // the oldest, the first address's 32, to make room.
    let started = Instant::now();
    let mut newest = runtime.block_on(async {
        let mut held = Vec::new();
        for n in 0..512usize {
            let source = [127, 0, 2, 1 + u8::try_from(n / 32).unwrap()];
            held.push(healthy_connection(&peer, source).await.unwrap());
        }
        held
    });
    let opening = started.elapsed();
    let during = rss_kib(&server);
    let (oldest_served, newest_served) = runtime.block_on(async {
        (
            serving(&mut oldest).await,
            serving(&mut newest[480..]).await,
        )
    });
    eprintln!(
        "544 anonymous connections opened in {opening:?}; the oldest 32 served {oldest_served}, \
         the newest 32 {newest_served}; server VmRSS {before} KiB -> {during} KiB"
    );
    assert_eq!(oldest_served, 0, "the oldest connections are still served");
    assert_eq!(newest_served, 32);

    // Authenticated callers still get in, and so does one more caller without a certificate.
    let started = Instant::now();
    ok(server.gt_as(&admin, &["kms", "key", "list"]));
    assert!(started.elapsed() < Duration::from_secs(5));
    let again = runtime.block_on(healthy_connection(&peer, [127, 0, 0, 9]));
    assert!(again.is_some());
}

/// How many of the open connections `held` answer a health check.
async fn serving(held: &mut [h2::client::SendRequest<Bytes>]) -> usize {
    let mut serving = 0;
    for send in held {
        if healthy(send).await {
            serving += 1;
        }
    }
    serving
}

/// `ServerReflectionRequest { list_services: "" }` as one gRPC message.
fn list_services() -> Vec<u8> {
    vec![0x3a, 0x00]
}

/// Asks the reflection service for its list of services as `peer`.
fn reflect(peer: &Peer) -> (u32, String, Vec<u8>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut send = peer.connect().await;
        let message = list_services();
        let length = u32::try_from(message.len()).unwrap();
        let call = start_call(&mut send, REFLECTION, length, &message, true)
            .await
            .unwrap();
        outcome(call, Duration::from_secs(10)).await.unwrap()
    })
}

#[test]
fn reflection_outside_dev_needs_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Deployment::init(dir.path(), &[]).serve(&[]);

    let (code, message, _) = reflect(&Peer::new(&server, None));
    assert_eq!(code, UNAUTHENTICATED, "{message}");
    assert!(message.contains("client certificate"), "{message}");

    let admin = server.admin("audit-admin");
    let (code, message, services) = reflect(&Peer::new(&server, Some(&admin)));
    assert_eq!(code, 0, "{message}");
    let services = String::from_utf8_lossy(&services);
    assert!(
        services.contains("govtrust.kms.v1.KeyManagement"),
        "{services}"
    );
}

#[test]
fn reflection_in_dev_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let (code, message, services) = reflect(&Peer::new(&server, None));
    assert_eq!(code, 0, "{message}");
    let services = String::from_utf8_lossy(&services);
    assert!(
        services.contains("govtrust.ca.v1.CertificateAuthority"),
        "{services}"
    );
}

#[test]
fn kms_payloads_up_to_one_mib_pass_and_larger_ones_are_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let key = server.create_key(&admin, "aes-256-gcm", &[]);
    let key_id = key["key_id"].as_str().unwrap();

    let plaintext = dir.path().join("one-mib");
    let content: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(&plaintext, &content).unwrap();
    let input = plaintext.to_str().unwrap();
    let ciphertext = ok(server.gt_as(&admin, &["kms", "key", "encrypt", key_id, "--in", input]));
    let sealed = dir.path().join("one-mib.ct");
    std::fs::write(&sealed, ciphertext.trim()).unwrap();
    let opened = dir.path().join("one-mib.out");
    ok(server.gt_as(
        &admin,
        &[
            "kms",
            "key",
            "decrypt",
            "--in",
            sealed.to_str().unwrap(),
            "--out",
            opened.to_str().unwrap(),
        ],
    ));
    assert_eq!(std::fs::read(&opened).unwrap(), content);

    let too_large = dir.path().join("too-large");
    std::fs::write(&too_large, vec![7u8; 1024 * 1024 + 64 * 1024]).unwrap();
    let error = fails(server.gt_as(
        &admin,
        &[
            "kms",
            "key",
            "encrypt",
            key_id,
            "--in",
            too_large.to_str().unwrap(),
        ],
    ));
    assert!(
        error.contains("OutOfRange") && error.contains("1114112"),
        "{error}"
    );
}

/// A TCP connection from the local address `source` (any of 127/8) to the server's port that
/// will never send a byte.
async fn silent_connection(port: u16, source: [u8; 4]) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .unwrap();
    socket.connect(([127, 0, 0, 1], port).into()).await.unwrap()
}

/// Which of `streams` the server has closed (a read ends or fails) by `deadline`.
async fn closed_by(streams: &mut [tokio::net::TcpStream], deadline: Instant) -> Vec<bool> {
    let deadline = tokio::time::Instant::from_std(deadline);
    let mut closed = Vec::with_capacity(streams.len());
    for stream in streams {
        let mut byte = [0u8; 1];
        let read =
            tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(stream, &mut byte));
        closed.push(matches!(read.await, Ok(Ok(0) | Err(_))));
    }
    closed
}

fn port(server: &Server) -> u16 {
    server.url.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn one_address_cannot_hold_more_than_its_share_of_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let port = port(&server);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // 40 connections from one address that never start their handshake: beyond 16 each closes
    // that address's oldest, instead of all of them waiting out the handshake timeout.
    let (closed, served) = runtime.block_on(async {
        let mut silent = Vec::new();
        for _ in 0..40 {
            silent.push(silent_connection(port, [127, 0, 0, 5]).await);
        }
        let closed = closed_by(&mut silent, Instant::now() + Duration::from_millis(300)).await;
        // A neighbour behind the same address, here with a certificate, still gets in.
        let neighbour = Peer::new(&server, Some(&admin));
        let served = healthy_connection(&neighbour, [127, 0, 0, 5])
            .await
            .is_some();
        (closed, served)
    });
    assert_eq!(
        closed.iter().filter(|c| **c).count(),
        24,
        "16 handshakes per address may wait, no more"
    );
    assert!(
        closed[..24].iter().all(|c| *c),
        "the oldest made way: {closed:?}"
    );
    assert!(served, "the address's 17th handshake was not served");
    let started = Instant::now();
    ok(server.gt_as(&admin, &["kms", "key", "list"]));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn silent_connections_from_many_addresses_cannot_stall_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let port = port(&server);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // 16 silent connections (the most one address may hold in its handshake) from each of 40
    // addresses: 640, more than the 512 handshakes the server runs at once.
    let opened = Instant::now();
    let mut silent = runtime.block_on(async {
        let mut silent = Vec::new();
        for n in 0..40u8 {
            for _ in 0..16 {
                silent.push(silent_connection(port, [127, 0, 1, 1 + n]).await);
            }
        }
        silent
    });
    let opening = opened.elapsed();

    // A caller arriving now is let in at once, not after the flood's handshakes time out.
    let started = Instant::now();
    ok(server.gt_as(&admin, &["kms", "key", "list"]));
    let took = started.elapsed();
    let closed = runtime.block_on(closed_by(
        &mut silent,
        Instant::now() + Duration::from_millis(500),
    ));
    let evicted = closed.iter().take_while(|c| **c).count();
    eprintln!(
        "640 silent connections opened in {opening:?}; an authenticated call took {took:?}; \
         {} closed by the server, the oldest {evicted} in a row",
        closed.iter().filter(|c| **c).count()
    );
    assert!(took < Duration::from_secs(3), "the call took {took:?}");
    // The oldest 128 made way for the newer ones (and one more for the call's connection);
    // the rest still wait for their ClientHello, well inside the handshake timeout.
    assert!((128..160).contains(&evicted), "{closed:?}");
    assert_eq!(closed.iter().filter(|c| **c).count(), evicted, "{closed:?}");
}

#[test]
fn one_certificate_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let peer = Peer::new(&server, Some(&admin));
    // A client with a certificate holds at most 128 connections: its 129th closes its first.
    let (first, rest) = runtime.block_on(async {
        let mut held = Vec::new();
        for n in 0..129usize {
            let source = [127, 0, 3, 1 + u8::try_from(n / 64).unwrap()];
            held.push(healthy_connection(&peer, source).await.unwrap());
        }
        let mut first = [held.remove(0)];
        (serving(&mut first).await, serving(&mut held).await)
    });
    assert_eq!((first, rest), (0, 128));
    // Another identity is untouched.
    ok(server.gt_as(&server.admin("audit-admin"), &["audit", "list"]));
}

/// Starts `per_connection` calls to `path` on each of `connections` connections of `peer` from
/// `source`, each sending its headers and the 5-byte message prefix, never the message.
async fn stalled_calls(
    peer: &Peer,
    sources: &[[u8; 4]],
    per_connection: usize,
    path: &str,
) -> Vec<Call> {
    let mut calls = Vec::new();
    for source in sources {
        let Some(mut send) = peer.connect_from(*source).await else {
            continue;
        };
        for _ in 0..per_connection {
            match start_call(&mut send, path, 64, &[], false).await {
                Some(call) => calls.push(call),
                None => break,
            }
        }
    }
    calls
}

#[test]
fn calls_that_never_send_their_request_cannot_stop_enrollment_or_unseal_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let token = server.register("payroll", &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let peer = Peer::new(&server, None);
    // 16 addresses x 2 connections x 8 streams: 256 Enroll calls that never send their CSR,
    // four times the places for callers without a certificate.
    let sources: Vec<[u8; 4]> = (0..32u8).map(|n| [127, 0, 4, 1 + n / 2]).collect();
    let flood = runtime.block_on(stalled_calls(&peer, &sources, 8, ENROLL));
    assert!(flood.len() >= 128, "the flood opened {} calls", flood.len());

    // Meanwhile a system enrolls and anyone reads the seal status.
    let started = Instant::now();
    let out = dir.path().join("payroll");
    ok(server.gt(&["enroll", "--token", &token, "--out", out.to_str().unwrap()]));
    let status = ok(server.gt(&["status"]));
    assert!(status.contains("unsealed"), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The flood's calls made way, each told why; the refusals are in the audit log.
    let codes = runtime.block_on(tally(flood, Duration::from_secs(15)));
    let cancelled = codes
        .iter()
        .find(|(code, _)| *code == RESOURCE_EXHAUSTED)
        .expect("stalled calls were cancelled for newer ones");
    assert!(cancelled.1.contains("had not arrived"), "{cancelled:?}");
    let audit = ok(server.gt_as(
        &server.admin("audit-admin"),
        &["audit", "list", "--json", "--limit", "1000"],
    ));
    assert!(audit.contains("limit.refused"), "no limit refusal audited");
}

#[test]
fn one_system_cannot_hold_every_call_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let alpha = server.enrolled(dir.path(), "alpha");
    let beta = server.enrolled(dir.path(), "beta");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let peer = Peer::new(&server, Some(&alpha));
    // alpha holds 4 x 256 Encrypt calls that never send their message: all 1,024 calls the
    // server runs at once, were they not shared out.
    let sources = [
        [127, 0, 5, 1],
        [127, 0, 5, 1],
        [127, 0, 5, 2],
        [127, 0, 5, 2],
    ];
    let flood = runtime.block_on(stalled_calls(
        &peer,
        &sources,
        256,
        "/govtrust.kms.v1.KeyManagement/Encrypt",
    ));
    assert!(flood.len() > 512, "alpha opened {} calls", flood.len());

    // Another system and the administrators are served at once.
    let started = Instant::now();
    server.create_key(&beta, "aes-256-gcm", &[]);
    ok(server.gt_as(&server.admin("system-admin"), &["cert", "list"]));
    ok(server.gt_as(&server.admin("security-admin"), &["kms", "key", "list"]));
    assert!(started.elapsed() < Duration::from_secs(5));

    // alpha's own calls beyond its share were refused at once, naming the share.
    let codes = runtime.block_on(tally(flood, Duration::from_millis(500)));
    let refused = codes
        .iter()
        .find(|(code, _)| *code == RESOURCE_EXHAUSTED)
        .expect("calls beyond alpha's share were refused");
    assert!(
        refused
            .1
            .contains("128 calls of spiffe://gov.example/org/finance/sys/alpha"),
        "{refused:?}"
    );
}

#[test]
fn renewed_certificates_share_their_identitys_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let alpha = server.enrolled(dir.path(), "alpha");
    let first = dir.path().join("alpha-first");
    std::fs::create_dir_all(&first).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(alpha.join(file), first.join(file)).unwrap();
    }
    ok(server.gt(&["renew", "--identity", alpha.to_str().unwrap()]));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (old, new) = (
        Peer::new(&server, Some(&first)),
        Peer::new(&server, Some(&alpha)),
    );
    // 64 connections with the first certificate, 65 with the renewed one: one identity, so
    // the 129th closes the identity's oldest.
    let (oldest, rest) = runtime.block_on(async {
        let mut held = Vec::new();
        for n in 0..129usize {
            let peer = if n < 64 { &old } else { &new };
            let source = [127, 0, 6, 1 + u8::try_from(n / 64).unwrap()];
            held.push(healthy_connection(peer, source).await.unwrap());
        }
        let mut oldest = [held.remove(0)];
        (serving(&mut oldest).await, serving(&mut held).await)
    });
    assert_eq!((oldest, rest), (0, 128));
}
