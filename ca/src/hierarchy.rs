//! The CA hierarchy: a root CA (ECDSA P-384, 20 years) over two issuing CAs, one per network
//! (ECDSA P-256, 10 years, pathLen 0). All three keys live in the kms as internal keys.
//!
//! The hierarchy is created once by [`Hierarchy::create`] and stored at `ca/hierarchy`;
//! [`Hierarchy::load`] reads it back without touching the kms, so a server can start (and serve
//! its chain) while the kms is still sealed. Each signature asks the kms for the CA's signer
//! afresh ([`Hierarchy::issuer`]), so a sealed kms refuses it, and an unsealed one serves it
//! without reopening the CA.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_kms::{Algorithm, KeyId, KeySpec, Kms, Signer};
use govtrust_store::Store;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
};
use ring::rand::SecureRandom;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::{Network, SERVER_IDENTITY, TrustDomain};
use crate::issuer::{self, Authority, CLOCK_SKEW, Issuer, Serial, later};
use crate::locations::Locations;
use crate::records::{self, CaRecord, HierarchyRecord};
use crate::timestamps::{from_unix_ms, to_x509, unix_ms};
use crate::{Error, pem};

const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60 + 6 * 60 * 60);

/// The CA certificates, for relying parties and for clients' trust stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaChain {
    /// The root CA certificate: the trust anchor.
    pub root_pem: String,
    /// The extranet issuing CA certificate.
    pub extranet_pem: String,
    /// The intranet issuing CA certificate.
    pub intranet_pem: String,
    /// The root CA certificate, DER.
    pub root_der: Vec<u8>,
    /// The extranet issuing CA certificate, DER.
    pub extranet_der: Vec<u8>,
    /// The intranet issuing CA certificate, DER.
    pub intranet_der: Vec<u8>,
}

impl CaChain {
    /// The chain of the root, extranet and intranet CA certificates (DER).
    pub(crate) fn new(root: &[u8], extranet: &[u8], intranet: &[u8]) -> Self {
        Self {
            root_pem: pem::certificate(root),
            extranet_pem: pem::certificate(extranet),
            intranet_pem: pem::certificate(intranet),
            root_der: root.to_vec(),
            extranet_der: extranet.to_vec(),
            intranet_der: intranet.to_vec(),
        }
    }

    /// The certificate of `authority`, DER.
    pub fn der(&self, authority: Authority) -> &[u8] {
        match authority {
            Authority::Root => &self.root_der,
            Authority::Extranet => &self.extranet_der,
            Authority::Intranet => &self.intranet_der,
        }
    }

    /// The certificate of `authority`, PEM.
    pub fn pem(&self, authority: Authority) -> &str {
        match authority {
            Authority::Root => &self.root_pem,
            Authority::Extranet => &self.extranet_pem,
            Authority::Intranet => &self.intranet_pem,
        }
    }
}

/// What each CA of the hierarchy is: its name in certificates, key algorithm, lifetime and
/// path length.
impl Authority {
    fn common_name(self) -> &'static str {
        match self {
            Self::Root => "govtrust Root CA",
            Self::Extranet => "govtrust Extranet CA",
            Self::Intranet => "govtrust Intranet CA",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Self::Root => Algorithm::EcdsaP384Sha384,
            Self::Extranet | Self::Intranet => Algorithm::EcdsaP256Sha256,
        }
    }

    fn lifetime(self) -> Duration {
        match self {
            Self::Root => YEAR * 20,
            Self::Extranet | Self::Intranet => YEAR * 10,
        }
    }

    fn constraints(self) -> BasicConstraints {
        match self {
            Self::Root => BasicConstraints::Constrained(1),
            Self::Extranet | Self::Intranet => BasicConstraints::Constrained(0),
        }
    }
}

/// A CA certificate and the id of the kms key that signs for it.
struct CaCert {
    authority: Authority,
    key: KeyId,
    der: Vec<u8>,
    not_after: SystemTime,
}

impl CaCert {
    fn new(authority: Authority, key: KeyId, der: Vec<u8>) -> Result<Self, Error> {
        let not_after = parse(authority, &der)?.validity().not_after.timestamp();
        Ok(Self {
            authority,
            key,
            der,
            not_after: from_unix_ms(not_after.saturating_mul(1000)),
        })
    }

    /// This CA, signing with `signer`.
    fn issuer(&self, signer: Arc<dyn Signer>) -> Issuer<'_> {
        Issuer::new(self.authority, &self.der, self.not_after, signer)
    }

    fn record(&self) -> CaRecord {
        CaRecord {
            key_id: self.key.to_string(),
            certificate: records::base64(&self.der),
        }
    }
}

