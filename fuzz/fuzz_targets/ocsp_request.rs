//! An OCSP request (DER), parsed as the responder parses one: never a panic, and an accepted
//! request is what the parser promises (1 to 64 CertIDs with hashes of their algorithm's
//! length, serials of 1 to 20 bytes, a nonce of 1 to 32), each CertID and the nonce found
//! verbatim in the input (DER has one encoding, so what was read is what was sent).

#![no_main]

use govtrust_ca::ocsp::{HashAlgorithm, MAX_CERT_IDS, MAX_NONCE_LEN, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Request::parse(data) else {
        return;
    };
    let ids = request.cert_ids();
    assert!((1..=MAX_CERT_IDS).contains(&ids.len()), "{} CertIDs", ids.len());
    for id in ids {
        let len = match id.hash_algorithm() {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha256 => 32,
        };
        assert_eq!(id.issuer_name_hash().len(), len);
        assert_eq!(id.issuer_key_hash().len(), len);
        assert!((1..=20).contains(&id.serial().as_bytes().len()));
        assert!(contains(data, id.as_der()), "CertID not in the input: {id:?}");
    }
    if let Some(nonce) = request.nonce() {
        assert!((1..=MAX_NONCE_LEN).contains(&nonce.len()));
        assert!(contains(data, nonce), "nonce not in the input");
    }
});

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}
