//! Fetching another CA's CRL from the distribution point its certificate names: plain HTTP/1.1
//! GET (CRL distribution points are `http://` by convention, RFC 5280 §4.2.1.13), no
//! redirects, on a blocking thread.
//!
//! Bounded so that a slow or hostile distribution point cannot hold the server: at most
//! [`MAX_FETCHES`] fetches at once (more are refused at once), each within [`TOTAL`] from
//! name resolution to the last byte (every read waits only for what is left), and at most
//! [`MAX_CRL`] bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use govtrust_ca::CrlSource;

/// Longest a whole fetch may take: resolution, connection, request and answer.
const TOTAL: Duration = Duration::from_secs(10);
/// Largest CRL fetched.
const MAX_CRL: usize = 16 * 1024 * 1024;
/// Fetches at once.
const MAX_FETCHES: usize = 8;

/// Fetches CRLs over plain HTTP.
#[derive(Default)]
pub struct HttpCrls {
    running: AtomicUsize,
}

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
        let _slot = Slot::take(&self.running)?;
        let deadline = Instant::now() + TOTAL;
        get(&host, authority, path, deadline)
    }
}

/// One of the [`MAX_FETCHES`], released on drop.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(running: &'a AtomicUsize) -> Result<Self, String> {
        if running.fetch_add(1, Ordering::AcqRel) >= MAX_FETCHES {
            running.fetch_sub(1, Ordering::AcqRel);
            return Err(format!("{MAX_FETCHES} CRL fetches are running; try again"));
        }
        Ok(Self(running))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn left(deadline: Instant) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    match left.is_zero() {
        true => Err(format!("no answer within {TOTAL:?}")),
        false => Ok(left),
    }
}

/// The first address of `host`, resolved on a thread of its own so that a slow resolver
/// costs no more than the time left.
fn resolve(host: &str, deadline: Instant) -> Result<SocketAddr, String> {
    let (send, receive) = std::sync::mpsc::channel();
    let name = host.to_owned();
    std::thread::spawn(move || {
        let _ = send.send(name.to_socket_addrs().map(|mut a| a.next()));
    });
    match receive.recv_timeout(left(deadline)?) {
        Ok(Ok(Some(address))) => Ok(address),
        Ok(Ok(None)) => Err(format!("{host} resolves to no address")),
        Ok(Err(error)) => Err(format!("cannot resolve {host}: {error}")),
        Err(_) => Err(format!("cannot resolve {host} within {TOTAL:?}")),
    }
}

fn get(host: &str, authority: &str, path: &str, deadline: Instant) -> Result<Vec<u8>, String> {
    let address = resolve(host, deadline)?;
    let mut stream = TcpStream::connect_timeout(&address, left(deadline)?)
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    stream
        .set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/pkix-crl\r\n\
         User-Agent: govtrust\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let raw = read_all(&mut stream, deadline).map_err(|e| format!("reading from {host}: {e}"))?;
    body(&raw)
}

/// Everything `stream` sends until it closes, within `deadline` and [`MAX_CRL`] and a head.
fn read_all(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, String> {
    let limit = MAX_CRL + 64 * 1024;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        stream
            .set_read_timeout(Some(left(deadline)?))
            .map_err(|e| e.to_string())?;
        let read = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if read == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(chunk.get(..read).unwrap_or_default());
        if raw.len() > limit {
            return Err(format!("larger than {MAX_CRL} bytes"));
        }
    }
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
        let crls = HttpCrls::default();
        assert!(
            crls.fetch("https://example.invalid/x.crl")
                .unwrap_err()
                .contains("http://")
        );
        assert!(crls.fetch("http://a b/x.crl").is_err());
    }

    #[test]
    fn a_server_that_trickles_is_given_up_on_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(200));
                if stream.write_all(b"x").is_err() {
                    return;
                }
            }
        });
        let started = Instant::now();
        let deadline = started + Duration::from_secs(1);
        let host = address.to_string();
        let error = get(&host, &host, "/x.crl", deadline).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(
            error.contains("no answer within")
                || error.contains("timed out")
                || error.contains("Resource temporarily"),
            "{error}"
        );
    }

    #[test]
    fn fetches_beyond_the_limit_are_refused_at_once() {
        let running = AtomicUsize::new(0);
        let slots: Vec<_> = (0..MAX_FETCHES)
            .map(|_| Slot::take(&running).unwrap())
            .collect();
        assert!(Slot::take(&running).err().unwrap().contains("running"));
        drop(slots);
        assert!(Slot::take(&running).is_ok());
    }
}
