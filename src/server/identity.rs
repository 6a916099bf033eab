//! Who is calling: verifies a caller's client certificate chain and names the principal.
//!
//! The chain must lead to this deployment's root through one of its issuing CAs, be valid now,
//! and allow client authentication. The identity is the certificate's SPIFFE URI SAN:
//! `spiffe://<td>/org/<org>/sys/<name>` for systems, `spiffe://<td>/person/<id>` for people
//! (administrators get their role from the CA's person registry). Verified leaves are cached by
//! their SHA-256 so the hot path pays one hash per call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use govtrust_ca::{Ca, Lineage, Reason, Role, Serial};
use govtrust_kms::Clock;
use rustls::pki_types::{CertificateDer, UnixTime};
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Bound on cached verified leaves; the cache is cleared when it is full.
const CACHE_LIMIT: usize = 100_000;

/// What kind of caller a verified certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An administrator with one of the three separated roles.
    Administrator(Role),
    /// A registered government system.
    System { org: String, name: String },
    /// A verified identity with no role here (a person without a role).
    Unknown,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub spiffe_id: String,
    /// The certificate's serial.
    pub serial: Serial,
    pub kind: Kind,
    /// For a system: which enrollment its certificate belongs to, and the system's lineage now.
    pub standing: Option<Standing>,
    not_after: SystemTime,
}

/// A system caller's place in its enrollment lineage (see `govtrust_ca::Lineage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The generation the presented certificate was issued in.
    pub certificate_generation: u32,
    /// The system's lineage at the time of the call.
    pub lineage: Lineage,
}

#[cfg(test)]
impl Principal {
    /// A principal for policy tests.
    pub fn for_test(spiffe_id: &str, kind: Kind) -> Self {
        let not_after = SystemTime::now() + std::time::Duration::from_secs(3600);
        Self {
            spiffe_id: spiffe_id.to_owned(),
            serial: Serial::parse("01").unwrap_or_else(|_| unreachable!()),
            kind,
            standing: None,
            not_after,
        }
    }

    /// The same principal with a lineage standing, for policy tests.
    pub fn with_standing(mut self, certificate_generation: u32, lineage: Lineage) -> Self {
        self.standing = Some(Standing {
            certificate_generation,
            lineage,
        });
        self
    }
}

/// The caller of one call as the admission layer resolved it (see [`Authenticator::resolve`]),
/// kept in the call's extensions so its handler does not verify it again.
#[derive(Clone)]
pub struct Resolved(pub Result<Principal, Status>);

/// Verifies client certificates against the deployment's CA hierarchy.
pub struct Authenticator {
    ca: Arc<Ca>,
    /// The server's clock, the one the CA issues with (dev mode may run it ahead).
    clock: Arc<dyn Clock>,
    root: CertificateDer<'static>,
    intermediates: Vec<CertificateDer<'static>>,
    cache: Mutex<HashMap<[u8; 32], Principal>>,
    /// Leaf fingerprints per connection (see [`Authenticator::connection_fingerprint`]).
    connections: Mutex<HashMap<usize, Fingerprinted>>,
}

