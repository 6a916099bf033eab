//! The national (commercial cryptography, 商用密码) primitives: SM2 signatures and public-key
//! encryption (GB/T 32918), the SM3 hash (GB/T 32905) and SM4 (GB/T 32907) in GCM mode
//! (RFC 8998).
//!
//! Encodings, as the GM/T standards and OpenSSL use them:
//! - SM2 private keys: PKCS#8 DER, algorithm `id-ecPublicKey` with the SM2 curve
//!   (`1.2.156.10197.1.301`); public keys: the uncompressed SEC1 point (65 bytes).
//! - SM2 signatures: DER `SEQUENCE { r INTEGER, s INTEGER }` over `SM3(Z_A || M)`, `Z_A` computed
//!   with the distinguishing identifier [`DEFAULT_ID`] (GM/T 0009). OpenSSL 3.0's own default ID is
//!   empty, so its command line needs `-sigopt distid:1234567812345678`.
//! - SM2 ciphertexts: DER `SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING, ciphertext OCTET
//!   STRING }`, the C1C3C2 order of GM/T 0009 §7.2 (what `openssl pkeyutl -encrypt` writes).
//! - SM4-GCM: 128-bit key, 96-bit nonce, 128-bit tag after the ciphertext.
//! - SM2 key pairs sent to someone (配发): the digital envelope `SM2EnvelopedKey` of GB/T 35276
//!   §7.4 (GM/T 0009 §7.4): a fresh SM4 key encrypted to the recipient's SM2 key, the enclosed
//!   pair's public key, and its 32-byte private key under the SM4 key in ECB mode (two blocks,
//!   no padding, as GmSSL and gmsm write it); see [`sm2_envelope`].
//!
//! Limits, as for ring's key objects (see `material`): the `sm2` 0.14 key types hold the private
//! scalar without wiping it on drop, so a loaded SM2 key is freed, not wiped (the PKCS#8 buffers
//! this crate owns are `Zeroizing`); [`Sm2KeyPair`]'s `Debug` prints only the public key. SM4's
//! key schedule is wiped on drop (the `zeroize` feature of `sm4`), but the `sm4` crate's S-box is
//! a table lookup indexed by secret data, so SM4 is not constant-time against a co-resident
//! attacker measuring cache timing (ring's AES is); a PKCS#11 custodian or a bitsliced SM4
//! removes that limit.

use aes_gcm::AesGcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use sm2::elliptic_curve::Generate;
use sm2::elliptic_curve::common::getrandom::SysRng;
use sm2::elliptic_curve::consts::U12;
use sm2::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use sm2::pke::{DecryptingKey, EncryptingKey, Mode};
use sm2::{PublicKey, SecretKey};
use sm3::{Digest, Sm3};
use sm4::Sm4;
use zeroize::Zeroizing;

/// The SM2 distinguishing identifier every govtrust signature uses: the default of GM/T 0009
/// (and of GB/T 35276), `1234567812345678`.
pub const DEFAULT_ID: &str = "1234567812345678";

/// Bytes of an SM4 key.
pub const SM4_KEY_LEN: usize = 16;
/// Bytes of an SM4-GCM nonce.
pub const SM4_GCM_NONCE_LEN: usize = 12;
/// Bytes of an SM4-GCM tag.
pub const SM4_GCM_TAG_LEN: usize = 16;
/// Bytes of an uncompressed SM2 public point.
pub const SM2_PUBLIC_KEY_LEN: usize = 65;

