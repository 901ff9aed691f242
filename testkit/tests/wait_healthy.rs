//! `wait_healthy` against tiny real HTTP servers on 127.0.0.1:0.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Serves every connection with `answer(n)` for the n-th request (0-based), in a thread.
/// Returns the address and the request counter. Only `/health` requests are counted.
fn serve(
    answer: impl Fn(usize) -> &'static str + Send + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            handle(stream, &seen, &answer);
        }
    });
    (addr, count)
}

fn handle(mut stream: TcpStream, seen: &AtomicUsize, answer: &impl Fn(usize) -> &'static str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    assert!(
        request_line.starts_with("GET /health HTTP/1.1"),
        "unexpected request line {request_line:?}"
    );
    let n = seen.fetch_add(1, Ordering::SeqCst);
    let _ = stream.write_all(answer(n).as_bytes());
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
const UNAVAILABLE: &str =
    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const BROKEN: &str = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";

#[test]
fn returns_once_the_server_answers_200() {
    let (addr, count) = serve(|n| if n < 3 { UNAVAILABLE } else { OK });
    wisp_testkit::wait_healthy(addr).expect("healthy after three 503s");
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[test]
fn a_server_that_is_healthy_at_once_needs_one_request() {
    let (addr, count) = serve(|_| OK);
    wisp_testkit::wait_healthy(addr).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn a_server_that_never_becomes_healthy_is_an_error_naming_its_status() {
    let (addr, count) = serve(|_| BROKEN);
    let err = wisp_testkit::wait_healthy_for(addr, Duration::from_millis(300)).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("HTTP 500"), "{message}");
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(count.load(Ordering::SeqCst) >= 1);
}

#[test]
fn nothing_listening_is_an_error_naming_the_connection() {
    // Bind and drop to find a port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = wisp_testkit::wait_healthy_for(addr, Duration::from_millis(200)).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("connecting to"), "{message}");
}

#[test]
fn a_server_that_is_not_http_is_an_error() {
    let (addr, _) = serve(|_| "SSH-2.0-OpenSSH_9.2\r\n");
    let err = wisp_testkit::wait_healthy_for(addr, Duration::from_millis(200)).unwrap_err();
    assert!(
        format!("{err:#}").contains("not an HTTP response"),
        "{err:#}"
    );
}
