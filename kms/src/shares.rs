//! Custodian share files: Shamir shares (GF(256), `blahaj`) of the master key as small text files.
//!
//! A share file has one `name: value` per line:
//!
//! ```text
//! govtrust-unseal-share-v1
//! deployment: d-0123456789abcdef0123456789abcdef
//! index: 2
//! threshold: 3
//! shares: 5
//! share: <hex of the share bytes: x coordinate, then 32 y bytes>
//! checksum: <hex SHA-256 over the preceding lines, each ending in "\n">
//! ```
//!
//! The checksum catches a damaged or mistyped file with a clear message. It is not a signature:
//! whoever can edit a file can recompute it. What tells a forged share from the one issued is the
//! share's *commitment*, kept in the seal configuration for every index since `initialize`:
//!
//! ```text
//! SHA-256("govtrust-share-commitment-v1" ‖ deployment id ‖ index ‖ share bytes)
//! ```
//!
//! Every part has a fixed length (the deployment id is always `d-` and 32 hex characters, the
//! index one byte, the share 33 bytes), so the concatenation is unambiguous. A share whose
//! commitment does not match is refused before it takes a place in the unseal attempt, so a
//! forger who knows the deployment id cannot block a custodian's index or spoil a reconstruction.
//! The commitments reveal nothing useful: each share has 256 bits of entropy.
//!
//! Secrets are handled carefully: the file text, the decoded share and its hex are held in
//! [`Zeroizing`] buffers allocated once at their final size (no regrowth leaves copies behind),
//! and parse errors never echo the share value.

use blahaj::Sharks;
use ring::digest;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::master::{MASTER_KEY_LEN, MasterKey};
use crate::seal::{self, SealConfig};
use crate::{Error, ShareFile};

const MAGIC: &str = "govtrust-unseal-share-v1";
const FIELDS: [&str; 6] = [
    "deployment",
    "index",
    "threshold",
    "shares",
    "share",
    "checksum",
];
const SHARE_LEN: usize = 1 + MASTER_KEY_LEN;
/// Domain separation of the share commitment.
const COMMITMENT_TAG: &[u8] = b"govtrust-share-commitment-v1";
/// Largest share file accepted; a real one is under 300 bytes.
const MAX_FILE_LEN: usize = 1024;
/// Room for the whole rendered file, so its buffer never regrows.
const FILE_CAPACITY: usize = 512;

/// A SHA-256 commitment to one share, see the module docs.
pub(crate) type Commitment = [u8; 32];

/// One custodian's share, parsed and checked against the seal configuration.
pub(crate) struct Share {
    pub(crate) index: u8,
    /// The `blahaj` share bytes (x, then y), `SHARE_LEN` of them. Zeroized on drop; on the heap,
    /// so moving a `Share` does not copy them.
    bytes: Zeroizing<Box<[u8]>>,
}

impl Share {
    /// The commitment to this share for `deployment`.
    pub(crate) fn commitment(&self, deployment: &str) -> Commitment {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(COMMITMENT_TAG);
        context.update(deployment.as_bytes());
        context.update(&[self.index]);
        context.update(&self.bytes);
        let mut commitment = Commitment::default();
        // Cannot panic: a SHA-256 digest is always 32 bytes.
        commitment.copy_from_slice(context.finish().as_ref());
        commitment
    }

    /// A copy of a `blahaj` share (which zeroizes itself on drop).
    fn from_dealt(dealt: &blahaj::Share) -> Result<Share, Error> {
        if dealt.y.len() != MASTER_KEY_LEN {
            return Err(Error::Crypto {
                context: "splitting the master key",
            });
        }
        let mut bytes = Zeroizing::new(vec![0u8; SHARE_LEN].into_boxed_slice());
        let parts = std::iter::once(dealt.x.0).chain(dealt.y.iter().map(|y| y.0));
        for (to, from) in bytes.iter_mut().zip(parts) {
            *to = from;
        }
        Ok(Share {
            index: dealt.x.0,
            bytes,
        })
    }
}

/// Splits `master` into `shares` shares, any `threshold` of which reconstruct it; share `i` has
/// index `i`, from 1.
pub(crate) fn deal(master: &MasterKey, threshold: u8, shares: u8) -> Result<Vec<Share>, Error> {
    let dealer = Sharks(threshold).dealer(master.expose());
    dealer
        .take(usize::from(shares))
        .zip(1..=shares)
        .map(|(dealt, index)| {
            // blahaj numbers shares x = 1, 2, ...; checked, as the commitments rely on it.
            if dealt.x.0 != index {
                return Err(Error::Crypto {
                    context: "splitting the master key",
                });
            }
            Share::from_dealt(&dealt)
        })
        .collect()
}

