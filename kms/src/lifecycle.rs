//! Key lifecycle rules (NIST SP 800-57 part 1, §5.3): which state changes are legal and what each
//! state allows.
//!
//! | from | change | to |
//! |---|---|---|
//! | pre-active | activate | active |
//! | active | suspend | suspended |
//! | suspended | resume | active |
//! | pre-active, active, suspended | deactivate | deactivated |
//! | any but destroyed | mark-compromised | compromised |
//!
//! Use: active allows everything; deactivated and compromised allow decrypt, verify and reading
//! the public key (processing protected data only, SP 800-57 §5.3.4–5.3.5: a compromised key
//! must not protect anything new, but data it protected must stay recoverable), and each such
//! use is audited on its own; suspended and pre-active allow reading the public key only;
//! destroyed allows nothing. A key whose destruction is scheduled allows nothing until the
//! destruction is cancelled. Internal keys follow the same rules.

use std::time::SystemTime;

use crate::record::{KeyRecord, from_unix_ms};
use crate::{Algorithm, Error, KeyState, StateChange};

/// What a caller wants to do with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usage {
    Encrypt,
    Decrypt,
    GenerateDataKey,
    Sign,
    Verify,
    PublicKey,
    Rotate,
    Export,
}

impl Usage {
    /// The name used in error messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Usage::Encrypt => "encrypt",
            Usage::Decrypt => "decrypt",
            Usage::GenerateDataKey => "generate data key",
            Usage::Sign => "sign",
            Usage::Verify => "verify",
            Usage::PublicKey => "public key",
            Usage::Rotate => "rotate",
            Usage::Export => "export",
        }
    }

    /// True when a key of `algorithm` can be used so: encryption by the symmetric keys and SM2
    /// encryption keys, data keys by the symmetric keys only, signatures by the signature keys,
    /// public keys by every asymmetric key.
    pub(crate) fn fits(self, algorithm: Algorithm) -> bool {
        match self {
            Usage::Encrypt | Usage::Decrypt => algorithm.encrypts(),
            Usage::GenerateDataKey => algorithm.is_symmetric(),
            Usage::Sign | Usage::Verify => algorithm.signs(),
            Usage::PublicKey => !algorithm.is_symmetric(),
            Usage::Rotate | Usage::Export => true,
        }
    }
}

/// The state `change` leads to from `from`, or `None` when the lifecycle forbids it.
pub(crate) fn transition(from: KeyState, change: StateChange) -> Option<KeyState> {
    use KeyState::*;
    match (from, change) {
        (PreActive, StateChange::Activate) => Some(Active),
        (Active, StateChange::Suspend) => Some(Suspended),
        (Suspended, StateChange::Resume) => Some(Active),
        (PreActive | Active | Suspended, StateChange::Deactivate) => Some(Deactivated),
        (Destroyed, StateChange::MarkCompromised) => None,
        (_, StateChange::MarkCompromised) => Some(Compromised),
        _ => None,
    }
}

/// True for the states whose every permitted use is audited on its own: the key protects
/// nothing new, and each use of it is an exception worth accounting for.
pub(crate) fn retired(state: KeyState) -> bool {
    matches!(state, KeyState::Deactivated | KeyState::Compromised)
}

/// True when a key in `state` may be used for `usage`.
pub(crate) fn permits(state: KeyState, usage: Usage) -> bool {
    match state {
        KeyState::Active => true,
        KeyState::Deactivated | KeyState::Compromised => {
            matches!(usage, Usage::Decrypt | Usage::Verify | Usage::PublicKey)
        }
        KeyState::PreActive | KeyState::Suspended => usage == Usage::PublicKey,
        KeyState::Destroyed => false,
    }
}

/// Refuses a destroyed key.
pub(crate) fn check_not_destroyed(record: &KeyRecord) -> Result<(), Error> {
    if record.state != KeyState::Destroyed && record.destroyed_at_ms.is_none() {
        return Ok(());
    }
    let destroyed_at = record
        .destroyed_at_ms
        .map_or(SystemTime::UNIX_EPOCH, from_unix_ms);
    Err(Error::KeyDestroyed {
        id: record.id.clone(),
        destroyed_at,
    })
}

/// Refuses a destroyed key or one whose destruction is scheduled.
pub(crate) fn check_alive(record: &KeyRecord) -> Result<(), Error> {
    check_not_destroyed(record)?;
    match record.destruction_due_ms {
        Some(ms) => Err(Error::DestructionPending {
            id: record.id.clone(),
            at: from_unix_ms(ms),
        }),
        None => Ok(()),
    }
}

/// Checks that `record` may be used for `usage`: alive, in a state that permits it, and of an
/// algorithm that can do it.
pub(crate) fn check_usage(record: &KeyRecord, usage: Usage) -> Result<(), Error> {
    check_alive(record)?;
    if !permits(record.state, usage) {
        return Err(Error::KeyState {
            id: record.id.clone(),
            state: record.state,
            operation: usage.name(),
        });
    }
    if !usage.fits(record.algorithm) {
        return Err(Error::WrongAlgorithm {
            id: record.id.clone(),
            algorithm: record.algorithm,
            operation: usage.name(),
        });
    }
    Ok(())
}

/// The state after `change`, or `IllegalTransition`.
pub(crate) fn apply(record: &KeyRecord, change: StateChange) -> Result<KeyState, Error> {
    check_alive(record)?;
    transition(record.state, change).ok_or_else(|| Error::IllegalTransition {
        id: record.id.clone(),
        from: record.state,
        change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use KeyState::*;
    use StateChange::*;

    #[test]
    fn transition_table() {
        let legal = [
            (PreActive, Activate, Active),
            (Active, Suspend, Suspended),
            (Suspended, Resume, Active),
            (PreActive, Deactivate, Deactivated),
            (Active, Deactivate, Deactivated),
            (Suspended, Deactivate, Deactivated),
            (PreActive, MarkCompromised, Compromised),
            (Active, MarkCompromised, Compromised),
            (Suspended, MarkCompromised, Compromised),
            (Deactivated, MarkCompromised, Compromised),
            (Compromised, MarkCompromised, Compromised),
        ];
        for from in KeyState::ALL {
            for change in StateChange::ALL {
                let expected = legal
                    .iter()
                    .find(|(f, c, _)| *f == from && *c == change)
                    .map(|(_, _, to)| *to);
                assert_eq!(transition(from, change), expected, "{from} --{change}-->");
            }
        }
    }

    #[test]
    fn usage_table() {
        use Usage::*;
        let all = [
            Encrypt,
            Decrypt,
            GenerateDataKey,
            Sign,
            Verify,
            PublicKey,
            Rotate,
            Export,
        ];
        for usage in all {
            assert!(permits(Active, usage));
            assert!(!permits(Destroyed, usage));
            for state in [Deactivated, Compromised] {
                assert_eq!(
                    permits(state, usage),
                    matches!(usage, Decrypt | Verify | PublicKey),
                    "{state} {}",
                    usage.name()
                );
            }
            for state in [PreActive, Suspended] {
                assert_eq!(
                    permits(state, usage),
                    usage == PublicKey,
                    "{state} {}",
                    usage.name()
                );
            }
        }
    }
}
