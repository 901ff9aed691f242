//! The admin API for users (what `wisp admin user add|delete|list` call), guarded by the admin
//! key: `Authorization: Bearer <WISP_ADMIN_KEY>` (401 otherwise; 403 "admin API disabled" when no
//! admin key is configured).
//!
//! - `POST /admin/v1/users` `{"name": "alice"}` (optional `"auth": "uuid:key"`, optional
//!   `"dedicatedRuntimes": N`) → 201 `{name, namespace, uuid, key, auth, dedicatedRuntimes}`; 409
//!   when the user exists. On Kubernetes it also applies namespace `wisp-user-NAME` (see
//!   [`crate::kube`]); if that fails the user is removed again and the answer is 500. N > 0
//!   without Kubernetes, or over the maximum, is a 400.
//! - `GET /admin/v1/users` → `[{name, namespace, uuid}]`.
//! - `GET /admin/v1/users/{name}` → `{name, namespace, uuid}` / 404.
//! - `DELETE /admin/v1/users/{name}` → 200 (the user, its namespace's entities and activations
//!   are deleted; on Kubernetes first its `wisp-user-NAME` namespace) / 404.
//! - `GET /admin/v1/users/{name}/limits` → 200 `{"invocationsPerMinute": N,
//!   "concurrentInvocations": N, "firesPerMinute": N}`: the namespace limits in force (the
//!   user's own, else the scheduler's defaults), for the namespace as a whole / 404.
//! - `PUT /admin/v1/users/{name}/limits` with any subset of those keys, each a whole number
//!   ≥ 1 (at most 4294967295) or `null` (back to the default) → 200 with the limits in force
//!   afterwards; keys left out keep their value. Zero, negative, fractional or non-numeric
//!   values and unknown keys → 400 naming the key; unknown user → 404. Every scheduler replica
//!   applies the change at once (the limits are cached with the user and invalidated like it).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use crate::activation::limits::EffectiveLimits;
use crate::api::{ApiError, from_object, json_object};
use crate::state::AppState;
use crate::store::{Credentials, LimitsUpdate, StoreError, User};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/users", post(add_user).get(list_users))
        .route("/admin/v1/users/{name}", get(get_user).delete(delete_user))
        .route(
            "/admin/v1/users/{name}/limits",
            get(get_limits).put(put_limits),
        )
}

fn check_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.config.admin_key.as_deref().filter(|k| !k.is_empty()) else {
        return Err(ApiError::AdminDisabled);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if presented.as_bytes().ct_eq(expected.as_bytes()).into() {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Checks a user name: an OpenWhisk entity name without spaces (it becomes a namespace).
pub fn validate_user_name(name: &str) -> Result<(), ApiError> {
    wisp_core::names::validate(name)
        .map_err(|e| ApiError::bad_request(format!("The user name is not valid: {e}.")))?;
    if name.contains(' ') || name == "_" {
        return Err(ApiError::bad_request(format!(
            "The user name {name:?} is not valid: it becomes a namespace (no spaces, not '_')."
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct AddUser {
    name: String,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default, rename = "dedicatedRuntimes")]
    dedicated_runtimes: u32,
}

async fn add_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_admin(&state, &headers)?;
    let req: AddUser = from_object(json_object(&body)?)?;
    validate_user_name(&req.name)?;
    state
        .provisioner
        .check_user(&req.name, req.dedicated_runtimes)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let creds = match req.auth.as_deref() {
        None => state
            .store
            .create_user(&req.name)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => {
                    ApiError::Conflict(format!("The user '{}' already exists.", req.name))
                }
                other => other.into(),
            })?,
        Some(auth) => {
            let creds = Credentials::parse(auth)
                .ok_or_else(|| ApiError::bad_request("auth must be 'uuid:key'."))?;
            if state.store.get_user(&req.name).await?.is_some() {
                return Err(ApiError::Conflict(format!(
                    "The user '{}' already exists.",
                    req.name
                )));
            }
            state.store.set_user_key(&req.name, &creds).await?;
            creds
        }
    };
    if let Err(e) = state
        .provisioner
        .add_user(&req.name, &creds.auth(), req.dedicated_runtimes)
        .await
    {
        tracing::error!(user = %req.name, error = %e, "cannot provision the user's namespace");
        if let Err(undo) = state.store.delete_user(&req.name).await {
            tracing::error!(user = %req.name, error = %undo, "cannot remove the user again");
        }
        return Err(ApiError::Internal(format!(
            "cannot create the Kubernetes namespace of user '{}': {e}",
            req.name
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": req.name,
            "namespace": req.name,
            "uuid": creds.uuid,
            "key": creds.key,
            "auth": creds.auth(),
            "dedicatedRuntimes": req.dedicated_runtimes,
        })),
    ))
}

async fn list_users(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<User>>, ApiError> {
    check_admin(&state, &headers)?;
    Ok(Json(state.store.list_users().await?))
}

async fn get_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<User>, ApiError> {
    check_admin(&state, &headers)?;
    Ok(Json(
        state
            .store
            .get_user(&name)
            .await?
            .ok_or(ApiError::NotFound)?,
    ))
}

async fn delete_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&state, &headers)?;
    if state.provisioner.is_enabled() {
        // Namespace first: if that fails the user is still there and a retry deletes both.
        if state.store.get_user(&name).await?.is_none() {
            return Err(ApiError::NotFound);
        }
        state.provisioner.delete_user(&name).await.map_err(|e| {
            ApiError::Internal(format!(
                "cannot delete the Kubernetes namespace of user '{name}': {e}"
            ))
        })?;
    }
    if state.store.delete_user(&name).await? {
        Ok(Json(json!({"name": name, "deleted": true})))
    } else {
        Err(ApiError::NotFound)
    }
}

