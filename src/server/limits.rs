//! What a caller may make the server spend: message sizes per service, calls in flight, and
//! how long one call may take.
//!
//! Callers come in two tiers, decided per connection by [`super::tls`]: those whose client
//! certificate verified against this CA, and everyone else (enrollment, unseal, seal status,
//! health, reflection in `--dev`). Each tier is served by its own HTTP/2 settings (see
//! [`Tier`]); callers without a certificate get small flow-control windows, few streams, a
//! small share of the calls in flight and a short deadline, so a peer that half-sends large
//! requests cannot pin memory or crowd out authenticated systems.
//!
//! Within a tier, no one caller can take every call in flight:
//!
//! - A verified identity (all its certificates together) holds at most
//!   [`MAX_CALLS_PER_IDENTITY`]; systems together at most [`MAX_CALLS`] less
//!   [`ADMINISTRATOR_RESERVE`], so the administrators (the security administrator's `seal`
//!   among them) are always served. The caller is resolved here once per call and handed to
//!   the handler in the call's extensions ([`Resolved`]).
//! - Callers without a certificate share [`MAX_ANONYMOUS_CALLS`], at most
//!   [`MAX_ANONYMOUS_CALLS_PER_PEER`] per address, in a [`Pool`] that evicts: a newcomer
//!   cancels the oldest call (of its own address first) whose request has not fully arrived.
//!   A client sends its small request at once, so a flood of calls that send headers and never
//!   their body only evicts its own kind; a call whose request has arrived is never evicted
//!   (the newcomer is refused when only such calls hold the places).
//!
//! A call beyond a limit is refused at once with `ResourceExhausted`, never queued; a call
//! over its deadline gets `DeadlineExceeded`; an oversized message gets tonic's `OutOfRange`
//! ("decoded message length too large: found N bytes, the limit is: L bytes"). Every such
//! refusal is audited by the refusal layer around this one.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower_layer::Layer;
use tower_service::Service;

use super::identity::{Authenticator, Kind, Principal, Resolved};
use super::slots::{Pool, Speaker, Ticket};

/// Largest request message of the certificate authority (CSRs, registrations) and of the seal
/// service (shares).
pub const CA_MESSAGE: usize = 64 * 1024;
pub const SEAL_MESSAGE: usize = 64 * 1024;
/// Largest plaintext or message the key-management centre takes (Encrypt, Sign, Verify).
pub const KMS_PAYLOAD: usize = 1024 * 1024;
/// Largest request message of the key-management centre: the payload and 64 KiB for its AAD,
/// key id and envelope (1,114,112 bytes).
pub const KMS_MESSAGE: usize = KMS_PAYLOAD + 64 * 1024;
/// Largest request message of the audit, health and reflection services.
pub const SMALL_MESSAGE: usize = 16 * 1024;

/// Calls in flight across the server; more are refused with `ResourceExhausted`.
pub const MAX_CALLS: usize = 1024;
/// Of [`MAX_CALLS`], how many only administrators may use: systems cannot lock them out.
pub const ADMINISTRATOR_RESERVE: usize = 64;
/// Calls one verified identity may have in flight.
pub const MAX_CALLS_PER_IDENTITY: usize = 128;
/// Of [`MAX_CALLS`], how many callers without a client certificate may hold.
pub const MAX_ANONYMOUS_CALLS: usize = 64;
/// Of [`MAX_ANONYMOUS_CALLS`], how many one address may hold.
pub const MAX_ANONYMOUS_CALLS_PER_PEER: usize = 8;

/// Health checks are exempt from the call limits: they cost microseconds, hold no body, and a
/// loaded server must still look alive to its orchestrator.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// The HTTP/2 settings and call limits of one tier of callers.
#[derive(Debug, Clone, Copy)]
pub struct Tier {
    /// Named in refusals: "calls" or "calls without a client certificate".
    pub calls: &'static str,
    /// Longest one call may take, from its headers to its answer (the request body included).
    pub deadline: Duration,
    /// Whether callers are verified identities (resolved per call) or anonymous (counted
    /// per address, evicting).
    pub verified: bool,
    pub max_streams_per_connection: u32,
    /// HTTP/2 flow-control windows; None keeps hyper's (1 MiB each).
    pub stream_window: Option<u32>,
    pub connection_window: Option<u32>,
    /// Largest header block a peer may send.
    pub max_header_list: Option<u32>,
}

