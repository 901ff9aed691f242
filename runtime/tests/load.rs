//! Many activations at once: more concurrent requests than pool slots all succeed.

mod common;

use common::{assert_status, request, start_with, test_config};
use serde_json::json;
use wisp_core::{Limits, Status};
use wisp_runtime::RuntimeConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_hellos_all_succeed() -> anyhow::Result<()> {
    // Fewer slots than requests: the excess waits for a slot instead of failing.
    let s = start_with(RuntimeConfig {
        pool_slots: 32,
        ..test_config()
    })
    .await?;
    let d = s.deploy("hello").await?;
    let runs: Vec<_> = (0..200)
        .map(|i| {
            let req = request(&d, json!({"name": format!("n{i}")}), Limits::default());
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
                anyhow::Ok((i, resp.json::<wisp_core::RunResponse>().await?))
            })
        })
        .collect();
    for run in runs {
        let (i, r) = run.await??;
        assert_status(&r, Status::Success);
        assert_eq!(
            r.response.result,
            json!({"greeting": format!("Hello, n{i}!")})
        );
    }
    let text = s.metrics().await?;
    assert_eq!(
        common::metric(&text, r#"wisp_activations_total{status="success"}"#),
        Some(200.0)
    );
    assert_eq!(s.runtime.in_flight(), 0);
    s.stop().await
}
