//! Public value types of the key-management centre.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};

use crate::{Error, Suite};

/// A key's identifier: `k-` followed by 32 lower-case hex characters (128 random bits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Parses `k-` followed by exactly 32 lower-case hex characters.
    pub fn parse(text: &str) -> Result<KeyId, Error> {
        if !is_random_id("k-", text) {
            return Err(Error::InvalidKeyId {
                given: text.chars().take(64).collect(),
            });
        }
        Ok(KeyId(text.to_owned()))
    }

    /// A fresh random identifier (128 bits from the system's CSPRNG).
    pub fn generate() -> Result<KeyId, Error> {
        random_id("k-", "random key id").map(KeyId)
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        KeyId::parse(text)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A wrapped-key bundle's identifier: `b-` followed by 32 lower-case hex characters (128 random
/// bits). A centre imports each bundle id at most once.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId(String);

impl BundleId {
    /// Parses `b-` followed by exactly 32 lower-case hex characters.
    pub fn parse(text: &str) -> Result<BundleId, Error> {
        if !is_random_id("b-", text) {
            return Err(Error::InvalidArgument {
                field: "bundle_id",
                reason: format!(
                    "{:?} is not b- followed by 32 lower-case hex characters",
                    text.chars().take(64).collect::<String>()
                ),
            });
        }
        Ok(BundleId(text.to_owned()))
    }

    /// A fresh random identifier (128 bits from the system's CSPRNG).
    pub fn generate() -> Result<BundleId, Error> {
        random_id("b-", "random bundle id").map(BundleId)
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BundleId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        BundleId::parse(text)
    }
}

impl fmt::Debug for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True when `text` is `prefix` followed by exactly 32 lower-case hex characters.
fn is_random_id(prefix: &str, text: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `prefix` followed by 128 random bits in hex.
pub(crate) fn random_id(prefix: &str, context: &'static str) -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Crypto { context })?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

/// Key algorithms the centre generates and holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// AES-256 in GCM mode, 96-bit random nonces.
    Aes256Gcm,
    /// ECDSA on P-256 with SHA-256; signatures are DER `ECDSA-Sig-Value`.
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384; signatures are DER `ECDSA-Sig-Value`.
    EcdsaP384Sha384,
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// SM4 in GCM mode (RFC 8998), 96-bit random nonces.
    Sm4Gcm,
    /// SM2 signatures with SM3 (GB/T 32918.2) and the default ID `1234567812345678`;
    /// signatures are DER `SEQUENCE { r, s }`.
    Sm2Sm3,
    /// SM2 public-key encryption (GB/T 32918.4); ciphertexts are DER C1C3C2 (GM/T 0009).
    Sm2Encrypt,
}

impl Algorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Algorithm; 7] = [
        Algorithm::Aes256Gcm,
        Algorithm::EcdsaP256Sha256,
        Algorithm::EcdsaP384Sha384,
        Algorithm::Ed25519,
        Algorithm::Sm4Gcm,
        Algorithm::Sm2Sm3,
        Algorithm::Sm2Encrypt,
    ];

    /// The algorithm's name: `aes-256-gcm`, `ecdsa-p256-sha256`, `ecdsa-p384-sha384`,
    /// `ed25519`, `sm4-gcm`, `sm2-sm3`, `sm2-encrypt`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "aes-256-gcm",
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Algorithm::EcdsaP384Sha384 => "ecdsa-p384-sha384",
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Sm4Gcm => "sm4-gcm",
            Algorithm::Sm2Sm3 => "sm2-sm3",
            Algorithm::Sm2Encrypt => "sm2-encrypt",
        }
    }

    /// The suite it belongs to.
    pub fn suite(self) -> Suite {
        match self {
            Algorithm::Aes256Gcm
            | Algorithm::EcdsaP256Sha256
            | Algorithm::EcdsaP384Sha384
            | Algorithm::Ed25519 => Suite::International,
            Algorithm::Sm4Gcm | Algorithm::Sm2Sm3 | Algorithm::Sm2Encrypt => Suite::National,
        }
    }

    /// True for the symmetric (GCM) algorithms: AES-256-GCM and SM4-GCM.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Algorithm::Aes256Gcm | Algorithm::Sm4Gcm)
    }

    /// True for the signature algorithms.
    pub fn signs(self) -> bool {
        matches!(
            self,
            Algorithm::EcdsaP256Sha256
                | Algorithm::EcdsaP384Sha384
                | Algorithm::Ed25519
                | Algorithm::Sm2Sm3
        )
    }

    /// True for the algorithms that encrypt and decrypt: the symmetric ones and SM2 encryption.
    pub fn encrypts(self) -> bool {
        self.is_symmetric() || self == Algorithm::Sm2Encrypt
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == text)
            .ok_or_else(|| Error::InvalidArgument {
                field: "algorithm",
                reason: format!(
                    "unknown algorithm {text:?}: expected one of {}",
                    Algorithm::ALL.map(Algorithm::name).join(", ")
                ),
            })
    }
}

