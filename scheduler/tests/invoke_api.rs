//! The invoke path end to end: a real scheduler and real runtimes on loopback, real wasm from
//! `functions/`.

mod common_b;

use anyhow::Result;
use common_b::{RuntimeProc, SchedulerProc, TOKEN, annotation};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_non_blocking_and_result_only() -> Result<()> {
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy("hello", "hello", json!({})).await?;

    // Blocking: 200 with the whole record, its id in the header.
    let r = s
        .invoke("hello", "blocking=true", json!({"name": "wisp"}))
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.id.clone().expect("activation id header");
    assert_eq!(r.body["activationId"], id.as_str());
    assert_eq!(r.body["name"], "hello");
    assert_eq!(r.body["namespace"], "alice");
    assert_eq!(r.body["subject"], "alice");
    assert_eq!(r.body["response"]["status"], "success");
    assert_eq!(r.body["response"]["statusCode"], 0);
    assert_eq!(r.body["response"]["success"], true);
    assert_eq!(
        r.body["response"]["result"],
        json!({"greeting": "Hello, wisp!"})
    );
    let logs = r.body["logs"].as_array().expect("logs");
    assert!(
        logs.iter()
            .any(|l| l.as_str().unwrap_or("").ends_with(": hello: greeting wisp")),
        "{logs:?}"
    );
    assert_eq!(annotation(&r.body, "path"), Some(&json!("alice/hello")));
    assert_eq!(annotation(&r.body, "kind"), Some(&json!("wasm")));
    assert_eq!(
        annotation(&r.body, "limits"),
        Some(&json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}))
    );
    assert!(annotation(&r.body, "waitTime").is_some_and(Value::is_u64));
    assert!(annotation(&r.body, "initTime").is_some_and(Value::is_u64));
    let (start, end) = (
        r.body["start"].as_u64().unwrap(),
        r.body["end"].as_u64().unwrap(),
    );
    assert!(start > 0 && end >= start);
    assert_eq!(r.body["duration"].as_u64(), Some(end - start));

    // The same record is stored.
    let stored = s.activation(&id).await?;
    assert_eq!(stored["response"], r.body["response"]);

    // result=true: only the result.
    let r = s
        .invoke("hello", "blocking=true&result=true", json!({}))
        .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"greeting": "Hello, stranger!"}));
    assert!(r.id.is_some());

    // Non-blocking: 202 with the id at once; the activation still ends as a record.
    let r = s.invoke("hello", "", json!({"name": "later"})).await?;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["activationId"]
        .as_str()
        .expect("activationId")
        .to_string();
    assert_eq!(r.id.as_deref(), Some(id.as_str()));
    let record = s.activation(&id).await?;
    assert_eq!(
        record["response"]["result"],
        json!({"greeting": "Hello, later!"})
    );

    // An empty body is `{}`.
    let resp = s
        .req(
            reqwest::Method::POST,
            "/api/v1/namespaces/_/actions/hello?blocking=true&result=true",
        )
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await?,
        json!({"greeting": "Hello, stranger!"})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_invocations_get_clear_errors() -> Result<()> {
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy("hello", "hello", json!({})).await?;
    let post = |path: &str, body: &'static str| {
        s.req(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (path, body, status) in [
        (
            "/api/v1/namespaces/_/actions/hello?blocking=true",
            "[1,2]",
            400,
        ),
        (
            "/api/v1/namespaces/_/actions/hello?blocking=true",
            "{not json",
            400,
        ),
        (
            "/api/v1/namespaces/_/actions/hello?blocking=maybe",
            "{}",
            400,
        ),
        ("/api/v1/namespaces/_/actions/nope?blocking=true", "{}", 404),
    ] {
        let resp = post(path, body).await?;
        assert_eq!(resp.status().as_u16(), status, "{path} {body}");
        let err: Value = resp.json().await?;
        assert!(err["error"].is_string() && err["code"].is_string(), "{err}");
    }
    // No key: 401.
    let resp = s
        .http
        .post(format!("{}/api/v1/namespaces/_/actions/hello", s.base))
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    // None of these made a record.
    assert!(s.activations("").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_and_developer_errors_answer_502() -> Result<()> {
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy("echo", "echo", json!({})).await?;
    s.deploy("trap", "trap", json!({})).await?;
    s.deploy("badresult", "badresult", json!({})).await?;
    s.deploy("sleep", "sleep", json!({"limits": {"timeout": 300}}))
        .await?;

    let r = s
        .invoke("echo", "blocking=true", json!({"error": "x"}))
        .await?;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["response"]["status"], "application error");
    assert_eq!(r.body["response"]["statusCode"], 1);
    assert_eq!(r.body["response"]["result"], json!({"error": "x"}));
    // OpenWhisk: with result=true the 502 body is the result.
    let r = s
        .invoke("echo", "blocking=true&result=true", json!({"error": "y"}))
        .await?;
    assert_eq!(r.status, 502);
    assert_eq!(r.body, json!({"error": "y"}));
    assert!(r.id.is_some());

    for name in ["trap", "badresult"] {
        let r = s.invoke(name, "blocking=true", json!({})).await?;
        assert_eq!(r.status, 502, "{name}: {}", r.body);
        assert_eq!(
            r.body["response"]["status"], "action developer error",
            "{name}"
        );
        assert_eq!(r.body["response"]["statusCode"], 2);
        assert!(r.body["response"]["result"]["error"].is_string());
    }

    // A timeout is a developer error, annotated `timeout: true`, with the action's limits.
    let r = s
        .invoke("sleep", "blocking=true", json!({"ms": 5000}))
        .await?;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert_eq!(annotation(&r.body, "timeout"), Some(&json!(true)));
    assert_eq!(annotation(&r.body, "limits").unwrap()["timeout"], 300);
    assert!(annotation(&r.body, "waitTime").is_some());
    assert!(annotation(&r.body, "initTime").is_some());

    // The runtime is fine afterwards, and no error counted as a system error.
    let r = s
        .invoke("echo", "blocking=true&result=true", json!({"ok": 1}))
        .await?;
    assert_eq!((r.status, r.body), (200, json!({"ok": 1})));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_runtime_answers_503_without_a_record() -> Result<()> {
    // A runtime URL where nothing listens: the connection is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?;
    let dead_url = format!("http://{}", dead.local_addr()?);
    drop(dead);
    let s = SchedulerProc::start_with(vec![dead_url]).await?;
    // With no runtime to compile it, the module is accepted on its wasm magic.
    s.deploy("hello", "hello", json!({})).await?;
    for query in ["blocking=true", "blocking=true", ""] {
        let r = s.invoke("hello", query, json!({})).await?;
        assert_eq!(r.status, 503, "{query}: {}", r.body);
        assert_eq!(r.body["code"], "no_runtime");
        assert!(r.body["error"].is_string());
    }
    assert!(
        s.activations("").await?.is_empty(),
        "no activation was queued"
    );

    // And with no runtime configured at all.
    let s = SchedulerProc::start_with(vec![]).await?;
    s.deploy("hello", "hello", json!({})).await?;
    let r = s.invoke("hello", "blocking=true", json!({})).await?;
    assert_eq!(r.status, 503);
    // A sequence too, blocking or not.
    s.put_doc(
        "seq",
        json!({"exec": {"kind": "sequence", "components": ["/alice/hello"]}}),
    )
    .await?;
    for query in ["blocking=true", ""] {
        let r = s.invoke("seq", query, json!({})).await?;
        assert_eq!(r.status, 503, "{query}: {}", r.body);
    }
    assert!(s.activations("").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_compiles_ahead_and_fresh_runtimes_get_the_code_inline() -> Result<()> {
    let mut runtime = RuntimeProc::start()?;
    let addr = runtime.addr;
    let s = SchedulerProc::start_with(vec![runtime.url.clone()]).await?;
    s.deploy("hello", "hello", json!({})).await?;
    // Compiled when created: the first invoke loads nothing.
    let r = s.invoke("hello", "blocking=true", json!({})).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(annotation(&r.body, "initTime"), Some(&json!(0)));

    // A new runtime process on the same address knows no code: it answers 409 code_unknown
    // and the scheduler sends the code inline (the runtime never fetches anything).
    runtime.kill();
    let fresh = restart_on(addr)?;
    let r = s
        .invoke("hello", "blocking=true", json!({"name": "again"}))
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["response"]["result"],
        json!({"greeting": "Hello, again!"})
    );
    let init = annotation(&r.body, "initTime")
        .and_then(Value::as_u64)
        .unwrap();
    assert!(init > 0, "the fresh runtime had to compile");
    drop(fresh);
    Ok(())
}

/// Starts a runtime on `addr` (just freed by a killed one; retried while the port is released).
fn restart_on(addr: std::net::SocketAddr) -> Result<RuntimeProc> {
    let mut last = None;
    for _ in 0..100 {
        match RuntimeProc::start_at(addr) {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(last.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_serves_code_even_with_the_runtime_token() -> Result<()> {
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    let code = wisp_testkit::function_bytes("hello");
    s.deploy_bytes("hello", &code, json!({})).await?;
    let digest = wisp_core::Digest::of(&code);
    let url = format!("{}/internal/v1/code/{digest}", s.base);
    for resp in [
        s.http.get(&url).send().await?,
        s.http.get(&url).bearer_auth(TOKEN).send().await?,
    ] {
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().await?;
        assert!(body["error"].is_string(), "{body}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_dying_mid_activation_ends_as_whisk_internal_error() -> Result<()> {
    let mut runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy("sleep", "sleep", json!({})).await?;

    let pending = {
        let req = s
            .req(
                reqwest::Method::POST,
                "/api/v1/namespaces/_/actions/sleep?blocking=true",
            )
            .json(&json!({"ms": 30000}));
        tokio::spawn(async move { req.send().await })
    };
    // Wait until the runtime runs it, then kill the runtime.
    runtime.wait_in_flight(1).await?;
    runtime.kill();

    let resp = pending.await??;
    assert_eq!(resp.status(), 500);
    let id = resp.headers()["x-openwhisk-activation-id"]
        .to_str()?
        .to_string();
    let record: Value = resp.json().await?;
    assert_eq!(record["activationId"], id.as_str());
    assert_eq!(record["response"]["status"], "whisk internal error");
    assert_eq!(record["response"]["statusCode"], 3);
    assert!(record["response"]["result"]["error"].is_string());
    let stored = s.activation(&id).await?;
    assert_eq!(stored["response"]["status"], "whisk internal error");

    // The only runtime is gone: the next invoke is refused, not queued.
    let r = s.invoke("sleep", "blocking=true", json!({})).await?;
    assert_eq!(r.status, 503, "{}", r.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_chain_results_and_stop_at_the_first_error() -> Result<()> {
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy(
        "echo",
        "echo",
        json!({"parameters": [{"key": "name", "value": "echo-default"}]}),
    )
    .await?;
    s.deploy("hello", "hello", json!({})).await?;
    s.put_doc(
        "greet",
        json!({"exec": {"kind": "sequence", "components": ["/alice/echo", "/_/hello"]}}),
    )
    .await?;

    let r = s
        .invoke("greet", "blocking=true", json!({"name": "seq"}))
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["response"]["result"],
        json!({"greeting": "Hello, seq!"})
    );
    assert_eq!(annotation(&r.body, "kind"), Some(&json!("sequence")));
    assert_eq!(annotation(&r.body, "path"), Some(&json!("alice/greet")));
    let seq_id = r.body["activationId"].as_str().unwrap().to_string();
    let components: Vec<String> = r.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(components.len(), 2);
    for (id, name) in components.iter().zip(["echo", "hello"]) {
        let c = s.activation(id).await?;
        assert_eq!(c["name"], name);
        assert_eq!(c["cause"], seq_id.as_str());
        assert_eq!(annotation(&c, "causedBy"), Some(&json!("sequence")));
    }
    // The component's own defaults apply under what the previous step returned.
    let r = s
        .invoke("greet", "blocking=true&result=true", json!({}))
        .await?;
    assert_eq!(r.body, json!({"greeting": "Hello, echo-default!"}));

    // An error stops the chain: hello never runs.
    let r = s
        .invoke("greet", "blocking=true", json!({"error": "stop"}))
        .await?;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["response"]["status"], "application error");
    assert_eq!(r.body["logs"].as_array().unwrap().len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_invoke_past_the_wait_answers_202_and_still_ends_as_a_record() -> Result<()> {
    use wisp_scheduler::invoke::{InvokeOutcome, InvokeRequest, outcome_response, resolve};
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy("sleep", "sleep", json!({})).await?;
    // The same invoker with a 100 ms blocking wait instead of 60 s.
    let invoker = s
        .state
        .invoker
        .clone()
        .with_blocking_wait(std::time::Duration::from_millis(100));
    let action = resolve(&*s.state.store, "alice", "alice", None, "sleep").await?;
    let mut params = action.defaults;
    params.insert("ms".into(), json!(1500));
    let outcome = invoker
        .invoke(InvokeRequest {
            subject: "alice".into(),
            action: action.action,
            path: action.path,
            params,
            blocking: true,
            cause: None,
        })
        .await?;
    let InvokeOutcome::Accepted(id) = outcome.clone() else {
        panic!("a 1.5 s activation cannot finish within a 100 ms wait: {outcome:?}");
    };
    let response = outcome_response(outcome, false);
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-openwhisk-activation-id"], id.as_str());
    // It went on running and ended as a record.
    let record = s.activation(id.as_str()).await?;
    assert_eq!(
        record["response"]["result"],
        json!({"slept": 1500, "busy": false})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prober_pings_and_runs_the_built_in_health_action() -> Result<()> {
    use wisp_scheduler::balancer::Prober;
    use wisp_scheduler::runtime_client::{RuntimeClient, RuntimeProber};
    let runtime = RuntimeProc::start()?;
    let prober = RuntimeProber::new(RuntimeClient::new(Some(TOKEN)));
    let ping = prober
        .ping(&runtime.url)
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(ping.user_memory_mb, 2048);
    assert_eq!(ping.status, "ok");
    // Twice: the first sends the code inline after the runtime's 409, the second finds it cached.
    Prober::test_activation(&prober, &runtime.url)
        .await
        .map_err(anyhow::Error::msg)?;
    Prober::test_activation(&prober, &runtime.url)
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(runtime.activations_total().await?, 2);

    // A wrong token is refused, and so is a dead runtime.
    let wrong = RuntimeProber::new(RuntimeClient::new(Some("wrong")));
    assert!(Prober::test_activation(&wrong, &runtime.url).await.is_err());
    let mut dead = RuntimeProc::start()?;
    dead.kill();
    dead.wait_refused().await?;
    assert!(prober.ping(&dead.url).await.is_err());
    assert!(Prober::test_activation(&prober, &dead.url).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_invokes_published_actions_only_and_owns_the_record() -> Result<()> {
    use base64::Engine as _;
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy("shared", "hello", json!({"publish": true}))
        .await?;
    s.deploy("private", "hello", json!({})).await?;
    let bob = s.state.store.create_user("bob").await?;
    let bob_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(bob.auth())
    );
    let invoke = |name: &str| {
        s.http
            .post(format!(
                "{}/api/v1/namespaces/alice/actions/{name}?blocking=true",
                s.base
            ))
            .header("authorization", &bob_auth)
            .json(&json!({"name": "bob"}))
            .send()
    };
    let resp = invoke("private").await?;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await?;
    assert!(
        body.get("response").is_none(),
        "nothing of the action leaks: {body}"
    );

    let resp = invoke("shared").await?;
    assert_eq!(resp.status(), 200);
    let record: Value = resp.json().await?;
    // The activation belongs to the caller; its path names the owner's action.
    assert_eq!(record["namespace"], "bob");
    assert_eq!(record["subject"], "bob");
    assert_eq!(annotation(&record, "path"), Some(&json!("alice/shared")));
    assert_eq!(
        record["response"]["result"],
        json!({"greeting": "Hello, bob!"})
    );
    // Alice does not see bob's activation.
    assert!(s.activations("").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_sees_its_identity_in_the_environment() -> Result<()> {
    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    s.deploy("env", "env", json!({})).await?;
    let r = s.invoke("env", "blocking=true", json!({})).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let env = &r.body["response"]["result"];
    assert_eq!(env["__OW_ACTIVATION_ID"], r.body["activationId"]);
    assert_eq!(env["__OW_ACTION_NAME"], "/alice/env");
    assert_eq!(env["__OW_NAMESPACE"], "alice");
    assert_eq!(env["__OW_ACTION_VERSION"], r.body["version"]);
    assert_eq!(env["__OW_API_HOST"], s.base.as_str());
    let deadline: u64 = env["__OW_DEADLINE"].as_str().unwrap().parse()?;
    assert!(deadline > r.body["start"].as_u64().unwrap());
    Ok(())
}

/// The `.cwasm` files of a runtime's disk cache whose name starts with `digest`.
fn cached_files(dir: &std::path::Path, digest: &wisp_core::Digest) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(digest.as_str()) && name.ends_with(".cwasm")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Polls (up to 5 s) until `dir` holds `n` cached files of `digest`.
async fn cached_becomes(dir: &std::path::Path, digest: &wisp_core::Digest, n: usize) -> bool {
    for _ in 0..200 {
        if cached_files(dir, digest) == n {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_or_overwriting_an_action_drops_its_compiled_code_from_the_runtimes() -> Result<()>
{
    let cache = tempfile::tempdir()?;
    let dir = cache.path();
    let runtime = RuntimeProc::start_with(wisp_runtime::RuntimeConfig {
        token: Some(TOKEN.into()),
        pool_slots: 16,
        cache_dir: Some(dir.to_path_buf()),
        ..wisp_runtime::RuntimeConfig::default()
    })?;
    let s = SchedulerProc::start(&[&runtime]).await?;
    let hello = wisp_core::Digest::of(&wisp_testkit::function_bytes("hello"));
    let echo = wisp_core::Digest::of(&wisp_testkit::function_bytes("echo"));
    s.deploy("a", "hello", json!({})).await?;
    s.deploy("b", "hello", json!({})).await?; // the same code, stored once
    s.deploy("c", "echo", json!({})).await?;
    assert!(cached_becomes(dir, &hello, 1).await, "compiled at create");
    assert!(cached_becomes(dir, &echo, 1).await, "compiled at create");

    // `b` still uses hello's code: deleting `a` keeps it.
    let resp = s
        .req(reqwest::Method::DELETE, "/api/v1/namespaces/_/actions/a")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    // Overwriting `c` with other code leaves echo's code unused: it goes.
    s.deploy("c", "sleep", json!({})).await?;
    assert!(
        cached_becomes(dir, &echo, 0).await,
        "the overwritten action's code left the runtime's disk cache"
    );
    assert_eq!(cached_files(dir, &hello), 1, "code still in use stays");

    // Deleting the last user of hello's code drops it too.
    let resp = s
        .req(reqwest::Method::DELETE, "/api/v1/namespaces/_/actions/b")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert!(
        cached_becomes(dir, &hello, 0).await,
        "the deleted action's code left the runtime's disk cache"
    );
    Ok(())
}
