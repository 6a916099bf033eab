//! Certificate profiles as data: one TOML file per profile (`policies/profiles/<name>.toml`),
//! and `levels.toml`, the lifetime cap of each protection level, parsed once into typed values.
//!
//! A profile says who may hold it (systems, persons), which keys it certifies (algorithms, RSA
//! sizes), the key usage for each key family, the extended key usage, which subject
//! alternative names follow the SPIFFE id (the holder's registered DNS names, or none) and its
//! longest lifetime. The built-in profiles are the files of `policies/profiles/`, compiled in;
//! [`Profiles::from_dir`] reads a directory of them instead. A bad file is an
//! [`Error::ProfileFile`] naming the file and the key; a request outside a profile is an
//! [`Error::ProfileRefused`] naming the profile and the rule (the TOML key) that refused it.
//!
//! What it does not do: decide who may ask for which profile beyond the holder kinds (the
//! server's policy point does), or build certificates (`issuance` does, from [`Usage`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use serde::Deserialize;

use crate::Error;
use crate::csr::KeyKind;
use crate::identity::ProtectionLevel;

const DAY: Duration = Duration::from_secs(86_400);
/// The longest lifetime any file may state.
const MAX_DAYS: u32 = 3650;
/// RSA sizes any profile may allow.
const RSA_BITS: (u32, u32) = (2048, 8192);
/// The profile enrollment and renewal issue.
pub const SYSTEM_IDENTITY: &str = "system-identity";
/// The file of the protection levels' caps.
const LEVELS_FILE: &str = "levels.toml";

/// The built-in files: the profiles of `policies/profiles/` and the levels.
const BUILTIN: [(&str, &str); 7] = [
    (
        "system-identity.toml",
        include_str!("../../policies/profiles/system-identity.toml"),
    ),
    (
        "tls-server.toml",
        include_str!("../../policies/profiles/tls-server.toml"),
    ),
    (
        "tls-client.toml",
        include_str!("../../policies/profiles/tls-client.toml"),
    ),
    (
        "person.toml",
        include_str!("../../policies/profiles/person.toml"),
    ),
    (
        "document-signing.toml",
        include_str!("../../policies/profiles/document-signing.toml"),
    ),
    (
        "encryption.toml",
        include_str!("../../policies/profiles/encryption.toml"),
    ),
    (
        LEVELS_FILE,
        include_str!("../../policies/profiles/levels.toml"),
    ),
];

/// Who holds a certificate: a registered system or a registered person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HolderKind {
    /// A registered government system.
    System,
    /// A registered person (a civil servant).
    Person,
}

impl fmt::Display for HolderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::System => "system",
            Self::Person => "person",
        })
    }
}

/// A key algorithm a profile may certify, as the TOML names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa,
    Sm2,
}

impl KeyAlgorithm {
    fn of(key: KeyKind) -> Self {
        match key {
            KeyKind::EcdsaP256 => Self::EcdsaP256,
            KeyKind::EcdsaP384 => Self::EcdsaP384,
            KeyKind::Ed25519 => Self::Ed25519,
            KeyKind::Rsa { .. } => Self::Rsa,
            KeyKind::Sm2 => Self::Sm2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
            Self::Sm2 => "sm2",
        }
    }
}

/// A key usage bit a leaf may carry (never keyCertSign or cRLSign).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum KeyUsage {
    DigitalSignature,
    NonRepudiation,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
}

impl KeyUsage {
    fn purpose(self) -> KeyUsagePurpose {
        match self {
            Self::DigitalSignature => KeyUsagePurpose::DigitalSignature,
            Self::NonRepudiation => KeyUsagePurpose::ContentCommitment,
            Self::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
            Self::DataEncipherment => KeyUsagePurpose::DataEncipherment,
            Self::KeyAgreement => KeyUsagePurpose::KeyAgreement,
        }
    }