/// NIST SP 800-57 part 1 key states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    PreActive,
    Active,
    Suspended,
    Deactivated,
    Compromised,
    Destroyed,
}

impl KeyState {
    /// Every state, in lifecycle order.
    pub const ALL: [KeyState; 6] = [
        KeyState::PreActive,
        KeyState::Active,
        KeyState::Suspended,
        KeyState::Deactivated,
        KeyState::Compromised,
        KeyState::Destroyed,
    ];

    /// The state's name: `pre-active`, `active`, `suspended`, `deactivated`, `compromised`,
    /// `destroyed`.
    pub fn name(self) -> &'static str {
        match self {
            KeyState::PreActive => "pre-active",
            KeyState::Active => "active",
            KeyState::Suspended => "suspended",
            KeyState::Deactivated => "deactivated",
            KeyState::Compromised => "compromised",
            KeyState::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyState {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        KeyState::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| Error::InvalidArgument {
                field: "state",
                reason: format!("unknown key state {text:?}"),
            })
    }
}

/// A state change an administrator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateChange {
    /// Pre-active → active.
    Activate,
    /// Active → suspended.
    Suspend,
    /// Suspended → active.
    Resume,
    /// Pre-active, active or suspended → deactivated (decrypt/verify only).
    Deactivate,
    /// Any state but destroyed → compromised.
    MarkCompromised,
}

impl StateChange {
    /// Every state change.
    pub const ALL: [StateChange; 5] = [
        StateChange::Activate,
        StateChange::Suspend,
        StateChange::Resume,
        StateChange::Deactivate,
        StateChange::MarkCompromised,
    ];

    /// The change's name: `activate`, `suspend`, `resume`, `deactivate`, `mark-compromised`.
    pub fn name(self) -> &'static str {
        match self {
            StateChange::Activate => "activate",
            StateChange::Suspend => "suspend",
            StateChange::Resume => "resume",
            StateChange::Deactivate => "deactivate",
            StateChange::MarkCompromised => "mark-compromised",
        }
    }
}

impl fmt::Display for StateChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StateChange {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        StateChange::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| Error::InvalidArgument {
                field: "change",
                reason: format!("unknown state change {text:?}"),
            })
    }
}

/// A clock, injected so lifecycle rules (token expiry, destruction dates) can be tested.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What to create.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub algorithm: Algorithm,
    /// May be exported wrapped to a recipient. Fixed at creation.
    pub exportable: bool,
    /// Identity allowed to use the key (a SPIFFE URI); the server fills in the caller.
    pub owner: String,
    /// The owner's enrollment generation (0 for persons): a re-enrolled system reaches keys of
    /// earlier generations only as its approved re-enrollment allows.
    pub owner_generation: u32,
    pub description: String,
    /// Start in the pre-active state instead of active.
    pub pre_active: bool,
    /// A key of govtrust itself (CA keys, the audit log key). The server's policy point refuses
    /// every use and state change of internal keys through the API; only the server's own
    /// domains use them. Here they obey the same lifecycle rules as every other key.
    pub internal: bool,
}

/// Public metadata of one key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u32,
    pub created_at: SystemTime,
}

/// Public metadata of a key. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: KeyId,
    pub algorithm: Algorithm,
    pub state: KeyState,
    pub primary_version: u32,
    pub versions: Vec<VersionInfo>,
    pub exportable: bool,
    pub owner: String,
    /// The owner's enrollment generation when the key was created.
    pub owner_generation: u32,
    pub description: String,
    pub internal: bool,
    pub created_at: SystemTime,
    /// The date the key will be destroyed on, while a destruction is scheduled.
    pub destruction_scheduled_at: Option<SystemTime>,
    /// When the key was destroyed (tombstones only).
    pub destroyed_at: Option<SystemTime>,
    /// Who generated or imported the key here (empty for keys created before this was kept).
    pub created_by: String,
    /// Where the material comes from.
    pub origin: KeyOrigin,
}

/// Where a key's material comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Generated by this centre.
    Generated,
    /// Imported from a wrapped-key bundle with these terms, by [`KeyInfo::created_by`] at
    /// [`KeyInfo::created_at`].
    Imported(Box<BundleTerms>),
    /// Generated by this centre as the encryption key pair of its owner's dual certificate and
    /// escrowed here (see [`Kms::escrow_encryption_key`](crate::Kms::escrow_encryption_key)).
    Escrowed,
}

/// A self-describing ciphertext and the key version that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    pub ciphertext: Vec<u8>,
    pub key_id: KeyId,
    pub version: u32,
}

