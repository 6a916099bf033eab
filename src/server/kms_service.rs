//! gRPC `govtrust.kms.v1.KeyManagement` and `govtrust.kms.v1.Seal`: parse, authorize, call the
//! key-management centre, answer.
//!
//! Secrets passing through the handlers are overwritten once used: the Encrypt plaintext in
//! the decoded request (see [`PlaintextRequest`]), and the Decrypt and GenerateDataKey
//! plaintexts, which go into the response as `Bytes` owned by a `Zeroizing` buffer that is
//! wiped when tonic drops the message after encoding it. Copies below the message are out of
//! reach: rustls' record buffers, h2's frame buffers, tonic's decode buffer beyond the payload
//! (freed, not wiped) and its encode buffer (reused for the stream's next message, then freed).

use std::sync::Arc;

use govtrust_kms::{Algorithm, ImportSpec, KeyId, KeyInfo, KeySpec, KeyState, Kms, StateChange};
use govtrust_proto::kms as pb;
use pb::key_management_server::KeyManagement;
use pb::seal_server::Seal;
use prost::bytes::{Bytes, BytesMut};
use tonic::{Request, Response, Status};
use zeroize::Zeroize;

use super::authz::{Action, KeyOperation, authorize};
use super::identity::{Authenticator, Principal};
use super::{blocking, status};

/// Default and maximum page sizes of ListKeys.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 1000;

/// The key-management service.
pub struct KeyService {
    kms: Arc<Kms>,
    auth: Arc<Authenticator>,
    /// Identities that may own keys start with this: `spiffe://<trust-domain>/`.
    identity_prefix: String,
}

impl KeyService {
    pub fn new(kms: Arc<Kms>, auth: Arc<Authenticator>, trust_domain: &str) -> Self {
        Self {
            kms,
            auth,
            identity_prefix: format!("spiffe://{trust_domain}/"),
        }
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        self.auth
            .principal(request.peer_certs().as_deref().map(Vec::as_slice))
    }

