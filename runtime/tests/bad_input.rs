//! Bad input gets a clear `{error, code}` with the right HTTP status and harms nothing: the
//! runtime keeps serving `hello` after each.

mod common;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use common::{Server, TOKEN, assert_status, b64, function, request, start};
use serde_json::{Value, json};
use wisp_core::run::ErrorBody;
use wisp_core::{Digest, Limits, Status};

async fn still_serves(s: &Server) -> anyhow::Result<()> {
    let d = s.deploy("hello").await?;
    let r = s.invoke(&d, json!({"name": "still here"})).await?;
    assert_status(&r, Status::Success);
    Ok(())
}

/// `/run` with `code` inline; returns the HTTP status and the JSON body.
async fn run_inline(s: &Server, code: &[u8]) -> anyhow::Result<(u16, Value)> {
    let mut req = request(&Digest::of(code), json!({}), Limits::default());
    req.code = Some(b64(code));
    let resp = s.post("/run", &req).await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

fn assert_error(body: &Value, code: &str, needle: &str) {
    let e: ErrorBody = serde_json::from_value(body.clone()).expect("an {error, code} body");
    assert_eq!(e.code, code, "{body}");
    assert!(
        e.error.contains(needle),
        "error {:?} should mention {needle:?}",
        e.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_modules_are_refused_with_422() -> anyhow::Result<()> {
    let s = start().await?;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not wasm",
            b"#!/bin/sh\necho hello\n".to_vec(),
            "not a WebAssembly binary",
        ),
        (
            "truncated wasm",
            b"\0asm\x01\0\0\0\x01\x05".to_vec(),
            "not a valid WebAssembly module",
        ),
        (
            "foreign import",
            wat::parse_str(
                r#"(module (import "env" "now" (func)) (memory (export "memory") 1)
                   (func (export "_start")))"#,
            )?,
            "`env::now`",
        ),
        (
            "unknown WASI function",
            wat::parse_str(
                r#"(module (import "wasi_snapshot_preview1" "no_such_call" (func))
                   (memory (export "memory") 1) (func (export "_start")))"#,
            )?,
            "no_such_call",
        ),
        (
            "no _start",
            wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "main")))"#)?,
            "no `_start`",
        ),
        (
            "_start with params",
            wat::parse_str(r#"(module (func (export "_start") (param i32)))"#)?,
            "() -> ()",
        ),
        (
            "a component that is not a command",
            wat::parse_str("(component)")?,
            "wasi:cli/run",
        ),
        (
            "a component importing a foreign interface",
            wat::parse_str(
                r#"(component (import "acme:db/query@1.0.0" (instance (export "get" (func)))))"#,
            )?,
            "acme:db/query",
        ),
    ];
    for (what, code, needle) in cases {
        let (status, body) = run_inline(&s, &code).await?;
        assert_eq!(status, 422, "{what}: {body}");
        assert_error(&body, "invalid_module", needle);
        // /prepare says the same.
        let resp = s
            .post(
                "/prepare",
                &json!({"digest": Digest::of(&code), "code": b64(&code)}),
            )
            .await?;
        assert_eq!(resp.status(), 422, "{what}");
    }
    still_serves(&s).await?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_too_big_for_its_memory_limit_is_a_developer_error() -> anyhow::Result<()> {
    let s = start().await?;
    // 200 pages = 12.5 MiB of initial memory against a 10 MB cap: refused at instantiation.
    let code =
        wat::parse_str(r#"(module (memory (export "memory") 200) (func (export "_start")))"#)?;
    let mut req = request(
        &Digest::of(&code),
        json!({}),
        Limits {
            memory: 10,
            ..Limits::default()
        },
    );
    req.code = Some(b64(&code));
    let r = s.run(&req).await?;
    assert_status(&r, Status::DeveloperError);
    assert_eq!(
        r.response.result,
        json!({"error": "The action exceeded its memory limit of 10 MB."})
    );
    // The same module within a larger limit runs (and prints nothing: no result).
    let r = s
        .run(&request(
            &req.digest,
            json!({}),
            Limits {
                memory: 16,
                ..Limits::default()
            },
        ))
        .await?;
    assert_eq!(
        r.response.result,
        json!({"error": "The action did not return a JSON object."})
    );
    still_serves(&s).await?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_413_401() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("echo").await?;
    let good = serde_json::to_value(request(&d, json!({"a": 1}), Limits::default()))?;

    // params not a JSON object.
    for params in [json!([1, 2]), json!("text"), json!(null), json!(7)] {
        let mut body = good.clone();
        body["params"] = params;
        let resp = s.post("/run", &body).await?;
        assert_eq!(resp.status(), 400);
        assert_error(
            &resp.json().await?,
            "bad_request",
            "`params` must be a JSON object",
        );
    }
    // Not JSON at all, and JSON of the wrong shape.
    let resp = s
        .client
        .post(s.url("/run"))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    assert_error(&resp.json().await?, "bad_request", "RunRequest");
    let resp = s.post("/run", &json!({"digest": "abc"})).await?;
    assert_eq!(resp.status(), 400);
    // Limits out of range.
    let mut body = good.clone();
    body["limits"] = json!({"memory": 4096});
    let resp = s.post("/run", &body).await?;
    assert_eq!(resp.status(), 400);
    assert_error(&resp.json().await?, "bad_request", "memory");

    // 2 MB of params: over OpenWhisk's 1 MB.
    let mut body = good.clone();
    body["params"] = json!({"big": "x".repeat(2 << 20)});
    let resp = s.post("/run", &body).await?;
    assert_eq!(resp.status(), 413);
    assert_error(&resp.json().await?, "payload_too_large", "1048576");
    // Just under the limit is fine.
    let mut body = good.clone();
    body["params"] = json!({"big": "x".repeat(1_000_000)});
    let resp = s.post("/run", &body).await?;
    assert_eq!(resp.status(), 200);

    // Tokens: wrong, missing, malformed.
    let resp = s
        .client
        .post(s.url("/run"))
        .bearer_auth("wrong")
        .json(&good)
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    assert_error(&resp.json().await?, "unauthorized", "token");
    let resp = s.client.post(s.url("/run")).json(&good).send().await?;
    assert_eq!(resp.status(), 401);
    let resp = s
        .client
        .post(s.url("/run"))
        .basic_auth("u", Some(TOKEN))
        .json(&good)
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    let resp = s
        .client
        .post(s.url("/prepare"))
        .json(&json!({"digest": d}))
        .send()
        .await?;
    assert_eq!(resp.status(), 401);

    let r = s.run(&serde_json::from_value(good)?).await?;
    assert_eq!(r.response.result, json!({"a": 1}));
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_code_is_409_until_sent_inline() -> anyhow::Result<()> {
    let s = start().await?;
    let (bytes, digest) = function("echo").await;
    let mut req = request(&digest, json!({"x": true}), Limits::default());
    let resp = s.post("/run", &req).await?;
    assert_eq!(resp.status(), 409);
    assert_error(
        &resp.json().await?,
        wisp_core::run::CODE_UNKNOWN,
        digest.as_str(),
    );

    // Inline code that does not hash to the digest.
    req.code = Some(b64(b"\0asm\x01\0\0\0"));
    let resp = s.post("/run", &req).await?;
    assert_eq!(resp.status(), 400);
    assert_error(&resp.json().await?, "digest_mismatch", digest.as_str());
    req.code = Some("%%% not base64".into());
    assert_eq!(s.post("/run", &req).await?.status(), 400);

    req.code = Some(b64(&bytes));
    let r = s.run(&req).await?;
    assert_status(&r, Status::Success);
    assert!(r.init_time_us > 0, "the first run compiled: {r:?}");
    // Known from now on: no code needed.
    let r = s.invoke(&digest, json!({"y": 2})).await?;
    assert_eq!(r.response.result, json!({"y": 2}));
    assert_eq!(r.init_time_us, 0);
    s.stop().await
}

/// A stand-in for the scheduler's code endpoint: serves `functions/` by digest, behind the
/// same bearer token.
async fn code_server(blobs: Vec<Vec<u8>>) -> anyhow::Result<std::net::SocketAddr> {
    let blobs: std::collections::HashMap<String, Vec<u8>> = blobs
        .into_iter()
        .map(|b| (Digest::of(&b).to_string(), b))
        .collect();
    let blobs = std::sync::Arc::new(blobs);
    let app = axum::Router::new().route(
        "/internal/v1/code/{digest}",
        axum::routing::get(move |Path(digest): Path<String>, headers: HeaderMap| {
            let blobs = blobs.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                if auth != Some(&format!("Bearer {TOKEN}")) {
                    return Err(StatusCode::UNAUTHORIZED);
                }
                blobs.get(&digest).cloned().ok_or(StatusCode::NOT_FOUND)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_is_fetched_from_code_url_and_fetch_failures_are_internal_errors() -> anyhow::Result<()>
{
    let s = start().await?;
    let (hello, hello_digest) = function("hello").await;
    let code_addr = code_server(vec![hello]).await?;
    let url = |d: &Digest| format!("http://{code_addr}{}{d}", wisp_core::run::CODE_PATH_PREFIX);

    // Several first invokes at once fetch and compile once.
    let mut req = request(&hello_digest, json!({"name": "fetched"}), Limits::default());
    req.code_url = Some(url(&hello_digest));
    let runs: Vec<_> = (0..8).map(|_| s.run(&req)).collect();
    for r in futures::future::try_join_all(runs).await? {
        assert_status(&r, Status::Success);
        assert_eq!(r.response.result, json!({"greeting": "Hello, fetched!"}));
    }
    assert_eq!(s.runtime.cache_stats().compiles, 1);

    // A digest the code server does not have: the activation is a whisk internal error.
    let (_, echo_digest) = function("echo").await;
    let mut req = request(&echo_digest, json!({}), Limits::default());
    req.code_url = Some(url(&echo_digest));
    let r = s.run(&req).await?;
    assert_status(&r, Status::InternalError);
    let err = r.response.result["error"].as_str().unwrap();
    assert!(
        err.contains("404") && err.contains("cannot fetch code"),
        "{err}"
    );
    // Unreachable code server: same.
    req.code_url = Some(format!("http://127.0.0.1:9/{echo_digest}"));
    assert_status(&s.run(&req).await?, Status::InternalError);
    // Served bytes that do not match the digest: same.
    req.code_url = Some(url(&hello_digest));
    let r = s.run(&req).await?;
    assert_status(&r, Status::InternalError);
    assert!(
        r.response.result["error"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );

    let text = s.metrics().await?;
    assert_eq!(
        common::metric(&text, r#"wisp_activations_total{status="internal_error"}"#),
        Some(3.0)
    );
    assert_eq!(
        common::metric(&text, r#"wisp_activations_total{status="success"}"#),
        Some(8.0)
    );
    still_serves(&s).await?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() -> anyhow::Result<()> {
    let config = wisp_runtime::RuntimeConfig {
        user_memory_mb: 3072,
        ..common::test_config()
    };
    let s = common::start_with(config).await?;
    let health: Value = s.client.get(s.url("/health")).send().await?.json().await?;
    assert_eq!(
        health,
        json!({"status": "ok", "userMemory": 3072, "inFlight": 0})
    );
    assert_eq!(s.client.get(s.url("/ready")).send().await?.status(), 200);
    still_serves(&s).await?;
    let resp = s.client.get(s.url("/metrics")).send().await?;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await?;
    for series in [
        r#"wisp_activations_total{status="success"}"#,
        r#"wisp_activations_total{status="application_error"}"#,
        r#"wisp_activations_total{status="developer_error"}"#,
        r#"wisp_activations_total{status="internal_error"}"#,
        "wisp_code_cache_hits_total",
        "wisp_code_cache_misses_total",
        "wisp_code_compiles_total",
        "wisp_code_disk_loads_total",
        "wisp_activations_in_flight",
        "wisp_compile_seconds_count",
        "wisp_instantiate_seconds_count",
    ] {
        assert!(
            common::metric(&text, series).is_some(),
            "{series} missing from\n{text}"
        );
    }
    assert_eq!(
        common::metric(&text, r#"wisp_activations_total{status="success"}"#),
        Some(1.0)
    );
    assert_eq!(
        common::metric(&text, "wisp_instantiate_seconds_count"),
        Some(1.0)
    );
    assert_eq!(common::metric(&text, "wisp_code_compiles_total"), Some(1.0));
    s.stop().await
}
