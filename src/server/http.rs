//! The plain-HTTP port: what relying parties and monitoring fetch without a client certificate.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` when unsealed, `503 sealed` when not (JSON) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /ca/<ca>.crt` | a CA certificate, DER (`root`, `extranet`, `intranet`) |
//! | `POST /ocsp`, `GET /ocsp/<base64>` | OCSP (RFC 6960) for every CA; GET answers are cacheable (RFC 5019 headers) |
//! | `GET /crl/<ca>.crl` | the CA's current CRL, DER, with `ETag` and `Cache-Control: max-age` up to its nextUpdate |
//! | `GET /bundle.pem` | every CA certificate relying parties trust, PEM |
//! | `GET /bundle.json` | the trust anchors as a SPIFFE-style JWK set |
//!
//! Everything here is public: nothing served reveals a secret or a holder's data beyond what
//! its certificates publish anyway.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use govtrust_ca::{Authority, Ca, TrustAnchor, ocsp};
use govtrust_kms::Kms;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::bundle;
use super::metrics::{self, Metrics};
use super::slots::{Pool, Ticket};

/// How long an HTTP cache may keep a CRL or an OCSP answer (never past its nextUpdate): a
/// revocation reaches relying parties behind a cache within this time, and direct ones at once.
const STATUS_MAX_AGE: Duration = Duration::from_secs(300);

/// How long relying parties may cache CA certificates and bundles.
const CA_MAX_AGE: u64 = 3600;

/// What the HTTP handlers read.
pub struct Http {
    pub ca: Arc<Ca>,
    pub kms: Arc<Kms>,
    pub metrics: Arc<Metrics>,
    pub signing: Signing,
}

/// Binds the HTTP port; returns the listener and the address it got (port 0 picks one).
pub async fn bind(address: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for HTTP on {address}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Connections the HTTP port serves at once; a newcomer closes the oldest.
pub const MAX_CONNECTIONS: usize = 4096;
/// Of [`MAX_CONNECTIONS`], how many one address may hold; a newcomer closes its oldest.
const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last, however busy: a request, body included, is done by then.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(15);

/// Serves the HTTP port on `listener` until `stopped` changes: HTTP/1.1, at most
/// [`MAX_CONNECTIONS`] connections ([`MAX_CONNECTIONS_PER_ADDRESS`] per address), a newcomer
/// closing the oldest (of its address first) rather than being refused, each connection
/// sending its request head within [`HEADER_TIMEOUT`] and lasting at most
/// [`CONNECTION_LIFETIME`]: silent, slow or hoarding clients cannot hold the port relying
/// parties need, and OCSP and CRL clients make short requests.
///
/// Connections are accepted here and served by [`Lanes`]: one thread per core, each with a
/// single-threaded runtime of its own, so a request is read, answered and written on one
/// thread without waking another (on the shared runtime, the wake-ups between its workers were
/// most of the kernel's half of an OCSP answer's cost). A connection goes to the lane with the
/// fewest waiting to start; when every lane has [`LANE_QUEUE`] waiting, accepting pauses (new
/// connections wait in the kernel's backlog, holding no file of ours).
pub async fn serve(
    listener: TcpListener,
    http: Arc<Http>,
    mut stopped: watch::Receiver<()>,
) -> anyhow::Result<()> {
    let pool = Pool::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS);
    let lanes = Lanes::start(router(http)).await?;
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ticket = pool.admit(peer);
        match stream.into_std() {
            Ok(stream) => {
                let accepted = Accepted {
                    stream,
                    peer,
                    ticket,
                };
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = lanes.hand(accepted) => {}
                }
            }
            Err(error) => tracing::warn!(%error, "handing an HTTP connection over failed"),
        }
    }
    // No new connections from here; those in flight get a moment to finish.
    drop(listener);
    tokio::task::spawn_blocking(move || lanes.stop())
        .await
        .context("stopping the HTTP threads")
}

/// Connections one lane may have waiting to start before accepting pauses.
const LANE_QUEUE: usize = 64;
/// How long a stopping lane lets its connections finish.
const LANE_GRACE: Duration = Duration::from_secs(2);

/// A connection accepted and admitted to the pool, on its way to a lane.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
}

