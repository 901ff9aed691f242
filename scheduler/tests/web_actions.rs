//! Web actions at `/api/v1/web/...` against a real scheduler and runtime.

mod common_b;

use anyhow::Result;
use common_b::{RuntimeProc, SchedulerProc};
use serde_json::{Value, json};

fn web_export() -> Value {
    json!({"annotations": [{"key": "web-export", "value": true}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_hello_serves_html_and_only_exported_actions_are_served() -> Result<()> {
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy("webhello", "web-hello", web_export()).await?;
    s.deploy("private", "hello", json!({})).await?;

    let resp = s
        .http
        .get(format!(
            "{}/api/v1/web/alice/default/webhello?name=Bob",
            s.base
        ))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    assert!(resp.headers().contains_key("x-openwhisk-activation-id"));
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let html = resp.text().await?;
    assert!(html.contains("Hello, Bob!"), "{html}");

    // The same with an explicit .http extension, and the name in a form body.
    let resp = s
        .http
        .post(format!("{}/api/v1/web/alice/default/webhello.http", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Form%20User")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await?.contains("Hello, Form User!"));

    // Not exported, missing, or malformed: 404 without details.
    for path in [
        "alice/default/private",
        "alice/default/nope",
        "nobody/default/webhello",
        "alice/webhello",
    ] {
        let resp = s
            .http
            .get(format!("{}/api/v1/web/{path}", s.base))
            .send()
            .await?;
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await?;
        assert!(body["code"].is_string());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_context_parameters_and_extensions() -> Result<()> {
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    let mut doc = web_export();
    doc["parameters"] = json!([{"key": "fixed", "value": "from-action"}]);
    s.deploy("echo", "echo", doc).await?;
    let url = |rest: &str| format!("{}/api/v1/web/alice/default/{rest}", s.base);

    // .json: the result as JSON; query < JSON body, context params added.
    let resp = s
        .http
        .post(url("echo.json/extra/path?q=1&both=query"))
        .header("X-Custom", "yes")
        .json(&json!({"both": "body", "n": 2}))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let p: Value = resp.json().await?;
    assert_eq!(p["q"], "1");
    assert_eq!(p["both"], "body");
    assert_eq!(p["n"], 2);
    assert_eq!(p["fixed"], "from-action");
    assert_eq!(p["__ow_method"], "post");
    assert_eq!(p["__ow_path"], "/extra/path");
    assert_eq!(p["__ow_headers"]["x-custom"], "yes");
    assert_eq!(p["__ow_headers"]["content-type"], "application/json");
    assert!(p.get("__ow_body").is_none());
    assert!(p.get("__ow_query").is_none());

    // A text body arrives as __ow_body; a binary one base64-encoded.
    let p: Value = s
        .http
        .put(url("echo.json"))
        .header("content-type", "text/plain")
        .body("plain words")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(p["__ow_method"], "put");
    assert_eq!(p["__ow_body"], "plain words");
    let p: Value = s
        .http
        .post(url("echo.json"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 1, 2, 255])
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(p["__ow_body"], "AAEC/w==");

    // A request may not set reserved parameters.
    let resp = s.http.get(url("echo.json?__ow_method=evil")).send().await?;
    assert_eq!(resp.status(), 400);

    // .http: the result is {statusCode, headers, body}; a binary body is base64-decoded.
    let resp = s
        .http
        .post(url("echo"))
        .json(&json!({"statusCode": 201, "headers": {"content-type": "image/png", "x-made-by": "wisp"}, "body": "iVBORw=="}))
        .send()
        .await?;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["x-made-by"], "wisp");
    assert_eq!(resp.bytes().await?.as_ref(), &[0x89, b'P', b'N', b'G']);

    // .text and .html take `body` (or the field named like the extension).
    let resp = s
        .http
        .post(url("echo.text"))
        .json(&json!({"text": "just text"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await?, "just text");
    let resp = s
        .http
        .post(url("echo.html"))
        .json(&json!({"html": "<b>hi</b>"}))
        .send()
        .await?;
    assert!(
        resp.headers()["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    assert_eq!(resp.text().await?, "<b>hi</b>");

    // An application error answers its `error` field through the extension.
    let resp = s
        .http
        .post(url("echo.http"))
        .json(&json!({"error": {"statusCode": 418, "body": "teapot"}}))
        .send()
        .await?;
    assert_eq!(resp.status(), 418);
    assert_eq!(resp.text().await?, "teapot");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_whisk_auth_and_raw_http() -> Result<()> {
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy(
        "secret",
        "echo",
        json!({"annotations": [{"key": "web-export", "value": true}, {"key": "require-whisk-auth", "value": "s3cret"}]}),
    )
    .await?;
    s.deploy(
        "users",
        "echo",
        json!({"annotations": [{"key": "web-export", "value": true}, {"key": "require-whisk-auth", "value": true}]}),
    )
    .await?;
    s.deploy(
        "raw",
        "echo",
        json!({"annotations": [{"key": "web-export", "value": true}, {"key": "raw-http", "value": true}]}),
    )
    .await?;
    let url = |rest: &str| format!("{}/api/v1/web/alice/default/{rest}", s.base);

    assert_eq!(s.http.get(url("secret.json")).send().await?.status(), 401);
    let resp = s
        .http
        .get(url("secret.json"))
        .header("x-require-whisk-auth", "wrong")
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    let resp = s
        .http
        .get(url("secret.json"))
        .header("x-require-whisk-auth", "s3cret")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);

    assert_eq!(s.http.get(url("users.json")).send().await?.status(), 401);
    let resp = s
        .req(reqwest::Method::GET, "/api/v1/web/alice/default/users.json")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let p: Value = resp.json().await?;
    assert_eq!(p["__ow_user"], "alice");
    // The caller's key never reaches the action (nor, through its result, the record).
    assert!(p["__ow_headers"].is_object(), "{p}");
    assert!(p["__ow_headers"].get("authorization").is_none(), "{p}");
    let key = s.auth.rsplit(':').next().unwrap().to_string();
    assert!(!p.to_string().contains(&key), "the key leaked: {p}");

    let p: Value = s
        .http
        .post(url("raw.json?a=1&b=two"))
        .json(&json!({"name": "Jane"}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(p["__ow_query"], "a=1&b=two");
    assert_eq!(p["__ow_body"], "eyJuYW1lIjoiSmFuZSJ9");
    assert!(p.get("a").is_none() && p.get("name").is_none());
    Ok(())
}
