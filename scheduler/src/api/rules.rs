//! `PUT|GET|DELETE|POST /api/v1/namespaces/{ns}/rules/{name}` and the rule listing.
//!
//! A rule links a trigger of its namespace to an action (its own, or another namespace's shared
//! one): `PUT` takes `{trigger, action}` as names (`t`, `/ns/t`, `pkg/a`, `/ns/pkg/a`) and stores
//! them fully qualified; both must exist (400 with the name that does not). A new rule is
//! `active`. `POST {status: "active"|"inactive"}` enables or disables it; `GET` shows `status`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::Value;
use wisp_core::entity::KeyValue;
use wisp_core::names::QualifiedName;

use super::{ApiError, QueryMap, from_object, json_object, query_flag, valid_name};
use crate::auth::Identity;
use crate::invoke::ResolveError;
use crate::state::AppState;
use crate::store::RuleDoc;
use crate::store::entities::{ACTIVE, INACTIVE, RuleRef};

/// The body of a rule PUT.
#[derive(Debug, Deserialize)]
pub struct RulePut {
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub annotations: Option<Vec<KeyValue>>,
    #[serde(default)]
    pub publish: Option<bool>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The body of a rule POST.
#[derive(Debug, Deserialize)]
pub struct RuleStatusPost {
    pub status: Option<String>,
}

fn rule_path<'a>(
    identity: &'a Identity,
    path: &'a HashMap<String, String>,
) -> Result<(&'a str, &'a str), ApiError> {
    let ns = identity.namespace_for(path.get("ns").ok_or(ApiError::NotFound)?)?;
    let name = path.get("name").ok_or(ApiError::NotFound)?;
    valid_name("rule", name)?;
    Ok((ns, name))
}

fn check_status(status: &str) -> Result<(), ApiError> {
    if status == ACTIVE || status == INACTIVE {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "The rule status must be 'active' or 'inactive', not {status:?}."
        )))
    }
}

/// Parses a rule's trigger reference (a trigger of the rule's namespace) and checks it exists.
async fn trigger_ref(state: &AppState, ns: &str, raw: &str) -> Result<RuleRef, ApiError> {
    let q = QualifiedName::parse(raw).map_err(|e| {
        ApiError::bad_request(format!(
            "The rule's trigger {raw:?} is not a valid name: {e}."
        ))
    })?;
    if q.package.is_some() {
        return Err(ApiError::bad_request(format!(
            "The rule's trigger {raw:?} is not valid: triggers are not in packages."
        )));
    }
    let tns = q.namespace.as_deref().unwrap_or(ns);
    if tns != ns {
        return Err(ApiError::bad_request(format!(
            "The rule's trigger /{tns}/{} must be in the rule's namespace {ns}.",
            q.name
        )));
    }
    if state.store.get_trigger(ns, &q.name).await?.is_none() {
        return Err(ApiError::bad_request(format!(
            "The rule's trigger /{ns}/{} does not exist.",
            q.name
        )));
    }
    Ok(RuleRef {
        path: ns.to_string(),
        name: q.name,
    })
}

/// Parses a rule's action reference and checks it exists and the rule's namespace may run it.
async fn action_ref(state: &AppState, ns: &str, raw: &str) -> Result<RuleRef, ApiError> {
    let q = QualifiedName::parse(raw).map_err(|e| {
        ApiError::bad_request(format!(
            "The rule's action {raw:?} is not a valid name: {e}."
        ))
    })?;
    let ans = q.namespace.as_deref().unwrap_or(ns);
    let fqn = q.path(ns);
    match crate::invoke::resolve(&*state.store, ns, ans, q.package.as_deref(), &q.name).await {
        Ok(_) => {}
        Err(ResolveError::NotFound | ResolveError::Forbidden) => {
            return Err(ApiError::bad_request(format!(
                "The rule's action {fqn} does not exist (or is not shared with namespace {ns})."
            )));
        }
        Err(ResolveError::Store(e)) => return Err(e.into()),
    }
    Ok(RuleRef {
        path: match &q.package {
            Some(p) => format!("{ans}/{p}"),
            None => ans.to_string(),
        },
        name: q.name,
    })
}

