//! OCSP against the openssl CLI: requests openssl makes parse; responses the responder signs
//! (delegated signer on P-256, P-384 and Ed25519) verify with `openssl ocsp` and say what was
//! meant; the unsigned answers read as their statuses; and responses openssl signs as a
//! responder decode with our types and encode back to the same bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_ca::fuzzing;
use govtrust_ca::ocsp::{
    self, HashAlgorithm, MALFORMED_REQUEST, Request, Responder, Status, Times, UNAUTHORIZED,
};
use govtrust_ca::{Error, Serial};
use govtrust_kms::{Algorithm, Error as KmsError, Signer};
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use tempfile::TempDir;

/// The leaves of the test CA, by serial: good, revoked for key compromise, and one the
/// responder does not know.
const GOOD: &str = "1001";
const REVOKED: &str = "1002";
const UNKNOWN: &str = "1003";

/// A key openssl made, signing as a custodian would.
struct OpensslKey {
    key: KeyPair,
    spki: Vec<u8>,
    algorithm: Algorithm,
}

impl Signer for OpensslKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KmsError> {
        Ok(SigningKey::sign(&self.key, message).unwrap())
    }
}

/// A CA made by openssl in a temporary directory: `ca.pem`, three leaves `1001.pem`,
/// `1002.pem`, `1003.pem` and a delegated OCSP signer `signer.pem` with `signer.key`.
struct Pki {
    dir: TempDir,
}

impl Pki {
    /// The CA (P-256) and leaves, and a delegated signer with a key made by `newkey` args.
    fn new(signer_key: &[&str]) -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.self_signed("ca", "/CN=OCSP Test CA");
        for serial in [GOOD, REVOKED, UNKNOWN] {
            pki.issue(
                serial,
                &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                "",
            );
        }
        let extensions = "extendedKeyUsage=critical,OCSPSigning\n\
                          keyUsage=critical,digitalSignature\n\
                          1.3.6.1.5.5.7.48.1.5=ASN1:NULL\n";
        pki.issue("signer", signer_key, extensions);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs openssl in the directory; its standard output and error, and whether it succeeded.
    fn run(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new("openssl")
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .expect("the openssl CLI is installed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// Runs openssl and requires success; its output.
    fn openssl(&self, args: &[&str]) -> String {
        let (success, output) = self.run(args);
        assert!(success, "openssl {args:?} failed: {output}");
        output
    }

    fn self_signed(&self, name: &str, subject: &str) {
        let key = format!("{name}.key");
        let pem = format!("{name}.pem");
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-subj",
            subject,
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// `name.pem` (and `name.key`): a certificate of the CA with serial `name` for the leaves,
    /// 2 for the signer, and `extensions` (openssl config lines) if any.
    fn issue(&self, name: &str, newkey: &[&str], extensions: &str) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subject = format!("/CN={name}");
        let mut args = vec!["req", "-new", "-nodes", "-keyout", &key, "-subj", &subject];
        args.extend(newkey);
        args.extend(["-out", &csr]);
        self.openssl(&args);
        let serial = format!("0x{}", if name == "signer" { "02" } else { name });
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial,
            "-days",
            "10",
            "-out",
            &pem,
        ];
        if !extensions.is_empty() {
            fs::write(self.path("extensions.cnf"), extensions).unwrap();
            args.extend(["-extfile", "extensions.cnf"]);
        }
        self.openssl(&args);
    }

    /// The DER of the certificate `name.pem`.
    fn der(&self, name: &str) -> Vec<u8> {
        let der = format!("{name}.der");
        self.openssl(&[
            "x509",
            "-in",
            &format!("{name}.pem"),
            "-outform",
            "DER",
            "-out",
            &der,
        ]);
        fs::read(self.path(&der)).unwrap()
    }

    /// The signer's key as a custodian holding it.
    fn signer_key(&self, algorithm: Algorithm) -> Arc<OpensslKey> {
        let pem = fs::read_to_string(self.path("signer.key")).unwrap();
        let key = KeyPair::from_pem(&pem).unwrap();
        let spki = key.subject_public_key_info();
        Arc::new(OpensslKey {
            key,
            spki,
            algorithm,
        })
    }

    fn responder(&self, algorithm: Algorithm) -> Responder {
        Responder::new(
            &self.der("ca"),
            &self.der("signer"),
            self.signer_key(algorithm),
        )
        .unwrap()
    }

    /// `openssl ocsp` makes a request for the certificates `serials` into `file`, with `extra`
    /// arguments (`-no_nonce`, `-sha256`); its bytes.
    fn request(&self, file: &str, serials: &[&str], extra: &[&str]) -> Vec<u8> {
        let certs: Vec<String> = serials.iter().map(|s| format!("{s}.pem")).collect();
        let mut args = vec!["ocsp", "-issuer", "ca.pem"];
        args.extend(extra);
        for cert in &certs {
            args.extend(["-cert", cert.as_str()]);
        }
        args.extend(["-reqout", file]);
        self.openssl(&args);
        fs::read(self.path(file)).unwrap()
    }

    /// `openssl ocsp` reads the response `file` for the certificates `serials` (CertIDs hashed
    /// as `extra` says), verifies it against the CA, without a nonce check, and prints it.
    fn check(&self, file: &str, serials: &[&str], extra: &[&str]) -> String {
        let certs: Vec<String> = serials.iter().map(|s| format!("{s}.pem")).collect();
        let mut args = vec![
            "ocsp", "-respin", file, "-issuer", "ca.pem", "-CAfile", "ca.pem",
        ];
        args.extend(["-no_nonce", "-resp_text"]);
        args.extend(extra);
        for cert in &certs {
            args.extend(["-cert", cert.as_str()]);
        }
        self.openssl(&args)
    }

    /// `openssl ocsp` checks the response `file` against the request `request`: the signature
    /// with the signer trusted directly (-VAfile), and that the nonces match.
    fn check_against(&self, file: &str, request: &str) -> String {
        let args = [
            "ocsp",
            "-reqin",
            request,
            "-respin",
            file,
            "-VAfile",
            "signer.pem",
        ];
        self.openssl(&args)
    }

    fn write(&self, file: &str, bytes: &[u8]) {
        fs::write(self.path(file), bytes).unwrap();
    }
}

fn p256() -> Vec<&'static str> {
    vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
}

