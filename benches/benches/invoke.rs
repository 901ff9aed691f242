//! End-to-end invoke: blocking invokes of `hello` through a real scheduler and one real runtime on
//! loopback (REST API → balancer → `POST /run` → wasm → activation record queued).
//!
//! - `invoke/blocking_hello`: one client, one request at a time: the latency of a blocking
//!   invoke (criterion reports the distribution; the target is a median ≤ 1 ms).
//! - `invoke/blocking_hello_32_clients`: `iter_custom` fires the iteration count over 32
//!   concurrent clients and reports wall time per request, i.e. 1 / throughput (target:
//!   ≥ 2,000 invokes/s, ≤ 500 µs per request). The throughput is also printed as req/s.
//!
//! Scheduler, runtime and clients share the process (and this machine's cores), as in `wisp up`.
//!
//! Run: `cargo bench --bench invoke -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const CLIENTS: usize = 32;

struct Platform {
    invoke_url: String,
    auth: String,
    client: reqwest::Client,
    _shutdown: CancellationToken,
    _data: tempfile::TempDir,
}

async fn start() -> anyhow::Result<Platform> {
    let shutdown = CancellationToken::new();
    // The runtime.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let runtime_url = format!("http://{}", listener.local_addr()?);
    let config = wisp_runtime::RuntimeConfig {
        token: Some("bench-token".into()),
        ..wisp_runtime::RuntimeConfig::default()
    };
    tokio::spawn(wisp_runtime::serve(
        config,
        listener,
        shutdown.child_token(),
    ));
    // The scheduler.
    let data = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let scheduler = wisp_scheduler::Scheduler::open(wisp_scheduler::SchedulerConfig {
        runtimes: vec![runtime_url],
        data_dir: data.path().to_path_buf(),
        runtime_token: Some("bench-token".into()),
        api_host: Some(base.clone()),
        ..wisp_scheduler::SchedulerConfig::default()
    })
    .await?;
    let creds = scheduler
        .ensure_user("bench", None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("new user has a key"))?;
    tokio::spawn(scheduler.serve(listener, shutdown.child_token()));
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&creds)
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CLIENTS * 2)
        .build()?;
    let code = wisp_testkit::function_bytes("hello");
    let resp = client
        .put(format!("{base}/api/v1/namespaces/_/actions/hello?overwrite=true"))
        .header("authorization", &auth)
        .json(&json!({"exec": {"kind": "wasm", "code": base64::engine::general_purpose::STANDARD.encode(&code)}}))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "deploy hello: {}",
        resp.status()
    );
    let platform = Platform {
        invoke_url: format!("{base}/api/v1/namespaces/_/actions/hello?blocking=true&result=true"),
        auth,
        client,
        _shutdown: shutdown,
        _data: data,
    };
    // Check it works before timing it.
    invoke(&platform).await;
    Ok(platform)
}

async fn invoke(p: &Platform) {
    let resp = p
        .client
        .post(&p.invoke_url)
        .header("authorization", &p.auth)
        .header("content-type", "application/json")
        .body(r#"{"name":"bench"}"#)
        .send()
        .await
        .expect("invoke");
    assert_eq!(resp.status(), 200, "invoke answered {}", resp.status());
    let body = resp.bytes().await.expect("body");
    assert!(body.starts_with(b"{\"greeting\""), "{body:?}");
}

/// Fires `n` invokes over [`CLIENTS`] concurrent clients; the wall time.
async fn burst(p: &Arc<Platform>, n: u64) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(CLIENTS);
    for c in 0..CLIENTS as u64 {
        let share = n / CLIENTS as u64 + u64::from(c < n % CLIENTS as u64);
        let p = Arc::clone(p);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                invoke(&p).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let platform = Arc::new(rt.block_on(start()).expect("start scheduler and runtime"));

    let mut group = c.benchmark_group("invoke");
    group.bench_function("blocking_hello", |b| {
        b.to_async(&rt).iter(|| invoke(&platform));
    });
    group.bench_function("blocking_hello_32_clients", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let p = Arc::clone(&platform);
            async move { burst(&p, iters).await }
        });
    });
    group.finish();

    // A plain throughput figure, as req/s.
    let n = 20_000;
    let elapsed = rt.block_on(burst(&platform, n));
    println!(
        "invoke/throughput_32_clients: {n} blocking invokes of hello in {:.2} s = {:.0} invokes/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}

criterion_group!(invoke_benches, benches);
criterion_main!(invoke_benches);
