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
use std::time::{Duration, SystemTime};

use govtrust_approval::{Kind, Operation as Act};
use govtrust_kms::{
    Algorithm, BundleExport, BundleId, BundleTerms, ExportSpec, ImportSpec, KeyId, KeyInfo,
    KeyOrigin, KeySpec, KeyState, Kms, StateChange,
};
use govtrust_proto::kms as pb;
use pb::key_management_server::KeyManagement;
use pb::seal_server::Seal;
use prost::bytes::{Bytes, BytesMut};
use tonic::{Request, Response, Status};
use zeroize::Zeroize;

use super::authz::{Action, KeyOperation, authorize};
use super::dual_control::{self, Gate, KEY_APPROVERS};
use super::handler::{answer, blocking};
use super::identity::{Authenticator, Principal};
use super::status;
use super::usage::{Ledger, Operation};

/// Default and maximum page sizes of ListKeys.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 1000;

/// The key-management service.
pub struct KeyService {
    kms: Arc<Kms>,
    auth: Arc<Authenticator>,
    gate: Gate,
    /// Every key use is counted here (`kms.key.use`).
    usage: Arc<Ledger>,
    /// Identities that may own keys start with this: `spiffe://<trust-domain>/`.
    identity_prefix: String,
}

impl KeyService {
    pub fn new(
        kms: Arc<Kms>,
        auth: Arc<Authenticator>,
        gate: Gate,
        usage: Arc<Ledger>,
        trust_domain: &str,
    ) -> Self {
        Self {
            kms,
            auth,
            gate,
            usage,
            identity_prefix: format!("spiffe://{trust_domain}/"),
        }
    }

    /// Counts `principal`'s use of key `id` in the ledger, then passes `outcome` on.
    async fn used<T>(
        &self,
        principal: &Principal,
        id: &KeyId,
        operation: Operation,
        outcome: Result<T, govtrust_kms::Error>,
    ) -> Result<T, Status> {
        let outcome = outcome.map_err(status::kms);
        let caller = &principal.spiffe_id;
        self.usage.record(caller, id, operation, outcome).await
    }

    fn principal<T>(&self, request: &mut Request<T>) -> Result<Principal, Status> {
        self.auth.take(request)
    }

    /// The enrollment generation a new key of `owner` is created under: the caller's own
    /// certificate's when it creates for itself, else the owner system's current one.
    fn owner_generation(&self, principal: &Principal, owner: &str) -> Result<u32, Status> {
        match principal.standing {
            Some(standing) if owner == principal.spiffe_id => Ok(standing.certificate_generation),
            _ => self.auth.owner_generation(owner),
        }
    }

    /// Audits a use of a deactivated or compromised key before its result is answered.
    async fn account_retired_use(
        &self,
        principal: &Principal,
        id: &KeyId,
        operation: &'static str,
    ) -> Result<(), Status> {
        let (kms, actor, id) = (self.kms.clone(), principal.spiffe_id.clone(), id.clone());
        blocking(move || {
            kms.audit_retired_use(&actor, &id, operation)
                .map_err(status::kms)
        })
        .await
    }

    /// The id of the key named by `key_id`, after checking `principal` may manage it.
    fn managed_key(&self, principal: &Principal, key_id: &str) -> Result<KeyId, Status> {
        let (id, _) = self.authorized_key(principal, key_id, KeyOperation::Manage)?;
        Ok(id)
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
        let kms = self.kms.clone();
        let admit = |principal: &Principal, request| {
            authorize(principal, Action::CreateKey)?;
            let mut spec = key_spec(request, principal, &self.identity_prefix)?;
            spec.owner_generation = self.owner_generation(principal, &spec.owner)?;
            Ok(spec)
        };
        answer(&self.auth, request, admit, move |principal, spec| {
            let key = kms
                .create_key(&principal.spiffe_id, spec)
                .map_err(status::kms)?;
            Ok(pb::CreateKeyResponse {
                key: Some(key_message(&key)),
            })
        })
        .await
    }