/// A decrypted plaintext. Zeroized on drop; `Debug` does not print it.
pub struct Decrypted {
    pub plaintext: zeroize::Zeroizing<Vec<u8>>,
    pub key_id: KeyId,
    pub version: u32,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field(
                "plaintext",
                &format_args!("<{} bytes redacted>", self.plaintext.len()),
            )
            .field("key_id", &self.key_id)
            .field("version", &self.version)
            .finish()
    }
}

/// A fresh data key for envelope encryption: the plaintext (zeroized on drop, redacted in
/// `Debug`) and the same key encrypted under a kms key.
pub struct DataKey {
    pub plaintext: zeroize::Zeroizing<Vec<u8>>,
    pub encrypted: Encrypted,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("encrypted", &self.encrypted)
            .finish()
    }
}

/// A signature and the key version that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub signature: Vec<u8>,
    pub key_id: KeyId,
    pub version: u32,
}

/// A public key as SubjectPublicKeyInfo DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub spki_der: Vec<u8>,
    pub algorithm: Algorithm,
    pub version: u32,
}

/// What a wrapped-key bundle says about itself. Every field is bound into the HPKE `info` the
/// material is wrapped with (see [`BundleTerms::hpke_info`]), so a bundle with any field altered
/// does not unwrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleTerms {
    pub id: BundleId,
    /// Deployment id of the centre that exported it.
    pub source_centre: String,
    pub source_key: KeyId,
    pub source_version: u32,
    pub algorithm: Algorithm,
    /// Identity that exported it.
    pub exporter: String,
    /// The one identity (a SPIFFE URI) that may import it; it owns the imported key.
    pub recipient: String,
    /// Whether the imported key may be exported again. An import may narrow this, never widen.
    pub exportable: bool,
    /// How many encryptions with random nonces a copy imported into another centre may make:
    /// set aside from the source version's budget at export (see [`crate::EncryptionLimit`]),
    /// so the source and its copies together stay within one key's limit. 0 for signing keys
    /// and for bundles to the exporting centre itself, whose copies count against the source.
    pub encryptions: u64,
    /// When it was exported (whole milliseconds).
    pub exported_at: SystemTime,
    /// Imports after this instant are refused (whole milliseconds).
    pub expires_at: SystemTime,
}

impl BundleTerms {
    /// The HPKE `info` these terms bind: see [`crate::transfer`] for the encoding.
    pub fn hpke_info(&self) -> Vec<u8> {
        crate::transfer::info(self)
    }
}

/// What to export and to whom.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// Version to export; `None`: the primary version.
    pub version: Option<u32>,
    /// The one identity (a SPIFFE URI) that may import the bundle.
    pub recipient: String,
    /// X25519 public key the material is wrapped to: the wrapping key of the recipient's centre.
    pub recipient_public_key: Vec<u8>,
    /// Whether the imported key may be exported again.
    pub exportable: bool,
    /// How long the bundle can be imported; `None`: 24 hours. At most 30 days.
    pub valid_for: Option<Duration>,
    /// For an AES key wrapped to another centre: how many of the source version's encryptions
    /// the copy gets (see [`BundleTerms::encryptions`]); `None`: half of those left.
    pub encryptions: Option<u64>,
}

/// A key version wrapped to a recipient with HPKE, and the terms bound into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub encapsulated_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub terms: BundleTerms,
}

/// A wrapped key to import. The key is owned by the bundle's recipient, who alone may import
/// it.
#[derive(Debug, Clone)]
pub struct ImportSpec {
    pub encapsulated_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub terms: BundleTerms,
    /// Make the imported key exportable; refused when the bundle does not allow it.
    pub exportable: bool,
    pub description: String,
    /// The importer's (the recipient's, who owns the copy) enrollment generation.
    pub owner_generation: u32,
}

/// A bundle exported from a key, as the exporting centre recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleExport {
    pub terms: BundleTerms,
    /// Set once the bundle was imported into this same centre.
    pub imported: Option<BundleImport>,
}

/// Where and when a bundle was imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleImport {
    /// The key it became.
    pub key: KeyId,
    pub by: String,
    pub at: SystemTime,
}

/// Where the seal stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealStatus {
    pub sealed: bool,
    pub threshold: u8,
    pub shares_total: u8,
    /// Valid shares received so far in the current unseal attempt.
    pub progress: u8,
    pub deployment_id: String,
    /// An earlier unseal attempt expired (its shares were forgotten) since the last unseal
    /// answer: the custodians must give their shares again.
    pub progress_reset: bool,
    /// When the unseal attempt in progress expires, if there is one.
    pub attempt_expires_at: Option<SystemTime>,
}

/// One custodian's share, as the text of the file handed to them. Redacted in `Debug`.
pub struct ShareFile {
    /// 1-based share index.
    pub index: u8,
    /// The file's contents.
    pub contents: zeroize::Zeroizing<String>,
}

impl fmt::Debug for ShareFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareFile")
            .field("index", &self.index)
            .field("contents", &"<redacted>")
            .finish()
    }
}
