//! The one policy point: who may do what.
//!
//! Every gRPC call names its [`Action`] and asks [`authorize`]. Administrator duties are split
//! into three roles (三员分立, required from MLPS level 3): the system administrator registers
//! systems and reads certificates, the security administrator manages keys, the audit
//! administrator reads. Systems use and manage the keys they own and renew their own
//! certificates. Internal keys (CA keys) are used only by govtrust itself, never through the API.
//!
//! The rules move into Cedar policy files (`policies/authz/`) with the authorization issue; this
//! module is the single place they are decided until then.

use govtrust_ca::Role;
use govtrust_kms::KeyInfo;
use tonic::Status;

use super::identity::{Kind, Principal};

/// What a call wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    RegisterSystem,
    ReadCertificates,
    ReadCaChain,
    Renew,
    CreateKey,
    ListKeys,
    ImportKey,
    ReadWrappingKey,
    /// An operation on one key.
    Key(KeyOperation, &'a KeyInfo),
}

/// What is done with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOperation {
    /// Read its metadata.
    Read,
    /// Encrypt, decrypt, data keys, sign, verify, public key.
    Use,
    /// Rotate, change state, schedule or cancel destruction.
    Manage,
    /// Export wrapped to a recipient.
    Export,
}

/// Allows `action` for `principal`, or says why not (`PermissionDenied`).
pub fn authorize(principal: &Principal, action: Action<'_>) -> Result<(), Status> {
    if allowed(principal, action) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{} may not {}",
            principal.spiffe_id,
            describe(action)
        )))
    }
}

fn allowed(principal: &Principal, action: Action<'_>) -> bool {
    match &principal.kind {
        Kind::Administrator(role) => administrator(*role, principal, action),
        Kind::System { .. } => system(principal, action),
        Kind::Unknown => false,
    }
}

fn administrator(role: Role, principal: &Principal, action: Action<'_>) -> bool {
    use Action as A;
    match (role, action) {
        (_, A::ReadCaChain | A::ReadCertificates) => true,
        (Role::SystemAdministrator, A::RegisterSystem) => true,
        (
            Role::SecurityAdministrator | Role::AuditAdministrator,
            A::ListKeys | A::Key(KeyOperation::Read, _),
        ) => true,
        (Role::SecurityAdministrator, A::CreateKey | A::ImportKey | A::ReadWrappingKey) => true,
        (Role::SecurityAdministrator, A::Key(KeyOperation::Manage, key)) => !key.internal,
        (Role::SecurityAdministrator, A::Key(_, key)) => owns(principal, key),
        _ => false,
    }
}

fn system(principal: &Principal, action: Action<'_>) -> bool {
    use Action as A;
    match action {
        A::ReadCaChain | A::Renew | A::CreateKey | A::ImportKey | A::ReadWrappingKey => true,
        A::Key(_, key) => owns(principal, key),
        A::RegisterSystem | A::ReadCertificates | A::ListKeys => false,
    }
}

fn owns(principal: &Principal, key: &KeyInfo) -> bool {
    !key.internal && key.owner == principal.spiffe_id
}

fn describe(action: Action<'_>) -> String {
    match action {
        Action::RegisterSystem => "register systems".to_owned(),
        Action::ReadCertificates => "read certificates".to_owned(),
        Action::ReadCaChain => "read the CA chain".to_owned(),
        Action::Renew => "renew certificates".to_owned(),
        Action::CreateKey => "create keys".to_owned(),
        Action::ListKeys => "list keys".to_owned(),
        Action::ImportKey => "import keys".to_owned(),
        Action::ReadWrappingKey => "read the import wrapping key".to_owned(),
        Action::Key(KeyOperation::Read, key) => format!("read key {}", key.id),
        Action::Key(KeyOperation::Use, key) => format!("use key {}", key.id),
        Action::Key(KeyOperation::Manage, key) => format!("manage key {}", key.id),
        Action::Key(KeyOperation::Export, key) => format!("export key {}", key.id),
    }
}
