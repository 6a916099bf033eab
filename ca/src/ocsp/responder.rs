//! The responder: signs `BasicOCSPResponse`s for one issuing CA through a custody
//! [`Signer`], as its delegated responder (or as the CA itself).

use std::sync::Arc;
use std::time::SystemTime;

use der::Any;
use der::asn1::{BitString, GeneralizedTime, Null};
use govtrust_kms::{Algorithm, Signer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::request::{
    CertId, HashAlgorithm, Request, encode, encoding_error, nonce_extension, octets,
};
use super::wire::{
    AlgorithmIdentifier, BasicOcspResponse, CertStatus, CrlReason, ECDSA_WITH_SHA256,
    ECDSA_WITH_SHA384, ID_ED25519, ID_PKIX_OCSP_BASIC, OcspResponse, ResponderId, ResponseBytes,
    ResponseData, ResponseStatus, RevokedInfo, SingleResponse,
};
use crate::{Error, Serial};

/// What the CA knows of a certificate, as OCSP says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `at`, for the RFC 5280 `CRLReason` code `reason` (0 to 10 but 7;
    /// certificateHold, 6, for a suspended one) if one was given.
    Revoked { at: SystemTime, reason: Option<u8> },
    /// Not known to this CA: never issued by it, as far as it knows.
    Unknown,
}

/// The times a response states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// When the response is signed.
    pub produced_at: SystemTime,
    /// When the status given was known to be true.
    pub this_update: SystemTime,
    /// When newer information will be available; `None` says it always may be.
    pub next_update: Option<SystemTime>,
}

/// The OCSP responder of one issuing CA: the hashes that name the CA in a CertID, and the
/// responder certificate and key that sign the answers.
///
/// The responder is the CA itself or a responder it delegated to: a certificate issued and
/// signed by the CA with the id-kp-OCSPSigning extended key usage (RFC 6960 §4.2.2.2), sent
/// along in every response. Either way it is named by key hash, and its key is in custody.
pub struct Responder {
    sha1: IssuerHashes,
    sha256: IssuerHashes,
    key_hash: Vec<u8>,
    certs: Option<Vec<Any>>,
    valid: (SystemTime, SystemTime),
    algorithm: AlgorithmIdentifier,
    signer: Arc<dyn Signer>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("key_hash", &hex::encode(&self.key_hash))
            .field("delegated", &self.certs.is_some())
            .finish_non_exhaustive()
    }
}

/// A CA's name and key hashed as a CertID does.
struct IssuerHashes {
    name: Vec<u8>,
    key: Vec<u8>,
}

impl Responder {
    /// The responder for the CA with certificate `ca_certificate` (DER), answering as the holder
    /// of `responder_certificate` (DER: the CA's own or one it delegated to), whose key
    /// `signer` holds.
    ///
    /// [`Error::InvalidArgument`] if a certificate is not DER, the responder certificate's key
    /// is not the signer's, the signer's algorithm does not sign, or a delegated certificate
    /// is not issued and signed by the CA for OCSP signing.
    pub fn new(
        ca_certificate: &[u8],
        responder_certificate: &[u8],
        signer: Arc<dyn Signer>,
    ) -> Result<Responder, Error> {
        let ca = certificate("CA certificate", ca_certificate)?;
        let responder = certificate("responder certificate", responder_certificate)?;
        if responder.public_key().raw != signer.public_key_der() {
            return Err(Error::invalid(
                "responder certificate",
                "its public key is not the signer's",
            ));
        }
        let certs = match ca_certificate == responder_certificate {
            true => None,
            false => Some(delegation(&ca, &responder, responder_certificate)?),
        };
        let responder_key = &responder.public_key().subject_public_key.data;
        Ok(Responder {
            sha1: IssuerHashes::of(HashAlgorithm::Sha1, &ca),
            sha256: IssuerHashes::of(HashAlgorithm::Sha256, &ca),
            key_hash: digest(HashAlgorithm::Sha1, responder_key),
            certs,
            valid: validity(&responder),
            algorithm: signature_algorithm(signer.algorithm())?,
            signer,
        })
    }

    /// Whether `id` names a certificate of this responder's CA: its issuer hashes are the CA's.
    /// A cache of signed responses checks this before it looks a CertID up.
    pub fn answers_for(&self, id: &CertId) -> bool {
        let issuer = self.hashes(id.hash_algorithm());
        issuer.name == id.issuer_name_hash() && issuer.key == id.issuer_key_hash()
    }

