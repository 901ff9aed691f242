//! Issue 3's "Done when": with 3 runtime processes the same action keeps landing on its home
//! runtime while it has capacity, and keeps succeeding with no failed invocation when that
//! runtime is killed. Which runtime ran what is read from each runtime's own
//! `wisp_activations_total`.

mod common_b;

use anyhow::Result;
use common_b::{RuntimeProc, SchedulerProc};
use serde_json::json;

async fn counts(runtimes: &[RuntimeProc]) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for r in runtimes {
        out.push(r.activations_total().await?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_runtime_then_failover_without_failed_invocations() -> Result<()> {
    let mut runtimes = vec![
        RuntimeProc::start()?,
        RuntimeProc::start()?,
        RuntimeProc::start()?,
    ];
    let s = SchedulerProc::start(&runtimes.iter().collect::<Vec<_>>()).await?;
    s.deploy("hello", "hello", json!({})).await?;
    assert_eq!(counts(&runtimes).await?, vec![0, 0, 0]);

    const N: u64 = 25;
    for i in 0..N {
        let r = s
            .invoke(
                "hello",
                "blocking=true&result=true",
                json!({"name": i.to_string()}),
            )
            .await?;
        assert_eq!(r.status, 200, "invoke {i}: {}", r.body);
    }
    let before = counts(&runtimes).await?;
    let home = before.iter().position(|&c| c == N).unwrap_or_else(|| {
        panic!("all {N} activations should have run on one (home) runtime, counts: {before:?}")
    });
    assert_eq!(before.iter().sum::<u64>(), N, "{before:?}");

    // Another action has a home too (maybe the same one): all its activations go to one runtime.
    s.deploy("echo", "echo", json!({})).await?;
    for i in 0..10 {
        let r = s
            .invoke("echo", "blocking=true&result=true", json!({"i": i}))
            .await?;
        assert_eq!((r.status, r.body), (200, json!({"i": i})));
    }
    let after_echo = counts(&runtimes).await?;
    let grew: Vec<u64> = after_echo.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(grew.iter().filter(|&&g| g == 10).count(), 1, "{grew:?}");

    // Kill the home runtime of `hello`: every further invoke still succeeds.
    runtimes[home].kill();
    runtimes[home].wait_refused().await?;
    for i in 0..N {
        let r = s
            .invoke(
                "hello",
                "blocking=true&result=true",
                json!({"name": i.to_string()}),
            )
            .await?;
        assert_eq!(r.status, 200, "invoke {i} after the kill: {}", r.body);
        assert_eq!(r.body, json!({"greeting": format!("Hello, {i}!")}));
    }
    let survivors: Vec<usize> = (0..runtimes.len()).filter(|&i| i != home).collect();
    let mut moved = Vec::new();
    for &i in &survivors {
        moved.push(runtimes[i].activations_total().await? - after_echo[i]);
    }
    assert_eq!(moved.iter().sum::<u64>(), N, "{moved:?}");
    // The progression is deterministic: they all went to the same next runtime.
    assert!(moved.contains(&N), "{moved:?}");

    // No failed invocation anywhere: every record is a success.
    let records = s.activations("limit=200&docs=true").await?;
    assert_eq!(records.len() as u64, 2 * N + 10);
    assert!(
        records.iter().all(|r| r["response"]["status"] == "success"),
        "{:?}",
        records
            .iter()
            .map(|r| &r["response"]["status"])
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// A stand-in for a runtime that is shutting down: healthy on `/health`, but every `/run` gets
/// the 503 a draining runtime answers. Counts the `/run` requests it refused.
async fn draining_runtime() -> Result<(String, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    use axum::routing::{get, post};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let refused = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&refused);
    let app = axum::Router::new()
        .route(
            "/health",
            get(|| async {
                axum::Json(json!({"status": "ok", "userMemory": 2048, "inFlight": 0}))
            }),
        )
        .route(
            "/run",
            post(move || {
                count.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({"error": "the runtime is draining", "code": "draining"})),
                    )
                }
            }),
        )
        .route(
            "/prepare",
            post(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, refused))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_runtime_costs_no_failed_invocation() -> Result<()> {
    use std::sync::atomic::Ordering;
    let (draining_url, refused) = draining_runtime().await?;
    let real = RuntimeProc::start()?;
    let s = common_b::SchedulerProc::start_with(vec![draining_url, real.url.clone()]).await?;
    // An action whose home is the draining runtime (index 0 of 2).
    let name = (0..100)
        .map(|i| format!("drain{i}"))
        .find(|n| wisp_scheduler::balancer::hash_fqn(&format!("alice/{n}")).is_multiple_of(2))
        .expect("some name hashes to runtime 0");
    s.deploy(&name, "hello", json!({})).await?;
    let r = s
        .invoke(&name, "blocking=true&result=true", json!({"name": "drain"}))
        .await?;
    assert_eq!(
        (r.status, r.body),
        (200, json!({"greeting": "Hello, drain!"}))
    );
    assert_eq!(
        refused.load(Ordering::SeqCst),
        1,
        "it was tried on its home runtime first"
    );
    assert_eq!(real.activations_total().await?, 1);
    let records = s.activations("docs=true").await?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["response"]["status"], "success");
    Ok(())
}
