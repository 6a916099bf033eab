//! The configuration of `govtrust serve`: one typed [`Config`], filled from a TOML file, then
//! from `GOVTRUST_*` environment variables, then from flags (a flag wins over its variable, a
//! variable over the file, the file over the default).
//!
//! The file is read with unknown keys refused, so a misspelt key stops the server with its name
//! instead of being ignored. No setting is a secret: the server's TLS key lives in the data
//! directory (mode 0600) and the master key only in the custodians' shares.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// Default address of the gRPC port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default address of the plain-HTTP port (CRLs, OCSP, CA certificates, metrics).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

/// Everything `govtrust serve` is told, with defaults applied and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Data directory of the deployment.
    pub data: PathBuf,
    /// Address of the gRPC port (TLS).
    pub listen: SocketAddr,
    /// Address of the plain-HTTP port for relying parties.
    pub http_listen: SocketAddr,
    /// Where relying parties reach the HTTP port: the base of the CRL distribution point, OCSP
    /// and CA-issuers URLs written into every certificate. Unset: `http://` and the address
    /// the HTTP port is bound to.
    pub public_url: Option<PublicUrl>,
    /// How long an unseal attempt lasts after its first share.
    pub unseal_timeout: Duration,
    /// Certificate lifetimes and renewal.
    pub certificates: Certificates,
    /// Certificate revocation lists.
    pub crl: Refresh,
    /// OCSP responses.
    pub ocsp: Refresh,
    /// A directory of certificate profiles (`*.toml`) used instead of the built-in ones.
    pub profiles: Option<PathBuf>,
}

/// Certificate lifetimes and renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certificates {
    /// No certificate lives longer, whatever its profile and protection level allow.
    pub max_validity: Duration,
    /// How long after a renewal the superseded certificate may still renew (a lost answer
    /// must not strand a system); never once it is revoked.
    pub renewal_grace: Duration,
}

/// How long a signed status document (a CRL, an OCSP response) is valid, and how often it is
/// made anew even when nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    /// From thisUpdate to nextUpdate.
    pub next_update: Duration,
    /// Made anew at least this often; less than `next_update`.
    pub refresh: Duration,
}

/// The public base URL of the HTTP port: `http://` or `https://`, a host, an optional port and
/// path, no query; kept without a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let scheme = uri.scheme_str().unwrap_or_default();
        if scheme != "http" && scheme != "https" {
            return Err(format!("{text:?} must start with http:// or https://"));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("{text:?} names no host"));
        }
        if uri.query().is_some() || text.contains('#') {
            return Err(format!("{text:?} must not have a query or fragment"));
        }
        Ok(Self(text.trim_end_matches('/').to_owned()))
    }

    /// The URL of the HTTP port for an address it listens on.
    pub fn for_address(address: SocketAddr) -> Self {
        Self(format!("http://{address}"))
    }

    /// `path` (starting with `/`) under this base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configuration file as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    data: Option<PathBuf>,
    listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    public_url: Option<String>,
    unseal_timeout: Option<String>,
    #[serde(default)]
    certificates: CertificatesFile,
    #[serde(default)]
    crl: RefreshFile,
    #[serde(default)]
    ocsp: RefreshFile,
    profiles: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificatesFile {
    max_validity: Option<String>,
    renewal_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshFile {
    next_update: Option<String>,
    refresh: Option<String>,
}

impl File {
    /// Reads and parses `path`; the error names the file and, for a bad key, the key.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// What the environment and the flags said (clap reads both; a flag wins over its variable).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub unseal_timeout: Option<String>,
    pub max_validity: Option<String>,
    pub renewal_grace: Option<String>,
    pub crl_next_update: Option<String>,
    pub crl_refresh: Option<String>,
    pub ocsp_next_update: Option<String>,
    pub ocsp_refresh: Option<String>,
    pub profiles: Option<PathBuf>,
}

/// Defaults that depend on the mode: the data directory's name.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub data: &'static str,
}