    async fn get_key(&self, mut request: Request<pb::GetKeyRequest>) -> Reply<pb::GetKeyResponse> {
        let principal = self.principal(&mut request)?;
        let (id, key) =
            self.authorized_key(&principal, &request.get_ref().key_id, KeyOperation::Read)?;
        let mut message = key_message(&key);
        let exports = self.kms.exports(&id).map_err(status::kms)?;
        message.exports = exports.iter().map(export_message).collect();
        Ok(Response::new(pb::GetKeyResponse { key: Some(message) }))
    }

    async fn list_keys(
        &self,
        mut request: Request<pb::ListKeysRequest>,
    ) -> Reply<pb::ListKeysResponse> {
        let principal = self.principal(&mut request)?;
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
        let kms = self.kms.clone();
        let admit = |principal: &Principal, request: pb::RotateKeyRequest| {
            self.managed_key(principal, &request.key_id)
        };
        answer(&self.auth, request, admit, move |principal, id| {
            let key = kms
                .rotate_key(&principal.spiffe_id, &id)
                .map_err(status::kms)?;
            Ok(pb::RotateKeyResponse {
                key: Some(key_message(&key)),
            })
        })
        .await
    }

    async fn encrypt(
        &self,
        mut request: Request<pb::EncryptRequest>,
    ) -> Reply<pb::EncryptResponse> {
        let principal = self.principal(&mut request)?;
        let request = PlaintextRequest(request.into_inner());
        let (id, _) = self.authorized_key(&principal, &request.0.key_id, KeyOperation::Use)?;
        let out = self.kms.encrypt(&id, &request.0.plaintext, &request.0.aad);
        let out = self.used(&principal, &id, Operation::Encrypt, out).await?;
        Ok(Response::new(pb::EncryptResponse {
            ciphertext: out.ciphertext.into(),
            key_id: out.key_id.to_string(),
            version: out.version,
        }))
    }

    async fn decrypt(
        &self,
        mut request: Request<pb::DecryptRequest>,
    ) -> Reply<pb::DecryptResponse> {
        let principal = self.principal(&mut request)?;
        let request = request.into_inner();
        let expected = Some(request.key_id.as_str()).filter(|k| !k.is_empty());
        let framed = Kms::ciphertext_names_key(&request.ciphertext);
        let named = match (framed, expected) {
            // An SM2 ciphertext (GM/T 0009 DER) names no key: the key given is the one to use
            // (and to authorize), and decrypting tells whether the ciphertext is for it.
            (false, Some(given)) => given.to_owned(),
            _ => {
                let (named, _) = Kms::ciphertext_key(&request.ciphertext).map_err(status::kms)?;
                if expected.is_some_and(|k| k != named.as_str()) {
                    return Err(Status::invalid_argument(format!(
                        "the ciphertext was made with key {named}, not {}",
                        request.key_id
                    )));
                }
                named.to_string()
            }
        };
        let (id, key) = self.authorized_key(&principal, &named, KeyOperation::Use)?;
        let out = if framed {
            self.kms
                .decrypt(&request.ciphertext, &request.aad, Some(&id))
        } else {
            // SM2: a scalar multiplication and a KDF over the ciphertext per version tried,
            // off the async workers.
            let kms = Arc::clone(&self.kms);
            let (ciphertext, aad, key_id) =
                (request.ciphertext.clone(), request.aad.clone(), id.clone());
            blocking(move || Ok(kms.decrypt(&ciphertext, &aad, Some(&key_id)))).await?
        };
        let out = self.used(&principal, &id, Operation::Decrypt, out).await?;
        if retired(&key) {
            self.account_retired_use(&principal, &id, "decrypt").await?;
        }
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
        mut request: Request<pb::GenerateDataKeyRequest>,
    ) -> Reply<pb::GenerateDataKeyResponse> {
        let principal = self.principal(&mut request)?;
        let request = request.into_inner();
        let (id, _) = self.authorized_key(&principal, &request.key_id, KeyOperation::Use)?;
        let data_key = self.kms.generate_data_key(&id, &request.aad);
        let data_key = self
            .used(&principal, &id, Operation::GenerateDataKey, data_key)
            .await?;
        Ok(Response::new(pb::GenerateDataKeyResponse {
            // Declassified: handing the data key to its authorized owner is the point of the call.
            // Wiped when tonic drops the message, once encoded.
            plaintext: Bytes::from_owner(data_key.plaintext),
            key_id: data_key.encrypted.key_id.to_string(),
            version: data_key.encrypted.version,
            ciphertext: data_key.encrypted.ciphertext.into(),
        }))
    }

