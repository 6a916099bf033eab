//! Property tests of the CSR checks (the parser the fuzz target `csr` drives): a real request
//! is accepted in DER and PEM; any change to its DER is an error, never a panic; a change to its
//! PEM text is an error or (base64 has spare bits in its last characters) decodes to the same
//! request and certifies exactly what the original did.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{San, csr};
use govtrust_ca::fuzzing::{self, DNS_NAME, SPIFFE_ID, SYSTEM};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// What an accepted request certifies: key kind and DNS names.
type Certified = (String, Vec<String>);

fn request() -> Vec<u8> {
    csr(SYSTEM, &[San::Dns(DNS_NAME), San::Uri(SPIFFE_ID)])
}

fn pem(der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
    .into_bytes()
}

/// `bytes` with each `(position, xor)` applied, positions taken modulo the length.
fn mutate(bytes: &[u8], flips: &[(usize, u8)]) -> Vec<u8> {
    let mut mutated = bytes.to_vec();
    for (position, xor) in flips {
        let position = position % mutated.len();
        mutated[position] ^= xor;
    }
    mutated
}

fn check_pem_mutation(original: &[u8], certified: &Certified, flips: &[(usize, u8)]) {
    let mutated = mutate(original, flips);
    if mutated == original {
        return;
    }
    if let Ok(accepted) = fuzzing::csr(&mutated) {
        assert_eq!(
            &accepted, certified,
            "a mutated request was accepted and certifies something else"
        );
    }
}

#[test]
fn a_real_request_is_accepted_in_der_and_pem() {
    let der = request();
    let expected: Certified = ("ECDSA P-256".into(), vec![DNS_NAME.into()]);
    assert_eq!(fuzzing::csr(&der).unwrap(), expected);
    assert_eq!(fuzzing::csr(&pem(&der)).unwrap(), expected);
}

proptest! {
    #![proptest_config(Config::with_cases(256))]

    #[test]
    fn mutated_der_is_refused(
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 1..4)
    ) {
        let der = request();
        let mutated = mutate(&der, &flips);
        prop_assume!(mutated != der);
        let result = fuzzing::csr(&mutated);
        prop_assert!(result.is_err(), "accepted: {:?}", result);
    }

    #[test]
    fn mutated_pem_is_refused_or_certifies_the_same(
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 1..4)
    ) {
        let text = pem(&request());
        let certified = fuzzing::csr(&text).unwrap();
        check_pem_mutation(&text, &certified, &flips);
    }

    #[test]
    fn truncated_or_extended_der_is_refused(cut in any::<usize>(), tail in prop::collection::vec(any::<u8>(), 1..8)) {
        let der = request();
        let cut = cut % der.len();
        prop_assert!(fuzzing::csr(&der[..cut]).is_err());
        let extended = [der.as_slice(), &tail].concat();
        prop_assert!(fuzzing::csr(&extended).is_err());
    }

    #[test]
    fn arbitrary_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(fuzzing::csr(&bytes).is_err());
    }
}
