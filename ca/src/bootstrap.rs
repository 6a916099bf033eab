//! Initialization: the CA hierarchy, the govtrust server's TLS certificate and one client
//! certificate per administrator role, stored and audited in one batch.
//!
//! The server's key is generated here (ECDSA P-256) and handed to the caller: the server must
//! present TLS while the kms is sealed, so its key cannot live in the kms; the caller writes it
//! to a 0600 file. An administrator role either brings a certificate signing request (its key
//! never comes here; the request is checked like a system's: key policy and proof of
//! possession, see [`crate::csr`]) or gets a P-256 key generated here and handed back once.
//! The CA keys never leave the kms.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_kms::{Clock, Kms};
use govtrust_store::{AuditEvent, AuditSink, Batch, Error as StoreError, Store};
use rcgen::{KeyPair, PublicKeyData};
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

use crate::certificates;
use crate::csr;
use crate::hierarchy::{CaChain, Hierarchy};
use crate::identity::{Network, Role, SERVER_IDENTITY, TrustDomain};
use crate::issuance::{self, LeafSpec, Purpose};
use crate::issuer::Serial;
use crate::names::DnsName;
use crate::national::NationalHierarchy;
use crate::records::{self, PersonRecord};
use crate::reserved::{self, ServerNames};
use crate::timestamps::unix_ms;
use crate::{Ca, Error};

/// Lifetime of the server's TLS certificate.
const SERVER_VALIDITY: Duration = Duration::from_secs(397 * 24 * 60 * 60);
/// Lifetime of the administrators' client certificates.
const ADMIN_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What `initialize` needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitParams {
    /// The SPIFFE trust domain, e.g. `gov.example`: lowercase `[a-z0-9._-]`, at most 64
    /// characters.
    pub trust_domain: String,
    /// DNS names of the govtrust server, for its TLS certificate.
    pub server_dns_names: Vec<String>,
    /// IP addresses of the govtrust server, for its TLS certificate.
    pub server_ips: Vec<IpAddr>,
    /// Certificate signing requests (DER or PEM) the administrators brought, at most one per
    /// role; the roles without one get a key generated.
    pub admin_csrs: Vec<(Role, Vec<u8>)>,
    /// Where relying parties will reach the server's HTTP port (`http://` or `https://`, no
    /// trailing `/`), if known now: the issuing CAs then point to the root's CRL and
    /// certificate there, and so do the certificates issued at initialization to their issuer's.
    /// Stored with the hierarchy, for servers whose configuration names none.
    pub public_url: Option<String>,
}

/// What `initialize` hands back, once: the chain and the keys that exist nowhere else.
#[derive(Debug)]
pub struct InitArtifacts {
    /// The CA certificates.
    pub chain: CaChain,
    /// The server's TLS credential (serverAuth, from the intranet CA).
    pub server: Credential,
    /// One client credential per administrator role (clientAuth, from the intranet CA), in
    /// [`Role::ALL`] order; without a private key for the roles that brought a CSR.
    pub admins: Vec<(Role, Credential)>,
}

/// A certificate and its private key. The key is zeroized on drop and redacted in `Debug`.
pub struct Credential {
    /// The certificate, then its issuing CA, PEM.
    pub certificate_pem: String,
    /// The private key, PKCS#8 PEM; `None` when the certificate was issued for the holder's
    /// own key (a CSR), which never came here.
    pub private_key_pem: Option<Zeroizing<String>>,
    /// The identity in the certificate's URI SAN.
    pub spiffe_id: String,
    /// The serial number.
    pub serial: Serial,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"<redacted>")
            .field("spiffe_id", &self.spiffe_id)
            .field("serial", &self.serial)
            .finish()
    }
}

/// The services a [`Ca`] runs on.
pub(crate) struct Services {
    pub store: Arc<dyn Store>,
    pub kms: Arc<Kms>,
    pub audit: Arc<dyn AuditSink>,
    pub clock: Arc<dyn Clock>,
}

/// Initializes the CA; see [`Ca::initialize`].
pub(crate) fn initialize(
    services: Services,
    params: &InitParams,
) -> Result<(Ca, InitArtifacts), Error> {
    let trust_domain = TrustDomain::parse(&params.trust_domain)?;
    let dns_names = server_names(params)?;
    check_admin_csrs(&params.admin_csrs)?;
    if services.store.get(records::HIERARCHY)?.is_some() {
        return Err(Error::AlreadyInitialized);
    }
    let public_url = params.public_url.as_deref().map(public_url).transpose()?;
    let now = services.clock.now();
    let ca = create(services, trust_domain, &dns_names, public_url, now)?;
    let mut batch = Batch::new();
    let mut hierarchy = ca.hierarchy.record();
    hierarchy.server = Some(reserved::server_record(&dns_names, &params.server_ips));
    let hierarchy = records::encode(&hierarchy)?;
    batch
        .expect_absent(records::HIERARCHY)
        .put(records::HIERARCHY, hierarchy);
    if let Some(national) = ca.national.get() {
        batch
            .expect_absent(crate::national::NATIONAL_HIERARCHY)
            .put(
                crate::national::NATIONAL_HIERARCHY,
                records::encode(&national.record())?,
            );
    }
    let server = server_credential(&ca, &dns_names, &params.server_ips, now, &mut batch)?;
    let admins = admin_credentials(&ca, &params.admin_csrs, now, &mut batch)?;
    ca.audit
        .stage(&mut batch, &init_event(&ca, &server, &admins, now))?;
    commit(ca.store.as_ref(), batch)?;
    let chain = ca.hierarchy.chain().clone();
    Ok((
        ca,
        InitArtifacts {
            chain,
            server,
            admins,
        },
    ))
}

