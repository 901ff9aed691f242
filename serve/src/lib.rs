//! `wisp-serve`: serves an axum [`Router`] on a [`TcpListener`] with every limit a public
//! server needs, for the runtime and the scheduler alike.
//!
//! | limit ([`ServeLimits`]) | default | what happens past it |
//! |---|---|---|
//! | `header_read_timeout` | 30 s | the connection is closed (hyper's timer; it also bounds the wait for the next request on a keep-alive connection) |
//! | `body_read_timeout` | 60 s for the whole body | `408` with a JSON `{error, code: "request_timeout"}` body, connection closed |
//! | `idle_timeout` | 20 s without a request in flight | the connection is closed gracefully |
//! | `max_connections` | 4096 open | no more are accepted (they wait in the listen backlog) until one closes |
//! | `max_uri_len` | 8 KiB | `414` with a JSON body |
//! | `max_header_bytes`, `max_headers` | 64 KiB, 100 | `431` with a JSON body |
//!
//! hyper's own 414/431 answers have empty bodies, so hyper is configured with limits above
//! these ([`ServeLimits::hyper_max_buf_size`], twice the header count) and the limits are
//! checked on each parsed request head before the router sees it.
//!
//! [`serve`] stops on its [`CancellationToken`] gracefully: it stops accepting, lets every
//! request in flight finish (idle keep-alive connections are closed at once), then returns.
//!
//! # Types, what they cost and how long they live
//!
//! - [`serve`] / [`serve_with`]: one task per connection, tracked so shutdown can wait for
//!   them; per request, a few atomic updates and the head checks (a pass over the headers).
//! - [`Transport`]: how an accepted TCP stream becomes the connection's I/O, run on the
//!   connection's own task so a slow one never stalls the accept loop. [`PlainTcp`] is the
//!   identity; a TLS transport (rustls handshake) fits the same slot.
//! - [`ServeStats`]: counters of one server (open connections, their high-water mark, accepted),
//!   shared behind an `Arc`.
//!
//! HTTP/1.1 only: every wisp client speaks it (HTTP/2 would come with TLS and ALPN).

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use wisp_core::run::ErrorBody;

/// The limits [`serve`] enforces. `Default` suits a public API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Longest wait for a request head (request line and headers), from the first read of it
    /// (on a keep-alive connection: from the end of the previous response).
    pub header_read_timeout: Duration,
    /// Longest time to receive a request's whole body, from when its head was read.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest request target (path and query, or the absolute URI), bytes.
    pub max_uri_len: usize,
    /// Most bytes of request headers (names, values and `": \r\n"`).
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(20),
            max_connections: 4096,
            max_uri_len: 8 << 10,
            max_header_bytes: 64 << 10,
            max_headers: 100,
        }
    }
}

impl ServeLimits {
    /// hyper's read buffer: room for a head at our limits (so ours answer first, with JSON),
    /// and at least hyper's minimum of 8 KiB.
    pub fn hyper_max_buf_size(&self) -> usize {
        (self.max_uri_len + self.max_header_bytes + 16 * 1024).max(8192) * 2
    }
}

/// Counters of one server. Cheap to read; updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct ServeStats {
    open: AtomicUsize,
    peak_open: AtomicUsize,
    accepted: AtomicU64,
}

