//! Shared test harness: a real `wisp-runtime` server on 127.0.0.1:0 (through the library's
//! `serve_runtime`) and a keep-alive HTTP client.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use anyhow::{Context, Result};
use base64::Engine as _;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wisp_core::{ActivationId, Digest, Limits, RunRequest, RunResponse, Status};
use wisp_runtime::{Runtime, RuntimeConfig};

pub const TOKEN: &str = "test-token-7d1f";

pub struct Server {
    pub addr: SocketAddr,
    pub runtime: Runtime,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<()>>,
    pub client: reqwest::Client,
}

/// The config tests use: a token, a small pool (several test servers share one process).
pub fn test_config() -> RuntimeConfig {
    RuntimeConfig {
        token: Some(TOKEN.into()),
        pool_slots: 64,
        ..RuntimeConfig::default()
    }
}

pub async fn start() -> Result<Server> {
    start_with(test_config()).await
}

pub async fn start_with(config: RuntimeConfig) -> Result<Server> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let runtime = Runtime::new(config)?;
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(wisp_runtime::serve_runtime(
        runtime.clone(),
        listener,
        shutdown.clone(),
    ));
    tokio::task::spawn_blocking(move || wisp_testkit::wait_healthy(addr)).await??;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    Ok(Server {
        addr,
        runtime,
        shutdown,
        handle,
        client,
    })
}

/// The bytes and digest of a `functions/` module (built once per process by the testkit).
pub async fn function(name: &'static str) -> (Vec<u8>, Digest) {
    let bytes = tokio::task::spawn_blocking(move || wisp_testkit::function_bytes(name))
        .await
        .expect("testkit build task");
    let digest = Digest::of(&bytes);
    (bytes, digest)
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A run request for `digest` with `params` (no code attached).
pub fn request(digest: &Digest, params: Value, limits: Limits) -> RunRequest {
    let Value::Object(params) = params else {
        panic!("params must be an object")
    };
    RunRequest {
        activation_id: ActivationId::generate(),
        namespace: "guest".into(),
        action: "/guest/default/test".into(),
        version: "0.0.1".into(),
        digest: digest.clone(),
        code: None,
        limits,
        params,
        api_host: "http://127.0.0.1:3233".into(),
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a JSON body to `path` with the right token.
    pub async fn post(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<reqwest::Response> {
        Ok(self
            .client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await?)
    }

    /// Compiles a function ahead (`/prepare` with the code inline) and returns its digest.
    pub async fn deploy(&self, name: &'static str) -> Result<Digest> {
        let (bytes, digest) = function(name).await;
        let resp = self
            .post("/prepare", &json!({"digest": digest, "code": b64(&bytes)}))
            .await?;
        anyhow::ensure!(
            resp.status() == 200,
            "prepare {name}: {} {}",
            resp.status(),
            resp.text().await?
        );
        Ok(digest)
    }

    /// `POST /run` and expects a 200 `RunResponse`.
    pub async fn run(&self, req: &RunRequest) -> Result<RunResponse> {
        let resp = self.post("/run", req).await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(status == 200, "/run answered {status}: {text}");
        serde_json::from_str(&text).with_context(|| format!("not a RunResponse: {text}"))
    }

    /// Runs an already deployed digest with default limits.
    pub async fn invoke(&self, digest: &Digest, params: Value) -> Result<RunResponse> {
        self.run(&request(digest, params, Limits::default())).await
    }

    pub async fn metrics(&self) -> Result<String> {
        Ok(self
            .client
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?)
    }

    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.handle.await?
    }
}

/// Asserts `r` ended with `status`, printing the whole response otherwise.
pub fn assert_status(r: &RunResponse, status: Status) {
    assert_eq!(
        r.response.status, status,
        "unexpected status; response: {r:#?}"
    );
    assert_eq!(r.response.status_code, status.code());
    assert_eq!(r.response.success, status == Status::Success);
}

/// The value of an unlabelled counter/gauge, or of a labelled series, in Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

/// A `wisp-runtime` child process, killed on drop so a failing test leaves nothing behind.
pub struct Process {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Starts the binary with `args` (plus `--port 0`) and the test token, and reads the
    /// address it listens on from its "listening" log line.
    pub fn start(args: &[&str]) -> Result<Process> {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wisp-runtime"))
            .args(["--port", "0"])
            .args(args)
            .env("WISP_RUNTIME_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line?;
            if line.contains("wisp-runtime listening") {
                addr = line
                    .split("addr=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok());
                break;
            }
        }
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the runtime exited before listening");
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Process { child, addr })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`...), in bytes.
    pub fn status_kb(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .with_context(|| format!("no {field} in /proc/PID/status"))?;
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .context("no value")?
            .parse()?;
        Ok(kb * 1024)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
