//! Encryption, data keys, signatures and public keys, for every algorithm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Centre, audit_actions};
use govtrust_kms::{Algorithm, Error, KeyId, Kms};
use ring::signature::{self, UnparsedPublicKey};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

const SIGNING: [Algorithm; 4] = [
    Algorithm::EcdsaP256Sha256,
    Algorithm::EcdsaP384Sha384,
    Algorithm::Ed25519,
    Algorithm::Sm2Sm3,
];

#[test]
fn encrypt_decrypt_round_trip() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    for plaintext in [&b""[..], b"x", &[7u8; 1024], &[1u8; 100_000]] {
        let encrypted = centre.kms.encrypt(&id, plaintext, b"context").unwrap();
        assert_eq!((&encrypted.key_id, encrypted.version), (&id, 1));
        assert_eq!(
            Kms::ciphertext_key(&encrypted.ciphertext).unwrap(),
            (id.clone(), 1)
        );
        let decrypted = centre
            .kms
            .decrypt(&encrypted.ciphertext, b"context", Some(&id))
            .unwrap();
        assert_eq!(decrypted.plaintext.as_slice(), plaintext);
        assert_eq!((decrypted.key_id, decrypted.version), (id.clone(), 1));
    }
}

#[test]
fn tampering_and_wrong_aad_fail_authentication() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let ciphertext = centre
        .kms
        .encrypt(&id, b"secret", b"aad")
        .unwrap()
        .ciphertext;
    for position in 43..ciphertext.len() {
        let mut tampered = ciphertext.clone();
        tampered[position] ^= 0x80;
        assert!(
            matches!(
                centre.kms.decrypt(&tampered, b"aad", None),
                Err(Error::Authentication)
            ),
            "{position}"
        );
    }
    assert!(matches!(
        centre.kms.decrypt(&ciphertext, b"aaD", None),
        Err(Error::Authentication)
    ));
    assert!(matches!(
        centre.kms.decrypt(&ciphertext, b"", None),
        Err(Error::Authentication)
    ));
    assert_eq!(
        Error::Authentication.to_string(),
        "ciphertext or AAD failed authentication"
    );
}

#[test]
fn ciphertext_relabelled_to_another_key_fails() {
    let centre = Centre::unsealed();
    let a = centre.create(Algorithm::Aes256Gcm);
    let b = centre.create(Algorithm::Aes256Gcm);
    let mut ciphertext = centre.kms.encrypt(&a, b"secret", b"").unwrap().ciphertext;
    ciphertext[5..39].copy_from_slice(b.as_str().as_bytes());
    assert!(matches!(
        centre.kms.decrypt(&ciphertext, b"", None),
        Err(Error::Authentication)
    ));
}

#[test]
fn truncated_and_garbage_ciphertexts_are_malformed() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let ciphertext = centre.kms.encrypt(&id, b"", b"").unwrap().ciphertext;
    for len in 0..ciphertext.len() {
        let result = centre.kms.decrypt(&ciphertext[..len], b"", None);
        assert!(
            matches!(result, Err(Error::MalformedCiphertext { .. })),
            "length {len}"
        );
    }
    for garbage in [&b"garbage"[..], &[0u8; 200], b"gtk1\x05k-abc"] {
        assert!(matches!(
            centre.kms.decrypt(garbage, b"", None),
            Err(Error::MalformedCiphertext { .. })
        ));
        assert!(matches!(
            Kms::ciphertext_key(garbage),
            Err(Error::MalformedCiphertext { .. })
        ));
    }
}

#[test]
fn unknown_key_version_and_expected_key() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let other = centre.create(Algorithm::Aes256Gcm);
    let mut ciphertext = centre.kms.encrypt(&id, b"p", b"").unwrap().ciphertext;
    let wrong = centre.kms.decrypt(&ciphertext, b"", Some(&other));
    assert!(matches!(
        wrong,
        Err(Error::InvalidArgument {
            field: "key_id",
            ..
        })
    ));
    ciphertext[42] = 9;
    assert!(matches!(
        centre.kms.decrypt(&ciphertext, b"", None),
        Err(Error::UnknownVersion { version: 9, .. })
    ));
    let missing = KeyId::generate().unwrap();
    assert!(matches!(
        centre.kms.encrypt(&missing, b"p", b""),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        centre.kms.key(&missing),
        Err(Error::KeyNotFound { .. })
    ));
}

