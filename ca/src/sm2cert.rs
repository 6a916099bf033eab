//! SM2 certificates (GM/T 0015): built with `x509-cert` (rcgen has no SM2) and signed through
//! the same custody trait as every other certificate, a kms [`Signer`] of algorithm
//! [`Algorithm::Sm2Sm3`].
//!
//! What differs from the international certificates is only what GM/T 0015 says: the signature
//! algorithm `SM2-with-SM3` (`1.2.156.10197.1.501`, no parameters) over the TBS with the issuer's
//! `Z_A` (default ID `1234567812345678`), and SM2 subject keys (`id-ecPublicKey` on the SM2
//! curve). Key identifiers follow RFC 5280 §4.2.1.2 method 1 (SHA-1 of the key bits), as the
//! international ones do, so relying parties find issuers the same way.

use std::str::FromStr;
use std::time::SystemTime;

use der::asn1::{BitString, Ia5String, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use govtrust_kms::suite::oid;
use govtrust_kms::{Algorithm, Signer};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Criticality, Extension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef,
};
use x509_cert::time::{Time, Validity};

use crate::Error;
use crate::issuer::Serial;

/// What an SM2 certificate says.
pub(crate) struct Sm2CertSpec<'a> {
    pub serial: &'a Serial,
    /// The subject, as an RFC 4514 string (`CN=...,O=...`).
    pub subject: &'a str,
    /// The issuer's subject; `None` for a self-signed certificate.
    pub issuer: Option<&'a str>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The subject's SubjectPublicKeyInfo DER (an SM2 key).
    pub subject_key: &'a [u8],
    /// `Some(path length)` for a CA.
    pub ca: Option<Option<u8>>,
    pub key_usage: &'a [KeyUsages],
    /// Extended key usages.
    pub extended_key_usage: &'a [ObjectIdentifier],
    pub uris: &'a [String],
    pub dns_names: &'a [String],
}

/// Signs the certificate `spec` describes with `signer` (an SM2 key); its DER.
pub(crate) fn sign(spec: &Sm2CertSpec<'_>, signer: &dyn Signer) -> Result<Vec<u8>, Error> {
    if signer.algorithm() != Algorithm::Sm2Sm3 {
        return Err(Error::invalid(
            "suite",
            format!(
                "an SM2 certificate needs an sm2-sm3 issuing key, not {}",
                signer.algorithm()
            ),
        ));
    }
    let failed = |what: &str, e: &dyn std::fmt::Display| Error::Sm2Certificate {
        context: format!("{what}: {e}"),
    };
    let subject = Name::from_str(spec.subject).map_err(|e| failed("subject", &e))?;
    let issuer = match spec.issuer {
        Some(issuer) => Name::from_str(issuer).map_err(|e| failed("issuer", &e))?,
        None => subject.clone(),
    };
    let subject_key = SubjectPublicKeyInfoOwned::from_der(spec.subject_key)
        .map_err(|e| failed("subject key", &e))?;
    let serial = SerialNumber::new(spec.serial.as_bytes()).map_err(|e| failed("serial", &e))?;
    let time = |at: SystemTime| Time::try_from(at).map_err(|e| failed("validity", &e));
    let validity = Validity::new(time(spec.not_before)?, time(spec.not_after)?);
    let profile = Profile {
        issuer,
        subject,
        spec,
    };
    let mut builder = CertificateBuilder::new(profile, serial, validity, subject_key)
        .map_err(|e| failed("builder", &e))?;
    let custodian = Custodian { signer };
    let tbs = builder
        .finalize(&custodian)
        .map_err(|e| failed("TBS", &e))?;
    let signature = signer.sign(&tbs).map_err(Error::Kms)?;
    let signature = BitString::from_bytes(&signature).map_err(|e| failed("signature", &e))?;
    let certificate = builder
        .assemble(signature, &custodian)
        .map_err(|e| failed("assembly", &e))?;
    certificate.to_der().map_err(|e| failed("encoding", &e))
}

/// The names and extensions of one certificate.
struct Profile<'a> {
    issuer: Name,
    subject: Name,
    spec: &'a Sm2CertSpec<'a>,
}

