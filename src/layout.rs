//! Where a deployment keeps its files inside the data directory.

use std::path::{Path, PathBuf};

/// The files of one deployment.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    tls: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let tls = root.join("tls");
        Self { root, tls }
    }

    /// The server's TLS credential directory: `server.key` and `server.pem`.
    pub fn tls_dir(&self) -> &Path {
        &self.tls
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The redb database: key records (sealed), certificates, registry, audit log.
    pub fn database(&self) -> PathBuf {
        self.root.join("govtrust.redb")
    }

    /// The server's TLS certificate chain (PEM).
    pub fn server_certificate(&self) -> PathBuf {
        self.tls.join("server.pem")
    }

    /// The server's TLS private key (PEM, mode 0600). Not a CA key: the server must present TLS
    /// while the key-management centre is still sealed.
    pub fn server_key(&self) -> PathBuf {
        self.tls.join("server.key")
    }

    /// The root CA certificate, the trust anchor clients pin.
    pub fn root_certificate(&self) -> PathBuf {
        self.root.join("ca").join("root.pem")
    }

    /// Root and both issuing CAs, PEM.
    pub fn ca_bundle(&self) -> PathBuf {
        self.root.join("ca").join("bundle.pem")
    }

    /// The credential directory of one administrator role inside the data directory: dev mode
    /// only (production `init` writes administrator keys to `--admin-out`; here it puts at most
    /// the certificate of a role that brought a CSR, when there is no `--admin-out`).
    pub fn admin(&self, role: &str) -> PathBuf {
        self.root.join("admin").join(role)
    }

    /// Written last by `init`: a deployment without it was interrupted while being created.
    pub fn complete_marker(&self) -> PathBuf {
        self.root.join("initialised")
    }

    /// Dev mode only: the shares that auto-unseal the server. Never in production.
    pub fn dev_unseal(&self) -> PathBuf {
        self.root.join("dev-unseal")
    }
}
