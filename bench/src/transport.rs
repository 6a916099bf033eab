//! The load generator's gRPC transport: one HTTP/2 connection over TLS per [`Direct`], driven
//! by its own task, that the generated clients call straight into.
//!
//! tonic's `Channel` puts a tower buffer and its worker task between every call and the
//! connection (plus reconnection and load-balancing layers), so each call crosses one more
//! task and channel than it needs. On a 2-core machine that the server shares, the load
//! generator's CPU per call is taken from the server, so the bench keeps its per-call path to
//! what HTTP/2 needs: open a stream on the connection, send, await the answer.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use http::Uri;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, lookup_host};
use tokio_rustls::TlsConnector;
use tonic::body::Body;

/// One HTTP/2 connection; clones share it (HTTP/2 multiplexes their calls).
#[derive(Clone)]
pub struct Direct {
    sender: SendRequest<Body>,
    timeout: Duration,
}

/// What a connection needs: the server's address and name, the TLS settings, bounds.
pub struct Dial<'a> {
    pub origin: &'a Uri,
    pub tls: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub local: Option<IpAddr>,
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
}

impl Direct {
    /// Connects (TCP, TLS with ALPN h2, HTTP/2 handshake) and spawns the connection's task.
    pub async fn connect(dial: Dial<'_>) -> anyhow::Result<Self> {
        let connecting = tokio::time::timeout(dial.connect_timeout, handshake(&dial));
        let sender = connecting
            .await
            .map_err(|_| anyhow!("connect timed out"))??;
        Ok(Self {
            sender,
            timeout: dial.call_timeout,
        })
    }
}

async fn handshake(dial: &Dial<'_>) -> anyhow::Result<SendRequest<Body>> {
    let address = resolve(dial.origin).await?;
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(local) = dial.local {
        socket
            .bind(SocketAddr::new(local, 0))
            .with_context(|| format!("cannot bind {local}"))?;
    }
    let tcp = socket.connect(address).await?;
    tcp.set_nodelay(true)?;
    let tls = TlsConnector::from(dial.tls.clone())
        .connect(dial.server_name.clone(), tcp)
        .await?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tls))
        .await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The first address of the origin's host and port.
async fn resolve(origin: &Uri) -> anyhow::Result<SocketAddr> {
    let host = origin.host().context("the server address has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = origin.port_u16().unwrap_or(443);
    let mut addresses = lookup_host((host, port)).await?;
    addresses
        .next()
        .with_context(|| format!("{host} has no address"))
}

type Answer = http::Response<Incoming>;

impl tower_service::Service<http::Request<Body>> for Direct {
    type Response = Answer;
    type Error = anyhow::Error;
    type Future = Pin<Box<dyn Future<Output = anyhow::Result<Answer>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<anyhow::Result<()>> {
        self.sender.poll_ready(cx).map_err(anyhow::Error::from)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let answer = self.sender.send_request(request);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, answer).await {
                Ok(answer) => Ok(answer?),
                Err(_) => Err(anyhow!("no answer within {} s", timeout.as_secs())),
            }
        })
    }
}
