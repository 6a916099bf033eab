//! Initialization, sealing and unsealing, restarts, and the binding of sealed records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{Centre, FakeClock, TestAudit, audit_actions, audit_log, field, forge, spec};
use govtrust_kms::{
    Algorithm, BundleId, BundleTerms, Error, ExportSpec, ImportSpec, KeyId, Kms, StateChange,
};
use govtrust_store::{Batch, MemoryStore, RedbStore, Store};

fn is_sealed_error<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::Sealed))
}

#[test]
fn every_key_operation_is_refused_while_sealed() {
    let centre = Centre::sealed();
    let kms = &centre.kms;
    let id = KeyId::generate().unwrap();
    assert!(kms.is_sealed());
    assert!(is_sealed_error(
        kms.create_key("a", spec(Algorithm::Aes256Gcm))
    ));
    assert!(is_sealed_error(kms.key(&id)));
    assert!(is_sealed_error(kms.list_keys(10, None)));
    assert!(is_sealed_error(kms.rotate_key("a", &id)));
    assert!(is_sealed_error(kms.encrypt(&id, b"p", b"")));
    assert!(is_sealed_error(kms.decrypt(b"gtk1", b"", None)));
    assert!(is_sealed_error(kms.generate_data_key(&id, b"")));
    assert!(is_sealed_error(kms.sign(&id, b"m")));
    assert!(is_sealed_error(kms.verify(&id, None, b"m", b"s")));
    assert!(is_sealed_error(kms.public_key(&id, None)));
    assert!(is_sealed_error(kms.set_state(
        "a",
        &id,
        StateChange::Suspend,
        "r"
    )));
    assert!(is_sealed_error(kms.schedule_destruction("a", &id, None)));
    assert!(is_sealed_error(kms.cancel_destruction("a", &id)));
    assert!(is_sealed_error(kms.destroy_due()));
    let export = ExportSpec {
        version: None,
        recipient: "spiffe://gov.example/org/a/sys/b".into(),
        recipient_public_key: vec![9u8; 32],
        exportable: false,
        valid_for: None,
    };
    assert!(is_sealed_error(kms.wrap_for_recipient("a", &id, export)));
    assert!(is_sealed_error(kms.wrapping_public_key()));
    assert!(is_sealed_error(kms.exports(&id)));
    let at = std::time::SystemTime::UNIX_EPOCH;
    let import = ImportSpec {
        encapsulated_key: vec![0; 32],
        ciphertext: vec![0; 48],
        terms: BundleTerms {
            id: BundleId::generate().unwrap(),
            source_centre: "d-0".into(),
            source_key: id.clone(),
            source_version: 1,
            algorithm: Algorithm::Aes256Gcm,
            exporter: "a".into(),
            recipient: "a".into(),
            exportable: false,
            exported_at: at,
            expires_at: at,
        },
        exportable: false,
        description: String::new(),
        owner_generation: 0,
    };
    assert!(is_sealed_error(kms.import_key("a", import)));
    assert!(
        Error::Sealed
            .to_string()
            .contains("unseal it with the custodians' shares")
    );
}

#[test]
fn three_of_five_unseal() {
    let centre = Centre::sealed();
    let kms = &centre.kms;
    let status = kms.seal_status();
    assert_eq!(
        (
            status.sealed,
            status.threshold,
            status.shares_total,
            status.progress
        ),
        (true, 3, 5, 0)
    );
    assert_eq!(centre.shares.len(), 5);
    assert_eq!(
        centre.shares.iter().map(|s| s.index).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );

    let status = kms.unseal(centre.shares[4].contents.as_bytes()).unwrap();
    assert_eq!((status.sealed, status.progress), (true, 1));
    let status = kms.unseal(centre.shares[1].contents.as_bytes()).unwrap();
    assert_eq!((status.sealed, status.progress), (true, 2));
    assert!(kms.is_sealed());
    assert!(is_sealed_error(
        kms.create_key("a", spec(Algorithm::Aes256Gcm))
    ));

    let status = kms.unseal(centre.shares[2].contents.as_bytes()).unwrap();
    assert!(!status.sealed);
    assert!(!kms.is_sealed());
    assert_eq!(
        status.deployment_id,
        field(&centre.shares[0].contents, "deployment")
    );

    // Already unsealed: the status, unchanged, whatever is given.
    assert!(!kms.unseal(b"anything").unwrap().sealed);
    assert_eq!(kms.wrapping_public_key().unwrap().len(), 32);
    assert_eq!(audit_actions(&*centre.store), ["kms.init", "kms.unseal"]);
    assert!(audit_log(&*centre.store)[1].starts_with("kms.unseal|custodian|d-"));
}

