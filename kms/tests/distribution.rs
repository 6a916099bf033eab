//! Key export (wrapped to a recipient with HPKE, as a bound, single-use bundle) and import, and
//! the attacks on bundles that must fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::{Centre, audit_actions, audit_events};
use govtrust_kms::{
    Algorithm, BundleId, BundleTerms, Error, ExportSpec, ImportSpec, KeyId, KeyOrigin, KeyState,
    StateChange, WrappedKey,
};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, Serializable};

type Recipient = <X25519HkdfSha256 as Kem>::PrivateKey;

/// The identity that creates and exports the test keys (see `Centre::create`).
const EXPORTER: &str = "spiffe://gov.example/admin";
/// The system a bundle is addressed to.
const DR: &str = "spiffe://gov.example/org/dr/sys/backup";
/// Another enrolled system.
const OTHER: &str = "spiffe://gov.example/org/tax/sys/portal";
/// The security administrator.
const SECURITY: &str = "spiffe://gov.example/person/security-admin";

/// A recipient whose private key the test holds.
fn recipient() -> (Recipient, Vec<u8>) {
    let (private, public) = X25519HkdfSha256::gen_keypair();
    (private, public.to_bytes().to_vec())
}

/// The documented `info`, rebuilt independently of the crate: prefix, then u32 BE length and
/// bytes of each field in order.
fn documented_info(terms: &BundleTerms) -> Vec<u8> {
    let ms = |at: std::time::SystemTime| at.duration_since(UNIX_EPOCH).unwrap().as_millis();
    let fields = [
        terms.algorithm.name().to_owned(),
        terms.id.to_string(),
        terms.source_centre.clone(),
        terms.source_key.to_string(),
        terms.source_version.to_string(),
        terms.exporter.clone(),
        terms.recipient.clone(),
        terms.exportable.to_string(),
        terms.encryptions.to_string(),
        ms(terms.exported_at).to_string(),
        ms(terms.expires_at).to_string(),
    ];
    let mut info = b"govtrust-key-transfer-v3".to_vec();
    for field in fields {
        info.extend_from_slice(&(field.len() as u32).to_be_bytes());
        info.extend_from_slice(field.as_bytes());
    }
    info
}

/// What a recipient outside govtrust does: opens the wrapped key per the documented suite.
fn unwrap(private: &Recipient, wrapped: &WrappedKey) -> Vec<u8> {
    let encapped =
        <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&wrapped.encapsulated_key).unwrap();
    let info = documented_info(&wrapped.terms);
    assert_eq!(info, wrapped.terms.hpke_info());
    hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        private,
        &encapped,
        &info,
        &wrapped.ciphertext,
        b"",
    )
    .unwrap()
}

/// An export of the primary version to `to`, wrapped to `public`.
fn export_to(to: &str, public: &[u8]) -> ExportSpec {
    ExportSpec {
        version: None,
        recipient: to.into(),
        recipient_public_key: public.to_vec(),
        exportable: false,
        valid_for: None,
        encryptions: None,
    }
}

/// Wraps `id` to the centre itself for `to`.
fn bundle(centre: &Centre, id: &KeyId, to: &str) -> WrappedKey {
    let wrapping = centre.kms.wrapping_public_key().unwrap();
    centre
        .kms
        .wrap_for_recipient(EXPORTER, id, export_to(to, &wrapping))
        .unwrap()
}

fn import_spec(wrapped: &WrappedKey) -> ImportSpec {
    ImportSpec {
        encapsulated_key: wrapped.encapsulated_key.clone(),
        ciphertext: wrapped.ciphertext.clone(),
        terms: wrapped.terms.clone(),
        exportable: false,
        description: "imported".into(),
        owner_generation: 0,
    }
}

#[test]
fn non_exportable_keys_stay_in() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let (_, public) = recipient();
    let error = centre
        .kms
        .wrap_for_recipient(EXPORTER, &id, export_to(DR, &public))
        .unwrap_err();
    assert!(matches!(error, Error::NotExportable { .. }));
    assert!(!audit_actions(&*centre.store).contains(&"kms.key.export".to_owned()));
}

