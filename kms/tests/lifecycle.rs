//! Key states, destruction and listing, through the public API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Centre, audit_actions, audit_log, spec};
use govtrust_kms::{Algorithm, Error, KeyId, KeySpec, KeyState, StateChange};
use govtrust_store::Batch;

/// Brings a fresh key into `state` through legal changes.
fn key_in(centre: &Centre, state: KeyState) -> KeyId {
    let pre_active = KeySpec {
        pre_active: true,
        ..spec(Algorithm::Aes256Gcm)
    };
    let id = centre.kms.create_key("admin", pre_active).unwrap().id;
    let path: &[StateChange] = match state {
        KeyState::PreActive => &[],
        KeyState::Active => &[StateChange::Activate],
        KeyState::Suspended => &[StateChange::Activate, StateChange::Suspend],
        KeyState::Deactivated => &[StateChange::Deactivate],
        KeyState::Compromised => &[StateChange::MarkCompromised],
        KeyState::Destroyed => panic!("destroyed keys are made by destroy_due"),
    };
    for change in path {
        centre
            .kms
            .set_state("admin", &id, *change, "setup")
            .unwrap();
    }
    assert_eq!(centre.kms.key(&id).unwrap().state, state);
    id
}

#[test]
fn transition_table() {
    use KeyState::*;
    use StateChange::*;
    let legal = [
        (PreActive, Activate, Active),
        (Active, Suspend, Suspended),
        (Suspended, Resume, Active),
        (PreActive, Deactivate, Deactivated),
        (Active, Deactivate, Deactivated),
        (Suspended, Deactivate, Deactivated),
        (PreActive, MarkCompromised, Compromised),
        (Active, MarkCompromised, Compromised),
        (Suspended, MarkCompromised, Compromised),
        (Deactivated, MarkCompromised, Compromised),
        (Compromised, MarkCompromised, Compromised),
    ];
    let centre = Centre::unsealed();
    for from in [PreActive, Active, Suspended, Deactivated, Compromised] {
        for change in StateChange::ALL {
            let id = key_in(&centre, from);
            let result = centre.kms.set_state("admin", &id, change, "table");
            match legal.iter().find(|(f, c, _)| *f == from && *c == change) {
                Some((_, _, to)) => assert_eq!(result.unwrap().state, *to, "{from} --{change}-->"),
                None => {
                    let error = result.unwrap_err();
                    assert!(
                        matches!(error, Error::IllegalTransition { from: f, change: c, .. } if f == from && c == change),
                        "{from} --{change}--> gave {error}"
                    );
                    assert!(error.to_string().contains(from.name()), "{error}");
                    assert_eq!(centre.kms.key(&id).unwrap().state, from);
                }
            }
        }
    }
    assert!(audit_actions(&*centre.store).contains(&"kms.key.state".to_owned()));
}

