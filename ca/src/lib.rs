//! The certificate authority of govtrust (一证通用: one certificate every system accepts).
//!
//! - **Hierarchy.** A root CA (ECDSA P-384, 20 years) over two issuing CAs, `extranet` and
//!   `intranet`, one per government network (ECDSA P-256, 10 years, pathLen 0). All three keys
//!   are internal keys of the kms; every certificate is signed on one path, through the CA's
//!   [`govtrust_kms::Signer`] from the kms, so no CA private key exists outside it.
//! - **Identities.** A certificate's identity is a SPIFFE URI SAN:
//!   `spiffe://<trust-domain>/org/<org>/sys/<system>` for systems,
//!   `spiffe://<trust-domain>/person/<id>` for people. The three administrator roles
//!   (三员分立) get person certificates at initialization; [`Ca::role`] tells them apart.
//! - **Registry and enrollment.** The system administrator registers a system
//!   ([`Ca::register_system`]) and hands it a one-time token (a new one, superseding the last,
//!   from [`Ca::issue_token`]); the system enrolls with the token and a CSR ([`Ca::enroll`]) and
//!   later renews over mTLS with its current certificate ([`Ca::renew`]). Validity follows the
//!   system's protection level (等级保护 1–4).
//! - **Profiles.** Every certificate follows a profile ([`Profiles`], TOML data from
//!   `policies/profiles/`): keys, key usage, extended key usage, names, lifetime, capped by the
//!   holder's protection level and [`Settings::max_validity`]. Enrollment and renewal issue
//!   `system-identity`; a system gets other profiles for its own names over mTLS
//!   ([`Ca::issue_certificate`]). Every leaf carries SKI, AKI and, with
//!   [`Settings::base_url`], its issuer's CRL distribution point, OCSP and CA-issuers URLs.
//! - **Persons.** A security administrator registers civil servants ([`Ca::register_person`]:
//!   the national ID only as a kms keyed digest) and hands each a one-time token; the person
//!   enrolls with it for a person profile ([`Ca::enroll_person`]). Persons hold no role.
//! - **Names.** A DNS name belongs to at most one system (`ca/dns/<name>`), and no system may
//!   hold `localhost`, `*.localhost` or a name of the govtrust server: systems and the server
//!   share one hierarchy, so such a certificate would let a system pass for the server.
//! - **Records.** Every issued certificate is recorded (`ca/cert/<serial>`) and listed by
//!   holder, status and expiry ([`Ca::list_certificates`]).
//! - **OCSP.** [`ocsp`] parses RFC 6960 requests and signs responses through a custody signer
//!   (a delegated responder's or the CA's), without HTTP or revocation storage.
//!
//! Every state change stages its audit event into the batch that carries it, so the event is
//! durable exactly when the change is, and a certificate is durable before it is returned.
//!
//! What it does not do: talk gRPC (the server
//! maps [`Error`] to status codes) or decide authorization (the server's policy point does,
//! using [`Ca::role`]).

mod bootstrap;
mod certificates;
mod credentials;
mod crl;
mod csr;
mod enrollment;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod hierarchy;
mod identity;
mod issuance;
mod issuer;
mod lineage;
mod locations;
mod names;
mod national;
pub mod ocsp;
mod pem;
mod persons;
mod profiles;
mod records;
mod registry;
mod reserved;
mod revocation;
mod sm2cert;
mod timestamps;
mod token;
mod trust;
mod verify;
mod waiting;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_kms::{Clock, Kms};
use govtrust_store::{AuditSink, Store};
use ring::rand::SystemRandom;

pub use bootstrap::{Credential, InitArtifacts, InitParams};
pub use certificates::{CertFilter, CertRecord, CertStatus, Supersession};
pub use crl::{Crl, Timing};
pub use enrollment::{Caller, Issued};
pub use error::Error;
pub use hierarchy::CaChain;
pub use identity::{Network, ProtectionLevel, Role, SERVER_IDENTITY as SERVER_HOLDER};
pub use issuer::{Authority, Serial};
pub use lineage::Lineage;
pub use names::{DnsName, OrgId, PersonId, SystemName};
pub use persons::{DisplayText, NationalId, Person, PersonRegistration, PersonToken};
pub use profiles::{HolderKind, Profile, Profiles, SYSTEM_IDENTITY};
pub use registry::{
    ReEnrollment, Registered, Registration, SystemRecord, TokenRequest, TokenTtl, reenrollment,
};
pub use revocation::{Actor, Change, Reason, Revocation};
pub use trust::TrustAnchor;
pub use verify::{CrlSource, Problem, Purpose, Question, Verdict};

