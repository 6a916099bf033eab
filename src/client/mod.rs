//! The command-line client: every subcommand that talks to a running server.
//!
//! Connection settings come from flags or the environment (`GOVTRUST_SERVER`, `GOVTRUST_CA`,
//! `GOVTRUST_IDENTITY` or `GOVTRUST_CERT` + `GOVTRUST_KEY`). Output is human-readable by
//! default and JSON with `--json`.

pub mod approval;
pub mod audit;
pub mod certs;
pub mod connection;
pub mod enrollment;
pub mod keys;
pub mod person;
pub mod pkcs12;
pub mod renewal;
pub mod seal;
pub mod system;
pub mod text;
pub mod trust;