#[test]
fn states_govern_use() {
    let centre = Centre::unsealed();
    let active = key_in(&centre, KeyState::Active);
    let ciphertext = centre.kms.encrypt(&active, b"p", b"").unwrap().ciphertext;

    centre
        .kms
        .set_state("admin", &active, StateChange::Suspend, "investigation")
        .unwrap();
    let error = centre.kms.encrypt(&active, b"p", b"").unwrap_err();
    assert!(matches!(
        error,
        Error::KeyState {
            state: KeyState::Suspended,
            operation: "encrypt",
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        format!("key {active} is suspended: encrypt is not allowed")
    );
    assert!(matches!(
        centre.kms.decrypt(&ciphertext, b"", None),
        Err(Error::KeyState { .. })
    ));
    assert!(matches!(
        centre.kms.rotate_key("admin", &active),
        Err(Error::KeyState { .. })
    ));

    centre
        .kms
        .set_state("admin", &active, StateChange::Resume, "cleared")
        .unwrap();
    centre
        .kms
        .set_state("admin", &active, StateChange::Deactivate, "retired")
        .unwrap();
    assert_eq!(
        centre
            .kms
            .decrypt(&ciphertext, b"", None)
            .unwrap()
            .plaintext
            .as_slice(),
        b"p"
    );
    assert!(matches!(
        centre.kms.encrypt(&active, b"p", b""),
        Err(Error::KeyState { .. })
    ));
    assert!(matches!(
        centre.kms.generate_data_key(&active, b""),
        Err(Error::KeyState { .. })
    ));
    assert!(matches!(
        centre.kms.rotate_key("admin", &active),
        Err(Error::KeyState { .. })
    ));

    let signer = centre.create(Algorithm::Ed25519);
    let signed = centre.kms.sign(&signer, b"m").unwrap();
    centre
        .kms
        .set_state("admin", &signer, StateChange::MarkCompromised, "leaked")
        .unwrap();
    assert!(matches!(
        centre.kms.sign(&signer, b"m"),
        Err(Error::KeyState { .. })
    ));
    // A compromised key protects nothing new, but what it protected stays recoverable
    // (SP 800-57 §5.3.5).
    assert!(
        centre
            .kms
            .verify(&signer, None, b"m", &signed.signature)
            .unwrap()
    );
    centre.kms.public_key(&signer, None).unwrap();

    let pre_active = key_in(&centre, KeyState::PreActive);
    assert!(matches!(
        centre.kms.encrypt(&pre_active, b"p", b""),
        Err(Error::KeyState { .. })
    ));
}

#[test]
fn internal_keys_follow_the_same_rules() {
    let centre = Centre::unsealed();
    let internal = KeySpec {
        internal: true,
        ..spec(Algorithm::EcdsaP256Sha256)
    };
    let id = centre.kms.create_key("govtrust", internal).unwrap().id;
    assert!(centre.kms.key(&id).unwrap().internal);
    centre.kms.sign(&id, b"tbs").unwrap();
    centre
        .kms
        .set_state("govtrust", &id, StateChange::Suspend, "r")
        .unwrap();
    assert!(matches!(
        centre.kms.sign(&id, b"tbs"),
        Err(Error::KeyState { .. })
    ));
}

#[test]
fn destruction_waiting_period_and_cancel() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let ciphertext = centre.kms.encrypt(&id, b"p", b"").unwrap().ciphertext;
    for days in [0, 3, 6, 31] {
        let result = centre.kms.schedule_destruction("admin", &id, Some(days));
        assert!(
            matches!(
                result,
                Err(Error::InvalidArgument {
                    field: "waiting_days",
                    ..
                })
            ),
            "{days}"
        );
    }
    let info = centre
        .kms
        .schedule_destruction("admin", &id, Some(7))
        .unwrap();
    assert_eq!(
        info.destruction_scheduled_at,
        Some(centre.clock.now_plus_days(7))
    );
    assert_eq!(info.state, KeyState::Active);

    let error = centre.kms.encrypt(&id, b"p", b"").unwrap_err();
    assert!(matches!(error, Error::DestructionPending { .. }));
    assert!(
        error
            .to_string()
            .contains("scheduled for destruction at 2025-"),
        "{error}"
    );
    assert!(matches!(
        centre.kms.decrypt(&ciphertext, b"", None),
        Err(Error::DestructionPending { .. })
    ));
    assert!(matches!(
        centre.kms.rotate_key("admin", &id),
        Err(Error::DestructionPending { .. })
    ));
    assert!(matches!(
        centre
            .kms
            .set_state("admin", &id, StateChange::Suspend, "r"),
        Err(Error::DestructionPending { .. })
    ));
    assert!(matches!(
        centre.kms.schedule_destruction("admin", &id, None),
        Err(Error::DestructionPending { .. })
    ));

    let info = centre.kms.cancel_destruction("admin", &id).unwrap();
    assert_eq!(
        (info.state, info.destruction_scheduled_at),
        (KeyState::Active, None)
    );
    assert_eq!(
        centre
            .kms
            .decrypt(&ciphertext, b"", None)
            .unwrap()
            .plaintext
            .as_slice(),
        b"p"
    );
    let again = centre.kms.cancel_destruction("admin", &id);
    assert!(matches!(
        again,
        Err(Error::InvalidArgument { field: "id", .. })
    ));

    // Cancelling restores a non-active state too.
    centre
        .kms
        .set_state("admin", &id, StateChange::Deactivate, "retired")
        .unwrap();
    centre.kms.schedule_destruction("admin", &id, None).unwrap();
    centre.clock.advance_days(29);
    assert!(centre.kms.destroy_due().unwrap().is_empty());
    assert_eq!(
        centre.kms.cancel_destruction("admin", &id).unwrap().state,
        KeyState::Deactivated
    );
    let actions = audit_actions(&*centre.store);
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "kms.key.destroy.schedule")
            .count(),
        2
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "kms.key.destroy.cancel")
            .count(),
        2
    );
}

