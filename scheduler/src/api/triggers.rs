//! `PUT|GET|DELETE|POST /api/v1/namespaces/{ns}/triggers/{name}` and the trigger listing.
//!
//! A trigger is a named event channel with default parameters. `POST` fires it ([`fire`]): the
//! scheduler writes a trigger activation record, and starts one (non-blocking) activation of the
//! action of each *active* rule on the trigger, with `cause` = the trigger's activation id and the
//! parameters action defaults < trigger defaults < fire payload. The trigger record's `logs` holds
//! one JSON line per rule (`{statusCode, success, activationId, rule, action}`), as OpenWhisk's.
//! The fire answers 202 `{activationId}`; with no active rule, 204 and no record (OpenWhisk).
//!
//! Namespace limits: a fire over `firesPerMinute` is 429 (OpenWhisk's message) before anything
//! else; each rule's activation is admitted like an invoke, and one over `invocationsPerMinute`
//! or `concurrentInvocations` is not started: its log line says why (`"success": false`,
//! `"error": "Too many requests in the last minute (count: N, allowed: M)."`).
//!
//! A trigger annotated `feed: alarm` (or OpenWhisk's `/whisk.system/alarms/alarm`) is periodic:
//! its feed parameters become an alarm in the store ([`crate::alarm`]).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use wisp_core::entity::{KeyValue, lookup, merge_params};
use wisp_core::{ActivationId, ActivationRecord, ActivationResponse, Status};

use super::{ApiError, QueryMap, from_object, json_object, query_flag, valid_name};
use crate::alarm::{ALARM_FEED, AlarmSpec, FEED_PARAMS, is_alarm_feed};
use crate::auth::Identity;
use crate::invoke::{ACTIVATION_ID_HEADER, InvokeOutcome, InvokeRequest, split_fqn};
use crate::state::AppState;
use crate::store::{AlarmRow, TriggerDoc};

/// The body of a trigger PUT (all fields optional).
#[derive(Debug, Deserialize)]
pub struct TriggerPut {
    #[serde(default)]
    pub parameters: Option<Vec<KeyValue>>,
    #[serde(default)]
    pub annotations: Option<Vec<KeyValue>>,
    #[serde(default)]
    pub publish: Option<bool>,
    #[serde(default)]
    pub limits: Option<Map<String, Value>>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

fn trigger_path<'a>(
    identity: &'a Identity,
    path: &'a HashMap<String, String>,
) -> Result<(&'a str, &'a str), ApiError> {
    let ns = identity.namespace_for(path.get("ns").ok_or(ApiError::NotFound)?)?;
    let name = path.get("name").ok_or(ApiError::NotFound)?;
    valid_name("trigger", name)?;
    Ok((ns, name))
}

fn check_keys(list: &[KeyValue]) -> Result<(), ApiError> {
    if list.iter().any(|kv| kv.key.is_empty()) {
        return Err(ApiError::bad_request(
            "parameter and annotation keys must not be empty.",
        ));
    }
    Ok(())
}

