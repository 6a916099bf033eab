//! The national CA hierarchy (商用密码, GM/T 0015), beside the international one: an SM2 root
//! (20 years, pathLen 1) over an SM2 issuing CA per network (10 years, pathLen 0), with the same
//! names as the international CAs but "National" in them. The three keys are internal kms keys
//! of algorithm `sm2-sm3`; the certificates are built by [`crate::sm2cert`].
//!
//! Created with the international hierarchy by initialization and stored beside it at
//! `ca/hierarchy-national`. A deployment initialized before the national suite existed gets
//! one from [`Ca::ensure_national_hierarchy`], which the server calls once the kms is unsealed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_kms::{Algorithm, KeyId, KeySpec, Kms};
use govtrust_store::{AuditEvent, Batch, Error as StoreError, Store};
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::KeyUsages;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::hierarchy::CaChain;
use crate::identity::{SERVER_IDENTITY, TrustDomain};
use crate::issuer::{Authority, CLOCK_SKEW, Serial, later};
use crate::records::{self, CaRecord};
use crate::sm2cert::{self, Sm2CertSpec};
use crate::timestamps::{from_unix_ms, unix_ms};
use crate::{Ca, Error};

/// Where the national hierarchy is stored.
pub(crate) const NATIONAL_HIERARCHY: &[u8] = b"ca/hierarchy-national";

const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60 + 6 * 60 * 60);

/// The stored national hierarchy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NationalHierarchyRecord {
    pub root: CaRecord,
    pub extranet: CaRecord,
    pub intranet: CaRecord,
    pub created_at_ms: i64,
}

/// One SM2 CA: its kms key and certificate.
struct NationalCa {
    key: KeyId,
    der: Vec<u8>,
}

impl NationalCa {
    fn record(&self) -> CaRecord {
        CaRecord {
            key_id: self.key.to_string(),
            certificate: records::base64(&self.der),
        }
    }
}

/// The SM2 root and issuing CAs.
pub(crate) struct NationalHierarchy {
    root: NationalCa,
    extranet: NationalCa,
    intranet: NationalCa,
    chain: CaChain,
    created_at: SystemTime,
}

/// The subject of the national CA `authority` of `trust_domain`, RFC 4514.
fn subject_of(authority: Authority, trust_domain: &TrustDomain) -> String {
    format!(
        "CN=govtrust National {} CA,O={}",
        authority.title(),
        trust_domain.as_str()
    )
}

impl NationalHierarchy {
    /// Creates the three SM2 CA keys in `kms` and their certificates. Stores nothing: the
    /// caller stores [`NationalHierarchy::record`] with the rest of initialization.
    pub(crate) fn create(
        kms: &Arc<Kms>,
        trust_domain: &TrustDomain,
        now: SystemTime,
        rng: &dyn SecureRandom,
    ) -> Result<Self, Error> {
        let root = make(kms, trust_domain, Authority::Root, None, now, rng)?;
        let root_key = kms.signer(&root.key)?;
        let issuing = |authority| make(kms, trust_domain, authority, Some(&*root_key), now, rng);
        let (extranet, intranet) = (issuing(Authority::Extranet)?, issuing(Authority::Intranet)?);
        Ok(Self::assemble(root, extranet, intranet, now))
    }

    /// The national hierarchy stored in `store`, if there is one.
    pub(crate) fn load(store: &dyn Store) -> Result<Option<Self>, Error> {
        let Some(value) = store.get(NATIONAL_HIERARCHY)? else {
            return Ok(None);
        };
        let record: NationalHierarchyRecord = records::decode(NATIONAL_HIERARCHY, &value)?;
        let load = |record: &CaRecord| -> Result<NationalCa, Error> {
            let context = "ca/hierarchy-national";
            let key = KeyId::parse(&record.key_id)
                .map_err(|e| Error::corrupt(format!("{context}: {e}")))?;
            let der = records::unbase64(&record.certificate, context)?;
            Ok(NationalCa { key, der })
        };
        let (root, extranet, intranet) = (
            load(&record.root)?,
            load(&record.extranet)?,
            load(&record.intranet)?,
        );
        let created_at = from_unix_ms(record.created_at_ms);
        Ok(Some(Self::assemble(root, extranet, intranet, created_at)))
    }

