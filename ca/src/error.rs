//! The one error type of the certificate authority.
//!
//! Variants are structured so the server can map them to gRPC status codes in one place:
//! `InvalidArgument`, `InvalidCsr`, `KeyNotAllowed`, `NameNotAllowed` and `ProfileRefused` are
//! bad input;
//! `SystemExists` and `DnsNameTaken` are conflicts with what is registered;
//! `SystemHasCertificate` is a failed precondition (a valid certificate stands); the token variants
//! and `CallerNotCurrent` are authentication failures; `Kms` carries the key-management
//! centre's own error (a sealed kms among them). The `Ocsp` variants map to OCSP response
//! statuses instead, through [`crate::ocsp::refusal()`].

use std::time::SystemTime;

use crate::issuer::Serial;
use crate::ocsp::Defect;
use crate::timestamps::rfc3339;

/// Why a certificate-authority call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `initialize` was called on a store that already holds a CA hierarchy.
    #[error("the certificate authority is already initialized")]
    AlreadyInitialized,
    /// The store holds no CA hierarchy yet.
    #[error("the certificate authority is not initialized: run `govtrust init` first")]
    NotInitialized,
    /// A request field is malformed; `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// The certificate signing request cannot be decoded or its signature does not verify.
    #[error("invalid certificate signing request: {reason}")]
    InvalidCsr { reason: String },
    /// The CSR's public key has an algorithm or size this CA does not certify.
    #[error("key not allowed: {reason}")]
    KeyNotAllowed { reason: String },
    /// The CSR asks for a name the system may not hold.
    #[error("name {name:?} is not allowed for system {system}")]
    NameNotAllowed { name: String, system: String },
    /// `initialize` refused the certificate signing request brought for an administrator role.
    #[error("the CSR for {role} was refused")]
    AdminCsr {
        role: String,
        #[source]
        source: Box<Error>,
    },
    /// No enrollment token matches (it was never issued, or is malformed).
    #[error("unknown enrollment token")]
    TokenUnknown,
    /// The enrollment token expired; a system administrator issues a new one. `system` is for
    /// the server's log and audit only: the message does not name it, since whoever holds a
    /// token that failed should not learn which system it was for.
    #[error(
        "enrollment token expired at {}; ask a system administrator for a new one \
         (`govtrust system token --name <system>`)",
        rfc3339(*at)
    )]
    TokenExpired { at: SystemTime, system: String },
    /// A newer enrollment token was issued to the system; only the newest one enrolls.
    /// `system` is for the server's log and audit only: the message does not name it.
    #[error(
        "enrollment token was superseded by a newer one; enroll with the newest token, or ask \
         a system administrator for another (`govtrust system token --name <system>`)"
    )]
    TokenSuperseded { system: String },
    /// The enrollment token was already used; renew with the certificate it gave instead.
    #[error("enrollment token was already used at {}; renew with the certificate it gave", rfc3339(*at))]
    TokenUsed { at: SystemTime },
    /// A system with this name is already registered.
    #[error("system {name} is already registered")]
    SystemExists { name: String },
    /// Another system already holds this DNS name; a name belongs to one system.
    #[error("DNS name {name} is already held by system {system}")]
    DnsNameTaken { name: String, system: String },
    /// A person cannot be registered: `reason` says what is taken (the id, or the national
    /// ID, which is never shown).
    #[error("person {id} cannot be registered: {reason}")]
    PersonExists { id: String, reason: String },
    /// No person with this id is registered (administrators are not registered persons).
    #[error("person {id} is not registered")]
    PersonNotFound { id: String },
    /// No system with this name is registered.
    #[error("system {name} is not registered")]
    SystemNotFound { name: String },
    /// A new enrollment token was refused: the system holds a valid certificate, and a token
    /// would let whoever holds it enroll as the system.
    #[error(
        "system {system} holds certificate {serial} valid until {}: a new token is only issued \
         to a system without a valid certificate (revoke it first, or ask for the token with \
         --revoke-current)",
        rfc3339(*not_after)
    )]
    SystemHasCertificate {
        system: String,
        serial: Serial,
        not_after: SystemTime,
    },
    /// A new token for a system that has held a certificate is a re-enrollment: whoever holds
    /// the token becomes the system, so a second officer must approve it first.
    #[error(
        "system {system} has held a certificate: a new enrollment token re-enrolls it and needs \
         a security administrator's approval"
    )]
    ApprovalRequired {
        system: String,
        operation: govtrust_approval::Operation,
    },
    /// The approval given does not allow this act, or cannot be used.
    #[error(transparent)]
    Approval(#[from] govtrust_approval::Error),
    /// No certificate with this serial was issued.
    #[error("no certificate with serial {serial}")]
    CertificateNotFound { serial: Serial },

    #[error("no trusted CA named {name}")]
    TrustAnchorNotFound { name: String },
    /// The caller's certificate does not entitle it to renew.
    #[error("caller may not renew: {reason}")]
    CallerNotCurrent { reason: String },

    /// The certificate's state does not allow the change asked for.
    #[error("certificate {serial}: {reason}")]
    RevocationState { serial: Serial, reason: String },
    /// A certificate profile file cannot be used; `reason` names the key at fault.
    #[error("certificate profile {file}: {reason}")]
    ProfileFile { file: String, reason: String },
    /// A request is outside its certificate profile; `rule` is the profile's key that refused
    /// it.
    #[error("profile {profile} refused the request ({rule}): {reason}")]
    ProfileRefused {
        profile: String,
        rule: &'static str,
        reason: String,
    },
    /// rcgen could not build or sign a certificate.
    #[error("cannot build certificate: {context}")]
    Certificate {
        context: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// An SM2 certificate (built with x509-cert) could not be built.
    #[error("cannot build SM2 certificate: {context}")]
    Sm2Certificate { context: String },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    RandomUnavailable,
    /// The key-management centre refused or failed (for example: it is sealed).
    #[error(transparent)]
    Kms(#[from] govtrust_kms::Error),
    /// The store failed; nothing of the operation was stored.
    #[error(transparent)]
    Store(#[from] govtrust_store::Error),
    /// A stored record cannot be decoded.
    #[error("stored CA data is corrupt: {context}")]
    Corrupt { context: String },
    /// An OCSP request cannot be read; it is answered `malformedRequest`.
    #[error("malformed OCSP request: {defect}")]
    OcspMalformed { defect: Defect },
    /// An OCSP request asks about a certificate of another CA than the responder's; it is
    /// answered `unauthorized` (RFC 6960 §2.3).
    #[error("OCSP request for serial {serial} names another issuer than this responder's CA")]
    OcspUnauthorized { serial: Serial },
    /// An OCSP response could not be encoded (a value past what DER lengths allow).
    #[error("cannot encode OCSP response: {detail}")]
    OcspEncoding { detail: String },
}

impl Error {
    /// An [`Error::InvalidArgument`].
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// An [`Error::InvalidCsr`].
    pub(crate) fn csr(reason: impl Into<String>) -> Self {
        Self::InvalidCsr {
            reason: reason.into(),
        }
    }

    /// An [`Error::KeyNotAllowed`].
    pub(crate) fn key(reason: impl Into<String>) -> Self {
        Self::KeyNotAllowed {
            reason: reason.into(),
        }
    }

    /// An [`Error::Corrupt`].
    pub(crate) fn corrupt(context: impl Into<String>) -> Self {
        Self::Corrupt {
            context: context.into(),
        }
    }

    /// An [`Error::Certificate`]: a closure for `map_err`.
    pub(crate) fn certificate(context: &'static str) -> impl FnOnce(rcgen::Error) -> Self {
        move |source| Self::Certificate { context, source }
    }
}
