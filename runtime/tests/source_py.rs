#![cfg(feature = "python")]
//! Python actions (`python:3`) through the real runtime: each OpenWhisk convention and each
//! hostile case, as a snapshot made by `wisp_runtime::source` then prepared and run by
//! `wisp_runtime::Runtime` like any wasm action.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use wisp_core::{ActivationId, Digest, Limits, RunRequest, RunResponse, Status};
use wisp_runtime::source::{Prewarm, SnapshotLimits, Snapshotter, SourceError, SourceKind};
use wisp_runtime::{Runtime, RuntimeConfig};

struct Py {
    runtime: Runtime,
    snapshotter: Snapshotter,
}

fn py() -> &'static Py {
    static PY: OnceLock<Py> = OnceLock::new();
    PY.get_or_init(|| {
        let runtime = Runtime::new(RuntimeConfig {
            pool_slots: 32,
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let snapshotter = Snapshotter::new(runtime.engine().clone());
        Py {
            runtime,
            snapshotter,
        }
    })
}

async fn deploy_with(source: &str, main: Option<&str>, prewarm: Prewarm) -> Result<Digest> {
    let p = py();
    let module = p
        .snapshotter
        .snapshot_with(
            SourceKind::Python,
            source,
            main,
            &SnapshotLimits::default(),
            prewarm,
        )
        .await
        .with_context(|| format!("snapshot of {source:?}"))?;
    let digest = Digest::of(&module);
    p.runtime.prepare(&digest, &module).await?;
    Ok(digest)
}

async fn deploy(source: &str, main: Option<&str>) -> Result<Digest> {
    deploy_with(source, main, Prewarm::Evaluated).await
}

fn request(digest: &Digest, params: Value, limits: Limits) -> RunRequest {
    let Value::Object(params) = params else {
        panic!("params must be an object")
    };
    RunRequest {
        activation_id: ActivationId::generate(),
        namespace: "guest".into(),
        action: "/guest/default/py".into(),
        version: "0.0.2".into(),
        digest: digest.clone(),
        code: None,
        limits,
        params,
        api_host: "http://127.0.0.1:3233".into(),
    }
}

async fn run_with(digest: &Digest, params: Value, limits: Limits) -> Result<RunResponse> {
    Ok(py().runtime.run(request(digest, params, limits)).await?)
}

async fn run(digest: &Digest, params: Value) -> Result<RunResponse> {
    run_with(digest, params, Limits::default()).await
}

fn assert_status(r: &RunResponse, status: Status) {
    assert_eq!(r.response.status, status, "response: {r:#?}");
}

fn logs(r: &RunResponse) -> Vec<&str> {
    r.logs
        .iter()
        .map(|l| l.split_once(' ').expect("timestamped line").1)
        .collect()
}

const HELLO: &str = r#"
import sys

def main(args):
    name = args.get("name", "stranger")
    print("greeting", name)
    print("to stderr", file=sys.stderr)
    return {"greeting": f"Hello, {name}!"}
"#;

async fn hello_still_served() -> Result<()> {
    let d = deploy(HELLO, None).await?;
    let r = run(&d, json!({"name": "after"})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"greeting": "Hello, after!"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_returns_its_result_and_print_logs() -> Result<()> {
    let d = deploy(HELLO, None).await?;
    let r = run(&d, json!({"name": "wisp"})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"greeting": "Hello, wisp!"}));
    assert_eq!(logs(&r), vec!["stdout: greeting wisp", "stderr: to stderr"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_main_names_another_function() -> Result<()> {
    let source = "def main(a):\n    return {'called': 'main'}\n\ndef other(a):\n    return {'called': 'other', 'n': a['n'] * 2}\n";
    let d = deploy(source, Some("other")).await?;
    let r = run(&d, json!({"n": 21})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"called": "other", "n": 42}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_openwhisk_statuses() -> Result<()> {
    let d = deploy(
        "def main(a):\n    if a.get('raise'):\n        raise ValueError('bad value')\n    return {'error': 'told so'}\n",
        None,
    )
    .await?;
    let r = run(&d, json!({"raise": true})).await?;
    assert_status(&r, Status::DeveloperError);
    let logged = logs(&r).join("\n");
    assert!(logged.contains("ValueError: bad value"), "{logged}");
    let r = run(&d, json!({})).await?;
    assert_status(&r, Status::ApplicationError);
    assert_eq!(r.response.result, json!({"error": "told so"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn os_environ_is_the_activation_environment_and_json_round_trips() -> Result<()> {
    let d = deploy(
        "import os\n\ndef main(a):\n    return {'id': os.environ.get('__OW_ACTIVATION_ID'), 'ns': os.environ['__OW_NAMESPACE'], 'params': a}\n",
        None,
    )
    .await?;
    let params = json!({"unicode": "héllo ✓", "list": [1, 2.5, null, true], "nested": {"a": {}}});
    let req = request(&d, params.clone(), Limits::default());
    let id = req.activation_id.clone();
    let r = py().runtime.run(req).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result["id"], id.as_str());
    assert_eq!(r.response.result["ns"], "guest");
    assert_eq!(r.response.result["params"], params);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_cannot_load_are_refused_with_the_reason() -> Result<()> {
    let s = &py().snapshotter;
    let limits = SnapshotLimits::default();
    let err = s
        .snapshot(SourceKind::Python, "def main(:\n", None, &limits)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Init { message } if message.contains("SyntaxError")),
        "{err:?}"
    );
    let err = s
        .snapshot(SourceKind::Python, "x = 1\n", None, &limits)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SourceError::Init {
            message: "Action entrypoint 'main' is not a function.".into()
        }
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_ends_at_the_timeout() -> Result<()> {
    let d = deploy("def main(a):\n    while True:\n        pass\n", None).await?;
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

/// RustPython aborts (a wasm `unreachable`, nothing logged) when an allocation fails, before
/// its heap reaches the memory cap: the activation is an action developer error all the same,
/// but with the trap's message rather than the memory limit's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_ends_as_a_developer_error() -> Result<()> {
    let d = deploy(
        "def main(a):\n    l = []\n    while True:\n        l.append([1] * 1000000)\n",
        None,
    )
    .await?;
    let limits = Limits {
        memory: 128,
        ..Limits::default()
    };
    let r = run_with(&d, json!({}), limits).await?;
    assert_status(&r, Status::DeveloperError);
    assert_eq!(
        r.response.result["error"],
        "The action trapped: wasm trap: wasm `unreachable` instruction executed."
    );
    hello_still_served().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_truncated_and_the_result_still_found() -> Result<()> {
    let d = deploy(
        "def main(a):\n    for i in range(a['lines']):\n        print('x' * 1000)\n    return {'flooded': a['lines']}\n",
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
    hello_still_served().await
}