#[test]
fn export_needs_an_active_key_a_real_recipient_and_a_sane_window() {
    let centre = Centre::unsealed();
    let id = centre.create_exportable(Algorithm::Ed25519);
    let (_, public) = recipient();
    let export = |spec: ExportSpec| centre.kms.wrap_for_recipient(EXPORTER, &id, spec);
    let short = export(export_to(DR, &[1u8; 31]));
    assert!(matches!(
        short,
        Err(Error::InvalidArgument {
            field: "recipient_public_key",
            ..
        })
    ));
    for nobody in [
        "",
        "dr-system",
        "spiffe://",
        "https://gov.example/org/dr/sys/backup",
    ] {
        let anyone = export(export_to(nobody, &public));
        assert!(
            matches!(
                anyone,
                Err(Error::InvalidArgument {
                    field: "recipient",
                    ..
                })
            ),
            "{nobody:?}: {anyone:?}"
        );
    }
    for days in [0, 31] {
        let window = export(ExportSpec {
            valid_for: Some(Duration::from_secs(days * 86_400)),
            ..export_to(DR, &public)
        });
        assert!(matches!(
            window,
            Err(Error::InvalidArgument {
                field: "valid_for",
                ..
            })
        ));
    }
    let unknown = export(ExportSpec {
        version: Some(2),
        ..export_to(DR, &public)
    });
    assert!(matches!(
        unknown,
        Err(Error::UnknownVersion { version: 2, .. })
    ));
    centre
        .kms
        .set_state("admin", &id, StateChange::Suspend, "hold")
        .unwrap();
    let suspended = export(export_to(DR, &public));
    assert!(matches!(
        suspended,
        Err(Error::KeyState {
            operation: "export",
            ..
        })
    ));
    assert!(!audit_actions(&*centre.store).contains(&"kms.key.export".to_owned()));
}

#[test]
fn exported_signing_keys_import_and_sign_alike() {
    let centre = Centre::unsealed();
    for algorithm in [
        Algorithm::EcdsaP256Sha256,
        Algorithm::EcdsaP384Sha384,
        Algorithm::Ed25519,
    ] {
        let original = centre.create_exportable(algorithm);
        let wrapped = bundle(&centre, &original, DR);
        let terms = &wrapped.terms;
        assert_eq!(
            (&terms.source_key, terms.source_version, terms.algorithm),
            (&original, 1, algorithm)
        );
        assert_eq!(
            (terms.exporter.as_str(), terms.recipient.as_str()),
            (EXPORTER, DR)
        );
        assert!(!terms.exportable);
        let window = terms.expires_at.duration_since(terms.exported_at).unwrap();
        assert_eq!(window, Duration::from_secs(86_400));
        let imported = centre.kms.import_key(DR, import_spec(&wrapped)).unwrap();
        assert_ne!(imported.id, original);
        assert_eq!(
            (imported.state, imported.primary_version, imported.algorithm),
            (KeyState::Active, 1, algorithm)
        );
        assert_eq!(imported.owner, DR, "the recipient owns the copy");
        assert!(!imported.exportable, "the bundle did not allow re-export");

        let signed = centre.kms.sign(&imported.id, b"same key?").unwrap();
        assert!(
            centre
                .kms
                .verify(&original, None, b"same key?", &signed.signature)
                .unwrap()
        );
        assert_eq!(
            centre.kms.public_key(&imported.id, None).unwrap().spki_der,
            centre.kms.public_key(&original, None).unwrap().spki_der
        );
    }
}