    /// Whether a key of `family` can do what this usage says.
    fn possible(self, family: Family) -> bool {
        match (self, family) {
            (Self::DigitalSignature | Self::NonRepudiation, _) => true,
            (Self::KeyEncipherment | Self::DataEncipherment, family) => family == Family::Rsa,
            (Self::KeyAgreement, family) => family == Family::Ec,
        }
    }
}

/// An extended key usage a leaf may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ExtendedUsage {
    ServerAuth,
    ClientAuth,
    EmailProtection,
    CodeSigning,
    /// id-kp-documentSigning (RFC 9336).
    DocumentSigning,
}

/// id-kp-documentSigning, 1.3.6.1.5.5.7.3.36 (RFC 9336).
const DOCUMENT_SIGNING: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 3, 36];

impl ExtendedUsage {
    fn purpose(self) -> ExtendedKeyUsagePurpose {
        match self {
            Self::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Self::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
            Self::EmailProtection => ExtendedKeyUsagePurpose::EmailProtection,
            Self::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
            Self::DocumentSigning => ExtendedKeyUsagePurpose::Other(DOCUMENT_SIGNING.to_vec()),
        }
    }
}

/// The families key usage is stated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Ec,
    Ed25519,
    Rsa,
}

impl Family {
    fn of(algorithm: KeyAlgorithm) -> Self {
        match algorithm {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 | KeyAlgorithm::Sm2 => Self::Ec,
            KeyAlgorithm::Ed25519 => Self::Ed25519,
            KeyAlgorithm::Rsa => Self::Rsa,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Ec => "ec",
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
        }
    }
}

/// Which DNS names follow the SPIFFE id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum DnsRule {
    /// None: a request asking for one is refused.
    None,
    /// Those the request asks for, each registered to the system.
    Registered,
}

/// A profile file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    description: String,
    holders: Vec<HolderKind>,
    max_validity_days: u32,
    extended_key_usage: Vec<ExtendedUsage>,
    keys: KeysFile,
    key_usage: KeyUsageFile,
    names: NamesFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    algorithms: Vec<KeyAlgorithm>,
    rsa_min_bits: Option<u32>,
    rsa_max_bits: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyUsageFile {
    ec: Option<Vec<KeyUsage>>,
    ed25519: Option<Vec<KeyUsage>>,
    rsa: Option<Vec<KeyUsage>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamesFile {
    dns: DnsRule,
    dns_required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelsFile {
    max_validity_days: BTreeMap<String, u32>,
}

/// One certificate profile, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    name: String,
    description: String,
    holders: Vec<HolderKind>,
    max_validity_days: u32,
    extended_key_usage: Vec<ExtendedUsage>,
    algorithms: Vec<KeyAlgorithm>,
    rsa_bits: (u32, u32),
    key_usage: Vec<(Family, Vec<KeyUsage>)>,
    dns: DnsRule,
    dns_required: bool,
}

/// What a certificate of a profile is for: its key usage and extended key usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Usage {
    pub key: Vec<KeyUsagePurpose>,
    pub extended: Vec<ExtendedKeyUsagePurpose>,
}

impl Profile {
    /// The profile's name: its file's name without `.toml`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it is for, in a line.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Who may hold it.
    pub fn holders(&self) -> &[HolderKind] {
        &self.holders
    }

    /// Its longest lifetime, before the protection level and the server cap it.
    pub fn max_validity(&self) -> Duration {
        DAY * self.max_validity_days
    }

    /// Refuses a holder the profile is not for.
    pub(crate) fn check_holder(&self, holder: HolderKind) -> Result<(), Error> {
        if self.holders.contains(&holder) {
            return Ok(());
        }
        Err(self.refuse("holders", format!("a {holder} may not hold it")))
    }