#[test]
fn due_keys_are_destroyed() {
    let centre = Centre::unsealed();
    let doomed = centre.create(Algorithm::Aes256Gcm);
    let signer = centre.create(Algorithm::EcdsaP384Sha384);
    let kept = centre.create(Algorithm::Aes256Gcm);
    centre.kms.rotate_key("admin", &doomed).unwrap();
    let ciphertext = centre.kms.encrypt(&doomed, b"p", b"").unwrap().ciphertext;
    centre
        .kms
        .schedule_destruction("admin", &doomed, None)
        .unwrap();
    centre
        .kms
        .schedule_destruction("admin", &signer, Some(10))
        .unwrap();

    centre.clock.advance_days(11);
    assert_eq!(
        centre.kms.destroy_due().unwrap(),
        std::slice::from_ref(&signer)
    );
    centre.clock.advance_days(20);
    assert_eq!(
        centre.kms.destroy_due().unwrap(),
        std::slice::from_ref(&doomed)
    );
    assert!(centre.kms.destroy_due().unwrap().is_empty());

    let material = format!("kms/material/{doomed}/");
    assert!(
        centre
            .store
            .scan(material.as_bytes(), None, 100)
            .unwrap()
            .is_empty()
    );
    assert!(
        centre
            .store
            .scan(b"kms/due/", None, 100)
            .unwrap()
            .is_empty()
    );
    let kept_material = format!("kms/material/{kept}/");
    assert_eq!(
        centre
            .store
            .scan(kept_material.as_bytes(), None, 100)
            .unwrap()
            .len(),
        1
    );

    let info = centre.kms.key(&doomed).unwrap();
    assert_eq!(info.state, KeyState::Destroyed);
    assert_eq!(info.destroyed_at, Some(centre.clock.now_plus_days(0)));
    assert_eq!(info.versions.len(), 2);
    let error = centre.kms.encrypt(&doomed, b"p", b"").unwrap_err();
    assert!(matches!(error, Error::KeyDestroyed { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("key {doomed} was destroyed at 2025-")),
        "{error}"
    );
    assert!(matches!(
        centre.kms.decrypt(&ciphertext, b"", None),
        Err(Error::KeyDestroyed { .. })
    ));
    assert!(matches!(
        centre.kms.public_key(&signer, None),
        Err(Error::KeyDestroyed { .. })
    ));
    assert!(matches!(
        centre
            .kms
            .set_state("admin", &doomed, StateChange::MarkCompromised, "r"),
        Err(Error::KeyDestroyed { .. })
    ));
    assert!(matches!(
        centre.kms.cancel_destruction("admin", &doomed),
        Err(Error::KeyDestroyed { .. })
    ));

    // A restarted centre sees the tombstone too.
    let kms = centre.reopen();
    centre.unseal(&kms);
    assert_eq!(kms.key(&doomed).unwrap().state, KeyState::Destroyed);
    assert!(matches!(
        kms.decrypt(&ciphertext, b"", None),
        Err(Error::KeyDestroyed { .. })
    ));
    kms.encrypt(&kept, b"p", b"").unwrap();
    let actions = audit_actions(&*centre.store);
    assert_eq!(
        actions.iter().filter(|a| *a == "kms.key.destroy").count(),
        2
    );
}

#[test]
fn free_text_refuses_control_characters() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let before = audit_actions(&*centre.store).len();
    let forged = "ok\n    99 2024-01-01T00:00:00Z ca.init govtrust \u{1b}[2K";
    let refused = centre
        .kms
        .set_state("admin", &id, StateChange::Suspend, forged)
        .unwrap_err();
    assert!(matches!(
        refused,
        Error::InvalidArgument {
            field: "reason",
            ..
        }
    ));
    assert_eq!(
        refused.to_string(),
        "invalid reason: control characters are not allowed"
    );
    assert_eq!(centre.kms.key(&id).unwrap().state, KeyState::Active);

    let description = KeySpec {
        description: forged.into(),
        ..spec(Algorithm::Aes256Gcm)
    };
    assert!(matches!(
        centre.kms.create_key("admin", description),
        Err(Error::InvalidArgument {
            field: "description",
            ..
        })
    ));
    let owner = KeySpec {
        owner: "spiffe://gov.example/system/tax\r".into(),
        owner_generation: 0,
        ..spec(Algorithm::Aes256Gcm)
    };
    assert!(matches!(
        centre.kms.create_key("admin", owner),
        Err(Error::InvalidArgument { field: "owner", .. })
    ));
    assert_eq!(audit_actions(&*centre.store).len(), before);

    centre
        .kms
        .set_state("admin", &id, StateChange::Suspend, "审计要求暂停")
        .unwrap();
}

