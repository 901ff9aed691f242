//! Noisy neighbour: how much one tenant flooding a runtime with CPU-bound `loop` guests slows
//! another tenant's blocking `hello`. Not criterion: the figure that matters is a tail
//! percentile, so each variant records every latency and prints p50/p99/max.
//!
//! For each variant: one runtime in-process, serving HTTP on loopback, on a 2-worker tokio
//! runtime (as `wisp up` on this machine). Tenant B runs `SAMPLES` sequential `hello`s over HTTP
//! (`POST /run`) alone, then again while tenant A keeps `LOOPS` loop activations running (4×
//! the cores; each 64 MB so the memory budget admits them all). The target:
//! B's p99 under the flood ≤ 3 × its unloaded p99 + 5 ms.
//!
//! Variants: `shared` (no guest pool: every guest yields to the request workers every 2 ms tick,
//! the earlier design), `shared_1ms_tick`, `pool_nice0` (long guests move to a background pool
//! of the same priority) and `pool_nice10` (the default: that pool at `nice` 10).
//!
//! Run: `cargo bench -p wisp-benches --bench fairness` (about a minute).

use std::time::{Duration, Instant};
use wisp_benches::{BENCH_TOKEN, RuntimeServer, run_request};
use wisp_core::{Digest, Limits, RunResponse, Status};
use wisp_runtime::RuntimeConfig;

const SAMPLES: usize = 2_000;
const LOOPS: usize = 8;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Figures {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn figures(mut v: Vec<Duration>) -> Figures {
    v.sort();
    Figures {
        p50: percentile(&v, 0.5),
        p99: percentile(&v, 0.99),
        max: *v.last().expect("samples"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

async fn hellos(client: &reqwest::Client, url: &str, body: &[u8]) -> Vec<Duration> {
    let mut out = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t0 = Instant::now();
        let resp = client
            .post(url)
            .bearer_auth(BENCH_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .expect("sent");
        let r: RunResponse = resp.json().await.expect("RunResponse");
        assert_eq!(r.response.status, Status::Success);
        out.push(t0.elapsed());
    }
    out
}

fn variant(name: &str, config: RuntimeConfig) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let hello = wisp_testkit::function_bytes("hello");
    let looping = wisp_testkit::function_bytes("loop");
    let (hello_d, loop_d) = (Digest::of(&hello), Digest::of(&looping));
    let (alone, flooded) = rt.block_on(async {
        let server = RuntimeServer::start(config).await.expect("server");
        server
            .runtime
            .prepare(&hello_d, &hello)
            .await
            .expect("hello");
        server
            .runtime
            .prepare(&loop_d, &looping)
            .await
            .expect("loop");
        let client = reqwest::Client::new();
        let url = server.run_url();
        let mut req = run_request(&hello_d, serde_json::json!({"name": "b"}));
        req.namespace = "tenant-b".into();
        let body = serde_json::to_vec(&req).expect("json");
        // Warm the connection and the pool slots.
        hellos(&client, &url, &body).await;
        let alone = hellos(&client, &url, &body).await;

        let loops: Vec<_> = (0..LOOPS)
            .map(|_| {
                let mut req = run_request(&loop_d, serde_json::json!({}));
                req.namespace = "tenant-a".into();
                req.limits = Limits {
                    timeout: 120_000,
                    memory: 64,
                    ..Limits::default()
                };
                let runtime = server.runtime.clone();
                tokio::spawn(async move { runtime.run(req).await })
            })
            .collect();
        while server.runtime.reserved_memory_mb_of("tenant-a") < LOOPS as u64 * 64 {
            tokio::task::yield_now().await;
        }
        let flooded = hellos(&client, &url, &body).await;
        for l in loops {
            l.abort();
        }
        (alone, flooded)
    });
    rt.shutdown_background();
    let (a, f) = (figures(alone), figures(flooded));
    let target = a.p99 * 3 + Duration::from_millis(5);
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
        ms(a.p50),
        ms(a.p99),
        ms(f.p50),
        ms(f.p99),
        ms(f.max),
        ms(target),
        if f.p99 <= target { "met" } else { "missed" },
        f.p99.as_secs_f64() / a.p99.as_secs_f64(),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks variants by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let base = RuntimeConfig::default();
    let variants = [
        (
            "shared",
            RuntimeConfig {
                guest_threads: 0,
                ..base.clone()
            },
        ),
        (
            "shared_1ms_tick",
            RuntimeConfig {
                guest_threads: 0,
                epoch_tick: Duration::from_millis(1),
                ..base.clone()
            },
        ),
        (
            "pool_nice0",
            RuntimeConfig {
                guest_nice: 0,
                ..base.clone()
            },
        ),
        ("pool_nice10", base.clone()),
    ];
    println!("B's blocking hello over HTTP, ms; A floods {LOOPS} loops; {SAMPLES} samples each\n");
    println!(
        "| variant | alone p50 | alone p99 | flood p50 | flood p99 | flood max | target | | flood/alone p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, config) in variants {
        if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
            variant(name, config);
        }
    }
}
