//! The trust bundle (整合数字证书资源): this deployment's root and the certificates of other CAs
//! of the province that a security administrator added, so that relying parties that use the
//! bundle, and [`crate::Ca::verify`], accept their certificates too.
//!
//! An added CA is stored at `ca/trust/<name>` with who added it and when; every addition and
//! removal is audited in its batch and bumps the bundle's sequence (`ca/trust-sequence`), so
//! relying parties can tell a newer bundle from an older one.

use std::time::SystemTime;

use govtrust_store::{AuditEvent, Batch, Store};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::names::SystemName;
use crate::timestamps::{from_unix_ms, unix_ms};
use crate::{Ca, Error, pem, records};

/// The longest certificate accepted as a trust anchor, in bytes.
const MAX_ANCHOR: usize = 16 * 1024;
/// Anchors read at most (the bundle is meant for a province's handful of CAs).
const MAX_ANCHORS: usize = 1000;
/// Key of the bundle's sequence.
const SEQUENCE: &[u8] = b"ca/trust-sequence";

/// A CA certificate another authority runs, trusted by this deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// The name it was added under.
    pub name: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate's subject, as text.
    pub subject: String,
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
    pub added_by: String,
    pub added_at: SystemTime,
}

impl TrustAnchor {
    /// The certificate, PEM.
    pub fn pem(&self) -> String {
        pem::certificate(&self.der)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AnchorRecord {
    /// DER in standard base64.
    certificate: String,
    added_by: String,
    added_at_ms: i64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct SequenceRecord {
    sequence: u64,
}

fn anchor_key(name: &str) -> Vec<u8> {
    format!("ca/trust/{name}").into_bytes()
}

/// Adds the CA certificate `certificate` (PEM or DER) to the bundle as `name`, on behalf of
/// `actor`. Refuses a name in use, a certificate already in the bundle, anything that is not
/// a self-consistent CA certificate (basicConstraints CA, its signature checks if
/// self-signed), naming the problem.
pub(crate) fn add(
    ca: &Ca,
    actor: &str,
    name: &str,
    certificate: &[u8],
    note: &str,
) -> Result<TrustAnchor, Error> {
    let name = SystemName::try_from(name).map_err(|_| {
        Error::invalid(
            "name",
            format!("{name:?}: lower-case letters, digits and '-', 1 to 63 characters"),
        )
    })?;
    if name.as_str() == "root" {
        return Err(Error::invalid(
            "name",
            "\"root\" is this deployment's own root",
        ));
    }
    let der = certificate_der(certificate)?;
    let anchor = describe(name.as_str(), &der, actor, ca.clock.now())?;
    let present = anchors(ca.store.as_ref())?;
    let own = own_root(ca);
    for existing in present.iter().chain(std::iter::once(&own)) {
        if existing.fingerprint == anchor.fingerprint {
            return Err(Error::invalid(
                "certificate",
                format!(
                    "certificate {} is already in the trust bundle",
                    anchor.fingerprint
                ),
            ));
        }
        if existing.subject == anchor.subject {
            return Err(Error::invalid(
                "certificate",
                format!(
                    "its subject {:?} is already the name of {} in the trust bundle",
                    anchor.subject, existing.name
                ),
            ));
        }
    }
    let key = anchor_key(name.as_str());
    let record = AnchorRecord {
        certificate: records::base64(&der),
        added_by: actor.to_owned(),
        added_at_ms: unix_ms(anchor.added_at),
    };
    let mut batch = Batch::new();
    batch
        .expect_absent(key.clone())
        .put(key, records::encode(&record)?);
    let sequence = stage_sequence(ca, &mut batch)?;
    let event = AuditEvent::new(
        unix_ms(anchor.added_at),
        "ca.trust.add",
        actor,
        name.as_str(),
    )
    .with("subject", anchor.subject.as_str())
    .with("fingerprint", anchor.fingerprint.as_str())
    .with("sequence", sequence.to_string());
    let event = match note {
        "" => event,
        note => event.with("note", note),
    };
    ca.audit.stage(&mut batch, &event)?;
    match ca.store.commit(batch) {
        Err(govtrust_store::Error::Conflict { key }) if key == anchor_key(name.as_str()) => Err(
            Error::invalid("name", format!("a trusted CA named {name} exists")),
        ),
        other => other.map(|_| anchor).map_err(Error::from),
    }
}

/// Removes the trusted CA `name`, on behalf of `actor`.
pub(crate) fn remove(ca: &Ca, actor: &str, name: &str, note: &str) -> Result<TrustAnchor, Error> {
    let key = anchor_key(name);
    let raw = ca
        .store
        .get(&key)?
        .ok_or_else(|| Error::TrustAnchorNotFound {
            name: name.to_owned(),
        })?;
    let anchor = from_record(name, &key, &raw)?;
    let now = ca.clock.now();
    let mut batch = Batch::new();
    batch.expect(key.clone(), Some(raw)).delete(key);
    let sequence = stage_sequence(ca, &mut batch)?;
    let event = AuditEvent::new(unix_ms(now), "ca.trust.remove", actor, name)
        .with("fingerprint", anchor.fingerprint.as_str())
        .with("sequence", sequence.to_string());
    let event = match note {
        "" => event,
        note => event.with("note", note),
    };
    ca.audit.stage(&mut batch, &event)?;
    ca.store.commit(batch)?;
    Ok(anchor)
}

/// The trusted CAs others run, by name.
pub(crate) fn anchors(store: &dyn Store) -> Result<Vec<TrustAnchor>, Error> {
    let entries = store.scan(b"ca/trust/", None, MAX_ANCHORS)?;
    entries
        .iter()
        .map(|(key, value)| {
            let name = String::from_utf8_lossy(key.get(b"ca/trust/".len()..).unwrap_or_default());
            from_record(&name, key, value)
        })
        .collect()
}

/// The bundle's sequence: how many changes it has seen, plus one.
pub(crate) fn sequence(store: &dyn Store) -> Result<u64, Error> {
    let stored = match store.get(SEQUENCE)? {
        Some(raw) => records::decode::<SequenceRecord>(SEQUENCE, &raw)?,
        None => SequenceRecord::default(),
    };
    Ok(stored.sequence + 1)
}

/// Stages the next sequence, guarded; returns it.
fn stage_sequence(ca: &Ca, batch: &mut Batch) -> Result<u64, Error> {
    let raw = ca.store.get(SEQUENCE)?;
    let current = match &raw {
        Some(raw) => records::decode::<SequenceRecord>(SEQUENCE, raw)?,
        None => SequenceRecord::default(),
    };
    let next = SequenceRecord {
        sequence: current.sequence + 1,
    };
    batch
        .expect(SEQUENCE.to_vec(), raw)
        .put(SEQUENCE.to_vec(), records::encode(&next)?);
    Ok(next.sequence + 1)
}

/// This deployment's own root as an anchor.
pub(crate) fn own_root(ca: &Ca) -> TrustAnchor {
    let der = ca.chain().root_der.clone();
    TrustAnchor {
        name: "root".to_owned(),
        subject: subject(&der).unwrap_or_default(),
        fingerprint: fingerprint(&der),
        der,
        added_by: "govtrust".to_owned(),
        added_at: ca.hierarchy.created_at(),
    }
}

fn from_record(name: &str, key: &[u8], raw: &[u8]) -> Result<TrustAnchor, Error> {
    let record: AnchorRecord = records::decode(key, raw)?;
    let der = records::unbase64(&record.certificate, &String::from_utf8_lossy(key))?;
    let added_at = from_unix_ms(record.added_at_ms);
    describe(name, &der, &record.added_by, added_at)
        .map_err(|e| Error::corrupt(format!("{}: {e}", String::from_utf8_lossy(key))))
}

/// The anchor `der` would be, after checking it is a CA certificate.
fn describe(name: &str, der: &[u8], actor: &str, at: SystemTime) -> Result<TrustAnchor, Error> {
    let refuse = |reason: String| Error::invalid("certificate", reason);
    let (rest, certificate) = X509Certificate::from_der(der)
        .map_err(|e| refuse(format!("not an X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(refuse("trailing bytes after the certificate".to_owned()));
    }
    if !certificate.is_ca() {
        return Err(refuse(
            "not a CA certificate (basicConstraints CA is not set)".to_owned(),
        ));
    }
    let self_signed = certificate.subject() == certificate.issuer();
    if self_signed && certificate.verify_signature(None).is_err() {
        return Err(refuse("its self-signature does not verify".to_owned()));
    }
    Ok(TrustAnchor {
        name: name.to_owned(),
        subject: certificate.subject().to_string(),
        fingerprint: fingerprint(der),
        der: der.to_vec(),
        added_by: actor.to_owned(),
        added_at: at,
    })
}

fn subject(der: &[u8]) -> Option<String> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    Some(certificate.subject().to_string())
}

/// SHA-256 of `der`, hex.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// The DER of a certificate given as PEM or DER (one certificate).
pub(crate) fn certificate_der(input: &[u8]) -> Result<Vec<u8>, Error> {
    if input.len() > 4 * MAX_ANCHOR {
        return Err(Error::invalid("certificate", "longer than 64 KiB"));
    }
    let der = match input.trim_ascii_start().starts_with(b"-----BEGIN") {
        true => pem::first_certificate(input)
            .ok_or_else(|| Error::invalid("certificate", "no PEM CERTIFICATE block"))?,
        false => input.to_vec(),
    };
    if der.len() > MAX_ANCHOR {
        return Err(Error::invalid("certificate", "longer than 16 KiB"));
    }
    Ok(der)
}
