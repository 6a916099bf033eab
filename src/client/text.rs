//! What the server answers, as the client prints it: JSON, times, text safe for a terminal,
//! errors.

use std::time::SystemTime;

/// Prints a value as pretty JSON.
pub fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// RFC 3339 text of a protobuf timestamp (empty when absent).
pub fn timestamp(value: Option<&prost_types::Timestamp>) -> String {
    value
        .and_then(|t| SystemTime::try_from(*t).ok())
        .map(crate::rfc3339::format)
        .unwrap_or_default()
}

/// Text from the server made safe for a terminal: control characters are shown escaped, so
/// no value can forge a line or send escape sequences.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Turns a gRPC status into an error that says what the server said.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}