/// Callers whose certificate verified.
pub const AUTHENTICATED: Tier = Tier {
    calls: "calls",
    deadline: Duration::from_secs(60),
    verified: true,
    max_streams_per_connection: 256,
    stream_window: None,
    connection_window: None,
    max_header_list: None,
};

/// Callers without a (valid) client certificate: one connection buffers at most 128 KiB of
/// request data, and all of them together hold at most [`MAX_ANONYMOUS_CALLS`] calls of at
/// most [`CA_MESSAGE`] each, for at most 10 s.
pub const ANONYMOUS: Tier = Tier {
    calls: "calls without a client certificate",
    deadline: Duration::from_secs(10),
    verified: false,
    max_streams_per_connection: 8,
    stream_window: Some(64 * 1024),
    connection_window: Some(128 * 1024),
    max_header_list: Some(8 * 1024),
};

/// A bound on calls in flight: a counter, never a queue. (Not a tokio semaphore: its release
/// takes the waiters' lock on every call, and nobody here ever waits.)
#[derive(Clone)]
pub struct Bound {
    in_flight: Arc<AtomicUsize>,
    limit: usize,
}

impl Bound {
    pub fn new(limit: usize) -> Self {
        Self {
            in_flight: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// A place among the calls in flight, or `ResourceExhausted` naming this limit and whose
    /// `calls` it counts.
    fn take(&self, calls: &str) -> Result<Permit, Status> {
        let permit = Permit(self.in_flight.clone());
        if permit.0.fetch_add(1, Ordering::AcqRel) < self.limit {
            return Ok(permit);
        }
        drop(permit);
        Err(busy(self.limit, calls))
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// The refusal of a call beyond `limit` of `calls`.
fn busy(limit: usize, calls: &str) -> Status {
    tracing::debug!(limit, calls, "load shed: call refused");
    Status::resource_exhausted(format!(
        "server busy: {limit} {calls} are in flight, the most it takes; retry with backoff"
    ))
}

/// One call counted in a [`Bound`] until dropped.
struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Calls in flight per verified identity, each at most `limit`. Identities are counted by a
/// keyed hash (no allocation per call); two that collided would only share a limit.
#[derive(Clone)]
struct Shares {
    counts: Arc<Mutex<HashMap<u64, usize>>>,
    keys: std::hash::RandomState,
    limit: usize,
}

impl Shares {
    fn new(limit: usize) -> Self {
        Self {
            counts: Arc::default(),
            keys: std::hash::RandomState::new(),
            limit,
        }
    }

    /// A place among `identity`'s calls, or `ResourceExhausted`.
    fn take(&self, identity: &str) -> Result<SharePermit, Status> {
        let key = std::hash::BuildHasher::hash_one(&self.keys, identity);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.limit {
            return Err(busy(self.limit, &format!("calls of {identity}")));
        }
        *count += 1;
        Ok(SharePermit {
            shares: self.clone(),
            identity: key,
        })
    }
}

/// One call of an identity, released on drop.
struct SharePermit {
    shares: Shares,
    identity: u64,
}

impl Drop for SharePermit {
    fn drop(&mut self) {
        let mut counts = self
            .shares
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.identity) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.identity);
            }
        }
    }
}

/// Who a tier's callers are, and what each may hold.
#[derive(Clone)]
enum Callers {
    /// Verified identities: resolved per call, a share each, systems within their part.
    Verified {
        auth: Arc<Authenticator>,
        identities: Shares,
        systems: Bound,
    },
    /// Callers without a certificate: a pool by address that evicts calls still arriving.
    Anonymous { pool: Arc<Pool> },
}

