//! The command line: what each subcommand takes, and the dispatch to its implementation.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::client;

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
        connection: client::Connection,
    },
    /// Show whether the server is sealed and how far unsealing has come.
    Status {
        #[command(flatten)]
        connection: client::Connection,
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
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::server::serve(args).await,
        Command::Init(args) => crate::init::run(&args).map(|_| ()),
        Command::Unseal { share, connection } => client::seal::unseal(&connection, &share).await,
        Command::Status { connection } => client::seal::status(&connection).await,
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
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