    /// Refuses a key the profile does not certify.
    pub(crate) fn check_key(&self, key: KeyKind) -> Result<(), Error> {
        let algorithm = KeyAlgorithm::of(key);
        if !self.algorithms.contains(&algorithm) {
            let allowed: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
            return Err(self.refuse(
                "keys.algorithms",
                format!(
                    "key {} not allowed (allowed: {})",
                    algorithm.name(),
                    allowed.join(", ")
                ),
            ));
        }
        match key {
            KeyKind::Rsa { bits } => self.check_rsa(bits),
            _ => Ok(()),
        }
    }

    fn check_rsa(&self, bits: usize) -> Result<(), Error> {
        let (min, max) = self.rsa_bits;
        let bits = u32::try_from(bits).unwrap_or(u32::MAX);
        if bits < min {
            return Err(self.refuse(
                "keys.rsa_min_bits",
                format!("RSA-{bits} keys are too short (at least {min} bits)"),
            ));
        }
        if bits > max {
            return Err(self.refuse(
                "keys.rsa_max_bits",
                format!("RSA-{bits} keys are too long (at most {max} bits)"),
            ));
        }
        Ok(())
    }

    /// Refuses DNS names the profile does not carry (or their absence when it needs one).
    pub(crate) fn check_dns(&self, requested: usize) -> Result<(), Error> {
        match (self.dns, requested) {
            (DnsRule::None, 1..) => Err(self.refuse(
                "names.dns",
                "the profile carries no DNS names; ask for none".to_owned(),
            )),
            (DnsRule::Registered, 0) if self.dns_required => Err(self.refuse(
                "names.dns_required",
                "ask for at least one DNS name registered to the system".to_owned(),
            )),
            _ => Ok(()),
        }
    }

    /// The key usage and extended key usage of a certificate for `key`.
    pub(crate) fn usage(&self, key: KeyKind) -> Usage {
        let family = Family::of(KeyAlgorithm::of(key));
        let key_usage = self
            .key_usage
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, usages)| usages.iter().map(|u| u.purpose()).collect())
            .unwrap_or_default();
        Usage {
            key: key_usage,
            extended: self
                .extended_key_usage
                .iter()
                .map(|u| u.purpose())
                .collect(),
        }
    }

    /// An [`Error::ProfileRefused`] by `rule`.
    fn refuse(&self, rule: &'static str, reason: String) -> Error {
        Error::ProfileRefused {
            profile: self.name.clone(),
            rule,
            reason,
        }
    }
}

/// The lifetime caps of the protection levels, in days, level 1 first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Levels([u32; 4]);

/// Every profile and the protection levels' caps: what the CA issues by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiles {
    profiles: Vec<Profile>,
    levels: Levels,
}

/// Where a validity cap comes from, for the refusal that names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// The protection level of a system; `None` for persons.
    pub level: Option<ProtectionLevel>,
    /// The server's `certificates.max_validity`.
    pub server: Duration,
}

impl Profiles {
    /// The built-in profiles (`policies/profiles/`, compiled in).
    pub fn builtin() -> Result<Profiles, Error> {
        Self::parse(
            BUILTIN
                .iter()
                .map(|(file, text)| ((*file).to_owned(), (*text).to_owned())),
        )
    }

