//! The memory budget holds in a real process: `wisp-runtime --user-memory 1024` (share 1, so
//! the budget alone decides), four activations of `fill` at once, each writing every page of
//! 480 MiB under a 512 MB cap and holding it 300 ms. Every one gets a `RunResponse` (success),
//! and the process's peak RSS (`VmHWM`) stays under the budget plus a fixed overhead of
//! **160 MiB**.
//!
//! The overhead: the idle process with `fill` compiled (engine, compiled code, tokio and guest
//! threads' stacks, mimalloc arenas; the test prints it: 79 MiB on this machine), per admitted
//! activation what is not its linear memory (a 1.5 MiB async stack, the WASI context, captured
//! logs: < 2 MiB each), and the pages of finished activations' slots that stay resident
//! (`memory_keep_resident`, 1 MiB per slot, 8 slots); 160 MiB is that with a margin of ~60 MiB.
//! Two fills fit the budget at once (measured peak: 1041 MiB); a runtime that admitted all four
//! would peak near 2 GiB.
//!
//! Alone in its binary: nothing else runs in that process or this one while it measures.

mod common;

use common::{Process, TOKEN, assert_status, b64, function, request};
use serde_json::json;
use wisp_core::{Limits, RunResponse, Status};

const BUDGET_MB: u64 = 1024;
const OVERHEAD_MB: u64 = 160;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_fills_of_512_mb_on_a_1024_mb_runtime_never_overcommit() -> anyhow::Result<()> {
    let rt = Process::start(&[
        "--user-memory",
        &BUDGET_MB.to_string(),
        "--max-namespace-share",
        "1",
        "--pool-slots",
        "8",
    ])?;
    let client = reqwest::Client::new();
    let (bytes, digest) = function("fill").await;
    let resp = client
        .post(rt.url("/prepare"))
        .bearer_auth(TOKEN)
        .json(&json!({"digest": digest, "code": b64(&bytes)}))
        .send()
        .await?;
    assert_eq!(resp.status(), 200, "{}", resp.text().await?);
    let idle = rt.status_kb("VmRSS")?;
    eprintln!("idle RSS with fill compiled: {} MiB", idle >> 20);

    let limits = Limits {
        memory: 512,
        timeout: 60_000,
        ..Limits::default()
    };
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let req = request(&digest, json!({"mb": 480, "hold_ms": 300}), limits);
            let client = client.clone();
            let url = rt.url("/run");
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(TOKEN)
                    .json(&req)
                    .send()
                    .await?;
                anyhow::ensure!(resp.status() == 200, "run {i}: {}", resp.status());
                anyhow::Ok(resp.json::<RunResponse>().await?)
            })
        })
        .collect();
    let mut waited = 0;
    for run in runs {
        let r = run.await??;
        assert_status(&r, Status::Success);
        assert_eq!(r.response.result["filled_mb"], 480);
        if r.wait_time_us > 300_000 {
            waited += 1;
        }
    }
    // Two ran while two waited for their memory.
    assert!(waited >= 2, "at most two could run at once");
    let peak = rt.status_kb("VmHWM")?;
    eprintln!(
        "peak RSS {} MiB (budget {BUDGET_MB} MiB + overhead {OVERHEAD_MB} MiB)",
        peak >> 20
    );
    assert!(
        peak < (BUDGET_MB + OVERHEAD_MB) << 20,
        "peak RSS {} MiB over budget {BUDGET_MB} + {OVERHEAD_MB} MiB",
        peak >> 20
    );
    let health: serde_json::Value = client.get(rt.url("/health")).send().await?.json().await?;
    assert_eq!(health["reservedMemory"], 0);
    assert_eq!(health["userMemory"], BUDGET_MB);
    Ok(())
}
