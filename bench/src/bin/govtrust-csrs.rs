//! `govtrust-csrs`: pre-generates P-256 key pairs and CSRs, once, for the comparisons of
//! `bench/compare.sh`, so every peer signs the same requests and no load generator spends
//! its CPU making keys.
//!
//! Writes into `--out DIR`:
//! - `csrs.pem`: the CSRs (PEM, one block each, empty subject: govtrust takes the identity
//!   from the enrollment token, and a common name would have to be the system's name);
//! - `keys.pem`: their private keys (PKCS#8 PEM), in the same order;
//! - `cfssl-sign.jsonl`: one `cfssl serve` sign request body (`{"certificate_request": PEM}`)
//!   per line, for wrk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

/// Pre-generates P-256 key pairs and CSRs for the benchmarks.
#[derive(Debug, Parser)]
#[command(name = "govtrust-csrs", version, about)]
struct Args {
    /// How many key pairs and CSRs.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    count: u32,
    /// Directory to write csrs.pem, keys.pem and cfssl-sign.jsonl into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut csrs = create(&args, "csrs.pem")?;
    let mut keys = create(&args, "keys.pem")?;
    let mut cfssl = create(&args, "cfssl-sign.jsonl")?;
    for _ in 0..args.count {
        let (key_pem, csr_pem) = keyed_csr()?;
        csrs.write_all(csr_pem.as_bytes())?;
        keys.write_all(key_pem.as_bytes())?;
        let body = serde_json::json!({ "certificate_request": csr_pem });
        writeln!(cfssl, "{body}")?;
    }
    for mut file in [csrs, keys, cfssl] {
        file.flush()?;
    }
    println!("{} CSRs in {}", args.count, args.out.display());
    Ok(())
}

fn create(args: &Args, name: &str) -> anyhow::Result<BufWriter<File>> {
    let path = args.out.join(name);
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::new(file))
}

/// A new P-256 key (PKCS#8 PEM) and a CSR (PEM) for it with an empty subject.
fn keyed_csr() -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}
