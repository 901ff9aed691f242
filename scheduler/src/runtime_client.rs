//! The scheduler's side of the scheduler ↔ runtime protocol (`wisp_core::run`).
//!
//! - [`RuntimeClient`]: one keep-alive HTTP/1.1 connection pool (reqwest) shared by the whole
//!   process; cloning it is an `Arc` bump. [`RuntimeClient::run`] sends one activation and
//!   classifies every way it can fail ([`RunFailure`]) so the invoker knows whether the activation
//!   may be rescheduled elsewhere (the connection was refused before anything was sent) or must
//!   end as a `whisk internal error` record (the runtime went away after it got the request).
//! - [`RuntimeProber`]: the balancer's [`Prober`]: `GET /health` pings and the test activation that
//!   brings an unhealthy runtime back, running the built-in [`health_module`] (a tiny WASI command
//!   assembled from WAT once per process).
//!
//! Code reaches a runtime one way only: pushed by the scheduler (`/prepare` when an action is
//! created or updated, inline in `/run` after a `409 code_unknown`). No scheduler route serves
//! code, and no runtime dials a URL a request names.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header;
use serde_json::{Map, json};
use wisp_core::{
    ActivationId, Digest, Limits, RunRequest, RunResponse, Status,
    run::{CODE_UNKNOWN, ErrorBody, PREPARE_PATH, PrepareRequest, PrepareResponse, RUN_PATH},
};

use crate::balancer::{PingInfo, Prober};

/// How long establishing a TCP connection to a runtime may take before the runtime counts as
/// unreachable (the request was then never sent, so the activation can go elsewhere).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of a `/health` ping.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of a `/prepare` (compiling a large module can take seconds on 2 cores).
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of the health test activation.
pub const TEST_ACTIVATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `/run` did not give back a [`RunResponse`].
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// No connection could be made: the request was never sent, nothing ran. The caller marks the
    /// runtime offline and schedules the activation on another one.
    #[error("runtime {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    /// 503: the runtime is draining (shutting down) and refused the activation before running
    /// it. Like [`RunFailure::Unreachable`], the activation may go to another runtime.
    #[error("runtime {url} is draining: {message}")]
    Draining { url: String, message: String },
    /// The runtime lacks the code and was given no way to get it (409 `code_unknown`): send the
    /// request again with the code inline.
    #[error("runtime {url} does not know the code")]
    CodeUnknown { url: String },
    /// The request was sent but no answer came back (connection reset, runtime died, or no answer
    /// within the timeout): the activation's fate is unknown, it ends as `whisk internal error`.
    #[error("lost the runtime {url} during the activation: {message}")]
    Lost {
        url: String,
        message: String,
        timed_out: bool,
    },
    /// The runtime answered but refused to run it (non-200 other than `code_unknown`), or answered
    /// something that is not a [`RunResponse`].
    #[error("runtime {url} answered {status}: {message}")]
    Rejected {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
}

impl RunFailure {
    /// Whether the activation certainly did not run there (nothing was sent, or the runtime
    /// refused it while draining), so it may run elsewhere.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            RunFailure::Unreachable { .. } | RunFailure::Draining { .. }
        )
    }
}

/// Why `/prepare` failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareFailure {
    /// 422: the runtime says the code is not a valid action; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// The runtime could not be reached or answered something else; says nothing about the code.
    #[error("runtime {url}: {message}")]
    Unavailable { url: String, message: String },
}

/// The keep-alive HTTP client to every runtime. One per process; clones share the pool.
#[derive(Clone)]
pub struct RuntimeClient {
    http: reqwest::Client,
    /// `Bearer <token>`, precomputed.
    authorization: Option<Arc<str>>,
}