#[test]
fn exported_aes_key_imports_with_the_same_material() {
    let centre = Centre::unsealed();
    let original = centre.create_exportable(Algorithm::Aes256Gcm);
    centre.kms.rotate_key("admin", &original).unwrap();
    let wrapping = centre.kms.wrapping_public_key().unwrap();
    let version_one = ExportSpec {
        version: Some(1),
        exportable: true,
        ..export_to(DR, &wrapping)
    };
    let wrapped = centre
        .kms
        .wrap_for_recipient(EXPORTER, &original, version_one)
        .unwrap();
    assert_eq!(wrapped.terms.source_version, 1);
    let spec = ImportSpec {
        exportable: true,
        ..import_spec(&wrapped)
    };
    let imported = centre.kms.import_key(DR, spec).unwrap();
    assert!(imported.exportable, "the bundle allowed re-export");
    let roundtrip = centre.kms.encrypt(&imported.id, b"works", b"").unwrap();
    assert_eq!(
        centre
            .kms
            .decrypt(&roundtrip.ciphertext, b"", None)
            .unwrap()
            .plaintext
            .as_slice(),
        b"works"
    );

    // A recipient outside govtrust opens bundles with the documented suite and info.
    let (private, public) = recipient();
    let from_original = centre
        .kms
        .wrap_for_recipient(
            EXPORTER,
            &original,
            ExportSpec {
                version: Some(1),
                ..export_to(DR, &public)
            },
        )
        .unwrap();
    let from_imported = centre
        .kms
        .wrap_for_recipient(DR, &imported.id, export_to(OTHER, &public))
        .unwrap();
    let material = unwrap(&private, &from_original);
    assert_eq!(material.len(), 32);
    assert_eq!(material, unwrap(&private, &from_imported));
    let newer = centre
        .kms
        .wrap_for_recipient(EXPORTER, &original, export_to(DR, &public))
        .unwrap();
    assert_eq!(newer.terms.source_version, 2);
    assert_ne!(unwrap(&private, &newer), material);

    let actions = audit_actions(&*centre.store);
    assert_eq!(actions.iter().filter(|a| *a == "kms.key.export").count(), 4);
    assert_eq!(actions.iter().filter(|a| *a == "kms.key.import").count(), 1);
}

#[test]
fn a_bundle_imports_once() {
    let centre = Centre::unsealed();
    let original = centre.create_exportable(Algorithm::Aes256Gcm);
    let wrapped = bundle(&centre, &original, DR);
    let first = centre.kms.import_key(DR, import_spec(&wrapped)).unwrap();
    centre.clock.advance(Duration::from_secs(5));

    let again = centre
        .kms
        .import_key(DR, import_spec(&wrapped))
        .unwrap_err();
    let message = again.to_string();
    assert!(
        matches!(&again, Error::BundleUsed { bundle, key, .. }
            if *bundle == wrapped.terms.id && *key == first.id),
        "{again:?}"
    );
    assert!(
        message.contains(&format!(
            "bundle {} was already imported as key {} at ",
            wrapped.terms.id, first.id
        )),
        "{message}"
    );
    // Single use survives a restart: it is in the store, not in memory.
    let kms = centre.reopen();
    centre.unseal(&kms);
    assert!(matches!(
        kms.import_key(DR, import_spec(&wrapped)),
        Err(Error::BundleUsed { .. })
    ));
    let imports = audit_events(&*centre.store, "kms.key.import");
    assert_eq!(imports.len(), 1);
}

#[test]
fn concurrent_imports_of_one_bundle_make_one_key() {
    let centre = Arc::new(Centre::unsealed());
    let original = centre.create_exportable(Algorithm::Ed25519);
    let wrapped = Arc::new(bundle(&centre, &original, DR));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (centre, wrapped) = (Arc::clone(&centre), Arc::clone(&wrapped));
            std::thread::spawn(move || centre.kms.import_key(DR, import_spec(&wrapped)))
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(refused, Error::BundleUsed { .. }), "{refused:?}");
    }
    assert_eq!(audit_events(&*centre.store, "kms.key.import").len(), 1);
}

#[test]
fn only_the_named_recipient_imports() {
    let centre = Centre::unsealed();
    let original = centre.create_exportable(Algorithm::Aes256Gcm);
    let wrapped = bundle(&centre, &original, DR);
    for intruder in [OTHER, SECURITY, EXPORTER] {
        let refused = centre
            .kms
            .import_key(intruder, import_spec(&wrapped))
            .unwrap_err();
        assert!(
            matches!(&refused, Error::NotRecipient { recipient, importer, .. }
                if recipient == DR && importer == intruder),
            "{refused:?}"
        );
        let message = refused.to_string();
        assert!(
            message.contains(DR) && message.contains(intruder),
            "{message}"
        );
    }
    // The refusals did not use the bundle up.
    let imported = centre.kms.import_key(DR, import_spec(&wrapped)).unwrap();
    assert_eq!(imported.owner, DR);
}

