//! `GET /api/v1/namespaces/{ns}/limits` (`_` or the caller's own namespace; another one is 403
//! like every entity): OpenWhisk's `UserLimits` document with OpenWhisk's field names and
//! units — the namespace's limits in force (its own, else the scheduler's defaults; for the
//! namespace as a whole, not this replica's share) and the per-action ranges an action PUT
//! accepts (memory and logs in MB, timeouts in ms, sizes as OpenWhisk's `"N B"` strings).
//!
//! wisp extension: `activationRetention`, the activation records kept per namespace (older ones
//! are deleted), which `wisp bench`'s audit reads.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use wisp_core::Limits;

use super::ApiError;
use crate::auth::Identity;
use crate::state::AppState;

/// `GET .../namespaces/{ns}/limits`.
pub async fn get_limits(
    State(state): State<AppState>,
    identity: Identity,
    Path(ns): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ns = identity.namespace_for(&ns)?;
    let stored = state.store.user_limits(ns).await?;
    let limits = state.invoker.limiter().effective(stored.as_ref());
    let bytes = |n: usize| format!("{n} B");
    Ok(Json(json!({
        "invocationsPerMinute": limits.invocations_per_minute,
        "concurrentInvocations": limits.concurrent_invocations,
        "firesPerMinute": limits.fires_per_minute,
        // OpenWhisk reports its concurrency limit as the most instances of an action too.
        "maxActionInstances": limits.concurrent_invocations,
        "minActionMemory": Limits::MIN_MEMORY_MB,
        "maxActionMemory": Limits::MAX_MEMORY_MB,
        "minActionTimeout": Limits::MIN_TIMEOUT_MS,
        "maxActionTimeout": Limits::MAX_TIMEOUT_MS,
        "minActionLogs": 0,
        "maxActionLogs": Limits::MAX_LOGS_MB,
        "minActionConcurrency": 1,
        "maxActionConcurrency": Limits::MAX_CONCURRENCY,
        "maxParameterSize": bytes(state.config.max_body_bytes),
        "maxPayloadSize": bytes(state.config.max_body_bytes),
        "activationRetention": state.config.activation_retention,
    })))
}
