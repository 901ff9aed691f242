//! The HTTP face of a [`Runtime`]: `POST /run`, `POST /prepare`, `DELETE /code/{digest}`,
//! `GET /health`, `/ready`, `/metrics`.

use crate::config::RuntimeConfig;
use crate::error::RunError;
use crate::runtime::Runtime;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::Digest as _;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use wisp_core::run::{CODE_PATH, ErrorBody, PREPARE_PATH, PrepareRequest, RUN_PATH};
use wisp_core::{Digest, RunRequest};

/// The router of `runtime`, without a socket (tests can drive it with `tower::ServiceExt`).
pub fn app(runtime: Runtime) -> Router {
    Router::new()
        .route(RUN_PATH, post(run))
        .route(PREPARE_PATH, post(prepare))
        .route(CODE_PATH, delete(delete_code))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(runtime)
}

/// Builds a [`Runtime`] from `config` and serves it on `listener` until `shutdown` is
/// cancelled; then drains: stops accepting, lets running activations finish, and returns.
pub async fn serve(
    config: RuntimeConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = Runtime::new(config)?;
    serve_runtime(runtime, listener, shutdown).await
}

/// [`serve`] for a `Runtime` the caller already built (and may keep a clone of). HTTP limits
/// and timeouts are `config.http` ([`wisp_serve`]).
pub async fn serve_runtime(
    runtime: Runtime,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if runtime.config().token.is_none() {
        tracing::warn!("no WISP_RUNTIME_TOKEN set: /run accepts requests without a token");
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, user_memory_mb = runtime.config().user_memory_mb, "wisp-runtime listening");
    // Draining starts with the shutdown: /run answers 503 while the server finishes what is in
    // flight.
    let draining = runtime.clone();
    let drain_on = shutdown.clone();
    let drainer = tokio::spawn(async move {
        drain_on.cancelled().await;
        tracing::info!("draining: finishing in-flight activations");
        draining.drain();
    });
    let limits = runtime.config().http.clone();
    let served = wisp_serve::serve(listener, app(runtime.clone()), limits, shutdown.clone()).await;
    drainer.abort();
    if shutdown.is_cancelled() {
        runtime.drain();
    }
    served?;
    tracing::info!(%addr, "wisp-runtime stopped");
    Ok(())
}

/// An error answer: `{error, code}` with the status its type maps to.
pub struct ApiError(StatusCode, ErrorBody);

impl ApiError {
    fn new(status: StatusCode, code: &str, error: impl Into<String>) -> Self {
        ApiError(status, ErrorBody::new(code, error))
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        let status = match &e {
            RunError::BadRequest(_) | RunError::DigestMismatch { .. } => StatusCode::BAD_REQUEST,
            RunError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RunError::CodeUnknown(_) => StatusCode::CONFLICT,
            RunError::InvalidModule(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RunError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RunError::Draining => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, ErrorBody::new(e.code(), e.to_string()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

fn check_token(runtime: &Runtime, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = runtime.config().token.as_deref() else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    // Hashed first so that the comparison's time depends on neither token's length or content.
    let hash = |t: &str| sha2::Sha256::digest(t.as_bytes());
    if bool::from(hash(given).as_slice().ct_eq(hash(expected).as_slice())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (WISP_RUNTIME_TOKEN)",
        ))
    }
}

/// Reads the body (up to the configured maximum) and parses it as `T`.
async fn read_json<T: DeserializeOwned>(runtime: &Runtime, body: Body) -> Result<T, ApiError> {
    let max = runtime.config().max_body_bytes;
    let bytes: Bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {max} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        // Name the usual mistake precisely.
        let params_not_object = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("params").map(|p| !p.is_object()))
            .unwrap_or(false);
        let msg = if params_not_object {
            "`params` must be a JSON object".to_string()
        } else {
            format!(
                "the request body is not a valid {}: {e}",
                short_type_name::<T>()
            )
        };
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", msg)
    })
}

/// The identity strings become the guest's `__OW_*` environment variables, which cannot hold a
/// NUL byte (the guest would see them cut short): such a request is malformed (400).
fn check_env_values(req: &RunRequest) -> Result<(), ApiError> {
    let fields = [
        ("namespace", &req.namespace),
        ("action", &req.action),
        ("version", &req.version),
        ("api_host", &req.api_host),
    ];
    match fields.iter().find(|(_, v)| v.contains('\0')) {
        Some((name, _)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("`{name}` contains a NUL character, which an environment variable cannot hold"),
        )),
        None => Ok(()),
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

async fn run(State(runtime): State<Runtime>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    check_token(&runtime, &parts.headers)?;
    if runtime.is_draining() {
        return Err(RunError::Draining.into());
    }
    let run_req: RunRequest = read_json(&runtime, body).await?;
    check_env_values(&run_req)?;
    let resp = runtime.run(run_req).await?;
    Ok(axum::Json(resp).into_response())
}

async fn prepare(State(runtime): State<Runtime>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    check_token(&runtime, &parts.headers)?;
    let prep: PrepareRequest = read_json(&runtime, body).await?;
    let resp = runtime.prepare_request(&prep).await?;
    Ok(axum::Json(resp).into_response())
}

/// `DELETE /code/{digest}`: 204 whether or not the digest was cached (idempotent).
async fn delete_code(
    State(runtime): State<Runtime>,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_token(&runtime, &headers)?;
    let digest: Digest = digest.parse().map_err(|e: wisp_core::digest::BadDigest| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
    })?;
    let was_cached = runtime.remove_code(&digest).await;
    tracing::debug!(%digest, was_cached, "code removed from the caches");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `userMemory` (the budget) and `reservedMemory` in MB; `inFlight` activations being served;
/// `waiting` of them waiting for memory.
async fn health(State(runtime): State<Runtime>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "userMemory": runtime.config().user_memory_mb,
        "reservedMemory": runtime.reserved_memory_mb(),
        "inFlight": runtime.in_flight(),
        "waiting": runtime.waiting(),
    }))
    .into_response()
}

async fn ready(State(runtime): State<Runtime>) -> Response {
    if runtime.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "draining"})),
        )
            .into_response()
    } else {
        axum::Json(json!({"status": "ready"})).into_response()
    }
}

async fn metrics(State(runtime): State<Runtime>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        runtime.metrics_text(),
    )
        .into_response()
}