#[test]
fn bad_shares_are_rejected_and_progress_kept() {
    let centre = Centre::sealed();
    let kms = &centre.kms;
    let share = centre.shares[0].contents.as_str();
    kms.unseal(share.as_bytes()).unwrap();

    let mut corrupted = share.as_bytes().to_vec();
    corrupted[60] ^= 0x04;
    let reason = invalid_share(kms.unseal(&corrupted));
    assert!(!reason.is_empty());

    let duplicate = invalid_share(kms.unseal(share.as_bytes()));
    assert!(duplicate.contains("already given"), "{duplicate}");

    let other = Centre::sealed();
    let foreign = invalid_share(kms.unseal(other.shares[1].contents.as_bytes()));
    assert!(foreign.contains("deployment"), "{foreign}");

    assert!(invalid_share(kms.unseal(b"")).contains("first line"));
    assert_eq!(kms.seal_status().progress, 1);
}

fn invalid_share<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::InvalidShare { reason }) => reason,
        other => panic!("expected InvalidShare, got {other:?}"),
    }
}

/// Share `index` (1-based) of `centre` with its value changed and the checksum recomputed, as
/// anyone who knows the deployment id (from `SealStatus`) can make it.
fn forged(centre: &Centre, index: usize) -> String {
    let original = centre.shares[index - 1].contents.as_str();
    let mut value = hex::decode(field(original, "share")).unwrap();
    value[5] ^= 0xff;
    forge(original, "share", &hex::encode(value))
}

#[test]
fn forged_share_is_refused_and_does_not_take_its_slot() {
    let centre = Centre::sealed();
    let kms = &centre.kms;
    kms.unseal(centre.shares[0].contents.as_bytes()).unwrap();

    let refused = invalid_share(kms.unseal(forged(&centre, 2).as_bytes()));
    assert!(
        refused.contains("share 2 does not match the share issued for this deployment"),
        "{refused}"
    );
    assert_eq!(kms.seal_status().progress, 1);

    // The real share 2 still has its slot, and the unseal completes.
    let status = kms.unseal(centre.shares[1].contents.as_bytes()).unwrap();
    assert_eq!((status.sealed, status.progress), (true, 2));
    kms.unseal(centre.shares[2].contents.as_bytes()).unwrap();
    assert!(!kms.is_sealed());
    assert_eq!(audit_actions(&*centre.store), ["kms.init", "kms.unseal"]);
}

#[test]
fn forged_share_at_the_threshold_keeps_progress() {
    let centre = Centre::sealed();
    let kms = &centre.kms;
    kms.unseal(centre.shares[0].contents.as_bytes()).unwrap();
    kms.unseal(centre.shares[1].contents.as_bytes()).unwrap();
    let refused = invalid_share(kms.unseal(forged(&centre, 3).as_bytes()));
    assert!(refused.contains("share 3 does not match"), "{refused}");
    assert_eq!(kms.seal_status().progress, 2);
    assert!(kms.is_sealed());

    kms.unseal(centre.shares[2].contents.as_bytes()).unwrap();
    assert!(!kms.is_sealed());
    assert_eq!(audit_actions(&*centre.store), ["kms.init", "kms.unseal"]);
}

#[test]
fn share_of_another_deployment_relabelled_is_refused() {
    let centre = Centre::sealed();
    let other = Centre::sealed();
    let deployment = field(&centre.shares[0].contents, "deployment");
    let relabelled = forge(&other.shares[2].contents, "deployment", deployment);
    centre
        .kms
        .unseal(centre.shares[0].contents.as_bytes())
        .unwrap();
    centre
        .kms
        .unseal(centre.shares[1].contents.as_bytes())
        .unwrap();
    let refused = invalid_share(centre.kms.unseal(relabelled.as_bytes()));
    assert!(refused.contains("share 3 does not match"), "{refused}");
    assert_eq!(centre.kms.seal_status().progress, 2);
}

/// The seal configuration as JSON.
fn seal_config(store: &dyn Store) -> serde_json::Value {
    serde_json::from_slice(&store.get(b"kms/seal").unwrap().unwrap()).unwrap()
}

fn put_seal_config(store: &dyn Store, config: &serde_json::Value) {
    let mut batch = Batch::new();
    batch.put(b"kms/seal", serde_json::to_vec(config).unwrap());
    store.commit(batch).unwrap();
}