    async fn sign(&self, mut request: Request<pb::SignRequest>) -> Reply<pb::SignResponse> {
        let principal = self.principal(&mut request)?;
        let request = request.into_inner();
        let (id, _) = self.authorized_key(&principal, &request.key_id, KeyOperation::Use)?;
        let signed = self.kms.sign(&id, &request.message);
        let signed = self.used(&principal, &id, Operation::Sign, signed).await?;
        Ok(Response::new(pb::SignResponse {
            signature: signed.signature,
            key_id: signed.key_id.to_string(),
            version: signed.version,
        }))
    }

    async fn verify(&self, mut request: Request<pb::VerifyRequest>) -> Reply<pb::VerifyResponse> {
        let principal = self.principal(&mut request)?;
        let request = request.into_inner();
        let (id, key) = self.authorized_key(&principal, &request.key_id, KeyOperation::Use)?;
        let version = Some(request.version).filter(|v| *v != 0);
        let valid = self
            .kms
            .verify(&id, version, &request.message, &request.signature);
        let valid = self.used(&principal, &id, Operation::Verify, valid).await?;
        if retired(&key) {
            self.account_retired_use(&principal, &id, "verify").await?;
        }
        Ok(Response::new(pb::VerifyResponse { valid }))
    }

    async fn get_public_key(
        &self,
        mut request: Request<pb::GetPublicKeyRequest>,
    ) -> Reply<pb::GetPublicKeyResponse> {
        let principal = self.principal(&mut request)?;
        let request = request.into_inner();
        let (id, key) = self.authorized_key(&principal, &request.key_id, KeyOperation::Use)?;
        let version = Some(request.version).filter(|v| *v != 0);
        let public = self.kms.public_key(&id, version);
        let public = self
            .used(&principal, &id, Operation::PublicKey, public)
            .await?;
        Ok(Response::new(pb::GetPublicKeyResponse {
            public_key_pem: pem("PUBLIC KEY", &public.spki_der),
            public_key_der: public.spki_der,
            algorithm: algorithm_message(public.algorithm) as i32,
            version: public.version,
            state: state_message(key.state) as i32,
        }))
    }

    async fn set_key_state(
        &self,
        mut request: Request<pb::SetKeyStateRequest>,
    ) -> Reply<pb::SetKeyStateResponse> {
        let principal = self.principal(&mut request)?;
        let request = request.into_inner();
        let change = state_change(request.change)?;
        let (id, key) = self.authorized_key(&principal, &request.key_id, KeyOperation::Manage)?;
        // Another's key: dual control; one's own: at once.
        let operation = Act::new(Kind::KeyStateChange, id.as_str())
            .with("change", change.name())
            .with("reason", request.reason.clone())
            .with("owner", key.owner.clone());
        let summary = format!(
            "{} key {id} of {} ({})",
            change.name(),
            key.owner,
            request.reason
        );
        let gated = Gated {
            operation,
            summary,
            needed: key.owner != principal.spiffe_id,
        };
        let outcome = self
            .dual_control(
                &principal,
                &request.approval_id,
                gated,
                move |kms, actor, approval| {
                    kms.set_state_approved(actor, &id, change, &request.reason, approval)
                },
            )
            .await?;
        let outcome = outcome.into_oneof(
            pb::set_key_state_response::Outcome::Key,
            pb::set_key_state_response::Outcome::PendingApproval,
        );
        Ok(Response::new(pb::SetKeyStateResponse {
            outcome: Some(outcome),
        }))
    }

