//! TLS for the gRPC port: rustls with the ring provider, TLS 1.2 and 1.3, ALPN h2.
//!
//! Client certificates are requested but not required at the TLS layer, so calls that need no
//! identity (Enroll, health, unseal) work over server-authenticated TLS. A presented certificate
//! must prove possession of its key in the handshake (its signature is checked here); its chain
//! is verified by [`super::identity`] before any call uses it, which lets a certificate from a
//! foreign CA get a clear gRPC `Unauthenticated` instead of a bare handshake failure.
//!
//! After the handshake each connection is sorted by its caller: a certificate that verifies
//! against this CA (checked by the function given to [`incoming`]) sends it to the
//! authenticated stream, anything else (no certificate, a foreign or self-signed one) to the
//! anonymous stream, which the server serves with tighter HTTP/2 limits. Connection slots are
//! reserved the same way: at most [`MAX_HANDSHAKES`] handshakes (of which one peer address may
//! hold [`MAX_HANDSHAKES_PER_PEER`], each at most [`HANDSHAKE_TIMEOUT`]) and
//! [`MAX_ANONYMOUS_CONNECTIONS`] established connections without a certificate, so of the
//! [`MAX_CONNECTIONS`] at least 3,072 are always left for authenticated callers. Who is
//! authenticated is known only after the handshake, so a flood of never-finished handshakes
//! from many addresses can still delay new connections; one address cannot.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::Sender;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once (handshaking or established); more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 4096;
/// Of [`MAX_CONNECTIONS`], how many may be in their TLS handshake at once.
const MAX_HANDSHAKES: usize = 512;
/// Of [`MAX_CONNECTIONS`], how many established connections may lack a verified certificate;
/// one more is closed after its handshake.
const MAX_ANONYMOUS_CONNECTIONS: usize = 512;
/// Connections one peer address may hold at once, so one host cannot take every slot.
const MAX_CONNECTIONS_PER_PEER: usize = 256;
/// Of [`MAX_HANDSHAKES`], how many one peer address may hold: a peer that opens connections
/// and never finishes their handshakes needs many addresses to hold up everyone's.
const MAX_HANDSHAKES_PER_PEER: usize = 16;
/// A connection from which nothing arrives for this long is closed. Longer than the HTTP/2
/// keepalive interval, whose pings live clients answer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause after a failed accept (e.g. out of file descriptors) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The server's rustls configuration from its PEM certificate chain and key.
pub fn server_config(chain: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_file_iter(chain)
        .with_context(|| format!("cannot read {}", chain.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad certificate in {}", chain.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the server key {}", key.display()))?;
    let verifier = Arc::new(PossessionOnly {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the server certificate does not match its key")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS session holding one of the server's connection slots until it closes.
pub type Connection = Limited<TlsStream<TcpStream>>;

/// Whether a peer's certificate chain (leaf first) verifies against this CA.
pub type Vouch = Arc<dyn Fn(&[CertificateDer<'static>]) -> bool + Send + Sync>;

/// Completed TLS sessions, sorted by whether their peer's certificate verified.
pub struct Incoming {
    pub authenticated: ReceiverStream<std::io::Result<Connection>>,
    pub anonymous: ReceiverStream<std::io::Result<Connection>>,
}

/// Where handshaken connections go.
#[derive(Clone)]
struct Sorter {
    vouch: Vouch,
    authenticated: Sender<std::io::Result<Connection>>,
    anonymous: Sender<std::io::Result<Connection>>,
    anonymous_slots: Arc<Semaphore>,
}

impl Sorter {
    fn is_closed(&self) -> bool {
        self.authenticated.is_closed() && self.anonymous.is_closed()
    }

    /// Hands `tls` to the stream its peer belongs to; an anonymous peer beyond
    /// [`MAX_ANONYMOUS_CONNECTIONS`] is closed.
    async fn sort(&self, tls: TlsStream<TcpStream>, peer: SocketAddr, slots: Slots) {
        let certified = tls
            .get_ref()
            .1
            .peer_certificates()
            .is_some_and(|chain| (self.vouch)(chain));
        if certified {
            let _ = self
                .authenticated
                .send(Ok(Limited::new(tls, IDLE_TIMEOUT, slots)))
                .await;
            return;
        }
        let Ok(slot) = self.anonymous_slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "refused: {MAX_ANONYMOUS_CONNECTIONS} connections without a client certificate are open");
            return;
        };
        let slots = slots.without_certificate(slot);
        let _ = self
            .anonymous
            .send(Ok(Limited::new(tls, IDLE_TIMEOUT, slots)))
            .await;
    }
}

/// Accepts TCP connections on `listener` and hands completed TLS sessions to the gRPC server,
/// sorted by `vouch`. Handshakes run concurrently, at most [`MAX_HANDSHAKES`] at once, each
/// bounded by [`HANDSHAKE_TIMEOUT`]; at most [`MAX_CONNECTIONS`] connections are open at once.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    vouch: Vouch,
) -> Incoming {
    let (authenticated, authenticated_rx) = tokio::sync::mpsc::channel(128);
    let (anonymous, anonymous_rx) = tokio::sync::mpsc::channel(128);
    let sorter = Sorter {
        vouch,
        authenticated,
        anonymous,
        anonymous_slots: Arc::new(Semaphore::new(MAX_ANONYMOUS_CONNECTIONS)),
    };
    tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), sorter));
    Incoming {
        authenticated: ReceiverStream::new(authenticated_rx),
        anonymous: ReceiverStream::new(anonymous_rx),
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, sorter: Sorter) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let peers = Arc::new(Peers::default());
    let handshaking_peers = Arc::new(Peers::default());
    loop {
        let (Ok(slot), Ok(handshaking)) = (
            slots.clone().acquire_owned().await,
            handshakes.clone().acquire_owned().await,
        ) else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(peer_slot) = Peers::claim(&peers, peer.ip(), MAX_CONNECTIONS_PER_PEER)
                else {
                    tracing::warn!(%peer, "refused: too many connections from this address");
                    continue;
                };
                let Some(peer_handshake) =
                    Peers::claim(&handshaking_peers, peer.ip(), MAX_HANDSHAKES_PER_PEER)
                else {
                    tracing::warn!(%peer, "refused: too many handshakes from this address");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let slots = Slots {
                    _total: slot,
                    _peer: peer_slot,
                    _anonymous: None,
                };
                let handshake = handshake(
                    acceptor.clone(),
                    stream,
                    peer,
                    (handshaking, peer_handshake),
                );
                let sorter = sorter.clone();
                tokio::spawn(async move {
                    if let Some(tls) = handshake.await {
                        sorter.sort(tls, peer, slots).await;
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
        if sorter.is_closed() {
            return;
        }
    }
}

/// The TLS session of `stream`, holding `_permits` (a handshake slot, and one of its peer
/// address's) until it is done.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    _permits: (OwnedSemaphorePermit, PeerSlot),
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// A stream that gives its connection slots back when dropped, and fails its reads once the
/// peer has sent nothing for [`IDLE_TIMEOUT`] (a connection that never speaks HTTP/2 would
/// otherwise hold its slot for ever; live clients answer the server's keepalive pings).
pub struct Limited<S> {
    inner: S,
    /// Wakes the reader to check for silence; re-armed lazily, so a busy connection pays one
    /// clock read per read, not a timer update.
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_after: Duration,
    last_read: tokio::time::Instant,
    _slots: Slots,
}

impl<S> Limited<S> {
    fn new(inner: S, idle_after: Duration, slots: Slots) -> Self {
        let idle = Box::pin(tokio::time::sleep(idle_after));
        let last_read = tokio::time::Instant::now();
        Self {
            inner,
            idle,
            idle_after,
            last_read,
            _slots: slots,
        }
    }

    /// Pending while the peer has spoken within `idle_after`; ready once it has been silent.
    fn poll_silence(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        while self.idle.as_mut().poll(cx).is_ready() {
            let deadline = self.last_read + self.idle_after;
            if tokio::time::Instant::now() >= deadline {
                return Poll::Ready(());
            }
            self.idle.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

/// The slots one connection holds: one of the server's, one of its peer address's, and for a
/// peer without a verified certificate one of theirs.
pub struct Slots {
    _total: OwnedSemaphorePermit,
    _peer: PeerSlot,
    _anonymous: Option<OwnedSemaphorePermit>,
}

impl Slots {
    /// These slots and one of the connections without a verified certificate.
    fn without_certificate(self, slot: OwnedSemaphorePermit) -> Self {
        Self {
            _anonymous: Some(slot),
            ..self
        }
    }
}

/// Open connections per peer address.
#[derive(Default)]
struct Peers {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Peers {
    /// A slot for `ip`, unless it already holds `limit`.
    fn claim(peers: &Arc<Peers>, ip: IpAddr, limit: usize) -> Option<PeerSlot> {
        let mut open = peers.open.lock().ok()?;
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            peers: peers.clone(),
            ip,
        })
    }
}

/// One connection of a peer address, released on drop.
pub struct PeerSlot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let Ok(mut open) = self.peers.open.lock() else {
            return;
        };
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Connected for Limited<TlsStream<TcpStream>> {
    type ConnectInfo = <TlsStream<TcpStream> as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.last_read = tokio::time::Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending if this.poll_silence(cx).is_ready() => Poll::Ready(Err(
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle"),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Requests a client certificate and checks the handshake signature made with its key; the
/// chain itself is checked per call by the identity layer.
#[derive(Debug)]
struct PossessionOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PossessionOnly {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Chain, validity and usage are verified by `identity::Authenticator` before any use.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The provider every TLS connection of this process uses.
pub fn install_provider() {
    // Fails only if a provider is already installed, which is the same one.
    let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn limited(inner: tokio::io::DuplexStream, idle: Duration) -> Limited<tokio::io::DuplexStream> {
        let total = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let peer = Peers::claim(
            &Arc::new(Peers::default()),
            IpAddr::from([127, 0, 0, 1]),
            MAX_CONNECTIONS_PER_PEER,
        )
        .unwrap();
        Limited::new(
            inner,
            idle,
            Slots {
                _total: total,
                _peer: peer,
                _anonymous: None,
            },
        )
    }

    #[tokio::test]
    async fn a_silent_peer_is_cut_off_and_a_talking_one_is_not() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut stream = limited(server, Duration::from_millis(200));
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        let error = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn one_address_gets_at_most_its_share_of_connections() {
        let peers = Arc::new(Peers::default());
        let ip = IpAddr::from([10, 0, 0, 1]);
        let held: Vec<_> = (0..MAX_CONNECTIONS_PER_PEER)
            .map(|_| Peers::claim(&peers, ip, MAX_CONNECTIONS_PER_PEER).unwrap())
            .collect();
        assert!(Peers::claim(&peers, ip, MAX_CONNECTIONS_PER_PEER).is_none());
        assert!(
            Peers::claim(
                &peers,
                IpAddr::from([10, 0, 0, 2]),
                MAX_CONNECTIONS_PER_PEER
            )
            .is_some()
        );
        drop(held);
        assert!(Peers::claim(&peers, ip, MAX_CONNECTIONS_PER_PEER).is_some());
    }
}
