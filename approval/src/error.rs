//! The one error type of the approval crate.

use std::time::SystemTime;

use crate::{ApprovalId, Status, rfc3339};

/// Why an approval call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input was malformed; `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// No request has this id.
    #[error("approval request {id} does not exist")]
    NotFound { id: ApprovalId },
    /// The requester tried to approve (or a second officer to approve twice).
    #[error("{officer} may not approve approval request {id}: {reason}")]
    NotAllowed {
        id: ApprovalId,
        officer: String,
        reason: &'static str,
    },
    /// The officer's role is not among the roles that may decide the request.
    #[error(
        "approval request {id} may be decided only by {allowed}; {officer} is a {role}",
        allowed = .allowed.join(" or ")
    )]
    WrongRole {
        id: ApprovalId,
        officer: String,
        role: String,
        allowed: Vec<String>,
    },
    /// The request is not in the status the call needs (pending to decide, approved to execute).
    #[error("approval request {id} is {status}, not {wanted}")]
    WrongStatus {
        id: ApprovalId,
        status: Status,
        wanted: Status,
    },
    /// The request expired before it was decided or executed.
    #[error("approval request {id} expired at {}", rfc3339(*expired_at))]
    Expired {
        id: ApprovalId,
        expired_at: SystemTime,
    },
    /// Someone other than the requester tried to execute an approved request.
    #[error(
        "approval request {id} was made by {requester}; only they may carry it out, not {caller}"
    )]
    NotRequester {
        id: ApprovalId,
        requester: String,
        caller: String,
    },
    /// The act being carried out is not the one that was approved.
    #[error("approval request {id} approved {approved}, not {attempted}")]
    Mismatch {
        id: ApprovalId,
        approved: String,
        attempted: String,
    },
    /// Another call decided or executed the request at the same moment; nothing was written.
    #[error("approval request {id} changed while this call was deciding it; try again")]
    Raced { id: ApprovalId },
    /// A stored request does not decode: the store was altered outside govtrust.
    #[error("approval request record {key} is corrupt")]
    Corrupt { key: String },
    /// The random number generator failed.
    #[error("the random number generator failed")]
    Random,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] govtrust_store::Error),
}
