//! The one mapping from domain errors to gRPC status codes.
//!
//! Clients get a safe, specific message; internal failures are logged with their source chain
//! and reported without internals.

use govtrust_approval::Error as ApprovalError;
use govtrust_ca::Error as CaError;
use govtrust_kms::Error as KmsError;
use tonic::Status;

/// The status a key-management error becomes.
pub fn kms(error: KmsError) -> Status {
    use KmsError as E;
    let message = error.to_string();
    match error {
        E::Sealed | E::KeyState { .. } | E::IllegalTransition { .. } => {
            Status::failed_precondition(message)
        }
        E::KeyDestroyed { .. } | E::DestructionPending { .. } => {
            Status::failed_precondition(message)
        }
        E::AlreadyInitialized | E::NotInitialized => Status::failed_precondition(message),
        E::InvalidShare { .. } | E::UnsealFailed { .. } | E::InvalidKeyId { .. } => {
            Status::invalid_argument(message)
        }
        E::WrongAlgorithm { .. } | E::InvalidArgument { .. } | E::Authentication => {
            Status::invalid_argument(message)
        }
        E::MalformedCiphertext { .. } | E::BundleUnwrap { .. } => Status::invalid_argument(message),
        E::KeyNotFound { .. } | E::UnknownVersion { .. } => Status::not_found(message),
        E::NotExportable { .. } => Status::permission_denied(message),
        E::NotRecipient { .. } | E::BundleWidened { .. } | E::BundleUnknown { .. } => {
            Status::permission_denied(message)
        }
        E::BundleUsed { .. } => Status::already_exists(message),
        E::BundleExpired { .. } | E::BundleRevoked { .. } | E::EncryptionLimit { .. } => {
            Status::failed_precondition(message)
        }
        E::Conflict { .. } => Status::aborted(message),
        other => internal(&other),
    }
}

/// The status a certificate-authority error becomes.
pub fn ca(error: CaError) -> Status {
    use CaError as E;
    let message = error.to_string();
    match error {
        E::InvalidArgument { .. } | E::InvalidCsr { .. } | E::KeyNotAllowed { .. } => {
            Status::invalid_argument(message)
        }
        E::NameNotAllowed { .. } | E::ProfileRefused { .. } => Status::invalid_argument(message),
        E::PersonExists { .. } => Status::already_exists(message),
        E::PersonNotFound { .. } => Status::not_found(message),
        E::TokenUnknown | E::TokenExpired { .. } | E::TokenUsed { .. } => {
            Status::unauthenticated(message)
        }
        E::TokenSuperseded { .. } => Status::unauthenticated(message),
        E::CallerNotCurrent { .. } => Status::permission_denied(message),
        E::SystemExists { .. } | E::DnsNameTaken { .. } => Status::already_exists(message),
        E::SystemNotFound { .. }
        | E::CertificateNotFound { .. }
        | E::TrustAnchorNotFound { .. } => Status::not_found(message),
        E::AlreadyInitialized | E::NotInitialized | E::SystemHasCertificate { .. } => {
            Status::failed_precondition(message)
        }
        E::ApprovalRequired { .. } | E::RevocationState { .. } => {
            Status::failed_precondition(message)
        }
        E::Approval(inner) => approval(inner),
        E::Kms(inner) => kms(inner),
        other => internal(&other),
    }
}

/// The status an approval error becomes.
pub fn approval(error: ApprovalError) -> Status {
    use ApprovalError as E;
    let message = error.to_string();
    match error {
        E::InvalidArgument { .. } => Status::invalid_argument(message),
        E::NotFound { .. } => Status::not_found(message),
        E::NotAllowed { .. } | E::WrongRole { .. } | E::NotRequester { .. } => {
            Status::permission_denied(message)
        }
        E::WrongStatus { .. } | E::Expired { .. } | E::Mismatch { .. } => {
            Status::failed_precondition(message)
        }
        E::Raced { .. } => Status::aborted(message),
        other => internal(&other),
    }
}

/// An internal failure: logged in full, reported without details.
pub fn internal(error: &(dyn std::error::Error + 'static)) -> Status {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(error = %chain, "internal error");
    Status::internal("internal error; the server log has the details")
}
