//! Key escrow for dual certificates: the pool of SM2 encryption pairs, their assignment to an
//! owner, the envelope to the owner's signing key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{Centre, audit_events};
use govtrust_kms::national::{Sm2KeyPair, sm2_encrypt, sm2_generate, sm2_open_envelope};
use govtrust_kms::{Algorithm, Error, KeyOrigin};

const OWNER: &str = "spiffe://gov.example/org/finance/sys/tax-portal";

fn signing_pair() -> Sm2KeyPair {
    Sm2KeyPair::from_pkcs8(&sm2_generate().unwrap()).unwrap()
}

/// The uncompressed point inside an SPKI DER (its last 65 bytes).
fn point(spki: &[u8]) -> &[u8] {
    &spki[spki.len() - 65..]
}

#[test]
fn the_pool_fills_to_its_target_and_each_assignment_takes_one_pair() {
    let centre = Centre::unsealed();
    assert_eq!(centre.kms.escrow_pool_size().unwrap(), 0);
    assert_eq!(centre.kms.fill_escrow_pool(5).unwrap(), 5);
    assert_eq!(centre.kms.fill_escrow_pool(5).unwrap(), 0);
    assert_eq!(centre.kms.escrow_pool_size().unwrap(), 5);
    let filled = audit_events(&*centre.store, "kms.escrow.pool");
    assert_eq!(filled.len(), 1);
    assert_eq!(filled[0]["added"], "5");

    let subject = signing_pair();
    let escrowed = centre
        .kms
        .escrow_encryption_key(
            "ca",
            OWNER,
            2,
            subject.public_key(),
            "encryption key of tax-portal",
        )
        .unwrap();
    assert_eq!(centre.kms.escrow_pool_size().unwrap(), 4);
    let key = &escrowed.key;
    assert_eq!(key.algorithm, Algorithm::Sm2Encrypt);
    assert_eq!((key.owner.as_str(), key.owner_generation), (OWNER, 2));
    assert!(key.internal && !key.exportable);
    assert_eq!(key.origin, KeyOrigin::Escrowed);

    // The envelope opens only with the subject's signing key, to the escrowed pair.
    let opened = sm2_open_envelope(&subject, &escrowed.envelope).unwrap();
    assert_eq!(opened.public_key(), escrowed.public_key.as_slice());
    let public = centre.kms.public_key(&key.id, None).unwrap();
    assert_eq!(point(&public.spki_der), escrowed.public_key.as_slice());
    assert!(sm2_open_envelope(&signing_pair(), &escrowed.envelope).is_err());

    // What anyone encrypts to the encryption certificate's key, the subject decrypts, and the
    // centre's escrowed copy too (recovery).
    let ciphertext = sm2_encrypt(&escrowed.public_key, b"for tax-portal").unwrap();
    assert_eq!(&*opened.decrypt(&ciphertext).unwrap(), b"for tax-portal");
    let recovered = centre.kms.decrypt(&ciphertext, b"", Some(&key.id)).unwrap();
    assert_eq!(recovered.plaintext.as_slice(), b"for tax-portal");

    let events = audit_events(&*centre.store, "kms.escrow.assign");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["pooled"], "true");
    assert_eq!(events[0]["owner"], OWNER);
}

#[test]
fn an_empty_pool_still_assigns_a_fresh_pair() {
    let centre = Centre::unsealed();
    let subject = signing_pair();
    let escrowed = centre
        .kms
        .escrow_encryption_key("ca", OWNER, 1, subject.public_key(), "")
        .unwrap();
    let opened = sm2_open_envelope(&subject, &escrowed.envelope).unwrap();
    assert_eq!(opened.public_key(), escrowed.public_key.as_slice());
    let events = audit_events(&*centre.store, "kms.escrow.assign");
    assert_eq!(events[0]["pooled"], "false");
}

#[test]
fn concurrent_assignments_never_share_a_pair() {
    let centre = Centre::unsealed();
    centre.kms.fill_escrow_pool(6).unwrap();
    let subject = signing_pair();
    let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                scope.spawn(|| {
                    centre
                        .kms
                        .escrow_encryption_key("ca", OWNER, 1, subject.public_key(), "")
                        .unwrap()
                        .public_key
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: BTreeSet<&Vec<u8>> = keys.iter().collect();
    assert_eq!(distinct.len(), 10, "a pair was handed out twice");
    assert_eq!(centre.kms.escrow_pool_size().unwrap(), 0);
}

#[test]
fn a_recipient_that_is_not_an_sm2_key_is_refused_and_nothing_is_taken() {
    let centre = Centre::unsealed();
    centre.kms.fill_escrow_pool(2).unwrap();
    let keys_before = centre.kms.list_keys(0, None).unwrap().0.len();
    let mut off_curve = signing_pair().public_key().to_vec();
    off_curve[64] ^= 1;
    for recipient in [&b"not a key"[..], &off_curve, &[4u8; 65]] {
        let refused = centre
            .kms
            .escrow_encryption_key("ca", OWNER, 1, recipient, "")
            .unwrap_err();
        assert!(
            matches!(
                refused,
                Error::InvalidArgument {
                    field: "recipient_signing_key",
                    ..
                }
            ),
            "{refused}"
        );
    }
    assert_eq!(centre.kms.escrow_pool_size().unwrap(), 2);
    assert_eq!(centre.kms.list_keys(0, None).unwrap().0.len(), keys_before);
}

#[test]
fn a_sealed_centre_neither_fills_nor_assigns() {
    let centre = Centre::sealed();
    assert!(matches!(centre.kms.fill_escrow_pool(1), Err(Error::Sealed)));
    let refused = centre
        .kms
        .escrow_encryption_key("ca", OWNER, 1, signing_pair().public_key(), "");
    assert!(matches!(refused, Err(Error::Sealed)), "{refused:?}");
}

#[test]
fn a_pooled_pair_that_does_not_unseal_is_skipped_never_handed_out() {
    let centre = Centre::unsealed();
    let mut batch = govtrust_store::Batch::new();
    // Sorts before any real pool id ("p-" + hex): tried first.
    batch.put(b"kms/pool/sm2/p-".to_vec(), b"not sealed material".to_vec());
    centre.store.commit(batch).unwrap();
    assert_eq!(centre.kms.fill_escrow_pool(2).unwrap(), 1);
    let subject = signing_pair();
    let escrowed = centre
        .kms
        .escrow_encryption_key("ca", OWNER, 1, subject.public_key(), "")
        .unwrap();
    assert!(sm2_open_envelope(&subject, &escrowed.envelope).is_ok());
    // The good pair was taken; the broken entry stays for an operator to look at.
    assert_eq!(centre.kms.escrow_pool_size().unwrap(), 1);
    assert!(centre.store.get(b"kms/pool/sm2/p-").unwrap().is_some());
}