    async fn destroy_key(
        &self,
        mut request: Request<pb::DestroyKeyRequest>,
    ) -> Reply<pb::DestroyKeyResponse> {
        let principal = self.principal(&mut request)?;
        let request = request.into_inner();
        let (id, key) = self.authorized_key(&principal, &request.key_id, KeyOperation::Manage)?;
        let operation = Act::new(Kind::ImmediateDestruction, id.as_str())
            .with("reason", request.reason.clone())
            .with("owner", key.owner.clone());
        let summary = format!(
            "destroy key {id} of {} now, without the waiting period ({})",
            key.owner, request.reason
        );
        let gated = Gated {
            operation,
            summary,
            needed: true,
        };
        let outcome = self
            .dual_control(
                &principal,
                &request.approval_id,
                gated,
                move |kms, actor, approval| kms.destroy_now(actor, &id, &request.reason, approval),
            )
            .await?;
        let outcome = outcome.into_oneof(
            pb::destroy_key_response::Outcome::Key,
            pb::destroy_key_response::Outcome::PendingApproval,
        );
        Ok(Response::new(pb::DestroyKeyResponse {
            outcome: Some(outcome),
        }))
    }

    async fn schedule_key_destruction(
        &self,
        mut request: Request<pb::ScheduleKeyDestructionRequest>,
    ) -> Reply<pb::ScheduleKeyDestructionResponse> {
        let principal = self.principal(&mut request)?;
        let request = request.into_inner();
        let (id, key) = self.authorized_key(&principal, &request.key_id, KeyOperation::Manage)?;
        let days = Some(request.waiting_period_days).filter(|d| *d != 0);
        // Another's key: every use stops at once, so a second officer must agree.
        let shown_days = days.map_or_else(|| "default".to_owned(), |d| d.to_string());
        let operation = Act::new(Kind::KeyStateChange, id.as_str())
            .with("change", "schedule-destruction")
            .with("waiting_days", shown_days.clone())
            .with("owner", key.owner.clone());
        let summary = format!(
            "schedule destruction of key {id} of {} (waiting period: {shown_days} days); every \
             use of it stops at once",
            key.owner
        );
        let gated = Gated {
            operation,
            summary,
            needed: key.owner != principal.spiffe_id,
        };
        let outcome = self
            .dual_control(
                &principal,
                &request.approval_id,
                gated,
                move |kms, actor, approval| {
                    kms.schedule_destruction_approved(actor, &id, days, approval)
                },
            )
            .await?;
        let outcome = outcome.into_oneof(
            pb::schedule_key_destruction_response::Outcome::Key,
            pb::schedule_key_destruction_response::Outcome::PendingApproval,
        );
        Ok(Response::new(pb::ScheduleKeyDestructionResponse {
            outcome: Some(outcome),
        }))
    }

    async fn cancel_key_destruction(
        &self,
        request: Request<pb::CancelKeyDestructionRequest>,
    ) -> Reply<pb::CancelKeyDestructionResponse> {
        let kms = self.kms.clone();
        let admit = |principal: &Principal, request: pb::CancelKeyDestructionRequest| {
            self.managed_key(principal, &request.key_id)
        };
        answer(&self.auth, request, admit, move |principal, id| {
            let key = kms
                .cancel_destruction(&principal.spiffe_id, &id)
                .map_err(status::kms)?;
            Ok(pb::CancelKeyDestructionResponse {
                key: Some(key_message(&key)),
            })
        })
        .await
    }

    async fn wrap_key_for_recipient(
        &self,
        request: Request<pb::WrapKeyForRecipientRequest>,
    ) -> Reply<pb::WrapKeyForRecipientResponse> {
        let kms = self.kms.clone();
        let admit = |principal: &Principal, request: pb::WrapKeyForRecipientRequest| {
            let (id, _) = self.authorized_key(principal, &request.key_id, KeyOperation::Export)?;
            Ok((id, export_spec(request)?))
        };
        answer(&self.auth, request, admit, move |principal, (id, spec)| {
            let wrapped = kms
                .wrap_for_recipient(&principal.spiffe_id, &id, spec)
                .map_err(status::kms)?;
            let terms = &wrapped.terms;
            Ok(pb::WrapKeyForRecipientResponse {
                algorithm: algorithm_message(terms.algorithm) as i32,
                key_id: terms.source_key.to_string(),
                version: terms.source_version,
                terms: Some(terms_message(terms)),
                encapsulated_key: wrapped.encapsulated_key,
                ciphertext: wrapped.ciphertext,
            })
        })
        .await
    }

