//! The unsigned answers: an `OCSPResponse` with an error status and no response bytes
//! (RFC 6960 §4.2.1). They are constants, the same for every request, so they cost nothing to
//! send and reveal nothing.

use govtrust_kms::Error as KmsError;

use crate::Error;

/// `malformedRequest`: the request could not be read.
pub const MALFORMED_REQUEST: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x01];
/// `internalError`: the responder failed.
pub const INTERNAL_ERROR: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x02];
/// `tryLater`: the responder cannot answer now (the kms is sealed).
pub const TRY_LATER: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x03];
/// `sigRequired`: the request must be signed (this responder never says so).
pub const SIG_REQUIRED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x05];
/// `unauthorized`: the request is about a certificate of a CA this responder does not
/// answer for.
pub const UNAUTHORIZED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x06];

/// The unsigned answer to a request that failed with `error`: [`MALFORMED_REQUEST`] for
/// [`Error::OcspMalformed`], [`UNAUTHORIZED`] for [`Error::OcspUnauthorized`], [`TRY_LATER`]
/// while the kms is sealed, and [`INTERNAL_ERROR`] for anything else.
pub fn refusal(error: &Error) -> &'static [u8] {
    match error {
        Error::OcspMalformed { .. } => MALFORMED_REQUEST,
        Error::OcspUnauthorized { .. } => UNAUTHORIZED,
        Error::Kms(KmsError::Sealed) => TRY_LATER,
        _ => INTERNAL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use der::Encode;

    use super::*;
    use crate::ocsp::Defect;
    use crate::ocsp::wire::{OcspResponse, ResponseStatus};

    #[test]
    fn the_constants_are_the_der_of_their_statuses() {
        let cases = [
            (MALFORMED_REQUEST, ResponseStatus::MalformedRequest),
            (INTERNAL_ERROR, ResponseStatus::InternalError),
            (TRY_LATER, ResponseStatus::TryLater),
            (SIG_REQUIRED, ResponseStatus::SigRequired),
            (UNAUTHORIZED, ResponseStatus::Unauthorized),
        ];
        for (constant, status) in cases {
            let response = OcspResponse {
                response_status: status,
                response_bytes: None,
            };
            assert_eq!(response.to_der().unwrap(), constant, "{status:?}");
        }
    }

    #[test]
    fn errors_map_to_their_statuses() {
        let malformed = Error::OcspMalformed {
            defect: Defect::NoCertificates,
        };
        assert_eq!(refusal(&malformed), MALFORMED_REQUEST);
        assert_eq!(refusal(&Error::Kms(KmsError::Sealed)), TRY_LATER);
        assert_eq!(refusal(&Error::NotInitialized), INTERNAL_ERROR);
    }
}