#[test]
fn wrong_check_value_fails_the_unseal_and_resets_progress() {
    // Defence in depth: shares that match their commitments but not the check value (the seal
    // configuration was altered) still do not unseal.
    let centre = Centre::sealed();
    let mut config = seal_config(&*centre.store);
    let other = Centre::sealed();
    config["check_value"] = seal_config(&*other.store)["check_value"].clone();
    put_seal_config(&*centre.store, &config);
    let kms = centre.reopen();

    kms.unseal(centre.shares[0].contents.as_bytes()).unwrap();
    kms.unseal(centre.shares[1].contents.as_bytes()).unwrap();
    let failed = kms.unseal(centre.shares[2].contents.as_bytes());
    assert!(
        matches!(failed, Err(Error::UnsealFailed { .. })),
        "{failed:?}"
    );
    assert_eq!(kms.seal_status().progress, 0);
    assert!(kms.is_sealed());
    assert_eq!(
        audit_actions(&*centre.store),
        ["kms.init", "kms.unseal.failed"]
    );
}

#[test]
fn seal_config_holds_one_commitment_per_share_and_decodes_strictly() {
    let centre = Centre::sealed();
    let config = seal_config(&*centre.store);
    let commitments = config["share_commitments"].as_array().unwrap();
    assert_eq!(commitments.len(), 5);
    for (commitment, share) in commitments.iter().zip(&centre.shares) {
        let commitment = commitment.as_str().unwrap();
        assert_eq!(commitment.len(), 64);
        assert!(!share.contents.contains(commitment));
    }

    let mut bad_configs = Vec::new();
    let mut missing = config.clone();
    missing.as_object_mut().unwrap().remove("share_commitments");
    bad_configs.push(missing);
    let mut too_few = config.clone();
    too_few["share_commitments"].as_array_mut().unwrap().pop();
    bad_configs.push(too_few);
    let mut not_hex = config.clone();
    not_hex["share_commitments"][0] = "zz".repeat(32).into();
    bad_configs.push(not_hex);
    let mut short = config.clone();
    short["share_commitments"][1] = "00".repeat(31).into();
    bad_configs.push(short);
    let mut bad_id = config.clone();
    bad_id["deployment_id"] = "d-XYZ".into();
    bad_configs.push(bad_id);
    let mut unknown = config.clone();
    unknown["extra"] = 1.into();
    bad_configs.push(unknown);
    for bad in bad_configs {
        put_seal_config(&*centre.store, &bad);
        let opened = Kms::open(
            Arc::clone(&centre.store),
            Arc::new(TestAudit),
            Arc::new(FakeClock::new()),
        );
        assert!(matches!(opened, Err(Error::Corrupt { .. })), "{bad}");
    }
    put_seal_config(&*centre.store, &config);
    centre.unseal(&centre.reopen());
}

#[test]
fn initialization_rules() {
    let store = MemoryStore::new();
    let clock = FakeClock::new();
    for (m, n) in [(1, 3), (4, 3), (2, 17), (0, 0)] {
        let result = Kms::initialize(&store, &TestAudit, &clock, m, n);
        assert!(
            matches!(
                result,
                Err(Error::InvalidArgument {
                    field: "threshold",
                    ..
                })
            ),
            "{m} of {n}"
        );
    }
    assert!(!Kms::is_initialized(&store).unwrap());
    let empty: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let opened = Kms::open(empty, Arc::new(TestAudit), Arc::new(FakeClock::new()));
    assert!(matches!(opened, Err(Error::NotInitialized)));

    assert_eq!(
        Kms::initialize(&store, &TestAudit, &clock, 2, 2)
            .unwrap()
            .len(),
        2
    );
    assert!(Kms::is_initialized(&store).unwrap());
    let again = Kms::initialize(&store, &TestAudit, &clock, 2, 2);
    assert!(matches!(again, Err(Error::AlreadyInitialized)));
    assert_eq!(
        Kms::initialize(&MemoryStore::new(), &TestAudit, &clock, 16, 16)
            .unwrap()
            .len(),
        16
    );
}

#[test]
fn master_key_is_not_in_the_store() {
    let centre = Centre::sealed();
    let everything = centre.store.scan(b"", None, usize::MAX).unwrap();
    for share in &centre.shares {
        let value = field(&share.contents, "share");
        for (key, stored) in &everything {
            assert!(
                !String::from_utf8_lossy(stored).contains(value),
                "share in {key:?}"
            );
        }
    }
}

