//! Files the binary writes: PEMs and share files with the right modes, credential
//! directories, and owner-only directories, each written durably (synced, then renamed into
//! place) and, where asked, never over an existing file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use govtrust_ca::Credential;
use govtrust_kms::ShareFile;

/// Creates `dir` (and parents) readable by the owner only, durably.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let missing = missing_ancestors(dir);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    sync_parents(&missing)
}

/// `dir` and those of its ancestors that do not exist yet, deepest first.
fn missing_ancestors(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// Makes newly created directories durable: syncs the parent of each.
fn sync_parents(created: &[PathBuf]) -> anyhow::Result<()> {
    for dir in created {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Refuses a directory that holds anything.
pub fn ensure_empty(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: refusing to initialise over existing files",
            dir.display()
        );
    }
    Ok(())
}

/// Writes a credential directory: `cert.pem` (leaf and issuing CA), `ca.pem`, and `key.pem`
/// when the credential has its key.
pub fn write_credential(dir: &Path, credential: &Credential, root_pem: &str) -> anyhow::Result<()> {
    write_public(&dir.join("cert.pem"), &credential.certificate_pem)?;
    if let Some(key) = &credential.private_key_pem {
        write_secret(&dir.join("key.pem"), key)?;
    }
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
