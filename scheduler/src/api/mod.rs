//! The REST API (OpenWhisk API v1 compatible): the router and the entity handlers.
//!
//! [`router`] builds the whole axum app from an [`AppState`]: namespaces, actions (CRUD here;
//! invoke is `crate::invoke::invoke_route`), packages, triggers (`POST` fires), rules, activations,
//! the namespace's limits ([`limits`]), web actions
//! (`crate::web::web_route`), the admin API, the runtimes' code endpoint, `/health`, `/ready` and
//! `/metrics`. Every error of the API routes is JSON `{error, code}` — axum's own rejections
//! (body too large, method not allowed...) included, via the [`json_errors`] layer. Request bodies
//! are capped at 1 MB (OpenWhisk's limit): 413.

pub mod actions;
pub mod activations;
mod error;
pub mod limits;
pub mod packages;
pub mod rules;
pub mod triggers;

pub use error::{ApiError, TOO_MANY_REQUESTS, code_for_status};

use std::collections::HashMap;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler as _;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{Value, json};
use wisp_core::run::ErrorBody;

use crate::auth::Identity;
use crate::state::AppState;

/// Default `limit` of a listing (OpenWhisk's).
pub const DEFAULT_LIST_LIMIT: u64 = 30;
/// Largest `limit` of a listing (OpenWhisk's).
pub const MAX_LIST_LIMIT: u64 = 200;

/// The whole HTTP app of the scheduler.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let action_routes = || {
        get(actions::get_action)
            // Code may be up to 48 MB; put_action holds the rest of the document to `limit`.
            .put(
                actions::put_action
                    .layer(DefaultBodyLimit::max(wisp_core::run::MAX_ACTION_PUT_BYTES)),
            )
            .delete(actions::delete_action)
            // B: invoke route
            .post(crate::invoke::invoke_route)
    };
    let api = Router::new()
        .route("/", get(root_info))
        .route("/api/v1", get(api_info))
        .route("/api/v1/namespaces", get(list_namespaces))
        .route(
            "/api/v1/namespaces/{ns}/actions",
            get(actions::list_actions),
        )
        .route(
            "/api/v1/namespaces/{ns}/actions/",
            get(actions::list_actions),
        )
        .route("/api/v1/namespaces/{ns}/actions/{name}", action_routes())
        .route(
            "/api/v1/namespaces/{ns}/actions/{pkg}/",
            get(actions::list_actions),
        )
        .route(
            "/api/v1/namespaces/{ns}/actions/{pkg}/{name}",
            action_routes(),
        )
        .route(
            "/api/v1/namespaces/{ns}/packages",
            get(packages::list_packages),
        )
        .route(
            "/api/v1/namespaces/{ns}/packages/{name}",
            get(packages::get_package)
                .put(packages::put_package)
                .delete(packages::delete_package),
        )
        .route(
            "/api/v1/namespaces/{ns}/activations",
            get(activations::list_activations),
        )
        .route(
            "/api/v1/namespaces/{ns}/activations/{id}",
            get(activations::get_activation),
        )
        .route(
            "/api/v1/namespaces/{ns}/activations/{id}/logs",
            get(activations::get_logs),
        )
        .route(
            "/api/v1/namespaces/{ns}/activations/{id}/result",
            get(activations::get_result),
        )
        .route(
            "/api/v1/namespaces/{ns}/triggers",
            get(triggers::list_triggers),
        )
        .route(
            "/api/v1/namespaces/{ns}/triggers/{name}",
            get(triggers::get_trigger)
                .put(triggers::put_trigger)
                .delete(triggers::delete_trigger)
                .post(triggers::fire_trigger),
        )
        .route("/api/v1/namespaces/{ns}/limits", get(limits::get_limits))
        .route("/api/v1/namespaces/{ns}/rules", get(rules::list_rules))
        .route(
            "/api/v1/namespaces/{ns}/rules/{name}",
            get(rules::get_rule)
                .put(rules::put_rule)
                .delete(rules::delete_rule)
                .post(rules::set_rule_status),
        )
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(crate::admin::router())
        .fallback(not_found)
        .layer(middleware::from_fn(json_errors));
    let web = Router::new().route("/api/v1/web/{*path}", any(crate::web::web_route));
    api.merge(web)
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Counts routed requests (and invoke answers) for `/metrics`.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    state.metrics.request(method.as_str(), &route, status);
    if method == axum::http::Method::POST && route.starts_with("/api/v1/namespaces/{ns}/actions/") {
        state.metrics.invoke(status);
    }
    response
}

