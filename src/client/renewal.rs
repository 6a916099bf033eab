//! `govtrust renew`: renews a credential once, or with `--daemon` keeps it renewed.
//!
//! Renews two thirds into the certificate's lifetime (or when `--when-left` is left), then
//! waits for the next one; a failed renewal is retried with a growing pause (5 s doubling to
//! 10 minutes) as long as the certificate lasts. The key file stays at mode 0600; key and
//! certificate are swapped as a pair (see `credential`). Ends quietly on SIGTERM or Ctrl-C.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::enrollment::{RenewArgs, renew_once};

/// Generates a new key, renews over mTLS with the current credential, replaces it; with
/// `--daemon`, again and again.
pub async fn renew(args: RenewArgs) -> anyhow::Result<()> {
    let dir = args
        .connection
        .identity
        .clone()
        .context("renew needs --identity DIR")?;
    match args.daemon {
        true => run(&args, &dir).await,
        false => renew_once(&args, &dir).await,
    }
}

/// The longest the daemon sleeps before looking at the certificate again.
const CHECK: Duration = Duration::from_secs(3600);
/// The least time between two renewals, whatever `--when-left` says.
const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// The first pause after a failed renewal; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Runs until stopped.
pub async fn run(args: &RenewArgs, dir: &Path) -> anyhow::Result<()> {
    tokio::select! {
        result = renew_forever(args, dir) => result,
        () = crate::signals::terminated() => {
            eprintln!("renew daemon: stopped");
            Ok(())
        }
    }
}

async fn renew_forever(args: &RenewArgs, dir: &Path) -> anyhow::Result<()> {
    let mut backoff = FIRST_BACKOFF;
    let mut last: Option<SystemTime> = None;
    loop {
        let wait = match until_due(dir, args.when_left, last) {
            Ok(wait) => wait,
            // A certificate that cannot be read (a copy in progress, a damaged file) is
            // retried like a failed renewal, not a reason to stop.
            Err(error) => {
                eprintln!(
                    "renew daemon: cannot read the certificate, retrying in {backoff:?}: {error:#}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait.min(CHECK)).await;
            continue;
        }
        match renew_once(args, dir).await {
            Ok(()) => {
                last = Some(SystemTime::now());
                backoff = FIRST_BACKOFF;
            }
            Err(error) => {
                eprintln!("renew daemon: renewal failed, retrying in {backoff:?}: {error:#}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// How long until the certificate in `dir` is due for renewal (zero: now).
fn until_due(
    dir: &Path,
    when_left: Option<Duration>,
    last: Option<SystemTime>,
) -> anyhow::Result<Duration> {
    let (not_before, not_after) = validity(&dir.join("cert.pem"))?;
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let left = when_left.unwrap_or(lifetime / 3);
    let due = not_after.checked_sub(left).unwrap_or(not_before);
    let earliest = last.map(|at| at + MIN_INTERVAL);
    let due = earliest.map_or(due, |earliest| due.max(earliest));
    Ok(due.duration_since(SystemTime::now()).unwrap_or_default())
}

/// notBefore and notAfter of the PEM certificate in `file`.
fn validity(file: &Path) -> anyhow::Result<(SystemTime, SystemTime)> {
    let pem = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate: {e}", file.display()))?;
    let certificate = block
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("{}: not a certificate: {e}", file.display()))?;
    let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    let validity = certificate.validity();
    Ok((
        at(validity.not_before.timestamp()),
        at(validity.not_after.timestamp()),
    ))
}
