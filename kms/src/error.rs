//! The key-management centre's one error type.
//!
//! Variants are structured so the server can map each to a gRPC status code; messages name the
//! key, its state and dates (RFC 3339, UTC) and, where there is one, what to do next.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Algorithm, BundleId, KeyId, KeyState, StateChange};

/// Why a key-management call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `initialize` found a seal configuration: the centre was initialized before.
    #[error("the key-management centre is already initialized")]
    AlreadyInitialized,
    /// There is no seal configuration in the store.
    #[error("the key-management centre is not initialized: run `govtrust init` first")]
    NotInitialized,
    /// The master key is not in memory.
    #[error("the key-management centre is sealed: unseal it with the custodians' shares")]
    Sealed,
    /// A share file was rejected (damaged, of another deployment, not the share issued for its
    /// index, or given twice); it takes no place and the unseal attempt keeps its progress.
    #[error("invalid unseal share: {reason}")]
    InvalidShare { reason: String },
    /// The shares given reconstruct a key that is not this deployment's master key. The unseal
    /// attempt starts over. Every share is checked against its commitment before it is taken,
    /// so this means the seal configuration no longer matches the shares issued.
    #[error("unseal failed: {reason}; start again with the custodians' shares")]
    UnsealFailed { reason: String },
    /// A key id that is not `k-` followed by 32 lower-case hex characters.
    #[error("invalid key id {given:?}: expected k- followed by 32 lower-case hex characters")]
    InvalidKeyId { given: String },
    /// No key has this id.
    #[error("key {id} not found")]
    KeyNotFound { id: KeyId },
    /// The key was destroyed; only its tombstone remains.
    #[error("key {id} was destroyed at {}", rfc3339(*destroyed_at))]
    KeyDestroyed { id: KeyId, destroyed_at: SystemTime },
    /// The key's state does not allow the operation.
    #[error("key {id} is {state}: {operation} is not allowed")]
    KeyState {
        id: KeyId,
        state: KeyState,
        operation: &'static str,
    },
    /// The lifecycle does not allow this state change.
    #[error("key {id} is {from}: the change {change} is not allowed from this state")]
    IllegalTransition {
        id: KeyId,
        from: KeyState,
        change: StateChange,
    },
    /// The key is scheduled for destruction; every use is refused until it is cancelled.
    #[error(
        "key {id} is scheduled for destruction at {}: cancel the destruction to use it",
        rfc3339(*at)
    )]
    DestructionPending { id: KeyId, at: SystemTime },
    /// The key was created non-exportable.
    #[error("key {id} is not exportable")]
    NotExportable { id: KeyId },
    /// The key's algorithm cannot do the operation.
    #[error("key {id} is an {algorithm} key: {operation} is not possible with it")]
    WrongAlgorithm {
        id: KeyId,
        algorithm: Algorithm,
        operation: &'static str,
    },
    /// The key has no such version.
    #[error("key {id} has no version {version}")]
    UnknownVersion { id: KeyId, version: u32 },
    /// An argument is out of range or malformed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// Decryption failed: wrong key, wrong AAD or a modified ciphertext.
    #[error("ciphertext or AAD failed authentication")]
    Authentication,
    /// The ciphertext is not in the centre's format.
    #[error("malformed ciphertext: {reason}")]
    MalformedCiphertext { reason: String },
    /// The bundle does not open with this centre's wrapping key.
    #[error(
        "bundle {bundle} does not unwrap with this centre's wrapping key: it was wrapped for \
         another centre, or the bundle or its terms were altered"
    )]
    BundleUnwrap { bundle: BundleId },
    /// Only the bundle's recipient may import it.
    #[error("bundle {bundle} is addressed to {recipient}; {importer} may not import it")]
    NotRecipient {
        bundle: BundleId,
        recipient: String,
        importer: String,
    },
    /// The bundle was imported before: a bundle imports once.
    #[error(
        "bundle {bundle} was already imported as key {key} at {}: a bundle imports once; ask \
         its exporter for a new one",
        rfc3339(*at)
    )]
    BundleUsed {
        bundle: BundleId,
        key: KeyId,
        at: SystemTime,
    },
    /// The bundle's import window has passed.
    #[error("bundle {bundle} expired at {}; ask its exporter for a new one", rfc3339(*at))]
    BundleExpired { bundle: BundleId, at: SystemTime },
    /// The import asked for more than the bundle allows.
    #[error(
        "bundle {bundle} does not allow {what}: an import may narrow the bundle's policy, never widen it"
    )]
    BundleWidened {
        bundle: BundleId,
        what: &'static str,
    },
    /// The bundle's source key, held by this centre, may no longer be exported.
    #[error("bundle {bundle} can no longer be imported: its source key {source_key} {reason}")]
    BundleRevoked {
        bundle: BundleId,
        source_key: KeyId,
        reason: String,
    },
    /// The bundle names a key of this centre that never exported it (or not with these terms).
    #[error(
        "bundle {bundle} claims to come from key {source_key} of this centre, which did not export it with these terms"
    )]
    BundleUnknown { bundle: BundleId, source_key: KeyId },
    /// A key version made as many encryptions as random 96-bit nonces safely allow.
    #[error(
        "key {id} version {version} reached its encryption limit ({limit} encryptions with \
         random nonces); rotate it"
    )]
    EncryptionLimit { id: KeyId, version: u32, limit: u64 },
    /// Another writer changed the key again and again; retry later.
    #[error("key {id} was changed concurrently too many times; retry")]
    Conflict { id: KeyId },
    /// A stored record does not decode or does not unseal: it was modified, moved or damaged.
    #[error("corrupt key-management record: {context}")]
    Corrupt { context: String },
    /// The cryptographic library failed (random source, key generation).
    #[error("cryptographic operation failed: {context}")]
    Crypto { context: &'static str },
    /// The store failed; nothing of the change was applied.
    #[error("key-management store failed")]
    Store(#[from] govtrust_store::Error),
}

/// `at` as RFC 3339 in UTC, e.g. `2025-03-01T12:00:00Z`.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    seconds
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{at:?}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20Z");
    }
}