/// The public base URL as certificates name it: `http://` or `https://` and printable ASCII,
/// without a trailing `/`.
fn public_url(url: &str) -> Result<String, Error> {
    let web = url.starts_with("http://") || url.starts_with("https://");
    let printable = url.bytes().all(|b| b.is_ascii_graphic());
    match web && printable && url.len() <= 200 {
        true => Ok(url.trim_end_matches('/').to_owned()),
        false => Err(Error::invalid(
            "public_url",
            format!("{url:?} is not an http:// or https:// URL of printable ASCII"),
        )),
    }
}

/// A CA on a freshly created hierarchy (kms keys and CA certificates), not yet stored.
fn create(
    services: Services,
    trust_domain: TrustDomain,
    server_names: &[DnsName],
    public_url: Option<String>,
    now: SystemTime,
) -> Result<Ca, Error> {
    let rng = SystemRandom::new();
    let national = NationalHierarchy::create(&services.kms, &trust_domain, now, &rng)?;
    let hierarchy = Hierarchy::create(&services.kms, trust_domain, public_url, now, &rng)?;
    let settings = crate::Settings {
        base_url: hierarchy.public_url().map(str::to_owned),
        ..crate::Settings::default()
    };
    let Services {
        store,
        audit,
        clock,
        ..
    } = services;
    Ok(Ca {
        store,
        audit,
        clock,
        hierarchy,
        national: std::sync::OnceLock::from(national),
        server_names: ServerNames::new(server_names),
        lineages: crate::lineage::Lineages::default(),
        revocations: crate::revocation::Revocations::default(),
        crls: crate::crl::Publisher::empty(),
        ocsp: crate::ocsp::Ocsp::default(),
        external_crls: crate::verify::ExternalCrls::default(),
        settings,
        profiles: crate::profiles::Profiles::builtin()?,
        rng,
    })
}

/// The server's DNS names, without duplicates; at least one DNS name or IP address is needed.
fn server_names(params: &InitParams) -> Result<Vec<DnsName>, Error> {
    if params.server_dns_names.is_empty() && params.server_ips.is_empty() {
        return Err(Error::invalid(
            "server_dns_names",
            "the server needs at least one DNS name or IP address",
        ));
    }
    let mut names = Vec::new();
    for name in &params.server_dns_names {
        let name = DnsName::parse("server_dns_names", name)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

fn server_credential(
    ca: &Ca,
    dns_names: &[DnsName],
    ips: &[IpAddr],
    now: SystemTime,
    batch: &mut Batch,
) -> Result<Credential, Error> {
    let spiffe_id = ca.hierarchy.trust_domain().server_id();
    let spec = server_spec(ca, &spiffe_id, dns_names, ips);
    credential(ca, &spec, SERVER_IDENTITY, now, batch)
}

/// What the server's TLS certificate holds.
pub(crate) fn server_spec<'a>(
    ca: &'a Ca,
    spiffe_id: &'a str,
    dns_names: &'a [DnsName],
    ips: &'a [IpAddr],
) -> LeafSpec<'a> {
    LeafSpec {
        common_name: "govtrust server",
        organization: Some(ca.hierarchy.trust_domain().as_str()),
        spiffe_id,
        dns_names,
        ips,
        usage: Purpose::Server.usage(false),
        validity: SERVER_VALIDITY,
        base_url: ca.settings.base_url.as_deref(),
    }
}

/// What an administrator's client certificate holds (keyEncipherment too for an RSA key).
pub(crate) fn admin_spec<'a>(
    ca: &'a Ca,
    role: Role,
    spiffe_id: &'a str,
    key_encipherment: bool,
) -> LeafSpec<'a> {
    LeafSpec {
        common_name: role.as_str(),
        organization: None,
        spiffe_id,
        dns_names: &[],
        ips: &[],
        usage: Purpose::Client.usage(key_encipherment),
        validity: ADMIN_VALIDITY,
        base_url: ca.settings.base_url.as_deref(),
    }
}

/// At most one CSR per role.
fn check_admin_csrs(csrs: &[(Role, Vec<u8>)]) -> Result<(), Error> {
    for (at, (role, _)) in csrs.iter().enumerate() {
        if csrs.iter().skip(at + 1).any(|(other, _)| other == role) {
            return Err(Error::invalid(
                "admin_csrs",
                format!("two certificate signing requests for {role}"),
            ));
        }
    }
    Ok(())
}

