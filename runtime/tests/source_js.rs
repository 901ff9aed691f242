//! JavaScript actions (`nodejs:*`) through the real runtime: each OpenWhisk convention and each
//! hostile case, as a snapshot made by `wisp_runtime::source` then prepared and run by
//! `wisp_runtime::Runtime` like any wasm action.
//!
//! One runtime and one snapshotter serve every test of this binary (the interpreter is compiled
//! once); each action's snapshot is compiled on its first prepare.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use wisp_core::{ActivationId, Digest, Limits, RunRequest, RunResponse, Status};
use wisp_runtime::source::{Prewarm, SnapshotLimits, Snapshotter, SourceError, SourceKind};
use wisp_runtime::{Runtime, RuntimeConfig};

struct Js {
    runtime: Runtime,
    snapshotter: Snapshotter,
}

fn js() -> &'static Js {
    static JS: OnceLock<Js> = OnceLock::new();
    JS.get_or_init(|| {
        let runtime = Runtime::new(RuntimeConfig {
            pool_slots: 32,
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let snapshotter = Snapshotter::new(runtime.engine().clone());
        Js {
            runtime,
            snapshotter,
        }
    })
}

/// Snapshots `source` (entry `main`) and prepares it; returns the digest to run.
async fn deploy(source: &str, main: Option<&str>) -> Result<Digest> {
    deploy_with(source, main, Prewarm::Evaluated).await
}

async fn deploy_with(source: &str, main: Option<&str>, prewarm: Prewarm) -> Result<Digest> {
    let js = js();
    let module = js
        .snapshotter
        .snapshot_with(
            SourceKind::JavaScript,
            source,
            main,
            &SnapshotLimits::default(),
            prewarm,
        )
        .await
        .with_context(|| format!("snapshot of {source:?}"))?;
    let digest = Digest::of(&module);
    js.runtime.prepare(&digest, &module).await?;
    Ok(digest)
}

fn request(digest: &Digest, params: Value, limits: Limits) -> RunRequest {
    let Value::Object(params) = params else {
        panic!("params must be an object")
    };
    RunRequest {
        activation_id: ActivationId::generate(),
        namespace: "guest".into(),
        action: "/guest/default/js".into(),
        version: "0.0.3".into(),
        digest: digest.clone(),
        code: None,
        limits,
        params,
        api_host: "http://127.0.0.1:3233".into(),
    }
}

async fn run_with(digest: &Digest, params: Value, limits: Limits) -> Result<RunResponse> {
    Ok(js().runtime.run(request(digest, params, limits)).await?)
}

async fn run(digest: &Digest, params: Value) -> Result<RunResponse> {
    run_with(digest, params, Limits::default()).await
}

fn assert_status(r: &RunResponse, status: Status) {
    assert_eq!(r.response.status, status, "response: {r:#?}");
}

/// The log lines without their timestamps: `stdout: text` / `stderr: text`.
fn logs(r: &RunResponse) -> Vec<&str> {
    r.logs
        .iter()
        .map(|l| l.split_once(' ').expect("timestamped line").1)
        .collect()
}

const HELLO: &str = r#"
function main(params) {
  console.log("greeting", params.name || "stranger");
  return { greeting: `Hello, ${params.name || "stranger"}!` };
}
"#;

/// A plain `hello` that must still be served after a hostile activation.
async fn hello_still_served() -> Result<()> {
    let d = deploy(HELLO, None).await?;
    let r = run(&d, json!({"name": "after"})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"greeting": "Hello, after!"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_main_returns_its_result_and_logs() -> Result<()> {
    let d = deploy(HELLO, None).await?;
    let r = run(&d, json!({"name": "wisp"})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"greeting": "Hello, wisp!"}));
    assert_eq!(logs(&r), vec!["stdout: greeting wisp"]);
    let r = run(&d, json!({})).await?;
    assert_eq!(r.response.result, json!({"greeting": "Hello, stranger!"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_main_and_module_exports_are_entry_points() -> Result<()> {
    for source in [
        "exports.main = (p) => ({ via: 'exports', n: p.n + 1 });",
        "module.exports = { main: (p) => ({ via: 'module.exports', n: p.n + 1 }) };",
        "module.exports = function (p) { return { via: 'module.exports fn', n: p.n + 1 }; };",
        "const main = (p) => ({ via: 'const', n: p.n + 1 });",
    ] {
        let d = deploy(source, None).await?;
        let r = run(&d, json!({"n": 41})).await?;
        assert_status(&r, Status::Success);
        assert_eq!(r.response.result["n"], 42, "{source}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_main_names_another_entry_point() -> Result<()> {
    let source = r#"
      function main() { return { called: "main" }; }
      function niam() { return { called: "niam" }; }
      const handlers = { run: () => ({ called: "handlers.run" }) };
      exports.viaExports = () => ({ called: "exports.viaExports" });
    "#;
    for entry in ["niam", "handlers.run", "viaExports"] {
        let d = deploy(source, Some(entry)).await?;
        let r = run(&d, json!({})).await?;
        assert_status(&r, Status::Success);
        assert_eq!(
            r.response.result["called"],
            entry.replace("viaExports", "exports.viaExports")
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_main_and_promises_are_awaited() -> Result<()> {
    let d = deploy(
        r#"
        async function main(params) {
          const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
          const order = [];
          setTimeout(() => order.push("timer 20"), 20);
          await wait(5);
          order.push("after 5");
          await wait(30);
          return { order, echoed: params.x };
        }"#,
        None,
    )
    .await?;
    let r = run(&d, json!({"x": [1, 2]})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(
        r.response.result,
        json!({"order": ["after 5", "timer 20"], "echoed": [1, 2]})
    );
    // A returned Promise (not an async function) that resolves to undefined is `{}`.
    let d = deploy(
        "function main() { return new Promise((r) => setTimeout(r, 1)); }",
        None,
    )
    .await?;
    let r = run(&d, json!({})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_log_and_error_are_stdout_and_stderr_lines() -> Result<()> {
    let d = deploy(
        r#"function main() {
          console.log("one", 2, { three: [3] });
          console.error("oops: %s=%d", "x", 7);
          console.warn("careful");
          process.stdout.write("partial ");
          console.log("line");
          return { done: true };
        }"#,
        None,
    )
    .await?;
    let r = run(&d, json!({})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(
        logs(&r),
        vec![
            "stdout: one 2 { three: [ 3 ] }",
            "stderr: oops: x=7",
            "stderr: careful",
            "stdout: partial line",
        ]
    );
    assert_eq!(r.response.result, json!({"done": true}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thrown_error_is_an_action_developer_error_with_its_message() -> Result<()> {
    let d = deploy(
        "function main(p) { if (p.fail) throw new Error('boom: ' + p.fail); return {ok: true}; }",
        None,
    )
    .await?;
    let r = run(&d, json!({"fail": "sync"})).await?;
    assert_status(&r, Status::DeveloperError);
    let logged = logs(&r).join("\n");
    assert!(logged.contains("stderr: Error: boom: sync"), "{logged}");
    assert!(logged.contains("at main (action.js"), "{logged}");
    // The snapshot is unharmed: the next activation succeeds.
    let r = run(&d, json!({})).await?;
    assert_status(&r, Status::Success);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_promise_is_an_action_developer_error_with_its_message() -> Result<()> {
    let d = deploy(
        "async function main() { await null; throw new TypeError('no luck'); }",
        None,
    )
    .await?;
    let r = run(&d, json!({})).await?;
    assert_status(&r, Status::DeveloperError);
    assert!(
        logs(&r).contains(&"stderr: TypeError: no luck"),
        "{:?}",
        r.logs
    );
    let d = deploy(
        "function main() { return Promise.reject('plain reason'); }",
        None,
    )
    .await?;
    let r = run(&d, json!({})).await?;
    assert_status(&r, Status::DeveloperError);
    assert!(logs(&r).contains(&"stderr: plain reason"), "{:?}", r.logs);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_error_object_is_an_application_error() -> Result<()> {
    let d = deploy(
        "function main(p) { return { error: { code: 7, reason: `bad ${p.what}` } }; }",
        None,
    )
    .await?;
    let r = run(&d, json!({"what": "input"})).await?;
    assert_status(&r, Status::ApplicationError);
    assert_eq!(
        r.response.result,
        json!({"error": {"code": 7, "reason": "bad input"}})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_env_is_the_activation_environment() -> Result<()> {
    let d = deploy(
        r#"function main() {
          const e = process.env;
          return { id: e.__OW_ACTIVATION_ID, name: e.__OW_ACTION_NAME, ns: e.__OW_NAMESPACE,
                   version: e.__OW_ACTION_VERSION, host: e.__OW_API_HOST,
                   deadline: Number(e.__OW_DEADLINE), now: Date.now() };
        }"#,
        None,
    )
    .await?;
    for _ in 0..2 {
        let req = request(&d, json!({}), Limits::default());
        let id = req.activation_id.clone();
        let r = js().runtime.run(req).await?;
        assert_status(&r, Status::Success);
        let res = &r.response.result;
        assert_eq!(res["id"], id.as_str());
        assert_eq!(res["name"], "/guest/default/js");
        assert_eq!(res["ns"], "guest");
        assert_eq!(res["version"], "0.0.3");
        assert_eq!(res["host"], "http://127.0.0.1:3233");
        // The clock is the activation's, not the snapshot's.
        let (deadline, now) = (res["deadline"].as_f64(), res["now"].as_f64());
        assert!(deadline > now, "{res}");
        assert!(now.unwrap() >= r.start as f64, "{res} vs start {}", r.start);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_round_trips_and_math_random_is_per_activation() -> Result<()> {
    let d = deploy(
        "function main(p) { return { params: p, random: Math.random() }; }",
        None,
    )
    .await?;
    let params = json!({"a": 1.5, "nested": {"list": [1, "two", null, true]}, "unicode": "héllo ✓ \u{1F600}", "quote": "a\"b\nc"});
    let first = run(&d, params.clone()).await?;
    assert_status(&first, Status::Success);
    assert_eq!(first.response.result["params"], params);
    let second = run(&d, params).await?;
    let (a, b) = (
        first.response.result["random"].as_f64().unwrap(),
        second.response.result["random"].as_f64().unwrap(),
    );
    assert!((0.0..1.0).contains(&a) && (0.0..1.0).contains(&b));
    assert_ne!(a, b, "Math.random must not replay the snapshot's sequence");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_that_are_not_objects_are_developer_errors() -> Result<()> {
    for source in [
        "function main() { return [1, 2]; }",
        "function main() { return 'text'; }",
        "function main() { const o = {}; o.self = o; return o; }",
    ] {
        let d = deploy(source, None).await?;
        let r = run(&d, json!({})).await?;
        assert_status(&r, Status::DeveloperError);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_cannot_load_are_refused_with_the_reason() -> Result<()> {
    let s = &js().snapshotter;
    let limits = SnapshotLimits::default();
    let kind = SourceKind::JavaScript;
    let err = s
        .snapshot(kind, "function main() {\n  return {;\n}", None, &limits)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Init { message } if message.starts_with("SyntaxError: ") && message.contains("action.js:2")),
        "{err:?}"
    );
    let err = s
        .snapshot(kind, "function main() {}", Some("nope"), &limits)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SourceError::Init {
            message: "TypeError: Action entrypoint 'nope' is not a function.".into()
        }
    );
    let err = s
        .snapshot(kind, "throw new Error('at load time')", None, &limits)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Init { message } if message.contains("Error: at load time")),
        "{err:?}"
    );
    let err = s
        .snapshot(kind, HELLO, Some("main()"), &limits)
        .await
        .unwrap_err();
    assert_eq!(err, SourceError::InvalidEntry("main()".into()));
    // Top-level code runs under the limits.
    let short = SnapshotLimits {
        timeout: std::time::Duration::from_millis(300),
        ..limits
    };
    let err = s
        .snapshot(kind, "while (true) {}", None, &short)
        .await
        .unwrap_err();
    assert_eq!(err, SourceError::InitTimeout(300));
    let small = SnapshotLimits {
        memory_bytes: 32 << 20,
        ..limits
    };
    let err = s
        .snapshot(
            kind,
            "const a = []; for (;;) a.push(new Array(1e6).fill(1));",
            None,
            &small,
        )
        .await
        .unwrap_err();
    assert_eq!(err, SourceError::InitMemory(32));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_ends_at_the_timeout() -> Result<()> {
    let d = deploy("function main() { while (true) {} }", None).await?;
    let limits = Limits {
        timeout: 500,
        ..Limits::default()
    };
    let r = run_with(&d, json!({}), limits).await?;
    assert_status(&r, Status::DeveloperError);
    assert_eq!(
        r.response.result["error"],
        "The action exceeded its time limit of 500 milliseconds."
    );
    hello_still_served().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_ends_at_the_memory_cap() -> Result<()> {
    let d = deploy(
        "function main() { let a = []; for (;;) a.push(new Array(1e6).fill(1)); }",
        None,
    )
    .await?;
    let limits = Limits {
        memory: 64,
        ..Limits::default()
    };
    let r = run_with(&d, json!({}), limits).await?;
    assert_status(&r, Status::DeveloperError);
    assert_eq!(
        r.response.result["error"],
        "The action exceeded its memory limit of 64 MB."
    );
    hello_still_served().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_truncated_and_the_result_still_found() -> Result<()> {
    let d = deploy(
        r#"function main(p) {
          const line = "x".repeat(1000);
          for (let i = 0; i < p.lines; i++) (i % 2 ? console.error : console.log)(line);
          return { flooded: p.lines };
        }"#,
        None,
    )
    .await?;
    let limits = Limits {
        logs: 1,
        ..Limits::default()
    };
    let r = run_with(&d, json!({"lines": 3000}), limits).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"flooded": 3000}));
    let last = r.logs.last().expect("logs");
    assert!(
        last.ends_with(
            "stderr: Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
        ),
        "{last}"
    );
    assert!(r.logs.len() < 1100, "{} lines kept", r.logs.len());
    hello_still_served().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_snapshot_the_source_is_evaluated_per_activation() -> Result<()> {
    let d = deploy_with(HELLO, None, Prewarm::None).await?;
    let r = run(&d, json!({"name": "cold"})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"greeting": "Hello, cold!"}));
    assert_eq!(logs(&r), vec!["stdout: greeting cold"]);
    // A source that does not load fails every activation, with the reason.
    let d = deploy_with("function main( {", None, Prewarm::None).await?;
    let r = run(&d, json!({})).await?;
    assert_status(&r, Status::DeveloperError);
    assert!(logs(&r).join("\n").contains("SyntaxError"), "{:?}", r.logs);
    Ok(())
}