/// The threads that serve HTTP connections, each a single-threaded runtime.
struct Lanes {
    senders: Vec<tokio::sync::mpsc::Sender<Accepted>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Whether a stopped lane has been reported (once is enough).
    reported: std::sync::atomic::AtomicBool,
    /// Where the next search for the least busy lane starts.
    next: std::sync::atomic::AtomicUsize,
}

impl Lanes {
    /// One lane per core the process may use; each builds its runtime on its own thread and
    /// says whether it could.
    async fn start(router: Router) -> anyhow::Result<Lanes> {
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        let mut lanes = Lanes {
            senders: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
            reported: std::sync::atomic::AtomicBool::new(false),
            next: std::sync::atomic::AtomicUsize::new(0),
        };
        for index in 0..count {
            let (sender, receiver) = tokio::sync::mpsc::channel(LANE_QUEUE);
            let (ready, started) = tokio::sync::oneshot::channel();
            let router = router.clone();
            let thread = std::thread::Builder::new()
                .name(format!("govtrust-http-{index}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match runtime {
                        Ok(runtime) => {
                            let _ = ready.send(Ok(()));
                            runtime.block_on(lane(receiver, router));
                        }
                        Err(error) => {
                            let _ = ready.send(Err(error));
                        }
                    }
                })
                .context("cannot start an HTTP thread")?;
            lanes.threads.push(thread);
            started
                .await
                .context("an HTTP thread ended at start")?
                .context("cannot start an HTTP runtime")?;
            lanes.senders.push(sender);
        }
        Ok(lanes)
    }

    /// Hands `accepted` to the lane with the fewest connections waiting (in turn among equals),
    /// waiting for room when every lane is full.
    async fn hand(&self, accepted: Accepted) {
        let count = self.senders.len().max(1);
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut best: Option<&tokio::sync::mpsc::Sender<Accepted>> = None;
        for turn in 0..count {
            let Some(sender) = self.senders.get((start + turn) % count) else {
                continue;
            };
            if !sender.is_closed() && best.is_none_or(|b| sender.capacity() > b.capacity()) {
                best = Some(sender);
            }
        }
        let Some(lane) = best else {
            self.report_stopped();
            return;
        };
        if lane.send(accepted).await.is_err() {
            self.report_stopped();
        }
    }

    fn report_stopped(&self) {
        if !self
            .reported
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::error!("an HTTP thread has stopped; its connections are closed");
        }
    }

    /// Ends every lane (after [`LANE_GRACE`] for connections in flight) and waits for their
    /// threads.
    fn stop(self) {
        drop(self.senders);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("an HTTP thread panicked");
            }
        }
    }
}