fn times() -> Times {
    let now = SystemTime::now();
    Times {
        produced_at: now,
        this_update: now,
        next_update: Some(now + Duration::from_secs(3600)),
    }
}

fn revoked_at() -> SystemTime {
    SystemTime::now() - Duration::from_secs(86_400)
}

/// What the CA knows of its leaves.
fn status(serial: &Serial) -> Result<Status, Error> {
    Ok(match serial.to_string().as_str() {
        GOOD => Status::Good,
        REVOKED => Status::Revoked {
            at: revoked_at(),
            reason: Some(1),
        },
        _ => Status::Unknown,
    })
}

/// The status lines openssl printed for each certificate.
fn assert_statuses(output: &str) {
    assert!(output.contains("Response verify OK"), "{output}");
    assert!(output.contains(&format!("{GOOD}.pem: good")), "{output}");
    assert!(
        output.contains(&format!("{REVOKED}.pem: revoked")),
        "{output}"
    );
    assert!(output.contains("Reason: keyCompromise"), "{output}");
    assert!(
        output.contains(&format!("{UNKNOWN}.pem: unknown")),
        "{output}"
    );
}

#[test]
fn openssl_requests_parse_and_name_the_ca() {
    let pki = Pki::new(&p256());
    let responder = pki.responder(Algorithm::EcdsaP256Sha256);
    let cases: [(&[&str], HashAlgorithm, bool); 4] = [
        (&[], HashAlgorithm::Sha1, true),
        (&["-no_nonce"], HashAlgorithm::Sha1, false),
        (&["-sha256"], HashAlgorithm::Sha256, true),
        (&["-sha256", "-no_nonce"], HashAlgorithm::Sha256, false),
    ];
    for (extra, hash, nonce) in cases {
        let bytes = pki.request("req.der", &[GOOD, REVOKED], extra);
        let request = Request::parse(&bytes).unwrap();
        assert_eq!(
            request.nonce().map(<[u8]>::len),
            nonce.then_some(16),
            "{extra:?}"
        );
        let serials: Vec<String> = request
            .cert_ids()
            .iter()
            .map(|id| id.serial().to_string())
            .collect();
        assert_eq!(serials, [GOOD, REVOKED]);
        for id in request.cert_ids() {
            assert_eq!(id.hash_algorithm(), hash);
            assert!(responder.answers_for(id), "{extra:?}: {id:?}");
            // The CertID openssl wrote is the one the responder writes for the serial.
            let ours = responder.cert_id(hash, id.serial()).unwrap();
            assert_eq!(ours.as_der(), id.as_der());
        }
    }
}

