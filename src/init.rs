//! `govtrust init`: creates a deployment.
//!
//! Generates the master key and its custodian shares (the master key itself is never written),
//! unseals in memory with the first M shares to create the CA hierarchy in the key-management
//! centre, and writes the public CA files, the server's TLS credential and one credential per
//! administrator role.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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
///
/// Nothing is left half-made: if any step fails, what this command wrote is removed again (a
/// deployment whose shares were not all written could never be unsealed).
pub fn run(args: &InitArgs) -> anyhow::Result<Vec<ShareFile>> {
    let layout = Layout::new(&args.data);
    check(args)?;
    let shares = create_complete(&layout, args)?;
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

/// Creates the deployment and writes its shares to `args.shares_out`; marks the deployment
/// complete last. Both directories must be empty or absent and apart from each other. On
/// failure removes what it wrote, and nothing else: a directory that existed stays.
pub fn create_complete(layout: &Layout, args: &InitArgs) -> anyhow::Result<Vec<ShareFile>> {
    // Dev mode alone keeps its shares inside the data directory, and says so loudly.
    if args.shares_out != layout.dev_unseal() {
        ensure_apart(layout.root(), &args.shares_out)?;
    }
    let data = Claimed::new(layout.root())?;
    let shares_dir = Claimed::new(&args.shares_out).inspect_err(|_| data.undo())?;
    create(layout, args)
        .and_then(|shares| write_shares(&args.shares_out, &shares).map(|()| shares))
        .and_then(|shares| {
            write_public(&layout.complete_marker(), "initialised\n").map(|()| shares)
        })
        .inspect_err(|_| {
            data.undo();
            shares_dir.undo();
        })
}

/// The shares must not be written into the data directory (every backup of it would carry the
/// master key), nor the other way round.
fn ensure_apart(data: &Path, shares: &Path) -> anyhow::Result<()> {
    let (data_abs, shares_abs) = (std::path::absolute(data)?, std::path::absolute(shares)?);
    if data_abs.starts_with(&shares_abs) || shares_abs.starts_with(&data_abs) {
        bail!(
            "--shares-out {} and --data {} overlap: keep the custodians' shares out of the data directory",
            shares.display(),
            data.display()
        );
    }
    Ok(())
}

/// An empty directory this command writes into, and whether it existed before.
struct Claimed<'a> {
    dir: &'a Path,
    existed: bool,
}

impl<'a> Claimed<'a> {
    /// Claims `dir`: it must be empty or absent; an absent one is created owner-only.
    fn new(dir: &'a Path) -> anyhow::Result<Self> {
        ensure_empty(dir)?;
        let existed = dir.exists();
        if !existed {
            create_private_dir(dir)?;
        }
        Ok(Self { dir, existed })
    }

    /// Removes what was written: the directory if this command made it, else its contents
    /// (it was empty when claimed).
    fn undo(&self) {
        if !self.existed {
            let _ = fs::remove_dir_all(self.dir);
            return;
        }
        for entry in fs::read_dir(self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// Refuses impossible settings before anything touches the disk.
fn check(args: &InitArgs) -> anyhow::Result<()> {
    if !(2..=16).contains(&args.shares) || !(2..=args.shares).contains(&args.threshold) {
        bail!(
            "--threshold {} of --shares {}: need 2 <= threshold <= shares <= 16",
            args.threshold,
            args.shares
        );
    }
    if args.server_names.is_empty() && args.server_ips.is_empty() {
        bail!("give the server at least one --server-name or --server-ip");
    }
    Ok(())
}

/// Creates the deployment in `layout` (a claimed, empty directory) and returns the shares
/// without writing them.
fn create(layout: &Layout, args: &InitArgs) -> anyhow::Result<Vec<ShareFile>> {
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&layout.database())?);
    fs::set_permissions(layout.database(), fs::Permissions::from_mode(0o600))?;
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

/// Creates `dir` (and parents) readable by the owner only, durably.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let missing = missing_ancestors(dir);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    sync_parents(&missing)
}

/// `dir` and those of its ancestors that do not exist yet, deepest first.
fn missing_ancestors(dir: &Path) -> Vec<std::path::PathBuf> {
    dir.ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// Makes newly created directories durable: syncs the parent of each.
fn sync_parents(created: &[std::path::PathBuf]) -> anyhow::Result<()> {
    for dir in created {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn ensure_empty(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: refusing to initialise over existing files",
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
        let path = dir.join(format!("share-{}.txt", share.index));
        write_file(&path, share.contents.as_bytes(), 0o600, Replace::Never)?;
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
    write_file(path, contents.as_bytes(), 0o644, Replace::Atomically)
}

/// Writes a secret file readable by the owner only, replacing it atomically.
pub fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_file(path, contents.as_bytes(), 0o600, Replace::Atomically)
}

/// Whether a write may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    Atomically,
    Never,
}

/// Writes `contents` to a fresh temporary file in the target's directory (created exclusively,
/// with `mode` from the start, so no planted file or symlink is followed), syncs it, renames it
/// into place and syncs the directory.
pub fn write_file(path: &Path, contents: &[u8], mode: u32, replace: Replace) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = tempfile::Builder::new()
        .prefix(".govtrust-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    match replace {
        Replace::Atomically => file.persist(path).map(drop),
        Replace::Never => file.persist_noclobber(path).map(drop),
    }
    .with_context(|| format!("cannot write {}", path.display()))?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}