fn admin_credentials(
    ca: &Ca,
    csrs: &[(Role, Vec<u8>)],
    now: SystemTime,
    batch: &mut Batch,
) -> Result<Vec<(Role, Credential)>, Error> {
    let csr = |role: Role| {
        csrs.iter()
            .find(|(r, _)| *r == role)
            .map(|(_, csr)| csr.as_slice())
    };
    let admins = Role::ALL
        .into_iter()
        .map(|role| admin_credential(ca, role, csr(role), now, batch));
    admins.collect()
}

/// The credential of `role`: certified for the key of `csr` when there is one, else for a key
/// generated here.
fn admin_credential(
    ca: &Ca,
    role: Role,
    csr: Option<&[u8]>,
    now: SystemTime,
    batch: &mut Batch,
) -> Result<(Role, Credential), Error> {
    let spiffe_id = ca.hierarchy.trust_domain().person_id(role.as_str());
    let spec = admin_spec(ca, role, &spiffe_id, false);
    let credential = match csr {
        Some(csr) => requested_credential(ca, role, spec, csr, now, batch)?,
        None => credential(ca, &spec, role.as_str(), now, batch)?,
    };
    let person = PersonRecord {
        role: Some(role.to_string()),
        spiffe_id,
        created_at_ms: unix_ms(now),
        registered: None,
    };
    let key = records::person_key(role.as_str());
    batch
        .expect_absent(key.clone())
        .put(key, records::encode(&person)?);
    Ok((role, credential))
}

/// Checks `role`'s CSR and certifies its key; the credential has no private key.
fn requested_credential(
    ca: &Ca,
    role: Role,
    spec: LeafSpec<'_>,
    csr: &[u8],
    now: SystemTime,
    batch: &mut Batch,
) -> Result<Credential, Error> {
    let checked =
        csr::check_administrator(csr, role.as_str(), spec.spiffe_id).map_err(|source| {
            Error::AdminCsr {
                role: role.to_string(),
                source: Box::new(source),
            }
        })?;
    let spec = LeafSpec {
        usage: Purpose::Client.usage(checked.key.enciphers()),
        ..spec
    };
    certify(ca, &spec, &checked.public_key, role.as_str(), now, batch)
}

/// Generates a P-256 key, certifies it from the intranet CA and stages the record.
fn credential(
    ca: &Ca,
    spec: &LeafSpec<'_>,
    holder: &str,
    now: SystemTime,
    batch: &mut Batch,
) -> Result<Credential, Error> {
    let key = KeyPair::generate().map_err(Error::certificate("generate a P-256 key"))?;
    let mut credential = certify(ca, spec, &key, holder, now, batch)?;
    credential.private_key_pem = Some(Zeroizing::new(key.serialize_pem()));
    Ok(credential)
}

/// Certifies `key` from the intranet CA and stages the record; the credential has no key.
fn certify(
    ca: &Ca,
    spec: &LeafSpec<'_>,
    key: &impl PublicKeyData,
    holder: &str,
    now: SystemTime,
    batch: &mut Batch,
) -> Result<Credential, Error> {
    let issuer = ca.hierarchy.issuer(Network::Intranet)?;
    let leaf = issuance::issue(&issuer, spec, key, now, &ca.rng)?;
    let authority = issuer.authority();
    let record =
        certificates::from_leaf(leaf, holder, spec.spiffe_id, Network::Intranet, authority);
    certificates::stage(batch, &record)?;
    Ok(Credential {
        certificate_pem: format!("{}{}", record.pem, ca.hierarchy.chain().intranet_pem),
        private_key_pem: None,
        spiffe_id: record.spiffe_id,
        serial: record.serial,
    })
}

fn init_event(
    ca: &Ca,
    server: &Credential,
    admins: &[(Role, Credential)],
    now: SystemTime,
) -> AuditEvent {
    let hierarchy = ca.hierarchy.record();
    let event = AuditEvent::new(
        unix_ms(now),
        "ca.init",
        SERVER_IDENTITY,
        hierarchy.trust_domain,
    )
    .with("root_key", hierarchy.root.key_id)
    .with("extranet_key", hierarchy.extranet.key_id)
    .with("intranet_key", hierarchy.intranet.key_id)
    .with("server_serial", server.serial.to_string());
    let event = match ca.national.get() {
        Some(national) => national.describe(event),
        None => event,
    };
    admins.iter().fold(event, |event, (role, credential)| {
        let key = match credential.private_key_pem {
            Some(_) => "generated",
            None => "csr",
        };
        event
            .with(format!("{role}_serial"), credential.serial.to_string())
            .with(format!("{role}_key"), key)
    })
}

/// Commits initialization; a conflict on the hierarchy means another initialization won.
fn commit(store: &dyn Store, batch: Batch) -> Result<(), Error> {
    match store.commit(batch) {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { key }) if key == records::HIERARCHY => {
            Err(Error::AlreadyInitialized)
        }
        Err(e) => Err(e.into()),
    }
}
