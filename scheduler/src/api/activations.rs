//! `GET /api/v1/namespaces/{ns}/activations[/{id}[/logs|/result]]`.
//!
//! Listing filters are OpenWhisk's: `name` (action name, or `pkg/name`), `since`/`upto` (epoch
//! ms, on the start time), `limit` (30, at most 200), `skip`, `docs` (full records; otherwise
//! summaries without `response` and `logs`) and `count`. Records of other namespaces are never
//! visible: the namespace comes from the caller's key.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use wisp_core::{ActivationId, ActivationRecord};

use super::{ApiError, QueryMap, list_window, query_flag, query_number};
use crate::auth::Identity;
use crate::state::AppState;
use crate::store::ActivationFilter;

/// `GET .../activations`.
pub async fn list_activations(
    State(state): State<AppState>,
    identity: Identity,
    Path(ns): Path<String>,
    Query(query): Query<QueryMap>,
) -> Result<Json<Value>, ApiError> {
    let ns = identity.namespace_for(&ns)?;
    let (limit, skip) = list_window(&query, "activations")?;
    let name = query
        .get("name")
        .map(|n| n.trim().trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty());
    if let Some(n) = &name {
        let parts: Vec<&str> = n.split('/').collect();
        if parts.len() > 2 || parts.iter().any(|p| wisp_core::names::validate(p).is_err()) {
            return Err(ApiError::bad_request(format!(
                "Parameter may be a 'simple' name or 'package-name/simple' name: {n}"
            )));
        }
    }
    let filter = ActivationFilter {
        name,
        since: query_number(&query, "since")?,
        upto: query_number(&query, "upto")?,
        limit,
        skip,
    };
    let docs = query_flag(&query, "docs")?;
    if query_flag(&query, "count")? {
        if docs {
            return Err(ApiError::bad_request(
                "The parameter 'docs' is not permitted with 'count'.",
            ));
        }
        let n = state.store.count_activations(ns, &filter).await?;
        return Ok(Json(json!({ "activations": n })));
    }
    let records = state.store.list_activations(ns, &filter).await?;
    let list = records
        .into_iter()
        .map(|r| if docs { full(&r) } else { summary(&r) })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Value::Array(list)))
}

fn full(r: &ActivationRecord) -> Result<Value, ApiError> {
    serde_json::to_value(r).map_err(|e| ApiError::Internal(e.to_string()))
}

/// A listing entry without `docs`: the record without `response` and `logs`.
fn summary(r: &ActivationRecord) -> Result<Value, ApiError> {
    let mut v = full(r)?;
    if let Some(m) = v.as_object_mut() {
        m.remove("logs");
        m.remove("response");
    }
    Ok(v)
}

async fn find(
    state: &AppState,
    identity: &Identity,
    path: &HashMap<String, String>,
) -> Result<ActivationRecord, ApiError> {
    let ns = identity.namespace_for(path.get("ns").ok_or(ApiError::NotFound)?)?;
    let raw = path.get("id").ok_or(ApiError::NotFound)?;
    let id: ActivationId = raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{raw:?} is not an activation id (32 hex characters)."
        ))
    })?;
    state
        .store
        .get_activation(ns, &id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// `GET .../activations/{id}`.
pub async fn get_activation(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<ActivationRecord>, ApiError> {
    Ok(Json(find(&state, &identity, &path).await?))
}

/// `GET .../activations/{id}/logs`: `{"logs": [...]}`.
pub async fn get_logs(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let r = find(&state, &identity, &path).await?;
    Ok(Json(json!({ "logs": r.logs })))
}

/// `GET .../activations/{id}/result`: `{"result", "status", "success"}`.
pub async fn get_result(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let r = find(&state, &identity, &path).await?;
    Ok(Json(json!({
        "result": r.response.result,
        "status": r.response.status,
        "success": r.response.success,
    })))
}