/// `PUT .../triggers/{name}[?overwrite=true]`.
pub async fn put_trigger(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
    Query(query): Query<QueryMap>,
    body: bytes::Bytes,
) -> Result<Json<Value>, ApiError> {
    let (ns, name) = trigger_path(&identity, &path)?;
    let overwrite = query_flag(&query, "overwrite")?;
    let put: TriggerPut = from_object(json_object(&body)?)?;
    for list in [&put.parameters, &put.annotations].into_iter().flatten() {
        check_keys(list)?;
    }
    let existing = state.store.get_trigger(ns, name).await?;
    if existing.is_some() && !overwrite {
        return Err(ApiError::Conflict(format!(
            "The trigger '/{ns}/{name}' already exists (use overwrite=true to update it)."
        )));
    }
    let old = existing.as_ref();
    let mut parameters = put
        .parameters
        .clone()
        .or_else(|| old.map(|t| t.parameters.clone()))
        .unwrap_or_default();
    let mut annotations = put
        .annotations
        .or_else(|| old.map(|t| t.annotations.clone()))
        .unwrap_or_default();
    // The feed: wisp runs the alarm feed itself; any other feed is refused.
    let feed = lookup(&annotations, "feed").cloned();
    let alarm = match &feed {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) if is_alarm_feed(f) => {
            let given: Map<String, Value> = put
                .parameters
                .iter()
                .flatten()
                .filter(|kv| FEED_PARAMS.contains(&kv.key.as_str()))
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
            // Feed parameters configure the alarm; they are not the trigger's parameters.
            parameters.retain(|kv| !FEED_PARAMS.contains(&kv.key.as_str()));
            annotations.retain(|kv| kv.key != "feed");
            annotations.push(KeyValue::new("feed", ALARM_FEED));
            if given.is_empty() {
                if state.store.get_alarm(ns, name).await?.is_none() {
                    return Err(ApiError::bad_request(
                        "The alarm feed needs one of the parameters cron (5-field, UTC), \
                         interval (minutes) or once (a date).",
                    ));
                }
                None // keep the stored alarm
            } else {
                let now = wisp_core::now_ms();
                let spec = AlarmSpec::from_params(&given, now).map_err(|e| {
                    ApiError::bad_request(format!("The alarm feed parameters are not valid: {e}."))
                })?;
                let next = spec.first_fire(now).ok_or_else(|| {
                    ApiError::bad_request("The alarm would never fire (check stopDate).")
                })?;
                Some(AlarmRow {
                    namespace: ns.to_string(),
                    trigger: name.to_string(),
                    next_fire: next,
                    spec: serde_json::to_value(&spec)
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                })
            }
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "The feed {other} is not available: wisp provides the built-in feed 'alarm' \
                 (/whisk.system/alarms/alarm)."
            )));
        }
    };
    let doc = TriggerDoc {
        namespace: ns.to_string(),
        name: name.to_string(),
        version: String::new(),
        parameters,
        annotations,
        limits: put
            .limits
            .or_else(|| old.map(|t| t.limits.clone()))
            .unwrap_or_default(),
        publish: put.publish.or(old.map(|t| t.publish)).unwrap_or(false),
        updated: 0,
    };
    let stored = state.store.put_trigger(ns, doc, overwrite).await?;
    match (&feed, alarm) {
        (_, Some(row)) => state.store.put_alarm(&row).await?,
        (None | Some(Value::Null), None) => {
            state.store.delete_alarm(ns, name).await?;
        }
        _ => {}
    }
    Ok(Json(trigger_view(&state, stored).await?))
}

