//! Entry points for the fuzz targets in `fuzz/` (outside the workspace), the property tests and
//! the seed corpora. Not part of the API: hidden from the docs, no stability promise.
//!
//! Each function runs one parser of untrusted input on bytes and returns its `Result`, against a
//! fixture (a seal configuration, an AES key, the centre's wrapping key). The fixture keys are
//! public constants: never use them for anything but fuzzing. [`seeds`] makes real inputs for
//! the corpora with the same code paths the centre uses.

use std::sync::OnceLock;

use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

use crate::cipher::Aead;
use crate::master::MasterKey;
use crate::material::{self, Operator};
use crate::seal::SealConfig;
use crate::transfer::{self, PUBLIC_KEY_LEN, WrappingKey};
use crate::{Algorithm, BundleId, BundleTerms, Error, KeyId, cipher, shares};

/// The fixture deployment: 3 of 5 shares.
const DEPLOYMENT: &str = "d-f0220000000000000000000000000000";
const THRESHOLD: u8 = 3;
const SHARES: u8 = 5;
/// The key id every fixture ciphertext names.
pub const KEY_ID: &str = "k-f0220000000000000000000000000000";
/// Public fixture key bytes (AES key, X25519 private key).
const FIXTURE_KEY: [u8; 32] = [0x42; 32];
/// Length of an encapsulated X25519 key, as the bundle layout's length byte.
const ENC_LEN: u8 = 32;
const _: () = assert!(ENC_LEN as usize == PUBLIC_KEY_LEN);

/// One input for a seed corpus: the fuzz target it feeds and a file name.
pub struct Seed {
    /// The fuzz target: `share_file`, `ciphertext`, `wrapped_key` or `unwrapped_material`.
    pub target: &'static str,
    /// A file name for it, unique within the target.
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

/// Parses a custodian share file against the fixture deployment; the share's index.
///
/// The fixture's share commitments are dealt afresh in each process, so no file from elsewhere
/// (a seed) passes the last check; every check before it is reached.
pub fn share_file(file: &[u8]) -> Result<u8, Error> {
    shares::parse(file, &fixture()?.config).map(|share| share.index)
}

/// [`share_file`] after replacing the checksum line (the seventh) with the right checksum, so
/// mutations get past the checksum to the field checks behind it.
pub fn share_file_resealed(file: &[u8]) -> Result<u8, Error> {
    share_file(&reseal(file))
}

/// Reads a ciphertext envelope's header and opens it with the fixture key and empty AAD; the
/// plaintext length.
pub fn ciphertext(bytes: &[u8]) -> Result<usize, Error> {
    let header = cipher::parse(bytes)?;
    let plaintext = cipher::open(Aead::Aes(&fixture()?.aes), &header, bytes, b"")?;
    Ok(plaintext.len())
}

/// Unwraps a wrapped key with the fixture wrapping key and loads it as an import would.
///
/// Layout: algorithm (`u8`, an index into [`Algorithm::ALL`]), encapsulated key length (`u8`),
/// encapsulated key, ciphertext.
pub fn wrapped_key(bytes: &[u8]) -> Result<Algorithm, Error> {
    let (algorithm, rest) = algorithm(bytes)?;
    let (&enc_len, rest) = rest.split_first().ok_or_else(|| short("the length"))?;
    let (encapsulated_key, ciphertext) = rest
        .split_at_checked(usize::from(enc_len))
        .ok_or_else(|| short("the encapsulated key"))?;
    let material =
        fixture()?
            .wrapping
            .unwrap(&fixture_terms(algorithm)?, encapsulated_key, ciphertext)?;
    key_material(algorithm, &material)
}

/// Loads unwrapped key material as an import does: anyone may wrap any bytes to the centre's
/// wrapping key. Layout: algorithm (`u8`, an index into [`Algorithm::ALL`]), material.
pub fn unwrapped_material(bytes: &[u8]) -> Result<Algorithm, Error> {
    let (algorithm, material) = algorithm(bytes)?;
    key_material(algorithm, material)
}

/// Real inputs for every target: the fixture's share files, ciphertexts under the fixture key,
/// keys of every algorithm wrapped to the fixture wrapping key, and their material.
pub fn seeds() -> Result<Vec<Seed>, Error> {
    let fixture = fixture()?;
    let mut seeds: Vec<Seed> = shares::render_all(&fixture.config, &fixture.shares)
        .into_iter()
        .map(|file| seed("share_file", format!("share-{}", file.index), file.contents))
        .collect();
    let id = fixture_key_id()?;
    for (name, plaintext) in [("empty", &b""[..]), ("text", b"a ciphertext seed")] {
        let bytes = cipher::seal(Aead::Aes(&fixture.aes), &id, 1, plaintext, b"")?;
        seeds.push(seed("ciphertext", format!("ciphertext-{name}"), bytes));
    }
    let rng = SystemRandom::new();
    for (position, algorithm) in (0u8..).zip(Algorithm::ALL) {
        let key = material::generate(algorithm, &rng)?;
        let (enc, ct) =
            transfer::wrap(fixture.wrapping.public(), &fixture_terms(algorithm)?, &key)?;
        let bundle = [&[position, ENC_LEN][..], &enc, &ct].concat();
        seeds.push(seed("wrapped_key", algorithm.name().into(), bundle));
        let material = [&[position][..], &key].concat();
        seeds.push(seed(
            "unwrapped_material",
            algorithm.name().into(),
            material,
        ));
    }
    Ok(seeds)
}

/// The fixture's share files, in index order, for tests.
pub fn share_files() -> Result<Vec<Zeroizing<String>>, Error> {
    let fixture = fixture()?;
    let files = shares::render_all(&fixture.config, &fixture.shares);
    Ok(files.into_iter().map(|file| file.contents).collect())
}

/// An AES-256-GCM key wrapped to the fixture wrapping key, in [`wrapped_key`]'s layout.
pub fn wrap_aes_key(key: &[u8]) -> Result<Vec<u8>, Error> {
    let (enc, ct) = transfer::wrap(
        fixture()?.wrapping.public(),
        &fixture_terms(Algorithm::Aes256Gcm)?,
        key,
    )?;
    Ok([&[0, ENC_LEN][..], &enc, &ct].concat())
}

struct Fixture {
    config: SealConfig,
    shares: Vec<shares::Share>,
    aes: LessSafeKey,
    wrapping: WrappingKey,
}

/// The process's fixture, made once (`None` if ring could not make it).
fn fixture() -> Result<&'static Fixture, Error> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| make_fixture().ok())
        .as_ref()
        .ok_or_else(broken)
}

