//! A tower layer around every gRPC service that hands each refused call to
//! [`Refusals`], so no handler can forget to audit one.
//!
//! tonic answers a handler's error as a trailers-only response, with `grpc-status` in the
//! headers; the layer reads it there. `Unauthenticated` becomes `authn.failed`,
//! `PermissionDenied` becomes `authz.denied`, `ResourceExhausted`, `DeadlineExceeded` and
//! `OutOfRange` (the admission layer's refusals, and oversized messages) `limit.refused`. The peer address and certificates come from the
//! connection info tonic puts in the request's extensions. Enroll and EnrollPerson are left to their handlers, which
//! records `ca.enroll.failed` with the token's digest prefix (a layer cannot see the token).

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::CertificateDer;
use tonic::codegen::http::{Request, Response, Uri};
use tonic::codegen::{BoxFuture, Service};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Code, Status};

use super::identity::{Authenticator, fingerprint};
use super::refusals::{Kind, Refusal, Refusals};

/// The gRPC paths whose refusals their handlers record themselves.
pub const ENROLL: &str = "/govtrust.ca.v1.CertificateAuthority/Enroll";
pub const ENROLL_PERSON: &str = "/govtrust.ca.v1.CertificateAuthority/EnrollPerson";

/// Wraps services in [`RefusalService`].
#[derive(Clone)]
pub struct RefusalLayer {
    refusals: Arc<Refusals>,
    auth: Arc<Authenticator>,
}

impl RefusalLayer {
    pub fn new(refusals: Arc<Refusals>, auth: Arc<Authenticator>) -> Self {
        Self { refusals, auth }
    }
}

impl<S> tower_layer::Layer<S> for RefusalLayer {
    type Service = RefusalService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefusalService {
            inner,
            refusals: self.refusals.clone(),
            auth: self.auth.clone(),
        }
    }
}

/// Passes calls through and records the refused ones.
#[derive(Clone)]
pub struct RefusalService<S> {
    inner: S,
    refusals: Arc<Refusals>,
    auth: Arc<Authenticator>,
}

impl<S, B, R> Service<Request<B>> for RefusalService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = Call::of(&request);
        // The clone that was made ready is the one that serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let refusals = self.refusals.clone();
        let auth = self.auth.clone();
        Box::pin(async move {
            let response = inner.call(request).await?;
            if let Some(refusal) = call.refusal(&response, &auth) {
                refusals.record(refusal).await;
            }
            Ok(response)
        })
    }
}

/// What the layer keeps of a request: cheap clones, read only if the call is refused.
struct Call {
    uri: Uri,
    connection: Option<TlsConnectInfo<TcpConnectInfo>>,
}

impl Call {
    fn of<B>(request: &Request<B>) -> Self {
        Self {
            uri: request.uri().clone(),
            connection: request
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .cloned(),
        }
    }

    /// The refusal a response reports, if it is one the layer records.
    fn refusal<R>(&self, response: &Response<R>, auth: &Authenticator) -> Option<Refusal> {
        // Answers that carry a body put grpc-status in the trailers: no lookup beyond this one.
        response.headers().get("grpc-status")?;
        let status = Status::from_header_map(response.headers())?;
        let kind = kind(status.code())?;
        let method = self.uri.path();
        // Enroll's handler records its own refusals; the limits' come before it runs.
        if (method == ENROLL || method == ENROLL_PERSON) && kind != Kind::Limit {
            return None;
        }
        let fingerprint = self.fingerprint();
        let verified = match kind {
            Kind::Authorization | Kind::Limit => self.verified(auth),
            _ => None,
        };
        let actor = verified
            .or_else(|| fingerprint.clone())
            .unwrap_or_else(|| "anonymous".to_owned());
        let mut refusal = Refusal::new(kind, actor, self.peer(), method, &status);
        let certificate = fingerprint.map(|f| ("certificate".to_owned(), f));
        refusal.details.extend(certificate);
        Some(refusal)
    }

    /// The caller's verified SPIFFE id (cached by the authenticator from the call itself).
    fn verified(&self, auth: &Authenticator) -> Option<String> {
        let certs = self.certificates()?;
        auth.principal(Some(certs.as_slice()))
            .ok()
            .map(|p| p.spiffe_id)
    }

    /// `sha256:<hex>` of the leaf certificate the caller presented, if any.
    fn fingerprint(&self) -> Option<String> {
        let certs = self.certificates()?;
        let leaf = certs.first()?;
        Some(format!("sha256:{}", hex::encode(fingerprint(leaf))))
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.connection.as_ref()?.get_ref().remote_addr()
    }

    fn certificates(&self) -> Option<Arc<Vec<CertificateDer<'static>>>> {
        self.connection.as_ref()?.peer_certs()
    }
}

/// The refusals the layer records, by status code.
fn kind(code: Code) -> Option<Kind> {
    match code {
        Code::Unauthenticated => Some(Kind::Authentication),
        Code::PermissionDenied => Some(Kind::Authorization),
        Code::ResourceExhausted | Code::DeadlineExceeded | Code::OutOfRange => Some(Kind::Limit),
        _ => None,
    }
}
