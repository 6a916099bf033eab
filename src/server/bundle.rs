//! The trust bundle relying parties fetch: PEM, and JSON in the style of a SPIFFE trust bundle
//! (a JWK set whose keys carry `use: x509-svid` and the certificate in `x5c`).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// OIDs of the named curves a JWK can name.
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// The bundle as a SPIFFE-style JWK set of the trust anchors `anchors` (DER), with `sequence`
/// numbering its versions and `refresh_hint` seconds between fetches.
pub fn spiffe_json(anchors: &[&[u8]], sequence: u64, refresh_hint: u64) -> Value {
    let keys: Vec<Value> = anchors.iter().filter_map(|der| jwk(der)).collect();
    json!({
        "spiffe_sequence": sequence,
        "spiffe_refresh_hint": refresh_hint,
        "keys": keys,
    })
}

/// The JWK of a certificate's public key with the certificate in `x5c`; `None` for a key type a
/// JWK cannot carry here (then the certificate is left out of the JSON bundle, not the PEM one).
fn jwk(der: &[u8]) -> Option<Value> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let spki = certificate.public_key();
    let mut key = match spki.parsed().ok()? {
        PublicKey::EC(point) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())?;
            let (crv, size) = match curve.as_str() {
                P256 => ("P-256", 32),
                P384 => ("P-384", 48),
                _ => return None,
            };
            let (x, y) = coordinates(point.data(), size)?;
            json!({ "kty": "EC", "crv": crv, "x": b64url(x), "y": b64url(y) })
        }
        PublicKey::RSA(rsa) => {
            json!({ "kty": "RSA", "n": b64url(unsigned(rsa.modulus)), "e": b64url(unsigned(rsa.exponent)) })
        }
        _ => return None,
    };
    let object = key.as_object_mut()?;
    object.insert("use".into(), json!("x509-svid"));
    object.insert("x5c".into(), json!([STANDARD.encode(der)]));
    Some(key)
}

/// X and Y of an uncompressed EC point of `size`-byte coordinates.
fn coordinates(point: &[u8], size: usize) -> Option<(&[u8], &[u8])> {
    let rest = point.strip_prefix(&[0x04])?;
    (rest.len() == 2 * size).then(|| rest.split_at(size))
}

/// A DER INTEGER's content without its sign byte.
fn unsigned(bytes: &[u8]) -> &[u8] {
    match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => bytes,
    }
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_ec_anchor_becomes_a_jwk_with_its_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let bundle = spiffe_json(&[&der, b"not a certificate"], 7, 300);
        assert_eq!(bundle["spiffe_sequence"], 7);
        let keys = bundle["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let jwk = &keys[0];
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-384");
        assert_eq!(jwk["use"], "x509-svid");
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        assert_eq!(x.len(), 48);
        assert_eq!(
            STANDARD.decode(jwk["x5c"][0].as_str().unwrap()).unwrap(),
            der
        );
        let point = key.public_key_raw();
        assert_eq!(&point[1..49], x.as_slice());
    }
}