impl Config {
    /// `file` overridden by `overrides`, defaults for the rest; errors name the key.
    pub fn resolve(file: File, overrides: Overrides, defaults: Defaults) -> anyhow::Result<Self> {
        let http_listen = pick(overrides.http_listen, file.http_listen, DEFAULT_HTTP_LISTEN)?;
        let public_url = overrides.public_url.clone().or(file.public_url);
        let public_url = public_url
            .map(|text| PublicUrl::parse(&text).map_err(|e| anyhow::anyhow!("public_url: {e}")))
            .transpose()?;
        let certificates = certificates(&overrides, file.certificates)?;
        let unseal_timeout = overrides.unseal_timeout.clone().or(file.unseal_timeout);
        let unseal_timeout = setting("unseal_timeout", unseal_timeout, "10m")?;
        check_range("unseal_timeout", unseal_timeout, SECOND, DAY)?;
        Ok(Self {
            data: overrides
                .data
                .or(file.data)
                .unwrap_or_else(|| defaults.data.into()),
            listen: pick(overrides.listen, file.listen, DEFAULT_LISTEN)?,
            http_listen,
            public_url,
            unseal_timeout,
            certificates,
            crl: refresh(
                "crl",
                overrides.crl_next_update,
                overrides.crl_refresh,
                file.crl,
                ("7d", "1d"),
            )?,
            ocsp: refresh(
                "ocsp",
                overrides.ocsp_next_update,
                overrides.ocsp_refresh,
                file.ocsp,
                ("1d", "12h"),
            )?,
            profiles: overrides.profiles.or(file.profiles),
        })
    }