    async fn get_wrapping_key(
        &self,
        mut request: Request<pb::GetWrappingKeyRequest>,
    ) -> Reply<pb::GetWrappingKeyResponse> {
        let principal = self.principal(&mut request)?;
        authorize(&principal, Action::ReadWrappingKey)?;
        let public_key = self.kms.wrapping_public_key().map_err(status::kms)?;
        Ok(Response::new(pb::GetWrappingKeyResponse { public_key }))
    }

    async fn import_key(
        &self,
        request: Request<pb::ImportKeyRequest>,
    ) -> Reply<pb::ImportKeyResponse> {
        let kms = self.kms.clone();
        let admit = |principal: &Principal, request| {
            authorize(principal, Action::ImportKey)?;
            import_spec(request, principal)
        };
        answer(&self.auth, request, admit, move |principal, spec| {
            let key = kms
                .import_key(&principal.spiffe_id, spec)
                .map_err(status::kms)?;
            Ok(pb::ImportKeyResponse {
                key: Some(key_message(&key)),
            })
        })
        .await
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

/// The seal service. Unseal and Status are reachable without a client certificate (a share is
/// its own credential); Seal needs the security administrator's. Only callers with a valid
/// client certificate learn the deployment id.
pub struct SealService {
    kms: Arc<Kms>,
    auth: Arc<Authenticator>,
}

impl SealService {
    pub fn new(kms: Arc<Kms>, auth: Arc<Authenticator>) -> Self {
        Self { kms, auth }
    }

    /// True when the call presents a valid client certificate. A call without one is not an
    /// authentication failure here: custodians and monitoring call without.
    fn authenticated<T>(&self, request: &Request<T>) -> bool {
        let certs = request.peer_certs();
        let chain = certs
            .as_deref()
            .map(Vec::as_slice)
            .filter(|c| !c.is_empty());
        chain.is_some_and(|chain| self.auth.principal(Some(chain)).is_ok())
    }
}

#[tonic::async_trait]
impl Seal for SealService {
    async fn unseal(&self, request: Request<pb::UnsealRequest>) -> Reply<pb::UnsealResponse> {
        let (peer, authenticated) = (peer(&request), self.authenticated(&request));
        let share = zeroize::Zeroizing::new(request.into_inner().share);
        let kms = self.kms.clone();
        let status = blocking(move || kms.unseal_from(&share, &peer).map_err(status::kms)).await?;
        Ok(Response::new(pb::UnsealResponse {
            status: Some(seal_message(&status, authenticated)),
        }))
    }

    async fn status(
        &self,
        request: Request<pb::SealStatusRequest>,
    ) -> Reply<pb::SealStatusResponse> {
        let status = self.kms.seal_status();
        Ok(Response::new(pb::SealStatusResponse {
            status: Some(seal_message(&status, self.authenticated(&request))),
        }))
    }

    async fn seal(&self, request: Request<pb::SealRequest>) -> Reply<pb::SealResponse> {
        let (kms, peer) = (self.kms.clone(), peer(&request));
        let admit = |principal: &Principal, request: pb::SealRequest| {
            authorize(principal, Action::Seal)?;
            Ok(request.reason)
        };
        answer(&self.auth, request, admit, move |principal, reason| {
            let sealed = kms
                .seal(&principal.spiffe_id, &peer, &reason)
                .map_err(status::kms)?;
            Ok(pb::SealResponse {
                status: Some(seal_message(&sealed, true)),
            })
        })
        .await
    }
}

/// What a call under dual control did: acted (the key after the act) or filed a request.
enum Outcome {
    Acted(KeyInfo),
    Pending(govtrust_proto::approval::Approval),
}

impl Outcome {
    /// The answer's `oneof outcome`, built by its two constructors.
    fn into_oneof<T>(
        self,
        acted: impl FnOnce(pb::Key) -> T,
        pending: impl FnOnce(govtrust_proto::approval::Approval) -> T,
    ) -> T {
        match self {
            Self::Acted(key) => acted(key_message(&key)),
            Self::Pending(approval) => pending(approval),
        }
    }
}

impl KeyService {
    /// Runs `act` at once when `gated` needs no approval; else, without `approval_id`, files a
    /// request for it and answers it pending, and with one, claims the approved request and
    /// runs `act` with the claim's writes in its batch.
    async fn dual_control<F>(
        &self,
        principal: &Principal,
        approval_id: &str,
        gated: Gated,
        act: F,
    ) -> Result<Outcome, Status>
    where
        F: FnOnce(&Kms, &str, &govtrust_store::Batch) -> Result<KeyInfo, govtrust_kms::Error>
            + Send
            + 'static,
    {
        let (gate, kms, principal) = (self.gate.clone(), self.kms.clone(), principal.clone());
        let approval_id = approval_id.to_owned();
        blocking(move || {
            let actor = principal.spiffe_id.as_str();
            if !gated.needed {
                let key = act(&kms, actor, &govtrust_store::Batch::new()).map_err(status::kms)?;
                return Ok(Outcome::Acted(key));
            }
            if approval_id.is_empty() {
                let filed =
                    gate.request(&principal, gated.operation, gated.summary, KEY_APPROVERS)?;
                let pending = dual_control::message(&filed, gate.now());
                return Ok(Outcome::Pending(pending));
            }
            let claim = gate.claim(&principal, &approval_id, &gated.operation)?;
            let key = act(&kms, actor, claim.batch()).map_err(status::kms)?;
            Ok(Outcome::Acted(key))
        })
        .await
    }
}

/// An act on a key that may need a second officer: exactly what would be approved, one line for
/// the approver, and whether approval is needed at all.
struct Gated {
    operation: Act,
    summary: String,
    needed: bool,
}

/// True when `id` is deactivated or compromised: each use is audited on its own.
/// (Checked on the metadata the call was authorized with: no second lookup per call.)
fn retired(key: &KeyInfo) -> bool {
    matches!(key.state, KeyState::Deactivated | KeyState::Compromised)
}

/// The caller's address, for the audit log.
fn peer<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map_or_else(|| "unknown".to_owned(), |address| address.to_string())
}

/// The status as sent; the deployment id only to `authenticated` callers.
fn seal_message(status: &govtrust_kms::SealStatus, authenticated: bool) -> pb::SealStatus {
    pb::SealStatus {
        sealed: status.sealed,
        threshold: u32::from(status.threshold),
        shares_total: u32::from(status.shares_total),
        progress: u32::from(status.progress),
        deployment_id: if authenticated {
            status.deployment_id.clone()
        } else {
            String::new()
        },
        progress_reset: status.progress_reset,
        attempt_expires_at: status.attempt_expires_at.map(Into::into),
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
        owner_generation: 0,
        description: request.description,
        pre_active: request.pre_active,
        internal: false,
    })
}

