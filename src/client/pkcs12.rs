//! `govtrust cert export --pkcs12`: a certificate, its key and its chain in one PKCS#12 file
//! for a browser or a USB key, made here (no server is asked).
//!
//! The file is what browsers and `openssl pkcs12` read today: PBES2 (PBKDF2-HMAC-SHA256,
//! AES-256-CBC) over the key and the certificates, an HMAC-SHA256 MAC, 100,000 iterations
//! each (the `p12-keystore` crate). The password comes from a file or an environment
//! variable, never from the command line, and is held in a zeroizing buffer.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use zeroize::Zeroizing;

use super::text::print_json;
use crate::files::{Replace, write_file};

/// Key-derivation and MAC iterations.
const ITERATIONS: u32 = 100_000;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write PKCS#12 (the only format so far).
    #[arg(long, required = true)]
    pkcs12: bool,
    /// The certificate (PEM); further certificates in it are taken as its chain.
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PKCS#8 PEM, as `enroll` and `person enroll` write it).
    #[arg(long)]
    key: PathBuf,
    /// The issuing CA and root (PEM), e.g. chain.pem of a credential directory.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// The file to write (mode 0600; an existing file is not replaced).
    #[arg(long)]
    out: PathBuf,
    /// A file holding the password that protects the export (its first line).
    #[arg(long, env = "GOVTRUST_PKCS12_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Writes the PKCS#12 file `args` describe.
pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let password = password(args.password_file.as_deref())?;
    let mut certificates = certificates(&args.cert)?;
    if let Some(chain) = &args.chain {
        certificates.extend(certificates_of(chain)?);
    }
    let key = private_key(&args.key)?;
    let file = pkcs12(key, certificates, &password)?;
    write_file(&args.out, &file, 0o600, Replace::Never)?;
    if args.json {
        print_json(&serde_json::json!({ "pkcs12": args.out.display().to_string() }));
    } else {
        outln!("PKCS#12 written to {}", args.out.display());
    }
    Ok(())
}

/// The password: the first line of `file`, else `GOVTRUST_PKCS12_PASSWORD`.
fn password(file: Option<&Path>) -> anyhow::Result<Zeroizing<String>> {
    let text = match file {
        Some(file) => Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?,
        ),
        None => Zeroizing::new(std::env::var("GOVTRUST_PKCS12_PASSWORD").map_err(|_| {
            anyhow::anyhow!("give --password-file FILE (or GOVTRUST_PKCS12_PASSWORD)")
        })?),
    };
    let line = Zeroizing::new(text.lines().next().unwrap_or_default().to_owned());
    if line.is_empty() {
        bail!("the PKCS#12 password is empty");
    }
    Ok(line)
}

/// The certificate in `path` and any after it.
fn certificates(path: &Path) -> anyhow::Result<Vec<Certificate>> {
    let found = certificates_of(path)?;
    if found.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(found)
}

fn certificates_of(path: &Path) -> anyhow::Result<Vec<Certificate>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut found = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(&pem) {
        let block = block.with_context(|| format!("{} is not PEM", path.display()))?;
        if block.label == "CERTIFICATE" {
            let certificate = Certificate::from_der(&block.contents)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            found.push(certificate);
        }
    }
    Ok(found)
}

/// The PKCS#8 private key in `path`.
fn private_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let pem = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|_| anyhow::anyhow!("{} is not PEM", path.display()))?;
    if block.label != "PRIVATE KEY" {
        bail!(
            "{} holds a {:?}, not a PKCS#8 PRIVATE KEY (convert it with `openssl pkcs8 -topk8 \
             -nocrypt`)",
            path.display(),
            block.label
        );
    }
    let der = Zeroizing::new(block.contents);
    PrivateKey::from_der(&der).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The PKCS#12 file of `key` and `certificates` (the key's certificate first).
fn pkcs12(
    key: PrivateKey,
    certificates: Vec<Certificate>,
    password: &str,
) -> anyhow::Result<Vec<u8>> {
    let first = certificates.first().context("no certificate")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, first.as_der());
    let local_key_id = digest.as_ref().get(..20).unwrap_or_default().to_vec();
    let chain = PrivateKeyChain::new(local_key_id, key, certificates);
    let mut store = KeyStore::new();
    store.add_entry("govtrust", KeyStoreEntry::PrivateKeyChain(chain));
    let file = store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| anyhow::anyhow!("cannot write PKCS#12: {e}"))?;
    Ok(file)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_pkcs12_file_reads_back_with_its_password_only() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let private = PrivateKey::from_der(&key.serialize_der()).unwrap();
        let certificate = Certificate::from_der(cert.der()).unwrap();
        let file = pkcs12(private, vec![certificate], "s3cret").unwrap();
        let policy = p12_keystore::Pkcs12ImportPolicy::Relaxed;
        let store = KeyStore::from_pkcs12(&file, "s3cret", policy).unwrap();
        let (_, chain) = store.private_key_chain().unwrap();
        assert_eq!(chain.key().as_der(), key.serialize_der());
        assert!(KeyStore::from_pkcs12(&file, "wrong", policy).is_err());
    }
}
