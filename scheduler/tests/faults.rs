//! Fault tests with real processes (issue 7): the `wisp-scheduler` binary of this crate and
//! `wisp-runtime` binaries (built from the workspace on first use, see [`runtime_bin`]), spoken to
//! over HTTP on 127.0.0.1, killed with `SIGKILL` and restarted on the same data dir.
//!
//! - [`a_runtime_killed_mid_activation_ends_it_as_internal_error_and_later_invokes_reroute`]
//! - [`kill_9_of_the_scheduler_under_load_loses_nothing_acknowledged`]
//! - [`an_unwritable_store_answers_errors_keeps_reads_and_recovers_intact`]: the scheduler runs
//!   with `SIGXFSZ` ignored, and its `RLIMIT_FSIZE` is lowered to 1 byte with `prlimit --pid`
//!   (util-linux), so every write of SQLite past the first byte of a file fails (`EFBIG`): a
//!   disk that takes no more data, which works as root (who ignores `chmod`) and needs no mount.
//!   Raising the limit again is the disk getting space back.
//! - [`a_slow_runtime_is_never_sent_more_than_its_memory_slots`]
//!
//! Each test owns its processes (killed on drop) and temp dirs. No assertion is about time.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use futures::StreamExt as _;
use serde_json::{Value, json};

const TOKEN: &str = "faults-runtime-token";

