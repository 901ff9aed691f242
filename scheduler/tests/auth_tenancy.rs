//! Authentication, tenancy and the admin API: no key or a wrong key is 401; user B can neither
//! read, list, invoke nor delete user A's actions or activations, and never sees their content;
//! the admin API needs the admin key.

mod common;

use anyhow::Result;
use common::{ADMIN_KEY, Platform, TestScheduler, hello_wasm, http};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn assert_error(body: &Value) {
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "no error: {body}"
    );
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "no code: {body}"
    );
}

/// No part of `body` mentions the secret parameter value planted in alice's action.
fn assert_no_content(body: &Value) {
    let text = body.to_string();
    assert!(!text.contains("alice-secret"), "leaked content: {text}");
    assert!(
        body.get("exec").is_none() && body.get("response").is_none(),
        "leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_credentials_are_401() -> Result<()> {
    let p = Platform::start(1).await?;
    p.guest.create_action("hello", &hello_wasm()).await?;
    let anonymous = p.guest.with_auth("");
    let wrong_key = p.guest.with_auth(&format!(
        "{}:wrong",
        p.guest.auth.split(':').next().unwrap()
    ));
    let unknown = p
        .guest
        .with_auth("00000000-0000-0000-0000-000000000000:nokey");
    for client in [&anonymous, &wrong_key, &unknown] {
        for (method, path) in [
            (reqwest::Method::GET, "/api/v1/namespaces/_/actions"),
            (reqwest::Method::GET, "/api/v1/namespaces/_/actions/hello"),
            (reqwest::Method::PUT, "/api/v1/namespaces/_/actions/other"),
            (reqwest::Method::POST, "/api/v1/namespaces/_/actions/hello"),
            (
                reqwest::Method::DELETE,
                "/api/v1/namespaces/_/actions/hello",
            ),
            (reqwest::Method::GET, "/api/v1/namespaces/_/activations"),
            (reqwest::Method::GET, "/api/v1/namespaces"),
        ] {
            let mut rb = client.request(method.clone(), path);
            if method == reqwest::Method::PUT || method == reqwest::Method::POST {
                rb = rb.json(&json!({}));
            }
            let r = rb.send().await?;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            let body: Value = r.json().await?;
            assert_error(&body);
        }
    }
    // A malformed Authorization header is a 401 too, not a 400 or a panic.
    for header in ["Basic !!!", "Basic", "Bearer abc", "Basic Zm9v"] {
        let r = http()
            .get(format!("{}/api/v1/namespaces/_/actions", p.scheduler.url))
            .header("authorization", header)
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
    // Nothing changed.
    let (s, list) = p.guest.get("/api/v1/namespaces/_/actions").await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cannot_reach_each_others_actions_or_activations() -> Result<()> {
    let p = Platform::start(1).await?;
    let alice = p.scheduler.create_user("alice").await?;
    let bob = p.scheduler.create_user("bob").await?;
    let mut body = common::action_body(&hello_wasm());
    body["parameters"] = json!([{"key": "name", "value": "alice-secret"}]);
    let (s, _) = alice
        .put("/api/v1/namespaces/_/actions/private", &body)
        .await?;
    assert_eq!(s, StatusCode::OK);
    let (s, rec) = alice.invoke("private", json!({})).await?;
    assert_eq!(s, StatusCode::OK, "{rec}");
    let activation = rec["activationId"].as_str().unwrap().to_string();

    // Through alice's namespace: 403, no content.
    let base = "/api/v1/namespaces/alice";
    for (method, path) in [
        (reqwest::Method::GET, format!("{base}/actions/private")),
        (
            reqwest::Method::GET,
            format!("{base}/actions/private?code=true"),
        ),
        (reqwest::Method::GET, format!("{base}/actions")),
        (
            reqwest::Method::POST,
            format!("{base}/actions/private?blocking=true"),
        ),
        (reqwest::Method::DELETE, format!("{base}/actions/private")),
        (
            reqwest::Method::PUT,
            format!("{base}/actions/private?overwrite=true"),
        ),
        (reqwest::Method::GET, format!("{base}/activations")),
        (
            reqwest::Method::GET,
            format!("{base}/activations/{activation}"),
        ),
        (
            reqwest::Method::GET,
            format!("{base}/activations/{activation}/logs"),
        ),
        (
            reqwest::Method::GET,
            format!("{base}/activations/{activation}/result"),
        ),
        (reqwest::Method::GET, format!("{base}/packages")),
    ] {
        let mut rb = bob.request(method.clone(), &path);
        if method == reqwest::Method::PUT || method == reqwest::Method::POST {
            rb = rb.json(&body);
        }
        let r = rb.send().await?;
        let status = r.status();
        let answer: Value = r.json().await?;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{method} {path}: {status} {answer}"
        );
        assert_error(&answer);
        assert_no_content(&answer);
    }
    // Through bob's own namespace, alice's things do not exist.
    let (s, body) = bob.get("/api/v1/namespaces/_/actions/private").await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_no_content(&body);
    let (s, body) = bob
        .get(&format!("/api/v1/namespaces/_/activations/{activation}"))
        .await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_no_content(&body);
    let (_, list) = bob.get("/api/v1/namespaces/_/actions").await?;
    assert_eq!(list, json!([]));
    let (_, list) = bob
        .get("/api/v1/namespaces/_/activations?docs=true")
        .await?;
    assert_eq!(list, json!([]));
    let (_, namespaces) = bob.get("/api/v1/namespaces").await?;
    assert_eq!(namespaces, json!(["bob"]));

    // Alice still has everything.
    let (s, _) = alice.get("/api/v1/namespaces/_/actions/private").await?;
    assert_eq!(s, StatusCode::OK);
    let (s, got) = alice
        .get(&format!(
            "/api/v1/namespaces/alice/activations/{activation}"
        ))
        .await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        got["response"]["result"]["greeting"],
        "Hello, alice-secret!"
    );
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_the_admin_key() -> Result<()> {
    let p = Platform::start(0).await?;
    let url = format!("{}/admin/v1/users", p.scheduler.url);
    let r = http()
        .post(&url)
        .json(&json!({"name": "eve"}))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http().get(&url).bearer_auth("not-the-key").send().await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_error(&r.json().await?);

    let r = http()
        .post(&url)
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "dave"}))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    let dave: Value = r.json().await?;
    assert_eq!(dave["namespace"], "dave");
    let auth = dave["auth"].as_str().unwrap();
    assert_eq!(
        auth,
        format!(
            "{}:{}",
            dave["uuid"].as_str().unwrap(),
            dave["key"].as_str().unwrap()
        )
    );
    let r = http()
        .post(&url)
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "dave"}))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    for bad in [
        json!({"name": "a..b"}),
        json!({"name": ""}),
        json!({"name": 5}),
        json!({}),
    ] {
        let r = http()
            .post(&url)
            .bearer_auth(ADMIN_KEY)
            .json(&bad)
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&r.json().await?);
    }
    let fixed = json!({"name": "fixed", "auth": "11111111-2222-3333-4444-555555555555:secretkey"});
    let r = http()
        .post(&url)
        .bearer_auth(ADMIN_KEY)
        .json(&fixed)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CREATED);

    let r = http().get(&url).bearer_auth(ADMIN_KEY).send().await?;
    let users: Value = r.json().await?;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"dave") && names.contains(&"guest") && names.contains(&"fixed"));
    assert!(
        users.to_string().find("key\"").is_none(),
        "listing shows no keys: {users}"
    );

    // The new user works; after delete its key is refused.
    let client = common::Client::new(&p.scheduler.url, auth, "dave");
    client.create_action("mine", &hello_wasm()).await?;
    let r = http()
        .delete(format!("{url}/dave"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    let r = http()
        .delete(format!("{url}/dave"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (s, _) = client.get("/api/v1/namespaces/_/actions").await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Re-created, the namespace starts empty.
    let again = p.scheduler.create_user("dave").await?;
    let (_, list) = again.get("/api/v1/namespaces/_/actions").await?;
    assert_eq!(list, json!([]));
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_is_disabled_without_a_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = common::scheduler_config(&[], dir.path());
    config.admin_key = None;
    let s = TestScheduler::start_with(config).await?;
    let r = http()
        .get(format!("{}/admin/v1/users", s.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await?;
    assert_eq!(body["code"], "admin_disabled");
    s.stop().await
}
