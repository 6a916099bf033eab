//! `govtrust init`: creates a deployment.
//!
//! Generates the master key and its custodian shares (the master key itself is never written),
//! unseals in memory with the first M shares to create the CA hierarchy in the key-management
//! centre, and writes the public CA files, the server's TLS credential and one credential per
//! administrator role.
//!
//! Nothing secret that belongs to a person is written into the data directory, which the
//! service account reads and every backup copies: the shares go to `--shares-out`, the
//! administrators' credentials to `--admin-out` (each role's key generated here), or a role
//! brings a certificate signing request (`--admin-csr ROLE=FILE`) and gets only its
//! certificate. Only `serve --dev` keeps both inside the data directory, and says so.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use govtrust_audit::AuditLog;
use govtrust_ca::{Ca, InitArtifacts, InitParams, Role};
use govtrust_kms::{Kms, ShareFile, SystemClock};
use govtrust_store::{RedbStore, Store};

use crate::files::{self, write_public, write_secret};
use crate::layout::Layout;

/// Largest certificate signing request file read.
const MAX_CSR_FILE: u64 = 64 * 1024;

/// What to create: the settings of `govtrust init`, or those `serve --dev` chooses.
#[derive(Debug, Clone)]
pub struct Options {
    /// Data directory to create (must be empty or absent).
    pub data: PathBuf,
    /// Where the custodians' share files go, one per custodian.
    pub shares_out: PathBuf,
    /// Shares needed to unseal (M).
    pub threshold: u8,
    /// Shares to create (N).
    pub shares: u8,
    /// SPIFFE trust domain of the deployment's identities.
    pub trust_domain: String,
    /// DNS names of the server certificate.
    pub server_names: Vec<String>,
    /// IP addresses of the server certificate.
    pub server_ips: Vec<IpAddr>,
    /// Where the administrators' credentials go; `None` when every role brings a CSR.
    pub admin_out: Option<PathBuf>,
    /// Roles whose certificate is issued for a key the administrator keeps.
    pub admin_csrs: Vec<AdminCsr>,
    /// Dev mode: shares and administrator keys stay in the data directory.
    pub dev: bool,
    /// Where relying parties will reach the HTTP port, if known now: the issuing CAs point to
    /// the root's CRL and certificate there, and `serve` uses it when its configuration names
    /// no `public_url`.
    pub public_url: Option<String>,
}

impl Options {
    /// The deployment `serve --dev` creates in `layout` on first start: 3 of 5 shares kept
    /// in the data directory, a server for localhost, every administrator key beside them,
    /// certificates pointing to `public_url` (the dev server's HTTP port).
    pub fn dev(layout: &Layout, public_url: Option<String>) -> Self {
        Self {
            data: layout.root().to_path_buf(),
            shares_out: layout.dev_unseal(),
            threshold: 3,
            shares: 5,
            trust_domain: "gov.example".to_owned(),
            server_names: vec!["localhost".to_owned()],
            server_ips: vec![IpAddr::from([127, 0, 0, 1])],
            admin_out: None,
            admin_csrs: Vec::new(),
            dev: true,
            public_url,
        }
    }
}

/// One administrator role whose certificate is issued for the key of a CSR in `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCsr {
    pub role: Role,
    pub file: PathBuf,
}

/// Creates the deployment described by `options`; returns the shares it wrote.
///
/// Nothing is left half-made: if any step fails, what this command wrote is removed again (a
/// deployment whose shares were not all written could never be unsealed).
pub fn run(options: &Options) -> anyhow::Result<Vec<ShareFile>> {
    let layout = Layout::new(&options.data);
    check(options)?;
    let shares = create_complete(&layout, options)?;
    outln!("Initialised deployment in {}", layout.root().display());
    outln!(
        "Wrote {} custodian shares to {} ({} needed to unseal): hand one to each custodian, then delete them here.",
        shares.len(),
        options.shares_out.display(),
        options.threshold
    );
    outln!("CA bundle:        {}", layout.ca_bundle().display());
    outln!("Root certificate: {}", layout.root_certificate().display());
    print_handover(&Handover::new(&layout, options));
    Ok(shares)
}

/// Creates the deployment and writes its shares to `options.shares_out` and the administrators'
/// credentials where [`Handover`] says; marks the deployment complete last. The directories
/// written must be empty or absent and apart from each other. On failure removes what it
/// wrote, and nothing else: a directory that existed stays.
pub fn create_complete(layout: &Layout, options: &Options) -> anyhow::Result<Vec<ShareFile>> {
    check_admins(options)?;
    let csrs = read_csrs(&options.admin_csrs)?;
    ensure_all_apart(layout, options)?;
    let handover = Handover::new(layout, options);
    let mut claims = Claims::default();
    claims.claim(layout.root())?;
    claims.claim(&options.shares_out)?;
    if let Some(out) = handover.out.filter(|_| !options.dev) {
        claims.claim(out)?;
    }
    create(layout, options, csrs, &handover)
        .and_then(|shares| files::write_shares(&options.shares_out, &shares).map(|()| shares))
        .and_then(|shares| {
            write_public(&layout.complete_marker(), "initialised\n").map(|()| shares)
        })
        .inspect_err(|_| claims.undo())
}