/// What WrapKeyForRecipient asks for.
fn export_spec(request: pb::WrapKeyForRecipientRequest) -> Result<ExportSpec, Status> {
    if request.recipient.is_empty() {
        return Err(Status::invalid_argument(
            "recipient: name the one identity (SPIFFE URI) that may import the bundle",
        ));
    }
    Ok(ExportSpec {
        version: Some(request.version).filter(|v| *v != 0),
        recipient: request.recipient,
        recipient_public_key: request.recipient_public_key,
        exportable: request.allow_reexport,
        valid_for: Some(request.valid_for_seconds)
            .filter(|s| *s != 0)
            .map(|s| Duration::from_secs(u64::from(s))),
        encryptions: request.encryptions,
    })
}

/// What ImportKey asks for. The new key belongs to the caller, whom the kms checks is the
/// bundle's recipient; the request may not name another owner or another algorithm.
fn import_spec(request: pb::ImportKeyRequest, principal: &Principal) -> Result<ImportSpec, Status> {
    let terms = request.terms.ok_or_else(|| {
        Status::invalid_argument(
            "terms: missing; a bundle without bound terms (format govtrust-wrapped-key-v1) is \
             refused: ask its exporter to export the key again",
        )
    })?;
    let terms = bundle_terms(terms)?;
    if request.algorithm != 0 && algorithm(request.algorithm)? != terms.algorithm {
        return Err(Status::invalid_argument(format!(
            "algorithm: the bundle holds an {} key",
            terms.algorithm
        )));
    }
    if !request.owner.is_empty() && request.owner != principal.spiffe_id {
        return Err(Status::invalid_argument(format!(
            "owner: an imported key belongs to the bundle's recipient, who imports it; {:?} \
             cannot be named",
            request.owner
        )));
    }
    Ok(ImportSpec {
        encapsulated_key: request.encapsulated_key,
        ciphertext: request.ciphertext,
        terms,
        exportable: request.exportable,
        description: request.description,
        owner_generation: principal.standing.map_or(0, |s| s.certificate_generation),
    })
}

