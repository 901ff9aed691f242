//! Service endpoints: `/health`, `/ready` (503 without a healthy runtime), `/metrics`, the API
//! info documents, `/api/v1/namespaces`, and JSON errors for unknown routes and methods.

mod common;

use anyhow::Result;
use common::{Platform, hello_wasm, http};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_needs_a_healthy_runtime() -> Result<()> {
    let without = Platform::start(0).await?;
    let r = http()
        .get(format!("{}/health", without.scheduler.url))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    let r = http()
        .get(format!("{}/ready", without.scheduler.url))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await?;
    assert_eq!(body["code"], "unavailable");
    // Without runtimes an invoke is a 503 and leaves no record.
    without.guest.create_action("hello", &hello_wasm()).await?;
    let (s, body) = without.guest.invoke("hello", json!({})).await?;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (_, list) = without
        .guest
        .get("/api/v1/namespaces/_/activations")
        .await?;
    assert_eq!(list, json!([]));
    without.stop().await?;

    let with = Platform::start(1).await?;
    let r = http()
        .get(format!("{}/ready", with.scheduler.url))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await?;
    assert_eq!(body["healthyRuntimes"], 1);
    assert_eq!(body["runtimes"][0]["url"], with.runtimes[0].url);
    with.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_invokes_and_runtimes() -> Result<()> {
    let p = Platform::start(1).await?;
    p.guest.create_action("hello", &hello_wasm()).await?;
    for _ in 0..3 {
        let (s, _) = p.guest.invoke("hello", json!({})).await?;
        assert_eq!(s, StatusCode::OK);
    }
    let text = http()
        .get(format!("{}/metrics", p.scheduler.url))
        .send()
        .await?
        .text()
        .await?;
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_string()
    };
    assert!(line("wisp_invokes_total{status=\"200\"}").ends_with(" 3"));
    assert!(line("wisp_http_requests_total{method=\"PUT\"").ends_with(" 1"));
    assert!(
        line(&format!(
            "wisp_runtime_healthy{{runtime=\"{}\",pool=\"shared\"}}",
            p.runtimes[0].url
        ))
        .ends_with(" 1")
    );
    assert!(line("wisp_runtimes{state=\"healthy\",pool=\"shared\"}").ends_with(" 1"));
    assert!(text.contains("wisp_runtime_free_slots{"));
    assert!(text.contains("wisp_entity_cache_requests_total{result=\"hit\"}"));
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_namespaces_and_json_errors() -> Result<()> {
    let p = Platform::start(0).await?;
    let (s, info) = p.guest.get("/api/v1").await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(info["api_version_path"], "v1");
    let (s, root) = p.guest.get("/").await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(root["api_paths"], json!(["/api/v1"]));
    let (s, ns) = p.guest.get("/api/v1/namespaces").await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ns, json!(["guest"]));

    let (s, body) = p.guest.get("/api/v1/nothing/here").await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    let r = p
        .guest
        .request(reqwest::Method::PATCH, "/api/v1/namespaces/_/actions/x")
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = r.json().await?;
    assert_eq!(body["code"], "method_not_allowed");
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_answers_without_a_socket() -> Result<()> {
    use tower::ServiceExt as _;
    let dir = tempfile::tempdir()?;
    let scheduler =
        wisp_scheduler::Scheduler::open(common::scheduler_config(&[], dir.path())).await?;
    let auth = scheduler
        .ensure_user("guest", None)
        .await?
        .expect("created");
    assert_eq!(
        scheduler.ensure_user("guest", None).await?,
        None,
        "exists: no new key"
    );
    let fixed = "11111111-2222-3333-4444-555555555555:fixedkey";
    assert_eq!(
        scheduler
            .ensure_user("guest", Some(fixed))
            .await?
            .as_deref(),
        Some(fixed)
    );
    assert!(scheduler.ensure_user("bad name", None).await.is_err());
    let app = scheduler.router();
    let request = |auth: &str| {
        use base64::Engine as _;
        axum::http::Request::get("/api/v1/namespaces")
            .header(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(auth)
                ),
            )
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let old = app.clone().oneshot(request(&auth)).await?;
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the replaced key is refused"
    );
    let ok = app.oneshot(request(fixed)).await?;
    assert_eq!(ok.status(), StatusCode::OK);
    let body = axum::body::to_bytes(ok.into_body(), 1024).await?;
    assert_eq!(serde_json::from_slice::<Value>(&body)?, json!(["guest"]));
    scheduler.shutdown().await
}
