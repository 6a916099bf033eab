//! Key export (wrapped to a recipient with HPKE) and import.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Centre, audit_actions};
use govtrust_kms::{Algorithm, Error, ImportSpec, KeyState, StateChange, WrappedKey};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, Serializable};

type Recipient = <X25519HkdfSha256 as Kem>::PrivateKey;

/// A recipient whose private key the test holds.
fn recipient() -> (Recipient, Vec<u8>) {
    let (private, public) = X25519HkdfSha256::gen_keypair();
    (private, public.to_bytes().to_vec())
}

/// What a recipient does: opens the wrapped key per the documented suite and info.
fn unwrap(private: &Recipient, wrapped: &WrappedKey) -> Vec<u8> {
    let encapped =
        <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&wrapped.encapsulated_key).unwrap();
    let info = format!("govtrust-key-transfer-v1|{}", wrapped.algorithm);
    hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        private,
        &encapped,
        info.as_bytes(),
        &wrapped.ciphertext,
        b"",
    )
    .unwrap()
}

fn import_spec(wrapped: &WrappedKey) -> ImportSpec {
    ImportSpec {
        algorithm: wrapped.algorithm,
        encapsulated_key: wrapped.encapsulated_key.clone(),
        ciphertext: wrapped.ciphertext.clone(),
        exportable: true,
        description: "imported".into(),
        owner: "spiffe://gov.example/system/dr".into(),
    }
}

#[test]
fn non_exportable_keys_stay_in() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let (_, public) = recipient();
    let error = centre
        .kms
        .wrap_for_recipient("admin", &id, None, &public)
        .unwrap_err();
    assert!(matches!(error, Error::NotExportable { .. }));
    assert!(!audit_actions(&*centre.store).contains(&"kms.key.export".to_owned()));
}

#[test]
fn export_needs_an_active_key_and_a_real_recipient() {
    let centre = Centre::unsealed();
    let id = centre.create_exportable(Algorithm::Ed25519);
    let short = centre
        .kms
        .wrap_for_recipient("admin", &id, None, &[1u8; 31]);
    assert!(matches!(
        short,
        Err(Error::InvalidArgument {
            field: "recipient_public_key",
            ..
        })
    ));
    let (_, public) = recipient();
    let unknown = centre
        .kms
        .wrap_for_recipient("admin", &id, Some(2), &public);
    assert!(matches!(
        unknown,
        Err(Error::UnknownVersion { version: 2, .. })
    ));
    centre
        .kms
        .set_state("admin", &id, StateChange::Suspend, "hold")
        .unwrap();
    let suspended = centre.kms.wrap_for_recipient("admin", &id, None, &public);
    assert!(matches!(
        suspended,
        Err(Error::KeyState {
            operation: "export",
            ..
        })
    ));
}

#[test]
fn exported_signing_keys_import_and_sign_alike() {
    let centre = Centre::unsealed();
    let wrapping = centre.kms.wrapping_public_key().unwrap();
    for algorithm in [
        Algorithm::EcdsaP256Sha256,
        Algorithm::EcdsaP384Sha384,
        Algorithm::Ed25519,
    ] {
        let original = centre.create_exportable(algorithm);
        let wrapped = centre
            .kms
            .wrap_for_recipient("admin", &original, None, &wrapping)
            .unwrap();
        assert_eq!(
            (&wrapped.key_id, wrapped.version, wrapped.algorithm),
            (&original, 1, algorithm)
        );
        let imported = centre
            .kms
            .import_key("admin", import_spec(&wrapped))
            .unwrap();
        assert_ne!(imported.id, original);
        assert_eq!(
            (imported.state, imported.primary_version, imported.algorithm),
            (KeyState::Active, 1, algorithm)
        );
        assert!(imported.exportable);

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
    let wrapped = centre
        .kms
        .wrap_for_recipient("admin", &original, Some(1), &wrapping)
        .unwrap();
    assert_eq!(wrapped.version, 1);
    let imported = centre
        .kms
        .import_key("admin", import_spec(&wrapped))
        .unwrap();
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

    let (private, public) = recipient();
    let from_original = centre
        .kms
        .wrap_for_recipient("admin", &original, Some(1), &public)
        .unwrap();
    let from_imported = centre
        .kms
        .wrap_for_recipient("admin", &imported.id, None, &public)
        .unwrap();
    let material = unwrap(&private, &from_original);
    assert_eq!(material.len(), 32);
    assert_eq!(material, unwrap(&private, &from_imported));
    let newer = centre
        .kms
        .wrap_for_recipient("admin", &original, None, &public)
        .unwrap();
    assert_eq!(newer.version, 2);
    assert_ne!(unwrap(&private, &newer), material);

    let actions = audit_actions(&*centre.store);
    assert_eq!(actions.iter().filter(|a| *a == "kms.key.export").count(), 4);
    assert_eq!(actions.iter().filter(|a| *a == "kms.key.import").count(), 1);
}

#[test]
fn imports_are_checked() {
    let centre = Centre::unsealed();
    let wrapping = centre.kms.wrapping_public_key().unwrap();
    let aes = centre.create_exportable(Algorithm::Aes256Gcm);
    let wrapped = centre
        .kms
        .wrap_for_recipient("admin", &aes, None, &wrapping)
        .unwrap();

    let as_other = ImportSpec {
        algorithm: Algorithm::Ed25519,
        ..import_spec(&wrapped)
    };
    assert!(matches!(
        centre.kms.import_key("admin", as_other),
        Err(Error::Authentication)
    ));
    let mut tampered = import_spec(&wrapped);
    tampered.ciphertext[0] ^= 1;
    assert!(matches!(
        centre.kms.import_key("admin", tampered),
        Err(Error::Authentication)
    ));
    let short = ImportSpec {
        encapsulated_key: vec![1; 5],
        ..import_spec(&wrapped)
    };
    assert!(matches!(
        centre.kms.import_key("admin", short),
        Err(Error::InvalidArgument { .. })
    ));

    let forged = ImportSpec {
        description: "imported\n    99 ca.init".into(),
        ..import_spec(&wrapped)
    };
    assert!(matches!(
        centre.kms.import_key("admin", forged),
        Err(Error::InvalidArgument {
            field: "description",
            ..
        })
    ));

    // Material that opens but is not a key of the algorithm named.
    let (enc, ct) = seal_to(&wrapping, Algorithm::EcdsaP256Sha256, b"not pkcs8");
    let junk = ImportSpec {
        algorithm: Algorithm::EcdsaP256Sha256,
        encapsulated_key: enc,
        ciphertext: ct,
        ..import_spec(&wrapped)
    };
    assert!(matches!(
        centre.kms.import_key("admin", junk),
        Err(Error::InvalidArgument {
            field: "ciphertext",
            ..
        })
    ));
}

/// Wraps arbitrary bytes to the centre, as a foreign system would.
fn seal_to(public: &[u8], algorithm: Algorithm, plaintext: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let public = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(public).unwrap();
    let info = format!("govtrust-key-transfer-v1|{algorithm}");
    let (enc, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &hpke::OpModeS::Base,
        &public,
        info.as_bytes(),
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
