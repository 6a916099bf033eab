//! A certificate signing request (DER or PEM), checked as an enrollment of a registered system:
//! never a panic, and an accepted request asks for no name the system does not hold.

#![no_main]

use govtrust_ca::fuzzing::{self, DNS_NAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_key, names)) = fuzzing::csr(data) {
        assert!(
            names.iter().all(|name| name == DNS_NAME),
            "accepted foreign names {names:?}"
        );
    }
});
