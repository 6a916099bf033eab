//! End to end: a SIGKILL in the middle of a concurrent load of registrations, enrollments and
//! key creations loses nothing that was acknowledged. Every certificate, key and system a
//! client was told about is there after the restart, and so is its audit event.
//!
//! The load runs over the real gRPC API with tonic clients (a CLI process per call would be
//! too slow to keep several calls in flight): each worker registers a system as the system
//! administrator, enrolls it with its token over server-auth TLS, then creates keys as the
//! system over mTLS, again and again, until the server dies under it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use govtrust_proto::audit::audit_log_client::AuditLogClient;
use govtrust_proto::audit::{Event, ListEventsRequest};
use govtrust_proto::ca::certificate_authority_client::CertificateAuthorityClient;
use govtrust_proto::ca::{
    EnrollRequest, GetCertificateRequest, ListCertificatesRequest, Network, RegisterSystemRequest,
};
use govtrust_proto::kms::key_management_client::KeyManagementClient;
use govtrust_proto::kms::{CreateKeyRequest, GetKeyRequest, KeyAlgorithm};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use support::Server;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Concurrent clients.
const WORKERS: usize = 4;
/// Keys each enrolled system creates.
const KEYS_PER_SYSTEM: usize = 2;
/// The server is killed once this many operations were acknowledged, with the load running.
const KILL_AFTER: usize = 100;
const TRUST_DOMAIN: &str = "gov.example";

/// What clients were told succeeded.
#[derive(Default)]
struct Acknowledged {
    systems: Vec<String>,
    /// Serial and system.
    certificates: Vec<(String, String)>,
    /// Key id and owner.
    keys: Vec<(String, String)>,
}

impl Acknowledged {
    fn count(&self) -> usize {
        self.systems.len() + self.certificates.len() + self.keys.len()
    }
}

/// Where the server is and whom to trust.
#[derive(Clone)]
struct Target {
    url: String,
    root: Vec<u8>,
}

impl Target {
    async fn channel(&self, identity: Option<Identity>) -> anyhow::Result<Channel> {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.root));
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        let endpoint = Endpoint::from_shared(self.url.clone())?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        Ok(endpoint.connect().await?)
    }
}

/// A credential directory's certificate and key as a tonic identity.
fn identity(dir: &Path) -> Identity {
    let cert = std::fs::read(dir.join("cert.pem")).unwrap();
    let key = std::fs::read(dir.join("key.pem")).unwrap();
    Identity::from_pem(cert, key)
}

/// Shared state of the load: the acknowledgements and when to stop.
struct Load {
    target: Target,
    admin: Identity,
    acked: Mutex<Acknowledged>,
    /// Operations acknowledged so far, read by the killer.
    acks: AtomicUsize,
}

impl Load {
    fn ack(&self, record: impl FnOnce(&mut Acknowledged)) {
        record(&mut self.acked.lock().unwrap());
        self.acks.fetch_add(1, Ordering::SeqCst);
    }
}

/// Registers, enrolls and creates keys for system after system until a call fails (the server
/// was killed); returns that failure.
async fn worker(load: Arc<Load>, worker: usize) -> anyhow::Error {
    let admin = match load.target.channel(Some(load.admin.clone())).await {
        Ok(channel) => CertificateAuthorityClient::new(channel),
        Err(error) => return error,
    };
    for round in 0.. {
        let name = format!("crash-{worker}-{round}");
        if let Err(error) = one_system(&load, admin.clone(), &name).await {
            return error;
        }
    }
    unreachable!("the load runs until the server dies")
}

