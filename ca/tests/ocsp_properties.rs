//! Property tests of the OCSP request parser (the parser the fuzz target `ocsp_request`
//! drives): any bytes give a request or an error, never a panic; so do openssl's requests with
//! bytes flipped, cut or inserted; and a request written from random values parses back to
//! exactly those values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use govtrust_ca::Error;
use govtrust_ca::ocsp::{HashAlgorithm, MAX_CERT_IDS, MAX_NONCE_LEN, Request};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// `openssl ocsp -issuer ca.pem -cert leaf.pem -reqout req.der`: one SHA-1 CertID, a nonce.
const SHA1_WITH_NONCE: &str = "30683066303f303d303b300906052b0e03021a05000414bf7052c8b9c0f760c8\
    9123e099815eb2c03942260414216280a72711a0552cf534e8e98b093b8fddec0b020201aaa2233021301f0609\
    2b060105050730010204120410b0c9b204ce901f51c01b070221e20179";
/// The same with `-sha256`.
const SHA256_WITH_NONCE: &str = "308185308182305b30593057300d06096086480165030402010500042080\
    48479c84625e7fde383cf9d59c450e415dae47be9d15c3f75bb6dc57aeb56204205db70ee658ebd2688080e050\
    b9fc21f26f6f2a00f8bd36a5c8b3c05b2b66ac83020201aaa2233021301f06092b060105050730010204120410\
    0540ead33d1edee0c8d72ec6aceb5a5b";
/// The first with `-no_nonce`.
const SHA1_WITHOUT_NONCE: &str = "30433041303f303d303b300906052b0e03021a05000414bf7052c8b9c0f760\
    c89123e099815eb2c03942260414216280a72711a0552cf534e8e98b093b8fddec0b020201aa";

fn seeds() -> Vec<Vec<u8>> {
    [SHA1_WITH_NONCE, SHA256_WITH_NONCE, SHA1_WITHOUT_NONCE]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect()
}

/// What an accepted request must be, whatever bytes it came from.
fn check_accepted(request: &Request) {
    let count = request.cert_ids().len();
    assert!((1..=MAX_CERT_IDS).contains(&count), "{count} CertIDs");
    if let Some(nonce) = request.nonce() {
        assert!((1..=MAX_NONCE_LEN).contains(&nonce.len()));
    }
    for id in request.cert_ids() {
        let len = match id.hash_algorithm() {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha256 => 32,
        };
        assert_eq!(id.issuer_name_hash().len(), len);
        assert_eq!(id.issuer_key_hash().len(), len);
        assert!((1..=20).contains(&id.serial().as_bytes().len()));
    }
}

/// Parses `bytes`: accepted requests are checked, refusals must be `OcspMalformed`.
fn parse(bytes: &[u8]) -> Option<Request> {
    match Request::parse(bytes) {
        Ok(request) => {
            check_accepted(&request);
            Some(request)
        }
        Err(Error::OcspMalformed { .. }) => None,
        Err(other) => panic!("not a malformed-request error: {other:?}"),
    }
}

/// A DER TLV with a one-byte tag.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend(content);
    out
}

/// The content octets of a minimal positive INTEGER from `bytes` (leading zeros dropped,
/// one added back if the high bit is set).
fn minimal(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    let mut trimmed = bytes[start..].to_vec();
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        trimmed.insert(0, 0);
    }
    trimmed
}

/// The DER of a CertID.
fn cert_id(sha256: bool, name: &[u8], key: &[u8], serial: &[u8]) -> Vec<u8> {
    let oid: &[u8] = match sha256 {
        true => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        false => &[0x2b, 0x0e, 0x03, 0x02, 0x1a],
    };
    let algorithm = tlv(0x30, &[tlv(0x06, oid), vec![0x05, 0x00]].concat());
    let fields = [
        algorithm,
        tlv(0x04, name),
        tlv(0x04, key),
        tlv(0x02, serial),
    ];
    tlv(0x30, &fields.concat())
}

