//! A custodian share file, as given to unseal: never a panic, never accepted. The fuzzer cannot
//! know this process's fixture shares, so any accepted input is a forged share.
//! Each input is parsed as it is and again with its checksum line corrected, so mutations
//! also reach the field checks behind the checksum.

#![no_main]

use govtrust_kms::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for result in [
        fuzzing::share_file(data),
        fuzzing::share_file_resealed(data),
    ] {
        assert!(result.is_err(), "a forged share was accepted: {result:?}");
    }
});
