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
//! The checksum catches a damaged or mistyped file before it takes part in a reconstruction. It
//! is not a signature: whoever can edit a file can recompute it, and the master key's check value
//! catches that case at reconstruction. Parse errors never echo the share value.

use blahaj::Sharks;
use ring::digest;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::master::{MASTER_KEY_LEN, MasterKey};
use crate::seal::SealConfig;
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

/// One custodian's share, parsed and checked against the seal configuration.
pub(crate) struct Share {
    pub(crate) index: u8,
    /// The `blahaj` share bytes (x, then y). Zeroized on drop.
    bytes: Zeroizing<Vec<u8>>,
}

/// Splits `master` into `config.shares` files, any `config.threshold` of which reconstruct it.
pub(crate) fn split(master: &MasterKey, config: &SealConfig) -> Vec<ShareFile> {
    let dealer = Sharks(config.threshold).dealer(master.expose());
    dealer
        .take(usize::from(config.shares))
        .map(|share| {
            let bytes = Zeroizing::new(Vec::from(&share));
            let index = share.x.0;
            ShareFile {
                index,
                contents: render(config, index, &bytes),
            }
        })
        .collect()
}

/// The text of one share file.
fn render(config: &SealConfig, index: u8, bytes: &[u8]) -> Zeroizing<String> {
    // Capacity for the whole file up front, so the secret is never left behind by a regrowth.
    let mut text = Zeroizing::new(String::with_capacity(512));
    let share_hex = Zeroizing::new(hex::encode(bytes));
    for line in [
        MAGIC,
        &format!("deployment: {}", config.deployment_id),
        &format!("index: {index}"),
        &format!("threshold: {}", config.threshold),
        &format!("shares: {}", config.shares),
    ] {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("share: ");
    text.push_str(&share_hex);
    text.push('\n');
    let checksum = hex::encode(digest::digest(&digest::SHA256, text.as_bytes()));
    text.push_str(&format!("checksum: {checksum}\n"));
    text
}

/// Parses and checks one share file against this deployment's seal configuration.
pub(crate) fn parse(file: &[u8], config: &SealConfig) -> Result<Share, Error> {
    let text = std::str::from_utf8(file).map_err(|_| invalid("the file is not UTF-8 text"))?;
    // CRLF line ends are accepted; every other byte counts, so damage anywhere shows.
    let text = Zeroizing::new(text.replace("\r\n", "\n"));
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
    let bytes = decode_share(values.share, index)?;
    Ok(Share { index, bytes })
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
    let mut context = digest::Context::new(&digest::SHA256);
    for line in lines.iter().take(FIELDS.len()) {
        context.update(line.as_bytes());
        context.update(b"\n");
    }
    let expected = hex::encode(context.finish());
    if bool::from(expected.as_bytes().ct_eq(checksum.as_bytes())) {
        Ok(())
    } else {
        Err(invalid(
            "the checksum does not match: the file is damaged or was edited",
        ))
    }
}

/// Checks the deployment id, threshold and share count against the seal configuration.
fn check_deployment(values: &Fields<'_>, config: &SealConfig) -> Result<(), Error> {
    if values.deployment != config.deployment_id {
        return Err(invalid(format!(
            "the share belongs to deployment {}, not to this deployment {}",
            values.deployment, config.deployment_id
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
fn decode_share(value: &str, index: u8) -> Result<Zeroizing<Vec<u8>>, Error> {
    let bytes =
        Zeroizing::new(hex::decode(value).map_err(|_| invalid("the share value is not hex"))?);
    if bytes.len() != SHARE_LEN {
        return Err(invalid(format!(
            "the share value is {} bytes, expected {SHARE_LEN}",
            bytes.len()
        )));
    }
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
        .map(|share| blahaj::Share::try_from(share.bytes.as_slice()).ok())
        .collect::<Option<Vec<_>>>()?;
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
    use super::*;

    fn config() -> SealConfig {
        SealConfig::new(
            "d-00112233445566778899aabbccddeeff".into(),
            3,
            5,
            Vec::new(),
        )
    }

    fn files() -> (MasterKey, Vec<ShareFile>) {
        let master = MasterKey::generate().unwrap();
        let files = split(&master, &config());
        (master, files)
    }

    fn reason(result: Result<Share, Error>) -> String {
        match result {
            Err(Error::InvalidShare { reason }) => reason,
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("share accepted"),
        }
    }

    #[test]
    fn any_threshold_shares_reconstruct() {
        let (master, files) = files();
        assert_eq!(files.len(), 5);
        let parsed: Vec<Share> = files
            .iter()
            .map(|f| parse(f.contents.as_bytes(), &config()).unwrap())
            .collect();
        for picks in [[0, 1, 2], [2, 3, 4], [0, 2, 4]] {
            let chosen: Vec<Share> = picks
                .iter()
                .map(|&i| Share {
                    index: parsed[i].index,
                    bytes: parsed[i].bytes.clone(),
                })
                .collect();
            assert_eq!(combine(&chosen, 3).unwrap().expose(), master.expose());
        }
    }

    #[test]
    fn every_corrupted_byte_is_rejected() {
        let (_, files) = files();
        let original = files[0].contents.as_bytes().to_vec();
        for position in 0..original.len() {
            let mut damaged = original.clone();
            damaged[position] ^= 0x01;
            let result = parse(&damaged, &config());
            assert!(
                matches!(result, Err(Error::InvalidShare { .. })),
                "byte {position} not caught"
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let (_, files) = files();
        let text = files[1].contents.as_str();
        assert!(reason(parse(b"hello", &config())).contains("first line"));
        assert!(reason(parse(&[0xff, 0xfe], &config())).contains("UTF-8"));
        let damaged = text.replace("index: 2", "index: 4");
        assert!(reason(parse(damaged.as_bytes(), &config())).contains("checksum"));
        let other = SealConfig::new(
            "d-ffffffffffffffffffffffffffffffff".into(),
            3,
            5,
            Vec::new(),
        );
        assert!(reason(parse(text.as_bytes(), &other)).contains("deployment"));
        let other = SealConfig::new(config().deployment_id, 2, 5, Vec::new());
        assert!(reason(parse(text.as_bytes(), &other)).contains("3 of 5"));
    }

    #[test]
    fn errors_do_not_echo_the_share() {
        let (_, files) = files();
        let text = files[0].contents.as_str();
        let share_hex = text
            .lines()
            .find_map(|l| l.strip_prefix("share: "))
            .unwrap();
        let damaged = text.replace("share: ", "share:");
        assert!(!reason(parse(damaged.as_bytes(), &config())).contains(share_hex));
    }

    #[test]
    fn crlf_and_missing_final_newline_are_accepted() {
        let (_, files) = files();
        let crlf = files[0].contents.replace('\n', "\r\n");
        assert_eq!(
            parse(crlf.as_bytes(), &config()).unwrap().index,
            files[0].index
        );
        let trimmed = files[0].contents.trim_end().to_owned();
        assert_eq!(
            parse(trimmed.as_bytes(), &config()).unwrap().index,
            files[0].index
        );
    }

    #[test]
    fn debug_does_not_print_the_share() {
        let (_, files) = files();
        let printed = format!("{:?}", files[0]);
        let share_hex = files[0]
            .contents
            .lines()
            .find_map(|l| l.strip_prefix("share: "))
            .unwrap();
        assert!(!printed.contains(share_hex));
        assert!(!printed.contains("share: "));
    }
}
