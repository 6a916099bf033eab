//! Renewal of the credentials `init` made: an administrator's client certificate (over mTLS,
//! with a CSR for a new key, like a system's renewal) and the server's own TLS certificate
//! (a new key, the same names).
//!
//! Either way the renewed certificate is marked superseded in the new one's batch, with the
//! audit event, and renews again only within the renewal grace.

use std::net::IpAddr;
use std::time::SystemTime;

use govtrust_store::{AuditEvent, Batch};
use rcgen::{KeyPair, PublicKeyData};
use zeroize::Zeroizing;

use crate::bootstrap::{self, Credential};
use crate::certificates::{self, CertRecord};
use crate::enrollment::{Caller, Issued};
use crate::identity::{Network, SERVER_IDENTITY};
use crate::issuance::{self, LeafSpec};
use crate::names::DnsName;
use crate::records::{self, HierarchyRecord};
use crate::timestamps::{rfc3339, unix_ms};
use crate::{Ca, Error, csr, enrollment};

/// Renews the certificate of `caller`, an administrator, for the key of `request` (a CSR that
/// names at most its role and SPIFFE id).
pub(crate) fn renew_administrator(
    ca: &Ca,
    caller: &Caller,
    request: &[u8],
) -> Result<Issued, Error> {
    let not_current = |reason: String| Error::CallerNotCurrent { reason };
    let role = ca
        .role(&caller.spiffe_id)?
        .ok_or_else(|| not_current(format!("{} is no administrator", caller.spiffe_id)))?;
    let now = ca.clock.now();
    let renewed = enrollment::caller_certificate(ca, caller, now)?;
    let checked = csr::check_administrator(request, role.as_str(), &caller.spiffe_id)?;
    let spec = bootstrap::admin_spec(ca, role, &caller.spiffe_id, checked.key.enciphers());
    let record = reissue(
        ca,
        &spec,
        &checked.public_key,
        role.as_str(),
        Some(renewed),
        now,
    )?;
    Ok(Issued {
        chain_pem: ca.hierarchy.chain_pem(Network::Intranet),
        serial: record.serial,
        certificate_pem: record.pem,
        not_before: record.not_before,
        not_after: record.not_after,
        spiffe_id: record.spiffe_id,
    })
}

/// Renews the server's TLS certificate: a new P-256 key, the server's names as initialized,
/// its latest certificate superseded. Returns the credential to install (the key is in it).
pub(crate) fn renew_server(ca: &Ca) -> Result<Credential, Error> {
    let (dns_names, ips) = server_names(ca)?;
    let spiffe_id = ca.hierarchy.trust_domain().server_id();
    let spec = bootstrap::server_spec(ca, &spiffe_id, &dns_names, &ips);
    let key = KeyPair::generate().map_err(Error::certificate("generate a P-256 key"))?;
    let now = ca.clock.now();
    let renewed = latest(ca, SERVER_IDENTITY)?;
    let record = reissue(ca, &spec, &key, SERVER_IDENTITY, renewed, now)?;
    Ok(Credential {
        certificate_pem: format!("{}{}", record.pem, ca.hierarchy.chain().intranet_pem),
        private_key_pem: Some(Zeroizing::new(key.serialize_pem())),
        spiffe_id: record.spiffe_id,
        serial: record.serial,
    })
}

/// When the server's current certificate is due for renewal: two thirds into its lifetime.
/// `None` if the server has no recorded certificate.
pub(crate) fn server_renewal_due(ca: &Ca) -> Result<Option<SystemTime>, Error> {
    let Some((_, record)) = latest(ca, SERVER_IDENTITY)? else {
        return Ok(None);
    };
    let lifetime = record
        .not_after
        .duration_since(record.not_before)
        .unwrap_or_default();
    Ok(record.not_before.checked_add(lifetime / 3 * 2))
}

/// The latest certificate recorded for `holder` and its stored bytes.
fn latest(ca: &Ca, holder: &str) -> Result<Option<(Vec<u8>, CertRecord)>, Error> {
    let key = records::latest_cert_key(holder);
    let Some(raw) = ca.store.get(&key)? else {
        return Ok(None);
    };
    let latest: records::LatestCertRecord = records::decode(&key, &raw)?;
    let serial = latest
        .serial
        .parse()
        .map_err(|e| Error::corrupt(format!("{}: {e}", String::from_utf8_lossy(&key))))?;
    certificates::find_raw(ca.store.as_ref(), &serial).map(Some)
}

/// The server's DNS names and IP addresses as initialized.
fn server_names(ca: &Ca) -> Result<(Vec<DnsName>, Vec<IpAddr>), Error> {
    let value = ca
        .store
        .get(records::HIERARCHY)?
        .ok_or(Error::NotInitialized)?;
    let record: HierarchyRecord = records::decode(records::HIERARCHY, &value)?;
    let server = record.server.ok_or_else(|| {
        Error::corrupt("ca/hierarchy: the server's names were not recorded at initialization")
    })?;
    let corrupt = |e: String| Error::corrupt(format!("ca/hierarchy: {e}"));
    let dns = server
        .dns_names
        .iter()
        .map(|n| DnsName::try_from(n.as_str()).map_err(|e| corrupt(e.to_string())))
        .collect::<Result<_, _>>()?;
    let ips = server
        .ips
        .iter()
        .map(|ip| ip.parse::<IpAddr>().map_err(|e| corrupt(e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok((dns, ips))
}

/// Signs a new intranet certificate of `spec` for `key`, records it for `holder` with the
/// renewed one superseded, audited as `ca.renew`; one batch.
fn reissue(
    ca: &Ca,
    spec: &LeafSpec<'_>,
    key: &impl PublicKeyData,
    holder: &str,
    renewed: Option<(Vec<u8>, CertRecord)>,
    now: SystemTime,
) -> Result<CertRecord, Error> {
    let issuer = ca.hierarchy.issuer(Network::Intranet)?;
    let leaf = issuance::issue(&issuer, spec, key, now, &ca.rng)?;
    let record = certificates::from_leaf(
        leaf,
        holder,
        spec.spiffe_id,
        Network::Intranet,
        issuer.authority(),
    );
    let mut batch = Batch::new();
    let mut event = AuditEvent::new(
        unix_ms(now),
        "ca.renew",
        spec.spiffe_id,
        record.serial.to_string(),
    )
    .with("system", holder)
    .with("spiffe_id", spec.spiffe_id)
    .with("issuer", record.issuer.name())
    .with("not_after", rfc3339(record.not_after));
    let mut superseded = None;
    if let Some((raw, old)) = renewed {
        superseded = Some(enrollment::stage_superseded(
            &mut batch, raw, &old, &record, now,
        )?);
        event = event.with("renews", old.serial.to_string());
    }
    certificates::stage(&mut batch, &record)?;
    ca.audit.stage(&mut batch, &event)?;
    ca.store.commit(batch)?;
    if let Some(superseded) = &superseded {
        ca.revocations.supersede(superseded);
    }
    Ok(record)
}