/// Dev mode alone keeps shares and administrator keys inside the data directory; otherwise
/// the data directory, the shares and the administrators' credentials are three apart places.
fn ensure_all_apart(layout: &Layout, options: &Options) -> anyhow::Result<()> {
    if options.dev {
        return Ok(());
    }
    let data = ("--data", layout.root());
    let shares = ("--shares-out", options.shares_out.as_path());
    ensure_apart(
        shares,
        data,
        "keep the custodians' shares out of the data directory",
    )?;
    if let Some(out) = &options.admin_out {
        let admins = ("--admin-out", out.as_path());
        ensure_apart(
            admins,
            data,
            "keep administrator keys out of the data directory",
        )?;
        ensure_apart(
            admins,
            shares,
            "keep administrator keys apart from the shares",
        )?;
    }
    Ok(())
}

/// `first` and `second` must not be one inside the other (every backup of the data directory
/// would carry what is inside it). Symbolic links in the part of each path that exists are
/// resolved first.
fn ensure_apart(first: (&str, &Path), second: (&str, &Path), why: &str) -> anyhow::Result<()> {
    let (a, b) = (resolved(first.1)?, resolved(second.1)?);
    if a.starts_with(&b) || b.starts_with(&a) {
        bail!(
            "{} {} and {} {} overlap: {why}",
            first.0,
            first.1.display(),
            second.0,
            second.1.display()
        );
    }
    Ok(())
}

/// `path` made absolute, with its longest existing ancestor canonicalized and the rest (which
/// does not exist, so holds no symbolic link) folded: `missing/../data` is `data`, as creating
/// the directories would make it.
fn resolved(path: &Path) -> anyhow::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let existing = absolute.ancestors().find(|a| a.exists());
    let Some(existing) = existing else {
        return Ok(folded(Path::new("/"), &absolute));
    };
    let rest = absolute.strip_prefix(existing).unwrap_or(Path::new(""));
    Ok(folded(&fs::canonicalize(existing)?, rest))
}

/// `base` joined with `rest`, whose `.` and `..` components are folded away.
fn folded(base: &Path, rest: &Path) -> PathBuf {
    let mut path = base.to_path_buf();
    for component in rest.components() {
        match component {
            std::path::Component::ParentDir => {
                path.pop();
            }
            std::path::Component::Normal(name) => path.push(name),
            std::path::Component::RootDir => path = PathBuf::from("/"),
            std::path::Component::CurDir | std::path::Component::Prefix(_) => {}
        }
    }
    path
}

/// The directories this command claimed, undone together.
#[derive(Default)]
struct Claims<'a>(Vec<Claimed<'a>>);

impl<'a> Claims<'a> {
    /// Claims `dir`; on failure undoes every earlier claim.
    fn claim(&mut self, dir: &'a Path) -> anyhow::Result<()> {
        let claimed = Claimed::new(dir).inspect_err(|_| self.undo())?;
        self.0.push(claimed);
        Ok(())
    }

    /// Undoes every claim, the last first.
    fn undo(&self) {
        self.0.iter().rev().for_each(Claimed::undo);
    }
}

/// An empty directory this command writes into, and whether it existed before.
struct Claimed<'a> {
    dir: &'a Path,
    existed: bool,
}