#[test]
fn altered_terms_do_not_unwrap() {
    let centre = Centre::unsealed();
    let original = centre.create_exportable(Algorithm::Aes256Gcm);
    let wrapped = bundle(&centre, &original, DR);
    // The intruder readdresses the bundle to itself...
    let mut readdressed = import_spec(&wrapped);
    readdressed.terms.recipient = OTHER.into();
    assert!(matches!(
        centre.kms.import_key(OTHER, readdressed),
        Err(Error::BundleUnwrap { .. })
    ));
    // ...or the recipient widens it, extends it, or hides where it came from.
    let alterations: [&dyn Fn(&mut BundleTerms); 5] = [
        &|t| t.exportable = true,
        &|t| t.expires_at += Duration::from_secs(86_400 * 365),
        &|t| t.source_key = KeyId::generate().unwrap(),
        &|t| t.exporter = "spiffe://gov.example/person/nobody".into(),
        &|t| t.id = BundleId::generate().unwrap(),
    ];
    for alter in alterations {
        let mut spec = import_spec(&wrapped);
        alter(&mut spec.terms);
        assert!(matches!(
            centre.kms.import_key(DR, spec),
            Err(Error::BundleUnwrap { .. })
        ));
    }
    assert!(!audit_actions(&*centre.store).contains(&"kms.key.import".to_owned()));
    centre.kms.import_key(DR, import_spec(&wrapped)).unwrap();
}

#[test]
fn an_import_never_widens_the_bundle() {
    let centre = Centre::unsealed();
    let original = centre.create_exportable(Algorithm::Ed25519);
    let wrapped = bundle(&centre, &original, DR);
    let widened = ImportSpec {
        exportable: true,
        ..import_spec(&wrapped)
    };
    let refused = centre.kms.import_key(DR, widened).unwrap_err();
    assert!(
        matches!(refused, Error::BundleWidened { .. }),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("re-export"), "{refused}");
    let imported = centre.kms.import_key(DR, import_spec(&wrapped)).unwrap();
    assert!(!imported.exportable);
    let (_, public) = recipient();
    assert!(matches!(
        centre
            .kms
            .wrap_for_recipient(DR, &imported.id, export_to(OTHER, &public)),
        Err(Error::NotExportable { .. })
    ));
}

#[test]
fn bundles_expire() {
    let centre = Centre::unsealed();
    let original = centre.create_exportable(Algorithm::Aes256Gcm);
    let wrapping = centre.kms.wrapping_public_key().unwrap();
    let hour = ExportSpec {
        valid_for: Some(Duration::from_secs(3600)),
        ..export_to(DR, &wrapping)
    };
    let wrapped = centre
        .kms
        .wrap_for_recipient(EXPORTER, &original, hour)
        .unwrap();
    centre.clock.advance(Duration::from_secs(3600));
    let refused = centre
        .kms
        .import_key(DR, import_spec(&wrapped))
        .unwrap_err();
    assert!(
        matches!(refused, Error::BundleExpired { at, .. } if at == wrapped.terms.expires_at),
        "{refused:?}"
    );
}

#[test]
fn events_and_metadata_say_where_a_key_comes_from() {
    let centre = Centre::unsealed();
    let original = centre.create_exportable(Algorithm::Aes256Gcm);
    let wrapped = bundle(&centre, &original, DR);
    let bundle_id = wrapped.terms.id.to_string();
    let exports = audit_events(&*centre.store, "kms.key.export");
    let export = exports.last().unwrap();
    assert_eq!(export["actor"], EXPORTER);
    assert_eq!(export["target"], original.as_str());
    assert_eq!(export["bundle"], bundle_id);
    assert_eq!(export["recipient"], DR);
    assert_eq!(export["exportable"], "false");

    let imported = centre.kms.import_key(DR, import_spec(&wrapped)).unwrap();
    let imports = audit_events(&*centre.store, "kms.key.import");
    let import = imports.last().unwrap();
    assert_eq!(import["actor"], DR);
    assert_eq!(import["target"], imported.id.as_str());
    assert_eq!(import["bundle"], bundle_id);
    assert_eq!(import["source_key"], original.as_str());
    assert_eq!(import["source_version"], "1");
    assert_eq!(import["exporter"], EXPORTER);
    assert_eq!(import["owner"], DR);

    let info = centre.kms.key(&imported.id).unwrap();
    assert_eq!(info.created_by, DR);
    assert_eq!(
        info.origin,
        KeyOrigin::Imported(Box::new(wrapped.terms.clone()))
    );
    let source = centre.kms.key(&original).unwrap();
    assert_eq!(source.origin, KeyOrigin::Generated);
    assert_eq!(source.created_by, EXPORTER);

    // The source lists the bundle and the copy it became.
    let listed = centre.kms.exports(&original).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].terms, wrapped.terms);
    let copy = listed[0].imported.as_ref().unwrap();
    assert_eq!((&copy.key, copy.by.as_str()), (&imported.id, DR));
    // Origin survives a restart.
    let kms = centre.reopen();
    centre.unseal(&kms);
    assert_eq!(kms.key(&imported.id).unwrap(), info);
}