/// Why a national-suite operation failed; callers turn it into their own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NationalError {
    /// The bytes are not an SM2 public key: not an uncompressed point, or not on the curve.
    #[error("not an SM2 public key (an uncompressed point on the SM2 curve)")]
    PublicKey,
    /// The bytes are not an SM2 private key in PKCS#8.
    #[error("not an SM2 private key in PKCS#8")]
    PrivateKey,
    /// The signature is not DER `SEQUENCE { r, s }` with both in [1, n-1].
    #[error("not an SM2 signature (DER SEQUENCE of two integers in range)")]
    SignatureEncoding,
    /// The ciphertext is malformed, or its hash does not match (wrong key or altered bytes).
    #[error("the SM2 ciphertext does not decrypt: malformed, altered, or for another key")]
    Decrypt,
    /// SM2 cannot encrypt an empty message.
    #[error("SM2 cannot encrypt an empty message")]
    EmptyPlaintext,
    /// SM4-GCM refused: the tag does not match (altered bytes, wrong key, nonce or AAD).
    #[error("the SM4-GCM ciphertext does not authenticate: altered, or wrong key, nonce or AAD")]
    Authentication,
    /// A key, nonce or buffer has the wrong length.
    #[error("wrong length for {0}")]
    Length(&'static str),
    /// An SM2 digital envelope is malformed or does not open; names the part.
    #[error("the SM2 envelope does not open: {0}")]
    Envelope(&'static str),
    /// The operating system's random source failed.
    #[error("the random source failed")]
    Random,
}

/// SM3 of `data`.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data).into()
}

/// A fresh SM2 private key, PKCS#8 DER.
pub fn sm2_generate() -> Result<Zeroizing<Vec<u8>>, NationalError> {
    let secret = SecretKey::generate();
    let document = secret
        .to_pkcs8_der()
        .map_err(|_| NationalError::PrivateKey)?;
    Ok(Zeroizing::new(document.as_bytes().to_vec()))
}

/// An SM2 key pair loaded for use.
pub struct Sm2KeyPair {
    signing: sm2::dsa::SigningKey,
    decrypting: DecryptingKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for Sm2KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sm2KeyPair")
            .field("public_key", &hex::encode(&self.public))
            .finish_non_exhaustive()
    }
}

impl Sm2KeyPair {
    /// Loads a PKCS#8 SM2 private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, NationalError> {
        let secret = SecretKey::from_pkcs8_der(der).map_err(|_| NationalError::PrivateKey)?;
        Self::from_secret(&secret)
    }

    fn from_secret(secret: &SecretKey) -> Result<Self, NationalError> {
        let signing =
            sm2::dsa::SigningKey::new(DEFAULT_ID, secret).map_err(|_| NationalError::PrivateKey)?;
        let decrypting = DecryptingKey::new_with_mode(secret.to_nonzero_scalar(), Mode::C1C3C2);
        let public = signing.verifying_key().to_sec1_bytes().into_vec();
        Ok(Self {
            signing,
            decrypting,
            public,
        })
    }

    /// The uncompressed public point.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// Signs `message` (hedged: RFC 6979 nonce mixed with fresh randomness); DER `(r, s)`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, NationalError> {
        use sm2::dsa::signature::RandomizedSigner;
        let signature: sm2::dsa::Signature = self
            .signing
            .try_sign_with_rng(&mut SysRng, message)
            .map_err(|_| NationalError::Random)?;
        Ok(signature.to_der().to_vec())
    }

    /// The private scalar, 32 bytes big-endian.
    fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes().into())
    }

    /// The private key, PKCS#8 DER.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, NationalError> {
        let secret =
            SecretKey::from_slice(&*self.secret_bytes()).map_err(|_| NationalError::PrivateKey)?;
        let document = secret
            .to_pkcs8_der()
            .map_err(|_| NationalError::PrivateKey)?;
        Ok(Zeroizing::new(document.as_bytes().to_vec()))
    }

    /// Decrypts a DER (C1C3C2) SM2 ciphertext.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, NationalError> {
        self.decrypting
            .decrypt_der(ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| NationalError::Decrypt)
    }
}

/// The SM2 public key of the uncompressed point `public_key`, checked to be on the curve.
fn public_key(public_key: &[u8]) -> Result<PublicKey, NationalError> {
    if public_key.len() != SM2_PUBLIC_KEY_LEN {
        return Err(NationalError::PublicKey);
    }
    PublicKey::from_sec1_bytes(public_key).map_err(|_| NationalError::PublicKey)
}

