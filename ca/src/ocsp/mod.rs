//! OCSP (RFC 6960): the request parser and the responder's signing core, for one issuing CA.
//!
//! - [`Request::parse`] reads an `OCSPRequest` from untrusted DER: the certificates asked
//!   about ([`CertId`]: SHA-1 or SHA-256 issuer hashes and a serial) and the nonce, or
//!   [`Error::OcspMalformed`](crate::Error::OcspMalformed) naming the [`Defect`]. It never panics.
//! - A [`Responder`] holds the CA's hashes and the responder's certificate and key in custody
//!   (a [`govtrust_kms::Signer`]). [`Responder::respond`] signs the answer to exactly one
//!   request (its nonce repeated); [`Responder::presign`] signs one for a single CertID
//!   without a nonce, to be kept and served until its `nextUpdate` to every request whose
//!   [`Request::single`] has the same encoding ([`CertId::as_der`], the cache key);
//!   [`Responder::answers_for`] tells whether a CertID names the CA, without signing.
//! - Errors become the constant unsigned answers through [`refusal()`].
//!
//! A request is answered whole or not at all: one CertID of another CA makes the answer
//! [`UNAUTHORIZED`] (RFC 6960 §2.3).
//!
//! ```no_run
//! # use govtrust_ca::{Error, ocsp::{self, Request, Responder, Status, Times}};
//! # fn answer(responder: &Responder, body: &[u8], times: &Times) -> Vec<u8> {
//! let answer = Request::parse(body)
//!     .and_then(|request| responder.respond(&request, |_serial| Ok(Status::Good), times));
//! answer.unwrap_or_else(|error| ocsp::refusal(&error).to_vec())
//! # }
//! ```
//!
//! - Serving ([`Ca::ocsp`](crate::Ca::ocsp)): each CA's delegated responder (a kms key and an
//!   OCSP-signing certificate with id-pkix-ocsp-nocheck, replaced after two thirds of its 90
//!   days) and the responses signed in advance, served while the certificate's revocation state
//!   is the one they were signed with.
//!
//! What it does not do: HTTP (GET's base64 path, content types, caching headers).

mod delegate;
mod refusal;
mod request;
mod responder;
mod serving;
pub(crate) mod wire;

pub use refusal::{
    INTERNAL_ERROR, MALFORMED_REQUEST, SIG_REQUIRED, TRY_LATER, UNAUTHORIZED, refusal,
};
pub use request::{
    CertId, Defect, HashAlgorithm, MAX_CERT_IDS, MAX_NONCE_LEN, MAX_REQUEST_LEN, Request,
};
pub use responder::{Responder, Status, Times};
pub(crate) use serving::Ocsp;
pub use serving::{Answer, Outcome};