/// The admission layer of one tier: counts calls in flight, sheds those beyond the limits
/// and bounds each call's duration.
#[derive(Clone)]
pub struct Admission {
    /// Shared by both tiers.
    global: Bound,
    callers: Callers,
    tier: Tier,
}

impl Admission {
    /// Admission for `tier` under the server-wide bound `global`; `auth` resolves the callers
    /// of a verified tier.
    pub fn new(tier: Tier, global: Bound, auth: Arc<Authenticator>) -> Self {
        match tier.verified {
            true => Self {
                global,
                callers: Callers::Verified {
                    auth,
                    identities: Shares::new(MAX_CALLS_PER_IDENTITY),
                    systems: Bound::new(MAX_CALLS - ADMINISTRATOR_RESERVE),
                },
                tier,
            },
            false => Self::anonymous(tier, global),
        }
    }

    /// Admission for a tier of callers without a certificate.
    fn anonymous(tier: Tier, global: Bound) -> Self {
        let pool = Pool::sparing_spoken(MAX_ANONYMOUS_CALLS, MAX_ANONYMOUS_CALLS_PER_PEER);
        Self {
            global,
            callers: Callers::Anonymous { pool },
            tier,
        }
    }

    /// The permits a call holds while in flight, or the refusal. Resolves the caller of a
    /// verified tier into the request's extensions.
    fn admit(&self, request: &mut http::Request<Body>) -> Result<Permits, Status> {
        if request.uri().path().starts_with(HEALTH_PREFIX) {
            return Ok(Permits::default());
        }
        match &self.callers {
            Callers::Verified {
                auth,
                identities,
                systems,
            } => {
                let resolved = auth.resolve(request);
                let permits = self.verified(resolved.as_ref().ok(), identities, systems);
                request.extensions_mut().insert(Resolved(resolved));
                permits
            }
            Callers::Anonymous { pool } => self.stranger(pool, request),
        }
    }

    /// An identity's call: its own share and the systems' part unless it is an
    /// administrator, and the global bound. A caller that did not resolve (it will be refused
    /// by its handler) counts in the global bound only.
    fn verified(
        &self,
        principal: Option<&Principal>,
        identities: &Shares,
        systems: &Bound,
    ) -> Result<Permits, Status> {
        let administrator = principal.is_some_and(|p| matches!(p.kind, Kind::Administrator(_)));
        let share = match principal {
            Some(principal) => Some(identities.take(&principal.spiffe_id)?),
            None => None,
        };
        let system = match principal.is_some() && !administrator {
            true => Some(systems.take("calls of systems")?),
            false => None,
        };
        Ok(Permits {
            _share: share,
            _system: system,
            _global: Some(self.global.take("calls")?),
            ticket: None,
        })
    }

    /// A call without a certificate: a place in the pool of its address (evicting the oldest
    /// call still arriving), and the global bound. Its body tells the pool once it arrived.
    fn stranger(
        &self,
        pool: &Arc<Pool>,
        request: &mut http::Request<Body>,
    ) -> Result<Permits, Status> {
        let peer = peer(request).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let ticket = pool.try_admit(peer).ok_or_else(|| {
            busy(
                MAX_ANONYMOUS_CALLS,
                "calls without a client certificate (at most 8 per address)",
            )
        })?;
        let global = self.global.take("calls")?;
        let body = std::mem::replace(request.body_mut(), Body::empty());
        *request.body_mut() = Body::new(Arrival {
            inner: body,
            speaker: Some(ticket.speaker()),
        });
        Ok(Permits {
            _global: Some(global),
            ticket: Some(ticket),
            ..Permits::default()
        })
    }
}

/// The peer address of a request's connection (TLS, or plain TCP).
fn peer<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    match extensions.get::<TlsConnectInfo<TcpConnectInfo>>() {
        Some(tls) => tls.get_ref().remote_addr(),
        None => extensions.get::<TcpConnectInfo>()?.remote_addr(),
    }
}

impl Tier {
    /// The answer to a call that outlived [`Tier::deadline`].
    fn overdue(&self) -> Status {
        Status::deadline_exceeded(format!(
            "the call did not complete within {:?}, the server's limit for {}",
            self.deadline, self.calls
        ))
    }
}