#[test]
fn wrong_algorithm_is_refused() {
    let centre = Centre::unsealed();
    for algorithm in SIGNING {
        let id = centre.create(algorithm);
        let error = centre.kms.encrypt(&id, b"p", b"").unwrap_err();
        assert!(
            matches!(
                error,
                Error::WrongAlgorithm {
                    operation: "encrypt",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains(algorithm.name()), "{error}");
        assert!(matches!(
            centre.kms.generate_data_key(&id, b""),
            Err(Error::WrongAlgorithm { .. })
        ));
    }
    let aes = centre.create(Algorithm::Aes256Gcm);
    assert!(matches!(
        centre.kms.sign(&aes, b"m"),
        Err(Error::WrongAlgorithm {
            operation: "sign",
            ..
        })
    ));
    assert!(matches!(
        centre.kms.verify(&aes, None, b"m", b"s"),
        Err(Error::WrongAlgorithm { .. })
    ));
    assert!(matches!(
        centre.kms.public_key(&aes, None),
        Err(Error::WrongAlgorithm { .. })
    ));
}

#[test]
fn data_keys_decrypt_to_their_plaintext() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let data_key = centre.kms.generate_data_key(&id, b"backup").unwrap();
    assert_eq!(data_key.plaintext.len(), 32);
    let decrypted = centre
        .kms
        .decrypt(&data_key.encrypted.ciphertext, b"backup", Some(&id))
        .unwrap();
    assert_eq!(
        decrypted.plaintext.as_slice(),
        data_key.plaintext.as_slice()
    );
    let other = centre.kms.generate_data_key(&id, b"backup").unwrap();
    assert_ne!(other.plaintext.as_slice(), data_key.plaintext.as_slice());
}

#[test]
fn debug_output_holds_no_secrets() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    let data_key = centre.kms.generate_data_key(&id, b"").unwrap();
    let decrypted = centre
        .kms
        .decrypt(&data_key.encrypted.ciphertext, b"", None)
        .unwrap();
    let share = hex::decode(common::field(&centre.shares[0].contents, "share")).unwrap();
    for (printed, secret) in [
        (format!("{data_key:?}"), data_key.plaintext.as_slice()),
        (format!("{decrypted:?}"), decrypted.plaintext.as_slice()),
        (format!("{:?}", centre.shares[0]), &share[1..]),
        (format!("{:?}", centre.kms), &share[1..]),
    ] {
        assert_no_secret(&printed, secret);
    }
}

/// Neither hex (either case), nor `Debug` of the bytes, nor any 8 raw bytes of `secret`.
fn assert_no_secret(printed: &str, secret: &[u8]) {
    assert!(!printed.contains(&hex::encode(secret)), "{printed}");
    assert!(!printed.contains(&hex::encode_upper(secret)), "{printed}");
    assert!(!printed.contains(&format!("{secret:?}")), "{printed}");
    let raw = printed.as_bytes();
    assert!(
        !secret.windows(8).any(|s| raw.windows(8).any(|w| w == s)),
        "{printed}"
    );
}

/// Verifies with ring against the SPKI parsed by x509-parser, independently of the centre.
fn verify_with_spki(
    algorithm: Algorithm,
    spki_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der).unwrap();
    assert!(rest.is_empty());
    let oid = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let verification: &dyn signature::VerificationAlgorithm = match algorithm {
        Algorithm::EcdsaP256Sha256 => {
            assert_eq!(
                (oid.as_str(), curve.as_deref()),
                ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7"))
            );
            &signature::ECDSA_P256_SHA256_ASN1
        }
        Algorithm::EcdsaP384Sha384 => {
            assert_eq!(
                (oid.as_str(), curve.as_deref()),
                ("1.2.840.10045.2.1", Some("1.3.132.0.34"))
            );
            &signature::ECDSA_P384_SHA384_ASN1
        }
        Algorithm::Ed25519 => {
            assert_eq!((oid.as_str(), curve), ("1.3.101.112", None));
            &signature::ED25519
        }
        Algorithm::Sm2Sm3 => {
            assert_eq!(
                (oid.as_str(), curve.as_deref()),
                ("1.2.840.10045.2.1", Some("1.2.156.10197.1.301"))
            );
            return openssl_sm2_verifies(spki_der, message, signature);
        }
        _ => panic!("not a signature algorithm"),
    };
    let public = UnparsedPublicKey::new(verification, spki.subject_public_key.data.as_ref());
    public.verify(message, signature).is_ok()
}

