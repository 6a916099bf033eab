//! Fetching another CA's CRL from the distribution point its certificate names: plain HTTP/1.1
//! GET (CRL distribution points are `http://` by convention, RFC 5280 §4.2.1.13), bounded in
//! time and size, no redirects. Runs on a blocking thread.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use govtrust_ca::CrlSource;

/// Longest a connection may take to open.
const CONNECT: Duration = Duration::from_secs(5);
/// Longest the whole fetch may take.
const TOTAL: Duration = Duration::from_secs(15);
/// Largest CRL fetched.
const MAX_CRL: usize = 32 * 1024 * 1024;

/// Fetches CRLs over plain HTTP.
pub struct HttpCrls;

impl CrlSource for HttpCrls {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| "only http:// distribution points are fetched".to_owned())?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        if authority.is_empty()
            || authority.contains(['@', ' '])
            || path.contains([' ', '\r', '\n'])
        {
            return Err("not a URL this server fetches".to_owned());
        }
        let host = match authority.contains(':') && !authority.ends_with(']') {
            true => authority.to_owned(),
            false => format!("{authority}:80"),
        };
        get(&host, authority, path)
    }
}

fn get(host: &str, authority: &str, path: &str) -> Result<Vec<u8>, String> {
    let started = Instant::now();
    let address = host
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, CONNECT)
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    let left = TOTAL
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/pkix-crl\r\n\
         User-Agent: govtrust\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let read = stream
        .take(u64::try_from(MAX_CRL + 64 * 1024).unwrap_or(u64::MAX))
        .read_to_end(&mut raw);
    read.map_err(|e| format!("reading from {host}: {e}"))?;
    body(&raw)
}

/// The body of a 200 answer (length-delimited, chunked, or until the connection closed).
fn body(raw: &[u8]) -> Result<Vec<u8>, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no HTTP head")?;
    let head = String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!("the server answered HTTP {status}"));
    }
    let rest = raw.get(end + 4..).unwrap_or_default();
    let body = match head.contains("transfer-encoding: chunked") {
        true => dechunk(rest).ok_or("a malformed chunked body")?,
        false => rest.to_vec(),
    };
    match body.len() {
        0 => Err("an empty body".to_owned()),
        n if n > MAX_CRL => Err(format!("larger than {MAX_CRL} bytes")),
        _ => Ok(body),
    }
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(raw.get(..line_end)?).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        raw = raw.get(line_end + 2..)?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_whole_or_refused() {
        assert_eq!(
            body(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").unwrap(),
            b"abc"
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(body(chunked).unwrap(), b"abcde");
        assert!(
            body(b"HTTP/1.1 404 Not Found\r\n\r\nno")
                .unwrap_err()
                .contains("404")
        );
        assert!(body(b"garbage").is_err());
        assert!(body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        assert!(
            HttpCrls
                .fetch("https://example.invalid/x.crl")
                .unwrap_err()
                .contains("http://")
        );
        assert!(HttpCrls.fetch("http://a b/x.crl").is_err());
    }
}
