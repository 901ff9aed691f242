//! Issue 3's "Done when": the official OpenWhisk JavaScript client (npm `openwhisk`) works
//! against wisp. Runs `scheduler/tests/js/compat.js` (create a wasm action from a file, invoke
//! blocking with result, invoke non-blocking then fetch the activation, list activations, read
//! logs, update, delete) against a real scheduler and runtime. Installs the locked client with
//! `npm ci` when `node_modules` is missing. Skipped, with a note, when `node` is not installed.

mod common_b;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use common_b::{RuntimeProc, SchedulerProc};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("js")
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `npm ci` once (when `node_modules/openwhisk` is missing).
fn install_client() -> Result<()> {
    let dir = js_dir();
    if dir
        .join("node_modules")
        .join("openwhisk")
        .join("package.json")
        .exists()
    {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .context("run npm ci")?;
    if !out.status.success() {
        bail!(
            "npm ci failed in {}:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openwhisk_js_client_works() -> Result<()> {
    if !have("node") || !have("npm") {
        eprintln!("SKIPPED: node/npm are not installed, the OpenWhisk JS client test cannot run");
        return Ok(());
    }
    tokio::task::spawn_blocking(install_client).await??;
    let hello = wisp_testkit::function_path("hello");
    let echo = wisp_testkit::function_path("echo");

    let runtime = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&runtime]).await?;

    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("compat.js")
        .current_dir(js_dir())
        .env("WISP_APIHOST", &s.base)
        .env("WISP_AUTH", &s.auth)
        .env("WISP_HELLO", &hello)
        .env("WISP_ECHO", &echo)
        .env_remove("__OW_API_HOST")
        .env_remove("__OW_API_KEY")
        .env_remove("__OW_NAMESPACE")
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy");
    let out = cmd.output().await.context("run node compat.js")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "compat.js failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all OpenWhisk client steps passed"));
    Ok(())
}
