//! DNS names no system may hold: the govtrust server's own names, and loopback names.
//!
//! Systems and the server get certificates from the same hierarchy, so a client that checks only
//! the host name would take a system holding one of the server's names for the server. The
//! server's names are stored with the hierarchy at initialization; a hierarchy stored before
//! they were recorded has them read back from the server's certificates instead.

use std::net::IpAddr;
use std::time::SystemTime;

use govtrust_store::Store;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;
use crate::certificates::{self, CertFilter};
use crate::identity::SERVER_IDENTITY;
use crate::names::DnsName;
use crate::records::{self, HierarchyRecord, ServerRecord};

/// The DNS names of the govtrust server, lowercase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServerNames(Vec<String>);

impl ServerNames {
    /// The names given at initialization.
    pub(crate) fn new(dns_names: &[DnsName]) -> Self {
        Self(dns_names.iter().map(ToString::to_string).collect())
    }

    /// The server's names as stored with the hierarchy, or read from the server's certificates
    /// when the hierarchy predates them.
    pub(crate) fn load(store: &dyn Store) -> Result<Self, Error> {
        let value = store
            .get(records::HIERARCHY)?
            .ok_or(Error::NotInitialized)?;
        let record: HierarchyRecord = records::decode(records::HIERARCHY, &value)?;
        match record.server {
            Some(server) => Ok(Self(lowercase(server.dns_names))),
            None => from_certificates(store),
        }
    }

    /// Refuses `name` if no system may hold it: `localhost`, `*.localhost` (RFC 6761) and the
    /// server's names. Errors are [`Error::InvalidArgument`] on `dns_names`.
    pub(crate) fn refuse(&self, name: &DnsName) -> Result<(), Error> {
        let name = name.as_str();
        if name == "localhost" || name.ends_with(".localhost") {
            return Err(Error::invalid(
                "dns_names",
                format!("{name:?} is a loopback name; no system may hold it"),
            ));
        }
        match self
            .0
            .iter()
            .any(|server| server.eq_ignore_ascii_case(name))
        {
            true => Err(Error::invalid(
                "dns_names",
                format!("{name:?} is the govtrust server's name"),
            )),
            false => Ok(()),
        }
    }
}

/// The stored form of the server's names.
pub(crate) fn server_record(dns_names: &[DnsName], ips: &[IpAddr]) -> ServerRecord {
    ServerRecord {
        dns_names: dns_names.iter().map(ToString::to_string).collect(),
        ips: ips.iter().map(ToString::to_string).collect(),
    }
}

fn lowercase(names: Vec<String>) -> Vec<String> {
    names.iter().map(|n| n.to_ascii_lowercase()).collect()
}

/// The DNS names in every certificate issued to the server.
fn from_certificates(store: &dyn Store) -> Result<ServerNames, Error> {
    let filter = CertFilter {
        system: Some(SERVER_IDENTITY.to_owned()),
        ..CertFilter::default()
    };
    let mut names = Vec::new();
    let mut page_token = None;
    loop {
        // No status filter: the time does not matter.
        let (page, next) = certificates::list(
            store,
            &filter,
            SystemTime::UNIX_EPOCH,
            0,
            page_token.as_deref(),
        )?;
        for record in &page {
            names.extend(dns_names(&record.der)?);
        }
        match next {
            Some(next) => page_token = Some(next),
            None => return Ok(ServerNames(lowercase(names))),
        }
    }
}

/// The DNS subject alternative names of a certificate.
fn dns_names(der: &[u8]) -> Result<Vec<String>, Error> {
    let corrupt = |e: String| Error::corrupt(format!("govtrust server certificate: {e}"));
    let (_, certificate) = X509Certificate::from_der(der).map_err(|e| corrupt(e.to_string()))?;
    let san = certificate
        .subject_alternative_name()
        .map_err(|e| corrupt(e.to_string()))?;
    let names = san.iter().flat_map(|san| san.value.general_names.iter());
    Ok(names
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn refused(names: &ServerNames, name: &str) -> bool {
        names.refuse(&DnsName::try_from(name).unwrap()).is_err()
    }

    #[test]
    fn loopback_and_server_names_are_refused() {
        let server = ServerNames(lowercase(vec!["GovTrust.gov.example".to_owned()]));
        for name in [
            "localhost",
            "LocalHost",
            "a.localhost",
            "govtrust.gov.example",
        ] {
            assert!(refused(&server, name), "{name}");
        }
        for name in [
            "portal.gov.example",
            "localhost.gov.example",
            "notlocalhost",
        ] {
            assert!(!refused(&server, name), "{name}");
        }
    }
}