    /// The settings as TOML, as `config check` shows them.
    pub fn to_toml(&self) -> String {
        let profiles = self.profiles.as_ref().map_or_else(
            || "# profiles: the built-in ones".to_owned(),
            |p| format!("profiles = {:?}", p.display().to_string()),
        );
        let public_url = self.public_url.as_ref().map_or_else(
            || format!("# public_url: http://{}", self.http_listen),
            |url| format!("public_url = \"{url}\""),
        );
        format!(
            "data = {:?}\nlisten = \"{}\"\nhttp_listen = \"{}\"\n{public_url}\n\
             unseal_timeout = \"{}\"\n{profiles}\n\n[certificates]\nmax_validity = \"{}\"\n\
             renewal_grace = \"{}\"\n\n[crl]\nnext_update = \"{}\"\nrefresh = \"{}\"\n\n\
             [ocsp]\nnext_update = \"{}\"\nrefresh = \"{}\"\n",
            self.data.display().to_string(),
            self.listen,
            self.http_listen,
            show(self.unseal_timeout),
            show(self.certificates.max_validity),
            show(self.certificates.renewal_grace),
            show(self.crl.next_update),
            show(self.crl.refresh),
            show(self.ocsp.next_update),
            show(self.ocsp.refresh),
        )
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn pick(
    flag: Option<SocketAddr>,
    file: Option<SocketAddr>,
    default: &str,
) -> anyhow::Result<SocketAddr> {
    match flag.or(file) {
        Some(address) => Ok(address),
        None => Ok(default.parse()?),
    }
}

fn certificates(overrides: &Overrides, file: CertificatesFile) -> anyhow::Result<Certificates> {
    let max_validity = overrides.max_validity.clone().or(file.max_validity);
    let max_validity = setting("certificates.max_validity", max_validity, "397d")?;
    check_range("certificates.max_validity", max_validity, HOUR, 3650 * DAY)?;
    let renewal_grace = overrides.renewal_grace.clone().or(file.renewal_grace);
    let renewal_grace = setting("certificates.renewal_grace", renewal_grace, "1h")?;
    check_range(
        "certificates.renewal_grace",
        renewal_grace,
        Duration::ZERO,
        7 * DAY,
    )?;
    Ok(Certificates {
        max_validity,
        renewal_grace,
    })
}

fn refresh(
    section: &str,
    next_update: Option<String>,
    refresh: Option<String>,
    file: RefreshFile,
    (default_next, default_refresh): (&str, &str),
) -> anyhow::Result<Refresh> {
    let next_key = format!("{section}.next_update");
    let refresh_key = format!("{section}.refresh");
    let next_update = setting(&next_key, next_update.or(file.next_update), default_next)?;
    check_range(&next_key, next_update, 2 * MINUTE, 30 * DAY)?;
    let refresh = setting(&refresh_key, refresh.or(file.refresh), default_refresh)?;
    check_range(
        &refresh_key,
        refresh,
        MINUTE,
        next_update.saturating_sub(MINUTE),
    )?;
    Ok(Refresh {
        next_update,
        refresh,
    })
}

/// The duration `key` is set to, or its default.
fn setting(key: &str, text: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let text = text.as_deref().unwrap_or(default);
    parse_duration(text).map_err(|e| anyhow::anyhow!("{key}: {e}"))
}

fn check_range(key: &str, value: Duration, low: Duration, high: Duration) -> anyhow::Result<()> {
    if value < low || value > high {
        anyhow::bail!(
            "{key}: {} is out of range ({} to {})",
            show(value),
            show(low),
            show(high)
        );
    }
    Ok(())
}

/// A duration written `N` (seconds), `Ns`, `Nm`, `Nh` or `Nd`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let units = [('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)];
    let (number, unit) = units
        .iter()
        .find_map(|&(suffix, unit)| text.strip_suffix(suffix).map(|number| (number, unit)))
        .unwrap_or((text, 1));
    let seconds = Some(number)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{text:?} is not a duration such as 600, 90s, 10m, 1h or 7d"))?;
    Ok(Duration::from_secs(seconds))
}

/// A duration in the largest unit that writes it exactly.
pub fn show(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let units = [(86_400, 'd'), (3600, 'h'), (60, 'm')];
    units
        .iter()
        .find(|&&(unit, _)| seconds != 0 && seconds.is_multiple_of(unit))
        .map_or_else(
            || format!("{seconds}s"),
            |&(unit, suffix)| format!("{}{suffix}", seconds / unit),
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DEV: Defaults = Defaults {
        data: "govtrust-dev",
    };

    fn parse(text: &str) -> anyhow::Result<Config> {
        let file: File = toml::from_str(text)?;
        Config::resolve(file, Overrides::default(), DEV)
    }

    #[test]
    fn no_file_gives_the_defaults() {
        let config = Config::resolve(File::default(), Overrides::default(), DEV).unwrap();
        assert_eq!(config.data, PathBuf::from("govtrust-dev"));
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.public_url, None);
        assert_eq!(config.unseal_timeout, 10 * MINUTE);
        assert_eq!(config.certificates.renewal_grace, HOUR);
        assert_eq!(config.crl.next_update, 7 * DAY);
        assert_eq!(config.ocsp.refresh, 12 * HOUR);
    }

    #[test]
    fn a_flag_wins_over_the_file() {
        let file: File = toml::from_str(
            "listen = \"0.0.0.0:9443\"\nhttp_listen = \"0.0.0.0:9080\"\n\
             public_url = \"https://ca.gov.example/pki/\"\n[certificates]\nrenewal_grace = \"2h\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            listen: Some("127.0.0.1:7443".parse().unwrap()),
            renewal_grace: Some("30m".into()),
            ..Overrides::default()
        };
        let config = Config::resolve(file, overrides, DEV).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7443");
        assert_eq!(config.http_listen.to_string(), "0.0.0.0:9080");
        let url = config.public_url.unwrap();
        assert_eq!(url.join("/ocsp"), "https://ca.gov.example/pki/ocsp");
        assert_eq!(config.certificates.renewal_grace, 30 * MINUTE);
    }

    #[test]
    fn bad_files_name_the_key() {
        let unknown = parse("listen = \"127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("lisen"), "{unknown}");
        let nested = parse("[crl]\nnext_updat = \"1d\"\n")
            .unwrap_err()
            .to_string();
        assert!(nested.contains("next_updat"), "{nested}");
        let cases = [
            ("public_url = \"ftp://x\"", "public_url"),
            ("public_url = \"http://x/?a=b\"", "public_url"),
            ("unseal_timeout = \"2d\"", "unseal_timeout"),
            (
                "[crl]\nnext_update = \"1h\"\nrefresh = \"2h\"",
                "crl.refresh",
            ),
            ("[ocsp]\nnext_update = \"soon\"", "ocsp.next_update"),
            (
                "[certificates]\nmax_validity = \"0\"",
                "certificates.max_validity",
            ),
        ];
        for (text, key) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.starts_with(key), "{text}: {error}");
        }
        let address = parse("listen = \"nowhere\"").unwrap_err().to_string();
        assert!(address.contains("listen"), "{address}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("600"), Ok(10 * MINUTE));
        assert_eq!(parse_duration("7d"), Ok(7 * DAY));
        for bad in [
            "",
            "d",
            "-5m",
            "1 h",
            "1.5h",
            "99999999999999999999d",
            "+3s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(show(7 * DAY), "7d");
        assert_eq!(show(90 * MINUTE), "90m");
        assert_eq!(show(Duration::from_secs(61)), "61s");
        assert_eq!(show(Duration::ZERO), "0s");
    }

    #[test]
    fn the_example_in_the_readme_is_valid() {
        let readme = include_str!("../README.md");
        let example = readme
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let config = parse(example).unwrap();
        assert_eq!(
            config.public_url.unwrap().to_string(),
            "https://pki.gov.example"
        );
    }
}