impl<'a> Claimed<'a> {
    /// Claims `dir`: it must be empty or absent; an absent one is created owner-only.
    fn new(dir: &'a Path) -> anyhow::Result<Self> {
        files::ensure_empty(dir)?;
        let existed = dir.exists();
        if !existed {
            files::create_private_dir(dir)?;
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

/// Where each administrator role's credential is written.
struct Handover<'a> {
    layout: &'a Layout,
    /// `--admin-out`; `None` in dev mode or when every role brought a CSR.
    out: Option<&'a Path>,
    csr_roles: Vec<Role>,
    dev: bool,
}

impl<'a> Handover<'a> {
    fn new(layout: &'a Layout, options: &'a Options) -> Self {
        Self {
            layout,
            out: options.admin_out.as_deref(),
            csr_roles: options.admin_csrs.iter().map(|csr| csr.role).collect(),
            dev: options.dev,
        }
    }

    /// The directory of `role`'s credential: in `--admin-out`, or (dev mode, or a CSR role
    /// without `--admin-out`: certificate only) in the data directory.
    fn dir(&self, role: Role) -> PathBuf {
        match self.out.filter(|_| !self.dev) {
            Some(out) => out.join(role.as_str()),
            None => self.layout.admin(role.as_str()),
        }
    }

    fn brought_csr(&self, role: Role) -> bool {
        self.csr_roles.contains(&role)
    }
}

/// Refuses impossible settings before anything touches the disk.
fn check(options: &Options) -> anyhow::Result<()> {
    if !(2..=16).contains(&options.shares) || !(2..=options.shares).contains(&options.threshold) {
        bail!(
            "--threshold {} of --shares {}: need 2 <= threshold <= shares <= 16",
            options.threshold,
            options.shares
        );
    }
    if options.server_names.is_empty() && options.server_ips.is_empty() {
        bail!("give the server at least one --server-name or --server-ip");
    }
    Ok(())
}

/// Every role is covered by a CSR or by `--admin-out`, and has at most one CSR.
fn check_admins(options: &Options) -> anyhow::Result<()> {
    for (at, csr) in options.admin_csrs.iter().enumerate() {
        if options
            .admin_csrs
            .iter()
            .skip(at + 1)
            .any(|c| c.role == csr.role)
        {
            bail!("--admin-csr is given twice for {}", csr.role);
        }
    }
    if options.dev || options.admin_out.is_some() {
        return Ok(());
    }
    let uncovered: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|role| options.admin_csrs.iter().all(|csr| csr.role != *role))
        .map(Role::as_str)
        .collect();
    if !uncovered.is_empty() {
        bail!(
            "give --admin-out DIR (outside --data) for the administrators' new keys, or \
             --admin-csr ROLE=FILE for {}: init never writes administrator keys into the data \
             directory",
            uncovered.join(", ")
        );
    }
    Ok(())
}

/// The CSR files, read (at most 64 KiB each). The CA checks their contents.
fn read_csrs(csrs: &[AdminCsr]) -> anyhow::Result<Vec<(Role, Vec<u8>)>> {
    csrs.iter().map(read_csr).collect()
}

fn read_csr(csr: &AdminCsr) -> anyhow::Result<(Role, Vec<u8>)> {
    let context = || {
        format!(
            "cannot read the --admin-csr of {}, {}",
            csr.role,
            csr.file.display()
        )
    };
    let size = fs::metadata(&csr.file).with_context(context)?.len();
    if size > MAX_CSR_FILE {
        bail!(
            "--admin-csr {}: {} is {size} bytes; a certificate signing request is at most 64 KiB",
            csr.role,
            csr.file.display()
        );
    }
    Ok((csr.role, fs::read(&csr.file).with_context(context)?))
}

/// Creates the deployment in `layout` (a claimed, empty directory) and returns the shares
/// without writing them.
fn create(
    layout: &Layout,
    options: &Options,
    admin_csrs: Vec<(Role, Vec<u8>)>,
    handover: &Handover<'_>,
) -> anyhow::Result<Vec<ShareFile>> {
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&layout.database())?);
    fs::set_permissions(layout.database(), fs::Permissions::from_mode(0o600))?;
    let audit = Arc::new(AuditLog::new(store.clone()));
    let clock = Arc::new(SystemClock);
    let shares = Kms::initialize(
        store.as_ref(),
        audit.as_ref(),
        clock.as_ref(),
        options.threshold,
        options.shares,
    )?;
    let kms = Arc::new(Kms::open(store.clone(), audit.clone(), clock.clone())?);
    for share in shares.iter().take(usize::from(options.threshold)) {
        kms.unseal(share.contents.as_bytes())?;
    }
    let params = InitParams {
        trust_domain: options.trust_domain.clone(),
        server_dns_names: options.server_names.clone(),
        server_ips: options.server_ips.clone(),
        admin_csrs,
        public_url: options.public_url.clone(),
    };
    let (_, artifacts) = Ca::initialize(store, kms, audit, clock, &params)?;
    write_artifacts(layout, handover, &artifacts)?;
    Ok(shares)
}

fn write_artifacts(
    layout: &Layout,
    handover: &Handover<'_>,
    artifacts: &InitArtifacts,
) -> anyhow::Result<()> {
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
    let server_key = artifacts.server.private_key_pem.as_ref();
    let server_key = server_key.context("the CA returned no key for the server")?;
    write_secret(&layout.server_key(), server_key)?;
    for (role, credential) in &artifacts.admins {
        files::write_credential(&handover.dir(*role), credential, &chain.root_pem)?;
    }
    Ok(())
}

/// Says who must receive what, and what to delete.
fn print_handover(handover: &Handover<'_>) {
    outln!("Administrator credentials (三员分立: each goes to its own administrator only):");
    for role in Role::ALL {
        let (name, whom) = (role.as_str(), title(role));
        let dir = handover.dir(role);
        if handover.brought_csr(role) {
            outln!(
                "  {name:<15} {}: cert.pem and ca.pem for the {whom}, who holds the CSR's key \
                 (use it as key.pem beside them)",
                dir.display()
            );
        } else {
            outln!(
                "  {name:<15} {}: cert.pem, key.pem and ca.pem for the {whom} only; the key \
                 exists nowhere else",
                dir.display()
            );
        }
    }
    if let Some(out) = handover.out.filter(|_| !handover.dev) {
        outln!(
            "Hand each directory over, then delete {} here: nobody but its administrator may \
             keep a copy of a key.",
            out.display()
        );
    }
}

/// Who holds `role`, in words.
fn title(role: Role) -> &'static str {
    match role {
        Role::SystemAdministrator => "system administrator",
        Role::SecurityAdministrator => "security administrator",
        Role::AuditAdministrator => "audit administrator",
    }
}