/// A trigger as GET answers it: the document, its `rules` (`{"ns/rule": {action, status}}`, as
/// OpenWhisk shows them) and, for alarm triggers, `alarm: {schedule..., nextFire}`.
async fn trigger_view(state: &AppState, doc: TriggerDoc) -> Result<Value, ApiError> {
    let fqn = format!("/{}/{}", doc.namespace, doc.name);
    let rules = state.store.rules_for_trigger(&doc.namespace, &fqn).await?;
    let alarm = state.store.get_alarm(&doc.namespace, &doc.name).await?;
    let mut value = serde_json::to_value(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    if !rules.is_empty() {
        value["rules"] = rules
            .iter()
            .map(|r| {
                (
                    format!("{}/{}", r.namespace, r.name),
                    json!({"action": r.action, "status": r.status}),
                )
            })
            .collect::<Map<String, Value>>()
            .into();
    }
    if let Some(a) = alarm {
        let mut spec = a.spec;
        spec["nextFire"] = json!(a.next_fire);
        value["alarm"] = spec;
    }
    Ok(value)
}

/// `GET .../triggers/{name}`.
pub async fn get_trigger(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (ns, name) = trigger_path(&identity, &path)?;
    let doc = state
        .store
        .get_trigger(ns, name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(trigger_view(&state, doc).await?))
}

/// `DELETE .../triggers/{name}`: deletes the trigger and its alarm; its rules stay (OpenWhisk).
pub async fn delete_trigger(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<TriggerDoc>, ApiError> {
    let (ns, name) = trigger_path(&identity, &path)?;
    let doc = state
        .store
        .delete_trigger(ns, name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(doc))
}

/// `GET .../triggers?limit=&skip=&count=`.
pub async fn list_triggers(
    State(state): State<AppState>,
    identity: Identity,
    Path(ns): Path<String>,
    Query(query): Query<QueryMap>,
) -> Result<Json<Value>, ApiError> {
    let ns = identity.namespace_for(&ns)?;
    let store = &state.store;
    super::list_or_count(
        &query,
        "triggers",
        || store.count_triggers(ns),
        |limit, skip| store.list_triggers(ns, limit, skip),
    )
    .await
}

/// `POST .../triggers/{name}`: fires the trigger with the body as payload (a JSON object).
pub async fn fire_trigger(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let (ns, name) = trigger_path(&identity, &path)?;
    let payload = json_object(&body)?;
    let trigger = state
        .store
        .get_trigger(ns, name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(match fire(&state, &trigger, payload).await? {
        Some(id) => {
            let mut response =
                (StatusCode::ACCEPTED, Json(json!({ "activationId": id }))).into_response();
            if let Ok(v) = HeaderValue::from_str(id.as_str()) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(ACTIVATION_ID_HEADER), v);
            }
            response
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Fires `trigger` with `payload` (see the module docs). `None` when no rule is active (nothing
/// runs, no record); else the trigger activation's id.
pub async fn fire(
    state: &AppState,
    trigger: &TriggerDoc,
    payload: Map<String, Value>,
) -> Result<Option<ActivationId>, ApiError> {
    let ns = trigger.namespace.as_str();
    // Every fire counts against the namespace's firesPerMinute first; a refused one (429 here,
    // a skipped tick for the alarm feed) runs nothing and leaves no record.
    let stored = state.store.user_limits(ns).await?;
    let limiter = state.invoker.limiter();
    limiter.admit_fire(ns, &limiter.effective(stored.as_ref()))?;
    let fqn = format!("/{ns}/{}", trigger.name);
    let rules: Vec<_> = state
        .store
        .rules_for_trigger(ns, &fqn)
        .await?
        .into_iter()
        .filter(|r| r.is_active())
        .collect();
    if rules.is_empty() {
        return Ok(None);
    }
    let start = wisp_core::now_ms();
    let id = ActivationId::generate();
    let mut params = merge_params([trigger.parameters.as_slice()]);
    params.extend(payload);
    let mut logs = Vec::with_capacity(rules.len());
    for rule in &rules {
        let rule_name = format!("{}/{}", rule.namespace, rule.name);
        let action_name = format!("{}/{}", rule.action.path, rule.action.name);
        let outcome = run_rule_action(state, ns, &rule.action.fqn(), &params, &id).await;
        let line = match outcome {
            Ok(aid) => json!({
                "statusCode": 0, "success": true, "activationId": aid,
                "rule": rule_name, "action": action_name,
            }),
            Err(message) => json!({
                "statusCode": 1, "success": false, "error": message,
                "rule": rule_name, "action": action_name,
            }),
        };
        logs.push(line.to_string());
    }
    let end = wisp_core::now_ms().max(start);
    let record = ActivationRecord {
        activation_id: id.clone(),
        namespace: ns.to_string(),
        name: trigger.name.clone(),
        version: trigger.version.clone(),
        subject: ns.to_string(),
        start,
        end,
        duration: end - start,
        status_code: 0,
        response: ActivationResponse::new(Status::Success, Value::Object(params)),
        logs,
        annotations: vec![KeyValue::new("path", format!("{ns}/{}", trigger.name))],
        cause: None,
        publish: false,
    };
    state.store.put_activation(record).await?;
    Ok(Some(id))
}

/// Starts the action of one rule (non-blocking); its activation id, or why it could not start.
async fn run_rule_action(
    state: &AppState,
    ns: &str,
    action_fqn: &str,
    params: &Map<String, Value>,
    cause: &ActivationId,
) -> Result<ActivationId, String> {
    let (ans, pkg, name) =
        split_fqn(action_fqn).ok_or_else(|| format!("bad action name {action_fqn}"))?;
    let resolved = crate::invoke::resolve(&*state.store, ns, ans, pkg, name)
        .await
        .map_err(|e| format!("action {action_fqn}: {e}"))?;
    let mut merged = resolved.defaults;
    merged.extend(params.clone());
    let request = InvokeRequest {
        subject: ns.to_string(),
        action: resolved.action,
        path: resolved.path,
        params: merged,
        blocking: false,
        cause: Some(cause.clone()),
    };
    match state.invoker.invoke(request).await {
        Ok(InvokeOutcome::Accepted(aid)) => Ok(aid),
        Ok(InvokeOutcome::Completed(record)) => Ok(record.activation_id),
        Err(e) => Err(e.to_string()),
    }
}
