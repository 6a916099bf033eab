//! The one policy point: who may do what.
//!
//! Every gRPC call names its [`Action`] and asks [`authorize`]. Administrator duties are split
//! into three roles (三员分立, required from MLPS level 3): the system administrator registers
//! systems and reads certificates, the security administrator manages keys and registers
//! persons (as RA officer), the audit administrator reads. Systems use and manage the keys
//! they own, renew their own certificates and get certificates of profiles for their own
//! names. Persons (civil servants) may do nothing here: their certificates are for others. Internal keys (CA keys) are used only by govtrust itself, never through the API.
//!
//! The rules move into Cedar policy files (`policies/authz/`) with the authorization issue; this
//! module is the single place they are decided until then.

use govtrust_ca::{Change, Role};
use govtrust_kms::KeyInfo;
use tonic::Status;

use super::identity::{Kind, Principal};

/// What a call wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    RegisterSystem,
    /// Issue a new enrollment token to a registered system.
    IssueToken,
    ReadCertificates,
    ReadCaChain,
    /// Read the audit log.
    ReadAudit,
    Renew,
    CreateKey,
    ListKeys,
    ImportKey,
    ReadWrappingKey,
    /// List and read approval requests.
    ReadApprovals,
    /// Approve or reject an approval request (the approval crate checks the role it names).
    DecideApproval,
    /// Seal the running key-management centre (an emergency stop).
    Seal,
    /// An operation on one key.
    Key(KeyOperation, &'a KeyInfo),
    /// Revoke, suspend or unsuspend a certificate of `Holder`.
    ChangeCertificate(Change, Holder),
    /// Verify a certificate chain (for a relying party).
    VerifyCertificate,
    /// Add a CA to the trust bundle or remove one.
    ManageTrust,
    /// Get a certificate of a profile for the caller's own identity.
    IssueCertificate,
    /// Register persons (civil servants) and issue their enrollment tokens: the security
    /// administrator, acting as RA officer.
    RegisterPerson,
}

/// Whose certificate a change is asked for, as seen from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The caller's own identity: the certificate it presents, or an older one.
    Caller,
    /// A newer certificate of the caller's own identity (one that renewed the caller's).
    NewerOwn,
    /// A system or a person without an administrator role.
    Other,
    /// Another administrator (三员分立: one role must not disable another).
    Administrator,
    /// The govtrust server.
    Server,
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
        Kind::System { .. } => !superseded(principal) && system(principal, action),
        Kind::Unknown => false,
    }
}

/// True for a system certificate of an earlier enrollment: the system re-enrolled since, and
/// the earlier identity may do nothing at all (create or import keys, withdraw requests).
fn superseded(principal: &Principal) -> bool {
    principal
        .standing
        .is_some_and(|s| s.certificate_generation != s.lineage.generation)
}

fn administrator(role: Role, principal: &Principal, action: Action<'_>) -> bool {
    use Action as A;
    match (role, action) {
        (
            _,
            A::ReadCaChain
            | A::ReadCertificates
            | A::ReadApprovals
            | A::DecideApproval
            | A::VerifyCertificate
            | A::Renew,
        ) => true,
        (Role::SecurityAdministrator, A::ManageTrust) => true,
        (Role::SystemAdministrator, A::RegisterSystem | A::IssueToken) => true,
        (Role::AuditAdministrator, A::ReadAudit) => true,
        (
            Role::SecurityAdministrator | Role::AuditAdministrator,
            A::ListKeys | A::Key(KeyOperation::Read, _),
        ) => true,
        (Role::SecurityAdministrator, A::CreateKey | A::ImportKey | A::ReadWrappingKey) => true,
        (Role::SecurityAdministrator, A::Seal | A::RegisterPerson) => true,
        (Role::SecurityAdministrator, A::ChangeCertificate(_, Holder::Other)) => true,
        (_, A::ChangeCertificate(change, Holder::Caller)) => holder_may(change),
        (Role::SecurityAdministrator, A::Key(KeyOperation::Manage, key)) => !key.internal,
        (Role::SecurityAdministrator, A::Key(_, key)) => owns(principal, key),
        _ => false,
    }
}

