//! Who certificates are for: the trust domain, SPIFFE ids, networks, protection levels and the
//! three administrator roles (三员分立).
//!
//! Identities are URI SANs in SPIFFE form: `spiffe://<trust-domain>/org/<org>/sys/<system>` for
//! systems, `spiffe://<trust-domain>/person/<id>` for people and `spiffe://<trust-domain>/govtrust`
//! for the govtrust server itself.

use crate::Error;
use crate::names::{OrgId, SystemName};
use std::fmt;
use std::str::FromStr;

/// Longest trust domain: it is the organizationName of the CA certificates (RFC 5280
/// `ub-organization-name`).
const MAX_TRUST_DOMAIN: usize = 64;
/// The holder name of the govtrust server's own certificates.
pub const SERVER_IDENTITY: &str = "govtrust";

/// The SPIFFE trust domain of a deployment, e.g. `gov.example`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrustDomain(String);

impl TrustDomain {
    /// Parses a trust domain: lowercase `[a-z0-9._-]`, 1 to 64 characters.
    pub(crate) fn parse(value: &str) -> Result<Self, Error> {
        let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-');
        if value.is_empty() || value.len() > MAX_TRUST_DOMAIN {
            return Err(Error::invalid(
                "trust_domain",
                format!("must be 1 to {MAX_TRUST_DOMAIN} characters long"),
            ));
        }
        match value.chars().find(|c| !allowed(*c)) {
            Some(bad) => Err(Error::invalid(
                "trust_domain",
                format!("{bad:?} is not allowed: use a-z, 0-9, '.', '_', '-'"),
            )),
            None => Ok(Self(value.to_owned())),
        }
    }

    /// The trust domain as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE id of a system.
    pub(crate) fn system_id(&self, org: &OrgId, system: &SystemName) -> String {
        format!("spiffe://{}/org/{org}/sys/{system}", self.0)
    }

    /// The SPIFFE id of a person.
    pub(crate) fn person_id(&self, person: &str) -> String {
        format!("spiffe://{}/person/{person}", self.0)
    }

    /// The SPIFFE id of the govtrust server.
    pub(crate) fn server_id(&self) -> String {
        format!("spiffe://{}/{SERVER_IDENTITY}", self.0)
    }

    /// The person id in `spiffe_id` if it is a person of this trust domain.
    pub(crate) fn person_of<'a>(&self, spiffe_id: &'a str) -> Option<&'a str> {
        let path = spiffe_id
            .strip_prefix("spiffe://")?
            .strip_prefix(self.0.as_str())?;
        path.strip_prefix("/person/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }

    /// The system name in `spiffe_id` if it is a system of this trust domain.
    pub(crate) fn system_of(&self, spiffe_id: &str) -> Option<SystemName> {
        let path = spiffe_id
            .strip_prefix("spiffe://")?
            .strip_prefix(self.0.as_str())?;
        let (org, system) = path.strip_prefix("/org/")?.split_once("/sys/")?;
        OrgId::try_from(org).ok()?;
        SystemName::try_from(system).ok()
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The two government networks; each has its own issuing CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// The government extranet (政务外网).
    Extranet,
    /// The government intranet (政务内网).
    Intranet,
}

impl Network {
    /// The network's name: `extranet` or `intranet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Extranet => "extranet",
            Self::Intranet => "intranet",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        match value {
            "extranet" => Ok(Self::Extranet),
            "intranet" => Ok(Self::Intranet),
            other => Err(Error::invalid(
                "network",
                format!("{other:?} is neither extranet nor intranet"),
            )),
        }
    }
}

/// The administrator roles; duties are split between them (三员分立).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// 系统管理员: runs the system; registers systems and issues their enrollment tokens.
    SystemAdministrator,
    /// 安全管理员: manages keys and policy.
    SecurityAdministrator,
    /// 审计管理员: reads and checks the audit log.
    AuditAdministrator,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 3] = [
        Self::SystemAdministrator,
        Self::SecurityAdministrator,
        Self::AuditAdministrator,
    ];

    /// The role's name, also its person id: `system-admin`, `security-admin`, `audit-admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SystemAdministrator => "system-admin",
            Self::SecurityAdministrator => "security-admin",
            Self::AuditAdministrator => "audit-admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or_else(|| {
                Error::invalid("role", format!("{value:?} is not an administrator role"))
            })
    }
}

/// A system's tiered-protection level (等级保护, MLPS 2.0), 1 to 4. Higher levels get shorter
/// certificate lifetimes (`policies/profiles/levels.toml`, see [`crate::Profiles::level_cap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtectionLevel(u8);

impl ProtectionLevel {
    /// The level, 1 to 4.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u32> for ProtectionLevel {
    type Error = Error;

    fn try_from(level: u32) -> Result<Self, Error> {
        match u8::try_from(level) {
            Ok(level @ 1..=4) => Ok(Self(level)),
            _ => Err(Error::invalid(
                "protection_level",
                format!("{level} is not a level from 1 to 4"),
            )),
        }
    }
}

impl fmt::Display for ProtectionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn protection_levels_are_one_to_four() {
        assert!(ProtectionLevel::try_from(0).is_err());
        assert!(ProtectionLevel::try_from(5).is_err());
        assert!(ProtectionLevel::try_from(256 + 1).is_err());
        assert_eq!(ProtectionLevel::try_from(4).unwrap().get(), 4);
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        }
        assert_eq!(Role::SystemAdministrator.to_string(), "system-admin");
    }

    #[test]
    fn spiffe_ids_parse_back() {
        let td = TrustDomain::parse("gov.example").unwrap();
        let org = OrgId::try_from("tax").unwrap();
        let sys = SystemName::try_from("portal").unwrap();
        let id = td.system_id(&org, &sys);
        assert_eq!(id, "spiffe://gov.example/org/tax/sys/portal");
        assert_eq!(td.system_of(&id), Some(sys));
        assert_eq!(
            td.person_of("spiffe://gov.example/person/audit-admin"),
            Some("audit-admin")
        );
        assert_eq!(
            td.person_of("spiffe://other.example/person/audit-admin"),
            None
        );
        assert_eq!(
            td.system_of("spiffe://gov.example.evil/org/tax/sys/portal"),
            None
        );
    }

    #[test]
    fn trust_domains_are_validated() {
        assert!(TrustDomain::parse("gov.example").is_ok());
        assert!(TrustDomain::parse("").is_err());
        assert!(TrustDomain::parse("Gov/x").is_err());
    }
}