/// True when the OpenSSL command line verifies the SM2 `signature` (default ID
/// `1234567812345678`, which OpenSSL 3.0 must be told: its own default is empty).
fn openssl_sm2_verifies(spki_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (key, data, sig) = (
        dir.path().join("key.der"),
        dir.path().join("data"),
        dir.path().join("sig"),
    );
    std::fs::write(&key, spki_der).unwrap();
    std::fs::write(&data, message).unwrap();
    std::fs::write(&sig, signature).unwrap();
    let verify = |distid: &str| {
        let mut command = std::process::Command::new("openssl");
        command.args(["dgst", "-sm3", "-keyform", "DER", "-verify"]);
        command.arg(&key).arg("-signature").arg(&sig);
        if !distid.is_empty() {
            command.args(["-sigopt", &format!("distid:{distid}")]);
        }
        let output = command.arg(&data).output().expect("openssl runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            stdout.contains("Verified OK") || stdout.contains("Verification failure"),
            "openssl said {stdout:?} {:?}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.status.success()
    };
    let verified = verify("1234567812345678");
    // With OpenSSL's own (empty) ID, a signature made with the default ID never verifies.
    assert!(
        !verify(""),
        "OpenSSL's empty ID must not verify our signature"
    );
    verified
}

#[test]
fn national_keys_encrypt_decrypt_and_sign() {
    let centre = Centre::unsealed();

    // SM4-GCM: the same self-describing format, 16-byte data keys.
    let sm4 = centre.create(Algorithm::Sm4Gcm);
    let encrypted = centre.kms.encrypt(&sm4, b"data", b"context").unwrap();
    assert_eq!(
        Kms::ciphertext_key(&encrypted.ciphertext).unwrap(),
        (sm4.clone(), 1)
    );
    let decrypted = centre
        .kms
        .decrypt(&encrypted.ciphertext, b"context", None)
        .unwrap();
    assert_eq!(decrypted.plaintext.as_slice(), b"data");
    let mut flipped = encrypted.ciphertext.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        centre.kms.decrypt(&flipped, b"context", None),
        Err(Error::Authentication)
    ));
    let data_key = centre.kms.generate_data_key(&sm4, b"").unwrap();
    assert_eq!(data_key.plaintext.len(), 16);
    assert!(matches!(
        centre.kms.sign(&sm4, b"m"),
        Err(Error::WrongAlgorithm { .. })
    ));

    // SM2 encryption: GM/T 0009 DER out, decrypted with the key named; no AAD, no data keys,
    // no signatures.
    let sm2 = centre.create(Algorithm::Sm2Encrypt);
    let encrypted = centre.kms.encrypt(&sm2, b"escrowed", b"").unwrap();
    assert_eq!(encrypted.ciphertext[0], 0x30, "DER SEQUENCE");
    let decrypted = centre
        .kms
        .decrypt(&encrypted.ciphertext, b"", Some(&sm2))
        .unwrap();
    assert_eq!(
        (decrypted.plaintext.as_slice(), decrypted.version),
        (&b"escrowed"[..], 1)
    );
    assert!(matches!(
        centre.kms.decrypt(&encrypted.ciphertext, b"", None),
        Err(Error::MalformedCiphertext { .. })
    ));
    let other = centre.create(Algorithm::Sm2Encrypt);
    let refused = centre
        .kms
        .decrypt(&encrypted.ciphertext, b"", Some(&other))
        .unwrap_err();
    assert!(
        matches!(refused, Error::MalformedCiphertext { .. }),
        "{refused}"
    );
    assert!(matches!(
        centre.kms.encrypt(&sm2, b"x", b"aad"),
        Err(Error::InvalidArgument { field: "aad", .. })
    ));
    assert!(matches!(
        centre.kms.encrypt(&sm2, b"", b""),
        Err(Error::InvalidArgument {
            field: "plaintext",
            ..
        })
    ));
    for refused in [
        centre.kms.generate_data_key(&sm2, b"").map(|_| ()),
        centre.kms.sign(&sm2, b"m").map(|_| ()),
    ] {
        assert!(
            matches!(refused, Err(Error::WrongAlgorithm { .. })),
            "{refused:?}"
        );
    }
    // A ciphertext made before a rotation still decrypts, by the version it was made for.
    centre.kms.rotate_key("admin", &sm2).unwrap();
    let decrypted = centre
        .kms
        .decrypt(&encrypted.ciphertext, b"", Some(&sm2))
        .unwrap();
    assert_eq!(decrypted.version, 1);
    let newer = centre.kms.encrypt(&sm2, b"newer", b"").unwrap();
    assert_eq!(newer.version, 2);

    // At most 64 KiB per SM2 encryption (bulk data goes under an SM4 data key); a ciphertext
    // is tried against the primary and the three newest other versions only.
    let big = vec![7u8; govtrust_kms::SM2_MAX_PLAINTEXT + 1];
    assert!(matches!(
        centre.kms.encrypt(&sm2, &big, b""),
        Err(Error::InvalidArgument {
            field: "plaintext",
            ..
        })
    ));
    assert!(matches!(
        centre.kms.decrypt(&vec![0x30; 70_000], b"", Some(&sm2)),
        Err(Error::InvalidArgument {
            field: "ciphertext",
            ..
        })
    ));
    for _ in 0..3 {
        centre.kms.rotate_key("admin", &sm2).unwrap();
    }
    // Versions 5 (primary), 4, 3, 2 are tried: version 1's ciphertext no longer decrypts.
    assert!(matches!(
        centre.kms.decrypt(&encrypted.ciphertext, b"", Some(&sm2)),
        Err(Error::MalformedCiphertext { .. })
    ));
    let decrypted = centre
        .kms
        .decrypt(&newer.ciphertext, b"", Some(&sm2))
        .unwrap();
    assert_eq!(decrypted.version, 2);
}

