//! Tenants share a runtime fairly: one namespace flooding it with CPU-bound loops cannot make
//! another namespace's activations wait for the loops to end, and the memory budget is shared
//! out without ever being exceeded. (Latency under the flood is measured by
//! `benches/benches/fairness.rs`, not asserted here.)

mod common;

use common::{assert_status, request, start_with, test_config};
use serde_json::json;
use wisp_core::{Limits, RunRequest, RunResponse, Status};
use wisp_runtime::RuntimeConfig;

fn in_namespace(mut req: RunRequest, ns: &str) -> RunRequest {
    req.namespace = ns.into();
    req.action = format!("/{ns}/default/test");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_namespace_never_makes_another_wait_behind_its_queue() -> anyhow::Result<()> {
    // 1024 MB, half of it per namespace; A's loops take 128 MB each: four run, the rest queue.
    let s = start_with(RuntimeConfig {
        user_memory_mb: 1024,
        max_namespace_share: 0.5,
        ..test_config()
    })
    .await?;
    let looping = s.deploy("loop").await?;
    let hello = s.deploy("hello").await?;
    let loop_limits = Limits {
        timeout: 2_000,
        memory: 128,
        ..Limits::default()
    };
    let loops: Vec<_> = (0..12)
        .map(|_| {
            let req = in_namespace(request(&looping, json!({}), loop_limits), "tenant-a");
            let client = s.client.clone();
            let url = s.url("/run");
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(common::TOKEN)
                    .json(&req)
                    .send()
                    .await?;
                anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
                anyhow::Ok(resp.json::<RunResponse>().await?)
            })
        })
        .collect();
    // Saturated: A holds its whole share and has more waiting.
    while s.runtime.reserved_memory_mb_of("tenant-a") < 512 || s.runtime.waiting() < 8 {
        tokio::task::yield_now().await;
    }
    assert_eq!(s.runtime.reserved_memory_mb(), 512);

    // B's hellos (256 MB each: two fit beside A at a time) all run while A's first loops are
    // still spinning and A's queue is still full: B never waited behind A's queue.
    let hello_limits = Limits::default();
    let hellos: Vec<_> = (0..8)
        .map(|i| {
            let req = in_namespace(
                request(&hello, json!({"name": format!("b{i}")}), hello_limits),
                "tenant-b",
            );
            let s = &s;
            async move { s.run(&req).await }
        })
        .collect();
    for (i, r) in futures::future::try_join_all(hellos)
        .await?
        .iter()
        .enumerate()
    {
        assert_status(r, Status::Success);
        assert_eq!(
            r.response.result,
            json!({"greeting": format!("Hello, b{i}!")})
        );
    }
    assert!(
        loops.iter().all(|l| !l.is_finished()),
        "B's hellos completed while every one of A's loops was still running or queued"
    );
    assert_eq!(s.runtime.waiting(), 8, "A's queue was never overtaken by A");
    assert_eq!(s.runtime.reserved_memory_mb_of("tenant-b"), 0);

    // A's loops end at their time limit, or reach it while waiting for memory; never over the
    // budget, never an internal error.
    let mut waited_out = 0;
    for l in loops {
        let r = l.await??;
        assert_status(&r, Status::DeveloperError);
        let err = r.response.result["error"].as_str().unwrap_or_default();
        if err.contains("while waiting for 128 MB of memory") {
            waited_out += 1;
        } else {
            assert_eq!(
                err,
                "The action exceeded its time limit of 2000 milliseconds."
            );
        }
    }
    assert!(waited_out >= 4, "A's later loops waited for memory");
    assert_eq!(s.runtime.reserved_memory_mb(), 0);
    assert_eq!(s.runtime.waiting(), 0);
    let text = s.metrics().await?;
    assert_eq!(
        common::metric(&text, "wisp_memory_wait_timeouts_total"),
        Some(waited_out as f64)
    );
    assert_eq!(
        common::metric(&text, r#"wisp_activations_total{status="internal_error"}"#),
        Some(0.0)
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_memory_than_the_budget_is_an_internal_error_at_once() -> anyhow::Result<()> {
    let s = start_with(RuntimeConfig {
        user_memory_mb: 512,
        ..test_config()
    })
    .await?;
    let hello = s.deploy("hello").await?;
    let req = request(
        &hello,
        json!({}),
        Limits {
            memory: 1024,
            ..Limits::default()
        },
    );
    let r = s.run(&req).await?;
    assert_status(&r, Status::InternalError);
    assert_eq!(
        r.response.result["error"],
        "The action's memory limit of 1024 MB exceeds this runtime's memory budget of 512 MB."
    );
    // As large as the whole budget is fine, even over the namespace's share.
    let r = s
        .run(&request(
            &hello,
            json!({}),
            Limits {
                memory: 512,
                ..Limits::default()
            },
        ))
        .await?;
    assert_status(&r, Status::Success);
    s.stop().await
}