    fn assemble(
        root: NationalCa,
        extranet: NationalCa,
        intranet: NationalCa,
        created_at: SystemTime,
    ) -> Self {
        let chain = CaChain::new(&root.der, &extranet.der, &intranet.der);
        Self {
            root,
            extranet,
            intranet,
            chain,
            created_at,
        }
    }

    /// The stored form.
    pub(crate) fn record(&self) -> NationalHierarchyRecord {
        NationalHierarchyRecord {
            root: self.root.record(),
            extranet: self.extranet.record(),
            intranet: self.intranet.record(),
            created_at_ms: unix_ms(self.created_at),
        }
    }

    /// The SM2 CA certificates.
    pub(crate) fn chain(&self) -> &CaChain {
        &self.chain
    }

    /// `event` with the national CAs' key ids.
    pub(crate) fn describe(&self, event: AuditEvent) -> AuditEvent {
        event
            .with("national_root_key", self.root.key.to_string())
            .with("national_extranet_key", self.extranet.key.to_string())
            .with("national_intranet_key", self.intranet.key.to_string())
    }
}

impl Ca {
    /// Creates the national SM2 hierarchy of a deployment initialized before the national suite
    /// existed: `Ok(true)` when it made one, `Ok(false)` when there was one already. Needs the
    /// kms unsealed (it creates the three CA keys there). Audited as `ca.national.init` in the
    /// batch that stores the hierarchy; if another process stored one first, that one is kept
    /// (and the keys made here stay unused in the kms).
    pub fn ensure_national_hierarchy(&self) -> Result<bool, Error> {
        if self.national.get().is_some() {
            return Ok(false);
        }
        let now = self.clock.now();
        let made = NationalHierarchy::create(
            self.hierarchy.kms(),
            self.hierarchy.trust_domain(),
            now,
            &self.rng,
        )?;
        let mut batch = Batch::new();
        batch
            .expect_absent(NATIONAL_HIERARCHY)
            .put(NATIONAL_HIERARCHY, records::encode(&made.record())?);
        let event = AuditEvent::new(
            unix_ms(now),
            "ca.national.init",
            SERVER_IDENTITY,
            self.hierarchy.trust_domain().as_str(),
        );
        self.audit.stage(&mut batch, &made.describe(event))?;
        match self.store.commit(batch) {
            Ok(_) => {
                let _ = self.national.set(made);
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => {
                if let Some(stored) = NationalHierarchy::load(self.store.as_ref())? {
                    let _ = self.national.set(stored);
                }
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Creates the kms key of the national CA `authority` and its certificate, signed by `root`
/// (self-signed when `None`).
fn make(
    kms: &Arc<Kms>,
    trust_domain: &TrustDomain,
    authority: Authority,
    root: Option<&dyn govtrust_kms::Signer>,
    now: SystemTime,
    rng: &dyn SecureRandom,
) -> Result<NationalCa, Error> {
    let spec = KeySpec {
        algorithm: Algorithm::Sm2Sm3,
        exportable: false,
        owner: trust_domain.server_id(),
        owner_generation: 0,
        description: format!(
            "govtrust national {} CA of {trust_domain}",
            authority.name()
        ),
        pre_active: false,
        internal: true,
    };
    let key = kms.create_key(SERVER_IDENTITY, spec)?.id;
    let signer = kms.signer(&key)?;
    let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
    let (lifetime, path_len) = match authority {
        Authority::Root => (YEAR * 20, 1),
        Authority::Extranet | Authority::Intranet => (YEAR * 10, 0),
    };
    let serial = Serial::generate(rng, not_before)?;
    let subject = subject_of(authority, trust_domain);
    let issuer = root.map(|_| subject_of(Authority::Root, trust_domain));
    let spec = Sm2CertSpec {
        serial: &serial,
        subject: &subject,
        issuer: issuer.as_deref(),
        not_before,
        not_after: later(not_before, lifetime)?,
        subject_key: signer.public_key_der(),
        ca: Some(Some(path_len)),
        key_usage: &[
            KeyUsages::KeyCertSign,
            KeyUsages::CRLSign,
            KeyUsages::DigitalSignature,
        ],
        extended_key_usage: &[],
        uris: &[],
        dns_names: &[],
    };
    let der = sm2cert::sign(&spec, root.unwrap_or(&*signer))?;
    X509Certificate::from_der(&der)
        .map_err(|e| Error::corrupt(format!("the new national {authority} CA certificate: {e}")))?;
    Ok(NationalCa { key, der })
}