#[test]
fn openssl_encrypts_to_an_sm2_key_that_the_centre_decrypts() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Sm2Encrypt);
    let public = centre.kms.public_key(&id, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key, data, out) = (
        dir.path().join("key.der"),
        dir.path().join("data"),
        dir.path().join("out"),
    );
    std::fs::write(&key, &public.spki_der).unwrap();
    std::fs::write(&data, b"sealed by openssl").unwrap();
    let status = std::process::Command::new("openssl")
        .args(["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(&data)
        .arg("-out")
        .arg(&out)
        .status()
        .expect("openssl runs");
    assert!(status.success());
    let ciphertext = std::fs::read(&out).unwrap();
    let decrypted = centre.kms.decrypt(&ciphertext, b"", Some(&id)).unwrap();
    assert_eq!(decrypted.plaintext.as_slice(), b"sealed by openssl");
    let mut truncated = ciphertext.clone();
    truncated.truncate(ciphertext.len() - 3);
    assert!(matches!(
        centre.kms.decrypt(&truncated, b"", Some(&id)),
        Err(Error::MalformedCiphertext { .. })
    ));
}

#[test]
fn signatures_verify_independently() {
    let centre = Centre::unsealed();
    for algorithm in SIGNING {
        let id = centre.create(algorithm);
        let signed = centre.kms.sign(&id, b"certificate to be signed").unwrap();
        assert_eq!((&signed.key_id, signed.version), (&id, 1));
        if algorithm == Algorithm::Ed25519 {
            assert_eq!(signed.signature.len(), 64);
        } else {
            assert_eq!(signed.signature[0], 0x30, "DER (r, s)");
        }
        let public = centre.kms.public_key(&id, None).unwrap();
        assert_eq!((public.algorithm, public.version), (algorithm, 1));
        assert!(verify_with_spki(
            algorithm,
            &public.spki_der,
            b"certificate to be signed",
            &signed.signature
        ));
        assert!(!verify_with_spki(
            algorithm,
            &public.spki_der,
            b"another message",
            &signed.signature
        ));
        assert!(
            centre
                .kms
                .verify(&id, None, b"certificate to be signed", &signed.signature)
                .unwrap()
        );
        assert!(
            !centre
                .kms
                .verify(&id, Some(1), b"tampered", &signed.signature)
                .unwrap()
        );
        assert!(
            !centre
                .kms
                .verify(&id, None, b"certificate to be signed", b"junk")
                .unwrap()
        );
    }
}

#[test]
fn rotation_keeps_old_versions_working() {
    let centre = Centre::unsealed();
    let aes = centre.create(Algorithm::Aes256Gcm);
    let old = centre.kms.encrypt(&aes, b"old", b"").unwrap();
    let info = centre.kms.rotate_key("admin", &aes).unwrap();
    assert_eq!((info.primary_version, info.versions.len()), (2, 2));
    let new = centre.kms.encrypt(&aes, b"new", b"").unwrap();
    assert_eq!((old.version, new.version), (1, 2));
    assert_eq!(
        centre
            .kms
            .decrypt(&old.ciphertext, b"", None)
            .unwrap()
            .plaintext
            .as_slice(),
        b"old"
    );
    let decrypted = centre.kms.decrypt(&new.ciphertext, b"", None).unwrap();
    assert_eq!(
        (decrypted.plaintext.as_slice(), decrypted.version),
        (&b"new"[..], 2)
    );

    for algorithm in SIGNING {
        let id = centre.create(algorithm);
        let first = centre.kms.sign(&id, b"m").unwrap();
        centre.kms.rotate_key("admin", &id).unwrap();
        let second = centre.kms.sign(&id, b"m").unwrap();
        assert_eq!((first.version, second.version), (1, 2));
        assert!(
            centre
                .kms
                .verify(&id, Some(1), b"m", &first.signature)
                .unwrap()
        );
        assert!(
            !centre
                .kms
                .verify(&id, None, b"m", &first.signature)
                .unwrap()
        );
        assert!(
            centre
                .kms
                .verify(&id, None, b"m", &second.signature)
                .unwrap()
        );
        let v1 = centre.kms.public_key(&id, Some(1)).unwrap();
        assert_ne!(
            v1.spki_der,
            centre.kms.public_key(&id, None).unwrap().spki_der
        );
        assert!(verify_with_spki(
            algorithm,
            &v1.spki_der,
            b"m",
            &first.signature
        ));
        assert!(matches!(
            centre.kms.public_key(&id, Some(3)),
            Err(Error::UnknownVersion { version: 3, .. })
        ));
    }
    let actions = audit_actions(&*centre.store);
    assert_eq!(
        actions.iter().filter(|a| *a == "kms.key.rotate").count(),
        1 + SIGNING.len()
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "kms.key.create").count(),
        1 + SIGNING.len()
    );
}

#[test]
fn concurrent_use_from_many_threads() {
    let centre = Centre::unsealed();
    let id = centre.create(Algorithm::Aes256Gcm);
    std::thread::scope(|scope| {
        for thread in 0..8u8 {
            let (kms, id) = (&centre.kms, &id);
            scope.spawn(move || {
                for i in 0..200u8 {
                    let plaintext = [thread, i];
                    let ciphertext = kms.encrypt(id, &plaintext, b"").unwrap().ciphertext;
                    assert_eq!(
                        kms.decrypt(&ciphertext, b"", None)
                            .unwrap()
                            .plaintext
                            .as_slice(),
                        plaintext
                    );
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..5 {
                centre.kms.rotate_key("admin", &id).unwrap();
            }
        });
    });
    assert_eq!(centre.kms.key(&id).unwrap().primary_version, 6);
}
