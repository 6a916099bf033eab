//! PEM text (RFC 7468) for certificates.

use base64::Engine as _;

/// `der` as a PEM block with `label`, 64 characters a line, ending in a newline.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// A certificate as PEM.
pub(crate) fn certificate(der: &[u8]) -> String {
    encode("CERTIFICATE", der)
}

/// The DER of every `CERTIFICATE` block in `text`, in order; `None` if a block is malformed.
pub(crate) fn certificates(text: &[u8]) -> Option<Vec<Vec<u8>>> {
    x509_parser::pem::Pem::iter_from_buffer(text)
        .map(|block| block.ok())
        .filter(|block| block.as_ref().is_none_or(|b| b.label == "CERTIFICATE"))
        .map(|block| block.map(|b| b.contents))
        .collect()
}

/// The DER of the first `CERTIFICATE` block in `text`.
pub(crate) fn first_certificate(text: &[u8]) -> Option<Vec<u8>> {
    certificates(text)?.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_64_characters() {
        let pem = certificate(&[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first().copied(), Some("-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.get(1).map(|l| l.len()), Some(64));
        assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
    }
}