/// `PUT .../rules/{name}[?overwrite=true]`.
pub async fn put_rule(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
    Query(query): Query<QueryMap>,
    body: bytes::Bytes,
) -> Result<Json<RuleDoc>, ApiError> {
    let (ns, name) = rule_path(&identity, &path)?;
    let overwrite = query_flag(&query, "overwrite")?;
    let put: RulePut = from_object(json_object(&body)?)?;
    if let Some(s) = &put.status {
        check_status(s)?;
    }
    if let Some(list) = &put.annotations
        && list.iter().any(|kv| kv.key.is_empty())
    {
        return Err(ApiError::bad_request("annotation keys must not be empty."));
    }
    let existing = state.store.get_rule(ns, name).await?;
    if existing.is_some() && !overwrite {
        return Err(ApiError::Conflict(format!(
            "The rule '/{ns}/{name}' already exists (use overwrite=true to update it)."
        )));
    }
    let old = existing.as_ref();
    let trigger = match (&put.trigger, old) {
        (Some(t), _) => trigger_ref(&state, ns, t).await?,
        (None, Some(r)) => r.trigger.clone(),
        (None, None) => {
            return Err(ApiError::bad_request(
                "A rule needs a 'trigger' (the trigger's name).",
            ));
        }
    };
    let action = match (&put.action, old) {
        (Some(a), _) => action_ref(&state, ns, a).await?,
        (None, Some(r)) => r.action.clone(),
        (None, None) => {
            return Err(ApiError::bad_request(
                "A rule needs an 'action' (the action's name).",
            ));
        }
    };
    let doc = RuleDoc {
        namespace: ns.to_string(),
        name: name.to_string(),
        version: String::new(),
        trigger,
        action,
        status: put
            .status
            .or_else(|| old.map(|r| r.status.clone()))
            .unwrap_or_else(|| ACTIVE.to_string()),
        annotations: put
            .annotations
            .or_else(|| old.map(|r| r.annotations.clone()))
            .unwrap_or_default(),
        publish: put.publish.or(old.map(|r| r.publish)).unwrap_or(false),
        updated: 0,
    };
    Ok(Json(state.store.put_rule(ns, doc, overwrite).await?))
}

/// `POST .../rules/{name}` with `{status: "active"|"inactive"}`.
pub async fn set_rule_status(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
    body: bytes::Bytes,
) -> Result<Json<RuleDoc>, ApiError> {
    let (ns, name) = rule_path(&identity, &path)?;
    let post: RuleStatusPost = from_object(json_object(&body)?)?;
    let status = post.status.ok_or_else(|| {
        ApiError::bad_request("The body must be {\"status\": \"active\"|\"inactive\"}.")
    })?;
    check_status(&status)?;
    let mut rule = state
        .store
        .get_rule(ns, name)
        .await?
        .ok_or(ApiError::NotFound)?;
    if rule.status == status {
        return Ok(Json(rule));
    }
    rule.status = status;
    Ok(Json(state.store.put_rule(ns, rule, true).await?))
}

/// `GET .../rules/{name}`.
pub async fn get_rule(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<RuleDoc>, ApiError> {
    let (ns, name) = rule_path(&identity, &path)?;
    let doc = state
        .store
        .get_rule(ns, name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(doc))
}

/// `DELETE .../rules/{name}`.
pub async fn delete_rule(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<RuleDoc>, ApiError> {
    let (ns, name) = rule_path(&identity, &path)?;
    let doc = state
        .store
        .delete_rule(ns, name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(doc))
}

/// `GET .../rules?limit=&skip=&count=`.
pub async fn list_rules(
    State(state): State<AppState>,
    identity: Identity,
    Path(ns): Path<String>,
    Query(query): Query<QueryMap>,
) -> Result<Json<Value>, ApiError> {
    let ns = identity.namespace_for(&ns)?;
    let store = &state.store;
    super::list_or_count(
        &query,
        "rules",
        || store.count_rules(ns),
        |limit, skip| store.list_rules(ns, limit, skip),
    )
    .await
}
