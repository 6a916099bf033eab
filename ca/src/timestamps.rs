//! Conversions between `SystemTime`, stored Unix milliseconds, X.509 times and RFC 3339 text.
//!
//! X.509 validity has one-second resolution, so every certificate time goes through
//! [`to_x509`], which drops sub-second precision; the `SystemTime` the CA records is the one
//! written into the certificate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Error;

/// Milliseconds since the Unix epoch (negative before it), saturating.
pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The time `ms` milliseconds after the Unix epoch; the epoch itself if out of range.
pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    let offset = Duration::from_millis(ms.unsigned_abs());
    let at = if ms >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    at.unwrap_or(UNIX_EPOCH)
}

/// `at` as RFC 3339 text in UTC, for messages.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    to_x509(at)
        .ok()
        .and_then(|dt| dt.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{} ms after the Unix epoch", unix_ms(at)))
}

/// `at` truncated to whole seconds, as rcgen wants it.
pub(crate) fn to_x509(at: SystemTime) -> Result<OffsetDateTime, Error> {
    let seconds = unix_ms(at).div_euclid(1000);
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| Error::invalid("time", format!("{seconds} s is out of range: {e}")))
}

/// The `SystemTime` of an X.509 time.
pub(crate) fn from_x509(at: OffsetDateTime) -> SystemTime {
    from_unix_ms(at.unix_timestamp().saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_ms_round_trips() {
        for ms in [0, 1, -1, 1_700_000_000_123, -86_400_000] {
            assert_eq!(unix_ms(from_unix_ms(ms)), ms);
        }
    }

    #[test]
    fn x509_times_drop_subseconds() {
        let at = from_unix_ms(1_700_000_000_999);
        assert_eq!(
            from_x509(to_x509(at).unwrap_or(OffsetDateTime::UNIX_EPOCH)),
            from_unix_ms(1_700_000_000_000)
        );
    }

    #[test]
    fn rfc3339_is_utc() {
        assert_eq!(rfc3339(from_unix_ms(0)), "1970-01-01T00:00:00Z");
    }
}