fn system(principal: &Principal, action: Action<'_>) -> bool {
    use Action as A;
    match action {
        A::ReadCaChain
        | A::Renew
        | A::CreateKey
        | A::ImportKey
        | A::ReadWrappingKey
        | A::VerifyCertificate => true,
        A::IssueCertificate => true,
        // A system may read and withdraw its own requests (the approval service shows it no
        // others); it is no approver of any kind.
        A::DecideApproval | A::ReadApprovals => true,
        A::Key(_, key) => owns(principal, key),
        A::ChangeCertificate(change, Holder::Caller) => holder_may(change),
        A::ChangeCertificate(..)
        | A::ManageTrust
        | A::RegisterSystem
        | A::IssueToken
        | A::ReadCertificates
        | A::ListKeys
        | A::ReadAudit
        | A::Seal
        | A::RegisterPerson => false,
    }
}

/// What a holder may do to its own certificates: revoke them for a reason it can know
/// (key compromise, supersession, cessation of operation); suspension is an officer's act.
fn holder_may(change: Change) -> bool {
    matches!(change, Change::Revoke(reason) if reason.holder_may_give())
}

/// True when `principal` owns `key`: same identity and, for a system, a certificate of its
/// current enrollment generation whose lineage reaches the generation the key was made under
/// (a re-enrolled system reaches its earlier keys only if the approved re-enrollment carried
/// them over).
fn owns(principal: &Principal, key: &KeyInfo) -> bool {
    let lineage_reaches = principal.standing.is_none_or(|s| {
        s.lineage
            .reaches(s.certificate_generation, key.owner_generation)
    });
    !key.internal && key.owner == principal.spiffe_id && lineage_reaches
}

