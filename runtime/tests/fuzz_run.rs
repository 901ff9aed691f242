//! Fuzz target 2 of issue 7: the runtime's `POST /run` (and `/prepare`) request, driven through
//! the real axum app (`wisp_runtime::app`) with `tower::ServiceExt::oneshot`, running the real
//! `echo`, `env` and `hello` functions.
//!
//! Properties:
//! - arbitrary bodies, and valid-looking requests with one field corrupted (wrong type, huge
//!   numbers, bad ids and digests, bad base64, deep nesting, params over 1 MB, a missing or wrong
//!   token) answer a 4xx JSON `{error, code}`, never a 5xx, and never panic the server;
//! - every valid request answers 200 with a `RunResponse` for its activation id; `echo` gets its
//!   params back unchanged and `env` sees the request's identity strings exactly (unicode
//!   included), so the wire format round-trips through the guest;
//! - a `RunRequest` round-trips through JSON (serialise → parse equal).
//!
//! Cases per property: the defaults below (about 12 s in release on 2 cores); `PROPTEST_CASES=N`
//! runs N of each. Bugs found keep a `regression_*` test.

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};
use serde_json::{Map, Value, json};
use tower::ServiceExt as _;
use wisp_core::{ActivationId, Digest, Limits, RunRequest, RunResponse, Status};
use wisp_runtime::{Runtime, RuntimeConfig};

const TOKEN: &str = "fuzz-token";

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 256,
        // Failures are kept as `regression_*` tests instead.
        failure_persistence: None,
        ..Config::default()
    });
    match runner.run(&strategy, test) {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => {
            panic!("{reason}\nminimal failing input: {value:#?}")
        }
        Err(TestError::Abort(reason)) => panic!("aborted: {reason}"),
    }
}

struct Reply {
    status: u16,
    content_type: String,
    body: bytes::Bytes,
}

impl Reply {
    fn assert_clean_error(&self) -> Result<(), TestCaseError> {
        let text = String::from_utf8_lossy(&self.body);
        prop_assert!(
            (400..500).contains(&self.status),
            "expected a 4xx, got {}: {}",
            self.status,
            text
        );
        prop_assert!(
            self.content_type.starts_with("application/json"),
            "{}: {}",
            self.content_type,
            text
        );
        let v: Value = serde_json::from_slice(&self.body)
            .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {text}")))?;
        prop_assert!(v["error"].is_string() && v["code"].is_string(), "{}", v);
        Ok(())
    }
}

/// A runtime with `echo`, `env` and `hello` compiled, behind its real router.
struct Rt {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    echo: (Vec<u8>, Digest),
    env: Digest,
    hello: Digest,
}

impl Rt {
    fn start() -> Rt {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let runtime = rt.block_on(async {
            Runtime::new(RuntimeConfig {
                token: Some(TOKEN.into()),
                pool_slots: 16,
                ..RuntimeConfig::default()
            })
            .unwrap()
        });
        let app = wisp_runtime::app(runtime);
        let mut this = Rt {
            rt,
            app,
            echo: (Vec::new(), Digest::of(b"")),
            env: Digest::of(b""),
            hello: Digest::of(b""),
        };
        let deploy = |name: &str| {
            let bytes = wisp_testkit::function_bytes(name);
            let digest = Digest::of(&bytes);
            let body = json!({"digest": digest, "code": b64(&bytes)});
            let r = this.post("/prepare", Some(TOKEN), body.to_string().into_bytes());
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            (bytes, digest)
        };
        let echo = deploy("echo");
        let env = deploy("env").1;
        let hello = deploy("hello").1;
        this.echo = echo;
        this.env = env;
        this.hello = hello;
        this
    }

    fn post(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> Reply {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Body::from(body)).unwrap();
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.unwrap();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let status = resp.status().as_u16();
            let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .unwrap();
            Reply {
                status,
                content_type,
                body,
            }
        })
    }

    fn run(&self, req: &RunRequest) -> Reply {
        self.post("/run", Some(TOKEN), serde_json::to_vec(req).unwrap())
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Arbitrary JSON with hostile leaves (NULs, unicode, huge numbers), `depth` levels deep.
fn json_value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| n.into()),
        any::<u64>().prop_map(|n| n.into()),
        // Floats with ≤ 15 significant digits: serde_json parses these back exactly.
        (-999_999_999_999i64..999_999_999_999, 0i32..8)
            .prop_map(|(m, k)| (m as f64 / 10f64.powi(k)).into()),
        any::<String>().prop_map(Value::String),
        Just(Value::String("\u{0}\n\r\u{feff}\u{202e}𝄞".into())),
    ];
    leaf.prop_recursive(depth, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn params() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("\\PC{0,8}", json_value(4), 0..6)
        .prop_map(|m| m.into_iter().collect())
}