    /// The profiles in `dir`: every `*.toml` file is a profile named after it, but
    /// `levels.toml`, which must be there; so must `system-identity.toml`.
    pub fn from_dir(dir: &Path) -> Result<Profiles, Error> {
        let unreadable = |file: &Path, e: std::io::Error| Error::ProfileFile {
            file: file.display().to_string(),
            reason: format!("cannot read it: {e}"),
        };
        let entries = std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| unreadable(dir, e))?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e))?;
                files.push((path.display().to_string(), text));
            }
        }
        files.sort();
        Self::parse(files)
    }

    /// The profiles of `files`: (file name, text) pairs.
    fn parse(files: impl IntoIterator<Item = (String, String)>) -> Result<Profiles, Error> {
        let mut profiles = Vec::new();
        let mut levels = None;
        for (file, text) in files {
            let stem = stem(&file);
            if stem == "levels" {
                levels = Some(parse_levels(&file, &text)?);
            } else {
                profiles.push(parse_profile(&file, stem, &text)?);
            }
        }
        let levels = levels.ok_or_else(|| Error::ProfileFile {
            file: LEVELS_FILE.to_owned(),
            reason: "missing: the protection levels' caps are needed".to_owned(),
        })?;
        if !profiles.iter().any(|p| p.name == SYSTEM_IDENTITY) {
            return Err(Error::ProfileFile {
                file: format!("{SYSTEM_IDENTITY}.toml"),
                reason: "missing: enrollment and renewal issue this profile".to_owned(),
            });
        }
        Ok(Profiles { profiles, levels })
    }

    /// The profile named `name`; [`Error::InvalidArgument`] on `profile` if there is none.
    pub fn get(&self, name: &str) -> Result<&Profile, Error> {
        self.profiles
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                Error::invalid(
                    "profile",
                    format!(
                        "no profile {name:?} (profiles: {})",
                        self.names().join(", ")
                    ),
                )
            })
    }

    /// The names of every profile.
    pub fn names(&self) -> Vec<&str> {
        self.profiles.iter().map(|p| p.name.as_str()).collect()
    }

    /// The lifetime cap of a system at `level`.
    pub fn level_cap(&self, level: ProtectionLevel) -> Duration {
        let index = usize::from(level.get().saturating_sub(1));
        DAY * self.levels.0.get(index).copied().unwrap_or(1)
    }

    /// The lifetime of a certificate of `profile`: `requested_days` (0: the longest allowed),
    /// which must be within the profile's cap, the holder's level's and the server's.
    pub(crate) fn validity(
        &self,
        profile: &Profile,
        caps: Caps,
        requested_days: u32,
    ) -> Result<Duration, Error> {
        let mut longest = profile.max_validity().min(caps.server);
        if let Some(level) = caps.level {
            longest = longest.min(self.level_cap(level));
        }
        if requested_days == 0 {
            return Ok(longest);
        }
        let requested = DAY * requested_days;
        let days = |d: Duration| d.as_secs() / DAY.as_secs();
        let exceeded = |what: String| {
            Err(profile.refuse(
                "max_validity_days",
                format!("validity {requested_days} days exceeds {what}"),
            ))
        };
        if requested > profile.max_validity() {
            return exceeded(format!("the profile's {} days", profile.max_validity_days));
        }
        if let Some(level) = caps.level.filter(|l| requested > self.level_cap(*l)) {
            let cap = days(self.level_cap(level));
            return exceeded(format!(
                "protection level {level}'s {cap} days (levels.toml)"
            ));
        }
        if requested > caps.server {
            let cap = days(caps.server);
            return exceeded(format!(
                "the server's certificates.max_validity of {cap} days"
            ));
        }
        Ok(requested)
    }
}

/// The file name without directory and `.toml`.
fn stem(file: &str) -> &str {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.strip_suffix(".toml").unwrap_or(name)
}

/// An [`Error::ProfileFile`] for `file`, naming `key`.
fn bad(file: &str, key: &str, reason: impl fmt::Display) -> Error {
    Error::ProfileFile {
        file: file.to_owned(),
        reason: format!("{key}: {reason}"),
    }
}

fn parse_levels(file: &str, text: &str) -> Result<Levels, Error> {
    let parsed: LevelsFile = toml::from_str(text).map_err(|e| Error::ProfileFile {
        file: file.to_owned(),
        reason: e.to_string(),
    })?;
    let mut days = [0u32; 4];
    for (name, value) in &parsed.max_validity_days {
        let key = format!("max_validity_days.{name}");
        let slot = match name.as_str() {
            "1" | "2" | "3" | "4" => name.parse::<usize>().ok().and_then(|l| days.get_mut(l - 1)),
            _ => None,
        };
        let slot = slot.ok_or_else(|| bad(file, &key, "levels are 1 to 4"))?;
        *slot = check_days(file, &key, *value)?;
    }
    match days.iter().position(|d| *d == 0) {
        Some(missing) => Err(bad(
            file,
            &format!("max_validity_days.{}", missing + 1),
            "missing",
        )),
        None => Ok(Levels(days)),
    }
}

