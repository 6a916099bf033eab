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
                backoff = next_backoff(backoff);
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
                backoff = next_backoff(backoff);
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
    let due = due_at((not_before, not_after), when_left, last);
    Ok(due.duration_since(SystemTime::now()).unwrap_or_default())
}

/// When a certificate valid over `(not_before, not_after)` is due: two thirds into its
/// lifetime, or when `when_left` is left; never sooner than [`MIN_INTERVAL`] after the `last`
/// renewal.
fn due_at(
    (not_before, not_after): (SystemTime, SystemTime),
    when_left: Option<Duration>,
    last: Option<SystemTime>,
) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let left = when_left.unwrap_or(lifetime / 3);
    let due = not_after.checked_sub(left).unwrap_or(not_before);
    let earliest = last.map(|at| at + MIN_INTERVAL);
    earliest.map_or(due, |earliest| due.max(earliest))
}

/// The pause after another failed attempt: doubled, at most [`MAX_BACKOFF`].
fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
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

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_certificate_is_due_two_thirds_into_its_lifetime_unless_told_otherwise() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let validity = (start, start + 90 * DAY);
        assert_eq!(due_at(validity, None, None), start + 60 * DAY);
        assert_eq!(due_at(validity, Some(10 * DAY), None), start + 80 * DAY);
        // Asked to keep more than the whole lifetime left: due before it began, so at once.
        assert!(due_at(validity, Some(100 * DAY), None) < start);
        // Just renewed: not again within a minute, whatever the certificate says.
        let last = start + 70 * DAY;
        assert_eq!(due_at(validity, None, Some(last)), last + MIN_INTERVAL);
    }

    #[test]
    fn failed_renewals_back_off_doubling_up_to_ten_minutes() {
        let mut backoff = FIRST_BACKOFF;
        let mut pauses = Vec::new();
        for _ in 0..10 {
            pauses.push(backoff.as_secs());
            backoff = next_backoff(backoff);
        }
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
    }
}
