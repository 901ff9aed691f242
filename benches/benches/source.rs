//! JavaScript (`nodejs:*`) actions: what the per-action snapshot costs and what it saves.
//!
//! - `source_activation/{snapshot,no_snapshot}`: `Runtime::run` of a JS `hello` (prepared, its
//!   `InstancePre` cached): with the snapshot, the activation instantiates a heap in which
//!   QuickJS is started and the source evaluated; without it (`Prewarm::None`), every activation
//!   creates the QuickJS runtime and context, evaluates the prelude and parses the source.
//! - `source_snapshot/hello`: `Snapshotter::snapshot` of the `hello` source (the interpreter is
//!   compiled once beforehand): instantiate, evaluate, scan the heap, write the module.
//! - `source_compile/hello`: `Runtime::prepare` of a never-seen snapshot module (a fresh
//!   digest every iteration): Cranelift compiles the interpreter's code again, once per action.
//!
//! Run: `cargo bench -p wisp-benches --bench source -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use wisp_benches::{distinct_variant, run_request};
use wisp_core::{Digest, RunResponse, Status};
use wisp_runtime::source::{Prewarm, SnapshotLimits, Snapshotter, SourceKind};
use wisp_runtime::{Runtime, RuntimeConfig};

const HELLO: &str = r#"
function main(params) {
  return { greeting: `Hello, ${params.name || "stranger"}!` };
}
"#;

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn snapshot(s: &Snapshotter, prewarm: Prewarm) -> Vec<u8> {
    s.snapshot_with(
        SourceKind::JavaScript,
        HELLO,
        None,
        &SnapshotLimits::default(),
        prewarm,
    )
    .await
    .expect("hello snapshots")
}

fn check(r: &RunResponse) {
    assert_eq!(r.response.status, Status::Success, "{r:?}");
}

fn activation(c: &mut Criterion) {
    let rt = tokio_rt();
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let s = Snapshotter::new(runtime.engine().clone());
    let mut group = c.benchmark_group("source_activation");
    for (name, prewarm) in [
        ("snapshot", Prewarm::Evaluated),
        ("no_snapshot", Prewarm::None),
    ] {
        let module = rt.block_on(snapshot(&s, prewarm));
        let digest = Digest::of(&module);
        rt.block_on(runtime.prepare(&digest, &module))
            .expect("prepares");
        let req = run_request(&digest, serde_json::json!({"name": "bench"}));
        check(&rt.block_on(runtime.run(req.clone())).expect("runs"));
        eprintln!("source_activation/{name}: module {} bytes", module.len());
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let req = req.clone();
                let runtime = runtime.clone();
                async move { black_box(runtime.run(req).await.expect("runs")) }
            });
        });
    }
    group.finish();
}

fn snapshot_build(c: &mut Criterion) {
    let rt = tokio_rt();
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let s = Snapshotter::new(runtime.engine().clone());
    // Compiles the instrumented interpreter: once per Snapshotter, outside the timing.
    rt.block_on(snapshot(&s, Prewarm::Evaluated));
    let mut group = c.benchmark_group("source_snapshot");
    group.bench_function("hello", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(snapshot(&s, Prewarm::Evaluated).await) });
    });
    group.finish();
}

fn compile(c: &mut Criterion) {
    let rt = tokio_rt();
    let runtime = Runtime::new(RuntimeConfig {
        code_cache_bytes: 256 << 20,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let s = Snapshotter::new(runtime.engine().clone());
    let module = rt.block_on(snapshot(&s, Prewarm::Evaluated));
    let n = AtomicU64::new(0);
    let mut group = c.benchmark_group("source_compile");
    group.sample_size(10);
    group.bench_function("hello", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let code = distinct_variant(&module, n.fetch_add(1, Ordering::Relaxed));
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
}

criterion_group!(benches, activation, snapshot_build, compile);
criterion_main!(benches);