fn check_days(file: &str, key: &str, days: u32) -> Result<u32, Error> {
    match (1..=MAX_DAYS).contains(&days) {
        true => Ok(days),
        false => Err(bad(
            file,
            key,
            format!("{days} is not 1 to {MAX_DAYS} days"),
        )),
    }
}

fn parse_profile(file: &str, name: &str, text: &str) -> Result<Profile, Error> {
    check_name(file, name)?;
    let parsed: ProfileFile = toml::from_str(text).map_err(|e| Error::ProfileFile {
        file: file.to_owned(),
        reason: e.to_string(),
    })?;
    if parsed.holders.is_empty() {
        return Err(bad(file, "holders", "name at least one: system, person"));
    }
    let algorithms = parsed.keys.algorithms.clone();
    if algorithms.is_empty() {
        return Err(bad(file, "keys.algorithms", "allow at least one"));
    }
    if algorithms.contains(&KeyAlgorithm::Sm2) {
        return Err(bad(
            file,
            "keys.algorithms",
            "sm2 keys are certified by the national CAs, through national-suite profiles, \
             which this version does not issue yet",
        ));
    }
    let rsa_bits = rsa_bits(file, &parsed.keys)?;
    let key_usage = key_usage(file, &algorithms, parsed.key_usage)?;
    if parsed.names.dns_required && parsed.names.dns == DnsRule::None {
        return Err(bad(
            file,
            "names.dns_required",
            "needs names.dns = \"registered\"",
        ));
    }
    Ok(Profile {
        name: name.to_owned(),
        description: parsed.description,
        holders: parsed.holders,
        max_validity_days: check_days(file, "max_validity_days", parsed.max_validity_days)?,
        extended_key_usage: parsed.extended_key_usage,
        algorithms,
        rsa_bits,
        key_usage,
        dns: parsed.names.dns,
        dns_required: parsed.names.dns_required,
    })
}

/// A profile's name is its file's: lowercase letters, digits and `-`.
fn check_name(file: &str, name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
    match valid {
        true => Ok(()),
        false => Err(Error::ProfileFile {
            file: file.to_owned(),
            reason: "a profile's file name is its name: lowercase a-z, 0-9 and '-'".to_owned(),
        }),
    }
}

/// The RSA sizes allowed: required when `rsa` is, within 2048 to 8192 bits.
fn rsa_bits(file: &str, keys: &KeysFile) -> Result<(u32, u32), Error> {
    if !keys.algorithms.contains(&KeyAlgorithm::Rsa) {
        return Ok(RSA_BITS);
    }
    let min = keys
        .rsa_min_bits
        .ok_or_else(|| bad(file, "keys.rsa_min_bits", "needed when rsa is allowed"))?;
    let max = keys
        .rsa_max_bits
        .ok_or_else(|| bad(file, "keys.rsa_max_bits", "needed when rsa is allowed"))?;
    if min < RSA_BITS.0 || max > RSA_BITS.1 || min > max {
        return Err(bad(
            file,
            "keys.rsa_min_bits",
            format!("{min} to {max} bits is not within 2048 to 8192 bits"),
        ));
    }
    Ok((min, max))
}

