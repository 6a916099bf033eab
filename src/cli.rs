//! The command line: what each subcommand takes, and the dispatch to its implementation.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use govtrust_ca::Role;

use crate::client;
use crate::config;
use crate::init::{self, AdminCsr};
use crate::server;

/// govtrust: certificate authority and key-management centre for e-government.
#[derive(Debug, Parser)]
#[command(name = "govtrust", version, about, propagate_version = true)]
pub struct Cli {
    /// More logging (GOVTRUST_LOG overrides, e.g. GOVTRUST_LOG=debug).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the trust server: one gRPC port over TLS for the CA and the key-management centre.
    Serve(ServeArgs),
    /// Create a deployment: master key shares, CA hierarchy, server and administrator credentials.
    Init(InitArgs),
    /// Give the server one custodian's master-key share.
    Unseal {
        /// A share file written by `govtrust init`.
        #[arg(long)]
        share: PathBuf,
        #[command(flatten)]
        connection: client::connection::Connection,
    },
    /// Show whether the server is sealed and how far unsealing has come.
    Status {
        #[command(flatten)]
        connection: client::connection::Connection,
    },
    /// Seal the running server at once (security administrator): every key leaves its memory
    /// and every key operation fails until the custodians unseal it again.
    Seal {
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        connection: client::connection::Connection,
    },
    /// Government systems: register them and issue enrollment tokens (system administrator).
    #[command(subcommand)]
    System(client::system::SystemCommand),
    /// Civil servants: register them (security administrator) and enroll with their token.
    #[command(subcommand)]
    Person(client::person::PersonCommand),
    /// Get this system's first certificate with its one-time enrollment token.
    Enroll(client::enrollment::EnrollArgs),
    /// Renew this system's certificate over mTLS with the current one (`--daemon` keeps it
    /// renewed).
    Renew(client::enrollment::RenewArgs),
    /// Administrators' own credentials.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Issued certificates.
    #[command(subcommand)]
    Cert(client::certs::CertCommand),
    /// The key-management centre.
    #[command(subcommand)]
    Kms(client::keys::KmsCommand),
    /// The audit log (audit administrator).
    #[command(subcommand)]
    Audit(client::audit::AuditCommand),
    /// Dual control: approve or reject what another officer asked to do.
    #[command(subcommand)]
    Approval(client::approval::ApprovalCommand),
    /// The trust bundle: this deployment's root and the other CAs relying parties accept.
    #[command(subcommand)]
    Trust(client::trust::TrustCommand),
    /// The server's configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `govtrust serve`. Every setting may also come from the `--config` file; a flag wins over its
/// environment variable, which wins over the file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); `govtrust config check FILE` validates one.
    #[arg(long, env = "GOVTRUST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory of the deployment (created by `govtrust init`, or by `--dev`).
    /// Default: ./govtrust-data, or ./govtrust-dev with `--dev`.
    #[arg(long, env = "GOVTRUST_DATA")]
    pub data: Option<PathBuf>,
    /// Address of the gRPC port [default: 127.0.0.1:8443].
    #[arg(long, env = "GOVTRUST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the plain-HTTP port for relying parties: CRLs, OCSP, CA certificates, trust
    /// bundles, metrics [default: 127.0.0.1:8080].
    #[arg(long, env = "GOVTRUST_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Where relying parties reach the HTTP port, written into certificates (CRL distribution
    /// point, OCSP, CA issuers) [default: http://<http-listen>].
    #[arg(long, env = "GOVTRUST_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Development mode: initialise an empty data directory (default ./govtrust-dev) and unseal
    /// from shares kept on local disk. Never use it for real keys.
    #[arg(long)]
    pub dev: bool,
    /// Dev mode only: run the server's clock this many days ahead, to rehearse what happens
    /// when waiting periods and lifetimes end (key destruction, token expiry).
    #[arg(long, requires = "dev", value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub dev_clock_offset_days: Option<u32>,
    /// How long an unseal attempt lasts after its first share; then its shares are forgotten
    /// and the custodians start again. Seconds, or with a unit: 90s, 10m, 1h (1 s to 24 h)
    /// [default: 10m].
    #[arg(long, env = "GOVTRUST_UNSEAL_TIMEOUT", value_name = "DURATION")]
    pub unseal_timeout: Option<String>,
    /// No certificate lives longer, whatever its profile allows [default: 397d].
    #[arg(long, env = "GOVTRUST_MAX_VALIDITY", value_name = "DURATION")]
    pub max_validity: Option<String>,
    /// How long a renewed certificate may still renew, for a lost answer [default: 1h].
    #[arg(long, env = "GOVTRUST_RENEWAL_GRACE", value_name = "DURATION")]
    pub renewal_grace: Option<String>,
    /// How long each CRL is valid (nextUpdate) [default: 7d].
    #[arg(long, env = "GOVTRUST_CRL_NEXT_UPDATE", value_name = "DURATION")]
    pub crl_next_update: Option<String>,
    /// CRLs are made anew at least this often [default: 1d].
    #[arg(long, env = "GOVTRUST_CRL_REFRESH", value_name = "DURATION")]
    pub crl_refresh: Option<String>,
    /// How long each OCSP response is valid (nextUpdate) [default: 1d].
    #[arg(long, env = "GOVTRUST_OCSP_NEXT_UPDATE", value_name = "DURATION")]
    pub ocsp_next_update: Option<String>,
    /// OCSP responses are signed anew at least this often [default: 12h].
    #[arg(long, env = "GOVTRUST_OCSP_REFRESH", value_name = "DURATION")]
    pub ocsp_refresh: Option<String>,
    /// A directory of certificate profiles (*.toml) to use instead of the built-in ones.
    #[arg(long, env = "GOVTRUST_PROFILES", value_name = "DIR")]
    pub profiles: Option<PathBuf>,
}

