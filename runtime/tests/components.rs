//! WASI preview-2 command components run with the same stdin/stdout contract. The components
//! are made here from the `functions/` modules with the preview-1 component adapter (what
//! `wasm32-wasip2` toolchains and `wasm-tools component new` produce).

mod common;

use common::{assert_status, b64, function, request, start, start_with, test_config};
use serde_json::json;
use wisp_core::{Digest, Limits, RunResponse, Status};
use wisp_runtime::{CacheStats, RuntimeConfig};

/// `functions/<name>` as a WASI p2 command component.
async fn component(name: &'static str) -> anyhow::Result<(Vec<u8>, Digest)> {
    let (module, _) = function(name).await;
    let bytes = wit_component::ComponentEncoder::default()
        .module(&module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        )?
        .validate(true)
        .encode()?;
    assert_eq!(&bytes[4..8], &[0x0d, 0, 1, 0], "a component header");
    let digest = Digest::of(&bytes);
    Ok((bytes, digest))
}

async fn run_inline(
    s: &common::Server,
    code: &[u8],
    params: serde_json::Value,
    limits: Limits,
) -> anyhow::Result<RunResponse> {
    let mut req = request(&Digest::of(code), params, limits);
    req.code = Some(b64(code));
    s.run(&req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_component_greets_and_logs() -> anyhow::Result<()> {
    let s = start().await?;
    let (code, _) = component("hello").await?;
    let r = run_inline(&s, &code, json!({"name": "p2"}), Limits::default()).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"greeting": "Hello, p2!"}));
    assert!(
        r.logs
            .iter()
            .any(|l| l.ends_with("stderr: hello: greeting p2")),
        "{:?}",
        r.logs
    );
    // Environment and stdin reach the component too.
    let (env, _) = component("env").await?;
    let r = run_inline(&s, &env, json!({}), Limits::default()).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result["__OW_NAMESPACE"], "guest");
    assert_eq!(r.response.result["env_other"], json!([]));
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_components_end_with_their_status() -> anyhow::Result<()> {
    let s = start().await?;
    let (looping, _) = component("loop").await?;
    let limits = Limits {
        timeout: 500,
        ..Limits::default()
    };
    let r = run_inline(&s, &looping, json!({}), limits).await?;
    assert_status(&r, Status::DeveloperError);
    assert_eq!(
        r.response.result,
        json!({"error": "The action exceeded its time limit of 500 milliseconds."})
    );
    let (trap, _) = component("trap").await?;
    let r = run_inline(&s, &trap, json!({}), Limits::default()).await?;
    assert_status(&r, Status::DeveloperError);
    assert!(
        r.response.result["error"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    let (bomb, _) = component("membomb").await?;
    let r = run_inline(
        &s,
        &bomb,
        json!({}),
        Limits {
            memory: 32,
            ..Limits::default()
        },
    )
    .await?;
    assert_eq!(
        r.response.result,
        json!({"error": "The action exceeded its memory limit of 32 MB."})
    );
    let (exit, _) = component("exitcode").await?;
    let r = run_inline(&s, &exit, json!({}), Limits::default()).await?;
    assert_status(&r, Status::DeveloperError);
    // WASI p2's `exit` carries only ok/err: the adapter reports any failure as code 1.
    assert_eq!(
        r.response.result,
        json!({"error": "The action exited with code 1."})
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_are_cached_on_disk_too() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().into()),
        ..test_config()
    };
    let (code, digest) = component("echo").await?;
    let first = start_with(config.clone()).await?;
    first.runtime.prepare(&digest, &code).await?;
    first.stop().await?;
    let second = start_with(config).await?;
    let r = second.invoke(&digest, json!({"via": "disk"})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"via": "disk"}));
    assert_eq!(
        second.runtime.cache_stats(),
        CacheStats {
            memory_hits: 0,
            misses: 1,
            disk_loads: 1,
            compiles: 0
        }
    );
    second.stop().await
}
