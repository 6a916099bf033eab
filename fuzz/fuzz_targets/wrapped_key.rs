//! A wrapped key bundle (algorithm, encapsulated key, HPKE ciphertext), as given to ImportKey:
//! never a panic.

#![no_main]

use govtrust_kms::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::wrapped_key(data);
});