impl BuilderProfile for Profile<'_> {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let spec = self.spec;
        let mut extensions = Vec::new();
        if let Some(path_len) = spec.ca {
            extensions.push(extension(&BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            })?);
        }
        let usage = spec.key_usage.iter().fold(
            der::flagset::FlagSet::<KeyUsages>::default(),
            |set, usage| set | *usage,
        );
        extensions.push(extension(&KeyUsage(usage))?);
        if !spec.extended_key_usage.is_empty() {
            let oids = spec.extended_key_usage.to_vec();
            extensions.push(extension(&ExtendedKeyUsage(oids))?);
        }
        let names = spec
            .uris
            .iter()
            .map(|uri| Ia5String::new(uri).map(GeneralName::UniformResourceIdentifier))
            .chain(
                spec.dns_names
                    .iter()
                    .map(|dns| Ia5String::new(dns).map(GeneralName::DnsName)),
            )
            .collect::<Result<Vec<_>, _>>()?;
        if !names.is_empty() {
            extensions.push(extension(&SubjectAltName(names))?);
        }
        let subject_id = SubjectKeyIdentifier::try_from(spk)?;
        extensions.push(extension(&subject_id)?);
        if spec.issuer.is_some() {
            let issuer_id = SubjectKeyIdentifier::try_from(issuer_spk)?;
            extensions.push(extension(&AuthorityKeyIdentifier {
                key_identifier: Some(issuer_id.0),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            })?);
        }
        Ok(extensions)
    }
}