/// Identity strings: printable unicode, sometimes with control characters.
fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z/]{1,12}",
        "\\PC{0,16}",
        any::<String>(),
        Just("a=b".to_string()),
        Just("a\u{0}b".to_string()),
        Just("line\nbreak".to_string()),
    ]
}

fn valid_limits() -> impl Strategy<Value = Limits> {
    (
        prop_oneof![Just(60_000u64), 10_000..=300_000u64],
        prop_oneof![Just(256u64), 64..=2048u64],
        0..=10u64,
        1..=500u32,
    )
        .prop_map(|(timeout, memory, logs, concurrency)| Limits {
            timeout,
            memory,
            logs,
            concurrency,
        })
}

fn base_request(digest: &Digest) -> RunRequest {
    RunRequest {
        activation_id: ActivationId::generate(),
        namespace: "guest".into(),
        action: "/guest/fuzz".into(),
        version: "0.0.1".into(),
        digest: digest.clone(),
        code: None,
        limits: Limits::default(),
        params: Map::new(),
        api_host: "http://127.0.0.1:3233".into(),
    }
}

/// A RunRequest's JSON with one field replaced by junk.
fn corrupted(echo: Digest) -> impl Strategy<Value = (String, Value)> {
    let field = prop::sample::select(vec![
        "activation_id",
        "namespace",
        "action",
        "version",
        "digest",
        "code",
        "limits",
        "params",
        "api_host",
        "limits.timeout",
        "limits.memory",
        "limits.logs",
        "limits.concurrency",
    ]);
    let junk = prop_oneof![
        json_value(3),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e300)),
        Just(json!(u64::MAX)),
        Just(json!(18446744073709551616.0)),
        Just(json!("ABCDEF0123456789abcdef0123456789")),
        Just(json!(Digest::of(b"never seen").to_string())),
        Just(json!("not base64 !!!")),
        Just(json!(b64(b"\0asm\x01\0\0\0junk"))),
        Just(json!("::not a url::")),
        Just(json!("file:///etc/passwd")),
        Just(json!("http://127.0.0.1:1/code")),
        (100usize..300).prop_map(|d| serde_json::from_str::<Value>(&format!(
            "{}1{}",
            "[".repeat(d.min(120)),
            "]".repeat(d.min(120))
        ))
        .unwrap()),
    ];
    (field, junk).prop_map(move |(field, junk)| {
        let mut v = serde_json::to_value(base_request(&echo)).unwrap();
        match field.split_once('.') {
            Some((a, b)) => v[a][b] = junk,
            None => v[field] = junk,
        }
        (field.to_string(), v)
    })
}

/// Every request answers 200 with a RunResponse for it, or a 4xx `{error, code}`; never 5xx.
fn assert_answer(r: &Reply, id: Option<&str>) -> Result<RunResponse, Option<TestCaseError>> {
    if r.status == 200 {
        let resp: RunResponse = serde_json::from_slice(&r.body).map_err(|e| {
            Some(TestCaseError::fail(format!(
                "200 without a RunResponse ({e}): {}",
                String::from_utf8_lossy(&r.body)
            )))
        })?;
        if let Some(id) = id
            && resp.activation_id.as_str() != id
        {
            return Err(Some(TestCaseError::fail("answer for another activation")));
        }
        Ok(resp)
    } else {
        r.assert_clean_error().map_err(Some)?;
        Err(None)
    }
}

