//! Shared fixtures of the CA's integration tests: a memory store, a recording audit sink, a
//! real kms (2-of-3, unsealed), a settable clock, CSR builders and the openssl CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use govtrust_ca::{
    Ca, InitArtifacts, InitParams, Network, ProtectionLevel, Registered, Registration, TokenTtl,
};
use govtrust_kms::{Clock, Kms};
use govtrust_store::{AuditEvent, AuditSink, Batch, Error as StoreError, MemoryStore, Store};
use rcgen::string::Ia5String;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

pub const TRUST_DOMAIN: &str = "gov.example";
pub const AUDIT_PREFIX: &str = "test-audit/";

/// A clock the test moves.
pub struct TestClock(Mutex<SystemTime>);

impl TestClock {
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// Stages each event as `action|actor|target|name=value;...` under `test-audit/`.
pub struct RecordingAudit;

impl AuditSink for RecordingAudit {
    fn stage(&self, batch: &mut Batch, event: &AuditEvent) -> Result<(), StoreError> {
        let details: Vec<String> = event
            .details
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let line = format!(
            "{}|{}|{}|{}",
            event.action,
            event.actor,
            event.target,
            details.join(";")
        );
        batch.append(AUDIT_PREFIX, line);
        Ok(())
    }
}

pub struct Fixture {
    pub store: Arc<MemoryStore>,
    pub kms: Arc<Kms>,
    pub clock: Arc<TestClock>,
    pub ca: Ca,
    pub artifacts: InitArtifacts,
    pub dir: tempfile::TempDir,
}

/// A store with an initialized, unsealed kms, plus the pieces to build a CA on it.
pub fn kms() -> (Arc<MemoryStore>, Arc<Kms>, Arc<TestClock>) {
    let store = Arc::new(MemoryStore::new());
    // Whole seconds, as X.509 and the stored records keep them.
    let start = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
    let clock = Arc::new(TestClock(Mutex::new(start)));
    let shares = Kms::initialize(store.as_ref(), &RecordingAudit, clock.as_ref(), 2, 3).unwrap();
    let kms = Arc::new(Kms::open(store.clone(), Arc::new(RecordingAudit), clock.clone()).unwrap());
    for share in shares.iter().take(2) {
        kms.unseal(share.contents.as_bytes()).unwrap();
    }
    assert!(!kms.is_sealed());
    (store, kms, clock)
}

pub fn init_params() -> InitParams {
    InitParams {
        trust_domain: TRUST_DOMAIN.to_owned(),
        server_dns_names: vec!["govtrust.gov.example".to_owned()],
        server_ips: vec!["10.0.0.1".parse().unwrap()],
        admin_csrs: Vec::new(),
        public_url: None,
    }
}

pub fn setup() -> Fixture {
    let (store, kms, clock) = kms();
    let (ca, artifacts) = Ca::initialize(
        store.clone(),
        kms.clone(),
        Arc::new(RecordingAudit),
        clock.clone(),
        &init_params(),
    )
    .unwrap();
    Fixture {
        store,
        kms,
        clock,
        ca,
        artifacts,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    /// Registers `name` (org `tax`) at `level` on `network` with `dns` names, token TTL 1 hour.
    pub fn register(&self, name: &str, level: u32, network: Network, dns: &[&str]) -> Registered {
        let registration = Registration {
            name: name.try_into().unwrap(),
            org_id: "tax".try_into().unwrap(),
            protection_level: ProtectionLevel::try_from(level).unwrap(),
            network,
            dns_names: dns.iter().map(|d| (*d).try_into().unwrap()).collect(),
            token_ttl: TokenTtl::try_from(Duration::from_secs(3600)).unwrap(),
        };
        self.ca
            .register_system("spiffe://gov.example/person/system-admin", registration)
            .unwrap()
    }

    pub fn spiffe(&self, name: &str) -> String {
        format!("spiffe://{TRUST_DOMAIN}/org/tax/sys/{name}")
    }

    /// The keys stored under `prefix`, as text.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let entries = self
            .store
            .scan(prefix.as_bytes(), None, usize::MAX)
            .unwrap();
        entries
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect()
    }

    /// Applies `edit` to the JSON record at `key`, as an older version of the CA would have
    /// stored it.
    pub fn rewrite(&self, key: &str, edit: impl FnOnce(&mut serde_json::Value)) {
        let value = self.store.get(key.as_bytes()).unwrap().unwrap();
        let mut record: serde_json::Value = serde_json::from_slice(&value).unwrap();
        edit(&mut record);
        let mut batch = Batch::new();
        batch.put(key, serde_json::to_vec(&record).unwrap());
        self.store.commit(batch).unwrap();
    }

    /// Deletes the record at `key`.
    pub fn delete(&self, key: &str) {
        let mut batch = Batch::new();
        batch.delete(key);
        self.store.commit(batch).unwrap();
    }

    /// Number of certificate records.
    pub fn cert_count(&self) -> usize {
        self.store
            .scan(b"ca/cert/", None, usize::MAX)
            .unwrap()
            .len()
    }

    /// Number of index entries of `holder`.
    pub fn index_count(&self, holder: &str) -> usize {
        self.store
            .scan(format!("ca/bysys/{holder}/").as_bytes(), None, usize::MAX)
            .unwrap()
            .len()
    }

    /// True when every stored token is unused.
    pub fn tokens_unused(&self) -> bool {
        let tokens = self.store.scan(b"ca/token/", None, usize::MAX).unwrap();
        assert!(!tokens.is_empty());
        tokens.iter().all(|(_, value)| {
            let record: serde_json::Value = serde_json::from_slice(value).unwrap();
            record["used_at_ms"].is_null()
        })
    }

    /// Audit lines whose action starts with `ca.`.
    pub fn ca_events(&self) -> Vec<String> {
        let entries = self
            .store
            .scan(AUDIT_PREFIX.as_bytes(), None, usize::MAX)
            .unwrap();
        entries
            .into_iter()
            .map(|(_, v)| String::from_utf8(v).unwrap())
            .filter(|line| line.starts_with("ca."))
            .collect()
    }

    /// Writes `contents` to a file in the test's directory.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// `openssl verify -x509_strict -attime <test clock> -purpose <purpose>` of `leaf_pem`
    /// against the chain of `network`; panics with openssl's output unless it says OK.
    pub fn openssl_verify(&self, leaf_pem: &str, network: Network, purpose: &str) {
        let chain = self.ca.chain();
        let root = self.write("root.pem", &chain.root_pem);
        let issuing = match network {
            Network::Extranet => &chain.extranet_pem,
            Network::Intranet => &chain.intranet_pem,
        };
        let issuing = self.write("issuing.pem", issuing);
        let leaf = self.write("leaf.pem", leaf_pem);
        let at = self
            .clock
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let args = [
            "verify",
            "-x509_strict",
            "-attime",
            &at,
            "-purpose",
            purpose,
            "-CAfile",
        ];
        let output = openssl(
            self.dir.path(),
            &args,
            &[&root, Path::new("-untrusted"), &issuing, &leaf],
        );
        assert!(
            output.contains("leaf.pem: OK"),
            "openssl verify failed: {output}"
        );
    }
}

/// Runs openssl; returns stdout and stderr together.
pub fn openssl(dir: &Path, args: &[&str], paths: &[&Path]) -> String {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .args(paths)
        .output()
        .expect("openssl CLI installed");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Subject alternative names for a test CSR.
pub enum San<'a> {
    Dns(&'a str),
    Uri(&'a str),
    Ip(&'a str),
    Email(&'a str),
}

/// A CSR (DER) with common name `cn`, signed by a fresh P-256 key.
pub fn csr(cn: &str, sans: &[San<'_>]) -> Vec<u8> {
    csr_with_key(&KeyPair::generate().unwrap(), cn, sans)
}

pub fn csr_with_key(key: &KeyPair, cn: &str, sans: &[San<'_>]) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = sans
        .iter()
        .map(|san| match san {
            San::Dns(name) => SanType::DnsName(Ia5String::try_from(*name).unwrap()),
            San::Uri(uri) => SanType::URI(Ia5String::try_from(*uri).unwrap()),
            San::Ip(ip) => SanType::IpAddress(ip.parse().unwrap()),
            San::Email(mail) => SanType::Rfc822Name(Ia5String::try_from(*mail).unwrap()),
        })
        .collect();
    params.serialize_request(key).unwrap().der().to_vec()
}

/// A CSR (DER) made by `openssl req` with a new key from `newkey` (e.g. `rsa:1024`).
pub fn openssl_csr(dir: &Path, newkey: &str, cn: &str) -> Vec<u8> {
    let out = dir.join("openssl-req.der");
    let subject = format!("/CN={cn}");
    let args = [
        "req", "-new", "-newkey", newkey, "-nodes", "-subj", &subject, "-outform", "DER", "-keyout",
    ];
    let output = openssl(
        dir,
        &args,
        &[&dir.join("openssl-req.key"), Path::new("-out"), &out],
    );
    std::fs::read(&out).unwrap_or_else(|e| panic!("openssl req failed ({e}): {output}"))
}

/// Parses a PEM certificate (the first block) into DER.
pub fn pem_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

/// All PEM blocks of `pem`, DER.
pub fn pem_blocks(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| p.unwrap().contents)
        .collect()
}

/// Verifies `leaf_der` to the root with rustls-webpki for `usage` (`client` or `server`).
pub fn webpki_verify(ca: &Ca, leaf_der: &[u8], network: Network, server: bool) {
    use rustls_pki_types::{CertificateDer, UnixTime};
    let chain = ca.chain();
    let root = CertificateDer::from(chain.root_der.as_slice());
    let anchors = [webpki::anchor_from_trusted_cert(&root).unwrap()];
    let issuing = match network {
        Network::Extranet => &chain.extranet_der,
        Network::Intranet => &chain.intranet_der,
    };
    let intermediates = [CertificateDer::from(issuing.as_slice())];
    let leaf = CertificateDer::from(leaf_der);
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    let algs = [
        webpki::ring::ECDSA_P256_SHA256,
        webpki::ring::ECDSA_P384_SHA384,
    ];
    let usage = if server {
        webpki::KeyUsage::server_auth()
    } else {
        webpki::KeyUsage::client_auth()
    };
    ee.verify_for_usage(
        &algs,
        &anchors,
        &intermediates,
        UnixTime::now(),
        usage,
        None,
        None,
    )
    .unwrap();
}
