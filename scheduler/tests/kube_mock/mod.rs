//! A Kubernetes API server stand-in: a `kube::Client` over a `tower_test` mock service, and a
//! task that answers every request with a function of the test's and records what it saw, so
//! tests assert the exact requests (method, path, query, content type, body).
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::collections::BTreeMap;

use http::{Request, Response};
use kube::client::Body;
use serde_json::Value;
use tokio::task::JoinHandle;
use tower_test::mock;

/// One request the client sent.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// The JSON body (`Null` when empty).
    pub body: Value,
}

impl Seen {
    /// `"METHOD PATH"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }
}

/// A canned answer.
pub struct Answer {
    pub status: u16,
    /// A JSON document, or JSON lines for a watch (one event per line).
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(status: u16, body: &Value) -> Answer {
        Answer {
            status,
            body: serde_json::to_vec(body).expect("json"),
        }
    }

    /// A watch response: one JSON event per line.
    pub fn lines(events: &[Value]) -> Answer {
        let mut body = Vec::new();
        for e in events {
            body.extend(serde_json::to_vec(e).expect("json"));
            body.push(b'\n');
        }
        Answer { status: 200, body }
    }

    /// A `Status` failure as the API server sends it.
    pub fn status(code: u16, reason: &str, message: &str) -> Answer {
        Answer::json(
            code,
            &serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": message, "reason": reason, "code": code,
            }),
        )
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("utf8");
                out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf8 query")
}

/// Parses `a=1&b=x%2Fy` (empty pieces skipped).
pub fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The running stand-in: [`MockApi::finish`] returns every request once all clients are dropped.
pub struct MockApi {
    task: JoinHandle<Vec<Seen>>,
}

/// A client whose requests go to `answer`, and the stand-in recording them. `answer` gets the
/// request and its index (0-based).
pub fn mock_api(
    answer: impl Fn(&Seen, usize) -> Answer + Send + 'static,
) -> (kube::Client, MockApi) {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let s = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parse_query(parts.uri.query().unwrap_or("")),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().expect("header").to_string()),
                body: if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("JSON request body")
                },
            };
            let a = answer(&s, seen.len());
            seen.push(s);
            let response = Response::builder()
                .status(a.status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(a.body))
                .expect("response");
            send.send_response(response);
        }
        seen
    });
    (kube::Client::new(service, "wisp-system"), MockApi { task })
}

impl MockApi {
    /// Every request seen; call after dropping every clone of the client.
    pub async fn finish(self) -> Vec<Seen> {
        self.task.await.expect("mock API task")
    }
}

/// Answers a server-side apply with the applied object (as the API server does).
pub fn echo(seen: &Seen, _: usize) -> Answer {
    Answer::json(200, &seen.body)
}