/// Turns every error answer that is not JSON (axum's rejections: 413, 405, bad paths...) into
/// the API's `{error, code}` JSON.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let body_limit =
        if req.method() == axum::http::Method::PUT && req.uri().path().contains("/actions/") {
            wisp_core::run::MAX_ACTION_PUT_BYTES
        } else {
            wisp_core::run::MAX_PAYLOAD_BYTES
        };
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge { limit: body_limit }.to_string()
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            "The requested method is not allowed for this resource.".into()
        }
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        _ => text,
    };
    let body =
        serde_json::to_vec(&ErrorBody::new(code_for_status(status), message)).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// `GET /`: OpenWhisk's API root document.
async fn root_info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "api_paths": ["/api/v1"],
        "description": "wisp: OpenWhisk-compatible serverless platform running WebAssembly actions",
        "limits": limits_doc(&state),
        "runtimes": {"wasm": [{"kind": "wasm", "default": true, "deprecated": false}]},
    }))
}

fn limits_doc(state: &AppState) -> Value {
    use wisp_core::Limits;
    // The defaults; a namespace's own are at `/api/v1/namespaces/_/limits`.
    let defaults = state.invoker.limiter().defaults();
    json!({
        "actions_per_minute": defaults.invocations_per_minute,
        "triggers_per_minute": defaults.fires_per_minute,
        "concurrent_actions": defaults.concurrent_invocations,
        "min_action_duration": Limits::MIN_TIMEOUT_MS,
        "max_action_duration": Limits::MAX_TIMEOUT_MS,
        "min_action_memory": Limits::MIN_MEMORY_MB * 1024 * 1024,
        "max_action_memory": Limits::MAX_MEMORY_MB * 1024 * 1024,
        "min_action_logs": 0,
        "max_action_logs": Limits::MAX_LOGS_MB * 1024 * 1024,
        "max_action_concurrency": Limits::MAX_CONCURRENCY,
        "max_request_bytes": state.config.max_body_bytes,
    })
}

/// `GET /api/v1`: the API version document.
async fn api_info() -> Json<Value> {
    Json(json!({
        "api_version": "1.0.0",
        "api_version_path": "v1",
        "build": env!("CARGO_PKG_VERSION"),
        "buildno": env!("CARGO_PKG_VERSION"),
        "description": "wisp REST API (OpenWhisk API v1 compatible)",
    }))
}

/// `GET /api/v1/namespaces`: the caller's namespace, as a one-element list.
async fn list_namespaces(identity: Identity) -> Json<Vec<String>> {
    Json(vec![identity.namespace])
}

/// `GET /health`: the process is up.
async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: 200 when at least one runtime of the shared pool is healthy, else 503. Users
/// with dedicated runtimes are listed under `dedicated` (their pools do not make the scheduler
/// ready: their activations fall back to the shared pool when theirs has no healthy runtime).
async fn ready(State(state): State<AppState>) -> Response {
    let pool = |balancer: &crate::balancer::Balancer| {
        json!({
            "healthyRuntimes": balancer.healthy_count(),
            "runtimes": balancer
                .snapshot()
                .iter()
                .map(|r| json!({"url": r.url, "state": r.state.as_str()}))
                .collect::<Vec<_>>(),
        })
    };
    let healthy = state.pools.shared().healthy_count();
    let mut body = pool(state.pools.shared());
    body["ready"] = json!(healthy > 0);
    let dedicated: serde_json::Map<String, Value> = state
        .pools
        .dedicated_users()
        .into_iter()
        .filter_map(|user| state.pools.dedicated(&user).map(|b| (user, pool(&b))))
        .collect();
    body["dedicated"] = Value::Object(dedicated);
    if healthy > 0 {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        body["error"] = json!("no healthy runtime");
        body["code"] = json!("unavailable");
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// `GET /metrics`: Prometheus/OpenMetrics text.
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&state.pools),
    )
        .into_response()
}

// ---- helpers shared by the entity handlers ----

/// Query parameters as OpenWhisk clients send them.
pub type QueryMap = HashMap<String, String>;

/// A boolean query flag: absent/empty/`false` = false, `true` = true, else 400.
pub fn query_flag(q: &QueryMap, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" || v.is_empty() => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "The query parameter '{name}' must be true or false, not {v:?}."
        ))),
    }
}

/// A non-negative integer query parameter, else 400.
pub fn query_number(q: &QueryMap, name: &str) -> Result<Option<u64>, ApiError> {
    match q.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "The query parameter '{name}' must be a non-negative integer, not {v:?}."
            ))
        }),
    }
}