impl RuntimeClient {
    /// Builds the client. `token` is `WISP_RUNTIME_TOKEN`, sent as a bearer token on every request.
    pub fn new(token: Option<&str>) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            // Under the runtimes' own idle keep-alive timeout (20 s), so the client never
            // reuses a connection the runtime is closing.
            .pool_idle_timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        RuntimeClient {
            http,
            authorization: token
                .filter(|t| !t.is_empty())
                .map(|t| format!("Bearer {t}").into()),
        }
    }

    fn post(&self, url: &str, path: &str) -> reqwest::RequestBuilder {
        self.authorized(self.http.post(join(url, path)))
    }

    fn authorized(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.authorization {
            Some(auth) => rb.header(header::AUTHORIZATION, auth.as_ref()),
            None => rb,
        }
    }

    /// `DELETE {url}/code/{digest}`: the runtime drops the compiled code of `digest` from its
    /// memory and disk caches (no action uses it any more). A runtime that never had it is fine.
    pub async fn forget(&self, url: &str, digest: &Digest) -> Result<(), String> {
        let response = self
            .authorized(self.http.delete(join(url, &format!("/code/{digest}"))))
            .timeout(PING_TIMEOUT)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        match response.status() {
            s if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => Ok(()),
            s => Err(format!("DELETE /code answered HTTP {}", s.as_u16())),
        }
    }

    /// `POST {url}/run`. `timeout` bounds the whole exchange (use the action's timeout plus a
    /// grace: the runtime enforces the action's own limit and answers with a developer error).
    pub async fn run(
        &self,
        url: &str,
        request: &RunRequest,
        timeout: Duration,
    ) -> Result<RunResponse, RunFailure> {
        let body = serde_json::to_vec(request).map_err(|e| RunFailure::Rejected {
            url: url.to_string(),
            status: 0,
            code: "serialize".into(),
            message: e.to_string(),
        })?;
        let sent = self
            .post(url, RUN_PATH)
            .header(header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(transport_failure(url, e)),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Err(transport_failure(url, e)),
        };
        if status == reqwest::StatusCode::OK {
            return serde_json::from_slice::<RunResponse>(&bytes).map_err(|e| {
                RunFailure::Rejected {
                    url: url.to_string(),
                    status: 200,
                    code: "bad_response".into(),
                    message: format!("the runtime's answer is not a run response: {e}"),
                }
            });
        }
        let (code, message) = error_body(&bytes, status);
        if status == reqwest::StatusCode::CONFLICT && code == CODE_UNKNOWN {
            return Err(RunFailure::CodeUnknown {
                url: url.to_string(),
            });
        }
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Err(RunFailure::Draining {
                url: url.to_string(),
                message,
            });
        }
        Err(RunFailure::Rejected {
            url: url.to_string(),
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// `POST {url}/prepare` with the code inline: compiles and caches it ahead of the first invoke.
    pub async fn prepare(
        &self,
        url: &str,
        digest: &Digest,
        code: &[u8],
    ) -> Result<PrepareResponse, PrepareFailure> {
        let request = PrepareRequest {
            digest: digest.clone(),
            code: Some(base64::engine::general_purpose::STANDARD.encode(code)),
        };
        let unavailable = |message: String| PrepareFailure::Unavailable {
            url: url.to_string(),
            message,
        };
        let response = self
            .post(url, PREPARE_PATH)
            .timeout(PREPARE_TIMEOUT)
            .json(&request)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        match status {
            reqwest::StatusCode::OK => serde_json::from_slice(&bytes)
                .map_err(|e| unavailable(format!("bad prepare answer: {e}"))),
            reqwest::StatusCode::UNPROCESSABLE_ENTITY => {
                Err(PrepareFailure::Invalid(error_body(&bytes, status).1))
            }
            _ => Err(unavailable(format!(
                "HTTP {}: {}",
                status.as_u16(),
                error_body(&bytes, status).1
            ))),
        }
    }

    /// `GET {url}/health`.
    pub async fn health(&self, url: &str) -> Result<PingInfo, String> {
        let response = self
            .http
            .get(join(url, "/health"))
            .timeout(PING_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("health answered HTTP {}", status.as_u16()));
        }
        response
            .json::<PingInfo>()
            .await
            .map_err(|e| format!("bad health body (want {{status, userMemory, inFlight}}): {e}"))
    }
}

/// Classifies a reqwest error: connect failures happened before anything was sent.
fn transport_failure(url: &str, e: reqwest::Error) -> RunFailure {
    if e.is_connect() {
        RunFailure::Unreachable {
            url: url.to_string(),
            message: error_chain(&e),
        }
    } else {
        RunFailure::Lost {
            url: url.to_string(),
            timed_out: e.is_timeout(),
            message: error_chain(&e),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// `(code, message)` of a non-200 answer: the `{error, code}` body, or the raw text.
fn error_body(bytes: &[u8], status: reqwest::StatusCode) -> (String, String) {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => (body.code, body.error),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                text.chars().take(1024).collect()
            };
            (format!("http_{}", status.as_u16()), message)
        }
    }
}

fn join(base: &str, path: &str) -> String {
    let mut s = String::with_capacity(base.len() + path.len());
    s.push_str(base.trim_end_matches('/'));
    s.push_str(path);
    s
}

/// The built-in health test action: a WASI command whose `_start` writes `{"ok":true}` to stdout.
pub struct HealthModule {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    /// `bytes` in base64, for sending inline.
    pub base64: String,
}

/// The WAT source of the health test action.
pub const HEALTH_MODULE_WAT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"ok\":true}\n")
  (func (export "_start")
    ;; one iovec at offset 0: {buf = 16, len = 12}; bytes written go to offset 8
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 12))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

static HEALTH_MODULE: LazyLock<HealthModule> = LazyLock::new(|| {
    let bytes =
        wat::parse_str(HEALTH_MODULE_WAT).expect("the built-in health module's WAT is valid");
    HealthModule {
        digest: Digest::of(&bytes),
        base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
        bytes,
    }
});