fn make_fixture() -> Result<Fixture, Error> {
    let master = MasterKey::generate()?;
    let dealt = shares::deal(&master, THRESHOLD, SHARES)?;
    let commitments = shares::commitments(DEPLOYMENT, &dealt);
    let check_value = master.check_value(DEPLOYMENT)?;
    let config = SealConfig::new(DEPLOYMENT.into(), THRESHOLD, check_value, commitments);
    let aes = UnboundKey::new(&AES_256_GCM, &FIXTURE_KEY).map_err(|_| broken())?;
    let wrapping = WrappingKey::from_private(&FIXTURE_KEY).ok_or_else(broken)?;
    Ok(Fixture {
        config,
        shares: dealt,
        aes: LessSafeKey::new(aes),
        wrapping,
    })
}

fn broken() -> Error {
    Error::Crypto {
        context: "making the fuzzing fixture",
    }
}

fn fixture_key_id() -> Result<KeyId, Error> {
    KeyId::parse(KEY_ID)
}

/// The fixed bundle terms every fuzzed bundle is wrapped under: the target fuzzes the HPKE
/// envelope and the material, the terms are bound into its `info`.
fn fixture_terms(algorithm: Algorithm) -> Result<BundleTerms, Error> {
    let at = std::time::SystemTime::UNIX_EPOCH;
    Ok(BundleTerms {
        id: BundleId::parse("b-0123456789abcdef0123456789abcdef")?,
        source_centre: "d-fuzz".into(),
        source_key: fixture_key_id()?,
        source_version: 1,
        algorithm,
        exporter: "spiffe://gov.example/person/security-admin".into(),
        recipient: "spiffe://gov.example/org/fuzz/sys/recipient".into(),
        exportable: false,
        encryptions: 0,
        exported_at: at,
        expires_at: at,
    })
}

/// The file with its seventh line replaced by the checksum of the six before it; unchanged if
/// it is not UTF-8 or has fewer lines.
pub(crate) fn reseal(file: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(file) else {
        return file.to_vec();
    };
    let text = text.replace("\r\n", "\n");
    let mut lines: Vec<&str> = text.split('\n').collect();
    let checksum = format!("checksum: {}", shares::checksum(&lines));
    match lines.get_mut(6) {
        Some(line) => *line = &checksum,
        None => return file.to_vec(),
    }
    lines.join("\n").into_bytes()
}

/// The algorithm the first byte names, and the rest.
fn algorithm(bytes: &[u8]) -> Result<(Algorithm, &[u8]), Error> {
    let (&first, rest) = bytes.split_first().ok_or_else(|| short("the algorithm"))?;
    let algorithm = Algorithm::ALL.get(usize::from(first)).copied();
    let algorithm = algorithm.ok_or_else(|| Error::InvalidArgument {
        field: "algorithm",
        reason: format!("{first} is not an algorithm index"),
    })?;
    Ok((algorithm, rest))
}

/// Checks unwrapped material as [`crate::Kms::import_key`] does.
fn key_material(algorithm: Algorithm, material: &[u8]) -> Result<Algorithm, Error> {
    match Operator::load(algorithm, material, &SystemRandom::new()) {
        Some(_) => Ok(algorithm),
        None => Err(Error::InvalidArgument {
            field: "ciphertext",
            reason: format!("the unwrapped material is not a valid {algorithm} key"),
        }),
    }
}

fn short(what: &str) -> Error {
    Error::InvalidArgument {
        field: "bundle",
        reason: format!("it ends before {what}"),
    }
}

fn seed(target: &'static str, name: String, bytes: impl AsRef<[u8]>) -> Seed {
    Seed {
        target,
        name,
        bytes: bytes.as_ref().to_vec(),
    }
}