#[test]
fn a_source_scheduled_for_destruction_takes_its_bundles_with_it() {
    let centre = Centre::unsealed();
    let original = centre.create_exportable(Algorithm::Aes256Gcm);
    let imported_bundle = bundle(&centre, &original, DR);
    let copy = centre
        .kms
        .import_key(DR, import_spec(&imported_bundle))
        .unwrap();
    let pending = bundle(&centre, &original, OTHER);
    let wrapping = centre.kms.wrapping_public_key().unwrap();
    let month = ExportSpec {
        valid_for: Some(Duration::from_secs(30 * 86_400)),
        ..export_to(SECURITY, &wrapping)
    };
    let offsite = centre
        .kms
        .wrap_for_recipient(EXPORTER, &original, month)
        .unwrap();

    centre
        .kms
        .schedule_destruction("admin", &original, Some(7))
        .unwrap();
    let refused = centre
        .kms
        .import_key(OTHER, import_spec(&pending))
        .unwrap_err();
    assert!(
        matches!(&refused, Error::BundleRevoked { source_key, .. } if *source_key == original),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("scheduled for destruction"),
        "{refused}"
    );

    centre.clock.advance_days(8);
    assert_eq!(centre.kms.destroy_due().unwrap(), vec![original.clone()]);
    let destroyed = audit_events(&*centre.store, "kms.key.destroy");
    let destroyed = destroyed.last().unwrap();
    for bundle in [&imported_bundle, &pending, &offsite] {
        let listed = format!("{}>{}", bundle.terms.id, bundle.terms.recipient);
        assert!(destroyed["bundles"].contains(&listed), "{destroyed:?}");
    }
    assert_eq!(destroyed["copies"], copy.id.as_str());
    let scheduled = audit_events(&*centre.store, "kms.key.destroy.schedule");
    assert_eq!(scheduled.last().unwrap()["copies"], copy.id.as_str());

    let refused = centre
        .kms
        .import_key(SECURITY, import_spec(&offsite))
        .unwrap_err();
    assert!(
        refused.to_string().contains("was destroyed at"),
        "{refused}"
    );
    // The tombstone still lists what left; the copy is a key of its own.
    assert_eq!(centre.kms.exports(&original).unwrap().len(), 3);
    centre.kms.encrypt(&copy.id, b"still mine", b"").unwrap();
}

#[test]
fn a_forged_bundle_naming_a_key_of_this_centre_is_refused() {
    let centre = Centre::unsealed();
    let original = centre.create_exportable(Algorithm::Aes256Gcm);
    let genuine = bundle(&centre, &original, DR);
    // An intruder holding some AES key wraps it with terms that claim this centre's key as the
    // source, to plant a copy with a false origin.
    let wrapping = centre.kms.wrapping_public_key().unwrap();
    let terms = BundleTerms {
        id: BundleId::generate().unwrap(),
        ..genuine.terms.clone()
    };
    let (enc, ct) = seal_to(&wrapping, &terms, &[7u8; 32]);
    let forged = ImportSpec {
        encapsulated_key: enc,
        ciphertext: ct,
        terms,
        exportable: false,
        description: String::new(),
        owner_generation: 0,
    };
    let refused = centre.kms.import_key(DR, forged).unwrap_err();
    assert!(
        matches!(&refused, Error::BundleUnknown { source_key, .. } if *source_key == original),
        "{refused:?}"
    );
}