/// Checks that `public_key` is an uncompressed point on the SM2 curve.
pub fn sm2_check_public_key(key: &[u8]) -> Result<(), NationalError> {
    public_key(key).map(|_| ())
}

/// The SM2 curve's `a`, `b`, `x_G` and `y_G` (GB/T 32918.5), as `Z_A` hashes them.
const CURVE_CONSTANTS: [u8; 128] = hex_literal(concat!(
    "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC",
    "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93",
    "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7",
    "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0",
));

/// 128 bytes from 256 hex digits, at compile time (only ever evaluated in a constant, where a
/// panic is a build error).
#[allow(clippy::panic)]
const fn hex_literal(text: &str) -> [u8; 128] {
    const fn digit(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let bytes = text.as_bytes();
    assert!(bytes.len() == 256);
    let mut out = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        out[i] = digit(bytes[2 * i]) << 4 | digit(bytes[2 * i + 1]);
        i += 1;
    }
    out
}

/// `Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A)` (GB/T 32918.2 §5.5) for the
/// uncompressed point `public_key` and the ID [`DEFAULT_ID`].
fn z_a(public_key: &[u8]) -> [u8; 32] {
    let id = DEFAULT_ID.as_bytes();
    let bits = u16::try_from(id.len() * 8)
        .unwrap_or(u16::MAX)
        .to_be_bytes();
    let mut hash = Sm3::new();
    hash.update(bits);
    hash.update(id);
    hash.update(CURVE_CONSTANTS);
    hash.update(public_key.get(1..).unwrap_or_default());
    hash.finalize().into()
}

/// Verifies the DER signature `signature` over `message` by `public_key` (identifier
/// [`DEFAULT_ID`]): `Ok(true)` valid, `Ok(false)` a well-formed signature that does not verify.
///
/// GB/T 32918.2 §7.1 with the public inputs only, so in variable time: `[s]G` from the
/// precomputed table of the base point, `[t]P_A` by wNAF (about twice as fast as the constant-time
/// linear combination the `sm2` crate's verifier uses).
pub fn sm2_verify(
    public_key_bytes: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<bool, NationalError> {
    use sm2::elliptic_curve::Group;
    use sm2::elliptic_curve::ops::{MulByGeneratorVartime, Reduce};
    use sm2::elliptic_curve::point::AffineCoordinates;
    use sm2::{FieldBytes, ProjectivePoint, Scalar};

    let point = ProjectivePoint::from(*public_key(public_key_bytes)?.as_affine());
    let signature =
        sm2::dsa::Signature::from_der(signature).map_err(|_| NationalError::SignatureEncoding)?;
    // B1, B2: r and s in [1, n-1] (checked when the signature was parsed).
    let (r, s) = (*signature.r(), *signature.s());
    // B3, B4: e = SM3(Z_A || M).
    let digest: [u8; 32] = Sm3::new_with_prefix(z_a(public_key_bytes))
        .chain_update(message)
        .finalize()
        .into();
    let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(digest));
    // B5: t = r + s, not zero.
    let t = r + s;
    if bool::from(t.is_zero()) {
        return Ok(false);
    }
    // B6: (x1, y1) = [s]G + [t]P_A, not the point at infinity.
    let sum = ProjectivePoint::mul_by_generator_and_mul_add_vartime(&s, &t, &point);
    if bool::from(sum.is_identity()) {
        return Ok(false);
    }
    // B7: R = e + x1 must be r.
    let x1 = <Scalar as Reduce<FieldBytes>>::reduce(&sum.to_affine().x());
    Ok(e + x1 == r)
}