#[test]
fn responses_verify_with_openssl_for_every_signature_algorithm() {
    let keys: [(Algorithm, Vec<&str>); 3] = [
        (Algorithm::EcdsaP256Sha256, p256()),
        (
            Algorithm::EcdsaP384Sha384,
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        ),
        (Algorithm::Ed25519, vec!["-newkey", "ed25519"]),
    ];
    for (algorithm, newkey) in keys {
        let pki = Pki::new(&newkey);
        let responder = pki.responder(algorithm);
        let leaves = [GOOD, REVOKED, UNKNOWN];
        let request = Request::parse(&pki.request("req.der", &leaves, &[])).unwrap();
        let response = responder.respond(&request, status, &times()).unwrap();
        pki.write("resp.der", &response);
        let output = pki.check_against("resp.der", "req.der");
        assert!(
            output.contains("Response verify OK"),
            "{algorithm}: {output}"
        );
        let output = pki.check("resp.der", &leaves, &[]);
        assert_statuses(&output);
        assert!(output.contains("OCSP Nonce"), "{output}");
        assert_eq!(
            fuzzing::ocsp_response_reencoded(&response).unwrap(),
            response
        );
    }
}

#[test]
fn a_nonce_from_another_request_fails_openssls_check() {
    let pki = Pki::new(&p256());
    let responder = pki.responder(Algorithm::EcdsaP256Sha256);
    let request = Request::parse(&pki.request("req.der", &[GOOD], &[])).unwrap();
    pki.request("other.der", &[GOOD], &[]);
    pki.write(
        "resp.der",
        &responder.respond(&request, status, &times()).unwrap(),
    );
    let args = [
        "ocsp",
        "-reqin",
        "other.der",
        "-respin",
        "resp.der",
        "-VAfile",
        "signer.pem",
    ];
    let (_, output) = pki.run(&args);
    assert!(output.contains("Nonce Verify error"), "{output}");
}

#[test]
fn sha256_cert_ids_are_answered_in_kind() {
    let pki = Pki::new(&p256());
    let responder = pki.responder(Algorithm::EcdsaP256Sha256);
    let leaves = [GOOD, REVOKED, UNKNOWN];
    let request = Request::parse(&pki.request("req.der", &leaves, &["-sha256"])).unwrap();
    pki.write(
        "resp.der",
        &responder.respond(&request, status, &times()).unwrap(),
    );
    let output = pki.check("resp.der", &leaves, &["-sha256"]);
    assert_statuses(&output);
    assert!(output.contains("Hash Algorithm: sha256"), "{output}");
}

#[test]
fn a_presigned_response_answers_a_request_without_nonce() {
    let pki = Pki::new(&p256());
    let responder = pki.responder(Algorithm::EcdsaP256Sha256);
    // Signed in advance, for the CertID openssl's request will carry.
    let serial = Serial::parse(REVOKED).unwrap();
    let id = responder.cert_id(HashAlgorithm::Sha1, &serial).unwrap();
    let presigned = responder
        .presign(&id, status(&serial).unwrap(), &times())
        .unwrap();
    // A request arrives: the cache finds the response by the CertID's encoding.
    let request = Request::parse(&pki.request("req.der", &[REVOKED], &["-no_nonce"])).unwrap();
    let single = request.single().unwrap();
    assert!(responder.answers_for(single));
    assert_eq!(single.as_der(), id.as_der());
    pki.write("resp.der", &presigned);
    let output = pki.check("resp.der", &[REVOKED], &[]);
    assert!(
        output.contains(&format!("{REVOKED}.pem: revoked")),
        "{output}"
    );
    assert!(output.contains("Reason: keyCompromise"), "{output}");
    assert!(output.contains("Response verify OK"), "{output}");
    assert!(!output.contains("OCSP Nonce"), "{output}");
}