/// The answer to a call without a certificate cancelled for a newer one.
fn evicted() -> Status {
    Status::resource_exhausted(format!(
        "cancelled: the request had not arrived when newer calls needed its place \
         ({MAX_ANONYMOUS_CALLS} calls without a client certificate, \
         {MAX_ANONYMOUS_CALLS_PER_PEER} per address); send the request at once and retry"
    ))
}

/// Held by an admitted call until it completes.
#[derive(Default)]
struct Permits {
    _share: Option<SharePermit>,
    _system: Option<Permit>,
    _global: Option<Permit>,
    /// An anonymous call's place in its pool: evicted means cancelled.
    ticket: Option<Ticket>,
}

/// A request body that tells its call's pool entry once the whole request has arrived.
struct Arrival {
    inner: Body,
    speaker: Option<Speaker>,
}

impl http_body::Body for Arrival {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let arrived = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => http_body::Body::is_end_stream(&self.inner),
            _ => false,
        };
        if arrived && let Some(speaker) = self.speaker.take() {
            speaker.spoke();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

impl<S> Layer<S> for Admission {
    type Service = Admitted<S>;

    fn layer(&self, inner: S) -> Admitted<S> {
        Admitted {
            inner,
            admission: self.clone(),
        }
    }
}

/// A service behind [`Admission`].
#[derive(Clone)]
pub struct Admitted<S> {
    inner: S,
    admission: Admission,
}

type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl<S> Service<http::Request<Body>> for Admitted<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Answer {
        let mut permits = match self.admission.admit(&mut request) {
            Ok(permits) => permits,
            Err(refusal) => return Box::pin(std::future::ready(Ok(refusal.into_http()))),
        };
        let tier = self.admission.tier;
        let call = tokio::time::timeout(tier.deadline, self.inner.call(request));
        Box::pin(async move {
            let answer = match permits.ticket.as_mut() {
                Some(ticket) => tokio::select! {
                    answer = call => answer,
                    () = ticket.evicted() => return Ok(evicted().into_http()),
                },
                None => call.await,
            };
            drop(permits);
            answer.unwrap_or_else(|_| Ok(tier.overdue().into_http()))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A service that reads the request body, then answers after `delay`.
    #[derive(Clone)]
    struct Slow(Duration);

    impl Service<http::Request<Body>> for Slow {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = Answer;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<Body>) -> Answer {
            let delay = self.0;
            Box::pin(async move {
                let _ = http_body_util::BodyExt::collect(request.into_body()).await;
                tokio::time::sleep(delay).await;
                Ok(http::Response::new(Body::empty()))
            })
        }
    }

    /// A request from `host` (10.0.0.host) whose body arrives complete.
    fn request(path: &str, host: u8) -> http::Request<Body> {
        let mut request = http::Request::post(path)
            .body(Body::new(http_body_util::Full::new(Bytes::from_static(
                b"m",
            ))))
            .unwrap();
        let remote = SocketAddr::from(([10, 0, 0, host], 40_000));
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(remote),
        });
        request
    }

    /// A request from `host` whose body never arrives (headers only, then silence).
    fn stalled(path: &str, host: u8) -> http::Request<Body> {
        let mut request = request(path, host);
        let never = http_body_util::StreamBody::new(futures_never());
        *request.body_mut() = Body::new(never);
        request
    }

    fn futures_never()
    -> impl tokio_stream::Stream<Item = Result<Frame<Bytes>, Status>> + Send + 'static {
        tokio_stream::pending()
    }

    fn code(response: &http::Response<Body>) -> Option<&str> {
        response.headers().get("grpc-status")?.to_str().ok()
    }

    fn message(response: &http::Response<Body>) -> String {
        let message = response.headers().get("grpc-message").unwrap();
        message.to_str().unwrap().replace("%20", " ")
    }

    fn anonymous(deadline: Duration, global: &Bound) -> Admission {
        let tier = Tier {
            deadline,
            ..ANONYMOUS
        };
        Admission::anonymous(tier, global.clone())
    }

    #[tokio::test]
    async fn an_address_beyond_its_share_of_arrived_calls_is_refused_at_once() {
        let admission = anonymous(Duration::from_secs(5), &Bound::new(1000));
        let mut service = admission.layer(Slow(Duration::from_millis(300)));
        let held: Vec<_> = (0..MAX_ANONYMOUS_CALLS_PER_PEER)
            .map(|_| tokio::spawn(service.call(request("/a/b", 1))))
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = tokio::time::Instant::now();
        let refused = service.call(request("/a/b", 1)).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(code(&refused), Some("8"));
        assert!(
            message(&refused).contains("8 per address"),
            "{}",
            message(&refused)
        );
        // Another address is served meanwhile, and the first again once its calls end.
        assert_eq!(code(&service.call(request("/a/b", 2)).await.unwrap()), None);
        for call in held {
            assert_eq!(code(&call.await.unwrap().unwrap()), None);
        }
        assert_eq!(code(&service.call(request("/a/b", 1)).await.unwrap()), None);
    }

    #[tokio::test]
    async fn calls_whose_request_never_arrives_make_way_for_newcomers() {
        let global = Bound::new(1000);
        let admission = anonymous(Duration::from_secs(5), &global);
        let mut service = admission.layer(Slow(Duration::from_millis(10)));
        // A flood from many addresses fills every place with calls that never send a body.
        let flood: Vec<_> = (0..MAX_ANONYMOUS_CALLS)
            .map(|n| tokio::spawn(service.call(stalled("/a/b", 100 + (n % 64) as u8))))
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // An honest caller is served at once: the oldest stalled call made way.
        let honest = service.call(request("/govtrust.ca.v1.CertificateAuthority/Enroll", 7));
        assert_eq!(code(&honest.await.unwrap()), None);
        let first = flood.into_iter().next().unwrap().await.unwrap().unwrap();
        assert_eq!(code(&first), Some("8"));
        assert!(
            message(&first).contains("had not arrived"),
            "{}",
            message(&first)
        );
    }

    #[tokio::test]
    async fn the_global_bound_holds_and_health_is_exempt() {
        let global = Bound::new(1);
        let mut first =
            anonymous(Duration::from_secs(5), &global).layer(Slow(Duration::from_millis(300)));
        let mut second =
            anonymous(Duration::from_secs(5), &global).layer(Slow(Duration::from_millis(300)));
        let held = first.call(request("/govtrust.kms.v1.KeyManagement/Encrypt", 1));
        let refused = second.call(request("/a/b", 2)).await.unwrap();
        assert_eq!(code(&refused), Some("8"));
        assert!(message(&refused).contains("1 calls are in flight"));
        let health = second.call(request("/grpc.health.v1.Health/Check", 2));
        assert_eq!(code(&health.await.unwrap()), None);
        assert_eq!(code(&held.await.unwrap()), None);
    }

    #[tokio::test]
    async fn a_call_over_its_deadline_is_answered_deadline_exceeded_and_frees_its_permits() {
        let global = Bound::new(1);
        let admission = anonymous(Duration::from_millis(100), &global);
        let mut service = admission.layer(Slow(Duration::from_secs(30)));
        let overdue = service.call(request("/a/b", 1)).await.unwrap();
        assert_eq!(code(&overdue), Some("4"));
        assert!(
            message(&overdue).contains("within 100ms"),
            "{}",
            message(&overdue)
        );
        assert_eq!(global.in_flight(), 0);
    }

    #[test]
    fn an_identity_holds_at_most_its_share() {
        let shares = Shares::new(2);
        let held = [
            shares.take("spiffe://t/a").unwrap(),
            shares.take("spiffe://t/a").unwrap(),
        ];
        let refused = shares.take("spiffe://t/a").err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("2 calls of spiffe://t/a"),
            "{}",
            refused.message()
        );
        assert!(shares.take("spiffe://t/b").is_ok());
        drop(held);
        assert!(shares.take("spiffe://t/a").is_ok());
        assert!(shares.counts.lock().unwrap().is_empty());
    }
}
