//! Durability through the API: a scheduler stopped cleanly and started again on the same data
//! dir still has its users, actions, packages and every acknowledged activation record.

mod common;

use anyhow::Result;
use common::{Client, Platform, TestScheduler, hello_wasm};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scheduler_keeps_everything_acknowledged() -> Result<()> {
    let p = Platform::start(1).await?;
    let g = p.guest.clone();
    g.create_action("hello", &hello_wasm()).await?;
    let (s, _) = g
        .put(
            "/api/v1/namespaces/_/packages/tools",
            &json!({"publish": true}),
        )
        .await?;
    assert_eq!(s, StatusCode::OK);
    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let path = if i % 2 == 0 {
            "/api/v1/namespaces/_/actions/hello?blocking=true"
        } else {
            "/api/v1/namespaces/_/actions/hello"
        };
        let (s, body) = g.post(path, &json!({"name": format!("n{i}")})).await?;
        assert!(
            s == StatusCode::OK || s == StatusCode::ACCEPTED,
            "{s} {body}"
        );
        acknowledged.push(body["activationId"].as_str().unwrap().to_string());
    }
    let runtime_urls: Vec<String> = p.runtimes.iter().map(|r| r.url.clone()).collect();
    let data_dir = p.scheduler.data_dir.clone();
    // A clean stop: non-blocking activations finish and every record is flushed.
    p.scheduler.stop().await?;

    let again = TestScheduler::start(&runtime_urls, &data_dir).await?;
    let g = Client::new(&again.url, &g.auth, "guest");
    let (s, action) = g.get("/api/v1/namespaces/_/actions/hello").await?;
    assert_eq!(s, StatusCode::OK, "the user's key and action survive");
    assert_eq!(action["version"], "0.0.1");
    let (s, pkg) = g.get("/api/v1/namespaces/_/packages/tools").await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pkg["publish"], true);
    let (_, count) = g.get("/api/v1/namespaces/_/activations?count=true").await?;
    assert_eq!(count, json!({"activations": 40}));
    for id in &acknowledged {
        let (s, rec) = g
            .get(&format!("/api/v1/namespaces/_/activations/{id}"))
            .await?;
        assert_eq!(s, StatusCode::OK, "record {id} lost");
        assert_eq!(rec["response"]["status"], "success");
    }
    // And it still invokes.
    again.wait_ready().await?;
    let (s, _) = g.invoke("hello", json!({})).await?;
    assert_eq!(s, StatusCode::OK);
    again.stop().await?;
    for r in p.runtimes {
        r.stop().await?;
    }
    Ok(())
}
