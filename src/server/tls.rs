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
//! anonymous stream, which the server serves with tighter HTTP/2 limits.
//!
//! # Connection slots under a flood
//!
//! Of the [`MAX_CONNECTIONS`] (at most [`MAX_CONNECTIONS_PER_PEER`] per address), at most
//! [`MAX_HANDSHAKES`] are in their TLS handshake and at most [`MAX_ANONYMOUS_CONNECTIONS`] are
//! established without a verified certificate, so at least 3,072 are always left for
//! authenticated callers. Their connections are closed to make room only for a newer
//! connection of the same identity, beyond its [`MAX_CONNECTIONS_PER_IDENTITY`] (so one
//! enrolled system cannot take every slot either, however many certificates it renews: that
//! takes 32 identities). The handshake
//! and anonymous shares are [`Pool`]s: a newcomer from an address at its share
//! ([`MAX_HANDSHAKES_PER_PEER`] handshakes, [`MAX_ANONYMOUS_CONNECTIONS_PER_PEER`] anonymous
//! connections) closes that address's own oldest entry, so a flood from one address cannot
//! lock out its neighbours behind the same NAT; otherwise a full pool closes its oldest entry
//! to admit the newcomer. The accept loop never waits for either, so a flood can delay
//! nobody's connection; what it can do is close others':
//!
//! - *Silent connections* (TCP only, never a complete ClientHello) cost the attacker nothing
//!   but a socket. Filling the 512 handshakes takes at least 32 addresses (16 each); beyond
//!   that each one closes the oldest handshake whose ClientHello has not arrived, and one whose
//!   ClientHello has only if all 512 have (next item). A client is exposed only between the
//!   server accepting its connection and reading its ClientHello (usually already waiting in
//!   the socket): 512 newer connections would have to be accepted in that time. Each silent
//!   connection itself lasts until 512 newer ones arrive or [`HANDSHAKE_TIMEOUT`] passes.
//! - *ClientHellos without a finished handshake*: to close a handshake whose ClientHello has
//!   arrived, an attacker must complete 512 ClientHellos within that handshake's lifetime, from
//!   at least 32 addresses (a TLS 1.3 ClientHello without a key share costs the server only a
//!   HelloRetryRequest, no key exchange or signature, so such a flood is cheap to send):
//!   it is closed only once it is the oldest left and all 512 have spoken, and a newcomer that
//!   has not spoken is closed before any that has. A handshake takes a round trip or two, so
//!   against one of 10 ms that is over 50,000 ClientHellos a second, an attack on the server's
//!   CPU that no slot count prevents; a client on a link slow enough to take a second is cut
//!   off by 512 a second, and one that takes [`HANDSHAKE_TIMEOUT`] fails anyway.
//! - *Finished handshakes without a certificate* (the attacker does a full TLS handshake each):
//!   filling the 512 anonymous connections takes at least 16 addresses; beyond that each one
//!   closes the oldest anonymous connection. Such a flood can cut off callers without a
//!   certificate (Enroll, unseal, health) whose connection has seen 512 newer anonymous ones,
//!   and who must then reconnect; it cannot touch authenticated connections.
//!
//! An "address" here is an IPv4 address or an IPv6 /64 prefix ([`address_group`]): a host is
//! usually given a whole /64, which would otherwise be billions of addresses.

use std::collections::HashMap;
use std::future::Future;
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
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::slots::{Pool, Share, Ticket, address_group};