    /// The key named by `key_id`, after checking `principal` may do `action` with it.
    fn authorized_key(
        &self,
        principal: &Principal,
        key_id: &str,
        operation: KeyOperation,
    ) -> Result<(KeyId, KeyInfo), Status> {
        let id = KeyId::parse(key_id).map_err(status::kms)?;
        let key = self.kms.key(&id).map_err(status::kms)?;
        authorize(principal, Action::Key(operation, &key))?;
        Ok((id, key))
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl KeyManagement for KeyService {
    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Reply<pb::CreateKeyResponse> {
        let principal = self.principal(&request)?;
        authorize(&principal, Action::CreateKey)?;
        let spec = key_spec(request.into_inner(), &principal, &self.identity_prefix)?;
        let kms = self.kms.clone();
        let key = blocking(move || {
            kms.create_key(&principal.spiffe_id, spec)
                .map_err(status::kms)
        })
        .await?;
        Ok(Response::new(pb::CreateKeyResponse {
            key: Some(key_message(&key)),
        }))
    }

    async fn get_key(&self, request: Request<pb::GetKeyRequest>) -> Reply<pb::GetKeyResponse> {
        let principal = self.principal(&request)?;
        let (_, key) =
            self.authorized_key(&principal, &request.get_ref().key_id, KeyOperation::Read)?;
        Ok(Response::new(pb::GetKeyResponse {
            key: Some(key_message(&key)),
        }))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Reply<pb::ListKeysResponse> {
        let principal = self.principal(&request)?;
        authorize(&principal, Action::ListKeys)?;
        let request = request.into_inner();
        let size = page_size(request.page_size);
        let token = Some(request.page_token).filter(|t| !t.is_empty());
        let (keys, next) = self
            .kms
            .list_keys(size, token.as_deref())
            .map_err(status::kms)?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(key_message).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Reply<pb::RotateKeyResponse> {
        let principal = self.principal(&request)?;
        let (id, _) =
            self.authorized_key(&principal, &request.get_ref().key_id, KeyOperation::Manage)?;
        let kms = self.kms.clone();
        let key = blocking(move || {
            kms.rotate_key(&principal.spiffe_id, &id)
                .map_err(status::kms)
        })
        .await?;
        Ok(Response::new(pb::RotateKeyResponse {
            key: Some(key_message(&key)),
        }))
    }

    async fn encrypt(&self, request: Request<pb::EncryptRequest>) -> Reply<pb::EncryptResponse> {
        let principal = self.principal(&request)?;
        let request = PlaintextRequest(request.into_inner());
        let (id, _) = self.authorized_key(&principal, &request.0.key_id, KeyOperation::Use)?;
        let out = self
            .kms
            .encrypt(&id, &request.0.plaintext, &request.0.aad)
            .map_err(status::kms)?;
        Ok(Response::new(pb::EncryptResponse {
            ciphertext: out.ciphertext.into(),
            key_id: out.key_id.to_string(),
            version: out.version,
        }))
    }

    async fn decrypt(&self, request: Request<pb::DecryptRequest>) -> Reply<pb::DecryptResponse> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        let (named, _) = Kms::ciphertext_key(&request.ciphertext).map_err(status::kms)?;
        let expected = Some(request.key_id.as_str()).filter(|k| !k.is_empty());
        if expected.is_some_and(|k| k != named.as_str()) {
            return Err(Status::invalid_argument(format!(
                "the ciphertext was made with key {named}, not {}",
                request.key_id
            )));
        }
        let (id, _) = self.authorized_key(&principal, named.as_str(), KeyOperation::Use)?;
        let out = self
            .kms
            .decrypt(&request.ciphertext, &request.aad, Some(&id))
            .map_err(status::kms)?;
        Ok(Response::new(pb::DecryptResponse {
            // Declassified: the caller is authorized to use this key and asked for the plaintext.
            // Wiped when tonic drops the message, once encoded.
            plaintext: Bytes::from_owner(out.plaintext),
            key_id: out.key_id.to_string(),
            version: out.version,
        }))
    }

    async fn generate_data_key(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Reply<pb::GenerateDataKeyResponse> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        let (id, _) = self.authorized_key(&principal, &request.key_id, KeyOperation::Use)?;
        let data_key = self
            .kms
            .generate_data_key(&id, &request.aad)
            .map_err(status::kms)?;
        Ok(Response::new(pb::GenerateDataKeyResponse {
            // Declassified: handing the data key to its authorized owner is the point of the call.
            // Wiped when tonic drops the message, once encoded.
            plaintext: Bytes::from_owner(data_key.plaintext),
            key_id: data_key.encrypted.key_id.to_string(),
            version: data_key.encrypted.version,
            ciphertext: data_key.encrypted.ciphertext.into(),
        }))
    }

    async fn sign(&self, request: Request<pb::SignRequest>) -> Reply<pb::SignResponse> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        let (id, _) = self.authorized_key(&principal, &request.key_id, KeyOperation::Use)?;
        let signed = self.kms.sign(&id, &request.message).map_err(status::kms)?;
        Ok(Response::new(pb::SignResponse {
            signature: signed.signature,
            key_id: signed.key_id.to_string(),
            version: signed.version,
        }))
    }

    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Reply<pb::VerifyResponse> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        let (id, _) = self.authorized_key(&principal, &request.key_id, KeyOperation::Use)?;
        let version = Some(request.version).filter(|v| *v != 0);
        let valid = self
            .kms
            .verify(&id, version, &request.message, &request.signature)
            .map_err(status::kms)?;
        Ok(Response::new(pb::VerifyResponse { valid }))
    }

    async fn get_public_key(
        &self,
        request: Request<pb::GetPublicKeyRequest>,
    ) -> Reply<pb::GetPublicKeyResponse> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        let (id, _) = self.authorized_key(&principal, &request.key_id, KeyOperation::Use)?;
        let version = Some(request.version).filter(|v| *v != 0);
        let public = self.kms.public_key(&id, version).map_err(status::kms)?;
        Ok(Response::new(pb::GetPublicKeyResponse {
            public_key_pem: pem("PUBLIC KEY", &public.spki_der),
            public_key_der: public.spki_der,
            algorithm: algorithm_message(public.algorithm) as i32,
            version: public.version,
        }))
    }

