//! The delegated OCSP responder of each CA: a key of the CA's algorithm in the kms (internal,
//! owned by the server) and a certificate the CA issues for it with the id-kp-OCSPSigning usage
//! and id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1: relying parties need not check its own
//! status, so it lives only [`LIFETIME`] and is replaced after two thirds of it).
//!
//! Stored at `ca/ocsp/<ca>` with its audit event; made when first needed, with the kms
//! unsealed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_kms::{KeyId, KeySpec, Signer};
use govtrust_store::{AuditEvent, Batch};
use rcgen::{
    CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};

use super::Responder;
use crate::identity::SERVER_IDENTITY;
use crate::issuer::{Authority, CLOCK_SKEW, Serial, later, subject_key};
use crate::records;
use crate::timestamps::{from_x509, to_x509, unix_ms};
use crate::{Ca, Error};

/// How long a responder certificate lives.
const LIFETIME: Duration = Duration::from_secs(90 * 86_400);
/// id-pkix-ocsp-nocheck.
const NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// A CA's responder as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DelegateRecord {
    key_id: String,
    /// DER in standard base64.
    certificate: String,
    not_before_ms: i64,
    not_after_ms: i64,
}

/// A CA's responder, ready to sign, and when it is due to be replaced.
pub(crate) struct Delegate {
    pub responder: Responder,
    pub replace_at: SystemTime,
}

/// The responder of `authority`: the stored one while it is fresh, else a new one.
pub(crate) fn load_or_make(ca: &Ca, authority: Authority) -> Result<Delegate, Error> {
    let key = records::ocsp_key(authority.name());
    let stored = ca.store.get(&key)?;
    let now = ca.clock.now();
    if let Some(raw) = &stored {
        let record: DelegateRecord = records::decode(&key, raw)?;
        let delegate = delegate(ca, authority, &record)?;
        if now < delegate.replace_at {
            return Ok(delegate);
        }
    }
    let record = make(ca, authority, now)?;
    let mut batch = Batch::new();
    batch
        .expect(key.clone(), stored)
        .put(key, records::encode(&record)?);
    let event = AuditEvent::new(
        unix_ms(now),
        "ca.ocsp.responder",
        SERVER_IDENTITY,
        authority.name(),
    )
    .with("key", record.key_id.as_str())
    .with(
        "not_after",
        crate::timestamps::rfc3339(crate::timestamps::from_unix_ms(record.not_after_ms)),
    );
    ca.audit.stage(&mut batch, &event)?;
    ca.store.commit(batch)?;
    delegate(ca, authority, &record)
}

fn delegate(ca: &Ca, authority: Authority, record: &DelegateRecord) -> Result<Delegate, Error> {
    let context = format!("ca/ocsp/{authority}");
    let certificate = records::unbase64(&record.certificate, &context)?;
    let id = KeyId::parse(&record.key_id).map_err(|e| Error::corrupt(format!("{context}: {e}")))?;
    let signer = ca.hierarchy.kms().signer(&id)?;
    let ca_certificate = ca.chain().der(authority);
    let responder = Responder::new(ca_certificate, &certificate, signer)?;
    let lifetime = record.not_after_ms.saturating_sub(record.not_before_ms);
    let replace_at_ms = record.not_before_ms.saturating_add(lifetime / 3 * 2);
    Ok(Delegate {
        responder,
        replace_at: crate::timestamps::from_unix_ms(replace_at_ms),
    })
}

/// A new key for `authority`'s responder and its certificate.
fn make(ca: &Ca, authority: Authority, now: SystemTime) -> Result<DelegateRecord, Error> {
    let trust_domain = ca.hierarchy.trust_domain();
    let spec = KeySpec {
        algorithm: ca.hierarchy.algorithm(authority),
        exportable: false,
        owner: trust_domain.server_id(),
        owner_generation: 0,
        description: format!("govtrust {authority} CA OCSP responder of {trust_domain}"),
        pre_active: false,
        internal: true,
    };
    let info = ca.hierarchy.kms().create_key(SERVER_IDENTITY, spec)?;
    let signer: Arc<dyn Signer> = ca.hierarchy.kms().signer(&info.id)?;
    let params = params(ca, authority, now)?;
    let issuer = ca.hierarchy.signing(authority)?;
    let der = issuer.sign(&params, &subject_key(&*signer)?)?;
    Ok(DelegateRecord {
        key_id: info.id.to_string(),
        certificate: records::base64(&der),
        not_before_ms: unix_ms(from_x509(params.not_before)),
        not_after_ms: unix_ms(from_x509(params.not_after)),
    })
}

fn params(ca: &Ca, authority: Authority, now: SystemTime) -> Result<CertificateParams, Error> {
    let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
    let issuer_end = ca.hierarchy.not_after(authority);
    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("govtrust {} OCSP Responder", authority.title()),
    );
    params.distinguished_name.push(
        DnType::OrganizationName,
        ca.hierarchy.trust_domain().as_str(),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    params.custom_extensions = vec![CustomExtension::from_oid_content(NOCHECK, vec![0x05, 0x00])];
    params.not_before = to_x509(not_before)?;
    params.not_after = to_x509(later(not_before, LIFETIME)?.min(issuer_end))?;
    params.serial_number = Some(Serial::generate(&ca.rng, not_before)?.number());
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}