/// How long a client may take to finish the TLS handshake, from the server accepting its TCP
/// connection to its Finished message.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once (handshaking or established); more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 4096;
/// Of [`MAX_CONNECTIONS`], how many may be in their TLS handshake at once; one more closes the
/// oldest (preferring one whose ClientHello has not arrived).
const MAX_HANDSHAKES: usize = 512;
/// Of [`MAX_CONNECTIONS`], how many established connections may lack a verified certificate;
/// one more closes the oldest of them.
const MAX_ANONYMOUS_CONNECTIONS: usize = 512;
/// Connections one peer address may hold at once, so one host cannot take every slot.
const MAX_CONNECTIONS_PER_PEER: usize = 256;
/// Of [`MAX_HANDSHAKES`], how many one peer address may hold: filling them takes 32 addresses,
/// so one host cannot push out everyone else's handshakes.
const MAX_HANDSHAKES_PER_PEER: usize = 16;
/// Of [`MAX_ANONYMOUS_CONNECTIONS`], how many one peer address may hold: filling them takes 16
/// addresses, so one host (or a few behind one NAT) cannot push out everyone else's, while a
/// NAT with many enrolling machines behind it still gets a useful share.
const MAX_ANONYMOUS_CONNECTIONS_PER_PEER: usize = 32;
/// Of [`MAX_CONNECTIONS`], how many established connections one verified identity (all its
/// certificates together: a renewal gives no new share) may hold; one more closes its oldest.
/// Below [`MAX_CONNECTIONS_PER_PEER`], so one enrolled system cannot fill its address's share
/// (others behind the same NAT), and filling the server takes 32 identities, each
/// accountable. HTTP/2 carries many calls per connection; a client
/// rarely needs more than a few.
const MAX_CONNECTIONS_PER_IDENTITY: usize = 128;
/// A connection from which nothing arrives for this long is closed. Longer than the HTTP/2
/// keepalive interval, whose pings live clients answer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause after a failed accept (e.g. out of file descriptors) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The server's rustls configuration from its PEM certificate chain and key, and the handle
/// that installs a renewed certificate into it without a restart.
pub fn server_config(
    chain: &Path,
    key: &Path,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Arc<ServerCertificate>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain_pem =
        std::fs::read(chain).with_context(|| format!("cannot read {}", chain.display()))?;
    let key_pem = zeroize::Zeroizing::new(
        std::fs::read(key)
            .with_context(|| format!("cannot read the server key {}", key.display()))?,
    );
    let certificate = Arc::new(ServerCertificate {
        provider: provider.clone(),
        current: std::sync::RwLock::new(certified(&provider, &chain_pem, &key_pem)?),
    });
    let verifier = Arc::new(PossessionOnly {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificate.clone());
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(config), certificate))
}

/// The server's TLS certificate and key, replaceable while it runs: every handshake takes the
/// one installed last.
pub struct ServerCertificate {
    provider: Arc<CryptoProvider>,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificate").finish_non_exhaustive()
    }
}

impl ServerCertificate {
    /// Installs the chain and key (PEM) for the handshakes from now on; checks they match.
    pub fn install(&self, chain_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<()> {
        let certified = certified(&self.provider, chain_pem, key_pem)?;
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = certified;
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for ServerCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(current.clone())
    }
}

/// A certified key from PEM, checked to match.
fn certified(
    provider: &CryptoProvider,
    chain_pem: &[u8],
    key_pem: &[u8],
) -> anyhow::Result<Arc<rustls::sign::CertifiedKey>> {
    let certs = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("bad certificate in the server's chain")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("cannot read the server key")?;
    let certified = rustls::sign::CertifiedKey::from_der(certs, key, provider)
        .context("the server certificate does not match its key")?;
    Ok(Arc::new(certified))
}

/// A TLS session holding one of the server's connection slots until it closes.
pub type Connection = Limited<TlsStream<TcpStream>>;

/// Whether a peer's certificate chain (leaf first) verifies against this CA, and if so whose
/// identity it names: the SHA-256 of its SPIFFE id, what its connections count against.
pub type Vouch = Arc<dyn Fn(&[CertificateDer<'static>]) -> Option<[u8; 32]> + Send + Sync>;

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
    anonymous_slots: Arc<Pool>,
    /// Connections per verified identity.
    certified_slots: Arc<Pool>,
}

impl Sorter {
    fn is_closed(&self) -> bool {
        self.authenticated.is_closed() && self.anonymous.is_closed()
    }

    /// Hands `tls` to the stream its peer belongs to; an anonymous peer beyond its address's
    /// [`MAX_ANONYMOUS_CONNECTIONS_PER_PEER`] is closed.
    async fn sort(&self, tls: TlsStream<TcpStream>, peer: SocketAddr, slots: Slots) {
        let identity = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| (self.vouch)(chain));
        if let Some(identity) = identity {
            let ticket = self
                .certified_slots
                .admit_as(Share::Identity(identity), peer);
            let slots = slots.pooled(ticket, Pooled::Certified);
            let _ = self
                .authenticated
                .send(Ok(Limited::new(tls, IDLE_TIMEOUT, slots)))
                .await;
            return;
        }
        let ticket = self.anonymous_slots.admit(peer);
        let slots = slots.pooled(ticket, Pooled::Anonymous);
        let _ = self
            .anonymous
            .send(Ok(Limited::new(tls, IDLE_TIMEOUT, slots)))
            .await;
    }
}

/// Accepts TCP connections on `listener` and hands completed TLS sessions to the gRPC server,
/// sorted by `vouch`. Handshakes run concurrently, at most [`MAX_HANDSHAKES`] at once, each
/// bounded by [`HANDSHAKE_TIMEOUT`]; at most [`MAX_CONNECTIONS`] connections are open at once
/// (see the module documentation for what a flood can do).
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
        anonymous_slots: Pool::new(
            MAX_ANONYMOUS_CONNECTIONS,
            MAX_ANONYMOUS_CONNECTIONS_PER_PEER,
        ),
        certified_slots: Pool::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IDENTITY),
    };
    tokio::spawn(accept_loop(listener, config, sorter));
    Incoming {
        authenticated: ReceiverStream::new(authenticated_rx),
        anonymous: ReceiverStream::new(anonymous_rx),
    }
}

