//! The runtime's cold and warm paths, shaped like wasmtime's `benches/instantiation.rs`: the
//! engine, linker and prepared code are built once outside the timed closure; each bench times
//! only the step its name says.
//!
//! - `compile/hello`: `Runtime::prepare` of never-seen code (`hello` with a fresh custom section,
//!   so a new digest every iteration): validate + Cranelift compile + link. No disk cache.
//! - `disk_cache_load/hello`: `prepare` of code compiled earlier by this runtime and evicted from
//!   memory: deserialize the module from the disk cache + link.
//! - `prewarmed/{pooling,pooling_copy_init,pooling_memset_reset,on_demand}`: `Runtime::run` of
//!   `hello` whose `InstancePre` is cached: a fresh `Store` + WASI context, instantiate,
//!   `_start`, result parsing. The default (pooling allocator, copy-on-write memory init, slots
//!   reset by scanning for dirty pages with `PAGEMAP_SCAN`), then the same with data segments
//!   copied instead of mapped, with the reset memsetting the whole kept-resident region, and the
//!   on-demand allocator (mmap per instance).
//! - `run_http/hello`: `POST /run` of `hello` over loopback HTTP/1.1 with a keep-alive client:
//!   JSON in, activation, JSON out.
//! - `native_baseline/{spawn_true,spawn_echo_json}`: spawning a native process per call (and
//!   reading its stdout) — the floor a container-per-activation design can never beat.
//!
//! Run: `cargo bench -p wisp-benches --bench runtime -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use wisp_benches::{BENCH_TOKEN, RuntimeServer, distinct_variant, hello_request};
use wisp_core::{Digest, RunResponse, Status};
use wisp_runtime::{Allocator, Runtime, RuntimeConfig};

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn hello() -> (Vec<u8>, Digest) {
    let bytes = wisp_testkit::function_bytes("hello");
    let digest = Digest::of(&bytes);
    (bytes, digest)
}

fn compile(c: &mut Criterion) {
    let rt = tokio_rt();
    let (bytes, _) = hello();
    // A small memory cache: the variants are never reused.
    let runtime = Runtime::new(RuntimeConfig {
        code_cache_bytes: 64 << 20,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let n = AtomicU64::new(0);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("hello", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let code = distinct_variant(&bytes, n.fetch_add(1, Ordering::Relaxed));
                let digest = Digest::of(&code);
                (code, digest)
            },
            |(code, digest)| {
                let runtime = runtime.clone();
                async move { black_box(runtime.prepare(&digest, &code).await.expect("compiles")) }
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
    assert_eq!(runtime.cache_stats().disk_loads, 0);
}

fn disk_cache_load(c: &mut Criterion) {
    let rt = tokio_rt();
    let (bytes, digest) = hello();
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    rt.block_on(runtime.prepare(&digest, &bytes))
        .expect("first compile");
    let mut group = c.benchmark_group("disk_cache_load");
    group.bench_function("hello", |b| {
        b.to_async(&rt).iter_batched(
            || runtime.clear_memory_cache(),
            |()| {
                let runtime = runtime.clone();
                let (digest, bytes) = (&digest, &bytes);
                async move { black_box(runtime.prepare(digest, bytes).await.expect("loads")) }
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
    let stats = runtime.cache_stats();
    assert_eq!(
        stats.compiles, 1,
        "every load after the first came from disk: {stats:?}"
    );
}

fn prewarmed(c: &mut Criterion) {
    let rt = tokio_rt();
    let (bytes, digest) = hello();
    let mut group = c.benchmark_group("prewarmed");
    let variants = [
        ("pooling", RuntimeConfig::default()),
        (
            "pooling_copy_init",
            RuntimeConfig {
                memory_init_cow: false,
                ..RuntimeConfig::default()
            },
        ),
        (
            "pooling_memset_reset",
            RuntimeConfig {
                pagemap_scan: false,
                ..RuntimeConfig::default()
            },
        ),
        (
            "on_demand",
            RuntimeConfig {
                allocator: Allocator::OnDemand,
                ..RuntimeConfig::default()
            },
        ),
    ];
    for (name, config) in variants {
        let runtime = Runtime::new(config).expect("runtime");
        rt.block_on(runtime.prepare(&digest, &bytes))
            .expect("prepare");
        let req = hello_request(&digest);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let runtime = runtime.clone();
                let req = req.clone();
                async move {
                    let r = runtime.run(req).await.expect("runs");
                    assert_eq!(r.response.status, Status::Success);
                    black_box(r)
                }
            });
        });
    }
    group.finish();
}

fn run_http(c: &mut Criterion) {
    let rt = tokio_rt();
    let (bytes, digest) = hello();
    let server = rt
        .block_on(RuntimeServer::start(RuntimeConfig::default()))
        .expect("server");
    rt.block_on(server.runtime.prepare(&digest, &bytes))
        .expect("prepare");
    let client = reqwest::Client::new();
    let url = server.run_url();
    let body = serde_json::to_vec(&hello_request(&digest)).expect("json");
    let mut group = c.benchmark_group("run_http");
    group.bench_function("hello", |b| {
        b.to_async(&rt).iter(|| {
            let req = client
                .post(&url)
                .bearer_auth(BENCH_TOKEN)
                .header("content-type", "application/json")
                .body(body.clone());
            async move {
                let resp = req.send().await.expect("sent");
                let r: RunResponse = resp.json().await.expect("RunResponse");
                assert_eq!(r.response.status, Status::Success);
                black_box(r)
            }
        });
    });
    group.finish();
    drop(server);
}

fn native_baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("native_baseline");
    group.bench_function("spawn_true", |b| {
        b.iter(|| {
            let status = Command::new("/bin/true")
                .stdin(Stdio::null())
                .status()
                .expect("spawn");
            assert!(status.success());
        });
    });
    group.bench_function("spawn_echo_json", |b| {
        b.iter(|| {
            let out = Command::new("/bin/echo")
                .arg(r#"{"greeting":"Hello, bench!"}"#)
                .stdin(Stdio::null())
                .output()
                .expect("spawn");
            black_box(serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json"))
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    compile,
    disk_cache_load,
    prewarmed,
    run_http,
    native_baseline
);
criterion_main!(benches);
