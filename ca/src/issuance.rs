//! Building end-entity certificates, signed by their issuing CA's [`Issuer`].
//!
//! Every leaf gets a serial of 128 random bits after a fixed first byte, `not_before` one minute
//! in the past (clock skew), AKI and SKI, `basicConstraints CA:FALSE`, a lifetime capped by
//! its issuing CA's and, when the public base URL is known, its issuer's CRL distribution
//! point and authority information access (OCSP, CA issuers): see [`crate::locations`]. Key
//! usage and extended key usage come from the profile ([`Usage`]).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    PublicKeyData, SanType,
};
use ring::rand::SecureRandom;

use crate::Error;
use crate::issuer::{CLOCK_SKEW, Issuer, Serial, later};
use crate::locations::Locations;
use crate::names::DnsName;
use crate::profiles::Usage;
use crate::timestamps::{from_x509, to_x509};

/// What a certificate issued at initialization is for (others follow a profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// TLS server only (the govtrust server).
    Server,
    /// TLS client only (people).
    Client,
}

impl Purpose {
    /// The usage of a certificate for this purpose: digitalSignature, and keyEncipherment too
    /// when `key_encipherment` (RSA keys).
    pub(crate) fn usage(self, key_encipherment: bool) -> Usage {
        let extended = match self {
            Self::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Self::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        Usage {
            key: key_usages(key_encipherment),
            extended,
        }
    }
}

/// The contents of one leaf certificate.
pub(crate) struct LeafSpec<'a> {
    pub common_name: &'a str,
    pub organization: Option<&'a str>,
    /// The SPIFFE id, the first URI SAN.
    pub spiffe_id: &'a str,
    pub dns_names: &'a [DnsName],
    pub ips: &'a [IpAddr],
    /// Key usage and extended key usage.
    pub usage: Usage,
    pub validity: Duration,
    /// The public base URL of the HTTP port: the certificate points to its issuer's CRL,
    /// OCSP and certificate there. `None`: it points nowhere.
    pub base_url: Option<&'a str>,
}

/// A signed leaf certificate.
pub(crate) struct Leaf {
    pub serial: Serial,
    pub der: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Signs a leaf certificate for `subject` with `ca`.
pub(crate) fn issue(
    ca: &Issuer<'_>,
    spec: &LeafSpec<'_>,
    subject: &impl PublicKeyData,
    now: SystemTime,
    rng: &dyn SecureRandom,
) -> Result<Leaf, Error> {
    let serial = Serial::generate(rng, now)?;
    let params = leaf_params(ca, spec, &serial, now)?;
    let der = ca.sign(&params, subject)?;
    let (not_before, not_after) = (from_x509(params.not_before), from_x509(params.not_after));
    Ok(Leaf {
        serial,
        der,
        not_before,
        not_after,
    })
}

/// The rcgen parameters of a leaf.
fn leaf_params(
    ca: &Issuer<'_>,
    spec: &LeafSpec<'_>,
    serial: &Serial,
    now: SystemTime,
) -> Result<CertificateParams, Error> {
    let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
    let not_after = later(not_before, spec.validity)?.min(ca.not_after());
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(spec);
    params.subject_alt_names = subject_alt_names(spec)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = spec.usage.key.clone();
    params.extended_key_usages = spec.usage.extended.clone();
    params.not_before = to_x509(not_before)?;
    params.not_after = to_x509(not_after)?;
    params.serial_number = Some(serial.number());
    params.use_authority_key_identifier_extension = true;
    if let Some(base) = spec.base_url {
        let locations = Locations {
            base,
            issuer: ca.authority(),
            ocsp: true,
        };
        locations.apply(&mut params)?;
    }
    Ok(params)
}

fn subject(spec: &LeafSpec<'_>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, spec.common_name);
    if let Some(organization) = spec.organization {
        name.push(DnType::OrganizationName, organization);
    }
    name
}

fn subject_alt_names(spec: &LeafSpec<'_>) -> Result<Vec<SanType>, Error> {
    let ia5 = |text: &str| {
        Ia5String::try_from(text).map_err(Error::certificate("subject alternative name"))
    };
    let mut names = vec![SanType::URI(ia5(spec.spiffe_id)?)];
    for dns in spec.dns_names {
        names.push(SanType::DnsName(ia5(dns.as_str())?));
    }
    names.extend(spec.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    Ok(names)
}

fn key_usages(key_encipherment: bool) -> Vec<KeyUsagePurpose> {
    let mut usages = vec![KeyUsagePurpose::DigitalSignature];
    if key_encipherment {
        usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    usages
}
