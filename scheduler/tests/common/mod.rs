//! Helpers of the API, auth and store tests: a real scheduler on `127.0.0.1:0` with a fresh
//! data dir, real runtimes in-process (`wisp_runtime::serve`), users created through the admin
//! API, and a small HTTP client bound to a user's `uuid:key`.
//!
//! Stable API (other test files use it): [`Platform::start`], [`TestScheduler::start`] /
//! [`TestScheduler::start_with`] / [`TestScheduler::stop`], [`TestRuntime::start`],
//! [`TestScheduler::create_user`], [`Client`] (`get/put/post/delete` → `(status, json)`),
//! [`action_body`], [`hello_wasm`].
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wisp_scheduler::{Scheduler, SchedulerConfig};

/// The admin key of every test scheduler.
pub const ADMIN_KEY: &str = "test-admin-key";
/// The runtime token shared by test schedulers and runtimes.
pub const RUNTIME_TOKEN: &str = "test-runtime-token";

/// The `hello` function of `functions/`, built for wasm32-wasip1.
pub fn hello_wasm() -> Vec<u8> {
    wisp_testkit::function_bytes("hello")
}

/// An action PUT body for a wasm module, with optional extra top-level fields.
pub fn action_body(wasm: &[u8]) -> Value {
    json!({"exec": {"kind": "wasm", "code": base64::engine::general_purpose::STANDARD.encode(wasm), "binary": true}})
}

/// A plain HTTP client (no auth).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().build().expect("reqwest client")
}

/// A runtime served in-process on `127.0.0.1:0`.
pub struct TestRuntime {
    pub url: String,
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<()>>,
}

impl TestRuntime {
    /// Starts a runtime with the test token and a small instance pool.
    pub async fn start() -> Result<TestRuntime> {
        let config = wisp_runtime::RuntimeConfig {
            token: Some(RUNTIME_TOKEN.into()),
            pool_slots: 16,
            ..wisp_runtime::RuntimeConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(wisp_runtime::serve(config, listener, shutdown.clone()));
        Ok(TestRuntime {
            url: format!("http://{addr}"),
            addr,
            shutdown,
            task,
        })
    }

    /// Stops it gracefully.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.task.await.context("runtime task")?
    }
}

/// A scheduler served in-process on `127.0.0.1:0`.
pub struct TestScheduler {
    pub url: String,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The scheduler's shared state (store, balancer...), for white-box checks.
    pub state: wisp_scheduler::state::AppState,
    shutdown: CancellationToken,
    task: JoinHandle<Result<()>>,
}

/// The configuration test schedulers start with.
pub fn scheduler_config(runtimes: &[String], data_dir: &Path) -> SchedulerConfig {
    SchedulerConfig {
        runtimes: runtimes.to_vec(),
        data_dir: data_dir.to_path_buf(),
        runtime_token: Some(RUNTIME_TOKEN.into()),
        admin_key: Some(ADMIN_KEY.into()),
        ..SchedulerConfig::default()
    }
}

impl TestScheduler {
    /// Starts a scheduler on `data_dir` with `runtimes`.
    pub async fn start(runtimes: &[String], data_dir: &Path) -> Result<TestScheduler> {
        Self::start_with(scheduler_config(runtimes, data_dir)).await
    }

    /// Starts a scheduler with a configuration of the caller's (`api_host` is filled in with
    /// the bound address when unset).
    pub async fn start_with(mut config: SchedulerConfig) -> Result<TestScheduler> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        config.api_host.get_or_insert_with(|| url.clone());
        let data_dir = config.data_dir.clone();
        let scheduler = Scheduler::open(config).await?;
        let state = scheduler.state().clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(scheduler.serve(listener, shutdown.clone()));
        Ok(TestScheduler {
            url,
            addr,
            data_dir,
            state,
            shutdown,
            task,
        })
    }

    /// Stops it cleanly (in-flight requests finish, activation records are flushed).
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.task.await.context("scheduler task")?
    }

    /// Waits until `/ready` answers 200 (a runtime is healthy).
    pub async fn wait_ready(&self) -> Result<()> {
        for _ in 0..300 {
            if let Ok(r) = http().get(format!("{}/ready", self.url)).send().await
                && r.status() == StatusCode::OK
            {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        bail!("scheduler at {} never became ready", self.url)
    }

    /// Creates user `name` through the admin API.
    pub async fn create_user(&self, name: &str) -> Result<Client> {
        let r = http()
            .post(format!("{}/admin/v1/users", self.url))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": name}))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if status != StatusCode::CREATED {
            bail!("creating user {name}: {status} {body}");
        }
        let auth = body["auth"].as_str().context("auth in answer")?;
        Ok(Client::new(&self.url, auth, name))
    }
}