/// Serves the connections handed to this lane until its sender is dropped, then gives those
/// in flight [`LANE_GRACE`] to finish.
async fn lane(mut receiver: tokio::sync::mpsc::Receiver<Accepted>, router: Router) {
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = receiver.recv() => accepted,
            // Reap finished connections so the set stays as large as what is open.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Some(Accepted {
            stream,
            peer,
            mut ticket,
        }) = accepted
        else {
            break;
        };
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "taking an HTTP connection over failed");
                continue;
            }
        };
        let service = service.clone();
        let address = Peer(peer.ip());
        let service =
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(address);
                hyper::service::Service::call(&service, request)
            });
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_LIFETIME, connection) => {}
                () = ticket.evicted() => {}
            }
        });
    }
    let _ = tokio::time::timeout(LANE_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

fn router(http: Arc<Http>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .route("/ca/{file}", get(ca_certificate))
        .route("/crl/{file}", get(crl))
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .layer(DefaultBodyLimit::max(ocsp::MAX_REQUEST_LEN))
        .route("/bundle.pem", get(bundle_pem))
        .route("/bundle.json", get(bundle_json))
        .fallback(not_found)
        .with_state(http)
}

async fn healthz(State(http): State<Arc<Http>>) -> Response {
    http.metrics.http.inc("healthz");
    let sealed = http.kms.is_sealed();
    let status = match sealed {
        true => StatusCode::SERVICE_UNAVAILABLE,
        false => StatusCode::OK,
    };
    let body = serde_json::json!({
        "status": if sealed { "sealed" } else { "ok" },
        "sealed": sealed,
    });
    let mut response = (status, body.to_string()).into_response();
    set(&mut response, header::CONTENT_TYPE, "application/json");
    set(&mut response, header::CACHE_CONTROL, "no-store");
    response
}

async fn metrics_page(State(http): State<Arc<Http>>) -> Response {
    http.metrics.http.inc("metrics");
    let mut page = String::new();
    let sealed = "govtrust_kms_sealed";
    metrics::header(
        &mut page,
        sealed,
        "1 while the key-management centre is sealed.",
        "gauge",
    );
    metrics::sample(&mut page, sealed, "", u8::from(http.kms.is_sealed()));
    crl_metrics(&http.ca, &mut page);
    http.metrics.render(&mut page);
    let mut response = page.into_response();
    set(
        &mut response,
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    );
    response
}

/// Each CA's current CRL: its number, entries and nextUpdate.
fn crl_metrics(ca: &Ca, page: &mut String) {
    let gauges = [
        (
            "govtrust_crl_number",
            "The number of each CA's current CRL.",
        ),
        (
            "govtrust_crl_entries",
            "Certificates each CA's current CRL lists.",
        ),
        (
            "govtrust_crl_next_update_timestamp_seconds",
            "When each CA's current CRL stops being fresh (Unix seconds).",
        ),
    ];
    for (index, (name, help)) in gauges.iter().enumerate() {
        metrics::header(page, name, help, "gauge");
        for authority in Authority::ALL {
            let Some(crl) = ca.crl(authority) else {
                continue;
            };
            let next_update = crl
                .next_update
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let value = [crl.number, crl.entries, next_update];
            let label = format!("ca=\"{authority}\"");
            metrics::sample(
                page,
                name,
                &label,
                value.get(index).copied().unwrap_or_default(),
            );
        }
    }
}

/// `GET /ca/<ca>.crt`: a CA certificate, DER; `national-<ca>.crt` for the SM2 CAs of the
/// national suite.
async fn ca_certificate(State(http): State<Arc<Http>>, Path(file): Path<String>) -> Response {
    let name = file.strip_suffix(".crt").unwrap_or_default();
    let (chain, name) = match name.strip_prefix("national-") {
        Some(name) => (http.ca.national_chain(), name),
        None => (Some(http.ca.chain()), name),
    };
    let (Some(chain), Ok(authority)) = (chain, name.parse::<Authority>()) else {
        return not_found(State(http)).await;
    };
    http.metrics.http.inc("ca");
    let der = chain.der(authority).to_vec();
    cacheable(der, "application/pkix-cert")
}

async fn crl(
    State(http): State<Arc<Http>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let authority = file
        .strip_suffix(".crl")
        .and_then(|name| name.parse::<Authority>().ok());
    let Some(authority) = authority else {
        return not_found(State(http)).await;
    };
    http.metrics.http.inc("crl");
    let Some(crl) = http.ca.crl(authority) else {
        let body = "no CRL yet: it is made once the key-management centre is unsealed\n";
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    };
    let tag = format!("\"{}-{}\"", authority, crl.number);
    let cache = Freshness::until(&tag, crl.next_update, http.ca.now());
    if cache.matches(&headers) {
        return cache.apply(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut response = crl.der.clone().into_response();
    set(&mut response, header::CONTENT_TYPE, "application/pkix-crl");
    cache.apply(response)
}

async fn ocsp_post(
    State(http): State<Arc<Http>>,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type.is_some_and(|t| !t.starts_with("application/ocsp-request")) {
        let body = "an OCSP request is sent as application/ocsp-request\n";
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, body).into_response();
    }
    let answer = answer(&http, peer, body.to_vec()).await;
    ocsp_response(answer.der, None)
}

/// `GET /ocsp/<base64 of the DER request, URL-encoded>` (RFC 6960 Appendix A.1), cacheable.
async fn ocsp_get(
    State(http): State<Arc<Http>>,
    Extension(Peer(peer)): Extension<Peer>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // The path as it came (percent-decoded once, here, not also by a `Path` extractor).
    let request = uri.path().strip_prefix("/ocsp/").unwrap_or_default();
    let Some(der) = decode_get(request) else {
        http.metrics.http.inc("ocsp");
        http.metrics.ocsp.inc("malformed");
        return ocsp_response(Arc::new(ocsp::MALFORMED_REQUEST.to_vec()), None);
    };
    let answer = answer(&http, peer, der).await;
    let (Some((this_update, next_update)), Some(tag)) = (answer.validity, answer.tag) else {
        return ocsp_response(answer.der, None);
    };
    let cache = Freshness::until(&tag, next_update, http.ca.now());
    if cache.matches(&headers) {
        return cache.apply(StatusCode::NOT_MODIFIED.into_response());
    }
    let dates = (this_update, next_update);
    cache.apply(ocsp_response(answer.der, Some(dates)))
}

/// The answer to the OCSP request `der`: from memory when a response signed in advance
/// holds, else off the async workers (a store read, perhaps a signature).
async fn answer(http: &Arc<Http>, peer: IpAddr, der: Vec<u8>) -> ocsp::Answer {
    let answer = match http.ca.ocsp_cached(&der) {
        Some(answer) => answer,
        None => match http.signing.admit(peer) {
            Some(turn) => {
                let ca = http.ca.clone();
                let answered = tokio::task::spawn_blocking(move || {
                    let _turn = turn;
                    ca.ocsp(&der)
                });
                answered.await.unwrap_or_else(|_| {
                    ocsp::Answer::unsigned(ocsp::INTERNAL_ERROR, ocsp::Outcome::Failed)
                })
            }
            // Signing is rationed: the response made in advance without the nonce, if any.
            None => http
                .ca
                .ocsp_presigned(&der)
                .unwrap_or_else(|| ocsp::Answer::unsigned(ocsp::TRY_LATER, ocsp::Outcome::Failed)),
        },
    };
    http.metrics.http.inc("ocsp");
    http.metrics.ocsp.inc(answer.outcome.name());
    answer
}

/// The address of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

/// How many OCSP answers are signed on the spot (a nonce, several certificates, a response
/// not signed yet, an unknown serial): at most [`SIGNING_AT_ONCE`] at a time and
/// [`SIGNING_PER_ADDRESS`] a second from one address, so a flood of such requests cannot take
/// the CPU the gRPC port needs. Beyond that a request gets the response signed in advance
/// (without its nonce) or `tryLater`.
#[derive(Default)]
pub struct Signing {
    running: Arc<std::sync::atomic::AtomicUsize>,
    window: std::sync::Mutex<(u64, std::collections::HashMap<IpAddr, u32>)>,
}

/// Signatures at once.
const SIGNING_AT_ONCE: usize = 2;
/// Signatures a second from one address (an IPv6 /64 counts as one).
const SIGNING_PER_ADDRESS: u32 = 50;

impl Signing {
    /// A turn to sign for `peer`, if its rations allow.
    fn admit(&self, peer: IpAddr) -> Option<SigningTurn> {
        use std::sync::atomic::Ordering;
        let second = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        {
            let mut window = self
                .window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if window.0 != second {
                *window = (second, std::collections::HashMap::new());
            }
            let count = window
                .1
                .entry(super::slots::address_group(peer))
                .or_insert(0);
            if *count >= SIGNING_PER_ADDRESS {
                return None;
            }
            *count += 1;
        }
        if self.running.fetch_add(1, Ordering::AcqRel) >= SIGNING_AT_ONCE {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(SigningTurn(self.running.clone()))
    }
}

/// One signing in progress, released on drop.
struct SigningTurn(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for SigningTurn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The DER of a GET request's path: percent-decoded, then base64 (standard or URL-safe).
fn decode_get(path: &str) -> Option<Vec<u8>> {
    let text = percent_decode(path)?;
    let text = text.trim();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .ok()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An OCSP response; `dates` (thisUpdate, nextUpdate) for one that may be cached.
fn ocsp_response(der: Arc<Vec<u8>>, dates: Option<(SystemTime, SystemTime)>) -> Response {
    // The body shares the signed bytes with the cache: no copy per request.
    let mut response = bytes::Bytes::from_owner(Shared(der)).into_response();
    set(
        &mut response,
        header::CONTENT_TYPE,
        "application/ocsp-response",
    );
    if let Some((this_update, next_update)) = dates {
        let headers = response.headers_mut();
        for (name, at) in [
            (header::LAST_MODIFIED, this_update),
            (header::EXPIRES, next_update),
        ] {
            if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// Signed bytes held by the OCSP cache, lent to a response body.
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// HTTP caching of a signed status document: an entity tag and how long it stays fresh (no
/// longer than until its nextUpdate).
struct Freshness<'a> {
    tag: &'a str,
    max_age: u64,
}

impl<'a> Freshness<'a> {
    /// Fresh from `now` until `next_update`, and never longer than [`STATUS_MAX_AGE`].
    fn until(tag: &'a str, next_update: SystemTime, now: SystemTime) -> Self {
        let fresh = next_update.duration_since(now).unwrap_or_default();
        Self {
            tag,
            max_age: fresh.min(STATUS_MAX_AGE).as_secs(),
        }
    }

    /// Whether the request's `If-None-Match` names this tag.
    fn matches(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| tag.trim() == self.tag || tag.trim() == "*")
    }

    fn apply(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        if let Ok(tag) = HeaderValue::from_str(self.tag) {
            headers.insert(header::ETAG, tag);
        }
        let cache = format!(
            "public, max-age={}, no-transform, must-revalidate",
            self.max_age
        );
        if let Ok(cache) = HeaderValue::from_str(&cache) {
            headers.insert(header::CACHE_CONTROL, cache);
        }
        response
    }
}

/// The trust bundle, read from the store off the lane's thread; the answer to give when it
/// cannot be read.
async fn trust_bundle(http: &Arc<Http>) -> Result<(Vec<TrustAnchor>, u64), Response> {
    let ca = http.ca.clone();
    match tokio::task::spawn_blocking(move || ca.trust_bundle()).await {
        Ok(read) => read.map_err(|error| unavailable(&error)),
        Err(error) => Err(unavailable(&error)),
    }
}

async fn bundle_pem(State(http): State<Arc<Http>>) -> Response {
    http.metrics.http.inc("bundle");
    match trust_bundle(&http).await {
        Ok((anchors, _)) => {
            let pem = super::trust_service::bundle_pem(&http.ca, &anchors);
            cacheable(pem.into_bytes(), "application/pem-certificate-chain")
        }
        Err(unavailable) => unavailable,
    }
}

async fn bundle_json(State(http): State<Arc<Http>>) -> Response {
    http.metrics.http.inc("bundle");
    match trust_bundle(&http).await {
        Ok((anchors, sequence)) => {
            let ders: Vec<&[u8]> = anchors.iter().map(|a| a.der.as_slice()).collect();
            let json = bundle::spiffe_json(&ders, sequence, CA_MAX_AGE);
            cacheable(json.to_string().into_bytes(), "application/json")
        }
        Err(unavailable) => unavailable,
    }
}

fn unavailable(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "the trust bundle could not be read");
    let body = "the trust bundle could not be read; the server log has the details\n";
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

async fn not_found(State(http): State<Arc<Http>>) -> Response {
    http.metrics.http.inc("not_found");
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// A public document relying parties may cache for [`CA_MAX_AGE`].
fn cacheable(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    set(&mut response, header::CONTENT_TYPE, content_type);
    let cache = format!("public, max-age={CA_MAX_AGE}");
    if let Ok(value) = HeaderValue::from_str(&cache) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

fn set(response: &mut Response, name: header::HeaderName, value: &'static str) {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_on_the_spot_is_rationed_per_address_and_at_once() {
        let signing = Signing::default();
        let (one, two) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let held: Vec<_> = (0..SIGNING_AT_ONCE)
            .filter_map(|_| signing.admit(one))
            .collect();
        assert_eq!(held.len(), SIGNING_AT_ONCE);
        assert!(
            signing.admit(two).is_none(),
            "no turn while {SIGNING_AT_ONCE} sign"
        );
        drop(held);
        assert!(signing.admit(two).is_some());
        // One address gets at most its share a second, whatever is free.
        let mut granted = 0;
        for _ in 0..SIGNING_PER_ADDRESS * 2 {
            if signing.admit(one).is_some() {
                granted += 1;
            }
        }
        assert!(granted <= SIGNING_PER_ADDRESS, "{granted}");
    }
}