    async fn set_key_state(
        &self,
        request: Request<pb::SetKeyStateRequest>,
    ) -> Reply<pb::SetKeyStateResponse> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        let change = state_change(request.change)?;
        let (id, _) = self.authorized_key(&principal, &request.key_id, KeyOperation::Manage)?;
        let kms = self.kms.clone();
        let key = blocking(move || {
            kms.set_state(&principal.spiffe_id, &id, change, &request.reason)
                .map_err(status::kms)
        })
        .await?;
        Ok(Response::new(pb::SetKeyStateResponse {
            key: Some(key_message(&key)),
        }))
    }

    async fn schedule_key_destruction(
        &self,
        request: Request<pb::ScheduleKeyDestructionRequest>,
    ) -> Reply<pb::ScheduleKeyDestructionResponse> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        let (id, _) = self.authorized_key(&principal, &request.key_id, KeyOperation::Manage)?;
        let days = Some(request.waiting_period_days).filter(|d| *d != 0);
        let kms = self.kms.clone();
        let key = blocking(move || {
            kms.schedule_destruction(&principal.spiffe_id, &id, days)
                .map_err(status::kms)
        })
        .await?;
        Ok(Response::new(pb::ScheduleKeyDestructionResponse {
            key: Some(key_message(&key)),
        }))
    }

    async fn cancel_key_destruction(
        &self,
        request: Request<pb::CancelKeyDestructionRequest>,
    ) -> Reply<pb::CancelKeyDestructionResponse> {
        let principal = self.principal(&request)?;
        let (id, _) =
            self.authorized_key(&principal, &request.get_ref().key_id, KeyOperation::Manage)?;
        let kms = self.kms.clone();
        let key = blocking(move || {
            kms.cancel_destruction(&principal.spiffe_id, &id)
                .map_err(status::kms)
        })
        .await?;
        Ok(Response::new(pb::CancelKeyDestructionResponse {
            key: Some(key_message(&key)),
        }))
    }

    async fn wrap_key_for_recipient(
        &self,
        request: Request<pb::WrapKeyForRecipientRequest>,
    ) -> Reply<pb::WrapKeyForRecipientResponse> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        let (id, _) = self.authorized_key(&principal, &request.key_id, KeyOperation::Export)?;
        let version = Some(request.version).filter(|v| *v != 0);
        let kms = self.kms.clone();
        let wrapped = blocking(move || {
            kms.wrap_for_recipient(
                &principal.spiffe_id,
                &id,
                version,
                &request.recipient_public_key,
            )
            .map_err(status::kms)
        })
        .await?;
        Ok(Response::new(pb::WrapKeyForRecipientResponse {
            encapsulated_key: wrapped.encapsulated_key,
            ciphertext: wrapped.ciphertext,
            algorithm: algorithm_message(wrapped.algorithm) as i32,
            key_id: wrapped.key_id.to_string(),
            version: wrapped.version,
        }))
    }

    async fn get_wrapping_key(
        &self,
        request: Request<pb::GetWrappingKeyRequest>,
    ) -> Reply<pb::GetWrappingKeyResponse> {
        let principal = self.principal(&request)?;
        authorize(&principal, Action::ReadWrappingKey)?;
        let public_key = self.kms.wrapping_public_key().map_err(status::kms)?;
        Ok(Response::new(pb::GetWrappingKeyResponse { public_key }))
    }

    async fn import_key(
        &self,
        request: Request<pb::ImportKeyRequest>,
    ) -> Reply<pb::ImportKeyResponse> {
        let principal = self.principal(&request)?;
        authorize(&principal, Action::ImportKey)?;
        let request = request.into_inner();
        let spec = ImportSpec {
            algorithm: algorithm(request.algorithm)?,
            encapsulated_key: request.encapsulated_key,
            ciphertext: request.ciphertext,
            exportable: request.exportable,
            description: request.description,
            owner: owner(&request.owner, &principal, &self.identity_prefix)?,
        };
        let kms = self.kms.clone();
        let key = blocking(move || {
            kms.import_key(&principal.spiffe_id, spec)
                .map_err(status::kms)
        })
        .await?;
        Ok(Response::new(pb::ImportKeyResponse {
            key: Some(key_message(&key)),
        }))
    }
}

/// An Encrypt request whose plaintext is overwritten when the handler drops it, on every path.
struct PlaintextRequest(pb::EncryptRequest);

impl Drop for PlaintextRequest {
    fn drop(&mut self) {
        if wipe_plaintext(&mut self.0).is_none() {
            tracing::debug!("an Encrypt plaintext was still shared and could not be wiped");
        }
    }
}