#[test]
fn a_bundle_from_another_centre_imports_once_for_its_recipient() {
    let source = Centre::unsealed();
    let target = Centre::unsealed();
    let original = source.create_exportable(Algorithm::Ed25519);
    let wrapping = target.kms.wrapping_public_key().unwrap();
    let wrapped = source
        .kms
        .wrap_for_recipient(EXPORTER, &original, export_to(DR, &wrapping))
        .unwrap();
    assert!(matches!(
        source.kms.import_key(DR, import_spec(&wrapped)),
        Err(Error::BundleUnwrap { .. })
    ));
    assert!(matches!(
        target.kms.import_key(OTHER, import_spec(&wrapped)),
        Err(Error::NotRecipient { .. })
    ));
    let copy = target.kms.import_key(DR, import_spec(&wrapped)).unwrap();
    assert_eq!(
        target.kms.public_key(&copy.id, None).unwrap().spki_der,
        source.kms.public_key(&original, None).unwrap().spki_der
    );
    let KeyOrigin::Imported(terms) = copy.origin else {
        panic!("not imported: {:?}", copy.origin);
    };
    assert_eq!(terms.source_centre, wrapped.terms.source_centre);
    assert_ne!(
        terms.source_centre,
        target.kms.seal_status().deployment_id,
        "the origin names the other centre"
    );
    assert!(matches!(
        target.kms.import_key(DR, import_spec(&wrapped)),
        Err(Error::BundleUsed { .. })
    ));
}

#[test]
fn imports_are_checked() {
    let centre = Centre::unsealed();
    let wrapping = centre.kms.wrapping_public_key().unwrap();
    let aes = centre.create_exportable(Algorithm::Aes256Gcm);
    let wrapped = bundle(&centre, &aes, DR);

    let mut tampered = import_spec(&wrapped);
    tampered.ciphertext[0] ^= 1;
    assert!(matches!(
        centre.kms.import_key(DR, tampered),
        Err(Error::BundleUnwrap { .. })
    ));
    let short = ImportSpec {
        encapsulated_key: vec![1; 5],
        ..import_spec(&wrapped)
    };
    assert!(matches!(
        centre.kms.import_key(DR, short),
        Err(Error::InvalidArgument { .. })
    ));

    let forged = ImportSpec {
        description: "imported\n    99 ca.init".into(),
        ..import_spec(&wrapped)
    };
    assert!(matches!(
        centre.kms.import_key(DR, forged),
        Err(Error::InvalidArgument {
            field: "description",
            ..
        })
    ));

    // A foreign bundle whose exporter would forge a line in a human view of the audit log.
    let mut terms = foreign_terms(Algorithm::Aes256Gcm);
    terms.exporter = "x\n    99 ca.init".into();
    let (enc, ct) = seal_to(&wrapping, &terms, &[7u8; 32]);
    let lying = ImportSpec {
        encapsulated_key: enc,
        ciphertext: ct,
        terms,
        ..import_spec(&wrapped)
    };
    assert!(matches!(
        centre.kms.import_key(DR, lying),
        Err(Error::InvalidArgument {
            field: "exporter",
            ..
        })
    ));

    // Terms too large for HPKE's info are refused before they reach it (hpke would panic).
    let mut huge = import_spec(&wrapped);
    huge.terms.exporter = "x".repeat(70_000);
    assert!(matches!(
        centre.kms.import_key(DR, huge),
        Err(Error::InvalidArgument {
            field: "exporter",
            ..
        })
    ));

    // Material that opens but is not a key of the algorithm named.
    let terms = foreign_terms(Algorithm::EcdsaP256Sha256);
    let (enc, ct) = seal_to(&wrapping, &terms, b"not pkcs8");
    let junk = ImportSpec {
        encapsulated_key: enc,
        ciphertext: ct,
        terms,
        ..import_spec(&wrapped)
    };
    assert!(matches!(
        centre.kms.import_key(DR, junk),
        Err(Error::InvalidArgument {
            field: "ciphertext",
            ..
        })
    ));
}

/// Terms of a bundle from some other centre, addressed to `DR`.
fn foreign_terms(algorithm: Algorithm) -> BundleTerms {
    let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    BundleTerms {
        id: BundleId::generate().unwrap(),
        source_centre: "d-00000000000000000000000000000000".into(),
        source_key: KeyId::generate().unwrap(),
        source_version: 1,
        algorithm,
        exporter: "spiffe://other.example/person/security-admin".into(),
        recipient: DR.into(),
        exportable: false,
        encryptions: 1 << 20,
        exported_at: now,
        expires_at: now + Duration::from_secs(3600),
    }
}

