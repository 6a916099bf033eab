//! Validated names: system names, organization ids and DNS host names.
//!
//! Each is a newtype with a private field, built only through `TryFrom`, so a value that exists
//! is valid. Errors are [`Error::InvalidArgument`] naming the request field.

use std::fmt;

use crate::Error;

/// Longest label (and system or organization name), per RFC 1035.
const MAX_LABEL: usize = 63;
/// Longest DNS name in text form, without a trailing dot.
const MAX_DNS_NAME: usize = 253;

/// Why `label` is not a lowercase DNS label (`[a-z0-9-]`, 1 to 63 characters, no leading or
/// trailing `-`), or `None` when it is one.
fn label_problem(label: &str) -> Option<String> {
    if label.is_empty() || label.len() > MAX_LABEL {
        return Some(format!("must be 1 to {MAX_LABEL} characters long"));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        return Some(format!(
            "{bad:?} is not allowed: use lowercase a-z, 0-9 and '-'"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Some("must not start or end with '-'".to_owned());
    }
    None
}

/// Whether the last label of a host name is a number (`1`, `0x7f`), which makes URL parsers
/// (WHATWG) and `inet_aton` read the whole name as an IPv4 address: `127.1`, `0x7f.1`.
fn ends_in_number(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or_default();
    let decimal = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()));
    decimal || hex
}

/// Parses `value` as a label for `field`.
fn label(field: &'static str, value: String) -> Result<String, Error> {
    match label_problem(&value) {
        Some(problem) => Err(Error::invalid(field, format!("{value:?} {problem}"))),
        None => Ok(value),
    }
}

macro_rules! label_name {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(value: String) -> Result<Self, Error> {
                label($field, value).map(Self)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;

            fn try_from(value: &str) -> Result<Self, Error> {
                Self::try_from(value.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_name!(
    /// A registered system's name: lowercase `[a-z0-9-]`, 1 to 63 characters, no leading or
    /// trailing `-`. It is the certificate's common name and the last SPIFFE path segment.
    SystemName,
    "name"
);

label_name!(
    /// An organization (government department) id, with the same rules as [`SystemName`].
    OrgId,
    "org_id"
);

label_name!(
    /// A registered person's id, with the same rules as [`SystemName`]: the last segment of
    /// `spiffe://<trust-domain>/person/<id>` and the holder name of the person's certificates.
    PersonId,
    "id"
);

/// A DNS host name a system may hold in its certificates: labels as for [`SystemName`]
/// (input is lowercased first), at most 253 characters, no wildcard, no trailing dot, not an
/// IP address in any form (the last label is not a number: `127.1` and `0x7f.1` are refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses `value` as a host name; errors name `field`.
    pub(crate) fn parse(field: &'static str, value: &str) -> Result<Self, Error> {
        let name = value.to_ascii_lowercase();
        if name.len() > MAX_DNS_NAME {
            return Err(Error::invalid(
                field,
                format!("{value:?} is longer than {MAX_DNS_NAME} characters"),
            ));
        }
        if name.parse::<std::net::IpAddr>().is_ok() {
            return Err(Error::invalid(
                field,
                format!("{value:?} is an IP address, not a DNS name"),
            ));
        }
        if let Some(problem) = name.split('.').find_map(label_problem) {
            return Err(Error::invalid(
                field,
                format!("{value:?} is not a host name: each label {problem}"),
            ));
        }
        if ends_in_number(&name) {
            return Err(Error::invalid(
                field,
                format!(
                    "{value:?} ends in a number: URL parsers and resolvers read it as an IPv4 address"
                ),
            ));
        }
        Ok(Self(name))
    }
}

impl TryFrom<&str> for DnsName {
    type Error = Error;

    fn try_from(value: &str) -> Result<Self, Error> {
        Self::parse("dns_names", value)
    }
}

impl TryFrom<String> for DnsName {
    type Error = Error;

    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse("dns_names", &value)
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<impl fmt::Debug, Error>) -> Option<&'static str> {
        match result {
            Err(Error::InvalidArgument { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn system_names_follow_label_rules() {
        for good in ["a", "tax-portal", "x1", &"a".repeat(63)] {
            assert!(SystemName::try_from(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "Tax", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert_eq!(field(SystemName::try_from(bad)), Some("name"), "{bad}");
        }
    }

    #[test]
    fn org_id_errors_name_their_field() {
        assert_eq!(field(OrgId::try_from("Bad Org")), Some("org_id"));
    }

    #[test]
    fn dns_names_are_lowercased_host_names() {
        assert_eq!(
            DnsName::try_from("Tax.GOV.example")
                .map(|n| n.0)
                .ok()
                .as_deref(),
            Some("tax.gov.example")
        );
        assert!(DnsName::try_from("localhost").is_ok());
        for good in ["1.example", "x.0xg", "portal.gov.example1"] {
            assert!(DnsName::try_from(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a..b",
            "*.gov.example",
            "a.b.",
            "10.0.0.1",
            "-a.b",
            "127.1",
            "0x7f.1",
            "0x7f000001",
            "a.0x",
            "portal.123",
            "a b",
            &"a.".repeat(127),
        ] {
            assert_eq!(field(DnsName::try_from(bad)), Some("dns_names"), "{bad}");
        }
    }
}