    /// The CertID of this CA's certificate `serial`, hashed with `hash`, written as openssl
    /// writes one: the key under which to sign a response in advance ([`Responder::presign`]).
    /// [`Error::InvalidArgument`] if the serial's bytes are not a minimal INTEGER.
    pub fn cert_id(&self, hash: HashAlgorithm, serial: &Serial) -> Result<CertId, Error> {
        let hashes = self.hashes(hash);
        CertId::build(hash, &hashes.name, &hashes.key, serial)
    }

    /// A signed `OCSPResponse` (DER) for exactly `request`: one answer per CertID in its order,
    /// each with the status `status` gives for its serial, and the request's nonce if it had
    /// one.
    ///
    /// [`Error::OcspUnauthorized`] if a CertID names another CA (nothing is looked up or signed
    /// then); otherwise the first error of `status`, of the times, or of the signer (a sealed
    /// kms: [`Error::Kms`]). [`refusal`](super::refusal()) gives the unsigned answer for each.
    pub fn respond(
        &self,
        request: &Request,
        mut status: impl FnMut(&Serial) -> Result<Status, Error>,
        times: &Times,
    ) -> Result<Vec<u8>, Error> {
        for id in request.cert_ids() {
            self.check_issuer(id)?;
        }
        let responses = request
            .cert_ids()
            .iter()
            .map(|id| single_response(id, &status(id.serial())?, times))
            .collect::<Result<_, Error>>()?;
        self.sign(responses, request.nonce(), times)
    }

    /// A signed `OCSPResponse` (DER) for the one certificate `id` with `status`, without a
    /// nonce: a response made in advance, for every request whose [`Request::single`] has
    /// the same [`CertId::as_der`], until its `next_update`.
    ///
    /// [`Error::OcspUnauthorized`] if `id` names another CA.
    pub fn presign(&self, id: &CertId, status: Status, times: &Times) -> Result<Vec<u8>, Error> {
        self.check_issuer(id)?;
        self.sign(vec![single_response(id, &status, times)?], None, times)
    }

    fn hashes(&self, hash: HashAlgorithm) -> &IssuerHashes {
        match hash {
            HashAlgorithm::Sha1 => &self.sha1,
            HashAlgorithm::Sha256 => &self.sha256,
        }
    }

    fn check_issuer(&self, id: &CertId) -> Result<(), Error> {
        match self.answers_for(id) {
            true => Ok(()),
            false => Err(Error::OcspUnauthorized {
                serial: id.serial().clone(),
            }),
        }
    }

    /// Signs `responses` (and the nonce, if any) into a successful `OCSPResponse`.
    fn sign(
        &self,
        responses: Vec<SingleResponse>,
        nonce: Option<&[u8]>,
        times: &Times,
    ) -> Result<Vec<u8>, Error> {
        self.check_validity(times.produced_at)?;
        let data = ResponseData {
            version: None,
            responder_id: ResponderId::ByKey(octets(&self.key_hash)?),
            produced_at: time("produced_at", times.produced_at)?,
            responses,
            response_extensions: nonce
                .map(|n| nonce_extension(n).map(|e| vec![e]))
                .transpose()?,
        };
        let signature = self.signer.sign(&encode(&data)?)?;
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: self.algorithm.clone(),
            signature: BitString::from_bytes(&signature).map_err(encoding_error)?,
            certs: self.certs.clone(),
        };
        successful(&basic)
    }

    /// Refuses to sign at a time the responder certificate is not valid: no client would
    /// accept the response.
    fn check_validity(&self, at: SystemTime) -> Result<(), Error> {
        let (not_before, not_after) = self.valid;
        match (not_before..=not_after).contains(&at) {
            true => Ok(()),
            false => Err(Error::invalid(
                "produced_at",
                format!(
                    "the responder certificate is valid from {} to {}",
                    crate::timestamps::rfc3339(not_before),
                    crate::timestamps::rfc3339(not_after)
                ),
            )),
        }
    }
}

impl IssuerHashes {
    fn of(hash: HashAlgorithm, ca: &X509Certificate<'_>) -> IssuerHashes {
        IssuerHashes {
            name: digest(hash, ca.subject().as_raw()),
            key: digest(hash, &ca.public_key().subject_public_key.data),
        }
    }
}