/// A connection's certificates (held weakly) and their leaf's fingerprint.
type Fingerprinted = (std::sync::Weak<Vec<CertificateDer<'static>>>, [u8; 32]);

impl Authenticator {
    pub fn new(ca: Arc<Ca>, clock: Arc<dyn Clock>) -> Self {
        let chain = ca.chain();
        let root = CertificateDer::from(chain.root_der.clone());
        let intermediates = vec![
            CertificateDer::from(chain.extranet_der.clone()),
            CertificateDer::from(chain.intranet_der.clone()),
        ];
        Self {
            ca,
            clock,
            root,
            intermediates,
            cache: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of a gRPC call: resolved already by the admission layer, or verified now.
    pub fn of<T>(&self, request: &tonic::Request<T>) -> Result<Principal, Status> {
        match request.extensions().get::<Resolved>() {
            Some(Resolved(resolved)) => resolved.clone(),
            None => self.connection_principal(request.peer_certs()),
        }
    }

    /// [`Authenticator::of`], taking the resolved principal out of the call (no copy).
    pub fn take<T>(&self, request: &mut tonic::Request<T>) -> Result<Principal, Status> {
        match request.extensions_mut().remove::<Resolved>() {
            Some(Resolved(resolved)) => resolved,
            None => self.connection_principal(request.peer_certs()),
        }
    }

    /// The principal of an HTTP request's connection (its peer certificates), or
    /// `Unauthenticated`.
    pub fn resolve<B>(&self, request: &http::Request<B>) -> Result<Principal, Status> {
        let connection = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
        self.connection_principal(connection.and_then(TlsConnectInfo::peer_certs))
    }

    /// The principal of the certificates of a connection: tonic hands every call of one
    /// connection the same `Arc`, so the leaf's fingerprint is computed once per connection
    /// (a SHA-256 of the certificate was a fifth of a KMS call's cost).
    fn connection_principal(
        &self,
        certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    ) -> Result<Principal, Status> {
        let Some(certs) = certs else {
            return self.principal(None);
        };
        let Some(digest) = self.connection_fingerprint(&certs) else {
            return self.principal(Some(certs.as_slice()));
        };
        self.known(certs.as_slice(), digest)
    }

    /// The leaf fingerprint of a connection's certificates, from the per-connection cache.
    /// The cache holds a `Weak` to the certificates: while it does, their allocation is not
    /// reused, so an address that matches and still upgrades is the same connection's.
    fn connection_fingerprint(
        &self,
        certs: &Arc<Vec<CertificateDer<'static>>>,
    ) -> Option<[u8; 32]> {
        let key = Arc::as_ptr(certs) as usize;
        let mut connections = self.connections.lock().ok()?;
        if let Some((weak, digest)) = connections.get(&key)
            && weak.upgrade().is_some_and(|held| Arc::ptr_eq(&held, certs))
        {
            return Some(*digest);
        }
        let digest = fingerprint(certs.first()?);
        if connections.len() >= CACHE_LIMIT {
            connections.retain(|_, (weak, _)| weak.strong_count() > 0);
        }
        connections.insert(key, (Arc::downgrade(certs), digest));
        Some(digest)
    }

    /// The principal of a call's peer certificates, or `Unauthenticated`.
    pub fn principal(&self, peer: Option<&[CertificateDer<'static>]>) -> Result<Principal, Status> {
        let chain = peer.filter(|chain| !chain.is_empty()).ok_or_else(|| {
            Status::unauthenticated("this call requires a client certificate (mTLS)")
        })?;
        let leaf = chain
            .first()
            .ok_or_else(|| Status::unauthenticated("empty certificate chain"))?;
        self.known(chain, fingerprint(leaf))
    }

    /// The principal of `chain`, whose leaf has the fingerprint `digest`: cached, or verified.
    fn known(
        &self,
        chain: &[CertificateDer<'static>],
        digest: [u8; 32],
    ) -> Result<Principal, Status> {
        let leaf = chain
            .first()
            .ok_or_else(|| Status::unauthenticated("empty certificate chain"))?;
        let principal = match self.cached(&digest) {
            Some(principal) => principal,
            None => {
                let principal = self.verify(leaf, chain)?;
                self.remember(digest, principal.clone());
                principal
            }
        };
        self.current(principal)
    }

    /// `principal` with its system's lineage as it stands now: a re-enrollment since the
    /// certificate was verified must take effect on the next call, and so must a revocation
    /// or suspension of the certificate (checked in memory, every call).
    fn current(&self, mut principal: Principal) -> Result<Principal, Status> {
        self.not_superseded(&principal)?;
        if let Some((reason, at)) = self.ca.revocation(&principal.serial) {
            let at = crate::rfc3339::format(at);
            return Err(Status::unauthenticated(match reason {
                Reason::CertificateHold => format!(
                    "client certificate {} is suspended (since {at})",
                    principal.serial
                ),
                reason => format!(
                    "client certificate {} was revoked ({reason}) at {at}",
                    principal.serial
                ),
            }));
        }
        if let (Kind::System { name, .. }, Some(standing)) =
            (&principal.kind, principal.standing.as_mut())
        {
            standing.lineage = self.lineage(name)?;
        }
        Ok(principal)
    }

    /// Refuses a renewed certificate once the renewal grace is over, or at once when the
    /// certificate that renewed it is revoked or suspended: suspending or revoking a holder's
    /// newest certificate stops its predecessors too.
    fn not_superseded(&self, principal: &Principal) -> Result<(), Status> {
        let Some((at, by)) = self.ca.supersession(&principal.serial) else {
            return Ok(());
        };
        if self.ca.revocation(&by).is_some() {
            return Err(Status::unauthenticated(format!(
                "client certificate {} was renewed by {by}, which is revoked or suspended",
                principal.serial
            )));
        }
        let end = at.checked_add(self.ca.renewal_grace());
        match end.is_some_and(|end| self.clock.now() < end) {
            true => Ok(()),
            false => Err(Status::unauthenticated(format!(
                "client certificate {} was renewed at {} (by {by}); use the newest certificate",
                principal.serial,
                crate::rfc3339::format(at)
            ))),
        }
    }

    fn lineage(&self, system: &str) -> Result<Lineage, Status> {
        self.ca
            .lineage(system)
            .map_err(|e| Status::internal(format!("lineage lookup failed: {e}")))
    }

    /// The enrollment generation a key for `owner` is created under: the current one of the
    /// system `owner` names, 0 for persons and identities that are no system.
    pub fn owner_generation(&self, owner: &str) -> Result<u32, Status> {
        let prefix = format!("spiffe://{}/", self.ca.trust_domain());
        let path = owner.strip_prefix(&prefix).unwrap_or_default();
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["org", _, "sys", name] => Ok(self.lineage(name)?.generation),
            _ => Ok(0),
        }
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Principal> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(digest)
            .filter(|p| p.not_after > self.clock.now())
            .cloned()
    }

    fn remember(&self, digest: [u8; 32], principal: Principal) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(digest, principal);
        }
    }

    fn verify(
        &self,
        leaf: &CertificateDer<'static>,
        chain: &[CertificateDer<'static>],
    ) -> Result<Principal, Status> {
        self.verify_chain(leaf, chain)?;
        let (spiffe_id, text, not_after) = names(leaf)?;
        let serial = Serial::parse(&text).map_err(|_| {
            Status::unauthenticated(format!("client certificate serial {text} is not valid"))
        })?;
        let kind = self.kind(&spiffe_id)?;
        let standing = match &kind {
            Kind::System { .. } => Some(self.standing(&serial)?),
            _ => None,
        };
        Ok(Principal {
            spiffe_id,
            serial,
            kind,
            standing,
            not_after,
        })
    }

    /// The standing of a system certificate: its recorded generation (the lineage is filled
    /// per call). A certificate this CA never recorded is refused.
    fn standing(&self, serial: &Serial) -> Result<Standing, Status> {
        let record = self.ca.certificate(serial);
        let record = record.map_err(|_| {
            Status::unauthenticated(format!(
                "client certificate {serial} was not issued by this CA"
            ))
        })?;
        Ok(Standing {
            certificate_generation: record.generation,
            lineage: Lineage::default(),
        })
    }

    fn verify_chain(
        &self,
        leaf: &CertificateDer<'static>,
        chain: &[CertificateDer<'static>],
    ) -> Result<(), Status> {
        let rejected =
            |e: webpki::Error| Status::unauthenticated(format!("client certificate rejected: {e}"));
        let anchor = webpki::anchor_from_trusted_cert(&self.root)
            .map_err(|e| Status::internal(format!("root certificate unusable: {e}")))?;
        let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(rejected)?;
        let mut intermediates = self.intermediates.clone();
        intermediates.extend(chain.iter().skip(1).cloned());
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                &intermediates,
                self.now()?,
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(rejected)?;
        Ok(())
    }

    fn now(&self) -> Result<UnixTime, Status> {
        let since_epoch = self
            .clock
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| Status::internal("the server clock is before 1970"))?;
        Ok(UnixTime::since_unix_epoch(since_epoch))
    }

    fn kind(&self, spiffe_id: &str) -> Result<Kind, Status> {
        let prefix = format!("spiffe://{}/", self.ca.trust_domain());
        let path = spiffe_id.strip_prefix(&prefix).ok_or_else(|| {
            Status::unauthenticated(format!("{spiffe_id} is not in this trust domain"))
        })?;
        let parts: Vec<&str> = path.split('/').collect();
        Ok(match parts.as_slice() {
            ["person", _] => self
                .role(spiffe_id)?
                .map_or(Kind::Unknown, Kind::Administrator),
            ["org", org, "sys", name] => Kind::System {
                org: (*org).to_owned(),
                name: (*name).to_owned(),
            },
            _ => Kind::Unknown,
        })
    }

    fn role(&self, spiffe_id: &str) -> Result<Option<Role>, Status> {
        self.ca
            .role(spiffe_id)
            .map_err(|e| Status::internal(format!("role lookup failed: {e}")))
    }
}

/// The SHA-256 of a certificate's DER: how a certificate is named before it is trusted.
pub fn fingerprint(cert: &CertificateDer<'_>) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The SPIFFE id, serial (lower-case hex) and notAfter of a certificate.
fn names(leaf: &CertificateDer<'_>) -> Result<(String, String, SystemTime), Status> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| Status::unauthenticated(format!("client certificate does not parse: {e}")))?;
    let spiffe_id = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
                _ => None,
            })
        })
        .ok_or_else(|| Status::unauthenticated("client certificate has no SPIFFE identity"))?;
    let serial = hex::encode(cert.raw_serial());
    let not_after = SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(
            u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0),
        );
    Ok((spiffe_id, serial, not_after))
}