#[test]
fn listing_pages_through_every_key() {
    let centre = Centre::unsealed();
    let mut ids: Vec<KeyId> = (0..7)
        .map(|_| centre.create(Algorithm::Aes256Gcm))
        .collect();
    ids.sort();
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = centre.kms.list_keys(3, token.as_deref()).unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.into_iter().map(|k| k.id));
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let bad = centre.kms.list_keys(3, Some("not-a-token"));
    assert!(matches!(
        bad,
        Err(Error::InvalidArgument {
            field: "page_token",
            ..
        })
    ));
}

#[test]
fn key_ids_and_names_parse() {
    assert!(KeyId::parse("k-0123456789abcdef0123456789abcdef").is_ok());
    for bad in [
        "",
        "k-",
        "k-0123456789ABCDEF0123456789abcdef",
        "x-0123456789abcdef0123456789abcdef",
        "k-0123",
    ] {
        assert!(
            matches!(KeyId::parse(bad), Err(Error::InvalidKeyId { .. })),
            "{bad}"
        );
    }
    let id = KeyId::generate().unwrap();
    assert_eq!(KeyId::parse(id.as_str()).unwrap(), id);
    for algorithm in Algorithm::ALL {
        assert_eq!(
            algorithm.to_string().parse::<Algorithm>().unwrap(),
            algorithm
        );
    }
    assert_eq!(Algorithm::Aes256Gcm.to_string(), "aes-256-gcm");
    for state in KeyState::ALL {
        assert_eq!(state.to_string().parse::<KeyState>().unwrap(), state);
    }
    assert_eq!(KeyState::PreActive.to_string(), "pre-active");
    for change in StateChange::ALL {
        assert_eq!(change.to_string().parse::<StateChange>().unwrap(), change);
    }
    assert!("rsa-2048".parse::<Algorithm>().is_err());
}

#[test]
fn audit_failure_fails_closed() {
    use std::sync::Arc;

    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let audit = Arc::new(common::SwitchAudit::default());
    let kms = govtrust_kms::Kms::open(
        Arc::clone(&centre.store),
        audit.clone(),
        centre.clock.clone(),
    )
    .unwrap();
    for share in &centre.shares[..2] {
        kms.unseal(share.contents.as_bytes()).unwrap();
    }
    audit.fail(true);
    assert!(matches!(
        kms.unseal(centre.shares[2].contents.as_bytes()),
        Err(Error::Store(_))
    ));
    assert!(kms.is_sealed());

    audit.fail(false);
    centre.unseal(&kms);
    audit.fail(true);
    let keys_before = kms.list_keys(100, None).unwrap().0.len();
    assert!(matches!(
        kms.create_key("admin", spec(Algorithm::Aes256Gcm)),
        Err(Error::Store(_))
    ));
    assert_eq!(kms.list_keys(100, None).unwrap().0.len(), keys_before);
    assert!(matches!(
        kms.set_state("admin", &id, StateChange::Suspend, "r"),
        Err(Error::Store(_))
    ));
    assert!(matches!(kms.rotate_key("admin", &id), Err(Error::Store(_))));
    assert!(matches!(
        kms.schedule_destruction("admin", &id, None),
        Err(Error::Store(_))
    ));
    let info = kms.key(&id).unwrap();
    assert_eq!(
        (
            info.state,
            info.primary_version,
            info.destruction_scheduled_at
        ),
        (KeyState::Active, 1, None)
    );
    assert!(
        centre
            .store
            .scan(format!("kms/material/{id}/").as_bytes(), None, 10)
            .unwrap()
            .len()
            == 1
    );
}