/// `der`, a whole DER certificate; `field` names it in the error.
fn certificate<'a>(field: &'static str, der: &'a [u8]) -> Result<X509Certificate<'a>, Error> {
    match X509Certificate::from_der(der) {
        Ok(([], certificate)) => Ok(certificate),
        Ok((rest, _)) => Err(Error::invalid(
            field,
            format!("{} bytes after the certificate", rest.len()),
        )),
        Err(e) => Err(Error::invalid(field, format!("not a DER certificate: {e}"))),
    }
}

/// The `certs` of a delegated responder's responses: its certificate `der`, once checked as a
/// client will check it.
fn delegation(
    ca: &X509Certificate<'_>,
    responder: &X509Certificate<'_>,
    der: &[u8],
) -> Result<Vec<Any>, Error> {
    check_delegation(ca, responder)?;
    Ok(vec![raw(der)?])
}

/// A delegated responder's certificate must be issued and signed by the CA, for OCSP signing
/// (RFC 6960 §4.2.2.2): what a client checks before it trusts the responses.
fn check_delegation(
    ca: &X509Certificate<'_>,
    responder: &X509Certificate<'_>,
) -> Result<(), Error> {
    let refuse = |reason: &str| Err(Error::invalid("responder certificate", reason));
    if responder.issuer().as_raw() != ca.subject().as_raw() {
        return refuse("it is not issued by the CA");
    }
    if responder.verify_signature(Some(ca.public_key())).is_err() {
        return refuse("its signature does not verify with the CA's key");
    }
    match responder.extended_key_usage() {
        Ok(Some(usage)) if usage.value.ocsp_signing => Ok(()),
        _ => refuse("it lacks the id-kp-OCSPSigning extended key usage"),
    }
}

/// When `certificate` is valid, both ends included.
fn validity(certificate: &X509Certificate<'_>) -> (SystemTime, SystemTime) {
    let validity = certificate.validity();
    (
        SystemTime::from(validity.not_before.to_datetime()),
        SystemTime::from(validity.not_after.to_datetime()),
    )
}

/// One certificate as a value to write back into `certs`.
fn raw(der: &[u8]) -> Result<Any, Error> {
    use der::Decode;
    Any::from_der(der).map_err(|e| Error::invalid("responder certificate", e.to_string()))
}

fn digest(hash: HashAlgorithm, bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(hash.digest(), bytes).as_ref().to_vec()
}

/// The signatureAlgorithm of a response signed with `algorithm`: no parameters for any of them
/// (RFC 5758 §3.2, RFC 8410 §3).
fn signature_algorithm(algorithm: Algorithm) -> Result<AlgorithmIdentifier, Error> {
    let oid = match algorithm {
        Algorithm::EcdsaP256Sha256 => ECDSA_WITH_SHA256,
        Algorithm::EcdsaP384Sha384 => ECDSA_WITH_SHA384,
        Algorithm::Ed25519 => ID_ED25519,
        other => {
            return Err(Error::invalid(
                "signer",
                format!("{other} is not a signature algorithm"),
            ));
        }
    };
    Ok(AlgorithmIdentifier {
        algorithm: oid,
        parameters: None,
    })
}

/// The answer for `id`.
fn single_response(id: &CertId, status: &Status, times: &Times) -> Result<SingleResponse, Error> {
    if times
        .next_update
        .is_some_and(|next| next < times.this_update)
    {
        return Err(Error::invalid("next_update", "it is before this_update"));
    }
    Ok(SingleResponse {
        cert_id: id.wire().clone(),
        cert_status: cert_status(status)?,
        this_update: time("this_update", times.this_update)?,
        next_update: times
            .next_update
            .map(|t| time("next_update", t))
            .transpose()?,
        single_extensions: None,
    })
}

fn cert_status(status: &Status) -> Result<CertStatus, Error> {
    Ok(match *status {
        Status::Good => CertStatus::Good(Null),
        Status::Unknown => CertStatus::Unknown(Null),
        Status::Revoked { at, reason } => CertStatus::Revoked(RevokedInfo {
            revocation_time: time("revoked at", at)?,
            revocation_reason: reason.map(crl_reason).transpose()?,
        }),
    })
}

