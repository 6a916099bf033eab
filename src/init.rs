//! `govtrust init`: creates a deployment.
//!
//! Generates the master key and its custodian shares (the master key itself is never written),
//! unseals in memory with the first M shares to create the CA hierarchy in the key-management
//! centre, and writes the public CA files, the server's TLS credential and one credential per
//! administrator role.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use govtrust_audit::AuditLog;
use govtrust_ca::{Ca, Credential, InitArtifacts, InitParams};
use govtrust_kms::{Kms, ShareFile, SystemClock};
use govtrust_store::{RedbStore, Store};

use crate::cli::InitArgs;
use crate::layout::Layout;

/// Creates the deployment described by `args`; returns the shares it wrote.
pub fn run(args: &InitArgs) -> anyhow::Result<Vec<ShareFile>> {
    let layout = Layout::new(&args.data);
    let shares = create(&layout, args)?;
    write_shares(&args.shares_out, &shares)?;
    println!("Initialised deployment in {}", layout.root().display());
    println!(
        "Wrote {} custodian shares to {} ({} needed to unseal): hand one to each custodian, then delete them here.",
        shares.len(),
        args.shares_out.display(),
        args.threshold
    );
    print_credentials(&layout);
    Ok(shares)
}

/// Creates the deployment in `layout` and returns the shares without writing them.
pub fn create(layout: &Layout, args: &InitArgs) -> anyhow::Result<Vec<ShareFile>> {
    ensure_empty(layout.root())?;
    fs::create_dir_all(layout.root()).context("cannot create the data directory")?;
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&layout.database())?);
    let audit = Arc::new(AuditLog::new(store.clone()));
    let clock = Arc::new(SystemClock);
    let shares = Kms::initialize(
        store.as_ref(),
        audit.as_ref(),
        clock.as_ref(),
        args.threshold,
        args.shares,
    )?;
    let kms = Arc::new(Kms::open(store.clone(), audit.clone(), clock.clone())?);
    for share in shares.iter().take(usize::from(args.threshold)) {
        kms.unseal(share.contents.as_bytes())?;
    }
    let params = InitParams {
        trust_domain: args.trust_domain.clone(),
        server_dns_names: args.server_names.clone(),
        server_ips: args.server_ips.clone(),
    };
    let (_, artifacts) = Ca::initialize(store, kms, audit, clock, &params)?;
    write_artifacts(layout, &artifacts)?;
    Ok(shares)
}

fn ensure_empty(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: refusing to initialise over an existing deployment",
            dir.display()
        );
    }
    Ok(())
}

fn write_artifacts(layout: &Layout, artifacts: &InitArtifacts) -> anyhow::Result<()> {
    let chain = &artifacts.chain;
    write_public(&layout.root_certificate(), &chain.root_pem)?;
    let bundle = format!(
        "{}{}{}",
        chain.root_pem, chain.extranet_pem, chain.intranet_pem
    );
    write_public(&layout.ca_bundle(), &bundle)?;
    write_public(
        &layout.server_certificate(),
        &artifacts.server.certificate_pem,
    )?;
    write_secret(&layout.server_key(), &artifacts.server.private_key_pem)?;
    for (role, credential) in &artifacts.admins {
        write_credential(
            &layout.admin(&role.to_string()),
            credential,
            &chain.root_pem,
        )?;
    }
    Ok(())
}

/// Writes a credential directory: `cert.pem` (leaf and issuing CA), `key.pem`, `ca.pem`.
pub fn write_credential(dir: &Path, credential: &Credential, root_pem: &str) -> anyhow::Result<()> {
    write_public(&dir.join("cert.pem"), &credential.certificate_pem)?;
    write_secret(&dir.join("key.pem"), &credential.private_key_pem)?;
    write_public(&dir.join("ca.pem"), root_pem)
}

/// Writes one file per share, readable by the owner only.
pub fn write_shares(dir: &Path, shares: &[ShareFile]) -> anyhow::Result<()> {
    for share in shares {
        write_secret(
            &dir.join(format!("share-{}.txt", share.index)),
            &share.contents,
        )?;
    }
    Ok(())
}

fn print_credentials(layout: &Layout) {
    println!("CA bundle:        {}", layout.ca_bundle().display());
    println!("Root certificate: {}", layout.root_certificate().display());
    for role in ["system-admin", "security-admin", "audit-admin"] {
        println!("{role:<17} {}", layout.admin(role).display());
    }
}

/// Writes a public file (certificates), replacing it atomically.
pub fn write_public(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_atomically(path, contents.as_bytes(), 0o644)
}

/// Writes a secret file readable by the owner only, replacing it atomically.
pub fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_atomically(path, contents.as_bytes(), 0o600)
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .context("a file path has a parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let temporary = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