/// Waits only for one of the [`MAX_CONNECTIONS`]: the handshake slots never make it wait.
async fn accept_loop(listener: TcpListener, config: Arc<rustls::ServerConfig>, sorter: Sorter) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let admission = Admission {
        peers: Arc::new(Peers::default()),
        handshakes: Pool::new(MAX_HANDSHAKES, MAX_HANDSHAKES_PER_PEER),
        config,
        sorter,
    };
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => admission.start(stream, peer, slot),
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
        if admission.sorter.is_closed() {
            return;
        }
    }
}

/// What every accepted connection is admitted by: the shares of its address and of the
/// handshakes, and where it goes after its handshake.
struct Admission {
    peers: Arc<Peers>,
    handshakes: Arc<Pool>,
    config: Arc<rustls::ServerConfig>,
    sorter: Sorter,
}

impl Admission {
    /// Runs the handshake of `stream` in a task of its own, holding `slot`, unless its address
    /// already holds its share of connections or of handshakes.
    fn start(&self, stream: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        let Some(peer_slot) = Peers::claim(
            &self.peers,
            address_group(peer.ip()),
            MAX_CONNECTIONS_PER_PEER,
        ) else {
            tracing::warn!(%peer, "refused: {MAX_CONNECTIONS_PER_PEER} connections are open from this address");
            return;
        };
        let ticket = self.handshakes.admit(peer);
        let _ = stream.set_nodelay(true);
        let slots = Slots {
            _total: slot,
            _peer: peer_slot,
            pooled: None,
        };
        let (config, sorter) = (self.config.clone(), self.sorter.clone());
        tokio::spawn(async move {
            if let Some(tls) = handshake(config, stream, ticket).await {
                sorter.sort(tls, peer, slots).await;
            }
        });
    }
}

/// The TLS session of `stream`, holding its handshake slot `ticket` until it is done. The
/// ticket is marked as spoken once the whole ClientHello has arrived, so silent connections
/// are closed first when the slots run out.
async fn handshake(
    config: Arc<rustls::ServerConfig>,
    stream: TcpStream,
    mut ticket: Ticket,
) -> Option<TlsStream<TcpStream>> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let hello = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = phase(&mut ticket, deadline, "reading the ClientHello", hello).await?;
    ticket.spoke();
    let tls = start.into_stream(config);
    phase(&mut ticket, deadline, "TLS handshake", tls).await
}

/// What `step` (one phase of a handshake) yields, unless it fails, `deadline` passes or the
/// handshake's `ticket` is evicted for a newer one first.
async fn phase<T>(
    ticket: &mut Ticket,
    deadline: Instant,
    step: &str,
    work: impl Future<Output = std::io::Result<T>>,
) -> Option<T> {
    let peer = ticket.peer();
    tokio::select! {
        done = tokio::time::timeout_at(deadline, work) => match done {
            Ok(Ok(done)) => Some(done),
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "{step} failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "{step} timed out");
                None
            }
        },
        () = ticket.evicted() => {
            tracing::debug!(%peer, "{step}: closed to make room for a newer handshake");
            None
        }
    }
}