/// The answer of `GET .../{collection}?limit=&skip=&count=`: `{collection: n}` with
/// `count=true` (from `count`), else the window of documents `list(limit, skip)` returns.
pub async fn list_or_count<T, C, L>(
    query: &QueryMap,
    collection: &'static str,
    count: impl FnOnce() -> C,
    list: impl FnOnce(u64, u64) -> L,
) -> Result<Json<Value>, ApiError>
where
    T: serde::Serialize,
    C: std::future::Future<Output = crate::store::StoreResult<u64>>,
    L: std::future::Future<Output = crate::store::StoreResult<Vec<T>>>,
{
    let (limit, skip) = list_window(query, collection)?;
    if query_flag(query, "count")? {
        return Ok(Json(json!({ collection: count().await? })));
    }
    let docs = list(limit, skip).await?;
    Ok(Json(
        serde_json::to_value(docs).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

/// `limit` and `skip` of a listing of `collection`: limit defaults to 30, 0 means the maximum
/// (200), above 200 is refused with OpenWhisk's message.
pub fn list_window(q: &QueryMap, collection: &str) -> Result<(u64, u64), ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        match q.get(name).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(Some(n as u64)),
                Ok(n) if name == "limit" => Err(ApiError::bad_request(format!(
                    "The value '{n}' is not in the range of 0 to {MAX_LIST_LIMIT} for {collection}."
                ))),
                Ok(n) => Err(ApiError::bad_request(format!(
                    "The value '{n}' is not greater than or equal to 0 for {collection}."
                ))),
                Err(_) => Err(ApiError::bad_request(format!(
                    "The value '{v}' is not an integer for {collection}."
                ))),
            },
        }
    };
    let limit = match number("limit")? {
        None => DEFAULT_LIST_LIMIT,
        Some(0) => MAX_LIST_LIMIT,
        Some(n) if n > MAX_LIST_LIMIT => {
            return Err(ApiError::bad_request(format!(
                "The value '{n}' is not in the range of 0 to {MAX_LIST_LIMIT} for {collection}."
            )));
        }
        Some(n) => n,
    };
    let skip = number("skip")?.unwrap_or(0);
    Ok((limit, skip))
}

/// Checks one entity-name path segment (400 when invalid).
pub fn valid_name(kind: &str, name: &str) -> Result<(), ApiError> {
    wisp_core::names::validate(name)
        .map_err(|e| ApiError::bad_request(format!("The {kind} name is not valid: {e}.")))
}

/// Parses a JSON object body: 400 for malformed JSON or anything but an object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "The request content was malformed: expected a JSON object.",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "The request content was malformed: {e}."
        ))),
    }
}

/// Deserializes a JSON object into `T`: 400 naming the offending field on a type mismatch.
pub fn from_object<T: serde::de::DeserializeOwned>(
    object: serde_json::Map<String, Value>,
) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(object))
        .map_err(|e| ApiError::bad_request(format!("The request content was malformed: {e}.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> QueryMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_windows_follow_openwhisk() {
        assert_eq!(list_window(&q(&[]), "actions").unwrap(), (30, 0));
        assert_eq!(
            list_window(&q(&[("limit", "0")]), "actions").unwrap(),
            (200, 0)
        );
        assert_eq!(
            list_window(&q(&[("limit", "5"), ("skip", "7")]), "actions").unwrap(),
            (5, 7)
        );
        for bad in [
            ("limit", "201"),
            ("limit", "-1"),
            ("limit", "x"),
            ("skip", "-3"),
        ] {
            let e = list_window(&q(&[bad]), "actions").unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(e.to_string().contains("for actions"), "{e}");
        }
    }

    #[test]
    fn flags_and_bodies_are_checked() {
        assert!(!query_flag(&q(&[]), "blocking").unwrap());
        assert!(query_flag(&q(&[("blocking", "TRUE")]), "blocking").unwrap());
        assert!(query_flag(&q(&[("blocking", "yes")]), "blocking").is_err());
        assert!(json_object(b"").unwrap().is_empty());
        assert!(json_object(b"{\"a\": 1}").unwrap().contains_key("a"));
        assert!(json_object(b"[]").is_err());
        assert!(json_object(b"{").is_err());
    }

    #[test]
    fn store_errors_map_to_statuses_by_variant() {
        use crate::store::StoreError;
        let conflict = ApiError::from(StoreError::Conflict {
            kind: "action",
            name: "/a/b".into(),
        });
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        let not_empty = ApiError::from(StoreError::PackageNotEmpty("/a/p".into()));
        assert_eq!(
            (not_empty.status(), not_empty.code()),
            (StatusCode::CONFLICT, "package_not_empty")
        );
        let io = ApiError::from(StoreError::WriteFailed("disk full".into()));
        assert_eq!(
            (io.status(), io.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        );
        let corrupt = ApiError::from(StoreError::Corrupt("not json".into()));
        assert_eq!(
            (corrupt.status(), corrupt.code()),
            (StatusCode::INTERNAL_SERVER_ERROR, "store_error")
        );
    }
}
