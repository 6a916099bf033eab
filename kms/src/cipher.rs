//! The self-describing ciphertext format of `encrypt` and `generate_data_key`.
//!
//! ```text
//! "gtk1" | u8 id length | id bytes | u32 BE version | 12-byte random nonce | AES-256-GCM ciphertext || 16-byte tag
//! \___________________ header ____________________/
//! ```
//!
//! The GCM AAD is the header bytes followed by the caller's AAD, so the key id and version are
//! authenticated: a ciphertext relabelled to another key or version fails to decrypt. Nonces are
//! random; under one key version that is safe for 2^32 messages (NIST SP 800-38D §8.3), and the
//! centre rotates each key at 2^30 (see [`crate::budget`]).

use ring::aead::{Aad, LessSafeKey, MAX_TAG_LEN, NONCE_LEN, Nonce};
use zeroize::Zeroizing;

use crate::sealed::random_nonce;
use crate::{Error, KeyId};

const MAGIC: &[u8; 4] = b"gtk1";

/// What the header of a ciphertext says.
pub(crate) struct Header {
    pub(crate) key_id: KeyId,
    pub(crate) version: u32,
    /// Length of the header bytes (the nonce follows).
    len: usize,
}

/// Encrypts `plaintext` under `key`, labelled as `id` version `version`.
pub(crate) fn seal(
    key: &LessSafeKey,
    id: &KeyId,
    version: u32,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, Error> {
    let header = header(id, version)?;
    let nonce = random_nonce()?;
    let mut out = Vec::with_capacity(header.len() + NONCE_LEN + plaintext.len() + MAX_TAG_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    let body_start = out.len();
    out.extend_from_slice(plaintext);
    let full_aad = [header.as_slice(), aad].concat();
    let body = out.get_mut(body_start..).unwrap_or_default();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&full_aad),
            body,
        )
        .map_err(|_| Error::Crypto {
            context: "encrypting",
        })?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// The header bytes for `id` and `version`.
fn header(id: &KeyId, version: u32) -> Result<Vec<u8>, Error> {
    let id_len = u8::try_from(id.as_str().len()).map_err(|_| Error::InvalidKeyId {
        given: id.to_string(),
    })?;
    Ok([
        MAGIC.as_slice(),
        &[id_len],
        id.as_str().as_bytes(),
        &version.to_be_bytes(),
    ]
    .concat())
}

/// Reads the header of `ciphertext` without decrypting it.
pub(crate) fn parse(ciphertext: &[u8]) -> Result<Header, Error> {
    let rest = ciphertext
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("it does not start with the gtk1 marker"))?;
    let (&id_len, rest) = rest
        .split_first()
        .ok_or_else(|| malformed("it ends inside the header"))?;
    let (id, rest) = rest
        .split_at_checked(usize::from(id_len))
        .ok_or_else(|| malformed("it ends inside the key id"))?;
    let id = std::str::from_utf8(id)
        .ok()
        .and_then(|id| KeyId::parse(id).ok());
    let key_id = id.ok_or_else(|| malformed("the key id in the header is not a valid key id"))?;
    let (version, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed("it ends inside the version"))?;
    if rest.len() < NONCE_LEN + MAX_TAG_LEN {
        return Err(malformed("it is too short to hold a nonce and a tag"));
    }
    let len = ciphertext.len() - rest.len();
    Ok(Header {
        key_id,
        version: u32::from_be_bytes(*version),
        len,
    })
}

/// Decrypts `ciphertext` (whose header is `header`) under `key`.
pub(crate) fn open(
    key: &LessSafeKey,
    header: &Header,
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let (head, rest) = ciphertext
        .split_at_checked(header.len)
        .ok_or_else(|| malformed("truncated"))?;
    let (nonce, body) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or_else(|| malformed("truncated"))?;
    let full_aad = [head, aad].concat();
    let mut buffer = Zeroizing::new(body.to_vec());
    let nonce = Nonce::assume_unique_for_key(*nonce);
    let len = key
        .open_in_place(nonce, Aad::from(&full_aad), &mut buffer)
        .map_err(|_| Error::Authentication)?
        .len();
    buffer.truncate(len);
    Ok(buffer)
}