/// Overwrites `request`'s plaintext where it lies and returns the wiped bytes. The decoder
/// slices every `Bytes` field from one receive buffer, so the AAD is released first; then the
/// plaintext is the last reference to its bytes unless someone kept a clone (None then:
/// nothing is wiped).
fn wipe_plaintext(request: &mut pb::EncryptRequest) -> Option<BytesMut> {
    request.aad = Bytes::new();
    let mut plaintext = std::mem::take(&mut request.plaintext).try_into_mut().ok()?;
    plaintext.as_mut().zeroize();
    Some(plaintext)
}

/// The seal service: reachable without a client certificate, a share is its own credential.
pub struct SealService {
    kms: Arc<Kms>,
}

impl SealService {
    pub fn new(kms: Arc<Kms>) -> Self {
        Self { kms }
    }
}

#[tonic::async_trait]
impl Seal for SealService {
    async fn unseal(&self, request: Request<pb::UnsealRequest>) -> Reply<pb::UnsealResponse> {
        let share = zeroize::Zeroizing::new(request.into_inner().share);
        let kms = self.kms.clone();
        let status = blocking(move || kms.unseal(&share).map_err(status::kms)).await?;
        Ok(Response::new(pb::UnsealResponse {
            status: Some(seal_message(&status)),
        }))
    }

    async fn status(&self, _: Request<pb::SealStatusRequest>) -> Reply<pb::SealStatusResponse> {
        let status = self.kms.seal_status();
        Ok(Response::new(pb::SealStatusResponse {
            status: Some(seal_message(&status)),
        }))
    }
}

fn seal_message(status: &govtrust_kms::SealStatus) -> pb::SealStatus {
    pb::SealStatus {
        sealed: status.sealed,
        threshold: u32::from(status.threshold),
        shares_total: u32::from(status.shares_total),
        progress: u32::from(status.progress),
        deployment_id: status.deployment_id.clone(),
    }
}

fn key_spec(
    request: pb::CreateKeyRequest,
    principal: &Principal,
    identity_prefix: &str,
) -> Result<KeySpec, Status> {
    Ok(KeySpec {
        algorithm: algorithm(request.algorithm)?,
        exportable: request.exportable,
        owner: owner(&request.owner, principal, identity_prefix)?,
        description: request.description,
        pre_active: request.pre_active,
        internal: false,
    })
}

/// The owner of a new key: the caller, unless the security administrator names another
/// identity of this trust domain.
fn owner(requested: &str, principal: &Principal, identity_prefix: &str) -> Result<String, Status> {
    use super::identity::Kind;
    if requested.is_empty() || requested == principal.spiffe_id {
        return Ok(principal.spiffe_id.clone());
    }
    if !is_identity(requested, identity_prefix) {
        return Err(Status::invalid_argument(format!(
            "owner: {requested:?} is not a system ({identity_prefix}org/<org>/sys/<name>) or a person ({identity_prefix}person/<id>) of this trust domain"
        )));
    }
    match principal.kind {
        Kind::Administrator(govtrust_ca::Role::SecurityAdministrator) => Ok(requested.to_owned()),
        _ => Err(Status::permission_denied(
            "only the security administrator creates keys for others",
        )),
    }
}

/// Whether `id` is a well-formed system or person identity under `prefix`.
fn is_identity(id: &str, prefix: &str) -> bool {
    let Some(path) = id.strip_prefix(prefix) else {
        return false;
    };
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["person", person] => !person.is_empty(),
        ["org", org, "sys", name] => !org.is_empty() && !name.is_empty(),
        _ => false,
    }
}

fn page_size(requested: u32) -> usize {
    match usize::try_from(requested).unwrap_or(PAGE_MAX) {
        0 => PAGE_DEFAULT,
        n => n.min(PAGE_MAX),
    }
}

fn algorithm(value: i32) -> Result<Algorithm, Status> {
    use pb::KeyAlgorithm as P;
    match P::try_from(value) {
        Ok(P::Aes256Gcm) => Ok(Algorithm::Aes256Gcm),
        Ok(P::EcdsaP256Sha256) => Ok(Algorithm::EcdsaP256Sha256),
        Ok(P::EcdsaP384Sha384) => Ok(Algorithm::EcdsaP384Sha384),
        Ok(P::Ed25519) => Ok(Algorithm::Ed25519),
        _ => Err(Status::invalid_argument(format!(
            "algorithm: {value} is not a key algorithm"
        ))),
    }
}