/// The health test module, assembled on first use (once per process).
pub fn health_module() -> &'static HealthModule {
    &HEALTH_MODULE
}

/// OpenWhisk's name for the health test action.
pub const HEALTH_ACTION: &str = "/whisk.system/invokerHealthTestAction0";

/// The balancer's [`Prober`]: pings with `GET /health` and runs the health test action.
#[derive(Clone)]
pub struct RuntimeProber {
    client: RuntimeClient,
}

impl RuntimeProber {
    pub fn new(client: RuntimeClient) -> Self {
        RuntimeProber { client }
    }

    /// Runs the health test action on `url`: `/run` without code, and again with the code inline
    /// when the runtime asks for it. Ok when it succeeds with `{"ok": true}`.
    pub async fn test_activation(&self, url: &str) -> Result<(), String> {
        let module = health_module();
        let mut request = RunRequest {
            activation_id: ActivationId::generate(),
            namespace: "whisk.system".into(),
            action: HEALTH_ACTION.into(),
            version: "0.0.1".into(),
            digest: module.digest.clone(),
            code: None,
            limits: Limits {
                timeout: 5_000,
                memory: Limits::MIN_MEMORY_MB,
                logs: 1,
                concurrency: 1,
            },
            params: Map::new(),
            api_host: String::new(),
        };
        let mut answer = self
            .client
            .run(url, &request, TEST_ACTIVATION_TIMEOUT)
            .await;
        if matches!(answer, Err(RunFailure::CodeUnknown { .. })) {
            request.code = Some(module.base64.clone());
            answer = self
                .client
                .run(url, &request, TEST_ACTIVATION_TIMEOUT)
                .await;
        }
        let response = answer.map_err(|e| e.to_string())?;
        if response.response.status == Status::Success
            && response.response.result == json!({"ok": true})
        {
            Ok(())
        } else {
            Err(format!(
                "health test action ended with {}: {}",
                response.response.status, response.response.result
            ))
        }
    }
}

impl Prober for RuntimeProber {
    fn ping(&self, url: &str) -> impl Future<Output = Result<PingInfo, String>> + Send {
        let client = self.client.clone();
        let url = url.to_string();
        async move { client.health(&url).await }
    }

    fn test_activation(&self, url: &str) -> impl Future<Output = Result<(), String>> + Send {
        let this = self.clone();
        let url = url.to_string();
        async move { RuntimeProber::test_activation(&this, &url).await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_module_is_a_wasi_command() {
        let m = health_module();
        assert!(m.bytes.starts_with(b"\0asm"));
        assert_eq!(m.digest, Digest::of(&m.bytes));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&m.base64)
                .unwrap(),
            m.bytes
        );
        // Same module, same digest: runtimes cache it once.
        assert_eq!(health_module().digest, m.digest);
    }

    #[test]
    fn error_bodies_and_urls() {
        let (code, message) = error_body(
            br#"{"error":"no such code","code":"code_unknown"}"#,
            reqwest::StatusCode::CONFLICT,
        );
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("code_unknown", "no such code")
        );
        let (code, message) = error_body(b"  oops ", reqwest::StatusCode::BAD_GATEWAY);
        assert_eq!((code.as_str(), message.as_str()), ("http_502", "oops"));
        let (_, message) = error_body(b"", reqwest::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(message, "HTTP 503");
        assert_eq!(join("http://a:1/", RUN_PATH), "http://a:1/run");
        assert_eq!(join("http://a:1", RUN_PATH), "http://a:1/run");
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_not_lost() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = RuntimeClient::new(None);
        let request = RunRequest {
            activation_id: ActivationId::generate(),
            namespace: "ns".into(),
            action: "/ns/a".into(),
            version: "0.0.1".into(),
            digest: health_module().digest.clone(),
            code: None,
            limits: Limits::default(),
            params: Map::new(),
            api_host: String::new(),
        };
        let failure = client
            .run(&url, &request, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(failure.never_sent(), "{failure:?}");
    }

    #[tokio::test]
    async fn a_connection_dropped_after_the_request_is_lost() {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // A "runtime" that reads the request and dies without answering.
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = socket.read(&mut buf).await;
            drop(socket);
        });
        let request = RunRequest {
            activation_id: ActivationId::generate(),
            namespace: "ns".into(),
            action: "/ns/a".into(),
            version: "0.0.1".into(),
            digest: health_module().digest.clone(),
            code: None,
            limits: Limits::default(),
            params: Map::new(),
            api_host: String::new(),
        };
        let failure = RuntimeClient::new(None)
            .run(&url, &request, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(
                failure,
                RunFailure::Lost {
                    timed_out: false,
                    ..
                }
            ),
            "{failure:?}"
        );
    }
}