use hierarchy::Hierarchy;
use reserved::ServerNames;

/// The certificate authority. `Send + Sync`; share it as `Arc<Ca>`. Calls block on the store
/// and the kms: async callers run them with `spawn_blocking`.
pub struct Ca {
    store: Arc<dyn Store>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    hierarchy: Hierarchy,
    /// The SM2 hierarchy of the national suite; unset in a deployment initialized before it,
    /// until [`Ca::ensure_national_hierarchy`] creates it.
    national: std::sync::OnceLock<national::NationalHierarchy>,
    /// Names no system may hold.
    server_names: ServerNames,
    /// Every system's enrollment lineage, cached (one node).
    lineages: lineage::Lineages,
    /// Revoked and suspended certificates, in memory (one node).
    revocations: revocation::Revocations,
    /// The current CRL of each CA.
    crls: crl::Publisher,
    /// Each CA's OCSP responder and the responses signed in advance.
    ocsp: ocsp::Ocsp,
    /// CRLs of other CAs fetched for verification.
    external_crls: verify::ExternalCrls,
    settings: Settings,
    /// The certificate profiles it issues by.
    profiles: profiles::Profiles,
    rng: SystemRandom,
}

/// How the CA issues and publishes, from the server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long after its renewal a certificate may still renew (a lost answer).
    pub renewal_grace: Duration,
    /// CRL lifetimes.
    pub crl: Timing,
    /// OCSP response lifetimes.
    pub ocsp: Timing,
    /// Where relying parties reach the HTTP port (`http://host:port` or with a path, no
    /// trailing `/`): the base of the CRL distribution point, OCSP and CA-issuers URLs
    /// written into certificates. `None`: certificates carry none.
    pub base_url: Option<String>,
    /// No certificate lives longer, whatever its profile and protection level allow.
    pub max_validity: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            renewal_grace: Duration::from_secs(3600),
            crl: Timing {
                next_update: Duration::from_secs(7 * 86_400),
                refresh: Duration::from_secs(86_400),
            },
            ocsp: Timing {
                next_update: Duration::from_secs(86_400),
                refresh: Duration::from_secs(12 * 3600),
            },
            base_url: None,
            max_validity: Duration::from_secs(397 * 86_400),
        }
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Initializes the CA; needs an unsealed kms.
    ///
    /// Creates the three CA keys in the kms and their certificates, stores the hierarchy
    /// (`ca/hierarchy`, with the server's DNS names and IPs, which no system may then register),
    /// issues the server's TLS certificate (intranet CA, serverAuth, SANs: the
    /// server's DNS names and IPs plus its SPIFFE id `spiffe://<td>/govtrust`) and one client
    /// certificate per [`Role`] (intranet CA, clientAuth, `spiffe://<td>/person/<role>`, CN the
    /// role name), records them all and audits `ca.init`, in one batch. The server and
    /// administrator keys are generated here and returned once; the caller writes them to
    /// 0600 files.
    ///
    /// Fails with [`Error::AlreadyInitialized`] if the store holds a hierarchy. If the batch
    /// fails, the CA keys created in the kms remain there unused.
    pub fn initialize(
        store: Arc<dyn Store>,
        kms: Arc<Kms>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
        params: &InitParams,
    ) -> Result<(Ca, InitArtifacts), Error> {
        bootstrap::initialize(
            bootstrap::Services {
                store,
                kms,
                audit,
                clock,
            },
            params,
        )
    }

    /// Opens an initialized CA ([`Error::NotInitialized`] otherwise). Only reads the store, so
    /// it works while the kms is sealed; issuing then fails with the kms's error until unsealed.
    pub fn open(
        store: Arc<dyn Store>,
        kms: Arc<Kms>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Result<Ca, Error> {
        let hierarchy = Hierarchy::load(store.as_ref(), &kms)?;
        let national = std::sync::OnceLock::new();
        if let Some(stored) = national::NationalHierarchy::load(store.as_ref())? {
            let _ = national.set(stored);
        }
        let server_names = ServerNames::load(store.as_ref())?;
        let revocations = revocation::Revocations::load(store.as_ref(), clock.now())?;
        let crls = crl::Publisher::load(store.as_ref())?;
        Ok(Ca {
            store,
            audit,
            clock,
            hierarchy,
            national,
            server_names,
            lineages: lineage::Lineages::default(),
            revocations,
            crls,
            ocsp: ocsp::Ocsp::default(),
            external_crls: verify::ExternalCrls::default(),
            settings: Settings::default(),
            profiles: profiles::Profiles::builtin()?,
            rng: SystemRandom::new(),
        })
    }

    /// This CA with `settings` instead of the defaults.
    pub fn with_settings(self, settings: Settings) -> Self {
        Self { settings, ..self }
    }

    /// This CA issuing by `profiles` instead of the built-in ones.
    pub fn with_profiles(self, profiles: Profiles) -> Self {
        Self { profiles, ..self }
    }

    /// The certificate profiles it issues by.
    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// The SM2 CA certificates of the national suite, if this deployment has them (those
    /// initialized before the national suite do not).
    pub fn national_chain(&self) -> Option<&CaChain> {
        self.national.get().map(|national| national.chain())
    }

    /// The public base URL given at initialization (`govtrust init --public-url`), if any.
    pub fn public_url(&self) -> Option<&str> {
        self.hierarchy.public_url()
    }

    /// The time by the CA's clock: what certificate validity is judged against.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The SPIFFE trust domain.
    pub fn trust_domain(&self) -> &str {
        self.hierarchy.trust_domain().as_str()
    }

    /// The CA certificates.
    pub fn chain(&self) -> &CaChain {
        self.hierarchy.chain()
    }

    /// Registers a system on behalf of `actor` and returns its one-time enrollment token.
    ///
    /// [`Error::SystemExists`] if the name is taken, [`Error::DnsNameTaken`] if another system
    /// holds one of the DNS names, [`Error::InvalidArgument`] on `dns_names` for `localhost`,
    /// `*.localhost` and the govtrust server's names. A refused registration stores nothing.
    pub fn register_system(
        &self,
        actor: &str,
        registration: Registration,
    ) -> Result<Registered, Error> {
        registry::register(self, actor, registration)
    }

    /// Issues a new one-time enrollment token to the registered system named `system`, on
    /// behalf of `actor`, for a system whose token expired or was lost. Every earlier token of
    /// the system stops working: enrolling with one fails with [`Error::TokenSuperseded`].
    /// Audited as `ca.token.issue` (without the token); the enrollment it allows records
    /// `actor` as `token_issued_by`. [`Error::SystemNotFound`] if no such system is registered.
    ///
    /// [`Error::SystemHasCertificate`] if the system holds a certificate that is neither expired
    /// nor revoked: a new token would let its issuer enroll as the system and take over its
    /// identity. The refusal stores nothing, and holds against a concurrent enrollment.
    ///
    /// A system that has ever held a certificate is re-enrolled by a new token: without an
    /// approved `reenrollment` (dual control: see [`reenrollment`] for the act to approve) this
    /// fails with [`Error::ApprovalRequired`] and stores nothing. With one, the token records
    /// the approval, the approval is marked executed in the token's batch, and the enrollment
    /// the token allows starts a new generation ([`Lineage`]) that reaches the keys of earlier
    /// ones only if the approval carries them.
    pub fn issue_token(
        &self,
        actor: &str,
        system: &str,
        ttl: TokenTtl,
        reenrollment: Option<ReEnrollment<'_>>,
    ) -> Result<Registered, Error> {
        let request = TokenRequest {
            ttl,
            reenrollment,
            revoke_current: false,
        };
        registry::issue_token(self, actor, system, request)
    }

    /// [`Ca::issue_token`], and with `request.revoke_current` the system's certificates that
    /// still stand are revoked (superseded) in the token's batch instead of refusing the
    /// token: always a re-enrollment, so it needs an approval that says so
    /// ([`reenrollment`] with `revoke_current`), else [`Error::ApprovalRequired`].
    pub fn issue_token_revoking(
        &self,
        actor: &str,
        system: &str,
        request: TokenRequest<'_>,
    ) -> Result<Registered, Error> {
        registry::issue_token(self, actor, system, request)
    }

    /// The enrollment lineage of the system named `system` (generation 0 before it enrolled).
    pub fn lineage(&self, system: &str) -> Result<Lineage, Error> {
        self.lineages.get(self.store.as_ref(), system)
    }

    /// Issues a system's first certificate for a one-time `token` and a CSR (DER or PEM).
    pub fn enroll(&self, token: &str, csr: &[u8]) -> Result<Issued, Error> {
        waiting::block_on(enrollment::enroll(self, token, csr))
    }

    /// [`Ca::enroll`] for async callers: the CSR check and the signature run on the caller's
    /// thread, and the task sleeps while the certificate is made durable (no thread waits).
    pub async fn enroll_async(&self, token: &str, csr: &[u8]) -> Result<Issued, Error> {
        enrollment::enroll(self, token, csr).await
    }

    /// Issues a new certificate (new serial, same identity) to a system that authenticated with
    /// a current certificate.
    pub fn renew(&self, caller: &Caller, csr: &[u8]) -> Result<Issued, Error> {
        waiting::block_on(enrollment::renew(self, caller, csr))
    }

    /// [`Ca::renew`] for async callers, as [`Ca::enroll_async`].
    pub async fn renew_async(&self, caller: &Caller, csr: &[u8]) -> Result<Issued, Error> {
        enrollment::renew(self, caller, csr).await
    }

    /// Renews the certificate of `caller`, an administrator (one of the three roles), for the
    /// key of `csr`, which may name at most the role and its SPIFFE id; as [`Ca::renew`] for
    /// a system: the caller's certificate must be valid (or renewed within the grace), and it
    /// is superseded by the new one.
    pub fn renew_administrator(&self, caller: &Caller, csr: &[u8]) -> Result<Issued, Error> {
        credentials::renew_administrator(self, caller, csr)
    }

    /// Renews the server's own TLS certificate (a new key, the same names); the caller
    /// installs the credential returned. Audited as `ca.renew`.
    pub fn renew_server(&self) -> Result<Credential, Error> {
        credentials::renew_server(self)
    }

    /// When the server's TLS certificate is due for renewal (two thirds into its lifetime).
    pub fn server_renewal_due(&self) -> Result<Option<SystemTime>, Error> {
        credentials::server_renewal_due(self)
    }

    /// Issues a certificate of the profile named `profile` to `caller`, a system presenting a
    /// current certificate (as for [`Ca::renew`]), for its own identity and the DNS names
    /// registered to it, valid `validity_days` (0: the longest allowed). Anything outside the
    /// profile is [`Error::ProfileRefused`] naming the rule; a refusal stores nothing.
    pub fn issue_certificate(
        &self,
        caller: &Caller,
        csr: &[u8],
        profile: &str,
        validity_days: u32,
    ) -> Result<Issued, Error> {
        enrollment::issue_certificate(self, caller, csr, profile, validity_days)
    }

    /// Registers a person (a civil servant) on behalf of `actor` (a security administrator
    /// acting as RA officer) and returns the person's one-time enrollment token. The national
    /// ID is stored only as a keyed digest (the kms must be unsealed); a person is registered
    /// once: [`Error::PersonExists`] when the id, a system of that name or the national ID is
    /// registered. A refused registration stores nothing.
    pub fn register_person(
        &self,
        actor: &str,
        registration: PersonRegistration,
    ) -> Result<PersonToken, Error> {
        persons::register(self, actor, registration)
    }

    /// Issues a new one-time enrollment token to the registered person `id` on behalf of
    /// `actor`; every earlier token of the person stops working.
    pub fn issue_person_token(
        &self,
        actor: &str,
        id: &str,
        ttl: TokenTtl,
    ) -> Result<PersonToken, Error> {
        persons::issue_token(self, actor, id, ttl)
    }

    /// The registered person `id`.
    pub fn person(&self, id: &str) -> Result<Person, Error> {
        persons::find(self, id)
    }

    /// Issues a certificate of `profile` (one whose holders include persons) to the person
    /// `token` was issued to, for the key of `csr`, valid `validity_days` (0: the longest
    /// allowed). The token is used up by the certificate, in the same batch.
    pub fn enroll_person(
        &self,
        token: &str,
        csr: &[u8],
        profile: &str,
        validity_days: u32,
    ) -> Result<Issued, Error> {
        persons::enroll(self, token, csr, profile, validity_days)
    }

    /// The certificate with `serial`.
    pub fn certificate(&self, serial: &Serial) -> Result<CertRecord, Error> {
        certificates::find(self.store.as_ref(), serial)
    }

    /// A page of certificates matching `filter`, and the token of the next page.
    /// `page_size` 0 means 100; at most 1000. The page token is the last serial returned.
    pub fn list_certificates(
        &self,
        filter: &CertFilter,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<(Vec<CertRecord>, Option<String>), Error> {
        certificates::list(
            self.store.as_ref(),
            filter,
            self.clock.now(),
            page_size,
            page_token,
        )
    }

    /// Revokes, suspends or unsuspends the certificate `serial` on behalf of `actor` (with an
    /// optional `note` for the audit log), then publishes its CA's new CRL. Returns the
    /// certificate's record as changed.
    ///
    /// [`Error::CertificateNotFound`] for an unknown serial; [`Error::RevocationState`] for
    /// what the certificate's state does not allow (revoking a revoked one, unsuspending one
    /// that is not suspended, suspending an expired one); [`Error::InvalidArgument`] for
    /// certificateHold given as a revocation reason. A refused change stores nothing. The
    /// change stands even if the CRL cannot be signed now (a sealed kms): the next refresh
    /// publishes it, and the error is logged.
    pub fn change_status<'a>(
        &self,
        actor: impl Into<Actor<'a>>,
        serial: &Serial,
        change: Change,
        note: &str,
    ) -> Result<CertRecord, Error> {
        let record = revocation::apply(self, actor.into(), serial, change, note)?;
        self.publish_crl(record.issuer);
        Ok(record)
    }

    /// Publishes a new CRL of `authority` after a change of its index; a failure (a sealed
    /// kms) is logged and left to the next refresh.
    fn publish_crl(&self, authority: Authority) {
        let ticket = self.crls.changed(authority);
        if let Err(error) = self.crls.publish(self, authority, ticket) {
            tracing::warn!(ca = %authority, %error, "the CRL could not be made after a revocation; the next refresh will");
        }
    }

    /// [`Ca::change_status`] for many certificates at once (a mass revocation): each change
    /// commits on its own, in order, and each CA whose index changed publishes one new CRL at
    /// the end. Returns each change's outcome.
    pub fn change_statuses<'a>(
        &self,
        actor: impl Into<Actor<'a>>,
        changes: &[(Serial, Change)],
        note: &str,
    ) -> Vec<Result<CertRecord, Error>> {
        let actor = actor.into();
        let outcomes: Vec<_> = changes
            .iter()
            .map(|(serial, change)| revocation::apply(self, actor, serial, *change, note))
            .collect();
        let mut changed: Vec<Authority> = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok().map(|record| record.issuer))
            .collect();
        changed.sort_by_key(|a| a.name());
        changed.dedup();
        for authority in changed {
            self.publish_crl(authority);
        }
        outcomes
    }

    /// When the certificate `serial` was first renewed and by which certificate last, if it
    /// was (from memory; only certificates that have not expired).
    pub fn supersession(&self, serial: &Serial) -> Option<(SystemTime, Serial)> {
        self.revocations.superseded(serial)
    }

    /// How long a renewed certificate may still renew (and authenticate).
    pub fn renewal_grace(&self) -> Duration {
        self.settings.renewal_grace
    }

    /// Why and since when the certificate `serial` is revoked or suspended, if it is: what the
    /// server checks each caller against (from memory).
    pub fn revocation(&self, serial: &Serial) -> Option<(Reason, SystemTime)> {
        self.revocations.get(serial)
    }

    /// The answer to an OCSP request (DER), from the responses signed in advance when it asks
    /// about one certificate without a nonce. Never fails: errors are the unsigned answers of
    /// RFC 6960 (malformedRequest, unauthorized, tryLater while the kms is sealed).
    pub fn ocsp(&self, request: &[u8]) -> ocsp::Answer {
        self.ocsp.answer(self, request)
    }

    /// [`Ca::ocsp`] when the answer is a response signed in advance that still holds; `None`
    /// when answering needs a store read or a signature (then call [`Ca::ocsp`] off the async
    /// workers). Never blocks.
    pub fn ocsp_cached(&self, request: &[u8]) -> Option<ocsp::Answer> {
        self.ocsp.cached_answer(self, request, false)
    }

    /// [`Ca::ocsp_cached`], also for a request with a nonce, answered without it: what a
    /// responder may give when it cannot sign now.
    pub fn ocsp_presigned(&self, request: &[u8]) -> Option<ocsp::Answer> {
        self.ocsp.cached_answer(self, request, true)
    }

    /// The current CRL of `authority`, if one was made.
    pub fn crl(&self, authority: Authority) -> Option<Arc<Crl>> {
        self.crls.current(authority)
    }

    /// Makes anew the CRLs that are missing or older than their refresh interval (they need
    /// the kms unsealed); returns those made.
    pub fn refresh_crls(&self) -> Result<Vec<Arc<Crl>>, Error> {
        self.crls.refresh(self, self.clock.now())
    }

    /// Verifies a certificate chain for a relying party: valid, or every reason it is not
    /// (see [`Problem`]). Paths end at this deployment's root or at a CA of the trust bundle;
    /// another CA's certificates are checked against the CRL they name, fetched through
    /// `crls`. [`Error::InvalidArgument`] when the chain cannot be read at all.
    pub fn verify(&self, question: &Question<'_>, crls: &dyn CrlSource) -> Result<Verdict, Error> {
        verify::verify(self, question, crls)
    }

    /// Adds another CA's certificate (PEM or DER) to the trust bundle as `name`, on behalf of
    /// `actor`; audited. [`Error::InvalidArgument`] for a name in use, a certificate already
    /// in the bundle, or one that is no CA certificate.
    pub fn trust_add(
        &self,
        actor: &str,
        name: &str,
        certificate: &[u8],
        note: &str,
    ) -> Result<TrustAnchor, Error> {
        trust::add(self, actor, name, certificate, note)
    }

    /// Removes the trusted CA `name` from the bundle; audited.
    /// [`Error::TrustAnchorNotFound`] if there is none.
    pub fn trust_remove(&self, actor: &str, name: &str, note: &str) -> Result<TrustAnchor, Error> {
        trust::remove(self, actor, name, note)
    }

    /// The trust bundle: this deployment's root first, then the CAs added, and the bundle's
    /// sequence number (it grows with every change).
    pub fn trust_bundle(&self) -> Result<(Vec<TrustAnchor>, u64), Error> {
        let mut anchors = vec![trust::own_root(self)];
        anchors.extend(trust::anchors(self.store.as_ref())?);
        Ok((anchors, trust::sequence(self.store.as_ref())?))
    }

    /// The role of a person identity (`spiffe://<td>/person/<id>`); `None` for unknown persons,
    /// systems and other trust domains.
    pub fn role(&self, spiffe_id: &str) -> Result<Option<Role>, Error> {
        let Some(person) = self.hierarchy.trust_domain().person_of(spiffe_id) else {
            return Ok(None);
        };
        let key = records::person_key(person);
        let Some(value) = self.store.get(&key)? else {
            return Ok(None);
        };
        let record: records::PersonRecord = records::decode(&key, &value)?;
        // A registered person (a civil servant) has no role: it administers nothing.
        let Some(role) = record.role else {
            return Ok(None);
        };
        let role = role
            .parse()
            .map_err(|e| Error::corrupt(format!("{}: {e}", String::from_utf8_lossy(&key))));
        role.map(Some)
    }
}
