//! The audit contract every state change goes through.
//!
//! It lives in the store crate because it is a storage contract: a domain crate stages its audit
//! event into the very [`Batch`] that carries its state change, so the event and the change are
//! durable together or not at all (fail closed). The `govtrust-audit` crate implements
//! [`AuditSink`]; kms and ca depend only on this trait, which keeps crates pointing downward.

use crate::{Batch, Error};

/// One security event, as the domain reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it happened, milliseconds since the Unix epoch.
    pub at_unix_ms: i64,
    /// What happened, dotted: `kms.key.create`, `ca.enroll`, `kms.unseal`.
    pub action: String,
    /// Who did it: a SPIFFE id, `custodian`, or `govtrust` for the server itself.
    pub actor: String,
    /// What it was done to: a key id, a certificate serial, a system name.
    pub target: String,
    /// Further facts, as name/value pairs. Never secrets.
    pub details: Vec<(String, String)>,
}

impl AuditEvent {
    /// An event with no details.
    pub fn new(
        at_unix_ms: i64,
        action: impl Into<String>,
        actor: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        Self {
            at_unix_ms,
            action: action.into(),
            actor: actor.into(),
            target: target.into(),
            details: Vec::new(),
        }
    }

    /// Adds a detail.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.push((name.into(), value.into()));
        self
    }
}

/// Where audit events go. Implementations add the event's writes to the caller's batch; the
/// caller commits the batch, so the event is durable exactly when the state change is.
pub trait AuditSink: Send + Sync + 'static {
    /// Adds `event` to `batch`. Fails (and the caller must not commit) if the event cannot be
    /// encoded.
    fn stage(&self, batch: &mut Batch, event: &AuditEvent) -> Result<(), Error>;
}