/// The root CA, the two issuing CAs and the trust domain they serve.
pub(crate) struct Hierarchy {
    /// Holds the CA keys; only called to sign (and at creation).
    kms: Arc<Kms>,
    trust_domain: TrustDomain,
    root: CaCert,
    extranet: CaCert,
    intranet: CaCert,
    chain: CaChain,
    created_at: SystemTime,
    /// The public base URL given at creation, which the issuing CAs point to.
    public_url: Option<String>,
}

impl Hierarchy {
    /// Creates the three CA keys in `kms` and their certificates. Stores nothing: the caller
    /// stores [`Hierarchy::record`] with the rest of initialization.
    ///
    /// With a `public_url`, the issuing CAs point to the root's CRL and certificate there.
    pub(crate) fn create(
        kms: &Arc<Kms>,
        trust_domain: TrustDomain,
        public_url: Option<String>,
        now: SystemTime,
        rng: &dyn SecureRandom,
    ) -> Result<Self, Error> {
        let (root_key, root_signer) = create_key(kms, &trust_domain, Authority::Root)?;
        let params = ca_params(&trust_domain, Authority::Root, now, rng)?;
        let der = issuer::self_signed(Authority::Root, &*root_signer, &params)?;
        let root = CaCert::new(Authority::Root, root_key, der)?;
        let issuer = root.issuer(root_signer);
        let ca = |authority| {
            let made = (&trust_domain, authority, public_url.as_deref());
            issuing_ca(kms, &issuer, made, now, rng)
        };
        let (extranet, intranet) = (ca(Authority::Extranet)?, ca(Authority::Intranet)?);
        let parts = (root, extranet, intranet);
        let mut hierarchy = Self::assemble(Arc::clone(kms), trust_domain, parts, now);
        hierarchy.public_url = public_url;
        Ok(hierarchy)
    }

    /// Reads the hierarchy from `store`; the kms is only referenced, not called.
    pub(crate) fn load(store: &dyn Store, kms: &Arc<Kms>) -> Result<Self, Error> {
        let value = store
            .get(records::HIERARCHY)?
            .ok_or(Error::NotInitialized)?;
        let record: HierarchyRecord = records::decode(records::HIERARCHY, &value)?;
        let trust_domain = TrustDomain::parse(&record.trust_domain)
            .map_err(|e| Error::corrupt(format!("ca/hierarchy: {e}")))?;
        let root = load_ca(Authority::Root, &record.root)?;
        let extranet = load_ca(Authority::Extranet, &record.extranet)?;
        let intranet = load_ca(Authority::Intranet, &record.intranet)?;
        let created_at = from_unix_ms(record.created_at_ms);
        let parts = (root, extranet, intranet);
        let mut hierarchy = Self::assemble(Arc::clone(kms), trust_domain, parts, created_at);
        hierarchy.public_url = record.public_url;
        Ok(hierarchy)
    }

    /// The hierarchy of the root, extranet and intranet CAs in `cas`.
    fn assemble(
        kms: Arc<Kms>,
        trust_domain: TrustDomain,
        cas: (CaCert, CaCert, CaCert),
        created_at: SystemTime,
    ) -> Self {
        let (root, extranet, intranet) = cas;
        let chain = CaChain::new(&root.der, &extranet.der, &intranet.der);
        Self {
            kms,
            trust_domain,
            root,
            extranet,
            intranet,
            chain,
            created_at,
            public_url: None,
        }
    }

    /// The stored form, without the server's names (initialization adds them).
    pub(crate) fn record(&self) -> HierarchyRecord {
        HierarchyRecord {
            trust_domain: self.trust_domain.as_str().to_owned(),
            root: self.root.record(),
            extranet: self.extranet.record(),
            intranet: self.intranet.record(),
            created_at_ms: unix_ms(self.created_at),
            server: None,
            public_url: self.public_url.clone(),
        }
    }

    /// The public base URL given at creation, if any.
    pub(crate) fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The trust domain.
    pub(crate) fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The CA certificates.
    pub(crate) fn chain(&self) -> &CaChain {
        &self.chain
    }

    /// The chain a leaf of `network` is sent with: its issuing CA, then the root, as PEM.
    pub(crate) fn chain_pem(&self, network: Network) -> String {
        let issuing = match network {
            Network::Extranet => &self.chain.extranet_pem,
            Network::Intranet => &self.chain.intranet_pem,
        };
        format!("{issuing}{}", self.chain.root_pem)
    }