/// The DER of an OCSPRequest for `ids` (each a CertID's DER), with `nonce` if given.
fn request(ids: &[Vec<u8>], nonce: Option<&[u8]>) -> Vec<u8> {
    let list: Vec<u8> = ids.iter().flat_map(|id| tlv(0x30, id)).collect();
    let mut tbs = tlv(0x30, &list);
    if let Some(nonce) = nonce {
        let oid = tlv(
            0x06,
            &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02],
        );
        let extension = tlv(0x30, &[oid, tlv(0x04, &tlv(0x04, nonce))].concat());
        tbs.extend(tlv(0xa2, &tlv(0x30, &extension)));
    }
    tlv(0x30, &tlv(0x30, &tbs))
}

/// A CertID's values: SHA-256 or not, serial bytes.
fn cert_id_values() -> impl Strategy<Value = (bool, Vec<u8>)> {
    (any::<bool>(), prop::collection::vec(any::<u8>(), 1..=19))
}

proptest! {
    #![proptest_config(Config::with_cases(512))]

    #[test]
    fn any_bytes_are_a_request_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        parse(&bytes);
    }

    #[test]
    fn bytes_after_a_sequence_header_are_a_request_or_an_error(
        body in prop::collection::vec(any::<u8>(), 0..300)
    ) {
        // Past the first tag, so the decoder goes deeper than on arbitrary bytes.
        parse(&tlv(0x30, &tlv(0x30, &body)));
    }

    #[test]
    fn flipped_bytes_are_a_request_or_an_error(
        seed in 0..3usize,
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 1..6)
    ) {
        let mut bytes = seeds()[seed].clone();
        for (position, xor) in flips {
            let position = position % bytes.len();
            bytes[position] ^= xor;
        }
        parse(&bytes);
    }

    #[test]
    fn cut_or_grown_requests_are_a_request_or_an_error(
        seed in 0..3usize,
        at in any::<usize>(),
        insert in prop::collection::vec(any::<u8>(), 0..8),
        cut in 0..16usize,
    ) {
        let original = seeds()[seed].clone();
        let at = at % (original.len() + 1);
        let end = (at + cut).min(original.len());
        let mutated = [&original[..at], &insert, &original[end..]].concat();
        parse(&mutated);
    }

    #[test]
    fn a_request_parses_back_to_its_values(
        values in prop::collection::vec(cert_id_values(), 1..=4),
        nonce in prop::option::of(prop::collection::vec(any::<u8>(), 1..=MAX_NONCE_LEN)),
        hash_byte in any::<u8>(),
    ) {
        let ids: Vec<Vec<u8>> = values
            .iter()
            .map(|(sha256, serial)| {
                let len = if *sha256 { 32 } else { 20 };
                cert_id(*sha256, &vec![hash_byte; len], &vec![!hash_byte; len], &minimal(serial))
            })
            .collect();
        let bytes = request(&ids, nonce.as_deref());
        let parsed = Request::parse(&bytes).unwrap();
        prop_assert_eq!(parsed.nonce(), nonce.as_deref());
        prop_assert_eq!(parsed.cert_ids().len(), ids.len());
        for ((id, der), (sha256, serial)) in parsed.cert_ids().iter().zip(&ids).zip(&values) {
            prop_assert_eq!(id.as_der(), &der[..]);
            prop_assert_eq!(id.hash_algorithm() == HashAlgorithm::Sha256, *sha256);
            prop_assert_eq!(id.serial().as_bytes(), &minimal(serial)[..]);
            prop_assert!(id.issuer_name_hash().iter().all(|b| *b == hash_byte));
        }
        prop_assert_eq!(parsed.single().is_some(), ids.len() == 1 && nonce.is_none());
    }
}

#[test]
fn the_seeds_are_accepted() {
    for seed in seeds() {
        let request = parse(&seed).unwrap();
        assert_eq!(request.cert_ids()[0].serial().to_string(), "01aa");
    }
}