impl ServeArgs {
    /// The server's options: the file, then the environment and flags.
    fn options(self) -> anyhow::Result<server::Options> {
        let file = match &self.config {
            Some(path) => config::File::read(path)?,
            None => config::File::default(),
        };
        let defaults = config::Defaults {
            data: if self.dev {
                "govtrust-dev"
            } else {
                "govtrust-data"
            },
        };
        let (dev, dev_clock_offset_days) = (self.dev, self.dev_clock_offset_days);
        let config = config::Config::resolve(file, self.overrides(), defaults)?;
        Ok(server::Options {
            config,
            dev,
            dev_clock_offset_days,
        })
    }

    fn overrides(self) -> config::Overrides {
        config::Overrides {
            data: self.data,
            listen: self.listen,
            http_listen: self.http_listen,
            public_url: self.public_url,
            unseal_timeout: self.unseal_timeout,
            max_validity: self.max_validity,
            renewal_grace: self.renewal_grace,
            crl_next_update: self.crl_next_update,
            crl_refresh: self.crl_refresh,
            ocsp_next_update: self.ocsp_next_update,
            ocsp_refresh: self.ocsp_refresh,
            profiles: self.profiles,
        }
    }
}

/// `govtrust admin`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Renew this administrator's certificate over mTLS with the current one: a new key is
    /// made here, the credential directory (--identity) is replaced.
    Renew(client::enrollment::RenewArgs),
}

/// `govtrust config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: every key known and every value valid, and the profiles
    /// directory it names, if any. Prints the settings the server would run with (defaults
    /// filled in); names the bad file and key otherwise.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

/// `govtrust config check FILE`.
fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let defaults = config::Defaults {
        data: "govtrust-data",
    };
    let file_config = config::File::read(file)?;
    let config = config::Config::resolve(file_config, config::Overrides::default(), defaults)?;
    if let Some(dir) = &config.profiles {
        govtrust_ca::Profiles::from_dir(dir)?;
    }
    outln!("# {}: valid; the server would run with:", file.display());
    out!("{}", config.to_toml());
    Ok(())
}

