//! One-time enrollment tokens: `gt1_` followed by base64url of 32 random bytes.
//!
//! Only the SHA-256 digest of a token is stored, so a copy of the store does not let anyone
//! enroll. Tokens are looked up by digest; no secret is ever compared.

use base64::Engine as _;
use ring::digest::{SHA256, digest as sha256};
use ring::rand::SecureRandom;
use zeroize::Zeroizing;

use crate::Error;

const PREFIX: &str = "gt1_";
/// Random bytes in a token.
const ENTROPY: usize = 32;
/// Longest string treated as a possible token (prefix plus 43 base64url characters).
const MAX_LEN: usize = 47;

/// A fresh token.
pub(crate) fn generate(rng: &dyn SecureRandom) -> Result<Zeroizing<String>, Error> {
    let mut bytes = Zeroizing::new([0u8; ENTROPY]);
    rng.fill(bytes.as_mut())
        .map_err(|_| Error::RandomUnavailable)?;
    let mut token = Zeroizing::new(String::with_capacity(MAX_LEN));
    token.push_str(PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut token);
    Ok(token)
}

/// The digest a token is stored under: lowercase hex of SHA-256 of its text.
pub(crate) fn digest(token: &str) -> String {
    hex::encode(sha256(&SHA256, token.as_bytes()))
}

/// The digest of `token` if it has the shape of a token, else `None` (it cannot be one).
pub(crate) fn lookup_digest(token: &str) -> Option<String> {
    let well_formed = token.len() == MAX_LEN && token.starts_with(PREFIX);
    well_formed.then(|| digest(token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape() {
        let rng = ring::rand::SystemRandom::new();
        let token = generate(&rng).unwrap();
        assert!(token.starts_with("gt1_"));
        assert_eq!(token.len(), MAX_LEN);
        assert_ne!(*token, *generate(&rng).unwrap());
        assert_eq!(lookup_digest(&token), Some(digest(&token)));
        assert_eq!(lookup_digest("gt1_short"), None);
        assert_eq!(digest(&token).len(), 64);
    }
}