/// A scheduler with `n` runtimes on a fresh data dir, and user `guest`.
pub struct Platform {
    pub scheduler: TestScheduler,
    pub runtimes: Vec<TestRuntime>,
    pub guest: Client,
    pub dir: tempfile::TempDir,
}

impl Platform {
    /// Starts `n` runtimes and a scheduler using them; waits for readiness when `n > 0`.
    pub async fn start(n: usize) -> Result<Platform> {
        let dir = tempfile::tempdir()?;
        let mut runtimes = Vec::new();
        for _ in 0..n {
            runtimes.push(TestRuntime::start().await?);
        }
        let urls: Vec<String> = runtimes.iter().map(|r| r.url.clone()).collect();
        let scheduler = TestScheduler::start(&urls, dir.path()).await?;
        if n > 0 {
            scheduler.wait_ready().await?;
        }
        let guest = scheduler.create_user("guest").await?;
        Ok(Platform {
            scheduler,
            runtimes,
            guest,
            dir,
        })
    }

    /// Stops the scheduler, then the runtimes.
    pub async fn stop(self) -> Result<()> {
        self.scheduler.stop().await?;
        for r in self.runtimes {
            r.stop().await?;
        }
        Ok(())
    }
}

/// An HTTP client acting as one user (HTTP Basic `uuid:key`).
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub auth: String,
    pub namespace: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, auth: &str, namespace: &str) -> Client {
        Client {
            base: base.into(),
            auth: auth.into(),
            namespace: namespace.into(),
            http: http(),
        }
    }

    /// The same user with another `uuid:key` (e.g. a wrong one).
    pub fn with_auth(&self, auth: &str) -> Client {
        Client {
            auth: auth.into(),
            ..self.clone()
        }
    }

    /// A request to `{base}{path}` with this user's credentials (none when `auth` is empty).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match self.auth.split_once(':') {
            Some((u, k)) => rb.basic_auth(u, Some(k)),
            None => rb,
        }
    }

    async fn send(rb: reqwest::RequestBuilder) -> Result<(StatusCode, Value)> {
        let r = rb.send().await?;
        let status = r.status();
        let bytes = r.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!("{status}: not JSON: {}", String::from_utf8_lossy(&bytes))
            })?
        };
        Ok((status, body))
    }

    pub async fn get(&self, path: &str) -> Result<(StatusCode, Value)> {
        Self::send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(StatusCode, Value)> {
        Self::send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<(StatusCode, Value)> {
        Self::send(self.request(reqwest::Method::PUT, path).json(body)).await
    }

    /// PUT with a raw body (malformed JSON, oversized bodies...).
    pub async fn put_raw(&self, path: &str, body: Vec<u8>) -> Result<(StatusCode, Value)> {
        Self::send(
            self.request(reqwest::Method::PUT, path)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, Value)> {
        Self::send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    /// `PUT /api/v1/namespaces/_/actions/{name}` with a wasm module; fails unless 200.
    pub async fn create_action(&self, name: &str, wasm: &[u8]) -> Result<Value> {
        let (status, body) = self
            .put(
                &format!("/api/v1/namespaces/_/actions/{name}"),
                &action_body(wasm),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("creating action {name}: {status} {body}");
        }
        Ok(body)
    }

    /// Blocking invoke of `name` with `params`.
    pub async fn invoke(&self, name: &str, params: Value) -> Result<(StatusCode, Value)> {
        self.post(
            &format!("/api/v1/namespaces/_/actions/{name}?blocking=true"),
            &params,
        )
        .await
    }

    /// Names of the caller's actions (`GET .../actions?limit=200`), for before/after checks.
    pub async fn action_listing(&self) -> Result<Value> {
        let (status, body) = self.get("/api/v1/namespaces/_/actions?limit=200").await?;
        if status != StatusCode::OK {
            bail!("listing actions: {status} {body}");
        }
        Ok(body)
    }
}