/// The keys of `PUT .../limits`.
const LIMIT_KEYS: [&str; 3] = [
    "invocationsPerMinute",
    "concurrentInvocations",
    "firesPerMinute",
];

/// Parses a `PUT .../limits` body (see the module docs).
pub fn parse_limits_update(body: &[u8]) -> Result<LimitsUpdate, ApiError> {
    let mut update = LimitsUpdate::default();
    for (key, value) in json_object(body)? {
        let parsed = match &value {
            Value::Null => None,
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(v), _) if v >= 1 => Some(u32::try_from(v).map_err(|_| {
                    ApiError::bad_request(format!(
                        "The limit '{key}' must be at most {}, not {v}.",
                        u32::MAX
                    ))
                })?),
                (Some(_), _) | (None, Some(_)) => {
                    return Err(ApiError::bad_request(format!(
                        "The limit '{key}' must be at least 1, not {n} (null resets it to the \
                         default)."
                    )));
                }
                (None, None) => {
                    return Err(ApiError::bad_request(format!(
                        "The limit '{key}' must be a whole number, not {n}."
                    )));
                }
            },
            other => {
                return Err(ApiError::bad_request(format!(
                    "The limit '{key}' must be a number or null, not {other}."
                )));
            }
        };
        let slot = match key.as_str() {
            "invocationsPerMinute" => &mut update.invocations_per_minute,
            "concurrentInvocations" => &mut update.concurrent_invocations,
            "firesPerMinute" => &mut update.fires_per_minute,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Unknown limit '{key}': the limits are {}.",
                    LIMIT_KEYS.join(", ")
                )));
            }
        };
        *slot = Some(parsed);
    }
    Ok(update)
}

/// `GET /admin/v1/users/{name}/limits`.
async fn get_limits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<EffectiveLimits>, ApiError> {
    check_admin(&state, &headers)?;
    let user = state
        .store
        .get_user(&name)
        .await?
        .ok_or(ApiError::NotFound)?;
    let stored = state.store.user_limits(&user.namespace).await?;
    Ok(Json(state.invoker.limiter().effective(stored.as_ref())))
}

/// `PUT /admin/v1/users/{name}/limits`.
async fn put_limits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: bytes::Bytes,
) -> Result<Json<EffectiveLimits>, ApiError> {
    check_admin(&state, &headers)?;
    let update = parse_limits_update(&body)?;
    let stored = state
        .store
        .set_user_limits(&name, &update)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(state.invoker.limiter().effective(Some(&stored))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_updates_take_whole_numbers_or_null() {
        let update =
            parse_limits_update(br#"{"invocationsPerMinute": 120, "firesPerMinute": null}"#)
                .unwrap();
        assert_eq!(update.invocations_per_minute, Some(Some(120)));
        assert_eq!(update.concurrent_invocations, None, "left out: kept");
        assert_eq!(update.fires_per_minute, Some(None), "null: the default");
        assert_eq!(parse_limits_update(b"").unwrap(), LimitsUpdate::default());
        for (body, needle) in [
            (r#"{"invocationsPerMinute": 0}"#, "at least 1"),
            (r#"{"concurrentInvocations": -5}"#, "at least 1"),
            (r#"{"firesPerMinute": 1.5}"#, "whole number"),
            (r#"{"firesPerMinute": 2.0}"#, "whole number"),
            (r#"{"firesPerMinute": "10"}"#, "a number or null"),
            (r#"{"firesPerMinute": true}"#, "a number or null"),
            (r#"{"invocationsPerMinute": 4294967296}"#, "at most"),
            (r#"{"memory": 5}"#, "Unknown limit 'memory'"),
            ("[1]", "JSON object"),
            ("{", "malformed"),
        ] {
            let e = parse_limits_update(body.as_bytes()).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{body}");
            assert!(e.to_string().contains(needle), "{body}: {e}");
        }
    }
}
