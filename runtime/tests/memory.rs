//! Leak check: the runtime's resident memory stays bounded over 10,000 activations (caches,
//! logs and pool slots do not accumulate). Alone in its test binary so no other test's
//! allocations move the numbers.

mod common;

use common::{assert_status, request, start};
use serde_json::json;
use wisp_core::{Limits, Status};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_is_bounded_after_ten_thousand_activations() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("hello").await?;
    let batch = |n: usize| {
        let s = &s;
        let d = &d;
        async move {
            // 16 clients in parallel, each running its share sequentially.
            let clients = (0..16).map(|c| async move {
                for i in 0..n / 16 {
                    let req = request(d, json!({"name": format!("c{c}-{i}")}), Limits::default());
                    let r = s.run(&req).await?;
                    assert_status(&r, Status::Success);
                }
                anyhow::Ok(())
            });
            futures::future::try_join_all(clients).await.map(|_| ())
        }
    };
    batch(2_000).await?;
    let warm = rss_bytes();
    batch(10_000).await?;
    let after = rss_bytes();
    let growth = after.saturating_sub(warm);
    eprintln!("RSS warm {} MiB, after 10k {} MiB", warm >> 20, after >> 20);
    assert!(
        growth < 48 << 20,
        "RSS grew by {} MiB over 10,000 activations",
        growth >> 20
    );
    let text = s.metrics().await?;
    assert_eq!(
        common::metric(&text, r#"wisp_activations_total{status="success"}"#),
        Some(12_000.0)
    );
    s.stop().await
}
