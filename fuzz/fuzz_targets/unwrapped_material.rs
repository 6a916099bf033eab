//! Key material that came out of a bundle (anyone may wrap any bytes to the centre's wrapping
//! key), loaded as ImportKey loads it: never a panic.

#![no_main]

use govtrust_kms::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::unwrapped_material(data);
});
