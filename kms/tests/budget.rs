//! The encryption budget of AES key versions (random 96-bit nonces): counted persistently,
//! never backwards across a restart, and the key rotates itself at the limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{Centre, SwitchAudit, audit_events};
use govtrust_kms::{Algorithm, EncryptionLimit, Error, KeyId, Kms};

fn limit(per_version: u64, reserve: u64) -> EncryptionLimit {
    EncryptionLimit::new(per_version, reserve).unwrap()
}

/// The versions `n` encryptions under `id` were made with.
fn versions(kms: &Kms, id: &KeyId, n: usize) -> Vec<u32> {
    (0..n)
        .map(|_| kms.encrypt(id, b"m", b"").unwrap().version)
        .collect()
}

#[test]
fn a_version_at_its_limit_rotates_the_key() {
    let centre = Centre::unsealed_with(limit(10, 4));
    let id = centre.create(Algorithm::Aes256Gcm);
    let first = centre.kms.encrypt(&id, b"old", b"").unwrap();
    assert_eq!(versions(&centre.kms, &id, 9), [1; 9]);
    assert_eq!(versions(&centre.kms, &id, 3), [2, 2, 2]);
    let key = centre.kms.key(&id).unwrap();
    assert_eq!((key.primary_version, key.versions.len()), (2, 2));

    let rotations = audit_events(&*centre.store, "kms.key.rotate");
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0]["actor"], "govtrust");
    assert_eq!(rotations[0]["version"], "2");
    assert_eq!(
        rotations[0]["reason"],
        "version 1 reached its encryption limit of 10"
    );
    // What version 1 encrypted still decrypts.
    let opened = centre.kms.decrypt(&first.ciphertext, b"", None).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"old");
}

#[test]
fn data_keys_count_too() {
    let centre = Centre::unsealed_with(limit(3, 2));
    let id = centre.create(Algorithm::Aes256Gcm);
    let made: Vec<u32> = (0..4)
        .map(|_| {
            let data_key = centre.kms.generate_data_key(&id, b"").unwrap();
            data_key.encrypted.version
        })
        .collect();
    assert_eq!(made, [1, 1, 1, 2]);
    assert_eq!(versions(&centre.kms, &id, 3), [2, 2, 3]);
}

#[test]
fn the_count_does_not_go_back_after_a_restart() {
    let centre = Centre::unsealed_with(limit(10, 4));
    let id = centre.create(Algorithm::Aes256Gcm);
    // Five encryptions reserve two blocks of four: eight are counted in the store.
    assert_eq!(versions(&centre.kms, &id, 5), [1; 5]);
    // A crash: the three unused encryptions of the second block are lost, not reused.
    let kms = centre.reopen().with_encryption_limit(limit(10, 4));
    centre.unseal(&kms);
    assert_eq!(versions(&kms, &id, 3), [1, 1, 2]);
}

#[test]
fn an_encryption_that_cannot_rotate_the_key_is_refused() {
    let audit = Arc::new(SwitchAudit::default());
    let centre = Centre::sealed();
    let kms = Kms::open(
        Arc::clone(&centre.store),
        audit.clone(),
        centre.clock.clone(),
    )
    .unwrap()
    .with_encryption_limit(limit(2, 2));
    centre.unseal(&kms);
    let id = kms
        .create_key(
            "spiffe://gov.example/admin",
            common::spec(Algorithm::Aes256Gcm),
        )
        .unwrap()
        .id;
    assert_eq!(versions(&kms, &id, 2), [1, 1]);
    // The rotation cannot be audited, so it does not happen, and neither does the encryption.
    audit.fail(true);
    assert!(matches!(kms.encrypt(&id, b"m", b""), Err(Error::Store(_))));
    assert!(matches!(
        kms.generate_data_key(&id, b""),
        Err(Error::Store(_))
    ));
    assert_eq!(kms.key(&id).unwrap().primary_version, 1);
    audit.fail(false);
    assert_eq!(versions(&kms, &id, 1), [2]);
}

#[test]
fn concurrent_callers_rotate_once_per_exhausted_version() {
    let centre = Centre::unsealed_with(limit(50, 5));
    let id = centre.create(Algorithm::Aes256Gcm);
    let kms = &centre.kms;
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| versions(kms, &id, 100));
        }
    });
    let key = kms.key(&id).unwrap();
    assert_eq!(key.versions.len(), 8, "400 encryptions, 50 per version");
    assert_eq!(audit_events(&*centre.store, "kms.key.rotate").len(), 7);
}
