//! Shared harness of the `fuzz_*.rs` targets: case counts, a proptest runner for properties
//! that need a server, and a real scheduler (fresh data dir, user `guest`, optionally a real
//! runtime on `127.0.0.1:0`) driven through its axum router with `tower::ServiceExt::oneshot`,
//! so thousands of requests cost no sockets on the scheduler side.
#![allow(
    dead_code,
    reason = "each fuzz target uses a different subset of the helpers"
)]

use std::fmt::Debug;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request};
use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use wisp_scheduler::{Scheduler, SchedulerConfig};

/// `uuid:key` of user `guest` in every fuzz scheduler.
pub const AUTH: &str = "fuzz-guest-uuid:fuzz-guest-key";
pub const RUNTIME_TOKEN: &str = "fuzz-runtime-token";

/// Cases per property: `PROPTEST_CASES` when set (for a longer local run), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A proptest config running `cases` cases.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        // Shrinking a server-backed failure is slow; the first counterexample is usually clear.
        max_shrink_iters: 256,
        ..Config::default()
    }
}

/// Runs `test` on `cases` inputs from `strategy`; panics with the (shrunk) counterexample.
pub fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: Debug,
{
    let mut runner = TestRunner::new(Config {
        // Failures are kept as `regression_*` tests instead.
        failure_persistence: None,
        ..config(cases)
    });
    match runner.run(&strategy, test) {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => {
            panic!("{name}: {reason}\nminimal failing input: {value:#?}")
        }
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}

/// An HTTP answer of the router.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A refusal as the API promises it: a 4xx with a JSON `{error, code}` body.
    pub fn assert_clean_error(&self) -> Result<(), TestCaseError> {
        prop_assert!(
            (400..500).contains(&self.status),
            "expected a 4xx, got {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        prop_assert!(
            ct.starts_with("application/json"),
            "{} answered with content type {:?}: {}",
            self.status,
            ct,
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        let ok = body.as_ref().is_some_and(|b| {
            b.get("error").is_some_and(Value::is_string)
                && b.get("code").is_some_and(Value::is_string)
        });
        prop_assert!(
            ok,
            "{} body is not {{error, code}}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        Ok(())
    }
}

/// A scheduler (and optionally one runtime) on its own tokio runtime, for synchronous tests.
pub struct TestApp {
    pub app: axum::Router,
    pub state: wisp_scheduler::state::AppState,
    scheduler: Option<Scheduler>,
    runtime_stop: CancellationToken,
    runtime_task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
}

impl TestApp {
    /// A scheduler on a fresh data dir with user `guest` ([`AUTH`]); with `with_runtime`, also
    /// a real runtime (so action PUTs are compiled and web actions run), waited for until ready.
    pub fn start(with_runtime: bool) -> TestApp {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime_stop = CancellationToken::new();
        let (app, state, scheduler, runtime_task) = rt.block_on(async {
            let mut runtimes = Vec::new();
            let mut runtime_task = None;
            if with_runtime {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                runtimes.push(format!("http://{}", listener.local_addr().unwrap()));
                let config = wisp_runtime::RuntimeConfig {
                    token: Some(RUNTIME_TOKEN.into()),
                    pool_slots: 16,
                    ..wisp_runtime::RuntimeConfig::default()
                };
                runtime_task = Some(tokio::spawn(wisp_runtime::serve(
                    config,
                    listener,
                    runtime_stop.clone(),
                )));
            }
            let scheduler = Scheduler::open(SchedulerConfig {
                runtimes,
                data_dir: dir.path().to_path_buf(),
                runtime_token: Some(RUNTIME_TOKEN.into()),
                api_host: Some("http://127.0.0.1:3233".into()),
                ..SchedulerConfig::default()
            })
            .await
            .expect("scheduler");
            scheduler
                .ensure_user("guest", Some(AUTH))
                .await
                .expect("user guest");
            let app = scheduler.router();
            let state = scheduler.state().clone();
            (app, state, scheduler, runtime_task)
        });
        let test = TestApp {
            app,
            state,
            scheduler: Some(scheduler),
            runtime_stop,
            runtime_task,
            _dir: dir,
            rt,
        };
        if with_runtime {
            for _ in 0..300 {
                if test.call("GET", "/ready", &[], Vec::new()).status == 200 {
                    return test;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            panic!("the scheduler never saw its runtime healthy");
        }
        test
    }

    /// `method uri` as user `guest` (HTTP Basic), with extra `headers` and `body`.
    pub fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(String, Vec<u8>)],
        body: Vec<u8>,
    ) -> Reply {
        let basic = base64::engine::general_purpose::STANDARD.encode(AUTH);
        let mut all = vec![(
            "authorization".to_string(),
            format!("Basic {basic}").into_bytes(),
        )];
        all.extend(headers.iter().cloned());
        self.call_raw(method, uri, &all, body)
    }

    /// `method uri` with exactly `headers` (no credentials unless given).
    pub fn call_raw(
        &self,
        method: &str,
        uri: &str,
        headers: &[(String, Vec<u8>)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("request {method} {uri}: {e}"));
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
            let value = HeaderValue::from_bytes(value).expect("header value");
            req.headers_mut().append(name, value);
        }
        self.rt.block_on(async {
            let response = self.app.clone().oneshot(req).await.expect("infallible");
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, 64 << 20)
                .await
                .expect("response body");
            Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            }
        })
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(scheduler) = self.scheduler.take() {
            let _ = self.rt.block_on(scheduler.shutdown());
        }
        self.runtime_stop.cancel();
        if let Some(task) = self.runtime_task.take() {
            let _ = self.rt.block_on(task);
        }
    }
}

/// Percent-encodes every byte of `s` outside RFC 3986's unreserved set.
pub fn pct(s: &str) -> String {
    pct_bytes(s.as_bytes())
}

pub fn pct_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() * 3);
    for &c in b {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Arbitrary JSON up to `depth` levels, with hostile leaves (huge numbers, unicode, NULs).
pub fn json_value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| n.into()),
        any::<u64>().prop_map(|n| n.into()),
        // Floats of at most 15 significant digits: serde_json (without `float_roundtrip`)
        // parses these back exactly, so stored documents can be compared with what was sent.
        (-999_999_999_999_999i64..=999_999_999_999_999, 0i32..=10)
            .prop_map(|(m, k)| (m as f64 / 10f64.powi(k)).into()),
        any::<String>().prop_map(Value::String),
        "[a-z]{0,8}".prop_map(Value::String),
        Just(Value::String("\u{0}\u{feff}\u{202e}𝄞".into())),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{0,6}|\\PC{0,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `[[[...]]]` nested `depth` deep around `inner`, as JSON text.
pub fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}
