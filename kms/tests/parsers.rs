//! Property tests of the parsers the fuzz targets drive, through the same `fuzzing` entry
//! points: the seeds the corpora start from are accepted, and a wrapped key bundle with any byte
//! changed is refused, never a panic, never a key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use govtrust_kms::{Algorithm, Error, fuzzing};
use proptest::prelude::*;

fn accepted(target: &str, bytes: &[u8]) -> bool {
    match target {
        "share_file" => fuzzing::share_file(bytes).is_ok(),
        "ciphertext" => fuzzing::ciphertext(bytes).is_ok(),
        "wrapped_key" => fuzzing::wrapped_key(bytes).is_ok(),
        "unwrapped_material" => fuzzing::unwrapped_material(bytes).is_ok(),
        other => panic!("a seed for an unknown target {other}"),
    }
}

#[test]
fn every_seed_is_accepted_by_its_target() {
    let seeds = fuzzing::seeds().unwrap();
    for target in [
        "share_file",
        "ciphertext",
        "wrapped_key",
        "unwrapped_material",
    ] {
        assert!(seeds.iter().any(|seed| seed.target == target), "{target}");
    }
    for seed in seeds {
        assert!(
            accepted(seed.target, &seed.bytes),
            "{}/{}",
            seed.target,
            seed.name
        );
    }
}

#[test]
fn share_files_parse_and_reseal_to_their_index() {
    for (index, file) in (1u8..).zip(fuzzing::share_files().unwrap()) {
        assert_eq!(fuzzing::share_file(file.as_bytes()).unwrap(), index);
        assert_eq!(
            fuzzing::share_file_resealed(file.as_bytes()).unwrap(),
            index
        );
    }
}

#[test]
fn bundle_layout_errors_name_the_field() {
    for (bytes, field) in [
        (&b""[..], "bundle"),
        (&[9u8, 32][..], "algorithm"),
        (&[0u8][..], "bundle"),
        (&[0u8, 32, 1, 2][..], "bundle"),
        (&[0u8, 3, 1, 2, 3][..], "encapsulated_key"),
    ] {
        match fuzzing::wrapped_key(bytes) {
            Err(Error::InvalidArgument { field: got, .. }) => assert_eq!(got, field, "{bytes:?}"),
            other => panic!("{bytes:?}: {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn wrapped_keys_round_trip(key in any::<[u8; 32]>()) {
        let bundle = fuzzing::wrap_aes_key(&key).unwrap();
        prop_assert_eq!(fuzzing::wrapped_key(&bundle).unwrap(), Algorithm::Aes256Gcm);
    }

    #[test]
    fn mutated_bundles_are_refused(
        key in any::<[u8; 32]>(),
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 1..4),
    ) {
        let bundle = fuzzing::wrap_aes_key(&key).unwrap();
        let mut mutated = bundle.clone();
        for (position, xor) in &flips {
            let position = position % mutated.len();
            mutated[position] ^= xor;
        }
        prop_assume!(mutated != bundle);
        let refused = fuzzing::wrapped_key(&mutated);
        let kind = matches!(refused, Err(Error::Authentication | Error::InvalidArgument { .. }));
        prop_assert!(kind, "{:?}", refused);
    }

    #[test]
    fn arbitrary_ciphertexts_and_bundles_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(fuzzing::ciphertext(&bytes).is_err());
        prop_assert!(fuzzing::wrapped_key(&bytes).is_err());
        prop_assert!(fuzzing::share_file(&bytes).is_err());
    }
}
