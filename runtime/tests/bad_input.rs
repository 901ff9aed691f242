//! Bad input gets a clear `{error, code}` with the right HTTP status and harms nothing: the
//! runtime keeps serving `hello` after each.

mod common;

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

/// A runtime never dials a URL a request names: a `code_url` (the field older schedulers sent)
/// is ignored, the unknown digest is a 409 asking for the code inline, and the listener at that
/// URL never sees a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_url_in_a_request_is_never_dialed() -> anyhow::Result<()> {
    let s = start().await?;
    let trap = std::net::TcpListener::bind("127.0.0.1:0")?;
    trap.set_nonblocking(true)?;
    let url = format!("http://{}/internal/v1/code/", trap.local_addr()?);
    let (hello, digest) = function("hello").await;

    let mut req = serde_json::to_value(request(&digest, json!({}), Limits::default()))?;
    req["code_url"] = json!(format!("{url}{digest}"));
    let resp = s.post("/run", &req).await?;
    assert_eq!(resp.status(), 409);
    assert_error(&resp.json().await?, "code_unknown", "unknown");
    let prep = json!({"digest": digest, "code_url": format!("{url}{digest}")});
    let resp = s.post("/prepare", &prep).await?;
    assert_eq!(resp.status(), 409);
    assert_error(&resp.json().await?, "code_unknown", "unknown");
    // Both answers are in: had the runtime dialed, the connection would be queued by now.
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the runtime connected to the URL a request named"
    );

    // The code inline is the way in.
    let mut req = request(&digest, json!({"name": "inline"}), Limits::default());
    req.code = Some(b64(&hello));
    let r = s.run(&req).await?;
    assert_status(&r, Status::Success);
    still_serves(&s).await?;
    s.stop().await
}

/// `DELETE /code/{digest}` drops a digest from the caches: the next run is a 409 again. It
/// needs the token, refuses a malformed digest and is idempotent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_code_forgets_it() -> anyhow::Result<()> {
    let s = start().await?;
    let digest = s.deploy("echo").await?;
    let r = s.invoke(&digest, json!({"k": 1})).await?;
    assert_status(&r, Status::Success);
    let url = s.url(&format!("/code/{digest}"));
    let resp = s.client.delete(&url).send().await?;
    assert_eq!(resp.status(), 401);
    assert_error(&resp.json().await?, "unauthorized", "token");
    for _ in 0..2 {
        let resp = s.client.delete(&url).bearer_auth(TOKEN).send().await?;
        assert_eq!(resp.status(), 204);
    }
    let resp = s
        .post("/run", &request(&digest, json!({}), Limits::default()))
        .await?;
    assert_eq!(resp.status(), 409);
    let resp = s
        .client
        .delete(s.url("/code/not-a-digest"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    assert_error(&resp.json().await?, "bad_request", "digest");
    still_serves(&s).await?;
    s.stop().await
}

/// The `Bearer` scheme is matched case-insensitively; a wrong token of any length is a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() -> anyhow::Result<()> {
    let s = start().await?;
    let digest = s.deploy("hello").await?;
    let body = serde_json::to_vec(&request(&digest, json!({}), Limits::default()))?;
    for (auth, want) in [
        (format!("bearer {TOKEN}"), 200),
        (format!("BEARER {TOKEN}"), 200),
        (format!("Bearer {TOKEN}x"), 401),
        ("Bearer x".to_string(), 401),
        (format!("Basic {TOKEN}"), 401),
    ] {
        let resp = s
            .client
            .post(s.url("/run"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(resp.status(), want, "{auth}");
    }
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
        json!({"status": "ok", "userMemory": 3072, "reservedMemory": 0, "inFlight": 0, "waiting": 0})
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
        "wisp_activations_waiting",
        "wisp_memory_budget_bytes",
        "wisp_memory_reserved_bytes",
        "wisp_memory_wait_timeouts_total",
        "wisp_disk_cache_bytes",
        "wisp_disk_cache_evictions_total",
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
    assert_eq!(
        common::metric(&text, "wisp_memory_budget_bytes"),
        Some((3072u64 << 20) as f64)
    );
    assert_eq!(
        common::metric(&text, "wisp_memory_reserved_bytes"),
        Some(0.0)
    );
    s.stop().await
}