/// Encrypts `plaintext` to the SM2 `public_key`; DER C1C3C2.
pub fn sm2_encrypt(public_key_bytes: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, NationalError> {
    if plaintext.is_empty() {
        return Err(NationalError::EmptyPlaintext);
    }
    let key = EncryptingKey::new_with_mode(public_key(public_key_bytes)?, Mode::C1C3C2);
    key.encrypt_der(&mut SysRng, plaintext)
        .map_err(|_| NationalError::Random)
}

/// `SM2EnvelopedKey` (GB/T 35276-2017 §7.4).
#[derive(der::Sequence)]
struct EnvelopedKey {
    sym_alg_id: SymmetricAlgorithm,
    /// `SM2Cipher`: the SM4 key, encrypted to the recipient (C1C3C2 DER).
    sym_encrypted_key: der::asn1::Any,
    /// `SM2PublicKey`: the enclosed pair's uncompressed public point.
    sm2_public_key: der::asn1::BitString,
    /// The enclosed pair's 32-byte private key under the SM4 key, ECB.
    sm2_encrypted_private_key: der::asn1::BitString,
}

/// `AlgorithmIdentifier` with no parameters.
#[derive(der::Sequence)]
struct SymmetricAlgorithm {
    algorithm: der::asn1::ObjectIdentifier,
    #[asn1(optional = "true")]
    parameters: Option<der::asn1::Any>,
}

/// SM4 in ECB mode (GM/T 0006), the cipher of the envelope's private key.
const SM4_ECB: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.156.10197.1.104.1");

/// Encloses the key pair `enclosed` in an SM2 digital envelope (`SM2EnvelopedKey`, DER) that only
/// the holder of the SM2 private key of `recipient_public_key` opens.
pub fn sm2_envelope(
    recipient_public_key: &[u8],
    enclosed: &Sm2KeyPair,
) -> Result<Vec<u8>, NationalError> {
    use der::{Decode, Encode};
    use sm2::elliptic_curve::rand_core::TryRng;
    let mut key = Zeroizing::new([0u8; SM4_KEY_LEN]);
    SysRng
        .try_fill_bytes(&mut *key)
        .map_err(|_| NationalError::Random)?;
    let encrypted_key = sm2_encrypt(recipient_public_key, &*key)?;
    let mut private = enclosed.secret_bytes();
    sm4_ecb(&*key, &mut *private, true)?;
    let envelope = EnvelopedKey {
        sym_alg_id: SymmetricAlgorithm {
            algorithm: SM4_ECB,
            parameters: None,
        },
        sym_encrypted_key: der::asn1::Any::from_der(&encrypted_key)
            .map_err(|_| NationalError::Envelope("the encrypted key"))?,
        sm2_public_key: der::asn1::BitString::from_bytes(enclosed.public_key())
            .map_err(|_| NationalError::Envelope("the public key"))?,
        sm2_encrypted_private_key: der::asn1::BitString::from_bytes(&*private)
            .map_err(|_| NationalError::Envelope("the private key"))?,
    };
    envelope
        .to_der()
        .map_err(|_| NationalError::Envelope("the envelope"))
}

/// Opens the SM2 digital envelope `envelope` with the recipient's key pair; the enclosed pair,
/// checked to be the pair whose public key the envelope names.
pub fn sm2_open_envelope(
    recipient: &Sm2KeyPair,
    envelope: &[u8],
) -> Result<Sm2KeyPair, NationalError> {
    use der::{Decode, Encode};
    let envelope = EnvelopedKey::from_der(envelope)
        .map_err(|_| NationalError::Envelope("not DER SM2EnvelopedKey"))?;
    if envelope.sym_alg_id.algorithm != SM4_ECB {
        return Err(NationalError::Envelope(
            "the symmetric algorithm is not SM4-ECB (1.2.156.10197.1.104.1)",
        ));
    }
    let encrypted_key = envelope
        .sym_encrypted_key
        .to_der()
        .map_err(|_| NationalError::Envelope("the encrypted key"))?;
    let key = recipient.decrypt(&encrypted_key)?;
    if key.len() != SM4_KEY_LEN {
        return Err(NationalError::Envelope(
            "the enclosed SM4 key is not 16 bytes",
        ));
    }
    let mut private: Zeroizing<[u8; 32]> = Zeroizing::new(
        envelope
            .sm2_encrypted_private_key
            .as_bytes()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(NationalError::Envelope(
                "the encrypted private key is not 32 bytes",
            ))?,
    );
    sm4_ecb(&key, &mut *private, false)?;
    let secret = SecretKey::from_slice(&*private)
        .map_err(|_| NationalError::Envelope("the enclosed private key is out of range"))?;
    let pair = Sm2KeyPair::from_secret(&secret)?;
    if Some(pair.public_key()) != envelope.sm2_public_key.as_bytes() {
        return Err(NationalError::Envelope(
            "the enclosed private key does not match the enclosed public key",
        ));
    }
    Ok(pair)
}

/// SM4-ECB over whole blocks of `data` in place.
fn sm4_ecb(key: &[u8], data: &mut [u8], encrypt: bool) -> Result<(), NationalError> {
    use sm4::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit as _};
    let cipher = Sm4::new_from_slice(key).map_err(|_| NationalError::Length("an SM4 key"))?;
    for block in data.chunks_exact_mut(16) {
        let block: &mut sm4::cipher::Array<u8, _> = block
            .try_into()
            .map_err(|_| NationalError::Length("an SM4 block"))?;
        if encrypt {
            cipher.encrypt_block(block);
        } else {
            cipher.decrypt_block(block);
        }
    }
    Ok(())
}

