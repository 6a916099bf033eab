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
//! A call beyond a limit is refused at once with `ResourceExhausted`, never queued; a call
//! over its deadline gets `DeadlineExceeded`; an oversized message gets tonic's `OutOfRange`
//! ("decoded message length too large: found N bytes, the limit is: L bytes").

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::Status;
use tonic::body::Body;
use tower_layer::Layer;
use tower_service::Service;

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
/// Of [`MAX_CALLS`], how many callers without a client certificate may hold.
pub const MAX_ANONYMOUS_CALLS: usize = 64;

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
    /// Calls this tier may have in flight (within [`MAX_CALLS`]); None: only the global bound.
    pub max_calls: Option<usize>,
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
    max_calls: None,
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
    max_calls: Some(MAX_ANONYMOUS_CALLS),
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
        let limit = self.limit;
        tracing::debug!(limit, calls, "load shed: call refused");
        Err(Status::resource_exhausted(format!(
            "server busy: {limit} {calls} are in flight, the most it takes; retry with backoff"
        )))
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// One call counted in a [`Bound`] until dropped.
struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The admission layer of one tier: counts calls in flight, sheds those beyond the limits
/// and bounds each call's duration.
#[derive(Clone)]
pub struct Admission {
    /// Shared by both tiers.
    global: Bound,
    /// This tier's own share, if it has one.
    share: Option<Bound>,
    tier: Tier,
}

impl Admission {
    /// Admission for `tier` under the server-wide bound `global`.
    pub fn new(tier: Tier, global: Bound) -> Self {
        Self {
            global,
            share: tier.max_calls.map(Bound::new),
            tier,
        }
    }

    /// The permits a call to `path` holds while in flight, or the refusal.
    fn admit(&self, path: &str) -> Result<Permits, Status> {
        if path.starts_with(HEALTH_PREFIX) {
            return Ok(Permits::default());
        }
        let share = match &self.share {
            Some(share) => Some(share.take(self.tier.calls)?),
            None => None,
        };
        let global = Some(self.global.take("calls")?);
        Ok(Permits {
            _share: share,
            _global: global,
        })
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

/// Held by an admitted call until it completes.
#[derive(Default)]
struct Permits {
    _share: Option<Permit>,
    _global: Option<Permit>,
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

    fn call(&mut self, request: http::Request<Body>) -> Answer {
        let permits = match self.admission.admit(request.uri().path()) {
            Ok(permits) => permits,
            Err(refusal) => return Box::pin(std::future::ready(Ok(refusal.into_http()))),
        };
        let tier = self.admission.tier;
        let call = self.inner.call(request);
        Box::pin(async move {
            let answer = tokio::time::timeout(tier.deadline, call).await;
            drop(permits);
            answer.unwrap_or_else(|_| Ok(tier.overdue().into_http()))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A service that answers after `delay`.
    #[derive(Clone)]
    struct Slow(Duration);

    impl Service<http::Request<Body>> for Slow {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = Answer;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Body>) -> Answer {
            let delay = self.0;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(http::Response::new(Body::empty()))
            })
        }
    }

    fn request(path: &str) -> http::Request<Body> {
        http::Request::post(path).body(Body::empty()).unwrap()
    }

    fn code(response: &http::Response<Body>) -> Option<&str> {
        response.headers().get("grpc-status")?.to_str().ok()
    }

    fn message(response: &http::Response<Body>) -> String {
        let message = response.headers().get("grpc-message").unwrap();
        message.to_str().unwrap().replace("%20", " ")
    }

    fn tier(max_calls: Option<usize>, deadline: Duration) -> Tier {
        Tier {
            max_calls,
            deadline,
            ..ANONYMOUS
        }
    }

    #[tokio::test]
    async fn calls_beyond_the_share_are_refused_at_once_and_admitted_again_when_it_frees() {
        let admission = Admission::new(tier(Some(2), Duration::from_secs(5)), Bound::new(10));
        let mut service = admission.layer(Slow(Duration::from_millis(300)));
        let held = [service.call(request("/a/b")), service.call(request("/a/b"))];
        let started = tokio::time::Instant::now();
        let refused = service.call(request("/a/b")).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(code(&refused), Some("8"));
        assert!(message(&refused).contains("2 calls without a client certificate are in flight"));
        for call in held {
            assert_eq!(code(&call.await.unwrap()), None);
        }
        assert_eq!(code(&service.call(request("/a/b")).await.unwrap()), None);
    }

    #[tokio::test]
    async fn the_global_bound_holds_across_tiers_and_health_is_exempt() {
        let global = Bound::new(1);
        let mut authenticated =
            Admission::new(AUTHENTICATED, global.clone()).layer(Slow(Duration::from_millis(300)));
        let mut anonymous =
            Admission::new(ANONYMOUS, global).layer(Slow(Duration::from_millis(300)));
        let held = authenticated.call(request("/govtrust.kms.v1.KeyManagement/Encrypt"));
        let refused = anonymous.call(request("/a/b")).await.unwrap();
        assert_eq!(code(&refused), Some("8"));
        assert!(message(&refused).contains("1 calls are in flight"));
        let health = anonymous.call(request("/grpc.health.v1.Health/Check"));
        assert_eq!(code(&health.await.unwrap()), None);
        assert_eq!(code(&held.await.unwrap()), None);
    }

    #[tokio::test]
    async fn a_call_over_its_deadline_is_answered_deadline_exceeded_and_frees_its_permit() {
        let global = Bound::new(1);
        let admission = Admission::new(tier(None, Duration::from_millis(100)), global.clone());
        let mut service = admission.layer(Slow(Duration::from_secs(30)));
        let overdue = service.call(request("/a/b")).await.unwrap();
        assert_eq!(code(&overdue), Some("4"));
        assert!(
            message(&overdue).contains("within 100ms"),
            "{}",
            message(&overdue)
        );
        assert_eq!(global.in_flight(), 0);
    }
}
