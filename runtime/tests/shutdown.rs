//! Draining: shutdown stops accepting but finishes the activations in flight, through the
//! library (`serve` + `CancellationToken`) and through the binary (SIGTERM).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TOKEN, assert_status, function, request, start};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use tower::ServiceExt;
use wisp_core::{Limits, RunResponse, Status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_activation_in_flight() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("sleep").await?;
    let req = request(&d, json!({"ms": 400}), Limits::default());
    let client = s.client.clone();
    let url = s.url("/run");
    let inflight = tokio::spawn(async move {
        let resp = client
            .post(url)
            .bearer_auth(TOKEN)
            .json(&req)
            .send()
            .await?;
        anyhow::Ok(resp.json::<RunResponse>().await?)
    });
    while s.runtime.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    s.shutdown.cancel();
    let r = inflight.await??;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result["slept"], 400);
    // The server returns once the activation is answered, and accepts nothing after.
    s.handle.await??;
    assert!(s.runtime.is_draining());
    assert!(
        s.client
            .get(format!("http://{}/health", s.addr))
            .send()
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_runtime_is_not_ready_and_refuses_runs() -> anyhow::Result<()> {
    let runtime = wisp_runtime::Runtime::new(common::test_config())?;
    let app = wisp_runtime::app(runtime.clone());
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    assert_eq!(
        app.clone().oneshot(get("/ready")).await?.status(),
        StatusCode::OK
    );
    runtime.drain();
    assert_eq!(
        app.clone().oneshot(get("/ready")).await?.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (_, digest) = function("hello").await;
    let body = serde_json::to_vec(&request(&digest, json!({}), Limits::default()))?;
    let run = Request::post("/run")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body))?;
    let resp = app.clone().oneshot(run).await?;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    let err: wisp_core::run::ErrorBody = serde_json::from_slice(&bytes)?;
    assert_eq!(err.code, "draining");
    // Health still answers (the balancer reads capacity from it).
    assert_eq!(app.oneshot(get("/health")).await?.status(), StatusCode::OK);
    Ok(())
}

/// Kills the child on drop so a failing test leaves no process behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_drains_on_sigterm() -> anyhow::Result<()> {
    let (bytes, digest) = function("sleep").await;
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_wisp-runtime"))
            .args(["--port", "0", "--user-memory", "1024", "--pool-slots", "16"])
            .env("WISP_RUNTIME_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // The address is in the "listening" log line.
    let stdout = child.0.stdout.take().unwrap();
    let (addr, lines) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line?;
            if line.contains("wisp-runtime listening") {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next());
                let port = addr
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
                return anyhow::Ok((
                    port.map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p))),
                    lines,
                ));
            }
        }
        anyhow::bail!("the runtime exited before listening")
    })
    .await??;
    let addr = addr.expect("an address in the listening line");
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let client = reqwest::Client::new();
    let health: serde_json::Value = client
        .get(format!("http://{addr}/health"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(health["userMemory"], 1024);

    let mut req = request(&digest, json!({"ms": 500}), Limits::default());
    req.code = Some(common::b64(&bytes));
    let url = format!("http://{addr}/run");
    let inflight = tokio::spawn({
        let client = client.clone();
        async move {
            let resp = client
                .post(url)
                .bearer_auth(TOKEN)
                .json(&req)
                .send()
                .await?;
            anyhow::Ok(resp.json::<RunResponse>().await?)
        }
    });
    // Wait until the activation is running (compiled and in flight), then SIGTERM.
    loop {
        let h: serde_json::Value = client
            .get(format!("http://{addr}/health"))
            .send()
            .await?
            .json()
            .await?;
        if h["inFlight"] == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()?;
    assert!(killed.success());
    let r = inflight.await??;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result["slept"], 500);
    let status = tokio::task::spawn_blocking(move || child.0.wait()).await??;
    assert!(status.success(), "exit status {status}");
    Ok(())
}