/// `govtrust init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Data directory to create (must be empty or absent).
    #[arg(long, env = "GOVTRUST_DATA", default_value = "govtrust-data")]
    pub data: PathBuf,
    /// Where to write the custodians' share files, one per custodian. Hand them out, then
    /// delete this directory.
    #[arg(long)]
    pub shares_out: PathBuf,
    /// Shares needed to unseal (M).
    #[arg(long, default_value_t = 3)]
    pub threshold: u8,
    /// Shares to create (N).
    #[arg(long, default_value_t = 5)]
    pub shares: u8,
    /// SPIFFE trust domain of the deployment's identities.
    #[arg(long, default_value = "gov.example")]
    pub trust_domain: String,
    /// DNS names of the server certificate.
    #[arg(long = "server-name", default_value = "localhost")]
    pub server_names: Vec<String>,
    /// IP addresses of the server certificate.
    #[arg(long = "server-ip", default_value = "127.0.0.1")]
    pub server_ips: Vec<IpAddr>,
    /// Where to write what the administrators receive (empty or absent, outside --data and
    /// --shares-out): per role a directory with a new key, its certificate and the root, or
    /// for a role given --admin-csr its certificate and the root. Hand each directory to its
    /// administrator, then delete this one. Needed unless every role brings a CSR.
    #[arg(long, value_name = "DIR")]
    pub admin_out: Option<PathBuf>,
    /// Issue ROLE's certificate for the key of the CSR in FILE (PEM or DER), made by the
    /// administrator, who keeps the key. ROLE: system-admin, security-admin, audit-admin.
    /// Repeatable; the roles without one get a key generated into --admin-out.
    #[arg(long = "admin-csr", value_name = "ROLE=FILE", value_parser = parse_admin_csr)]
    pub admin_csrs: Vec<AdminCsr>,
    /// Where relying parties will reach the server's HTTP port (`public_url` of `serve`), if
    /// known now: the issuing CA certificates then point to the root's CRL and certificate
    /// there, and `serve` uses it when its configuration names no public_url.
    #[arg(long, value_name = "URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
}

/// Parses `--public-url` as `serve` does.
fn parse_public_url(text: &str) -> Result<String, String> {
    config::PublicUrl::parse(text).map(|url| url.to_string())
}

impl From<InitArgs> for init::Options {
    fn from(args: InitArgs) -> Self {
        Self {
            data: args.data,
            shares_out: args.shares_out,
            threshold: args.threshold,
            shares: args.shares,
            trust_domain: args.trust_domain,
            server_names: args.server_names,
            server_ips: args.server_ips,
            admin_out: args.admin_out,
            admin_csrs: args.admin_csrs,
            dev: false,
            public_url: args.public_url,
        }
    }
}

/// Parses one `--admin-csr ROLE=FILE`.
fn parse_admin_csr(text: &str) -> Result<AdminCsr, String> {
    let (role, file) = text
        .split_once('=')
        .filter(|(_, file)| !file.is_empty())
        .ok_or_else(|| format!("{text:?} is not ROLE=FILE"))?;
    let role = role.parse::<Role>().map_err(|_| {
        format!(
            "{role:?} is not an administrator role: system-admin, security-admin or audit-admin"
        )
    })?;
    Ok(AdminCsr {
        role,
        file: file.into(),
    })
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => server::serve(args.options()?).await,
        Command::Config(ConfigCommand::Check { file }) => check_config(&file),
        Command::Init(args) => init::run(&args.into()).map(|_| ()),
        Command::Unseal { share, connection } => client::seal::unseal(&connection, &share).await,
        Command::Status { connection } => client::seal::status(&connection).await,
        Command::Seal { reason, connection } => client::seal::seal(&connection, &reason).await,
        Command::System(command) => client::system::run(command).await,
        Command::Person(command) => client::person::run(command).await,
        Command::Enroll(args) => client::enrollment::enroll(args).await,
        Command::Renew(args) | Command::Admin(AdminCommand::Renew(args)) => {
            client::renewal::renew(args).await
        }
        Command::Cert(command) => client::certs::run(command).await,
        Command::Kms(command) => client::keys::run(command).await,
        Command::Audit(command) => client::audit::run(command).await,
        Command::Approval(command) => client::approval::run(command).await,
        Command::Trust(command) => client::trust::run(command).await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn admin_csr_arguments() {
        let parsed = parse_admin_csr("audit-admin=/tmp/a=b.csr");
        assert_eq!(
            parsed,
            Ok(AdminCsr {
                role: Role::AuditAdministrator,
                file: "/tmp/a=b.csr".into()
            })
        );
        assert!(
            parse_admin_csr("root=x.csr")
                .unwrap_err()
                .contains("not an administrator role")
        );
        assert!(parse_admin_csr("audit-admin=").is_err());
        assert!(parse_admin_csr("audit-admin").is_err());
    }
}