/// Parses bundle terms from the wire.
fn bundle_terms(terms: pb::BundleTerms) -> Result<BundleTerms, Status> {
    let time = |at: Option<prost_types::Timestamp>, field: &str| {
        at.and_then(|at| SystemTime::try_from(at).ok())
            .ok_or_else(|| Status::invalid_argument(format!("terms.{field}: missing or invalid")))
    };
    Ok(BundleTerms {
        id: BundleId::parse(&terms.bundle_id).map_err(status::kms)?,
        source_key: KeyId::parse(&terms.source_key_id).map_err(status::kms)?,
        algorithm: algorithm(terms.algorithm)?,
        exported_at: time(terms.exported_at, "exported_at")?,
        expires_at: time(terms.expires_at, "expires_at")?,
        source_centre: terms.source_centre,
        source_version: terms.source_version,
        exporter: terms.exporter,
        recipient: terms.recipient,
        exportable: terms.exportable,
        encryptions: terms.encryptions,
    })
}

fn terms_message(terms: &BundleTerms) -> pb::BundleTerms {
    pb::BundleTerms {
        bundle_id: terms.id.to_string(),
        source_centre: terms.source_centre.clone(),
        source_key_id: terms.source_key.to_string(),
        source_version: terms.source_version,
        algorithm: algorithm_message(terms.algorithm) as i32,
        exporter: terms.exporter.clone(),
        recipient: terms.recipient.clone(),
        exportable: terms.exportable,
        encryptions: terms.encryptions,
        exported_at: Some(terms.exported_at.into()),
        expires_at: Some(terms.expires_at.into()),
    }
}

fn export_message(export: &BundleExport) -> pb::KeyExport {
    let imported = export.imported.as_ref();
    pb::KeyExport {
        terms: Some(terms_message(&export.terms)),
        imported_as: imported.map(|i| i.key.to_string()).unwrap_or_default(),
        imported_by: imported.map(|i| i.by.clone()).unwrap_or_default(),
        imported_at: imported.map(|i| i.at.into()),
    }
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
        Ok(P::Sm4Gcm) => Ok(Algorithm::Sm4Gcm),
        Ok(P::Sm2Sm3) => Ok(Algorithm::Sm2Sm3),
        Ok(P::Sm2Encrypt) => Ok(Algorithm::Sm2Encrypt),
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
        Algorithm::Sm4Gcm => pb::KeyAlgorithm::Sm4Gcm,
        Algorithm::Sm2Sm3 => pb::KeyAlgorithm::Sm2Sm3,
        Algorithm::Sm2Encrypt => pb::KeyAlgorithm::Sm2Encrypt,
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
        owner_generation: key.owner_generation,
        destruction_scheduled_at: key.destruction_scheduled_at.map(Into::into),
        destroyed_at: key.destroyed_at.map(Into::into),
        created_by: key.created_by.clone(),
        imported_from: match &key.origin {
            KeyOrigin::Imported(terms) => Some(terms_message(terms)),
            KeyOrigin::Generated | KeyOrigin::Escrowed => None,
        },
        exports: Vec::new(),
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