/// The commitments to `shares` for `deployment`, in order.
pub(crate) fn commitments(deployment: &str, shares: &[Share]) -> Vec<Commitment> {
    shares
        .iter()
        .map(|share| share.commitment(deployment))
        .collect()
}

/// The share files of `shares`, dealt for `config`.
pub(crate) fn render_all(config: &SealConfig, shares: &[Share]) -> Vec<ShareFile> {
    shares
        .iter()
        .map(|share| ShareFile {
            index: share.index,
            contents: render(config, share),
        })
        .collect()
}

/// The text of one share file.
fn render(config: &SealConfig, share: &Share) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(FILE_CAPACITY));
    for line in [
        MAGIC,
        &format!("deployment: {}", config.deployment_id),
        &format!("index: {}", share.index),
        &format!("threshold: {}", config.threshold),
        &format!("shares: {}", config.shares),
    ] {
        text.push_str(line);
        text.push('\n');
    }
    let mut share_hex = Zeroizing::new([0u8; 2 * SHARE_LEN]);
    // Cannot fail: `share.bytes` is SHARE_LEN bytes, the output twice that.
    let _ = hex::encode_to_slice(&share.bytes, share_hex.as_mut_slice());
    text.push_str("share: ");
    share_hex.iter().for_each(|&c| text.push(char::from(c)));
    text.push('\n');
    let checksum = hex::encode(digest::digest(&digest::SHA256, text.as_bytes()));
    text.push_str(&format!("checksum: {checksum}\n"));
    text
}

/// Parses and checks one share file against this deployment's seal configuration, up to and
/// including the share's commitment.
pub(crate) fn parse(file: &[u8], config: &SealConfig) -> Result<Share, Error> {
    let text = normalized(file)?;
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(&text)
        .split('\n')
        .collect();
    let values = fields(&lines)?;
    verify_checksum(&lines, values.checksum)?;
    check_deployment(&values, config)?;
    let index = number(values.index, "index")?;
    if index == 0 || index > config.shares {
        return Err(invalid(format!(
            "index {index} is outside 1..={}",
            config.shares
        )));
    }
    let share = Share {
        index,
        bytes: decode_share(values.share, index)?,
    };
    if !config.issued(&share) {
        return Err(invalid(format!(
            "share {index} does not match the share issued for this deployment: \
             use the file the custodian was given at initialization"
        )));
    }
    Ok(share)
}

/// The index a share file claims on its `index:` line, unchecked: for the audit record of an
/// attempt, even a rejected one. Reads only that line; the share value is never looked at.
pub(crate) fn claimed_index(file: &[u8]) -> Option<u8> {
    let file = file.get(..MAX_FILE_LEN.min(file.len()))?;
    file.split(|&b| b == b'\n').find_map(|line| {
        let value = line.strip_prefix(b"index: ")?;
        let value = value.strip_suffix(b"\r").unwrap_or(value);
        std::str::from_utf8(value).ok()?.parse().ok()
    })
}

/// The file as text with CRLF line ends turned into LF, in a buffer allocated once. Every other
/// byte counts, so damage anywhere shows.
fn normalized(file: &[u8]) -> Result<Zeroizing<String>, Error> {
    if file.len() > MAX_FILE_LEN {
        return Err(invalid(format!(
            "the file is {} bytes; a share file is at most {MAX_FILE_LEN}",
            file.len()
        )));
    }
    let raw = std::str::from_utf8(file).map_err(|_| invalid("the file is not UTF-8 text"))?;
    let mut text = Zeroizing::new(String::with_capacity(raw.len()));
    for (number, piece) in raw.split("\r\n").enumerate() {
        if number > 0 {
            text.push('\n');
        }
        text.push_str(piece);
    }
    Ok(text)
}

/// The values of a share file's lines, not yet checked.
struct Fields<'a> {
    deployment: &'a str,
    index: &'a str,
    threshold: &'a str,
    shares: &'a str,
    share: &'a str,
    checksum: &'a str,
}

/// Splits the lines into their named values, in the fixed order.
fn fields<'a>(lines: &[&'a str]) -> Result<Fields<'a>, Error> {
    if lines.first() != Some(&MAGIC) {
        return Err(invalid(format!(
            "the first line is not {MAGIC}: is this a share file?"
        )));
    }
    if lines.len() != 1 + FIELDS.len() {
        return Err(invalid(format!(
            "expected {} lines, found {}",
            1 + FIELDS.len(),
            lines.len()
        )));
    }
    let mut values = [""; FIELDS.len()];
    for ((value, name), (number, line)) in values
        .iter_mut()
        .zip(FIELDS)
        .zip(lines.iter().enumerate().skip(1))
    {
        *value = line
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(": "))
            .ok_or_else(|| invalid(format!("line {} is not `{name}: <value>`", number + 1)))?;
    }
    let [deployment, index, threshold, shares, share, checksum] = values;
    Ok(Fields {
        deployment,
        index,
        threshold,
        shares,
        share,
        checksum,
    })
}

