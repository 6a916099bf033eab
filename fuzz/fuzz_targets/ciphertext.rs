//! A ciphertext envelope, as given to Decrypt: never a panic. The header is authenticated, so
//! one that opens names the key and version it was sealed under (the fixture's seals all name
//! KEY_ID version 1): a relabelled envelope never opens.

#![no_main]

use govtrust_kms::{Kms, fuzzing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if fuzzing::ciphertext(data).is_ok() {
        let (key_id, version) = Kms::ciphertext_key(data).expect("an opened header parses");
        assert_eq!((key_id.as_str(), version), (fuzzing::KEY_ID, 1));
    }
});
