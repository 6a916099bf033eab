//! Initialization, sealing and unsealing, restarts, and the binding of sealed records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{
    Centre, FakeClock, SwitchAudit, TestAudit, audit_actions, audit_log, field, forge, spec,
};
use govtrust_kms::{
    Algorithm, BundleId, BundleTerms, Clock, DEFAULT_UNSEAL_TIMEOUT, Error, ExportSpec, ImportSpec,
    KeyId, Kms, StateChange,
};
use govtrust_store::{AuditEvent, AuditSink, Batch, MemoryStore, RedbStore, Store};

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
        encryptions: None,
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
            encryptions: 0,
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
    assert_eq!(
        audit_actions(&*centre.store),
        [
            "kms.init",
            "kms.unseal.share",
            "kms.unseal.share",
            "kms.unseal",
            "kms.unseal.share"
        ]
    );
    assert!(audit_log(&*centre.store)[3].starts_with("kms.unseal|custodian|d-"));
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
    // Unseal needs no certificate: a forged share must not learn this deployment's id.
    let own = kms.seal_status().deployment_id;
    assert!(!foreign.contains(&own), "{foreign} reveals {own}");

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
    assert_eq!(
        audit_actions(&*centre.store),
        [
            "kms.init",
            "kms.unseal.share",
            "kms.unseal.rejected",
            "kms.unseal.share",
            "kms.unseal"
        ]
    );
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
    assert_eq!(
        audit_actions(&*centre.store),
        [
            "kms.init",
            "kms.unseal.share",
            "kms.unseal.share",
            "kms.unseal.rejected",
            "kms.unseal"
        ]
    );
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
        [
            "kms.init",
            "kms.unseal.share",
            "kms.unseal.share",
            "kms.unseal.failed"
        ]
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

/// Appends `action|actor|target|name=value;...` to the batch: events with their details.
struct DetailAudit;

impl AuditSink for DetailAudit {
    fn stage(&self, batch: &mut Batch, event: &AuditEvent) -> Result<(), govtrust_store::Error> {
        let details: Vec<String> = event
            .details
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let line = format!(
            "{}|{}|{}|{}",
            event.action,
            event.actor,
            event.target,
            details.join(";")
        );
        batch.append(common::AUDIT_PREFIX, line);
        Ok(())
    }
}

/// A clock moved by seconds.
struct StepClock(Mutex<SystemTime>);

