//! Helpers of the invoke, web, sharding and OpenWhisk-client tests: a real scheduler and real
//! runtimes on `127.0.0.1:0`, each runtime on a tokio runtime of its own so that it can be
//! *killed* (its tasks and sockets dropped at once, as when a process dies) or stopped
//! gracefully.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wisp_runtime::RuntimeConfig;
use wisp_scheduler::{Scheduler, SchedulerConfig};

/// The runtime token every test process shares.
pub const TOKEN: &str = "test-runtime-token";

/// One runtime "process": `wisp_runtime::serve` on its own tokio runtime.
pub struct RuntimeProc {
    pub addr: SocketAddr,
    pub url: String,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: CancellationToken,
}

impl RuntimeProc {
    /// Starts a runtime with the shared token and a small pool.
    pub fn start() -> Result<RuntimeProc> {
        Self::start_with(RuntimeConfig {
            token: Some(TOKEN.into()),
            pool_slots: 16,
            ..RuntimeConfig::default()
        })
    }

    pub fn start_with(config: RuntimeConfig) -> Result<RuntimeProc> {
        Self::start_on("127.0.0.1:0".parse()?, config)
    }

    /// Starts a runtime on a given address (e.g. the one a killed runtime just freed).
    pub fn start_at(addr: SocketAddr) -> Result<RuntimeProc> {
        Self::start_on(
            addr,
            RuntimeConfig {
                token: Some(TOKEN.into()),
                pool_slots: 16,
                ..RuntimeConfig::default()
            },
        )
    }

    fn start_on(addr: SocketAddr, config: RuntimeConfig) -> Result<RuntimeProc> {
        let listener = std::net::TcpListener::bind(addr)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            if let Err(e) = wisp_runtime::serve(config, listener, token).await {
                eprintln!("runtime {addr} failed: {e:#}");
            }
        });
        Ok(RuntimeProc {
            addr,
            url: format!("http://{addr}"),
            rt: Some(rt),
            shutdown,
        })
    }

    /// Kills it: every task and socket of the runtime is dropped at once (connections are
    /// reset, new ones refused), as when the process dies.
    pub fn kill(&mut self) {
        self.shutdown.cancel();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    /// Waits (up to 30 s) until the runtime's `/health` reports at least `n` activations in flight.
    pub async fn wait_in_flight(&self, n: u64) -> Result<()> {
        for _ in 0..3000 {
            let health: Value = plain()
                .get(format!("{}/health", self.url))
                .send()
                .await?
                .json()
                .await?;
            if health["inFlight"].as_u64().unwrap_or(0) >= n {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("runtime {} never had {n} activations in flight", self.url)
    }

    /// Waits (up to 30 s) until connecting to the runtime's port is refused.
    pub async fn wait_refused(&self) -> Result<()> {
        for _ in 0..3000 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("runtime {} still accepts connections", self.url)
    }

    /// `wisp_activations_total` summed over statuses, from the runtime's `/metrics`.
    pub async fn activations_total(&self) -> Result<u64> {
        let text = plain()
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        Ok(sum_metric(&text, "wisp_activations_total"))
    }
}

impl Drop for RuntimeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client that never goes through a proxy.
pub fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// Sums every sample of `name` (any labels) in a Prometheus text exposition.
pub fn sum_metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{' | b' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A scheduler serving on `127.0.0.1:0` with a user `alice`.
pub struct SchedulerProc {
    pub addr: SocketAddr,
    pub base: String,
    /// `uuid:key` of user `alice`.
    pub auth: String,
    pub http: reqwest::Client,
    /// The scheduler's shared state (store, balancer, invoker), for tests that go below HTTP.
    pub state: wisp_scheduler::state::AppState,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
    _data: tempfile::TempDir,
}

impl SchedulerProc {
    pub async fn start(runtimes: &[&RuntimeProc]) -> Result<SchedulerProc> {
        Self::start_with(runtimes.iter().map(|r| r.url.clone()).collect()).await
    }

    pub async fn start_with(runtimes: Vec<String>) -> Result<SchedulerProc> {
        let data = tempfile::tempdir()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let config = SchedulerConfig {
            runtimes,
            data_dir: data.path().to_path_buf(),
            runtime_token: Some(TOKEN.into()),
            api_host: Some(base.clone()),
            ..SchedulerConfig::default()
        };
        let scheduler = Scheduler::open(config).await.context("open scheduler")?;
        let auth = scheduler
            .ensure_user("alice", None)
            .await?
            .context("a new user gets a key")?;
        let state = scheduler.state().clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(scheduler.serve(listener, shutdown.clone()));
        Ok(SchedulerProc {
            addr,
            base,
            auth,
            http: reqwest::Client::builder().no_proxy().build()?,
            state,
            shutdown,
            task: Some(task),
            _data: data,
        })
    }

    /// Stops it gracefully and waits.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    fn basic(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(&self.auth)
        )
    }

    /// A request with alice's credentials.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", self.basic())
    }

    /// Creates (or overwrites) action `name` from function `function` with extra document
    /// fields (`annotations`, `limits`, `parameters`...).
    pub async fn deploy(&self, name: &str, function: &str, extra: Value) -> Result<Value> {
        let code = wisp_testkit::function_bytes(function);
        self.deploy_bytes(name, &code, extra).await
    }

    pub async fn deploy_bytes(&self, name: &str, code: &[u8], extra: Value) -> Result<Value> {
        let mut doc = json!({
            "exec": {"kind": "wasm", "code": base64::engine::general_purpose::STANDARD.encode(code), "binary": true},
        });
        if let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) {
            d.extend(e);
        }
        self.put_doc(name, doc).await
    }

    pub async fn put_doc(&self, name: &str, doc: Value) -> Result<Value> {
        let resp = self
            .req(
                reqwest::Method::PUT,
                &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
            )
            .json(&doc)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("PUT action {name}: {status} {body}");
        }
        Ok(body)
    }

    /// `POST .../actions/{name}?{query}` with `params`; the status, the activation-id header and
    /// the JSON body.
    pub async fn invoke(&self, name: &str, query: &str, params: Value) -> Result<Invoked> {
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/namespaces/_/actions/{name}?{query}"),
            )
            .json(&params)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let id = resp
            .headers()
            .get("x-openwhisk-activation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok(Invoked { status, id, body })
    }

    /// `GET .../activations/{id}`, retried until it exists (non-blocking activations).
    pub async fn activation(&self, id: &str) -> Result<Value> {
        for _ in 0..600 {
            let resp = self
                .req(
                    reqwest::Method::GET,
                    &format!("/api/v1/namespaces/_/activations/{id}"),
                )
                .send()
                .await?;
            if resp.status().is_success() {
                return Ok(resp.json().await?);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("activation {id} never appeared")
    }

    /// The activation list of the namespace (`?{query}`).
    pub async fn activations(&self, query: &str) -> Result<Vec<Value>> {
        let resp = self
            .req(
                reqwest::Method::GET,
                &format!("/api/v1/namespaces/_/activations?{query}"),
            )
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("list activations: {status} {body}");
        }
        Ok(body.as_array().cloned().unwrap_or_default())
    }
}

impl Drop for SchedulerProc {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An invoke's answer.
#[derive(Debug)]
pub struct Invoked {
    pub status: u16,
    pub id: Option<String>,
    pub body: Value,
}

/// The value of annotation `key` of an activation record.
pub fn annotation<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record["annotations"]
        .as_array()?
        .iter()
        .rev()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}