async fn one_system(
    load: &Load,
    mut admin: CertificateAuthorityClient<Channel>,
    name: &str,
) -> anyhow::Result<()> {
    let registered = admin
        .register_system(RegisterSystemRequest {
            name: name.to_owned(),
            org_id: "finance".into(),
            protection_level: 3,
            network: Network::Extranet.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    load.ack(|a| a.systems.push(name.to_owned()));
    let (key, csr) = request(name);
    let mut enroll = CertificateAuthorityClient::new(load.target.channel(None).await?);
    let issued = enroll
        .enroll(EnrollRequest {
            token: registered.enrollment_token,
            csr,
        })
        .await?
        .into_inner()
        .certificate
        .ok_or_else(|| anyhow::anyhow!("Enroll answered without a certificate"))?;
    load.ack(|a| {
        a.certificates
            .push((issued.serial.clone(), name.to_owned()))
    });
    let system = Identity::from_pem(&issued.certificate_pem, key.serialize_pem());
    let mut kms = KeyManagementClient::new(load.target.channel(Some(system)).await?);
    for _ in 0..KEYS_PER_SYSTEM {
        let created = kms
            .create_key(CreateKeyRequest {
                algorithm: KeyAlgorithm::Aes256Gcm.into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .key
            .ok_or_else(|| anyhow::anyhow!("CreateKey answered without a key"))?;
        load.ack(|a| a.keys.push((created.key_id, spiffe_id(name))));
    }
    Ok(())
}

/// True when `failure` says the server went away (a call cut off, a refused connection), not
/// that it refused a call.
fn disconnected(failure: &anyhow::Error) -> bool {
    if failure.is::<tonic::transport::Error>() {
        return true;
    }
    let text = failure.to_string();
    failure
        .downcast_ref::<tonic::Status>()
        .is_some_and(|status| {
            // Cancelled: the connection closed with the call in flight.
            matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled
            )
        })
        // "h2 protocol error": killed while the client read the answer's body (the peer
        // closed without a TLS close_notify).
        && (text.contains("transport error") || text.contains("h2 protocol error"))
}

/// A fresh P-256 key and a CSR (DER) for system `name`.
fn request(name: &str) -> (KeyPair, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    let csr = params.serialize_request(&key).unwrap().der().to_vec();
    (key, csr)
}

fn spiffe_id(system: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/org/finance/sys/{system}")
}

/// Waits until `KILL_AFTER` operations were acknowledged, then SIGKILLs the server.
async fn kill_under_load(load: &Load, server: Server) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while load.acks.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load made too little progress; server log: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_the_server_is_killed_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let data = server.data.clone();
    let load = Arc::new(Load {
        target: Target {
            url: server.url.clone(),
            root: std::fs::read(server.root()).unwrap(),
        },
        admin: identity(&server.admin("system-admin")),
        acked: Mutex::default(),
        acks: AtomicUsize::new(0),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|n| tokio::spawn(worker(load.clone(), n)))
        .collect();
    kill_under_load(&load, server).await;
    for handle in workers {
        // Every worker was still running when the server died, and stops on its first failure.
        let stopped = tokio::time::timeout(Duration::from_secs(20), handle).await;
        let failure = stopped
            .expect("a worker did not stop after the kill")
            .unwrap();
        assert!(
            disconnected(&failure),
            "a worker failed before the kill: {failure:#}"
        );
    }
    let acked = std::mem::take(&mut *load.acked.lock().unwrap());
    eprintln!(
        "acknowledged before the kill: {} systems, {} certificates, {} keys",
        acked.systems.len(),
        acked.certificates.len(),
        acked.keys.len()
    );
    assert!(acked.count() >= KILL_AFTER);

    let server = Server::start_with(&data, true, &[]);
    let target = Target {
        url: server.url.clone(),
        root: std::fs::read(server.root()).unwrap(),
    };
    check_certificates(&target, &server, &acked).await;
    check_keys(&target, &server, &acked).await;
    check_audit(&target, &server, &acked).await;
}

/// Every acknowledged certificate by serial, and in its system's list.
async fn check_certificates(target: &Target, server: &Server, acked: &Acknowledged) {
    let admin = identity(&server.admin("system-admin"));
    let mut ca = CertificateAuthorityClient::new(target.channel(Some(admin)).await.unwrap());
    for (serial, system) in &acked.certificates {
        let found = ca
            .get_certificate(GetCertificateRequest {
                serial: serial.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged certificate {serial} is lost: {e}"))
            .into_inner()
            .certificate
            .unwrap();
        assert_eq!(&found.system, system);
        let listed = ca
            .list_certificates(ListCertificatesRequest {
                system: system.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            listed.certificates.iter().any(|c| &c.serial == serial),
            "{serial} missing from the list of {system}"
        );
    }
}

/// Every acknowledged key, with its owner.
async fn check_keys(target: &Target, server: &Server, acked: &Acknowledged) {
    let security = identity(&server.admin("security-admin"));
    let mut kms = KeyManagementClient::new(target.channel(Some(security)).await.unwrap());
    for (key_id, owner) in &acked.keys {
        let key = kms
            .get_key(GetKeyRequest {
                key_id: key_id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged key {key_id} is lost: {e}"))
            .into_inner()
            .key
            .unwrap();
        assert_eq!(&key.owner, owner);
    }
}

/// The audit log has no gaps and holds the event of every acknowledged change.
async fn check_audit(target: &Target, server: &Server, acked: &Acknowledged) {
    let events = audit_events(target, server).await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(sequences, expected, "the audit log has gaps");
    let recorded: HashSet<(&str, &str)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str()))
        .collect();
    let wanted = acked
        .systems
        .iter()
        .map(|system| ("ca.system.register", system))
        .chain(acked.certificates.iter().map(|(s, _)| ("ca.enroll", s)))
        .chain(acked.keys.iter().map(|(k, _)| ("kms.key.create", k)));
    for (action, target) in wanted {
        assert!(
            recorded.contains(&(action, target.as_str())),
            "the audit event {action} {target} is lost"
        );
    }
}

/// The whole audit log, as the audit administrator reads it.
async fn audit_events(target: &Target, server: &Server) -> Vec<Event> {
    let auditor = identity(&server.admin("audit-admin"));
    let mut audit = AuditLogClient::new(target.channel(Some(auditor)).await.unwrap());
    let mut events: Vec<Event> = Vec::new();
    loop {
        let after_sequence = events.last().map_or(0, |e| e.sequence);
        let page = audit
            .list_events(ListEventsRequest {
                after_sequence,
                page_size: 1000,
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}