/// Wraps arbitrary bytes to the centre under `terms`, as a foreign centre would.
fn seal_to(public: &[u8], terms: &BundleTerms, plaintext: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let public = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(public).unwrap();
    let (enc, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &hpke::OpModeS::Base,
        &public,
        &documented_info(terms),
        plaintext,
        b"",
    )
    .unwrap();
    (enc.to_bytes().to_vec(), ct)
}

#[test]
fn wrapping_key_survives_a_restart() {
    let centre = Centre::unsealed();
    let before = centre.kms.wrapping_public_key().unwrap();
    let kms = centre.reopen();
    assert!(matches!(kms.wrapping_public_key(), Err(Error::Sealed)));
    centre.unseal(&kms);
    assert_eq!(kms.wrapping_public_key().unwrap(), before);
}

#[test]
fn many_exports_never_make_a_key_impossible_to_destroy() {
    let centre = Centre::unsealed();
    let id = centre.create_exportable(Algorithm::Aes256Gcm);
    let long = format!("spiffe://gov.example/org/dr/sys/{}", "a".repeat(300));
    let wrapping = centre.kms.wrapping_public_key().unwrap();
    let refused = centre
        .kms
        .wrap_for_recipient(EXPORTER, &id, export_to(&long, &wrapping));
    assert!(
        matches!(
            &refused,
            Err(Error::InvalidArgument {
                field: "recipient",
                ..
            })
        ),
        "{refused:?}"
    );
    let recipient = format!("spiffe://gov.example/org/dr/sys/{}", "b".repeat(200));
    for _ in 0..30 {
        bundle(&centre, &id, &recipient);
    }
    centre
        .kms
        .schedule_destruction(SECURITY, &id, Some(7))
        .unwrap();
    let events = audit_events(centre.store.as_ref(), "kms.key.destroy.schedule");
    let event = events.last().unwrap();
    assert_eq!(event["bundles_total"], "30");
    assert_eq!(event["bundles"].split(',').count(), 20);
}

#[test]
fn a_copy_imported_here_counts_against_its_sources_encryption_budget() {
    let centre = Centre::unsealed();
    let id = centre.create_exportable(Algorithm::Aes256Gcm);
    centre.kms.encrypt(&id, b"p", b"").unwrap();
    let copy = centre
        .kms
        .import_key(DR, import_spec(&bundle(&centre, &id, DR)))
        .unwrap();
    centre.kms.encrypt(&copy.id, b"p", b"").unwrap();
    let counters = centre.store.scan(b"kms/nonces/", None, 100).unwrap();
    let names: Vec<String> = counters
        .iter()
        .map(|(key, _)| String::from_utf8_lossy(key).into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(copy.id.as_str())),
        "the same material must not get a fresh budget: {names:?}"
    );
    assert_eq!(names.len(), 1, "one counter, the source's: {names:?}");
    assert!(names[0].contains(id.as_str()), "{names:?}");
}

#[test]
fn a_copy_in_another_centre_gets_only_the_encryptions_its_source_gave_up() {
    let limit = govtrust_kms::EncryptionLimit::new(100, 4).unwrap();
    let source = Centre::unsealed_with(limit);
    let target = Centre::unsealed_with(limit);
    let id = source.create_exportable(Algorithm::Aes256Gcm);
    for _ in 0..10 {
        source.kms.encrypt(&id, b"p", b"").unwrap();
    }
    // Ten made, twelve reserved (three blocks of four): half of the other 88 go with the bundle.
    let wrapping = target.kms.wrapping_public_key().unwrap();
    let wrapped = source
        .kms
        .wrap_for_recipient(EXPORTER, &id, export_to(DR, &wrapping))
        .unwrap();
    assert_eq!(wrapped.terms.encryptions, 44);
    let exported = audit_events(source.store.as_ref(), "kms.key.export");
    assert_eq!(exported.last().unwrap()["encryptions"], "44");

    // The allotment is bound: a copy that claims more does not unwrap.
    let mut greedy = import_spec(&wrapped);
    greedy.terms.encryptions = 1 << 30;
    assert!(matches!(
        target.kms.import_key(DR, greedy),
        Err(Error::BundleUnwrap { .. })
    ));

    let copy = target.kms.import_key(DR, import_spec(&wrapped)).unwrap();
    let copy_versions: Vec<u32> = (0..46)
        .map(|_| target.kms.encrypt(&copy.id, b"c", b"").unwrap().version)
        .collect();
    assert_eq!(copy_versions[..44], [1; 44], "the copy makes its 44");
    assert_eq!(
        copy_versions[44..],
        [2, 2],
        "then rotates to material of its own"
    );
    let source_versions: Vec<u32> = (0..48)
        .map(|_| source.kms.encrypt(&id, b"p", b"").unwrap().version)
        .collect();
    let source_ones = 10 + source_versions.iter().filter(|v| **v == 1).count();
    assert_eq!(
        source_ones + 44,
        100,
        "source and copy together make exactly the version's 100"
    );
    assert_eq!(source_versions.last(), Some(&2));
}