/// The `wisp-runtime` binary of the workspace, built once per test process with the profile and
/// target dir of this test binary (a no-op when it is up to date).
fn runtime_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        // <target>/<profile>/deps/faults-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary under <target>/<profile>/deps");
        let target = profile_dir.parent().expect("target dir");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile dir name");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(wisp_testkit::workspace_root())
            .args(["build", "-p", "wisp-runtime", "--bin", "wisp-runtime"])
            .arg("--target-dir")
            .arg(target);
        match profile {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let out = build.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build -p wisp-runtime failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join("wisp-runtime");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// The `wisp-scheduler` binary: this crate's, or `$WISP_FAULTS_SCHEDULER_BIN` (to run the
/// tests against another build).
fn scheduler_bin() -> PathBuf {
    std::env::var_os("WISP_FAULTS_SCHEDULER_BIN")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || env!("CARGO_BIN_EXE_wisp-scheduler").into(),
            PathBuf::from,
        )
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process, killed with `SIGKILL` when dropped. Its stderr is forwarded to the test's.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command) -> Result<Proc> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "warn");
        let mut child = cmd.spawn().with_context(|| format!("spawn {name}"))?;
        let stderr = child.stderr.take().context("stderr pipe")?;
        let prefix = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                eprintln!("[{prefix}] {line}");
            }
        });
        Ok(Proc {
            name: name.to_string(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`, and reaps it.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `SIGTERM` and waits for a clean exit.
    fn terminate(&mut self) -> Result<()> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        ensure!(sent.success(), "kill -TERM {} failed", self.name);
        let status = self.child.wait()?;
        ensure!(status.success(), "{} exited with {status}", self.name);
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

async fn wait_healthy(addr: SocketAddr) -> Result<()> {
    tokio::task::spawn_blocking(move || wisp_testkit::wait_healthy(addr)).await?
}

/// A `wisp-runtime` process.
struct Runtime {
    proc: Proc,
    url: String,
    _cache: tempfile::TempDir,
}

impl Runtime {
    async fn start(user_memory_mb: u64) -> Result<Runtime> {
        let port = free_port();
        let cache = tempfile::tempdir()?;
        let mut cmd = Command::new(runtime_bin());
        cmd.args(["--port", &port.to_string()])
            .args(["--user-memory", &user_memory_mb.to_string()])
            .arg("--cache-dir")
            .arg(cache.path())
            .env("WISP_RUNTIME_TOKEN", TOKEN);
        let proc = Proc::spawn(&format!("runtime:{port}"), cmd)?;
        wait_healthy(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        Ok(Runtime {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            _cache: cache,
        })
    }

    /// `inFlight` of the runtime's `/health`.
    async fn in_flight(&self) -> Result<u64> {
        let health: Value = http()
            .get(format!("{}/health", self.url))
            .send()
            .await?
            .json()
            .await?;
        health["inFlight"].as_u64().context("inFlight in /health")
    }

    /// `wisp_activations_total` over all statuses, from the runtime's `/metrics`.
    async fn activations_total(&self) -> Result<u64> {
        let text = http()
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("wisp_activations_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }
}

/// A `wisp-scheduler` process with user `alice`, started through `sh` so that `SIGXFSZ` is
/// ignored (an ignored signal stays ignored across `exec`): a write past `RLIMIT_FSIZE` then
/// fails with `EFBIG` instead of killing the process.
struct Scheduler {
    proc: Proc,
    base: String,
    auth: String,
    http: reqwest::Client,
}

impl Scheduler {
    async fn start(data: &Path, runtimes: &[&Runtime], auth: &str) -> Result<Scheduler> {
        Self::start_with(data, runtimes, auth, &[]).await
    }

    /// [`Scheduler::start`] with more flags (`--store`, `--instance-id`...).
    async fn start_with(
        data: &Path,
        runtimes: &[&Runtime],
        auth: &str,
        extra: &[&str],
    ) -> Result<Scheduler> {
        let port = free_port();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\""])
            .arg(scheduler_bin())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--data-dir")
            .arg(data)
            .args(["--initial-user", "alice", "--initial-auth", auth])
            .args(["--kubernetes", "off"])
            .args(extra)
            .env("WISP_RUNTIME_TOKEN", TOKEN)
            .env_remove("WISP_RUNTIMES")
            .env_remove("WISP_STORE");
        for r in runtimes {
            cmd.args(["--runtime", &r.url]);
        }
        let proc = Proc::spawn(&format!("scheduler:{port}"), cmd)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_healthy(addr).await?;
        let s = Scheduler {
            proc,
            base: format!("http://{addr}"),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(auth)
            ),
            http: http(),
        };
        s.wait_ready(runtimes.len()).await?;
        Ok(s)
    }

    /// Waits (up to 30 s) until `/ready` counts `n` healthy runtimes.
    async fn wait_ready(&self, n: usize) -> Result<()> {
        let mut last = Value::Null;
        for _ in 0..300 {
            if let Ok(resp) = self.http.get(format!("{}/ready", self.base)).send().await {
                last = resp.json().await.unwrap_or(Value::Null);
                if last["healthyRuntimes"].as_u64() == Some(n as u64) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the scheduler never saw {n} healthy runtimes: {last}")
    }

    /// Sets the process's soft `RLIMIT_FSIZE` (`None`: unlimited) with util-linux `prlimit`.
    fn limit_file_size(&self, bytes: Option<u64>) -> Result<()> {
        let soft = bytes.map_or("unlimited".to_string(), |b| b.to_string());
        let out = Command::new("prlimit")
            .args(["--pid", &self.proc.pid().to_string()])
            .arg(format!("--fsize={soft}:"))
            .output()
            .context("run prlimit (util-linux)")?;
        ensure!(
            out.status.success(),
            "prlimit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth)
    }

    /// `PUT` action `name` (overwrite) with the code of `function`: the status and JSON body.
    async fn put_action(&self, name: &str, function: &str, extra: Value) -> Result<(u16, Value)> {
        let code = wisp_testkit::function_bytes(function);
        let mut doc = json!({"exec": {
            "kind": "wasm",
            "code": base64::engine::general_purpose::STANDARD.encode(code),
            "binary": true,
        }});
        if let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) {
            d.extend(e);
        }
        let resp = self
            .req(
                reqwest::Method::PUT,
                &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
            )
            .json(&doc)
            .send()
            .await?;
        Ok((
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        ))
    }

    /// Blocking invoke: the status, the `x-openwhisk-activation-id` header and the body.
    async fn invoke(&self, name: &str, params: Value) -> Result<Invoked> {
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/namespaces/_/actions/{name}?blocking=true"),
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

    /// `GET {path}` (under `/api/v1/namespaces/_/`): the status and JSON body.
    async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let resp = self
            .req(
                reqwest::Method::GET,
                &format!("/api/v1/namespaces/_/{path}"),
            )
            .send()
            .await?;
        Ok((
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        ))
    }

    /// Non-blocking invoke: the status and activation id of the 202.
    async fn invoke_async(&self, name: &str, params: Value) -> Result<(u16, Option<String>)> {
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/namespaces/_/actions/{name}"),
            )
            .json(&params)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body["activationId"].as_str().map(str::to_string)))
    }

    /// The scheduler's `/metrics` text.
    async fn metrics(&self) -> Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?)
    }
}

#[derive(Debug)]
struct Invoked {
    status: u16,
    id: Option<String>,
    body: Value,
}

fn fresh_auth() -> String {
    format!("{}:{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4().simple())
}

/// Asserts an HTTP error body is OpenWhisk's `{error, code}` with both filled in.
fn assert_error_body(body: &Value) {
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty())
            && body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "want {{error, code}}, got {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_killed_mid_activation_ends_it_as_internal_error_and_later_invokes_reroute()
-> Result<()> {
    let mut runtimes = [Runtime::start(2048).await?, Runtime::start(2048).await?];
    let data = tempfile::tempdir()?;
    let s = Arc::new(
        Scheduler::start(data.path(), &[&runtimes[0], &runtimes[1]], &fresh_auth()).await?,
    );
    let (status, body) = s
        .put_action("sleep", "sleep", json!({"limits": {"memory": 128}}))
        .await?;
    assert_eq!(status, 200, "{body}");
    let warm = s.invoke("sleep", json!({"ms": 0})).await?;
    assert_eq!(warm.status, 200, "{warm:?}");

    let running = {
        let s = Arc::clone(&s);
        tokio::spawn(async move { s.invoke("sleep", json!({"ms": 60_000})).await })
    };
    // Whichever runtime got it (its home) shows it in flight.
    let mut victim = None;
    for _ in 0..3000 {
        for (i, r) in runtimes.iter().enumerate() {
            if r.in_flight().await? > 0 {
                victim = Some(i);
            }
        }
        if victim.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let victim = victim.context("no runtime ever ran the sleep activation")?;
    runtimes[victim].proc.kill9();
    let survivor = &runtimes[1 - victim];

    let answer = running.await??;
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(answer.body["response"]["status"], "whisk internal error");
    assert_eq!(answer.body["response"]["success"], false);
    let id = answer.id.clone().context("activation id header")?;
    assert_eq!(answer.body["activationId"], id.as_str());
    let (status, stored) = s.get(&format!("activations/{id}")).await?;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["response"]["status"], "whisk internal error");
    assert_eq!(stored["activationId"], id.as_str());

    let before = survivor.activations_total().await?;
    for i in 0..6 {
        let later = s.invoke("sleep", json!({"ms": 0})).await?;
        assert_eq!(later.status, 200, "invoke {i} after the kill: {later:?}");
        assert_eq!(later.body["response"]["status"], "success");
    }
    assert_eq!(
        survivor.activations_total().await?,
        before + 6,
        "the surviving runtime ran every later invoke"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_scheduler_under_load_loses_nothing_acknowledged() -> Result<()> {
    const CLIENTS: usize = 16;
    let runtime = Runtime::start(8192).await?;
    let data = tempfile::tempdir()?;
    let auth = fresh_auth();
    let s = Arc::new(Scheduler::start(data.path(), &[&runtime], &auth).await?);
    let (status, body) = s.put_action("hello", "hello", json!({})).await?;
    assert_eq!(status, 200, "{body}");

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (s, acked, refused) = (Arc::clone(&s), Arc::clone(&acked), Arc::clone(&refused));
        tasks.spawn(async move {
            loop {
                // A transport error: the scheduler is gone.
                let Ok(answer) = s
                    .invoke("hello", json!({"name": format!("client {c}")}))
                    .await
                else {
                    return;
                };
                if answer.status != 200 {
                    refused.lock().unwrap().push(format!("{answer:?}"));
                    return;
                }
                let id = answer.body["activationId"].as_str().map(str::to_string);
                assert_eq!(id, answer.id, "header and body agree");
                acked.lock().unwrap().push(id.expect("activationId"));
            }
        });
    }
    {
        let (s, created, refused) = (Arc::clone(&s), Arc::clone(&created), Arc::clone(&refused));
        tasks.spawn(async move {
            for i in 0.. {
                let name = format!("made-{i}");
                let Ok((status, body)) = s.put_action(&name, "hello", json!({})).await else {
                    return;
                };
                if status != 200 {
                    refused
                        .lock()
                        .unwrap()
                        .push(format!("PUT {name}: {status} {body}"));
                    return;
                }
                created.lock().unwrap().push(name);
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The clients share the handle: kill by pid, then reap through the handle.
    let killed = Command::new("kill")
        .args(["-KILL", &s.proc.pid().to_string()])
        .status()?;
    assert!(killed.success(), "kill -9 of the scheduler");
    while let Some(done) = tasks.join_next().await {
        done?;
    }
    drop(Arc::into_inner(s).context("the clients are done")?);
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let created = std::mem::take(&mut *created.lock().unwrap());
    let refused = std::mem::take(&mut *refused.lock().unwrap());
    assert!(
        refused.is_empty(),
        "{} answers other than success before the kill, e.g. {:.600}",
        refused.len(),
        refused[0]
    );
    assert!(
        acked.len() >= CLIENTS,
        "the load ran: {} acknowledged",
        acked.len()
    );
    assert!(!created.is_empty(), "actions were created");
    eprintln!(
        "killed the scheduler after {} acknowledged activations and {} created actions",
        acked.len(),
        created.len()
    );

    let s = Arc::new(Scheduler::start(data.path(), &[&runtime], &auth).await?);
    let missing: Vec<String> = futures::stream::iter(acked.iter().cloned())
        .map(|id| {
            let s = Arc::clone(&s);
            async move {
                match s.get(&format!("activations/{id}")).await {
                    Ok((200, r))
                        if r["activationId"] == id.as_str()
                            && r["response"]["status"] == "success" =>
                    {
                        None
                    }
                    other => Some(format!("{id}: {other:?}")),
                }
            }
        })
        .buffer_unordered(16)
        .filter_map(|m| async move { m })
        .collect()
        .await;
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged activations are lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    for name in &created {
        let (status, body) = s.get(&format!("actions/{name}")).await?;
        assert_eq!(status, 200, "acknowledged action {name} is lost: {body}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_store_answers_errors_keeps_reads_and_recovers_intact() -> Result<()> {
    let runtime = Runtime::start(2048).await?;
    let data = tempfile::tempdir()?;
    let mut s = Scheduler::start(data.path(), &[&runtime], &fresh_auth()).await?;
    let (status, body) = s.put_action("hello", "hello", json!({})).await?;
    assert_eq!(status, 200, "{body}");
    let before = s.invoke("hello", json!({})).await?;
    assert_eq!(before.status, 200, "{before:?}");
    let before_id = before.id.context("activation id")?;

    // The disk takes no more data.
    s.limit_file_size(Some(1))?;
    let (status, body) = s.put_action("hello2", "echo", json!({})).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("store_unavailable")),
        "an entity write on a full disk: {body}"
    );
    assert_error_body(&body);
    let refused = s.invoke("hello", json!({})).await?;
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (503, Some("store_unavailable")),
        "an invoke whose record cannot be written is an error, never a lost success: {refused:?}"
    );
    assert_error_body(&refused.body);
    // Reads keep working.
    let (status, body) = s.get("actions/hello").await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.get("actions/hello2").await?;
    assert_eq!(status, 404, "the refused action was not stored: {body}");
    let (status, body) = s.get(&format!("activations/{before_id}")).await?;
    assert_eq!((status, &body["activationId"]), (200, &json!(before_id)));
    let (status, body) = s.get("activations?limit=5").await?;
    assert_eq!(status, 200, "{body}");

    // Space again: everything works.
    s.limit_file_size(None)?;
    let (status, body) = s.put_action("hello2", "echo", json!({})).await?;
    assert_eq!(status, 200, "{body}");
    let after = s.invoke("hello2", json!({"x": 1})).await?;
    assert_eq!(after.status, 200, "{after:?}");
    let after_id = after.id.context("activation id")?;
    let (status, body) = s.get(&format!("activations/{after_id}")).await?;
    assert_eq!(status, 200, "{body}");
    s.proc.terminate()?;

    let db = data.path().join(wisp_scheduler::store::sqlite::DB_FILE);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
        .await?;
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&pool)
        .await?;
    assert_eq!(check, ["ok"], "integrity_check of {}", db.display());
    let actions: i64 = sqlx::query_scalar("SELECT count(*) FROM actions")
        .fetch_one(&pool)
        .await?;
    assert_eq!(actions, 2, "hello and hello2, nothing half-written");
    pool.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_runtime_is_never_sent_more_than_its_memory_slots() -> Result<()> {
    // Two runtimes with room for two 128 MB activations each.
    let runtimes = [Runtime::start(256).await?, Runtime::start(256).await?];
    let data = tempfile::tempdir()?;
    let s = Arc::new(
        Scheduler::start(data.path(), &[&runtimes[0], &runtimes[1]], &fresh_auth()).await?,
    );
    // Until their first ping, the balancer assumes 2048 MB: wait until it learned 256.
    let mut learned = false;
    for _ in 0..300 {
        let text = s.metrics().await?;
        let free: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("wisp_runtime_free_slots"))
            .filter(|l| {
                runtimes
                    .iter()
                    .any(|r| l.contains(&format!("\"{}\"", r.url)))
            })
            .collect();
        if free.len() == 2 && free.iter().all(|l| l.ends_with(" 256")) {
            learned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(learned, "the scheduler never learned the runtimes' 256 MB");
    let (status, body) = s
        .put_action("sleep", "sleep", json!({"limits": {"memory": 128}}))
        .await?;
    assert_eq!(status, 200, "{body}");

    // As many slow activations as there are slots in all: the home runtime's third one must go
    // to the other runtime.
    let running: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.invoke("sleep", json!({"ms": 3000})).await })
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let urls: Vec<String> = runtimes.iter().map(|r| r.url.clone()).collect();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut max = [0u64; 2];
            while !done.load(Ordering::Acquire) {
                for (i, url) in urls.iter().enumerate() {
                    let health: Value = http()
                        .get(format!("{url}/health"))
                        .send()
                        .await?
                        .json()
                        .await?;
                    max[i] = max[i].max(health["inFlight"].as_u64().unwrap_or(0));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            anyhow::Ok(max)
        })
    };
    for r in running {
        let answer = r.await??;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body["response"]["result"]["slept"], 3000);
    }
    done.store(true, Ordering::Release);
    let max = watcher.await??;
    assert!(
        max.iter().all(|&m| m <= 2),
        "a runtime with 2 slots ran {max:?} activations at once"
    );
    assert_eq!(
        max.iter().sum::<u64>(),
        4,
        "all four ran at once, two per runtime: {max:?}"
    );
    for r in &runtimes {
        assert_eq!(r.activations_total().await?, 2, "{} ran two", r.url);
    }
    Ok(())
}

/// Drives non-blocking invokes of `hello` and of a 400 ms `sleep` from 4 clients, kills the
/// scheduler with `SIGKILL` mid-flight, restarts it on the same store, and checks that every
/// acknowledged (202) activation ends as a record: the ones that finished before the kill as
/// they ran, the ones cut off as a whisk internal error saying the scheduler restarted — and
/// that none of those is run again (the runtime's activation count does not move).
async fn acknowledged_non_blocking_activations_survive_kill_9(store: &[&str]) -> Result<()> {
    const CLIENTS: usize = 4;
    // 202s pile up 400 ms sleeps faster than they end: this test is about durability, so the
    // namespace limits are raised out of the way.
    let mut extra = vec![
        "--default-concurrent-invocations",
        "1000000",
        "--default-invocations-per-minute",
        "100000000",
    ];
    extra.extend_from_slice(store);
    let extra = extra.as_slice();
    let runtime = Runtime::start(8192).await?;
    let data = tempfile::tempdir()?;
    let auth = fresh_auth();
    let s = Arc::new(Scheduler::start_with(data.path(), &[&runtime], &auth, extra).await?);
    for (name, function) in [("hello", "hello"), ("sleep", "sleep")] {
        let (status, body) = s.put_action(name, function, json!({})).await?;
        assert_eq!(status, 200, "{body}");
    }
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (s, acked, refused) = (Arc::clone(&s), Arc::clone(&acked), Arc::clone(&refused));
        tasks.spawn(async move {
            for i in 0.. {
                let (name, params) = if (i + c) % 2 == 0 {
                    ("hello", json!({"name": format!("client {c}")}))
                } else {
                    ("sleep", json!({"ms": 400}))
                };
                let Ok((status, id)) = s.invoke_async(name, params).await else {
                    return; // the scheduler is gone
                };
                match (status, id) {
                    (202, Some(id)) => acked.lock().unwrap().push(id),
                    other => {
                        refused.lock().unwrap().push(format!("{other:?}"));
                        return;
                    }
                }
            }
        });
    }
    // Wait for some acknowledgements, then kill mid-flight.
    for _ in 0..300 {
        if acked.lock().unwrap().len() >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed = Command::new("kill")
        .args(["-KILL", &s.proc.pid().to_string()])
        .status()?;
    assert!(killed.success(), "kill -9 of the scheduler");
    while let Some(done) = tasks.join_next().await {
        done?;
    }
    drop(Arc::into_inner(s).context("the clients are done")?);
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let refused = std::mem::take(&mut *refused.lock().unwrap());
    assert!(refused.is_empty(), "refused before the kill: {refused:?}");
    assert!(
        acked.len() >= CLIENTS,
        "the load ran: {} acknowledged",
        acked.len()
    );

    // What the runtime ran, once what the dead scheduler sent it has finished.
    for _ in 0..200 {
        if runtime.in_flight().await? == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ran_before = runtime.activations_total().await?;

    let s = Arc::new(Scheduler::start_with(data.path(), &[&runtime], &auth, extra).await?);
    let results: Vec<std::result::Result<String, String>> =
        futures::stream::iter(acked.iter().cloned())
            .map(|id| {
                let s = Arc::clone(&s);
                async move {
                    match s.get(&format!("activations/{id}")).await {
                        Ok((200, r)) if r["activationId"] == id.as_str() => {
                            Ok(r["response"]["status"].as_str().unwrap_or("").to_string()
                                + " "
                                + r["response"]["result"]["error"].as_str().unwrap_or(""))
                        }
                        other => Err(format!("{id}: {other:?}")),
                    }
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let missing: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged activations have no record, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    let restarted = results
        .iter()
        .flatten()
        .filter(|r| r.starts_with("whisk internal error") && r.contains("restarted"))
        .count();
    for r in results.iter().flatten() {
        assert!(
            r.starts_with("success")
                || (r.starts_with("whisk internal error") && r.contains("restarted")),
            "unexpected end: {r}"
        );
    }
    assert!(
        restarted > 0,
        "some activations were cut off by the kill and recovered"
    );
    eprintln!(
        "{} acknowledged, {restarted} ended as 'scheduler restarted' after kill -9",
        acked.len()
    );
    assert_eq!(
        runtime.activations_total().await?,
        ran_before,
        "no recovered activation ran again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_non_blocking_activation_on_sqlite() -> Result<()> {
    acknowledged_non_blocking_activations_survive_kill_9(&[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_non_blocking_activation_on_postgres() -> Result<()> {
    let Some(db) = wisp_scheduler::store::suite::TestDatabase::create("faults_accepted").await
    else {
        return Ok(());
    };
    // A fixed instance id: the restarted replica finishes its own acceptances at start.
    acknowledged_non_blocking_activations_survive_kill_9(&[
        "--store",
        &db.url,
        "--instance-id",
        "faults-replica-a",
    ])
    .await
}

/// Starts `wisp-scheduler` through `sh` with `umask` and the given flags and environment.
fn spawn_scheduler(umask: &str, args: &[&str], token: Option<&str>) -> Result<Child> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("umask {umask}; exec \"$0\" \"$@\"")])
        .arg(scheduler_bin())
        .args(args)
        .args(["--kubernetes", "off"])
        .env_remove("WISP_RUNTIME_TOKEN")
        .env_remove("WISP_BIND")
        .env_remove("WISP_INSECURE_NO_TOKEN")
        .env_remove("WISP_STORE")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("WISP_RUNTIME_TOKEN", t);
    }
    Ok(cmd.spawn()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_refuses_to_start_without_a_runtime_token() -> Result<()> {
    let data = tempfile::tempdir()?;
    let port = free_port().to_string();
    let dir = data.path().to_str().context("utf-8 temp dir")?;
    let out =
        spawn_scheduler("022", &["--port", &port, "--data-dir", dir], None)?.wait_with_output()?;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WISP_RUNTIME_TOKEN") && stderr.contains("--insecure-no-token"),
        "{stderr}"
    );
    // With the flag it starts (and serves on loopback).
    let mut child = spawn_scheduler(
        "022",
        &["--port", &port, "--data-dir", dir, "--insecure-no-token"],
        None,
    )?;
    let served = wait_healthy(format!("127.0.0.1:{port}").parse()?).await;
    let _ = child.kill();
    let _ = child.wait();
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_listens_on_loopback_and_keeps_its_files_private() -> Result<()> {
    let data = tempfile::tempdir()?;
    let dir = data.path().join("data");
    let port = free_port();
    let mut child = spawn_scheduler(
        "000",
        &[
            "--port",
            &port.to_string(),
            "--data-dir",
            dir.to_str().context("utf-8 temp dir")?,
        ],
        Some(TOKEN),
    )?;
    let checked = async {
        wait_healthy(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        // 127.0.0.2 is loopback too, but a socket bound to 127.0.0.1 does not take its
        // connections, while one bound to 0.0.0.0 would.
        let other = std::net::TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 2], port)),
            Duration::from_secs(2),
        );
        ensure!(
            other.is_err(),
            "the scheduler answers on 127.0.0.2: not bound to loopback only"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        ensure!(mode(&dir)? == 0o700, "data dir mode {:o}", mode(&dir)?);
        for f in ["wisp.db", "wisp.db-wal", "wisp.db-shm"] {
            let path = dir.join(f);
            if path.exists() {
                ensure!(
                    mode(&path)? == 0o600,
                    "{f} mode {:o} under umask 000",
                    mode(&path)?
                );
            } else {
                ensure!(f != "wisp.db", "no wisp.db in the data dir");
            }
        }
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    checked
}
