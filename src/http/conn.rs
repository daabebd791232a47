//! The listener: accepting connections within limits, timing out slow clients, and shutting
//! down with a deadline.
//!
//! `axum::serve` has no header-read timeout, no cap on connections, and its graceful
//! shutdown waits for every connection to leave by itself, so idle keep-alive clients,
//! half-sent requests and non-reading WebSockets could keep a stopping server alive forever.
//! This accept loop serves the same router over hyper's HTTP/1 connections (with upgrades,
//! for WebSockets) and adds:
//!
//! - a header-read timeout: a client that does not finish its request head in time is
//!   disconnected. hyper runs the same timer while a keep-alive connection waits for its next
//!   request, so an idle keep-alive connection is closed after it as well;
//! - an idle timeout: a connection on which no byte moves either way for that long (a body
//!   that stops arriving, a client that stops reading its response) is closed;
//! - a cap on open connections, WebSockets included (the slot is held by the socket itself,
//!   so it is freed exactly when the descriptor is closed). Beyond it a connection takes one
//!   of a few slots kept for `/healthz`, `/readyz` and `/metrics` ([`super::peer`]), and
//!   beyond those it gets a minimal `503` with `Retry-After` and `Connection: close`; accept
//!   errors such as EMFILE are logged and retried after a short pause, never fatal, never a
//!   busy loop;
//! - a cap per client address ([`super::peer`]): beyond it a connection gets a minimal `429`
//!   with `Retry-After` and `Connection: close`. Connections from trusted proxies are not
//!   counted here but per request, by the client `X-Forwarded-For` names;
//! - shutdown with a deadline: stop accepting, ask every connection to finish its request in
//!   flight and close, wait for them (and for whatever `drained` waits for: WebSockets) for
//!   at most the grace period, then drop whatever is left;
//! - a bound on the request method: hyper takes any token as a method (up to the size of the
//!   request head), and it would reach every layer as text the client chose. A method
//!   longer than [`MAX_METHOD_BYTES`] is answered `400` before the router, metrics included,
//!   sees the request.
//! - TLS (`--tls-cert`/`--tls-key`, [`super::tls`]): the handshake runs on the connection's
//!   own task, after the caps, within the header-read timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::peer::{ConnInfo, PeerSlot, Peers, RESERVED_SLOTS};
use super::tls::Tls;
/// Longest request method served, in bytes (the longest registered method,
/// `UPDATEREDIRECTREF`, has 17); beyond, `400` before anything else looks at the request.
pub const MAX_METHOD_BYTES: usize = 32;

/// The router behind the checks made before it sees a request (see the module docs).
#[derive(Clone)]
struct Front<S>(S);

impl<S, B> hyper::service::Service<hyper::Request<B>> for Front<S>
where
    S: hyper::service::Service<hyper::Request<B>, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<std::future::Ready<Result<Self::Response, S::Error>>, S::Future>;

    fn call(&self, req: hyper::Request<B>) -> Self::Future {
        if req.method().as_str().len() > MAX_METHOD_BYTES {
            return futures_util::future::Either::Left(std::future::ready(Ok(method_too_long())));
        }
        futures_util::future::Either::Right(self.0.call(req))
    }
}

/// The answer to a method longer than [`MAX_METHOD_BYTES`]; the connection is closed after it.
fn method_too_long() -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    let mut response = axum::response::Response::new(axum::body::Body::from(format!(
        "the request method is longer than the limit of {MAX_METHOD_BYTES} bytes"
    )));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Limits of the listener; see the module docs. A zero duration turns that timeout off.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// Refused connections answered at once; beyond, a refused connection is just closed.
const MAX_REFUSING: usize = 64;
/// How long a refused connection gets to take its 503.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (EMFILE, ENFILE, ENOBUFS...).
/// Longest TLS handshake when the header-read timeout is off.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 44\r\n\
\r\n\
too many open connections; retry in a moment";