#[test]
fn an_allotment_is_checked() {
    let limit = govtrust_kms::EncryptionLimit::new(100, 4).unwrap();
    let source = Centre::unsealed_with(limit);
    let target = Centre::unsealed_with(limit);
    let aes = source.create_exportable(Algorithm::Aes256Gcm);
    let elsewhere = target.kms.wrapping_public_key().unwrap();
    let too_many = ExportSpec {
        encryptions: Some(101),
        ..export_to(DR, &elsewhere)
    };
    let refused = source
        .kms
        .wrap_for_recipient(EXPORTER, &aes, too_many)
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("has 100 encryptions left to give"),
        "{refused}"
    );
    assert!(
        source.kms.exports(&aes).unwrap().is_empty(),
        "nothing half-written"
    );
    let chosen = ExportSpec {
        encryptions: Some(100),
        ..export_to(DR, &elsewhere)
    };
    let all = source
        .kms
        .wrap_for_recipient(EXPORTER, &aes, chosen)
        .unwrap();
    assert_eq!(all.terms.encryptions, 100);
    // The source gave everything away: its next encryption is under a new version.
    assert_eq!(source.kms.encrypt(&aes, b"p", b"").unwrap().version, 2);

    let signing = source.create_exportable(Algorithm::Ed25519);
    let for_signing = ExportSpec {
        encryptions: Some(5),
        ..export_to(DR, &elsewhere)
    };
    assert!(matches!(
        source
            .kms
            .wrap_for_recipient(EXPORTER, &signing, for_signing),
        Err(Error::InvalidArgument {
            field: "encryptions",
            ..
        })
    ));
    let here = source.kms.wrapping_public_key().unwrap();
    let local = ExportSpec {
        encryptions: Some(5),
        ..export_to(DR, &here)
    };
    let other = source.create_exportable(Algorithm::Aes256Gcm);
    assert!(matches!(
        source.kms.wrap_for_recipient(EXPORTER, &other, local),
        Err(Error::InvalidArgument {
            field: "encryptions",
            ..
        })
    ));
    assert_eq!(bundle(&source, &other, DR).terms.encryptions, 0);
}

#[test]
fn destroying_the_source_does_not_give_its_copy_here_a_fresh_budget() {
    let centre = Centre::unsealed_with(govtrust_kms::EncryptionLimit::new(10, 1).unwrap());
    let id = centre.create_exportable(Algorithm::Aes256Gcm);
    let copy = centre
        .kms
        .import_key(DR, import_spec(&bundle(&centre, &id, DR)))
        .unwrap();
    let under_v1 = (0..10)
        .filter(|_| centre.kms.encrypt(&id, b"p", b"").unwrap().version == 1)
        .count();
    assert_eq!(under_v1, 10, "the source used the whole shared budget");
    centre
        .kms
        .destroy_now(SECURITY, &id, "retired", &govtrust_store::Batch::new())
        .unwrap();
    let copy_v1 = (0..5)
        .filter(|_| centre.kms.encrypt(&copy.id, b"c", b"").unwrap().version == 1)
        .count();
    assert_eq!(
        copy_v1, 0,
        "the same material made {copy_v1} more encryptions"
    );
}