fn algorithm_message(algorithm: Algorithm) -> pb::KeyAlgorithm {
    match algorithm {
        Algorithm::Aes256Gcm => pb::KeyAlgorithm::Aes256Gcm,
        Algorithm::EcdsaP256Sha256 => pb::KeyAlgorithm::EcdsaP256Sha256,
        Algorithm::EcdsaP384Sha384 => pb::KeyAlgorithm::EcdsaP384Sha384,
        Algorithm::Ed25519 => pb::KeyAlgorithm::Ed25519,
    }
}

fn state_change(value: i32) -> Result<StateChange, Status> {
    use pb::KeyStateChange as P;
    match P::try_from(value) {
        Ok(P::Activate) => Ok(StateChange::Activate),
        Ok(P::Suspend) => Ok(StateChange::Suspend),
        Ok(P::Resume) => Ok(StateChange::Resume),
        Ok(P::Deactivate) => Ok(StateChange::Deactivate),
        Ok(P::MarkCompromised) => Ok(StateChange::MarkCompromised),
        _ => Err(Status::invalid_argument(format!(
            "change: {value} is not a state change"
        ))),
    }
}

fn state_message(state: KeyState) -> pb::KeyState {
    match state {
        KeyState::PreActive => pb::KeyState::PreActive,
        KeyState::Active => pb::KeyState::Active,
        KeyState::Suspended => pb::KeyState::Suspended,
        KeyState::Deactivated => pb::KeyState::Deactivated,
        KeyState::Compromised => pb::KeyState::Compromised,
        KeyState::Destroyed => pb::KeyState::Destroyed,
    }
}

fn key_message(key: &KeyInfo) -> pb::Key {
    pb::Key {
        key_id: key.id.to_string(),
        algorithm: algorithm_message(key.algorithm) as i32,
        state: state_message(key.state) as i32,
        primary_version: key.primary_version,
        versions: key
            .versions
            .iter()
            .map(|v| pb::KeyVersion {
                version: v.version,
                created_at: Some(v.created_at.into()),
            })
            .collect(),
        exportable: key.exportable,
        owner: key.owner.clone(),
        description: key.description.clone(),
        created_at: Some(key.created_at.into()),
        destruction_scheduled_at: key.destruction_scheduled_at.map(Into::into),
        destroyed_at: key.destroyed_at.map(Into::into),
    }
}

/// PEM armour for DER bytes.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message;

    use super::*;

    /// As tonic decodes: every `Bytes` field sliced from one receive buffer, which is dropped.
    fn decoded(plaintext: &'static [u8]) -> pb::EncryptRequest {
        let wire = pb::EncryptRequest {
            key_id: "k".to_owned(),
            plaintext: Bytes::from_static(plaintext),
            aad: Bytes::from_static(b"invoice-42"),
        }
        .encode_to_vec();
        pb::EncryptRequest::decode(Bytes::from(wire)).unwrap()
    }

    #[test]
    fn a_decoded_plaintext_is_wiped_in_place() {
        let mut request = decoded(b"the secret");
        let at = request.plaintext.as_ptr();
        let wiped = wipe_plaintext(&mut request).unwrap();
        assert_eq!(wiped.as_ptr(), at, "the very bytes the decoder produced");
        assert_eq!(&wiped[..], &[0u8; 10]);
        assert!(request.plaintext.is_empty() && request.aad.is_empty());
    }

    #[test]
    fn a_plaintext_someone_still_holds_is_left_alone() {
        let mut request = decoded(b"the secret");
        let kept = request.plaintext.clone();
        assert!(wipe_plaintext(&mut request).is_none());
        assert_eq!(&kept[..], b"the secret");
    }

    #[test]
    fn response_plaintexts_read_back_the_secret() {
        let secret = zeroize::Zeroizing::new(b"data key".to_vec());
        let response = pb::DecryptResponse {
            plaintext: Bytes::from_owner(secret),
            key_id: "k".to_owned(),
            version: 1,
        };
        let again = pb::DecryptResponse::decode(response.encode_to_vec().as_slice()).unwrap();
        assert_eq!(&again.plaintext[..], b"data key");
    }
}