fn malformed(reason: &str) -> Error {
    Error::MalformedCiphertext {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;
    use ring::aead::{AES_256_GCM, UnboundKey};

    use super::*;

    fn key(byte: u8) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[byte; 32]).unwrap())
    }

    fn id() -> KeyId {
        KeyId::parse("k-0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn layout_is_as_documented() {
        let ct = seal(&key(1), &id(), 7, b"hello", b"aad").unwrap();
        assert_eq!(&ct[..4], b"gtk1");
        assert_eq!(ct[4], 34);
        assert_eq!(&ct[5..39], id().as_str().as_bytes());
        assert_eq!(&ct[39..43], &7u32.to_be_bytes());
        assert_eq!(ct.len(), 43 + 12 + 5 + 16);
        let header = parse(&ct).unwrap();
        assert_eq!((header.key_id, header.version), (id(), 7));
    }

    #[test]
    fn round_trip_and_failures() {
        let ct = seal(&key(1), &id(), 1, b"hello", b"aad").unwrap();
        let header = parse(&ct).unwrap();
        assert_eq!(
            open(&key(1), &header, &ct, b"aad").unwrap().as_slice(),
            b"hello"
        );
        assert!(matches!(
            open(&key(1), &header, &ct, b"other"),
            Err(Error::Authentication)
        ));
        assert!(matches!(
            open(&key(2), &header, &ct, b"aad"),
            Err(Error::Authentication)
        ));
        let mut tampered = ct.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            open(&key(1), &header, &tampered, b"aad"),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn relabelled_version_fails() {
        let mut ct = seal(&key(1), &id(), 1, b"hello", b"").unwrap();
        ct[42] = 2;
        let header = parse(&ct).unwrap();
        assert!(matches!(
            open(&key(1), &header, &ct, b""),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn every_truncation_is_malformed() {
        let ct = seal(&key(1), &id(), 1, b"", b"").unwrap();
        for len in 0..ct.len() {
            assert!(
                matches!(parse(&ct[..len]), Err(Error::MalformedCiphertext { .. })),
                "length {len}"
            );
        }
        assert!(matches!(
            parse(b"garbage garbage garbage garbage garbage garbage garbage garbage"),
            Err(Error::MalformedCiphertext { .. })
        ));
    }

    fn flips() -> impl Strategy<Value = Vec<(usize, u8)>> {
        prop::collection::vec((any::<usize>(), 1..=255u8), 1..4)
    }

    fn parse_and_open(ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let header = parse(ciphertext)?;
        open(&key(1), &header, ciphertext, aad)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn seal_then_open_round_trips(
            plaintext in prop::collection::vec(any::<u8>(), 0..256),
            aad in prop::collection::vec(any::<u8>(), 0..64),
            version in any::<u32>(),
            id in any::<[u8; 16]>(),
        ) {
            let id = KeyId::parse(&format!("k-{}", hex::encode(id))).unwrap();
            let ct = seal(&key(1), &id, version, &plaintext, &aad).unwrap();
            let header = parse(&ct).unwrap();
            prop_assert_eq!((&header.key_id, header.version), (&id, version));
            let opened = open(&key(1), &header, &ct, &aad).unwrap();
            prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        }

        /// Header, nonce, body or tag: any changed byte is malformed or fails to open.
        #[test]
        fn mutated_ciphertexts_are_refused(
            plaintext in prop::collection::vec(any::<u8>(), 0..64),
            flips in flips(),
        ) {
            let ct = seal(&key(1), &id(), 1, &plaintext, b"aad").unwrap();
            let mut mutated = ct.clone();
            for (position, xor) in &flips {
                let position = position % mutated.len();
                mutated[position] ^= xor;
            }
            prop_assume!(mutated != ct);
            let refused = parse_and_open(&mutated, b"aad");
            let kind = matches!(
                refused,
                Err(Error::MalformedCiphertext { .. } | Error::Authentication)
            );
            prop_assert!(kind, "{:?}", refused.map(|plaintext| plaintext.len()));
        }

        #[test]
        fn truncated_or_extended_ciphertexts_are_refused(
            cut in any::<usize>(),
            tail in prop::collection::vec(any::<u8>(), 1..16),
        ) {
            let ct = seal(&key(1), &id(), 1, b"some plaintext", b"").unwrap();
            prop_assert!(parse_and_open(&ct[..cut % ct.len()], b"").is_err());
            prop_assert!(parse_and_open(&[ct.as_slice(), &tail].concat(), b"").is_err());
        }
    }
}