#[test]
fn a_request_about_another_cas_certificate_is_unauthorized() {
    let ours = Pki::new(&p256());
    let theirs = Pki::new(&p256());
    let responder = ours.responder(Algorithm::EcdsaP256Sha256);
    let request = Request::parse(&theirs.request("req.der", &[GOOD], &[])).unwrap();
    assert!(!responder.answers_for(&request.cert_ids()[0]));
    let refused = responder.respond(&request, status, &times()).unwrap_err();
    assert_eq!(ocsp::refusal(&refused), UNAUTHORIZED);
    ours.write("unauthorized.der", UNAUTHORIZED);
    let (_, output) = ours.run(&["ocsp", "-respin", "unauthorized.der", "-resp_text"]);
    assert!(
        output.contains("Responder Error: unauthorized (6)"),
        "{output}"
    );
}

#[test]
fn a_malformed_request_gets_the_malformed_answer_openssl_reads() {
    let pki = Pki::new(&p256());
    let mut bytes = pki.request("req.der", &[GOOD], &[]);
    bytes.push(0);
    let refused = Request::parse(&bytes).unwrap_err();
    assert_eq!(ocsp::refusal(&refused), MALFORMED_REQUEST);
    pki.write("malformed.der", MALFORMED_REQUEST);
    let (_, output) = pki.run(&["ocsp", "-respin", "malformed.der", "-resp_text"]);
    assert!(
        output.contains("Responder Error: malformedrequest (1)"),
        "{output}"
    );
}

#[test]
fn responses_openssl_signs_decode_and_encode_to_the_same_bytes() {
    let pki = Pki::new(&p256());
    // openssl ca's index: 1001 valid, 1002 revoked for key compromise; 1003 not listed.
    let expires = "301231235959Z";
    let revoked = "250101000000Z,keyCompromise";
    let index = format!(
        "V\t{expires}\t\t{GOOD}\tunknown\t/CN={GOOD}\n\
         R\t{expires}\t{revoked}\t{REVOKED}\tunknown\t/CN={REVOKED}\n"
    );
    pki.write("index.txt", index.as_bytes());
    let leaves = [GOOD, REVOKED, UNKNOWN];
    let requests: [&[&str]; 3] = [&[], &["-no_nonce"], &["-sha256"]];
    let responders: [&[&str]; 3] = [&[], &["-resp_key_id"], &["-resp_no_certs", "-ndays", "1"]];
    for extra in requests {
        pki.request("req.der", &leaves, extra);
        for options in responders {
            let mut args = vec![
                "ocsp",
                "-index",
                "index.txt",
                "-rsigner",
                "signer.pem",
                "-rkey",
                "signer.key",
                "-CA",
                "ca.pem",
                "-reqin",
                "req.der",
                "-respout",
                "resp.der",
            ];
            args.extend(options);
            pki.openssl(&args);
            let response = fs::read(pki.path("resp.der")).unwrap();
            let again = fuzzing::ocsp_response_reencoded(&response).unwrap();
            assert_eq!(again, response, "{extra:?} {options:?}");
            // And openssl agrees with itself, so the fixture is what it seems.
            if options.contains(&"-resp_no_certs") {
                continue;
            }
            let hash: &[&str] = match extra.contains(&"-sha256") {
                true => &["-sha256"],
                false => &[],
            };
            assert_statuses(&pki.check("resp.der", &leaves, hash));
        }
    }
}

#[test]
fn the_unsigned_answers_decode_and_encode_to_the_same_bytes() {
    for constant in [
        ocsp::MALFORMED_REQUEST,
        ocsp::INTERNAL_ERROR,
        ocsp::TRY_LATER,
        ocsp::SIG_REQUIRED,
        ocsp::UNAUTHORIZED,
    ] {
        assert_eq!(
            fuzzing::ocsp_response_reencoded(constant).unwrap(),
            constant
        );
    }
}