/// The answer to a connection over its address's cap: 429, since it is this client that
/// holds too much, and a load balancer must not take a 503 of it for the node failing.
fn peer_refusal(max: usize) -> Vec<u8> {
    let body = format!("too many open connections from your address (limit {max}); retry in a moment");
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// When a connection last moved a byte.
struct Activity {
    since: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }

    /// Resolves once nothing has moved for `limit` (never, for a zero limit).
    async fn idle(&self, limit: Duration) {
        if limit.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let quiet = self.quiet_for();
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

/// A client socket that records its activity and holds its connection slot: the slot is
/// released when the socket is dropped, also after an upgrade to WebSocket.
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
    _peer: Option<PeerSlot>,
}

impl AsyncRead for Tracked {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Answers a connection over the cap with a 503 and closes it. The request is read (and
/// dropped) after the answer so that closing does not reset the connection before the
/// client has read it.
async fn refuse(mut stream: TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// Serves one connection until it ends, falls idle, or is asked to stop (then it finishes
/// the request in flight).
async fn drive<I, S>(
    http: &http1::Builder,
    io: I,
    service: S,
    mut stopping: watch::Receiver<bool>,
    activity: &Activity,
    idle: Duration,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = http.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let mut asked_to_stop = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopping.changed(), if !asked_to_stop => {
                asked_to_stop = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.idle(idle) => {
                tracing::debug!(idle_ms = idle.as_millis() as u64, "closing an idle connection");
                return;
            }
        }
    }
}

/// Serves `app` on `listener` until `signal` resolves, then shuts down within
/// `limits.shutdown_grace`, waiting for `drained` as well as for the HTTP connections. With
/// `tls`, each connection first completes a TLS handshake, within the header-read timeout
/// (or [`HANDSHAKE_TIME`] when that is off).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    peers: Arc<Peers>,
    tls: Option<Arc<Tls>>,
    signal: impl Future<Output = ()>,
    drained: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.min(Semaphore::MAX_PERMITS)));
    let reserved = Arc::new(Semaphore::new(RESERVED_SLOTS));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).keep_alive(true);
    http.header_read_timeout((!limits.header_read_timeout.is_zero()).then_some(limits.header_read_timeout));
    let service = Front(TowerToHyperService::new(app));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(signal);
    loop {
        let (stream, addr): (TcpStream, SocketAddr) = tokio::select! {
            biased;
            _ = &mut signal => break,
            // Reap finished connection tasks as we go, so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; pausing before the next accept");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Connections from a trusted proxy are counted per request, by client.
        let peer = if peers.is_trusted(addr.ip()) {
            None
        } else {
            match peers.acquire(addr.ip()) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(peer = %addr.ip(), limit = peers.max(), "connection refused: too many from its address");
                    if let Ok(permit) = refusing.clone().try_acquire_owned() {
                        let answer = peer_refusal(peers.max());
                        tokio::spawn(async move {
                            refuse(stream, &answer).await;
                            drop(permit);
                        });
                    }
                    continue;
                }
            }
        };
        let (slot, in_reserve) = match slots.clone().try_acquire_owned() {
            Ok(slot) => (slot, false),
            Err(_) => match reserved.clone().try_acquire_owned() {
                // Answered on the health and metrics paths only (see `peer::admit`).
                Ok(slot) => (slot, true),
                Err(_) => {
                    tracing::debug!(
                        limit = limits.max_connections,
                        "connection refused: too many open connections"
                    );
                    if let Ok(permit) = refusing.clone().try_acquire_owned() {
                        tokio::spawn(async move {
                            refuse(stream, REFUSAL).await;
                            drop(permit);
                        });
                    }
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let tracked = Tracked {
            stream,
            activity: activity.clone(),
            _slot: slot,
            _peer: peer,
        };
        let info = ConnInfo {
            peer: addr,
            reserved: in_reserve,
        };
        let inner = service.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(info);
            inner.call(request)
        });
        let http = http.clone();
        let stopping = stopping.clone();
        let idle = limits.idle_timeout;
        let tls = tls.clone();
        let handshake_time = if limits.header_read_timeout.is_zero() {
            HANDSHAKE_TIME
        } else {
            limits.header_read_timeout
        };
        connections.spawn(async move {
            let Some(tls) = tls else {
                return drive(&http, TokioIo::new(tracked), service, stopping, &activity, idle).await;
            };
            match tokio::time::timeout(handshake_time, tls.acceptor().accept(tracked)).await {
                Ok(Ok(stream)) => drive(&http, TokioIo::new(stream), service, stopping, &activity, idle).await,
                Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let open = connections.len();
    tracing::info!(
        connections = open,
        grace_ms = limits.shutdown_grace.as_millis() as u64,
        "stopped accepting; draining"
    );
    let drain = async {
        while connections.join_next().await.is_some() {}
        drained.await;
    };
    if tokio::time::timeout(limits.shutdown_grace, drain).await.is_err() {
        tracing::warn!(
            left = connections.len(),
            "shutdown grace period over; closing the connections left"
        );
    }
    connections.shutdown().await;
}