/// The key usage of every family the profile's algorithms allow, each possible for it.
fn key_usage(
    file: &str,
    algorithms: &[KeyAlgorithm],
    stated: KeyUsageFile,
) -> Result<Vec<(Family, Vec<KeyUsage>)>, Error> {
    let stated = [
        (Family::Ec, stated.ec),
        (Family::Ed25519, stated.ed25519),
        (Family::Rsa, stated.rsa),
    ];
    let mut usages = Vec::new();
    for (family, list) in stated {
        let key = format!("key_usage.{}", family.name());
        let allowed = algorithms.iter().any(|a| Family::of(*a) == family);
        let list = match (allowed, list) {
            (false, _) => continue,
            (true, None) => return Err(bad(file, &key, "needed: keys.algorithms allows it")),
            (true, Some(list)) if list.is_empty() => {
                return Err(bad(file, &key, "name at least one usage"));
            }
            (true, Some(list)) => list,
        };
        if let Some(impossible) = list.iter().find(|u| !u.possible(family)) {
            return Err(bad(
                file,
                &key,
                format!("{impossible:?} is impossible with this key"),
            ));
        }
        usages.push((family, list));
    }
    Ok(usages)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn files(changed: &str, text: &str) -> Vec<(String, String)> {
        BUILTIN
            .iter()
            .map(|(file, builtin)| {
                let text = if *file == changed { text } else { builtin };
                ((*file).to_owned(), text.to_owned())
            })
            .collect()
    }

    fn refusal(changed: &str, text: &str) -> String {
        match Profiles::parse(files(changed, text)) {
            Err(Error::ProfileFile { file, reason }) => format!("{file}: {reason}"),
            other => panic!("{changed} was accepted: {other:?}"),
        }
    }

    #[test]
    fn the_builtin_profiles_parse() {
        let profiles = Profiles::builtin().unwrap();
        assert_eq!(
            profiles.names(),
            [
                "system-identity",
                "tls-server",
                "tls-client",
                "person",
                "document-signing",
                "encryption"
            ]
        );
        let level = |l| ProtectionLevel::try_from(l).unwrap();
        let days: Vec<u64> = (1..=4)
            .map(|l| profiles.level_cap(level(l)).as_secs() / 86_400)
            .collect();
        assert_eq!(days, [397, 365, 180, 90]);
    }

    #[test]
    fn bad_files_are_named_with_their_key() {
        let base = include_str!("../../policies/profiles/tls-client.toml");
        let cases = [
            (base.replace("[names]", "colour = 1\n[names]"), "colour"),
            (base.replace("\"client-auth\"", "\"any\""), "any"),
            (
                base.replace("max_validity_days = 397", "max_validity_days = 0"),
                "max_validity_days",
            ),
            (
                base.replace("rsa_min_bits = 2048", "rsa_min_bits = 1024"),
                "keys.rsa_min_bits",
            ),
            (
                base.replace("rsa = [\"digital-signature\"]", ""),
                "key_usage.rsa",
            ),
            (
                base.replace(
                    "ec = [\"digital-signature\"]",
                    "ec = [\"key-encipherment\"]",
                ),
                "key_usage.ec",
            ),
            (
                base.replace("dns_required = false", "dns_required = true"),
                "names.dns_required",
            ),
            (
                base.replace("holders = [\"system\"]", "holders = []"),
                "holders",
            ),
            (
                base.replace("algorithms = [", "algorithms = [\"sm2\", "),
                "sm2 keys are certified by the national CAs",
            ),
            (
                base.replace(
                    "\"digital-signature\"]\ned25519",
                    "\"key-cert-sign\"]\ned25519",
                ),
                "key-cert-sign",
            ),
        ];
        for (text, key) in cases {
            let error = refusal("tls-client.toml", &text);
            assert!(error.starts_with("tls-client.toml: "), "{error}");
            assert!(error.contains(key), "{key}: {error}");
        }
        let levels = refusal(
            "levels.toml",
            "[max_validity_days]\n1 = 397\n2 = 365\n3 = 180\n",
        );
        assert!(levels.contains("max_validity_days.4"), "{levels}");
        let levels = refusal(
            "levels.toml",
            "[max_validity_days]\n1 = 1\n2 = 1\n3 = 1\n4 = 1\n5 = 1\n",
        );
        assert!(levels.contains("max_validity_days.5"), "{levels}");
    }

    #[test]
    fn a_directory_without_the_system_identity_profile_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (file, text) in BUILTIN.iter().filter(|(f, _)| *f != "system-identity.toml") {
            std::fs::write(dir.path().join(file), text).unwrap();
        }
        let error = Profiles::from_dir(dir.path()).unwrap_err().to_string();
        assert!(error.contains("system-identity.toml"), "{error}");
        std::fs::write(dir.path().join("system-identity.toml"), BUILTIN[0].1).unwrap();
        std::fs::write(dir.path().join("Bad Name.toml"), BUILTIN[1].1).unwrap();
        let error = Profiles::from_dir(dir.path()).unwrap_err().to_string();
        assert!(error.contains("Bad Name.toml"), "{error}");
    }

    #[test]
    fn refusals_name_the_rule() {
        let profiles = Profiles::builtin().unwrap();
        let signing = profiles.get("document-signing").unwrap();
        let error = signing
            .check_key(KeyKind::EcdsaP384)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "profile document-signing refused the request (keys.algorithms): key ecdsa-p384 not \
             allowed (allowed: ecdsa-p256, ed25519, rsa)"
        );
        let error = signing.check_key(KeyKind::Rsa { bits: 2048 }).unwrap_err();
        assert!(error.to_string().contains("keys.rsa_min_bits"), "{error}");
        assert!(signing.check_holder(HolderKind::System).is_ok());
        let person = profiles.get("person").unwrap();
        assert!(person.check_holder(HolderKind::System).is_err());
        assert!(person.check_dns(1).is_err());
        let server = profiles.get("tls-server").unwrap();
        assert!(
            server
                .check_dns(0)
                .unwrap_err()
                .to_string()
                .contains("names.dns_required")
        );
        assert!(
            profiles
                .get("nope")
                .unwrap_err()
                .to_string()
                .contains("tls-server")
        );
    }

    #[test]
    fn validity_is_capped_by_profile_level_and_server() {
        let profiles = Profiles::builtin().unwrap();
        let server = profiles.get("tls-server").unwrap();
        let level = |l| Some(ProtectionLevel::try_from(l).unwrap());
        let caps = |l, days| Caps {
            level: l,
            server: DAY * days,
        };
        let days = |d: Duration| d.as_secs() / 86_400;
        assert_eq!(
            days(profiles.validity(server, caps(level(1), 397), 0).unwrap()),
            397
        );
        assert_eq!(
            days(profiles.validity(server, caps(level(3), 397), 0).unwrap()),
            180
        );
        assert_eq!(
            days(profiles.validity(server, caps(None, 30), 0).unwrap()),
            30
        );
        assert_eq!(
            days(profiles.validity(server, caps(level(4), 397), 7).unwrap()),
            7
        );
        for (level, server_days, requested, says) in [
            (level(1), 397, 800, "the profile's 397 days"),
            (level(3), 397, 200, "protection level 3's 180 days"),
            (None, 30, 31, "certificates.max_validity of 30 days"),
        ] {
            let error = profiles
                .validity(server, caps(level, server_days), requested)
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{error}");
            assert!(error.contains("max_validity_days"), "{error}");
        }
    }

    #[test]
    fn usage_follows_the_key_family() {
        let profiles = Profiles::builtin().unwrap();
        let encryption = profiles.get("encryption").unwrap();
        assert_eq!(
            encryption.usage(KeyKind::EcdsaP256).key,
            [KeyUsagePurpose::KeyAgreement]
        );
        assert_eq!(
            encryption.usage(KeyKind::Rsa { bits: 3072 }).key,
            [KeyUsagePurpose::KeyEncipherment]
        );
        let identity = profiles.get(SYSTEM_IDENTITY).unwrap();
        let usage = identity.usage(KeyKind::Rsa { bits: 2048 });
        assert_eq!(
            usage.key,
            [
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment
            ]
        );
        assert_eq!(
            usage.extended,
            [
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth
            ]
        );
    }
}