#[test]
fn run_requests_never_fail_with_5xx() {
    let rt = Rt::start();
    let echo = rt.echo.1.clone();
    let input = prop_oneof![
        3 => corrupted(echo.clone()).prop_map(|(f, v)| (f, v.to_string().into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| ("bytes".to_string(), b)),
        1 => json_value(3).prop_map(|v| ("json".to_string(), v.to_string().into_bytes())),
        1 => (0usize..2000).prop_map(|d| ("nesting".to_string(), format!("{{\"params\": {{\"a\": {}}}}}", "[".repeat(d)).into_bytes())),
    ];
    check(cases(30_000), (input, 0u8..8), |((field, body), token)| {
        let token = match token {
            0 => None,
            1 => Some("wrong"),
            _ => Some(TOKEN),
        };
        for path in ["/run", "/prepare"] {
            let r = rt.post(path, token, body.clone());
            // `/prepare` of code it cannot fetch from a well-formed URL is a real upstream
            // failure: 502 `code_fetch_failed` (a `/run` makes it a whisk internal error).
            let fetch_failed = path == "/prepare"
                && r.status == 502
                && serde_json::from_slice::<Value>(&r.body)
                    .is_ok_and(|v| v["code"] == "code_fetch_failed");
            if r.status == 200 {
                prop_assert!(token == Some(TOKEN), "answered 200 without the token");
            } else if !fetch_failed {
                r.assert_clean_error()
                    .map_err(|e| TestCaseError::fail(format!("{path}, {field} corrupted: {e}")))?;
            }
        }
        Ok(())
    });
}

#[test]
fn valid_run_requests_round_trip_through_the_guest() {
    let rt = Rt::start();
    let input = (
        params(),
        (ident(), ident(), ident(), ident()),
        valid_limits(),
        0u8..4,
    );
    check(
        cases(40_000),
        input,
        |(params, (namespace, action, version, api_host), limits, mode)| {
            let mut req = base_request(&rt.echo.1);
            req.params = params.clone();
            req.limits = limits;
            // Identity strings go to `env`; params to `echo`, with the code inline or by digest.
            let use_env = mode == 0;
            if use_env {
                req.digest = rt.env.clone();
                req.namespace = namespace.clone();
                req.action = action.clone();
                req.version = version.clone();
                req.api_host = api_host.clone();
            } else if mode == 1 {
                req.code = Some(b64(&rt.echo.0));
            } else if mode == 2 {
                req.digest = rt.hello.clone();
            }
            let text = serde_json::to_string(&req).unwrap();
            let back: RunRequest = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &req);

            let r = rt.run(&req);
            let resp = match assert_answer(&r, Some(req.activation_id.as_str())) {
                Ok(resp) => resp,
                Err(Some(e)) => return Err(e),
                // Refused: only identity strings the guest cannot receive may be refused.
                Err(None) => {
                    prop_assert!(
                        use_env,
                        "valid request refused: {}",
                        String::from_utf8_lossy(&r.body)
                    );
                    let all = [&namespace, &action, &version, &api_host];
                    prop_assert!(
                        all.iter().any(|s| s.contains('\0')),
                        "refused: {}",
                        String::from_utf8_lossy(&r.body)
                    );
                    return Ok(());
                }
            };
            prop_assert_eq!(resp.response.status, Status::Success, "{:?}", resp);
            let result = resp.response.result;
            if use_env {
                prop_assert_eq!(&result["__OW_NAMESPACE"], &json!(namespace));
                prop_assert_eq!(&result["__OW_ACTION_NAME"], &json!(action));
                prop_assert_eq!(&result["__OW_ACTION_VERSION"], &json!(version));
                prop_assert_eq!(&result["__OW_API_HOST"], &json!(api_host));
                prop_assert_eq!(
                    &result["__OW_ACTIVATION_ID"],
                    &json!(req.activation_id.as_str())
                );
            } else if mode == 2 {
                prop_assert!(result["greeting"].is_string(), "{}", result);
            } else {
                prop_assert_eq!(result, Value::Object(params));
            }
            Ok(())
        },
    );
}

#[test]
fn oversized_params_are_refused_with_413() {
    let rt = Rt::start();
    let mut req = base_request(&rt.echo.1);
    req.params.insert(
        "big".into(),
        json!("x".repeat(wisp_core::run::MAX_PAYLOAD_BYTES)),
    );
    let r = rt.run(&req);
    assert!(matches!(r.status, 413), "{}", r.status);
    r.assert_clean_error().unwrap();
}

/// A NUL in an identity string reached the guest's environment cut short (`a\0b` became `a`).
#[test]
fn regression_nul_in_identity_strings_is_a_400() {
    let rt = Rt::start();
    let mut req = base_request(&rt.env);
    req.version = "a\0b".into();
    let r = rt.run(&req);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    r.assert_clean_error().unwrap();
}