impl StepClock {
    fn new() -> Arc<StepClock> {
        Arc::new(StepClock(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
        )))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for StepClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// `centre`'s store opened again with `sink` and `clock`: sealed, no attempt in progress.
fn reopen_with(centre: &Centre, sink: Arc<dyn AuditSink>, clock: Arc<dyn Clock>) -> Kms {
    Kms::open(Arc::clone(&centre.store), sink, clock).unwrap()
}

/// The committed events of `action`, with their details.
fn events(store: &dyn Store, action: &str) -> Vec<String> {
    let prefix = format!("{action}|");
    audit_log(store)
        .into_iter()
        .filter(|line| line.starts_with(&prefix))
        .collect()
}

#[test]
fn unseal_progress_expires_and_the_next_answer_says_so() {
    let centre = Centre::sealed();
    let clock = StepClock::new();
    let kms = reopen_with(&centre, Arc::new(DetailAudit), clock.clone());
    let share = |n: usize| centre.shares[n - 1].contents.as_bytes();

    let first = kms.unseal(share(1)).unwrap();
    assert_eq!(first.progress, 1);
    assert!(!first.progress_reset);
    let deadline = clock.now() + DEFAULT_UNSEAL_TIMEOUT;
    assert_eq!(first.attempt_expires_at, Some(deadline));
    clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(kms.unseal(share(2)).unwrap().progress, 2);

    // Ten minutes after the first share, the attempt is gone: the third share does not unseal.
    clock.advance(Duration::from_secs(60));
    let status = kms.seal_status();
    assert_eq!((status.progress, status.progress_reset), (0, true));
    assert_eq!(status.attempt_expires_at, None);
    let late = kms.unseal(share(3)).unwrap();
    assert!(late.sealed, "shares older than the timeout were used");
    assert_eq!((late.progress, late.progress_reset), (1, true));
    // Reported once; the new attempt runs from its own first share.
    let next = kms.unseal(share(4)).unwrap();
    assert_eq!((next.progress, next.progress_reset), (2, false));
    assert_eq!(
        next.attempt_expires_at,
        Some(clock.now() + DEFAULT_UNSEAL_TIMEOUT)
    );
    assert!(!kms.unseal(share(1)).unwrap().sealed);

    let expired = events(&*centre.store, "kms.unseal.expired");
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert!(
        expired[0].contains("shares=2;timeout_seconds=600"),
        "{expired:?}"
    );
}

#[test]
fn the_unseal_timeout_is_configurable_and_swept() {
    let centre = Centre::sealed();
    let clock = StepClock::new();
    let kms = reopen_with(&centre, Arc::new(DetailAudit), clock.clone())
        .with_unseal_timeout(Duration::from_secs(30));
    kms.unseal(centre.shares[0].contents.as_bytes()).unwrap();
    clock.advance(Duration::from_secs(29));
    assert!(!kms.expire_unseal_attempt().unwrap());
    assert_eq!(kms.seal_status().progress, 1);
    clock.advance(Duration::from_secs(1));
    assert!(kms.expire_unseal_attempt().unwrap());
    assert!(!kms.expire_unseal_attempt().unwrap());
    let answer = kms.unseal(centre.shares[1].contents.as_bytes()).unwrap();
    assert_eq!((answer.progress, answer.progress_reset), (1, true));
}

#[test]
fn every_unseal_attempt_is_audited_with_index_peer_and_outcome() {
    let centre = Centre::sealed();
    let kms = reopen_with(&centre, Arc::new(DetailAudit), Arc::new(FakeClock::new()));
    let share = |n: usize| centre.shares[n - 1].contents.as_str();
    let peer = "192.0.2.7:50123";

    kms.unseal_from(share(2).as_bytes(), peer).unwrap();
    let mut corrupted = share(4).as_bytes().to_vec();
    corrupted[60] ^= 0x04;
    invalid_share(kms.unseal_from(&corrupted, peer));
    invalid_share(kms.unseal_from(share(2).as_bytes(), peer));
    invalid_share(kms.unseal_from(b"not a share", peer));
    kms.unseal_from(share(5).as_bytes(), peer).unwrap();
    kms.unseal_from(share(1).as_bytes(), "198.51.100.1:443")
        .unwrap();
    kms.unseal_from(share(3).as_bytes(), peer).unwrap();

    let log = audit_log(&*centre.store);
    let attempts: Vec<&str> = log.iter().skip(1).map(String::as_str).collect();
    let deployment = field(share(1), "deployment");
    let expected = [
        format!(
            "kms.unseal.share|custodian|{deployment}|share=2;peer={peer};outcome=accepted (1/3)"
        ),
        format!(
            "kms.unseal.rejected|custodian|{deployment}|share=4;peer={peer};outcome=rejected;reason=invalid unseal share: the checksum does not match"
        ),
        format!(
            "kms.unseal.rejected|custodian|{deployment}|share=2;peer={peer};outcome=rejected;reason=invalid unseal share: share 2 was already given in this unseal attempt"
        ),
        format!(
            "kms.unseal.rejected|custodian|{deployment}|share=unknown;peer={peer};outcome=rejected;reason=invalid unseal share: the first line is not govtrust-unseal-share-v1: is this a share file?"
        ),
        format!(
            "kms.unseal.share|custodian|{deployment}|share=5;peer={peer};outcome=accepted (2/3)"
        ),
        format!("kms.unseal|custodian|{deployment}|share=1;peer=198.51.100.1:443;outcome=unsealed"),
        format!(
            "kms.unseal.share|custodian|{deployment}|share=3;peer={peer};outcome=ignored: already unsealed"
        ),
    ];
    assert_eq!(attempts.len(), expected.len(), "{attempts:#?}");
    for (got, want) in attempts.iter().zip(&expected) {
        assert!(got.starts_with(want.as_str()), "{got}\n  expected {want}");
    }
    // No event carries share material.
    for share in &centre.shares {
        let value = field(&share.contents, "share");
        assert!(log.iter().all(|line| !line.contains(value)));
    }
}

#[test]
fn an_accepted_share_that_cannot_be_audited_is_taken_back() {
    let centre = Centre::sealed();
    let audit = Arc::new(SwitchAudit::default());
    let kms = reopen_with(&centre, audit.clone(), Arc::new(FakeClock::new()));
    kms.unseal(centre.shares[0].contents.as_bytes()).unwrap();
    audit.fail(true);
    assert!(kms.unseal(centre.shares[1].contents.as_bytes()).is_err());
    assert!(kms.unseal(b"garbage").is_err());
    assert_eq!(kms.seal_status().progress, 1);
    assert!(kms.unseal(centre.shares[2].contents.as_bytes()).is_err());
    assert!(kms.is_sealed(), "unsealed without an audit event");
    audit.fail(false);
    kms.unseal(centre.shares[1].contents.as_bytes()).unwrap();
    kms.unseal(centre.shares[2].contents.as_bytes()).unwrap();
    assert!(!kms.is_sealed());
}

/// Asserts every key operation on `id` is refused as sealed.
fn assert_sealed(kms: &Kms, id: &KeyId, ciphertext: &[u8]) {
    assert!(kms.is_sealed());
    assert!(is_sealed_error(kms.key(id)));
    assert!(is_sealed_error(kms.encrypt(id, b"p", b"")));
    assert!(is_sealed_error(kms.decrypt(ciphertext, b"", None)));
    assert!(is_sealed_error(kms.generate_data_key(id, b"")));
    assert!(is_sealed_error(kms.list_keys(10, None)));
    assert!(is_sealed_error(kms.rotate_key("a", id)));
    assert!(is_sealed_error(kms.wrapping_public_key()));
    assert!(is_sealed_error(
        kms.create_key("a", spec(Algorithm::Aes256Gcm))
    ));
}

#[test]
fn seal_drops_a_running_centre_until_threshold_shares_unseal_it_again() {
    let centre = Centre::sealed();
    let kms = reopen_with(&centre, Arc::new(DetailAudit), Arc::new(FakeClock::new()));
    centre.unseal(&kms);
    let id = kms
        .create_key(
            "spiffe://gov.example/person/security-admin",
            spec(Algorithm::Aes256Gcm),
        )
        .unwrap()
        .id;
    let ciphertext = kms.encrypt(&id, b"before", b"").unwrap().ciphertext;

    let admin = "spiffe://gov.example/person/security-admin";
    let status = kms
        .seal(admin, "203.0.113.9:4000", "suspected intrusion")
        .unwrap();
    assert!(status.sealed);
    assert_eq!(status.progress, 0);
    assert_sealed(&kms, &id, &ciphertext);
    let sealed = events(&*centre.store, "kms.seal");
    assert_eq!(sealed.len(), 1);
    assert!(
        sealed[0].starts_with(&format!(
            "kms.seal|{admin}|{}|peer=203.0.113.9:4000;reason=suspected intrusion;was=unsealed",
            field(&centre.shares[0].contents, "deployment")
        )),
        "{sealed:?}"
    );

    // Two shares are not enough; three are, and the key works again.
    kms.unseal(centre.shares[3].contents.as_bytes()).unwrap();
    kms.unseal(centre.shares[4].contents.as_bytes()).unwrap();
    assert_sealed(&kms, &id, &ciphertext);
    kms.unseal(centre.shares[0].contents.as_bytes()).unwrap();
    assert_eq!(
        kms.decrypt(&ciphertext, b"", None)
            .unwrap()
            .plaintext
            .as_slice(),
        b"before"
    );
}

#[test]
fn seal_discards_an_unseal_attempt_and_seals_even_when_the_audit_log_fails() {
    let centre = Centre::sealed();
    let audit = Arc::new(SwitchAudit::default());
    let kms = reopen_with(&centre, audit.clone(), Arc::new(FakeClock::new()));
    kms.unseal(centre.shares[0].contents.as_bytes()).unwrap();
    kms.unseal(centre.shares[1].contents.as_bytes()).unwrap();
    let status = kms.seal("admin", "local", "").unwrap();
    assert_eq!((status.sealed, status.progress), (true, 0));
    // The attempt is gone: one more share does not unseal.
    assert_eq!(
        kms.unseal(centre.shares[2].contents.as_bytes())
            .unwrap()
            .progress,
        1
    );
    kms.unseal(centre.shares[3].contents.as_bytes()).unwrap();
    kms.unseal(centre.shares[4].contents.as_bytes()).unwrap();
    assert!(!kms.is_sealed());

    audit.fail(true);
    assert!(kms.seal("admin", "local", "").is_err());
    assert!(
        kms.is_sealed(),
        "a failing audit log kept the centre unsealed"
    );

    let refused = kms.seal("admin", "local", "line\nbreak");
    assert!(matches!(
        refused,
        Err(Error::InvalidArgument {
            field: "reason",
            ..
        })
    ));
}

#[test]
fn seal_status_debug_and_errors_do_not_leak_shares() {
    let centre = Centre::sealed();
    centre
        .kms
        .unseal(centre.shares[0].contents.as_bytes())
        .unwrap();
    let debug = format!("{:?}", centre.kms);
    let value = field(&centre.shares[0].contents, "share");
    assert!(!debug.contains(value), "{debug}");
}

#[test]
fn a_flood_of_forged_shares_writes_a_bounded_number_of_records() {
    let centre = Centre::sealed();
    let kms = centre.reopen();
    let other = Centre::sealed();
    for _ in 0..200 {
        assert!(kms.unseal(other.shares[0].contents.as_bytes()).is_err());
    }
    let rejected = audit_actions(centre.store.as_ref())
        .iter()
        .filter(|a| *a == "kms.unseal.rejected")
        .count();
    assert_eq!(
        rejected, 20,
        "one fsync per forged share would be unbounded"
    );
    // Real shares are never throttled.
    centre.unseal(&kms);
    assert!(!kms.is_sealed());
}