#[test]
fn restart_on_redb_comes_up_sealed_and_keys_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("govtrust.redb");
    let (shares, ciphertext, signed, ids) = {
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&path).unwrap());
        let centre = Centre::sealed_on(store);
        centre.unseal(&centre.kms);
        let aes = centre.create(Algorithm::Aes256Gcm);
        let ed = centre.create(Algorithm::Ed25519);
        centre.kms.rotate_key("admin", &aes).unwrap();
        let ciphertext = centre
            .kms
            .encrypt(&aes, b"survives", b"aad")
            .unwrap()
            .ciphertext;
        let signed = centre.kms.sign(&ed, b"message").unwrap().signature;
        (centre.shares, ciphertext, signed, (aes, ed))
    };
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&path).unwrap());
    let kms = Kms::open(store, Arc::new(TestAudit), Arc::new(FakeClock::new())).unwrap();
    assert!(kms.is_sealed());
    for index in [1, 2, 3] {
        kms.unseal(shares[index].contents.as_bytes()).unwrap();
    }
    assert!(!kms.is_sealed());
    let decrypted = kms.decrypt(&ciphertext, b"aad", Some(&ids.0)).unwrap();
    assert_eq!(
        (decrypted.plaintext.as_slice(), decrypted.version),
        (&b"survives"[..], 2)
    );
    assert!(kms.verify(&ids.1, None, b"message", &signed).unwrap());
    assert_eq!(kms.list_keys(0, None).unwrap().0.len(), 2);
}

#[test]
fn reopen_on_the_same_store_decrypts_every_key() {
    let centre = Centre::unsealed();
    let ids: Vec<KeyId> = (0..5)
        .map(|_| centre.create(Algorithm::Aes256Gcm))
        .collect();
    let ciphertexts: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| {
            centre
                .kms
                .encrypt(id, id.as_str().as_bytes(), b"")
                .unwrap()
                .ciphertext
        })
        .collect();
    let kms = centre.reopen();
    assert!(kms.is_sealed());
    centre.unseal(&kms);
    for (id, ciphertext) in ids.iter().zip(&ciphertexts) {
        assert_eq!(
            kms.decrypt(ciphertext, b"", None)
                .unwrap()
                .plaintext
                .as_slice(),
            id.as_str().as_bytes()
        );
    }
}

/// Swaps the values at two store keys.
fn swap(store: &dyn Store, a: &[u8], b: &[u8]) {
    let value_a = store.get(a).unwrap().unwrap();
    let value_b = store.get(b).unwrap().unwrap();
    let mut batch = Batch::new();
    batch.put(a, value_b).put(b, value_a);
    store.commit(batch).unwrap();
}

#[test]
fn swapped_metadata_fails_to_unseal() {
    let centre = Centre::unsealed();
    let a = centre.create(Algorithm::Aes256Gcm);
    let b = centre.create(Algorithm::Aes256Gcm);
    swap(
        &*centre.store,
        format!("kms/meta/{a}").as_bytes(),
        format!("kms/meta/{b}").as_bytes(),
    );
    let kms = centre.reopen();
    centre.unseal(&kms);
    assert!(matches!(kms.key(&a), Err(Error::Corrupt { .. })));
    assert!(matches!(
        kms.encrypt(&b, b"p", b""),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        kms.list_keys(10, None),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn swapped_material_fails_to_unseal() {
    let centre = Centre::unsealed();
    let a = centre.create(Algorithm::Aes256Gcm);
    let b = centre.create(Algorithm::Aes256Gcm);
    let material = |id: &KeyId| format!("kms/material/{id}/00000001").into_bytes();
    swap(&*centre.store, &material(&a), &material(&b));
    let kms = centre.reopen();
    centre.unseal(&kms);
    let error = kms.encrypt(&a, b"p", b"").unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }));
    assert!(error.to_string().contains(a.as_str()), "{error}");
}

#[test]
fn material_moved_to_another_version_fails_to_unseal() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    centre.kms.rotate_key("admin", &id).unwrap();
    let version = |v: u32| format!("kms/material/{id}/{v:08x}").into_bytes();
    swap(&*centre.store, &version(1), &version(2));
    let kms = centre.reopen();
    centre.unseal(&kms);
    assert!(matches!(
        kms.encrypt(&id, b"p", b""),
        Err(Error::Corrupt { .. })
    ));
}
