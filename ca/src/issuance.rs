//! Building and signing end-entity certificates: the one signing path of every leaf.
//!
//! Every leaf gets a serial of 128 random bits after a fixed first byte, `not_before` one minute
//! in the past (clock skew), AKI and SKI, `basicConstraints CA:FALSE`, and a lifetime capped by
//! its issuing CA's.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber,
};
use ring::rand::SecureRandom;

use crate::Error;
use crate::hierarchy::CaCert;
use crate::names::DnsName;
use crate::timestamps::{from_x509, to_x509};

/// How far `not_before` is set back, for relying parties whose clocks run a little behind.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// The first byte of every serial: non-zero and below 0x80, so the DER INTEGER is positive and
/// minimal whatever the 16 random bytes after it are.
const SERIAL_PREFIX: u8 = 0x01;

/// `at + after`, or an error if that is past what `SystemTime` can hold.
pub(crate) fn later(at: SystemTime, after: Duration) -> Result<SystemTime, Error> {
    at.checked_add(after)
        .ok_or_else(|| Error::invalid("time", "certificate validity overflows the clock"))
}

/// A certificate serial: a fixed first byte then 128 random bits, 17 bytes in all (RFC 5280
/// allows 20), so it always encodes as a positive INTEGER of exactly 17 bytes and its hex form is
/// canonical.
pub(crate) struct Serial([u8; 17]);

impl Serial {
    /// A fresh random serial.
    pub(crate) fn generate(rng: &dyn SecureRandom) -> Result<Self, Error> {
        let mut bytes = [0u8; 17];
        bytes[0] = SERIAL_PREFIX;
        rng.fill(&mut bytes[1..])
            .map_err(|_| Error::RandomUnavailable)?;
        Ok(Self(bytes))
    }

    /// Lowercase hex, 34 characters.
    pub(crate) fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl From<Serial> for SerialNumber {
    fn from(serial: Serial) -> Self {
        SerialNumber::from_slice(&serial.0)
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// TLS server only (the govtrust server).
    Server,
    /// TLS client only (people).
    Client,
    /// TLS server and client (systems).
    ServerAndClient,
}

impl Purpose {
    fn extended_key_usages(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Self::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Self::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Self::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
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
    pub purpose: Purpose,
    /// Adds keyEncipherment to digitalSignature (RSA keys).
    pub key_encipherment: bool,
    pub validity: Duration,
}

/// A signed leaf certificate.
pub(crate) struct Leaf {
    pub serial: String,
    pub der: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Signs a leaf certificate for `subject` with `ca`.
pub(crate) fn issue(
    ca: &CaCert,
    spec: &LeafSpec<'_>,
    subject: &impl PublicKeyData,
    now: SystemTime,
    rng: &dyn SecureRandom,
) -> Result<Leaf, Error> {
    let serial = Serial::generate(rng)?;
    let hex = serial.hex();
    let params = leaf_params(ca, spec, serial, now)?;
    let der = ca.sign(&params, subject)?;
    let (not_before, not_after) = (from_x509(params.not_before), from_x509(params.not_after));
    Ok(Leaf {
        serial: hex,
        der,
        not_before,
        not_after,
    })
}

/// The rcgen parameters of a leaf.
fn leaf_params(
    ca: &CaCert,
    spec: &LeafSpec<'_>,
    serial: Serial,
    now: SystemTime,
) -> Result<CertificateParams, Error> {
    let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
    let not_after = later(not_before, spec.validity)?.min(ca.not_after());
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(spec);
    params.subject_alt_names = subject_alt_names(spec)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = key_usages(spec.key_encipherment);
    params.extended_key_usages = spec.purpose.extended_key_usages();
    params.not_before = to_x509(not_before)?;
    params.not_after = to_x509(not_after)?;
    params.serial_number = Some(serial.into());
    params.use_authority_key_identifier_extension = true;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serials_are_a_positive_prefix_and_128_random_bits() {
        let rng = ring::rand::SystemRandom::new();
        let serials: Vec<[u8; 17]> = (0..200)
            .map(|_| Serial::generate(&rng).unwrap().0)
            .collect();
        for serial in &serials {
            assert_eq!(serial[0], SERIAL_PREFIX);
            assert_eq!(hex::encode(serial).len(), 34);
        }
        // Every bit of the 16 random bytes takes both values across 200 draws.
        for bit in 0..128 {
            let set = serials
                .iter()
                .filter(|s| s[1 + bit / 8] & (0x80 >> (bit % 8)) != 0)
                .count();
            assert!(set > 0 && set < serials.len(), "bit {bit} never varies");
        }
    }
}