#[test]
fn compromised_keys_still_decrypt_and_every_such_use_is_audited() {
    let centre = Centre::unsealed();
    let key = centre.create(Algorithm::Aes256Gcm);
    let ciphertext = centre
        .kms
        .encrypt(&key, b"tax record", b"aad")
        .unwrap()
        .ciphertext;
    centre
        .kms
        .audit_retired_use("spiffe://gov.example/org/f/sys/tax", &key, "decrypt")
        .unwrap();
    assert!(
        !audit_actions(centre.store.as_ref()).contains(&"kms.key.use.retired".to_owned()),
        "uses of an active key go to the usage ledger, not one event each"
    );
    centre
        .kms
        .set_state("admin", &key, StateChange::MarkCompromised, "leaked")
        .unwrap();
    let opened = centre.kms.decrypt(&ciphertext, b"aad", None).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"tax record");
    for refused in [
        centre.kms.encrypt(&key, b"p", b"").map(|_| ()),
        centre.kms.generate_data_key(&key, b"").map(|_| ()),
    ] {
        assert!(
            matches!(refused, Err(Error::KeyState { .. })),
            "{refused:?}"
        );
    }
    centre
        .kms
        .audit_retired_use("spiffe://gov.example/org/f/sys/tax", &key, "decrypt")
        .unwrap();
    let log = audit_log(centre.store.as_ref());
    let used = log
        .iter()
        .filter(|e| e.contains("kms.key.use.retired"))
        .collect::<Vec<_>>();
    assert_eq!(used.len(), 1, "{log:?}");
    assert!(
        used[0].contains("spiffe://gov.example/org/f/sys/tax"),
        "{used:?}"
    );
}

#[test]
fn immediate_destruction_commits_with_its_approval_and_erases_the_material() {
    let centre = Centre::unsealed();
    let key = centre.create(Algorithm::Aes256Gcm);
    let ciphertext = centre.kms.encrypt(&key, b"p", b"").unwrap().ciphertext;
    // The approval's writes: here a marker that must commit with the destruction, and a guard
    // that fails the second time, as an executed approval does.
    let mut approval = Batch::new();
    approval
        .expect_absent(b"approval/request/x".to_vec())
        .put(b"approval/request/x".to_vec(), b"executed".to_vec());
    let info = centre
        .kms
        .destroy_now(
            "spiffe://gov.example/person/security-admin",
            &key,
            "court order",
            &approval,
        )
        .unwrap();
    assert_eq!(info.state, KeyState::Destroyed);
    assert!(centre.store.get(b"approval/request/x").unwrap().is_some());
    assert!(matches!(
        centre.kms.decrypt(&ciphertext, b"", None),
        Err(Error::KeyDestroyed { .. })
    ));
    let log = audit_log(centre.store.as_ref());
    let destroyed = log.iter().find(|e| e.contains("kms.key.destroy")).unwrap();
    assert!(destroyed.contains("security-admin"), "{destroyed}");
    let again = centre.kms.destroy_now("a", &key, "", &Batch::new());
    assert!(
        matches!(again, Err(Error::KeyDestroyed { .. })),
        "{again:?}"
    );
}

#[test]
fn a_state_change_with_a_spent_approval_changes_nothing() {
    let centre = Centre::unsealed();
    let key = centre.create(Algorithm::Aes256Gcm);
    let mut spent = Batch::new();
    spent
        .expect_absent(b"audit/".to_vec())
        .expect(b"approval/request/y".to_vec(), Some(b"pending".to_vec()));
    let result = centre
        .kms
        .set_state_approved("admin", &key, StateChange::Suspend, "", &spent);
    assert!(result.is_err(), "{result:?}");
    assert_eq!(centre.kms.key(&key).unwrap().state, KeyState::Active);
}