fn crl_reason(code: u8) -> Result<CrlReason, Error> {
    CrlReason::from_code(code).ok_or_else(|| {
        Error::invalid(
            "reason",
            format!("{code} is not an RFC 5280 CRLReason (0 to 10, not 7)"),
        )
    })
}

/// `at` as a GeneralizedTime (whole seconds, UTC); years 1970 to 9999.
fn time(field: &'static str, at: SystemTime) -> Result<GeneralizedTime, Error> {
    GeneralizedTime::from_system_time(at)
        .map_err(|_| Error::invalid(field, "outside the years 1970 to 9999"))
}

/// A successful `OCSPResponse` carrying `basic`.
fn successful(basic: &BasicOcspResponse) -> Result<Vec<u8>, Error> {
    let response = OcspResponse {
        response_status: ResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ID_PKIX_OCSP_BASIC,
            response: octets(&encode(basic)?)?,
        }),
    };
    encode(&response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::time::Duration;

    use der::{Decode, Encode};
    use govtrust_kms::Error as KmsError;
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, PublicKeyData,
        SignatureAlgorithm, SigningKey,
    };
    use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    use x509_parser::prelude::SubjectPublicKeyInfo;

    use super::*;
    use crate::ocsp::wire;
    use crate::ocsp::{TRY_LATER, UNAUTHORIZED, refusal};

    /// A key in memory that signs as a custodian would, or refuses as a sealed kms does.
    struct Custodian {
        key: KeyPair,
        spki: Vec<u8>,
        algorithm: Algorithm,
        sealed: bool,
    }

    impl Custodian {
        fn new(algorithm: Algorithm) -> Custodian {
            let rcgen: &'static SignatureAlgorithm = match algorithm {
                Algorithm::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
                Algorithm::EcdsaP384Sha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
                Algorithm::Ed25519 => &rcgen::PKCS_ED25519,
                _ => panic!("not an algorithm rcgen signs with"),
            };
            let key = KeyPair::generate_for(rcgen).unwrap();
            let spki = key.subject_public_key_info();
            Custodian {
                key,
                spki,
                algorithm,
                sealed: false,
            }
        }

        /// True if `signature` over `message` verifies with this key, by ring alone.
        fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
            let verification: &'static dyn VerificationAlgorithm = match self.algorithm {
                Algorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
                Algorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
                _ => &signature::ED25519,
            };
            let (_, spki) = SubjectPublicKeyInfo::from_der(&self.spki).unwrap();
            UnparsedPublicKey::new(verification, spki.subject_public_key.data.as_ref())
                .verify(message, signature)
                .is_ok()
        }
    }

    impl Signer for Custodian {
        fn algorithm(&self) -> Algorithm {
            self.algorithm
        }

        fn public_key_der(&self) -> &[u8] {
            &self.spki
        }

        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KmsError> {
            match self.sealed {
                true => Err(KmsError::Sealed),
                false => Ok(SigningKey::sign(&self.key, message).unwrap()),
            }
        }
    }

    /// A CA: its key and certificate.
    struct Ca {
        key: KeyPair,
        params: CertificateParams,
        der: Vec<u8>,
    }

    impl Ca {
        fn new(name: &str) -> Ca {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let der = params.self_signed(&key).unwrap().der().to_vec();
            Ca { key, params, der }
        }

        /// A certificate for `subject`'s key, with `usages`.
        fn issue(&self, subject: &Custodian, usages: Vec<ExtendedKeyUsagePurpose>) -> Vec<u8> {
            let mut params = CertificateParams::default();
            params
                .distinguished_name
                .push(DnType::CommonName, "OCSP responder");
            params.extended_key_usages = usages;
            let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
            params
                .signed_by(&subject.key, &issuer)
                .unwrap()
                .der()
                .to_vec()
        }
    }

    /// A responder delegated by a new CA, with a key of `algorithm`: the key, its certificate
    /// and the responder.
    fn delegated(algorithm: Algorithm) -> (Arc<Custodian>, Vec<u8>, Responder) {
        let ca = Ca::new("Test CA");
        let custodian = Arc::new(Custodian::new(algorithm));
        let certificate = ca.issue(&custodian, vec![ExtendedKeyUsagePurpose::OcspSigning]);
        let responder = Responder::new(&ca.der, &certificate, custodian.clone()).unwrap();
        (custodian, certificate, responder)
    }

    fn times() -> Times {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        Times {
            produced_at: now,
            this_update: now,
            next_update: Some(now + Duration::from_secs(86_400)),
        }
    }

    fn serial(text: &str) -> Serial {
        Serial::parse(text).unwrap()
    }

    /// The basic response in a successful `OCSPResponse`, its signature checked with `key`.
    fn basic(response: &[u8], key: &Custodian) -> BasicOcspResponse {
        let response = OcspResponse::from_der(response).unwrap();
        assert_eq!(response.response_status, ResponseStatus::Successful);
        let bytes = response.response_bytes.unwrap();
        assert_eq!(bytes.response_type, ID_PKIX_OCSP_BASIC);
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
        let tbs = encode(&basic.tbs_response_data).unwrap();
        assert!(key.verifies(&tbs, basic.signature.as_bytes().unwrap()));
        basic
    }

    /// A request for `ids`, with `nonce` if given.
    fn request(ids: &[CertId], nonce: Option<&[u8]>) -> Request {
        let tbs = wire::TbsRequest {
            version: None,
            requestor_name: None,
            request_list: ids
                .iter()
                .map(|id| wire::SingleRequest {
                    req_cert: id.wire().clone(),
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions: nonce.map(|n| vec![nonce_extension(n).unwrap()]),
        };
        let bytes = wire::OcspRequest {
            tbs_request: tbs,
            optional_signature: None,
        };
        Request::parse(&encode(&bytes).unwrap()).unwrap()
    }

    #[test]
    fn a_response_answers_each_cert_id_in_order_and_repeats_the_nonce() {
        for algorithm in [
            Algorithm::EcdsaP256Sha256,
            Algorithm::EcdsaP384Sha384,
            Algorithm::Ed25519,
        ] {
            let (key, _, responder) = delegated(algorithm);
            let ids = [
                responder
                    .cert_id(HashAlgorithm::Sha1, &serial("01aa"))
                    .unwrap(),
                responder
                    .cert_id(HashAlgorithm::Sha256, &serial("01bb"))
                    .unwrap(),
                responder
                    .cert_id(HashAlgorithm::Sha1, &serial("01cc"))
                    .unwrap(),
            ];
            let revoked_at = times().this_update - Duration::from_secs(3600);
            let status = |serial: &Serial| {
                Ok(match serial.to_string().as_str() {
                    "01aa" => Status::Good,
                    "01bb" => Status::Revoked {
                        at: revoked_at,
                        reason: Some(1),
                    },
                    _ => Status::Unknown,
                })
            };
            let der = responder
                .respond(&request(&ids, Some(&[9; 16])), status, &times())
                .unwrap();
            let basic = basic(&der, &key);
            let data = &basic.tbs_response_data;
            let expected = [
                CertStatus::Good(Null),
                CertStatus::Revoked(RevokedInfo {
                    revocation_time: time("", revoked_at).unwrap(),
                    revocation_reason: Some(CrlReason::KeyCompromise),
                }),
                CertStatus::Unknown(Null),
            ];
            assert_eq!(data.responses.len(), 3);
            for ((single, id), status) in data.responses.iter().zip(&ids).zip(expected) {
                assert_eq!(encode(&single.cert_id).unwrap(), id.as_der());
                assert_eq!(single.cert_status, status);
                assert_eq!(single.this_update, time("", times().this_update).unwrap());
            }
            assert_eq!(
                data.response_extensions,
                Some(vec![nonce_extension(&[9; 16]).unwrap()])
            );
            assert_eq!(
                basic.signature_algorithm,
                signature_algorithm(algorithm).unwrap()
            );
            assert_eq!(basic.signature_algorithm.parameters, None);
        }
    }

    #[test]
    fn the_responder_is_named_by_key_and_sends_its_certificate() {
        let (key, certificate, responder) = delegated(Algorithm::EcdsaP256Sha256);
        let id = responder
            .cert_id(HashAlgorithm::Sha1, &serial("01"))
            .unwrap();
        let basic = basic(
            &responder.presign(&id, Status::Good, &times()).unwrap(),
            &key,
        );
        let (_, spki) = SubjectPublicKeyInfo::from_der(&key.spki).unwrap();
        let hash = digest(HashAlgorithm::Sha1, &spki.subject_public_key.data);
        assert_eq!(
            basic.tbs_response_data.responder_id,
            ResponderId::ByKey(octets(&hash).unwrap())
        );
        let [sent] = basic.certs.unwrap().try_into().unwrap();
        assert_eq!(sent.to_der().unwrap(), certificate);
    }

    #[test]
    fn a_presigned_response_has_one_answer_and_no_nonce() {
        let (key, _, responder) = delegated(Algorithm::Ed25519);
        let id = responder
            .cert_id(HashAlgorithm::Sha256, &serial("01aa"))
            .unwrap();
        let revoked = Status::Revoked {
            at: times().this_update,
            reason: None,
        };
        let basic = basic(&responder.presign(&id, revoked, &times()).unwrap(), &key);
        let data = basic.tbs_response_data;
        assert_eq!(data.response_extensions, None);
        let [single] = data.responses.try_into().unwrap();
        assert_eq!(encode(&single.cert_id).unwrap(), id.as_der());
        assert!(matches!(
            single.cert_status,
            CertStatus::Revoked(RevokedInfo {
                revocation_reason: None,
                ..
            })
        ));
        assert_eq!(
            single.next_update,
            times().next_update.map(|t| time("", t).unwrap())
        );
    }

    #[test]
    fn a_cert_id_of_another_ca_makes_the_whole_request_unauthorized() {
        let (_, _, responder) = delegated(Algorithm::EcdsaP256Sha256);
        let (_, _, other) = delegated(Algorithm::EcdsaP256Sha256);
        let ours = responder
            .cert_id(HashAlgorithm::Sha1, &serial("01"))
            .unwrap();
        let theirs = other.cert_id(HashAlgorithm::Sha1, &serial("02")).unwrap();
        assert!(responder.answers_for(&ours));
        assert!(!responder.answers_for(&theirs));
        let mut looked_up = 0;
        let refused = responder
            .respond(
                &request(&[ours, theirs.clone()], None),
                |_| {
                    looked_up += 1;
                    Ok(Status::Good)
                },
                &times(),
            )
            .unwrap_err();
        assert_eq!(looked_up, 0);
        assert!(
            matches!(&refused, Error::OcspUnauthorized { serial } if serial.to_string() == "02"),
            "{refused:?}"
        );
        assert_eq!(refusal(&refused), UNAUTHORIZED);
        let refused = responder
            .presign(&theirs, Status::Good, &times())
            .unwrap_err();
        assert_eq!(refusal(&refused), UNAUTHORIZED);
    }

    #[test]
    fn a_cert_id_matches_only_with_both_hashes_of_its_own_algorithm() {
        let (_, _, responder) = delegated(Algorithm::EcdsaP256Sha256);
        let sha1 = responder
            .cert_id(HashAlgorithm::Sha1, &serial("01"))
            .unwrap();
        let sha256 = responder
            .cert_id(HashAlgorithm::Sha256, &serial("01"))
            .unwrap();
        assert!(responder.answers_for(&sha256));
        let name_only = CertId::build(
            HashAlgorithm::Sha1,
            sha1.issuer_name_hash(),
            &[0; 20],
            &serial("01"),
        )
        .unwrap();
        assert!(!responder.answers_for(&name_only));
        // SHA-256 hashes truncated to SHA-1's length name nothing.
        let truncated = CertId::build(
            HashAlgorithm::Sha1,
            &sha256.issuer_name_hash()[..20],
            &sha256.issuer_key_hash()[..20],
            &serial("01"),
        )
        .unwrap();
        assert!(!responder.answers_for(&truncated));
    }

    #[test]
    fn the_ca_may_answer_for_itself_without_sending_a_certificate() {
        let key = Arc::new(Custodian::new(Algorithm::EcdsaP256Sha256));
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "CA");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let der = params.self_signed(&key.key).unwrap().der().to_vec();
        let responder = Responder::new(&der, &der, key.clone()).unwrap();
        let id = responder
            .cert_id(HashAlgorithm::Sha1, &serial("01"))
            .unwrap();
        let basic = basic(
            &responder.presign(&id, Status::Good, &times()).unwrap(),
            &key,
        );
        assert_eq!(basic.certs, None);
    }

    #[test]
    fn a_responder_certificate_must_be_delegated_by_the_ca_to_the_signers_key() {
        let ca = Ca::new("Test CA");
        let key = Arc::new(Custodian::new(Algorithm::EcdsaP256Sha256));
        let ocsp = vec![ExtendedKeyUsagePurpose::OcspSigning];
        let refused = |certificate: &[u8], signer: Arc<Custodian>| match Responder::new(
            &ca.der,
            certificate,
            signer,
        ) {
            Err(Error::InvalidArgument { field, reason }) => format!("{field}: {reason}"),
            other => panic!("{other:?}"),
        };
        let no_usage = ca.issue(&key, vec![ExtendedKeyUsagePurpose::ServerAuth]);
        assert!(refused(&no_usage, key.clone()).contains("OCSPSigning"));
        let other_ca = Ca::new("Test CA");
        let forged = other_ca.issue(&key, ocsp.clone());
        assert!(refused(&forged, key.clone()).contains("signature"));
        let foreign = Ca::new("Other CA").issue(&key, ocsp.clone());
        assert!(refused(&foreign, key.clone()).contains("not issued by the CA"));
        let other_key = Arc::new(Custodian::new(Algorithm::EcdsaP256Sha256));
        let good = ca.issue(&key, ocsp);
        assert!(refused(&good, other_key).contains("not the signer's"));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(refused(&trailing, key.clone()).contains("1 bytes after"));
        assert!(refused(&good[1..], key.clone()).starts_with("responder certificate: not a DER"));
        assert!(Responder::new(&ca.der[1..], &good, key).is_err());
    }

    #[test]
    fn a_sealed_custodian_gives_try_later() {
        let ca = Ca::new("Test CA");
        let mut custodian = Custodian::new(Algorithm::EcdsaP256Sha256);
        custodian.sealed = true;
        let custodian = Arc::new(custodian);
        let certificate = ca.issue(&custodian, vec![ExtendedKeyUsagePurpose::OcspSigning]);
        let responder = Responder::new(&ca.der, &certificate, custodian).unwrap();
        let id = responder
            .cert_id(HashAlgorithm::Sha1, &serial("01"))
            .unwrap();
        let refused = responder.presign(&id, Status::Good, &times()).unwrap_err();
        assert!(
            matches!(refused, Error::Kms(KmsError::Sealed)),
            "{refused:?}"
        );
        assert_eq!(refusal(&refused), TRY_LATER);
    }

    #[test]
    fn times_and_reasons_out_of_range_are_refused() {
        let (_, _, responder) = delegated(Algorithm::EcdsaP256Sha256);
        let id = responder
            .cert_id(HashAlgorithm::Sha1, &serial("01"))
            .unwrap();
        let field = |status: Status, times: Times| match responder.presign(&id, status, &times) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let backwards = Times {
            next_update: Some(times().this_update - Duration::from_secs(1)),
            ..times()
        };
        assert_eq!(field(Status::Good, backwards), "next_update");
        let before_1970 = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        let early = Status::Revoked {
            at: before_1970,
            reason: None,
        };
        assert_eq!(field(early, times()), "revoked at");
        for code in [7, 11, 255] {
            let status = Status::Revoked {
                at: times().this_update,
                reason: Some(code),
            };
            assert_eq!(field(status, times()), "reason");
        }
        // rcgen certificates are valid from 1975 to 4096.
        let stale = Times {
            produced_at: SystemTime::UNIX_EPOCH,
            ..times()
        };
        assert_eq!(field(Status::Good, stale), "produced_at");
    }

    #[test]
    fn only_signature_algorithms_sign() {
        assert!(signature_algorithm(Algorithm::Aes256Gcm).is_err());
        assert_eq!(
            signature_algorithm(Algorithm::EcdsaP384Sha384)
                .unwrap()
                .algorithm,
            ECDSA_WITH_SHA384
        );
    }

    #[test]
    fn a_status_lookup_failure_is_the_answer() {
        let (_, _, responder) = delegated(Algorithm::EcdsaP256Sha256);
        let id = responder
            .cert_id(HashAlgorithm::Sha1, &serial("01"))
            .unwrap();
        let failed = responder
            .respond(
                &request(&[id], None),
                |_| Err(Error::corrupt("test")),
                &times(),
            )
            .unwrap_err();
        assert!(matches!(failed, Error::Corrupt { .. }));
        assert_eq!(refusal(&failed), crate::ocsp::INTERNAL_ERROR);
    }
}