/// An SM4 key in GCM mode.
pub struct Sm4Gcm(AesGcm<Sm4, U12>);

impl Sm4Gcm {
    /// The 16-byte `key`.
    pub fn new(key: &[u8]) -> Result<Self, NationalError> {
        AesGcm::<Sm4, U12>::new_from_slice(key)
            .map(Sm4Gcm)
            .map_err(|_| NationalError::Length("an SM4 key (16 bytes)"))
    }

    /// Encrypts `buffer` in place under `nonce` and `aad`; returns the tag.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; SM4_GCM_NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; SM4_GCM_TAG_LEN], NationalError> {
        let tag = self
            .0
            .encrypt_inout_detached(&(*nonce).into(), aad, buffer.into())
            .map_err(|_| NationalError::Length("an SM4-GCM message"))?;
        Ok(tag.into())
    }

    /// Decrypts `buffer` in place if `tag` authenticates it under `nonce` and `aad`; on failure
    /// `buffer` is left as it was.
    pub fn open_in_place(
        &self,
        nonce: &[u8; SM4_GCM_NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8],
    ) -> Result<(), NationalError> {
        let tag: [u8; SM4_GCM_TAG_LEN] = tag
            .try_into()
            .map_err(|_| NationalError::Length("an SM4-GCM tag (16 bytes)"))?;
        self.0
            .decrypt_inout_detached(&(*nonce).into(), aad, buffer.into(), &tag.into())
            .map_err(|_| NationalError::Authentication)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! Known answers from the standards: SM3 (GB/T 32905-2016 appendix A), SM4 (GB/T 32907-2016
    //! appendix A, both examples), SM2 signature and encryption on the recommended curve (the
    //! examples of GB/T 32918.5 / GM/T 0003.5, private key `3945208F…`, random `k = 59276E27…`),
    //! SM4-GCM (RFC 8998 appendix A.1).

    use super::*;
    use sm2::elliptic_curve::Group;
    use sm2::elliptic_curve::ff::PrimeField;
    use sm2::elliptic_curve::ops::Reduce;
    use sm2::elliptic_curve::point::AffineCoordinates;
    use sm2::{FieldBytes, ProjectivePoint, Scalar};
    use sm4::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt};

    fn unhex(text: &str) -> Vec<u8> {
        hex::decode(text.replace([' ', '\n'], "")).unwrap()
    }

    const D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
    const PUBLIC: &str = "04 09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
        CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
    const K: &str = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21";

    fn example_pair() -> Sm2KeyPair {
        let secret = SecretKey::from_slice(&unhex(D)).unwrap();
        Sm2KeyPair::from_secret(&secret).unwrap()
    }

    #[test]
    fn sm3_matches_gb_t_32905_examples() {
        assert_eq!(
            hex::encode(sm3(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(sm3("abcd".repeat(16).as_bytes())),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn sm4_matches_gb_t_32907_examples_including_a_million_rounds() {
        use sm4::cipher::KeyInit as _;
        let key = unhex("0123456789ABCDEFFEDCBA9876543210");
        let cipher = Sm4::new_from_slice(&key).unwrap();
        let mut block = Array::try_from(key.as_slice()).unwrap();
        cipher.encrypt_block(&mut block);
        assert_eq!(hex::encode(block), "681edf34d206965e86b3e94f536e4246");
        cipher.decrypt_block(&mut block);
        assert_eq!(block.as_slice(), key.as_slice());
        for _ in 0..1_000_000 {
            cipher.encrypt_block(&mut block);
        }
        assert_eq!(hex::encode(block), "595298c7c6fd271f0402f804c33d3f66");
    }

    #[test]
    fn sm4_gcm_matches_rfc_8998() {
        let key = Sm4Gcm::new(&unhex("0123456789ABCDEFFEDCBA9876543210")).unwrap();
        let nonce: [u8; 12] = unhex("00001234567800000000ABCD").try_into().unwrap();
        let aad = unhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
        let plaintext = unhex(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFF EEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        );
        let ciphertext = unhex(
            "17F399F08C67D5EE19D0DC9969C4BB7D 5FD46FD3756489069157B282BB200735
             D82710CA5C22F0CCFA7CBF93D496AC15 A56834CBCF98C397B4024A2691233B8D",
        );
        let tag = unhex("83DE3541E4C2B58177E065A9BF7B62EC");
        let mut buffer = plaintext.clone();
        assert_eq!(
            key.seal_in_place(&nonce, &aad, &mut buffer)
                .unwrap()
                .to_vec(),
            tag
        );
        assert_eq!(buffer, ciphertext);
        key.open_in_place(&nonce, &aad, &mut buffer, &tag).unwrap();
        assert_eq!(buffer, plaintext);

        // A flipped tag byte, a flipped ciphertext byte, other AAD: refused, buffer untouched.
        let mut bad_tag = tag.clone();
        bad_tag[15] ^= 1;
        let mut buffer = ciphertext.clone();
        for (aad, tag) in [(&aad[..], &bad_tag[..]), (b"other", &tag[..])] {
            assert_eq!(
                key.open_in_place(&nonce, aad, &mut buffer, tag),
                Err(NationalError::Authentication)
            );
            assert_eq!(buffer, ciphertext);
        }
        buffer[0] ^= 1;
        assert_eq!(
            key.open_in_place(&nonce, &aad, &mut buffer, &tag),
            Err(NationalError::Authentication)
        );
        assert!(Sm4Gcm::new(&[0u8; 32]).is_err());
    }

    #[test]
    fn sm2_signature_matches_the_standard_example() {
        let pair = example_pair();
        assert_eq!(pair.public_key(), unhex(PUBLIC));
        let message = b"message digest";
        let r = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
        let s = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";

        // The signing equations with the standard's k give its (r, s): our Z_A and e are the
        // standard's.
        let e = sm3(&[&z_a(&unhex(PUBLIC))[..], message].concat());
        let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(e));
        let scalar = |text: &str| {
            let bytes: [u8; 32] = unhex(text).try_into().unwrap();
            Scalar::from_repr(bytes.into()).unwrap()
        };
        let (d, k) = (scalar(D), scalar(K));
        let x1 = (ProjectivePoint::generator() * k).to_affine().x();
        let r_computed = e + <Scalar as Reduce<FieldBytes>>::reduce(&x1);
        let s_computed = (d + Scalar::ONE).invert().unwrap() * (k - r_computed * d);
        assert_eq!(r_computed, scalar(r));
        assert_eq!(s_computed, scalar(s));

        // The standard's signature verifies with our verifier; one changed bit does not.
        let der = sm2::dsa::Signature::from_scalars(scalar(r), scalar(s))
            .unwrap()
            .to_der()
            .to_vec();
        let public = unhex(PUBLIC);
        assert_eq!(sm2_verify(&public, message, &der), Ok(true));
        assert_eq!(sm2_verify(&public, b"message digesT", &der), Ok(false));

        // Our own signatures verify, under the default ID only.
        let signature = pair.sign(message).unwrap();
        assert_eq!(sm2_verify(&public, message, &signature), Ok(true));
        let other_id =
            sm2::dsa::VerifyingKey::new("ALICE123@YAHOO.COM", public_key(&public).unwrap())
                .unwrap();
        let parsed = sm2::dsa::Signature::from_der(&signature).unwrap();
        use sm2::dsa::signature::Verifier;
        assert!(other_id.verify(message, &parsed).is_err());
    }

    #[test]
    fn the_fast_verifier_agrees_with_the_sm2_crate() {
        use sm2::dsa::signature::Verifier;
        let pair = Sm2KeyPair::from_pkcs8(&sm2_generate().unwrap()).unwrap();
        let reference =
            sm2::dsa::VerifyingKey::new(DEFAULT_ID, public_key(pair.public_key()).unwrap())
                .unwrap();
        for round in 0u8..40 {
            let message = [round; 20];
            let mut signature = pair.sign(&message).unwrap();
            if round % 2 == 1 {
                // Alter one byte of r or s (past the DER headers).
                let at = 5 + usize::from(round) % (signature.len() - 5);
                signature[at] ^= 0x10;
            }
            let ours = sm2_verify(pair.public_key(), &message, &signature);
            let theirs = sm2::dsa::Signature::from_der(&signature)
                .map(|parsed| reference.verify(&message, &parsed).is_ok());
            match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "round {round}"),
                (Err(_), Err(_)) => {}
                other => panic!("round {round}: {other:?}"),
            }
            if round % 2 == 0 {
                assert_eq!(
                    sm2_verify(pair.public_key(), &message, &signature),
                    Ok(true)
                );
            }
        }
    }

    /// A random source that yields `k` once: reproduces the standard's encryption example.
    struct FixedK(Vec<u8>);

    impl sm2::elliptic_curve::rand_core::TryRng for FixedK {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            unreachable!("k is drawn as bytes")
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            unreachable!("k is drawn as bytes")
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
            let take: Vec<u8> = self.0.drain(..dest.len()).collect();
            dest.copy_from_slice(&take);
            Ok(())
        }
    }

    impl sm2::elliptic_curve::rand_core::TryCryptoRng for FixedK {}

    #[test]
    fn sm2_encryption_matches_the_standard_example() {
        let pair = example_pair();
        let message = b"encryption standard";
        // C1 (x, y), C3 = SM3(x2 || M || y2), C2, in the raw C1C3C2 order.
        let expected = unhex(
            "04 04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73
                E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0
                59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766
                21886CA989CA9C7D58087307CA93092D651EFA",
        );
        let key = EncryptingKey::new_with_mode(public_key(&unhex(PUBLIC)).unwrap(), Mode::C1C3C2);
        let raw = key.encrypt(&mut FixedK(unhex(K)), message).unwrap();
        assert_eq!(raw, expected);

        // The same ciphertext in the DER form of GM/T 0009 decrypts to the message.
        let der = key.encrypt_der(&mut FixedK(unhex(K)), message).unwrap();
        assert_eq!(&*pair.decrypt(&der).unwrap(), message);

        // A round trip with a random k; any flipped byte is refused.
        let ciphertext = sm2_encrypt(pair.public_key(), message).unwrap();
        assert_eq!(&*pair.decrypt(&ciphertext).unwrap(), message);
        for at in [4, ciphertext.len() / 2, ciphertext.len() - 1] {
            let mut altered = ciphertext.clone();
            altered[at] ^= 1;
            assert!(pair.decrypt(&altered).is_err(), "byte {at}");
        }
        assert_eq!(
            pair.decrypt(&ciphertext[..20]).err(),
            Some(NationalError::Decrypt)
        );
        assert_eq!(
            sm2_encrypt(pair.public_key(), b""),
            Err(NationalError::EmptyPlaintext)
        );
    }

    #[test]
    fn envelopes_open_only_for_their_recipient_and_only_whole() {
        let recipient = Sm2KeyPair::from_pkcs8(&sm2_generate().unwrap()).unwrap();
        let enclosed = Sm2KeyPair::from_pkcs8(&sm2_generate().unwrap()).unwrap();
        let envelope = sm2_envelope(recipient.public_key(), &enclosed).unwrap();
        let opened = sm2_open_envelope(&recipient, &envelope).unwrap();
        assert_eq!(opened.public_key(), enclosed.public_key());
        assert_eq!(*opened.to_pkcs8().unwrap(), *enclosed.to_pkcs8().unwrap());
        // The structure of GB/T 35276 §7.4, as openssl's parser sees it.
        let (_, parts) = parse_envelope_for_test(&envelope);
        assert_eq!(parts, ["SEQUENCE", "SEQUENCE", "BIT STRING", "BIT STRING"]);

        let stranger = Sm2KeyPair::from_pkcs8(&sm2_generate().unwrap()).unwrap();
        assert_eq!(
            sm2_open_envelope(&stranger, &envelope).err(),
            Some(NationalError::Decrypt)
        );
        // Every single flipped byte is refused (the private key under ECB is checked against the
        // enclosed public key); so is every truncation.
        for at in 0..envelope.len() {
            let mut altered = envelope.clone();
            altered[at] ^= 0x01;
            assert!(
                sm2_open_envelope(&recipient, &altered).is_err(),
                "byte {at}"
            );
        }
        for len in [0, 10, envelope.len() / 2, envelope.len() - 1] {
            assert!(
                sm2_open_envelope(&recipient, &envelope[..len]).is_err(),
                "length {len}"
            );
        }
    }

    /// The outer SEQUENCE's length and the kinds of its four elements.
    fn parse_envelope_for_test(der: &[u8]) -> (usize, Vec<&'static str>) {
        use der::{Decode, Reader, SliceReader, Tag, Tagged};
        let mut reader = SliceReader::new(der).unwrap();
        let outer = der::asn1::Any::decode(&mut reader).unwrap();
        let mut inner = SliceReader::new(outer.value()).unwrap();
        let mut kinds = Vec::new();
        while !inner.is_finished() {
            let any = der::asn1::Any::decode(&mut inner).unwrap();
            kinds.push(match any.tag() {
                Tag::Sequence => "SEQUENCE",
                Tag::BitString => "BIT STRING",
                _ => "other",
            });
        }
        (outer.value().len(), kinds)
    }

    #[test]
    fn keys_round_trip_and_bad_keys_are_named() {
        let der = sm2_generate().unwrap();
        let pair = Sm2KeyPair::from_pkcs8(&der).unwrap();
        let signature = pair.sign(b"data").unwrap();
        assert_eq!(sm2_verify(pair.public_key(), b"data", &signature), Ok(true));

        // A point off the curve, a compressed point, a truncated key, garbage PKCS#8.
        let mut off_curve = pair.public_key().to_vec();
        off_curve[64] ^= 1;
        assert_eq!(
            sm2_verify(&off_curve, b"data", &signature),
            Err(NationalError::PublicKey)
        );
        assert_eq!(
            sm2_check_public_key(&off_curve),
            Err(NationalError::PublicKey)
        );
        assert_eq!(
            sm2_check_public_key(&pair.public_key()[..33]),
            Err(NationalError::PublicKey)
        );
        assert!(Sm2KeyPair::from_pkcs8(b"not a key").is_err());
        assert_eq!(
            sm2_verify(pair.public_key(), b"data", b"\x30\x02\x05\x00"),
            Err(NationalError::SignatureEncoding)
        );
    }
}
