//! Every limit of `wisp_serve::serve` against a real server on 127.0.0.1:0 and raw TCP
//! clients (so half-sent requests can be sent). Limits are configured short; the tests wait on
//! what the server does (a closed socket, an answer), never on a clock.

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wisp_core::run::ErrorBody;
use wisp_serve::{PlainTcp, ServeLimits, ServeStats};

/// Upper bound on any wait here: only reached when the server misbehaves.
const GIVE_UP: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stats: Arc<ServeStats>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    hold: Arc<Notify>,
    holding: Arc<AtomicUsize>,
}

async fn start(limits: ServeLimits) -> Server {
    let hold = Arc::new(Notify::new());
    let holding = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/hold",
            get({
                let hold = hold.clone();
                let holding = holding.clone();
                move || async move {
                    holding.fetch_add(1, Ordering::SeqCst);
                    hold.notified().await;
                    "released"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(ServeStats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(wisp_serve::serve_with(
        listener,
        PlainTcp,
        router,
        limits,
        stats.clone(),
        shutdown.clone(),
    ));
    Server {
        addr,
        stats,
        shutdown,
        task,
        hold,
        holding,
    }
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(GIVE_UP, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server should have closed the connection");
    out
}

/// Reads one response (head and a `Content-Length` body).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    tokio::time::timeout(GIVE_UP, async {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.expect("read");
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let status: u16 = head[9..12].parse().expect("status");
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.expect("body");
        (status, String::from_utf8(body).expect("utf-8"))
    })
    .await
    .expect("a response")
}

fn error_body(body: &str) -> ErrorBody {
    serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("not an {{error, code}} body ({e}): {body:?}"))
}

#[tokio::test]
async fn half_sent_headers_are_cut_after_the_timeout() {
    let s = start(ServeLimits {
        header_read_timeout: Duration::from_millis(300),
        ..ServeLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    read_to_close(&mut c).await;
    // The server still serves.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut c).await, (200, "hello".into()));
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let s = start(ServeLimits {
        idle_timeout: Duration::from_millis(300),
        ..ServeLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    for _ in 0..2 {
        c.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut c).await, (200, "hello".into()));
    }
    // Kept alive between requests, closed once idle.
    assert!(read_to_close(&mut c).await.is_empty());
    tokio::time::timeout(GIVE_UP, async {
        while s.stats.open() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_request_in_flight_is_not_idle() {
    let s = start(ServeLimits {
        idle_timeout: Duration::from_millis(100),
        ..ServeLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    while s.holding.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // Several idle periods pass while the handler works; the answer still arrives.
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.hold.notify_one();
    assert_eq!(read_response(&mut c).await, (200, "released".into()));
}

#[tokio::test]
async fn a_short_body_gets_a_408_with_a_json_body() {
    let s = start(ServeLimits {
        body_read_timeout: Duration::from_millis(300),
        ..ServeLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 408);
    let e = error_body(&body);
    assert_eq!(e.code, "request_timeout");
    assert!(e.error.contains("300 ms"), "{e:?}");
    // A whole body is echoed.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    assert_eq!(read_response(&mut c).await, (200, "hello".into()));
}

#[tokio::test]
async fn the_connection_cap_holds() {
    let s = start(ServeLimits {
        max_connections: 2,
        ..ServeLimits::default()
    })
    .await;
    // Two connections hold the two slots with requests in flight.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    while s.holding.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    // A third connects (the kernel completes the handshake) and asks: it is not accepted.
    let mut third = TcpStream::connect(s.addr).await.unwrap();
    third
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(s.stats.accepted(), 2);
    // The holds end; one client leaves: the third is served.
    s.hold.notify_waiters();
    for c in &mut held {
        assert_eq!(read_response(c).await, (200, "released".into()));
    }
    drop(held.pop());
    assert_eq!(read_response(&mut third).await, (200, "hello".into()));
    assert_eq!(s.stats.peak_open(), 2);
    assert_eq!(s.stats.accepted(), 3);
}

#[tokio::test]
async fn long_uris_and_large_headers_get_json_errors() {
    let limits = ServeLimits::default();
    let s = start(limits.clone()).await;

    let long = "a".repeat(limits.max_uri_len + 1);
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(format!("GET /{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 414);
    assert_eq!(error_body(&body).code, "uri_too_long");

    let big = "b".repeat(limits.max_header_bytes);
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(format!("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 431);
    let e = error_body(&body);
    assert_eq!(e.code, "headers_too_large");
    assert!(e.error.contains("bytes"), "{e:?}");

    let many: String = (0..=limits.max_headers)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect();
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(format!("GET /hello HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes())
        .await
        .unwrap();
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 431);
    assert!(error_body(&body).error.contains("headers"));

    // Within the limits: served.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut c).await, (200, "hello".into()));
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_then_returns() {
    let s = start(ServeLimits::default()).await;
    let mut busy = TcpStream::connect(s.addr).await.unwrap();
    busy.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await, (200, "hello".into()));
    while s.holding.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    s.shutdown.cancel();
    // The idle keep-alive connection is closed at once; the busy one gets its answer.
    read_to_close(&mut idle).await;
    assert!(!s.task.is_finished());
    s.hold.notify_one();
    assert_eq!(read_response(&mut busy).await, (200, "released".into()));
    tokio::time::timeout(GIVE_UP, s.task)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(s.addr).await.is_err(),
        "no longer listening"
    );
}