/// A stream that gives its connection slots back when dropped, and fails its reads once the
/// peer has sent nothing for [`IDLE_TIMEOUT`] (a connection that never speaks HTTP/2 would
/// otherwise hold its slot for ever; live clients answer the server's keepalive pings) or, for
/// a peer without a verified certificate, once a newer such connection took its slot.
pub struct Limited<S> {
    inner: S,
    /// Wakes the reader to check for silence; re-armed lazily, so a busy connection pays one
    /// clock read per read, not a timer update.
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_after: Duration,
    last_read: tokio::time::Instant,
    slots: Slots,
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
            slots,
        }
    }

    /// The error a read fails with once this connection's slot went to a newer one.
    fn evicted(&self) -> std::io::Error {
        match &self.slots.pooled {
            Some((ticket, Pooled::Anonymous)) => {
                tracing::warn!(peer = %ticket.peer(), "closed: the oldest connection without a client certificate (of {MAX_ANONYMOUS_CONNECTIONS} in all, {MAX_ANONYMOUS_CONNECTIONS_PER_PEER} per address), to make room for a newer one");
            }
            Some((ticket, Pooled::Certified)) => {
                tracing::warn!(peer = %ticket.peer(), "closed: the oldest of {MAX_CONNECTIONS_PER_IDENTITY} connections of one identity, to make room for a newer one");
            }
            None => {}
        }
        std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "closed to make room for a newer connection",
        )
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

/// The slots one connection holds: one of the server's, one of its peer address's, and after
/// the handshake one of its kind's pool (per identity, or of those without one).
pub struct Slots {
    _total: OwnedSemaphorePermit,
    _peer: PeerSlot,
    pooled: Option<(Ticket, Pooled)>,
}

/// Which pool an established connection holds a slot of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooled {
    /// Connections without a verified certificate: [`MAX_ANONYMOUS_CONNECTIONS`].
    Anonymous,
    /// Connections of one verified identity: [`MAX_CONNECTIONS_PER_IDENTITY`].
    Certified,
}

impl Slots {
    /// These slots and `ticket` of the `kind` pool.
    fn pooled(self, ticket: Ticket, kind: Pooled) -> Self {
        Self {
            pooled: Some((ticket, kind)),
            ..self
        }
    }

    /// Whether this connection's pool slot went to a newer connection (no wake-up registered).
    fn was_evicted(&mut self) -> bool {
        self.pooled
            .as_mut()
            .is_some_and(|(ticket, _)| ticket.was_evicted())
    }

    /// Ready once this connection's pool slot went to a newer connection.
    fn poll_evicted(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        match self.pooled.as_mut() {
            Some((ticket, _)) => ticket.poll_evicted(cx),
            None => Poll::Pending,
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
        // Checked before reading, so a peer that keeps data coming cannot outlive its eviction;
        // a waiting read registers for the eviction below.
        if this.slots.was_evicted() {
            return Poll::Ready(Err(this.evicted()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.last_read = tokio::time::Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending if this.slots.poll_evicted(cx).is_ready() => {
                Poll::Ready(Err(this.evicted()))
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
                pooled: None,
            },
        )
    }

    #[tokio::test]
    async fn an_anonymous_connection_fails_its_reads_once_evicted() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut stream = limited(server, IDLE_TIMEOUT);
        let pool = Pool::new(1, 1);
        let peer = SocketAddr::from(([10, 0, 0, 1], 4433));
        stream.slots.pooled = Some((pool.admit(peer), Pooled::Anonymous));
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();

        let reading = tokio::spawn(async move { stream.read(&mut buf).await });
        // The read is waiting for data when the eviction comes.
        tokio::task::yield_now().await;
        let _newer = pool.admit(SocketAddr::from(([10, 0, 0, 2], 4433)));
        let error = reading.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionAborted);
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
