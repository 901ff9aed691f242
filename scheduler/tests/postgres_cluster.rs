//! Issue 6's "Done when" for PostgreSQL: two scheduler replicas (`cluster_size` 2) on one
//! PostgreSQL, sharing two real runtimes, serve the same actions: an action created, updated or
//! deleted through one is served accordingly by the other at once (the entity cache hears the
//! other replica's writes), both serve invokes, and each books half of every runtime's memory.
//!
//! Needs `WISP_TEST_POSTGRES` (`eval "$(scripts/postgres.sh)"`); skipped without it, except in CI.

mod common;

use std::time::Duration;

use anyhow::{Result, bail};
use common::{Client, TestRuntime, TestScheduler, action_body, hello_wasm, scheduler_config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_scheduler::SchedulerConfig;
use wisp_scheduler::store::suite::TestDatabase;

/// Polls `check` until it answers `Some`. The bound only keeps a broken build from hanging:
/// without the change feed a replica would serve its cached copy for the 300 s cache TTL.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..1000 {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("never happened: {what}")
}

/// `?blocking=true&result=true` invoke of `name`.
async fn invoke(client: &Client, name: &str, params: Value) -> Result<(StatusCode, Value)> {
    client
        .post(
            &format!("/api/v1/namespaces/_/actions/{name}?blocking=true&result=true"),
            &params,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_on_one_postgres_serve_the_same_actions_and_split_capacity() -> Result<()> {
    let Some(db) = TestDatabase::create("two_schedulers_on_one_postgres").await else {
        return Ok(());
    };
    let runtimes = [TestRuntime::start().await?, TestRuntime::start().await?];
    let urls: Vec<String> = runtimes.iter().map(|r| r.url.clone()).collect();
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let replica = |dir: &tempfile::TempDir| SchedulerConfig {
        store: Some(db.url.clone()),
        cluster_size: 2,
        ..scheduler_config(&urls, dir.path())
    };
    // Started together: they migrate the fresh database once between them.
    let (a, b) = tokio::join!(
        TestScheduler::start_with(replica(&dir_a)),
        TestScheduler::start_with(replica(&dir_b)),
    );
    let (a, b) = (a?, b?);
    a.wait_ready().await?;
    b.wait_ready().await?;

    // A user created through A authenticates on B.
    let on_a = a.create_user("alice").await?;
    let on_b = Client::new(&b.url, &on_a.auth, "alice");
    // B looks the action up before it exists (and caches the miss)...
    assert_eq!(
        invoke(&on_b, "greet", json!({})).await?.0,
        StatusCode::NOT_FOUND
    );
    // ...A creates it: B serves it.
    on_a.create_action("greet", &hello_wasm()).await?;
    let body = eventually("B serves the action created through A", || async {
        let (status, body) = invoke(&on_b, "greet", json!({"name": "B"})).await?;
        Ok((status == StatusCode::OK).then_some(body))
    })
    .await?;
    assert_eq!(body, json!({"greeting": "Hello, B!"}));
    let (status, body) = invoke(&on_a, "greet", json!({"name": "A"})).await?;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"greeting": "Hello, A!"}))
    );

    // Both serve invokes.
    for i in 0..10 {
        for (client, who) in [(&on_a, "A"), (&on_b, "B")] {
            let (status, body) = invoke(client, "greet", json!({"name": i.to_string()})).await?;
            assert_eq!(status, StatusCode::OK, "invoke {i} through {who}: {body}");
        }
    }
    for s in [&a, &b] {
        let scheduled: u64 = s
            .state
            .balancer
            .snapshot()
            .iter()
            .map(|r| r.scheduled_total)
            .sum();
        assert!(
            scheduled >= 10,
            "{} scheduled {scheduled} activations",
            s.url
        );
    }

    // A replaces the code (hello → echo): B runs the new code, not its cached action.
    let (status, body) = on_a
        .put(
            "/api/v1/namespaces/_/actions/greet?overwrite=true",
            &action_body(&wisp_testkit::function_bytes("echo")),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("B runs the code updated through A", || async {
        let (status, body) = invoke(&on_b, "greet", json!({"echoed": true})).await?;
        Ok((status == StatusCode::OK && body == json!({"echoed": true})).then_some(()))
    })
    .await?;

    // A deletes it: B stops serving it.
    let (status, _) = on_a.delete("/api/v1/namespaces/_/actions/greet").await?;
    assert_eq!(status, StatusCode::OK);
    eventually(
        "B no longer serves the action deleted through A",
        || async {
            let (status, _) = invoke(&on_b, "greet", json!({})).await?;
            Ok((status == StatusCode::NOT_FOUND).then_some(()))
        },
    )
    .await?;

    // Each replica books half of every runtime's memory (once the runtime said how much).
    for s in [&a, &b] {
        let snapshot = eventually("every runtime has answered a ping", || async {
            let snap = s.state.balancer.snapshot();
            Ok(snap.iter().all(|r| r.pinged).then_some(snap))
        })
        .await?;
        assert_eq!(snapshot.len(), 2);
        for r in &snapshot {
            assert!(r.user_memory_mb >= 256, "{r:?}");
            assert_eq!(r.capacity_slots, r.user_memory_mb / 2, "{r:?}");
        }
    }

    // Records of both replicas are in the one database (A's once its batch is written).
    eventually("activations of both replicas listed through B", || async {
        let (status, listing) = on_b
            .get("/api/v1/namespaces/_/activations?limit=200")
            .await?;
        assert_eq!(status, StatusCode::OK, "{listing}");
        Ok((listing.as_array().map(Vec::len).unwrap_or(0) >= 22).then_some(()))
    })
    .await?;

    a.stop().await?;
    b.stop().await?;
    for r in runtimes {
        r.stop().await?;
    }
    Ok(())
}