/// `value` as an extension, critical as its type says.
fn extension<T>(value: &T) -> der::Result<Extension>
where
    T: Criticality + der::oid::AssociatedOid + Encode,
{
    Ok(Extension {
        extn_id: T::OID,
        critical: value.criticality(&Name::default(), &[]),
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// The issuer's key as the builder asks for it: its public key and signature algorithm (the
/// signing itself goes through [`Signer::sign`]).
struct Custodian<'a> {
    signer: &'a dyn Signer,
}

/// An SPKI, as the builder wants a verifying key.
#[derive(Clone)]
struct IssuerKey(Vec<u8>);

impl EncodePublicKey for IssuerKey {
    fn to_public_key_der(&self) -> x509_cert::spki::Result<der::Document> {
        Ok(der::Document::from_der(&self.0)?)
    }
}

impl signature::Keypair for Custodian<'_> {
    type VerifyingKey = IssuerKey;

    fn verifying_key(&self) -> IssuerKey {
        IssuerKey(self.signer.public_key_der().to_vec())
    }
}

impl DynSignatureAlgorithmIdentifier for Custodian<'_> {
    fn signature_algorithm_identifier(&self) -> x509_cert::spki::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(oid::SM2_WITH_SM3),
            parameters: None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use govtrust_kms::Error as KmsError;
    use govtrust_kms::national::{Sm2KeyPair, sm2_generate};
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;

    /// SubjectPublicKeyInfo DER of an SM2 point: id-ecPublicKey, the SM2 curve, the point.
    fn spki(point: &[u8]) -> Vec<u8> {
        let prefix = hex::decode("3059301306072a8648ce3d020106082a811ccf5501822d034200").unwrap();
        [prefix.as_slice(), point].concat()
    }

    /// An SM2 key in memory, signing as a kms key would.
    struct Key {
        pair: Sm2KeyPair,
        spki: Vec<u8>,
    }

    impl Key {
        fn new() -> Key {
            let pair = Sm2KeyPair::from_pkcs8(&sm2_generate().unwrap()).unwrap();
            let spki = spki(pair.public_key());
            Key { pair, spki }
        }
    }

    impl Signer for Key {
        fn algorithm(&self) -> Algorithm {
            Algorithm::Sm2Sm3
        }
        fn public_key_der(&self) -> &[u8] {
            &self.spki
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KmsError> {
            Ok(self.pair.sign(message).unwrap())
        }
    }

    fn spec<'a>(
        serial: &'a Serial,
        subject: &'a str,
        issuer: Option<&'a str>,
        key: &'a Key,
        ca: Option<Option<u8>>,
        usage: &'a [KeyUsages],
    ) -> Sm2CertSpec<'a> {
        let now = SystemTime::now();
        Sm2CertSpec {
            serial,
            subject,
            issuer,
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(86_400),
            subject_key: &key.spki,
            ca,
            key_usage: usage,
            extended_key_usage: &[],
            uris: &[],
            dns_names: &[],
        }
    }

    fn openssl(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("the openssl CLI is installed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    #[test]
    fn an_sm2_chain_verifies_link_by_link_with_openssl() {
        let (root, issuing, leaf) = (Key::new(), Key::new(), Key::new());
        let rng = ring::rand::SystemRandom::new();
        let serial = || Serial::generate(&rng, SystemTime::now()).unwrap();
        let ca_usage = [
            KeyUsages::KeyCertSign,
            KeyUsages::CRLSign,
            KeyUsages::DigitalSignature,
        ];
        let (s1, s2, s3) = (serial(), serial(), serial());
        let root_name = "CN=govtrust national root CA,O=gov.example";
        let issuing_name = "CN=govtrust national extranet CA,O=gov.example";
        let root_cert = sign(
            &spec(&s1, root_name, None, &root, Some(Some(1)), &ca_usage),
            &root,
        )
        .unwrap();
        let issuing_cert = sign(
            &spec(
                &s2,
                issuing_name,
                Some(root_name),
                &issuing,
                Some(Some(0)),
                &ca_usage,
            ),
            &root,
        )
        .unwrap();
        let uris = ["spiffe://gov.example/org/finance/sys/tax-portal".to_owned()];
        let mut leaf_spec = spec(
            &s3,
            "CN=tax-portal,O=finance",
            Some(issuing_name),
            &leaf,
            None,
            &[KeyUsages::DigitalSignature],
        );
        leaf_spec.uris = &uris;
        let client_auth = [ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2")];
        leaf_spec.extended_key_usage = &client_auth;
        let leaf_cert = sign(&leaf_spec, &issuing).unwrap();

        let dir = tempfile::tempdir().unwrap();
        for (name, der) in [
            ("root", &root_cert),
            ("issuing", &issuing_cert),
            ("leaf", &leaf_cert),
        ] {
            std::fs::write(dir.path().join(format!("{name}.der")), der).unwrap();
            let (ok, _) = openssl(
                dir.path(),
                &[
                    "x509",
                    "-inform",
                    "DER",
                    "-in",
                    &format!("{name}.der"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
            assert!(ok);
        }
        let (_, text) = openssl(dir.path(), &["x509", "-in", "leaf.pem", "-noout", "-text"]);
        assert!(text.contains("SM2-with-SM3"), "{text}");
        assert!(text.contains("ASN1 OID: SM2"), "{text}");
        assert!(
            text.contains("URI:spiffe://gov.example/org/finance/sys/tax-portal"),
            "{text}"
        );
        assert!(text.contains("TLS Web Client Authentication"), "{text}");

        // Each link, with the SM2 ID given (OpenSSL 3.0 applies it to the target only).
        for (issuer, cert) in [("root", "root"), ("root", "issuing"), ("issuing", "leaf")] {
            let (ok, text) = openssl(
                dir.path(),
                &[
                    "verify",
                    "-partial_chain",
                    "-vfyopt",
                    "distid:1234567812345678",
                    "-CAfile",
                    &format!("{issuer}.pem"),
                    &format!("{cert}.pem"),
                ],
            );
            assert!(ok, "{issuer} -> {cert}: {text}");
        }
        // Without the ID, OpenSSL's empty default: the signature fails.
        let (ok, _) = openssl(
            dir.path(),
            &[
                "verify",
                "-partial_chain",
                "-CAfile",
                "issuing.pem",
                "leaf.pem",
            ],
        );
        assert!(!ok);
        // The wrong issuer: refused.
        let (ok, _) = openssl(
            dir.path(),
            &[
                "verify",
                "-partial_chain",
                "-vfyopt",
                "distid:1234567812345678",
                "-CAfile",
                "root.pem",
                "leaf.pem",
            ],
        );
        assert!(!ok);

        // Key identifiers link the chain; x509-parser reads every certificate.
        let (_, parsed) = X509Certificate::from_der(&leaf_cert).unwrap();
        assert_eq!(
            parsed.signature_algorithm.algorithm.to_id_string(),
            oid::SM2_WITH_SM3
        );
        assert_eq!(parsed.raw_serial(), s3.as_bytes());
    }

    #[test]
    fn only_an_sm2_key_signs_sm2_certificates() {
        struct P256;
        impl Signer for P256 {
            fn algorithm(&self) -> Algorithm {
                Algorithm::EcdsaP256Sha256
            }
            fn public_key_der(&self) -> &[u8] {
                &[]
            }
            fn sign(&self, _: &[u8]) -> Result<Vec<u8>, KmsError> {
                panic!("must not be asked to sign")
            }
        }
        let key = Key::new();
        let rng = ring::rand::SystemRandom::new();
        let serial = Serial::generate(&rng, SystemTime::now()).unwrap();
        let refused = sign(&spec(&serial, "CN=x", None, &key, None, &[]), &P256).unwrap_err();
        assert!(refused.to_string().contains("sm2-sm3"), "{refused}");
    }
}