/// Checks the SHA-256 over every line before the checksum line.
fn verify_checksum(lines: &[&str], checksum: &str) -> Result<(), Error> {
    let expected = self::checksum(lines);
    if bool::from(expected.as_bytes().ct_eq(checksum.as_bytes())) {
        Ok(())
    } else {
        Err(invalid(
            "the checksum does not match: the file is damaged or was edited",
        ))
    }
}

/// The hex SHA-256 over the lines before the checksum line, each ending in "\n".
pub(crate) fn checksum(lines: &[&str]) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    for line in lines.iter().take(FIELDS.len()) {
        context.update(line.as_bytes());
        context.update(b"\n");
    }
    hex::encode(context.finish())
}

/// Checks the deployment id, threshold and share count against the seal configuration.
fn check_deployment(values: &Fields<'_>, config: &SealConfig) -> Result<(), Error> {
    if values.deployment != config.deployment_id {
        // Only a well-formed deployment id is echoed, never whatever else the line holds; this
        // deployment's own id is never told: the caller of Unseal needs no certificate, and a
        // forged share must not reveal what Status hides from it.
        let given = Some(values.deployment)
            .filter(|given| seal::is_deployment_id(given))
            .unwrap_or("<not a deployment id>");
        return Err(invalid(format!(
            "the share belongs to deployment {given}, not to this one"
        )));
    }
    let threshold = number(values.threshold, "threshold")?;
    let shares = number(values.shares, "shares")?;
    if (threshold, shares) != (config.threshold, config.shares) {
        return Err(invalid(format!(
            "the share says {threshold} of {shares}, this deployment is {} of {}",
            config.threshold, config.shares
        )));
    }
    Ok(())
}

fn number(value: &str, name: &str) -> Result<u8, Error> {
    value
        .parse()
        .map_err(|_| invalid(format!("{name} is not a number from 0 to 255")))
}

/// Decodes the share value and checks its length and its x coordinate against `index`.
fn decode_share(value: &str, index: u8) -> Result<Zeroizing<Box<[u8]>>, Error> {
    if value.len() != 2 * SHARE_LEN {
        return Err(invalid(format!(
            "the share value is {} characters, expected {} hex characters",
            value.len(),
            2 * SHARE_LEN
        )));
    }
    let mut bytes = Zeroizing::new(vec![0u8; SHARE_LEN].into_boxed_slice());
    hex::decode_to_slice(value, &mut bytes).map_err(|_| invalid("the share value is not hex"))?;
    if bytes.first() != Some(&index) {
        return Err(invalid(format!("the share value is not share {index}")));
    }
    Ok(bytes)
}

