//! The command line: what each subcommand takes, and the dispatch to its implementation.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use govtrust_ca::Role;

use crate::client;
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
    /// Get this system's first certificate with its one-time enrollment token.
    Enroll(client::enrollment::EnrollArgs),
    /// Renew this system's certificate over mTLS with the current one.
    Renew(client::enrollment::RenewArgs),
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
}

/// `govtrust serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory of the deployment (created by `govtrust init`, or by `--dev`).
    /// Default: ./govtrust-data, or ./govtrust-dev with `--dev`.
    #[arg(long, env = "GOVTRUST_DATA")]
    pub data: Option<PathBuf>,
    /// Address of the gRPC port.
    #[arg(long, env = "GOVTRUST_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
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
    /// and the custodians start again. Seconds, or with a unit: 90s, 10m, 1h (1 s to 24 h).
    #[arg(long, env = "GOVTRUST_UNSEAL_TIMEOUT", default_value = "10m",
          value_parser = parse_unseal_timeout)]
    pub unseal_timeout: Duration,
}

impl From<ServeArgs> for server::Options {
    fn from(args: ServeArgs) -> Self {
        let default_data = if args.dev {
            "govtrust-dev"
        } else {
            "govtrust-data"
        };
        Self {
            data: args.data.unwrap_or_else(|| default_data.into()),
            listen: args.listen,
            dev: args.dev,
            dev_clock_offset_days: args.dev_clock_offset_days,
            unseal_timeout: args.unseal_timeout,
        }
    }
}

/// Longest unseal timeout accepted.
const MAX_UNSEAL_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// A duration of `N`, `Ns`, `Nm` or `Nh`, from 1 s to 24 h.
fn parse_unseal_timeout(text: &str) -> Result<Duration, String> {
    let units = [('h', 3600), ('m', 60), ('s', 1)];
    let (number, unit) = units
        .iter()
        .find_map(|&(suffix, unit)| text.strip_suffix(suffix).map(|number| (number, unit)))
        .unwrap_or((text, 1));
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{text:?} is not a duration such as 600, 90s, 10m or 1h"))?;
    let timeout = Duration::from_secs(seconds);
    if timeout.is_zero() || timeout > MAX_UNSEAL_TIMEOUT {
        return Err(format!("{text:?}: the unseal timeout is 1 s to 24 h"));
    }
    Ok(timeout)
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
        Command::Serve(args) => server::serve(args.into()).await,
        Command::Init(args) => init::run(&args.into()).map(|_| ()),
        Command::Unseal { share, connection } => client::seal::unseal(&connection, &share).await,
        Command::Status { connection } => client::seal::status(&connection).await,
        Command::Seal { reason, connection } => client::seal::seal(&connection, &reason).await,
        Command::System(command) => client::system::run(command).await,
        Command::Enroll(args) => client::enrollment::enroll(args).await,
        Command::Renew(args) => client::enrollment::renew(args).await,
        Command::Cert(command) => client::certs::run(command).await,
        Command::Kms(command) => client::keys::run(command).await,
        Command::Audit(command) => client::audit::run(command).await,
        Command::Approval(command) => client::approval::run(command).await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::CommandFactory;

    use std::time::Duration;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn unseal_timeouts() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(parse_unseal_timeout("10m"), Ok(minutes(10)));
        assert_eq!(parse_unseal_timeout("600"), Ok(minutes(10)));
        assert_eq!(parse_unseal_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_unseal_timeout("24h"), Ok(minutes(24 * 60)));
        for bad in [
            "0",
            "25h",
            "",
            "m",
            "-5m",
            "10 m",
            "1d",
            "99999999999999999999h",
        ] {
            assert!(parse_unseal_timeout(bad).is_err(), "{bad:?}");
        }
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