    /// The issuing CA of `network`, ready to sign: its signer comes from the kms now, so this
    /// fails with the kms's error while it is sealed or refuses the CA key.
    pub(crate) fn issuer(&self, network: Network) -> Result<Issuer<'_>, Error> {
        self.signing(match network {
            Network::Extranet => Authority::Extranet,
            Network::Intranet => Authority::Intranet,
        })
    }

    /// When the hierarchy was created.
    pub(crate) fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// The kms holding the CA keys.
    pub(crate) fn kms(&self) -> &Arc<Kms> {
        &self.kms
    }

    /// The key algorithm of the CA `authority`.
    pub(crate) fn algorithm(&self, authority: Authority) -> Algorithm {
        authority.algorithm()
    }

    /// When the certificate of the CA `authority` expires.
    pub(crate) fn not_after(&self, authority: Authority) -> SystemTime {
        self.ca(authority).not_after
    }

    /// The CA `authority` (the root included), ready to sign, as [`Hierarchy::issuer`].
    pub(crate) fn signing(&self, authority: Authority) -> Result<Issuer<'_>, Error> {
        let ca = self.ca(authority);
        Ok(ca.issuer(self.kms.signer(&ca.key)?))
    }

    fn ca(&self, authority: Authority) -> &CaCert {
        match authority {
            Authority::Root => &self.root,
            Authority::Extranet => &self.extranet,
            Authority::Intranet => &self.intranet,
        }
    }
}

/// Creates an internal kms key for `authority`: its id and its signer.
fn create_key(
    kms: &Arc<Kms>,
    trust_domain: &TrustDomain,
    authority: Authority,
) -> Result<(KeyId, Arc<dyn Signer>), Error> {
    let spec = KeySpec {
        algorithm: authority.algorithm(),
        exportable: false,
        owner: trust_domain.server_id(),
        owner_generation: 0,
        description: format!("govtrust {} CA of {trust_domain}", authority.name()),
        pre_active: false,
        internal: true,
    };
    let info = kms.create_key(SERVER_IDENTITY, spec)?;
    let signer = kms.signer(&info.id)?;
    Ok((info.id, signer))
}

/// Creates the issuing CA `authority` of `trust_domain`, certified by `root`; with a public
/// base URL, it points to the root's CRL and certificate there.
fn issuing_ca(
    kms: &Arc<Kms>,
    root: &Issuer<'_>,
    (trust_domain, authority, public_url): (&TrustDomain, Authority, Option<&str>),
    now: SystemTime,
    rng: &dyn SecureRandom,
) -> Result<CaCert, Error> {
    let (key, signer) = create_key(kms, trust_domain, authority)?;
    let mut params = ca_params(trust_domain, authority, now, rng)?;
    if let Some(base) = public_url {
        let locations = Locations {
            base,
            issuer: root.authority(),
            ocsp: false,
        };
        locations.apply(&mut params)?;
    }
    let der = root.sign(&params, &issuer::subject_key(&*signer)?)?;
    CaCert::new(authority, key, der)
}

/// The certificate parameters of a CA.
fn ca_params(
    trust_domain: &TrustDomain,
    authority: Authority,
    now: SystemTime,
    rng: &dyn SecureRandom,
) -> Result<CertificateParams, Error> {
    let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, authority.common_name());
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain.as_str());
    params.is_ca = IsCa::Ca(authority.constraints());
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_x509(not_before)?;
    params.not_after = to_x509(later(not_before, authority.lifetime())?)?;
    params.serial_number = Some(Serial::generate(rng, not_before)?.number());
    params.use_authority_key_identifier_extension = authority != Authority::Root;
    Ok(params)
}

/// Loads one stored CA: its certificate and the id of its kms key.
fn load_ca(authority: Authority, record: &CaRecord) -> Result<CaCert, Error> {
    let context = format!("ca/hierarchy {} CA", authority.name());
    let der = records::unbase64(&record.certificate, &context)?;
    let id = KeyId::parse(&record.key_id).map_err(|e| Error::corrupt(format!("{context}: {e}")))?;
    CaCert::new(authority, id, der)
}

/// Parses a CA certificate.
fn parse(authority: Authority, der: &[u8]) -> Result<X509Certificate<'_>, Error> {
    X509Certificate::from_der(der)
        .map(|(_, certificate)| certificate)
        .map_err(|e| Error::corrupt(format!("{} CA certificate: {e}", authority.name())))
}
