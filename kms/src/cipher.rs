//! The self-describing ciphertext format of `encrypt` and `generate_data_key`.
//!
//! ```text
//! "gtk1" | u8 id length | id bytes | u32 BE version | 12-byte random nonce | GCM ciphertext || 16-byte tag
//! \___________________ header ____________________/
//! ```
//!
//! GCM is AES-256-GCM or SM4-GCM, as the key's algorithm says (the key id in the header names the
//! key, so the format need not). The GCM AAD is the header bytes followed by the caller's AAD, so the key id and version are
//! authenticated: a ciphertext relabelled to another key or version fails to decrypt. Nonces are
//! random; under one key version that is safe for 2^32 messages (NIST SP 800-38D §8.3), and the
//! centre rotates each key at 2^30 (see [`crate::budget`]).

use ring::aead::{Aad, LessSafeKey, MAX_TAG_LEN, NONCE_LEN, Nonce};
use zeroize::Zeroizing;

use crate::national::Sm4Gcm;
use crate::sealed::random_nonce;
use crate::{Error, KeyId};

/// A symmetric key of either suite, loaded.
#[derive(Clone, Copy)]
pub(crate) enum Aead<'a> {
    Aes(&'a LessSafeKey),
    Sm4(&'a Sm4Gcm),
}

impl Aead<'_> {
    /// Encrypts `buffer` in place; returns the tag.
    fn seal_in_place(
        self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; MAX_TAG_LEN], Error> {
        let failed = |_| Error::Crypto {
            context: "encrypting",
        };
        match self {
            Aead::Aes(key) => {
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        buffer,
                    )
                    .map_err(failed)?;
                let mut out = [0u8; MAX_TAG_LEN];
                out.copy_from_slice(tag.as_ref());
                Ok(out)
            }
            Aead::Sm4(key) => key
                .seal_in_place(&nonce, aad, buffer)
                .map_err(|_| Error::Crypto {
                    context: "encrypting",
                }),
        }
    }

    /// Decrypts `body` (ciphertext then tag) in place; returns the plaintext's length.
    fn open_in_place(
        self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        body: &mut [u8],
    ) -> Result<usize, Error> {
        let len = body
            .len()
            .checked_sub(MAX_TAG_LEN)
            .ok_or(Error::Authentication)?;
        match self {
            Aead::Aes(key) => key
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
                .map(|plain| plain.len())
                .map_err(|_| Error::Authentication),
            Aead::Sm4(key) => {
                let (ciphertext, tag) = body.split_at_mut(len);
                key.open_in_place(&nonce, aad, ciphertext, tag)
                    .map(|()| len)
                    .map_err(|_| Error::Authentication)
            }
        }
    }
}

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
    key: Aead<'_>,
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
    let tag = key.seal_in_place(nonce, &full_aad, body)?;
    out.extend_from_slice(&tag);
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

/// True when `ciphertext` starts as this format does (it may still be malformed).
pub(crate) fn is_framed(ciphertext: &[u8]) -> bool {
    ciphertext.starts_with(MAGIC)
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
    key: Aead<'_>,
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
    let len = key.open_in_place(*nonce, &full_aad, &mut buffer)?;
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
        let ct = seal(Aead::Aes(&key(1)), &id(), 7, b"hello", b"aad").unwrap();
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
        let ct = seal(Aead::Aes(&key(1)), &id(), 1, b"hello", b"aad").unwrap();
        let header = parse(&ct).unwrap();
        assert_eq!(
            open(Aead::Aes(&key(1)), &header, &ct, b"aad")
                .unwrap()
                .as_slice(),
            b"hello"
        );
        assert!(matches!(
            open(Aead::Aes(&key(1)), &header, &ct, b"other"),
            Err(Error::Authentication)
        ));
        assert!(matches!(
            open(Aead::Aes(&key(2)), &header, &ct, b"aad"),
            Err(Error::Authentication)
        ));
        let mut tampered = ct.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            open(Aead::Aes(&key(1)), &header, &tampered, b"aad"),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn sm4_keys_use_the_same_format() {
        let sm4 = Sm4Gcm::new(&[3u8; 16]).unwrap();
        let other = Sm4Gcm::new(&[4u8; 16]).unwrap();
        let ct = seal(Aead::Sm4(&sm4), &id(), 2, b"hello", b"aad").unwrap();
        assert_eq!(ct.len(), 43 + 12 + 5 + 16);
        let header = parse(&ct).unwrap();
        let opened = open(Aead::Sm4(&sm4), &header, &ct, b"aad").unwrap();
        assert_eq!(opened.as_slice(), b"hello");
        for (key, aad) in [(&other, &b"aad"[..]), (&sm4, b"other")] {
            assert!(matches!(
                open(Aead::Sm4(key), &header, &ct, aad),
                Err(Error::Authentication)
            ));
        }
        // An AES key of the same bytes does not open it: the algorithms differ.
        assert!(matches!(
            open(Aead::Aes(&key(3)), &header, &ct, b"aad"),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn relabelled_version_fails() {
        let mut ct = seal(Aead::Aes(&key(1)), &id(), 1, b"hello", b"").unwrap();
        ct[42] = 2;
        let header = parse(&ct).unwrap();
        assert!(matches!(
            open(Aead::Aes(&key(1)), &header, &ct, b""),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn every_truncation_is_malformed() {
        let ct = seal(Aead::Aes(&key(1)), &id(), 1, b"", b"").unwrap();
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
        open(Aead::Aes(&key(1)), &header, ciphertext, aad)
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
            let ct = seal(Aead::Aes(&key(1)), &id, version, &plaintext, &aad).unwrap();
            let header = parse(&ct).unwrap();
            prop_assert_eq!((&header.key_id, header.version), (&id, version));
            let opened = open(Aead::Aes(&key(1)), &header, &ct, &aad).unwrap();
            prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        }

        /// Header, nonce, body or tag: any changed byte is malformed or fails to open.
        #[test]
        fn mutated_ciphertexts_are_refused(
            plaintext in prop::collection::vec(any::<u8>(), 0..64),
            flips in flips(),
        ) {
            let ct = seal(Aead::Aes(&key(1)), &id(), 1, &plaintext, b"aad").unwrap();
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
            let ct = seal(Aead::Aes(&key(1)), &id(), 1, b"some plaintext", b"").unwrap();
            prop_assert!(parse_and_open(&ct[..cut % ct.len()], b"").is_err());
            prop_assert!(parse_and_open(&[ct.as_slice(), &tail].concat(), b"").is_err());
        }
    }
}