fn describe(action: Action<'_>) -> String {
    match action {
        Action::RegisterSystem => "register systems".to_owned(),
        Action::IssueToken => "issue enrollment tokens".to_owned(),
        Action::ReadCertificates => "read certificates".to_owned(),
        Action::ReadCaChain => "read the CA chain".to_owned(),
        Action::ReadAudit => "read the audit log".to_owned(),
        Action::Renew => "renew certificates".to_owned(),
        Action::CreateKey => "create keys".to_owned(),
        Action::ListKeys => "list keys".to_owned(),
        Action::ImportKey => "import keys".to_owned(),
        Action::ReadWrappingKey => "read the import wrapping key".to_owned(),
        Action::ReadApprovals => "read approval requests".to_owned(),
        Action::DecideApproval => "decide approval requests".to_owned(),
        Action::Seal => "seal the key-management centre".to_owned(),
        Action::IssueCertificate => "get certificates of profiles".to_owned(),
        Action::RegisterPerson => "register persons".to_owned(),
        Action::Key(KeyOperation::Read, key) => format!("read key {}", key.id),
        Action::Key(KeyOperation::Use, key) => format!("use key {}", key.id),
        Action::Key(KeyOperation::Manage, key) => format!("manage key {}", key.id),
        Action::Key(KeyOperation::Export, key) => format!("export key {}", key.id),
        Action::VerifyCertificate => "verify certificates".to_owned(),
        Action::ManageTrust => "change the trust bundle".to_owned(),
        Action::ChangeCertificate(change, holder) => {
            let what = match change {
                Change::Revoke(reason) => format!("revoke ({reason})"),
                Change::Suspend => "suspend".to_owned(),
                Change::Unsuspend => "unsuspend".to_owned(),
            };
            let whose = match holder {
                Holder::Caller => {
                    "its own certificate for this reason (a holder may give key-compromise, superseded or cessation-of-operation)"
                }
                Holder::NewerOwn => "a newer certificate of its own identity",
                Holder::Other => "another's certificate",
                Holder::Administrator => "an administrator's certificate",
                Holder::Server => "the server's certificate",
            };
            format!("{what} {whose}")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use govtrust_kms::{Algorithm, KeyId, KeyState};

    use super::*;

    const TAX: &str = "spiffe://gov.example/org/finance/sys/tax";
    const HEALTH: &str = "spiffe://gov.example/org/health/sys/records";
    const SECURITY: &str = "spiffe://gov.example/person/security-admin";

    fn key(owner: &str, internal: bool) -> KeyInfo {
        KeyInfo {
            id: KeyId::parse("k-0123456789abcdef0123456789abcdef").unwrap(),
            algorithm: Algorithm::Aes256Gcm,
            state: KeyState::Active,
            primary_version: 1,
            versions: Vec::new(),
            exportable: false,
            owner: owner.to_owned(),
            owner_generation: 1,
            description: String::new(),
            internal,
            created_at: SystemTime::now(),
            destruction_scheduled_at: None,
            destroyed_at: None,
            created_by: String::new(),
            origin: govtrust_kms::KeyOrigin::Generated,
        }
    }

    fn system(id: &str) -> Principal {
        Principal::for_test(
            id,
            Kind::System {
                org: "o".into(),
                name: "n".into(),
            },
        )
    }

    fn admin(role: Role) -> Principal {
        Principal::for_test(
            &format!("spiffe://gov.example/person/{role}"),
            Kind::Administrator(role),
        )
    }

    fn all_key_operations() -> [KeyOperation; 4] {
        [
            KeyOperation::Read,
            KeyOperation::Use,
            KeyOperation::Manage,
            KeyOperation::Export,
        ]
    }

    #[test]
    fn systems_reach_only_the_keys_they_own() {
        let own = key(TAX, false);
        let other = key(HEALTH, false);
        for operation in all_key_operations() {
            assert!(authorize(&system(TAX), Action::Key(operation, &own)).is_ok());
            let denied = authorize(&system(TAX), Action::Key(operation, &other)).unwrap_err();
            assert_eq!(denied.code(), tonic::Code::PermissionDenied);
            assert!(denied.message().contains(TAX), "{}", denied.message());
        }
        assert!(authorize(&system(TAX), Action::RegisterSystem).is_err());
        assert!(authorize(&system(TAX), Action::ListKeys).is_err());
        assert!(authorize(&system(TAX), Action::Renew).is_ok());
        assert!(authorize(&system(TAX), Action::IssueCertificate).is_ok());
        assert!(authorize(&system(TAX), Action::RegisterPerson).is_err());
    }

    #[test]
    fn only_the_security_administrator_registers_persons() {
        assert!(authorize(&admin(Role::SecurityAdministrator), Action::RegisterPerson).is_ok());
        for role in [Role::SystemAdministrator, Role::AuditAdministrator] {
            assert!(authorize(&admin(role), Action::RegisterPerson).is_err());
            assert!(authorize(&admin(role), Action::IssueCertificate).is_err());
        }
        let person = Principal::for_test("spiffe://gov.example/person/zhang-wei", Kind::Unknown);
        assert!(authorize(&person, Action::IssueCertificate).is_err());
        assert!(authorize(&person, Action::RegisterPerson).is_err());
    }

    #[test]
    fn internal_keys_are_out_of_reach_of_everyone() {
        let ca_key = key("spiffe://gov.example/govtrust", true);
        let disguised = key(TAX, true);
        for operation in [
            KeyOperation::Use,
            KeyOperation::Manage,
            KeyOperation::Export,
        ] {
            for principal in [system(TAX), admin(Role::SecurityAdministrator)] {
                assert!(authorize(&principal, Action::Key(operation, &ca_key)).is_err());
                assert!(authorize(&principal, Action::Key(operation, &disguised)).is_err());
            }
        }
    }

    #[test]
    fn administrator_duties_are_separated() {
        let system_key = key(TAX, false);
        let own_key = key(SECURITY, false);
        let sys = admin(Role::SystemAdministrator);
        let sec = admin(Role::SecurityAdministrator);
        let aud = admin(Role::AuditAdministrator);
        assert!(authorize(&sys, Action::RegisterSystem).is_ok());
        assert!(authorize(&sec, Action::RegisterSystem).is_err());
        assert!(authorize(&aud, Action::RegisterSystem).is_err());
        assert!(authorize(&aud, Action::ReadAudit).is_ok());
        assert!(authorize(&sys, Action::ReadAudit).is_err());
        assert!(authorize(&sec, Action::ReadAudit).is_err());
        assert!(authorize(&sys, Action::CreateKey).is_err());
        assert!(authorize(&sec, Action::CreateKey).is_ok());
        assert!(authorize(&aud, Action::CreateKey).is_err());
        assert!(authorize(&sec, Action::Key(KeyOperation::Manage, &system_key)).is_ok());
        assert!(authorize(&sec, Action::Key(KeyOperation::Use, &system_key)).is_err());
        assert!(authorize(&sec, Action::Key(KeyOperation::Use, &own_key)).is_ok());
        assert!(authorize(&aud, Action::Key(KeyOperation::Read, &system_key)).is_ok());
        assert!(authorize(&aud, Action::Key(KeyOperation::Manage, &system_key)).is_err());
        assert!(authorize(&aud, Action::Key(KeyOperation::Use, &system_key)).is_err());
        for principal in [&sys, &sec, &aud] {
            assert!(authorize(principal, Action::ReadCertificates).is_ok());
            // Their own certificate: the CA checks it is the caller's.
            assert!(authorize(principal, Action::Renew).is_ok());
        }
    }

    #[test]
    fn a_re_enrolled_system_reaches_only_the_keys_its_lineage_allows() {
        let first_life = key(TAX, false);
        let lineage = |generation, key_floor| govtrust_ca::Lineage {
            generation,
            key_floor,
        };
        let use_key = Action::Key(KeyOperation::Use, &first_life);
        // Keys made in enrollment 1 are reached by certificates of enrollment 1.
        assert!(authorize(&system(TAX).with_standing(1, lineage(1, 0)), use_key).is_ok());
        // Re-enrolled without carrying keys: the new certificate is refused the old key ...
        let fresh = system(TAX).with_standing(2, lineage(2, 2));
        assert!(authorize(&fresh, use_key).is_err());
        // ... and so is every certificate of the earlier enrollment.
        assert!(authorize(&system(TAX).with_standing(1, lineage(2, 2)), use_key).is_err());
        assert!(authorize(&system(TAX).with_standing(1, lineage(2, 0)), use_key).is_err());
        // Carried over by the approved re-enrollment: reached.
        assert!(authorize(&system(TAX).with_standing(2, lineage(2, 0)), use_key).is_ok());
        // A certificate of the earlier enrollment may do nothing at all.
        let old = system(TAX).with_standing(1, lineage(2, 0));
        for action in [
            Action::CreateKey,
            Action::ImportKey,
            Action::DecideApproval,
            Action::Renew,
        ] {
            assert!(authorize(&old, action).is_err());
        }
    }

    #[test]
    fn only_the_security_administrator_seals() {
        let sec = admin(Role::SecurityAdministrator);
        assert!(authorize(&sec, Action::Seal).is_ok());
        let stranger = Principal::for_test("spiffe://gov.example/person/nobody", Kind::Unknown);
        for principal in [
            admin(Role::SystemAdministrator),
            admin(Role::AuditAdministrator),
            system(TAX),
            stranger,
        ] {
            let denied = authorize(&principal, Action::Seal).unwrap_err();
            assert_eq!(denied.code(), tonic::Code::PermissionDenied);
            assert!(denied.message().contains("seal"), "{}", denied.message());
        }
    }

    #[test]
    fn identities_without_a_role_may_do_nothing() {
        let stranger = Principal::for_test("spiffe://gov.example/person/nobody", Kind::Unknown);
        let own = key("spiffe://gov.example/person/nobody", false);
        assert!(authorize(&stranger, Action::ReadCaChain).is_err());
        assert!(authorize(&stranger, Action::Key(KeyOperation::Use, &own)).is_err());
        assert!(authorize(&stranger, Action::CreateKey).is_err());
    }
}
