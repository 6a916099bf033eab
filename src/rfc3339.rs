//! RFC 3339 text of a time, for the client's output and the server's audit details.

use std::time::SystemTime;

/// RFC 3339 text of `time`, or a readable stand-in for a time it cannot show.
pub fn format(time: SystemTime) -> String {
    let Ok(since_epoch) = time.duration_since(SystemTime::UNIX_EPOCH) else {
        return String::from("(before 1970)");
    };
    let nanos = i128::try_from(since_epoch.as_nanos()).unwrap_or(i128::MAX);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("(unix time {}s)", since_epoch.as_secs()))
}

/// The time RFC 3339 `text` names (`2027-01-31T12:00:00Z`), for command-line arguments.
pub fn parse(text: &str) -> Result<SystemTime, String> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("{text:?} is not an RFC 3339 time such as 2027-01-31T12:00:00Z: {e}")
        })?;
    let nanos = parsed.unix_timestamp_nanos();
    let since = u64::try_from(nanos).map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(since))
}
