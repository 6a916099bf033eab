//! The plain-HTTP port: what relying parties and monitoring fetch without a client certificate.
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` when unsealed, `503 sealed` when not (JSON) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /ca/<ca>.crt` | a CA certificate, DER (`root`, `extranet`, `intranet`) |
//! | `GET /crl/<ca>.crl` | the CA's current CRL, DER, with `ETag` and `Cache-Control: max-age` up to its nextUpdate |
//! | `GET /bundle.pem` | every CA certificate relying parties trust, PEM |
//! | `GET /bundle.json` | the trust anchors as a SPIFFE-style JWK set |
//!
//! Everything here is public: nothing served reveals a secret or a holder's data beyond what
//! its certificates publish anyway.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use govtrust_ca::{Authority, Ca};
use govtrust_kms::Kms;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::bundle;
use super::metrics::{self, Metrics};

/// How long relying parties may cache CA certificates and bundles.
const CA_MAX_AGE: u64 = 3600;

/// What the HTTP handlers read.
pub struct Http {
    pub ca: Arc<Ca>,
    pub kms: Arc<Kms>,
    pub metrics: Arc<Metrics>,
}

/// Binds the HTTP port; returns the listener and the address it got (port 0 picks one).
pub async fn bind(address: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for HTTP on {address}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves the HTTP port on `listener` until `stopped` changes.
pub async fn serve(
    listener: TcpListener,
    http: Arc<Http>,
    mut stopped: watch::Receiver<()>,
) -> anyhow::Result<()> {
    let shutdown = async move {
        let _ = stopped.changed().await;
    };
    axum::serve(listener, router(http))
        .with_graceful_shutdown(shutdown)
        .await
        .context("the HTTP server failed")
}

fn router(http: Arc<Http>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .route("/ca/{file}", get(ca_certificate))
        .route("/crl/{file}", get(crl))
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
    http.metrics.render(&mut page);
    let mut response = page.into_response();
    set(
        &mut response,
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    );
    response
}

async fn ca_certificate(State(http): State<Arc<Http>>, Path(file): Path<String>) -> Response {
    let authority = file
        .strip_suffix(".crt")
        .and_then(|name| name.parse::<Authority>().ok());
    let Some(authority) = authority else {
        return not_found(State(http)).await;
    };
    http.metrics.http.inc("ca");
    let der = http.ca.chain().der(authority).to_vec();
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
    let fresh = crl
        .next_update
        .duration_since(http.ca.now())
        .unwrap_or_default();
    let cache = Freshness {
        tag: &tag,
        max_age: fresh.as_secs(),
    };
    if cache.matches(&headers) {
        return cache.apply(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut response = crl.der.clone().into_response();
    set(&mut response, header::CONTENT_TYPE, "application/pkix-crl");
    cache.apply(response)
}

/// HTTP caching of a signed status document: an entity tag and how long it stays fresh (no
/// longer than until its nextUpdate).
struct Freshness<'a> {
    tag: &'a str,
    max_age: u64,
}

impl Freshness<'_> {
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

async fn bundle_pem(State(http): State<Arc<Http>>) -> Response {
    http.metrics.http.inc("bundle");
    let chain = http.ca.chain();
    let pem: String = Authority::ALL.iter().map(|a| chain.pem(*a)).collect();
    cacheable(pem.into_bytes(), "application/pem-certificate-chain")
}

async fn bundle_json(State(http): State<Arc<Http>>) -> Response {
    http.metrics.http.inc("bundle");
    let chain = http.ca.chain();
    let json = bundle::spiffe_json(&[chain.der(Authority::Root)], 1, CA_MAX_AGE);
    cacheable(json.to_string().into_bytes(), "application/json")
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
