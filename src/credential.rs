//! A key and its certificate in one directory, replaced as a pair: a credential directory
//! (`key.pem`, `cert.pem`) renewed by `govtrust renew`, and the server's own TLS credential
//! (`tls/server.key`, `tls/server.pem`) renewed by the server.
//!
//! Renewal writes `<key>.new` then `<cert>.new`, then renames the key and then the certificate
//! into place. Whatever moment a crash picks, [`Pair::recover`] restores a matching pair: if
//! the new certificate exists both new files were complete, so the swap is finished; a lone
//! new key means the certificate never arrived, so it is dropped. Both hold an exclusive lock
//! on `.lock` in the directory, so a reader never mistakes a renewal in progress for a crashed
//! one.
//!
//! Other programs that read the files directly (a system's own TLS server) may see the new key
//! with the old certificate for the moment between the two renames; they should reload on
//! failure, or read the pair after `govtrust renew` has returned.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::files::{write_public, write_secret};

/// The files of a key and its certificate in one directory.
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    pub dir: &'a Path,
    pub key: &'a str,
    pub cert: &'a str,
}

/// A credential directory: `key.pem` and `cert.pem`.
pub fn directory(dir: &Path) -> Pair<'_> {
    Pair {
        dir,
        key: "key.pem",
        cert: "cert.pem",
    }
}

/// Replaces the key and certificate in `dir` as a pair.
pub fn replace(dir: &Path, key_pem: &str, cert_pem: &str) -> anyhow::Result<()> {
    directory(dir).replace(key_pem, cert_pem)
}

/// Finishes or undoes a replacement a crash interrupted in `dir`.
pub fn recover(dir: &Path) -> anyhow::Result<()> {
    directory(dir).recover()
}

impl Pair<'_> {
    fn paths(&self) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
        let new = |name: &str| self.dir.join(format!("{name}.new"));
        (
            self.dir.join(self.key),
            self.dir.join(self.cert),
            new(self.key),
            new(self.cert),
        )
    }

    /// Replaces the key and the certificate as a pair.
    pub fn replace(&self, key_pem: &str, cert_pem: &str) -> anyhow::Result<()> {
        let _lock = lock(self.dir)?;
        let (key, cert, new_key, new_cert) = self.paths();
        write_secret(&new_key, key_pem)?;
        write_public(&new_cert, cert_pem)?;
        rename(&new_key, &key)?;
        rename(&new_cert, &cert)
    }

    /// Finishes or undoes a replacement a crash interrupted.
    pub fn recover(&self) -> anyhow::Result<()> {
        let (key, cert, new_key, new_cert) = self.paths();
        if !new_key.exists() && !new_cert.exists() {
            return Ok(());
        }
        let _lock = lock(self.dir)?;
        if new_cert.exists() {
            if new_key.exists() {
                rename(&new_key, &key)?;
            }
            return rename(&new_cert, &cert);
        }
        if new_key.exists() {
            fs::remove_file(&new_key)
                .with_context(|| format!("cannot remove {}", new_key.display()))?;
        }
        Ok(())
    }
}

/// An exclusive lock on the credential directory, released when the file is dropped.
fn lock(dir: &Path) -> anyhow::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(".lock");
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::rename(from, to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    if let Some(dir) = to.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pair(dir: &Path) -> (String, String) {
        (
            fs::read_to_string(dir.join("key.pem")).unwrap(),
            fs::read_to_string(dir.join("cert.pem")).unwrap(),
        )
    }

    fn old_pair(dir: &Path) {
        fs::write(dir.join("key.pem"), "old key").unwrap();
        fs::write(dir.join("cert.pem"), "old cert").unwrap();
    }

    #[test]
    fn replace_swaps_the_pair() {
        let dir = tempfile::tempdir().unwrap();
        old_pair(dir.path());
        replace(dir.path(), "new key", "new cert").unwrap();
        assert_eq!(pair(dir.path()), ("new key".into(), "new cert".into()));
        assert!(!dir.path().join("key.pem.new").exists());
    }

    #[test]
    fn a_crash_after_the_key_moved_is_rolled_forward() {
        let dir = tempfile::tempdir().unwrap();
        old_pair(dir.path());
        fs::write(dir.path().join("key.pem"), "new key").unwrap();
        fs::write(dir.path().join("cert.pem.new"), "new cert").unwrap();
        recover(dir.path()).unwrap();
        assert_eq!(pair(dir.path()), ("new key".into(), "new cert".into()));
    }

    #[test]
    fn a_crash_before_any_move_with_both_new_files_is_rolled_forward() {
        let dir = tempfile::tempdir().unwrap();
        old_pair(dir.path());
        fs::write(dir.path().join("key.pem.new"), "new key").unwrap();
        fs::write(dir.path().join("cert.pem.new"), "new cert").unwrap();
        recover(dir.path()).unwrap();
        assert_eq!(pair(dir.path()), ("new key".into(), "new cert".into()));
    }

    #[test]
    fn a_lone_new_key_is_dropped_and_the_old_pair_kept() {
        let dir = tempfile::tempdir().unwrap();
        old_pair(dir.path());
        fs::write(dir.path().join("key.pem.new"), "new key").unwrap();
        recover(dir.path()).unwrap();
        assert_eq!(pair(dir.path()), ("old key".into(), "old cert".into()));
        assert!(!dir.path().join("key.pem.new").exists());
    }
}