impl ServeStats {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Most connections that were open at once.
    pub fn peak_open(&self) -> usize {
        self.peak_open.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// Turns an accepted TCP stream into the connection's I/O (a TLS transport does its handshake
/// here). Runs on the connection's task, bounded by `header_read_timeout`.
pub trait Transport: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn wrap(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

/// Plain TCP: the stream as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainTcp;

impl Transport for PlainTcp {
    type Io = TcpStream;
    async fn wrap(&self, tcp: TcpStream) -> std::io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Serves `router` on `listener` over plain TCP until `shutdown` is cancelled, then drains
/// (stops accepting, finishes requests in flight) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(
        listener,
        PlainTcp,
        router,
        limits,
        Arc::new(ServeStats::default()),
        shutdown,
    )
    .await
}

/// [`serve`] with a [`Transport`] and counters the caller keeps.
pub async fn serve_with<T: Transport>(
    listener: TcpListener,
    transport: T,
    router: Router,
    limits: ServeLimits,
    stats: Arc<ServeStats>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tracker = TaskTracker::new();
    loop {
        // A free connection slot first: at the cap, connections wait in the backlog.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning; the listener stays.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let open = stats.open.fetch_add(1, Ordering::Relaxed) + 1;
        stats.peak_open.fetch_max(open, Ordering::Relaxed);
        let conn = ConnTask {
            transport: transport.clone(),
            router: router.clone(),
            limits: limits.clone(),
            stats: stats.clone(),
            shutdown: shutdown.clone(),
        };
        tracker.spawn(async move {
            conn.run(tcp, peer).await;
            conn.stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

struct ConnTask<T> {
    transport: T,
    router: Router,
    limits: Arc<ServeLimits>,
    stats: Arc<ServeStats>,
    shutdown: CancellationToken,
}

/// Requests in flight on one connection and when the last one ended.
struct ConnActivity {
    in_flight: AtomicUsize,
    /// ms since `born` when the last request ended (or the connection opened).
    last_done_ms: AtomicU64,
    born: Instant,
}

impl ConnActivity {
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + idle;
        }
        self.born + Duration::from_millis(self.last_done_ms.load(Ordering::Acquire)) + idle
    }
}

struct InFlight(Arc<ConnActivity>);

impl InFlight {
    fn new(a: &Arc<ConnActivity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_done_ms
            .store(a.born.elapsed().as_millis() as u64, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<T: Transport> ConnTask<T> {
    async fn run(&self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let io = tokio::select! {
            io = tokio::time::timeout(self.limits.header_read_timeout, self.transport.wrap(tcp)) => match io {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection setup failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "connection setup timed out");
                    return;
                }
            },
            _ = self.shutdown.cancelled() => return,
        };
        let activity = Arc::new(ConnActivity {
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            born: Instant::now(),
        });
        let svc = {
            let router = self.router.clone();
            let limits = self.limits.clone();
            let activity = activity.clone();
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let router = router.clone();
                let limits = limits.clone();
                let in_flight = InFlight::new(&activity);
                async move {
                    let resp = handle(router, &limits, req).await;
                    drop(in_flight);
                    Ok::<_, Infallible>(resp)
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_buf_size(self.limits.hyper_max_buf_size())
            .max_headers(self.limits.max_headers.saturating_mul(2).max(100))
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(io), svc);
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            let idle_at = activity.idle_deadline(self.limits.idle_timeout);
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = self.shutdown.cancelled(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = tokio::time::sleep_until(idle_at), if !closing => {
                    if activity.idle_deadline(self.limits.idle_timeout) <= Instant::now() {
                        tracing::debug!(%peer, "closing an idle connection");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// A JSON `{error, code}` answer.
pub fn error_response(status: StatusCode, code: &str, error: impl Into<String>) -> Response<Body> {
    let body = serde_json::to_vec(&ErrorBody::new(code, error)).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The head checks, then the router with the body under its deadline.
async fn handle(router: Router, limits: &ServeLimits, req: Request<Incoming>) -> Response<Body> {
    if let Some(resp) = check_head(&req, limits) {
        return close(resp);
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Instant::now() + limits.body_read_timeout,
        sleep: None,
        timed_out: timed_out.clone(),
    });
    let resp = match router.oneshot(Request::from_parts(parts, body)).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    if timed_out.load(Ordering::Acquire) {
        return close(error_response(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body was not received within {} ms",
                limits.body_read_timeout.as_millis()
            ),
        ));
    }
    resp
}

/// Marks an answer as the connection's last (the rest of the request is not read).
fn close(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn check_head<B>(req: &Request<B>, limits: &ServeLimits) -> Option<Response<Body>> {
    let uri = req.uri();
    let uri_len = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3);
    if uri_len > limits.max_uri_len {
        return Some(error_response(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the request URI is {uri_len} bytes, more than the limit of {} bytes",
                limits.max_uri_len
            ),
        ));
    }
    let headers = req.headers();
    if headers.len() > limits.max_headers {
        return Some(error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request has {} headers, more than the limit of {}",
                headers.len(),
                limits.max_headers
            ),
        ));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if bytes > limits.max_header_bytes {
        return Some(error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request headers are {bytes} bytes, more than the limit of {} bytes",
                limits.max_header_bytes
            ),
        ));
    }
    None
}

/// The request body, failing once its deadline passes (and saying so to [`handle`]).
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Armed the first time the body is not ready: a body that came with its head costs no
    /// timer.
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

/// The request body did not arrive in time.
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body was not received in time")
    }
}

impl std::error::Error for BodyTimeout {}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.timed_out.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