/// Reconstructs the master key from `threshold` shares of distinct indexes. `None` when the
/// shares do not interpolate to a 32-byte key (the caller then checks the key it got).
pub(crate) fn combine(shares: &[Share], threshold: u8) -> Option<MasterKey> {
    let parsed = shares
        .iter()
        .map(|share| blahaj::Share::try_from(&share.bytes[..]).ok())
        .collect::<Option<Vec<_>>>()?;
    // `blahaj` shares zeroize themselves on drop (its default `zeroize_memory` feature).
    let secret = Zeroizing::new(Sharks(threshold).recover(&parsed).ok()?);
    MasterKey::from_bytes(&secret)
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidShare {
        reason: reason.into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DEPLOYMENT: &str = "d-00112233445566778899aabbccddeeff";

    /// A 3-of-5 split, its configuration and its files.
    fn dealt() -> (MasterKey, SealConfig, Vec<ShareFile>) {
        let master = MasterKey::generate().unwrap();
        let shares = deal(&master, 3, 5).unwrap();
        let config = SealConfig::new(
            DEPLOYMENT.into(),
            3,
            Vec::new(),
            commitments(DEPLOYMENT, &shares),
        );
        let files = render_all(&config, &shares);
        (master, config, files)
    }

    #[test]
    fn claimed_index_reads_only_the_index_line() {
        let (_, _, files) = dealt();
        assert_eq!(claimed_index(files[3].contents.as_bytes()), Some(4));
        let crlf = files[1].contents.replace('\n', "\r\n");
        assert_eq!(claimed_index(crlf.as_bytes()), Some(2));
        assert_eq!(claimed_index(b"index: 300\n"), None);
        assert_eq!(claimed_index(b"garbage"), None);
        assert_eq!(claimed_index(b""), None);
    }

    fn reason(result: Result<Share, Error>) -> String {
        match result {
            Err(Error::InvalidShare { reason }) => reason,
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("share accepted"),
        }
    }

    fn share_hex(file: &ShareFile) -> &str {
        file.contents
            .lines()
            .find_map(|l| l.strip_prefix("share: "))
            .unwrap()
    }

    /// `text` with the line `name: ...` replaced and the checksum recomputed, as a forger would.
    fn forge(text: &str, name: &str, value: &str) -> String {
        let prefix = format!("{name}: ");
        let mut body = String::new();
        for line in text.lines().filter(|l| !l.starts_with("checksum: ")) {
            match line.strip_prefix(&prefix) {
                Some(_) => body.push_str(&format!("{prefix}{value}\n")),
                None => body.push_str(&format!("{line}\n")),
            }
        }
        let checksum = hex::encode(digest::digest(&digest::SHA256, body.as_bytes()));
        body + &format!("checksum: {checksum}\n")
    }

    #[test]
    fn any_threshold_shares_reconstruct() {
        let (master, config, files) = dealt();
        assert_eq!(files.len(), 5);
        assert_eq!(
            files.iter().map(|f| f.index).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        for picks in [[0, 1, 2], [2, 3, 4], [0, 2, 4]] {
            let chosen: Vec<Share> = picks
                .iter()
                .map(|&i| parse(files[i].contents.as_bytes(), &config).unwrap())
                .collect();
            assert_eq!(combine(&chosen, 3).unwrap().expose(), master.expose());
        }
    }

    #[test]
    fn commitment_known_answer() {
        let (_, config, files) = dealt();
        let share = parse(files[1].contents.as_bytes(), &config).unwrap();
        let mut input = b"govtrust-share-commitment-v1".to_vec();
        input.extend_from_slice(DEPLOYMENT.as_bytes());
        input.push(2);
        input.extend_from_slice(&hex::decode(share_hex(&files[1])).unwrap());
        let expected = digest::digest(&digest::SHA256, &input);
        assert_eq!(share.commitment(DEPLOYMENT).as_slice(), expected.as_ref());
        assert_ne!(
            share.commitment("d-ffffffffffffffffffffffffffffffff"),
            share.commitment(DEPLOYMENT)
        );
    }

    #[test]
    fn forged_share_with_recomputed_checksum_is_refused() {
        let (_, config, files) = dealt();
        let mut value = hex::decode(share_hex(&files[1])).unwrap();
        value[7] ^= 0x80;
        let forged = forge(&files[1].contents, "share", &hex::encode(&value));
        let refused = reason(parse(forged.as_bytes(), &config));
        assert!(
            refused.contains("share 2 does not match the share issued for this deployment"),
            "{refused}"
        );
        assert!(!refused.contains(&hex::encode(&value)));
        // A well-formed share of the right index from another split is refused too.
        let (_, _, others) = dealt();
        let refused = reason(parse(others[1].contents.as_bytes(), &config));
        assert!(refused.contains("does not match"), "{refused}");
    }

    #[test]
    fn every_corrupted_byte_is_rejected() {
        let (_, config, files) = dealt();
        let original = files[0].contents.as_bytes().to_vec();
        for position in 0..original.len() {
            let mut damaged = original.clone();
            damaged[position] ^= 0x01;
            let result = parse(&damaged, &config);
            assert!(
                matches!(result, Err(Error::InvalidShare { .. })),
                "byte {position} not caught"
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let (_, config, files) = dealt();
        let text = files[1].contents.as_str();
        assert!(reason(parse(b"hello", &config)).contains("first line"));
        assert!(reason(parse(&[0xff, 0xfe], &config)).contains("UTF-8"));
        assert!(reason(parse(&[b'a'; 4096], &config)).contains("at most 1024"));
        let damaged = text.replace("index: 2", "index: 4");
        assert!(reason(parse(damaged.as_bytes(), &config)).contains("checksum"));
        let other = SealConfig::new(
            "d-ffffffffffffffffffffffffffffffff".into(),
            3,
            Vec::new(),
            vec![Commitment::default(); 5],
        );
        let foreign = reason(parse(text.as_bytes(), &other));
        assert!(foreign.contains(DEPLOYMENT), "{foreign}");
        let other = SealConfig::new(DEPLOYMENT.into(), 2, Vec::new(), vec![[0; 32]; 5]);
        assert!(reason(parse(text.as_bytes(), &other)).contains("3 of 5"));
        let short = forge(text, "share", "0201");
        assert!(reason(parse(short.as_bytes(), &config)).contains("expected 66 hex"));
    }

    #[test]
    fn errors_do_not_echo_the_share() {
        let (_, config, files) = dealt();
        let text = files[0].contents.as_str();
        let share_hex = share_hex(&files[0]);
        let damaged = text.replace("share: ", "share:");
        assert!(!reason(parse(damaged.as_bytes(), &config)).contains(share_hex));
        // The share value moved to the deployment line, checksum and all.
        let moved = forge(text, "deployment", share_hex);
        let moved = reason(parse(moved.as_bytes(), &config));
        assert!(!moved.contains(share_hex), "{moved}");
        let not_hex = forge(text, "share", &share_hex.replace('0', "z"));
        assert!(!reason(parse(not_hex.as_bytes(), &config)).contains(&share_hex[4..]));
    }

    #[test]
    fn crlf_and_missing_final_newline_are_accepted() {
        let (_, config, files) = dealt();
        let crlf = files[0].contents.replace('\n', "\r\n");
        assert_eq!(
            parse(crlf.as_bytes(), &config).unwrap().index,
            files[0].index
        );
        let trimmed = files[0].contents.trim_end().to_owned();
        assert_eq!(
            parse(trimmed.as_bytes(), &config).unwrap().index,
            files[0].index
        );
    }

    #[test]
    fn debug_does_not_print_the_share() {
        let (_, _, files) = dealt();
        let printed = format!("{:?}", files[0]);
        assert!(!printed.contains(share_hex(&files[0])));
        assert!(!printed.contains("share: "));
    }

    /// `bytes` with each `(position, xor)` applied, positions taken modulo the length.
    fn mutate(bytes: &[u8], flips: &[(usize, u8)]) -> Vec<u8> {
        let mut mutated = bytes.to_vec();
        for (position, xor) in flips {
            let position = position % mutated.len();
            mutated[position] ^= xor;
        }
        mutated
    }

    /// M of N with 2 <= M <= N <= 16.
    fn split() -> impl Strategy<Value = (u8, u8)> {
        (2u8..=seal::MAX_SHARES).prop_flat_map(|shares| (2..=shares, Just(shares)))
    }

    fn flips() -> impl Strategy<Value = Vec<(usize, u8)>> {
        prop::collection::vec((any::<usize>(), 1..=255u8), 1..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn render_then_parse_round_trips(key in any::<[u8; 32]>(), (threshold, count) in split()) {
            let master = MasterKey::from_bytes(&key).unwrap();
            let shares = deal(&master, threshold, count).unwrap();
            let config = SealConfig::new(
                DEPLOYMENT.into(),
                threshold,
                Vec::new(),
                commitments(DEPLOYMENT, &shares),
            );
            let parsed: Vec<Share> = render_all(&config, &shares)
                .iter()
                .map(|file| parse(file.contents.as_bytes(), &config).unwrap())
                .collect();
            let indexes: Vec<u8> = parsed.iter().map(|share| share.index).collect();
            prop_assert_eq!(indexes, (1..=count).collect::<Vec<_>>());
            let last = &parsed[usize::from(count - threshold)..];
            let combined = combine(last, threshold).unwrap();
            prop_assert_eq!(combined.expose(), master.expose());
        }

        #[test]
        fn mutated_share_files_are_refused(flips in flips()) {
            let (_, config, files) = dealt();
            let original = files[0].contents.as_bytes();
            let mutated = mutate(original, &flips);
            prop_assume!(mutated != original);
            let result = parse(&mutated, &config).map(|share| share.index);
            prop_assert!(matches!(result, Err(Error::InvalidShare { .. })), "{:?}", result);
        }

        /// With the checksum recomputed (as a forger would), an edited file is still refused,
        /// unless the edit leaves the very share issued (`A` for `a` in the hex, `+3` for `3`).
        #[test]
        fn resealed_mutations_yield_the_issued_share_or_nothing(flips in flips()) {
            let (_, config, files) = dealt();
            let original = parse(files[1].contents.as_bytes(), &config).unwrap();
            let mutated = crate::fuzzing::reseal(&mutate(files[1].contents.as_bytes(), &flips));
            match parse(&mutated, &config) {
                Ok(share) => {
                    prop_assert_eq!(share.index, original.index);
                    prop_assert_eq!(&share.bytes[..], &original.bytes[..]);
                }
                Err(error) => {
                    prop_assert!(matches!(error, Error::InvalidShare { .. }), "{}", error);
                }
            }
        }
    }
}
