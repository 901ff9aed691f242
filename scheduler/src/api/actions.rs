//! `PUT|GET|DELETE /api/v1/namespaces/{ns}/actions/[{pkg}/]{name}` and the action listing.
//!
//! Create/update follows OpenWhisk's `WhiskActionPut`: every field is optional, `exec` is required
//! to create; with `?overwrite=true` an existing action is updated (fields given replace the
//! stored ones, `limits` merge field by field) and its `version` bumped; without it an existing
//! action is a 409. Code arrives base64 in `exec.code`, is checked (a runtime compiles it through
//! `Invoker::prepare`; code that is not a valid module is a 400) and stored once per sha256.
//! Every refusal happens before the store is touched.

use axum::Json;
use axum::extract::{Path, Query, State};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use wisp_core::entity::KeyValue;
use wisp_core::names::QualifiedName;
use wisp_core::{ActionDoc, Digest, Exec, Limits};

use super::{ApiError, QueryMap, from_object, json_object, query_flag, valid_name};
use crate::auth::Identity;
use crate::invoke::PrepareError;
use crate::state::AppState;
use crate::store::EntityKey;

/// Longest sequence OpenWhisk accepts.
pub const MAX_SEQUENCE_COMPONENTS: usize = 50;

/// The body of an action PUT (all fields optional, as in OpenWhisk).
#[derive(Debug, Deserialize)]
pub struct ActionPut {
    #[serde(default)]
    pub exec: Option<ExecPut>,
    #[serde(default)]
    pub parameters: Option<Vec<KeyValue>>,
    #[serde(default)]
    pub annotations: Option<Vec<KeyValue>>,
    #[serde(default)]
    pub limits: Option<LimitsPut>,
    #[serde(default)]
    pub publish: Option<bool>,
    /// Ignored (the store assigns versions), but must be a string when given.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `exec` of an action PUT.
#[derive(Debug, Deserialize)]
pub struct ExecPut {
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub binary: Option<bool>,
    #[serde(default)]
    pub main: Option<String>,
    #[serde(default)]
    pub components: Option<Vec<String>>,
}

/// `limits` of an action PUT: each field optional.
#[derive(Debug, Default, Deserialize)]
pub struct LimitsPut {
    pub timeout: Option<u64>,
    pub memory: Option<u64>,
    pub logs: Option<u64>,
    pub concurrency: Option<u32>,
}

impl LimitsPut {
    fn apply(&self, base: Limits) -> Limits {
        Limits {
            timeout: self.timeout.unwrap_or(base.timeout),
            memory: self.memory.unwrap_or(base.memory),
            logs: self.logs.unwrap_or(base.logs),
            concurrency: self.concurrency.unwrap_or(base.concurrency),
        }
    }
}

/// The `(namespace, package, name)` an action route names, checked and with `_` resolved.
pub fn action_key(
    identity: &Identity,
    path: &std::collections::HashMap<String, String>,
) -> Result<EntityKey, ApiError> {
    let ns = path.get("ns").ok_or(ApiError::NotFound)?;
    let ns = identity.namespace_for(ns)?;
    let name = path.get("name").ok_or(ApiError::NotFound)?;
    let pkg = path.get("pkg").map(String::as_str);
    if let Some(p) = pkg {
        valid_name("package", p)?;
    }
    valid_name("action", name)?;
    Ok(EntityKey::new(ns, pkg, name))
}

/// What a PUT resolved to before touching the store.
struct Prepared {
    doc: ActionDoc,
    code: Option<Vec<u8>>,
}

/// A checked `exec` and, for wasm, the decoded module.
type CheckedExec = (Exec, Option<Vec<u8>>);

/// Decodes and checks an `exec` of kind `wasm` or `sequence`.
fn check_exec(exec: ExecPut, caller_ns: &str) -> Result<CheckedExec, ApiError> {
    match exec.kind.as_str() {
        "wasm" => {
            let code = exec.code.filter(|c| !c.trim().is_empty()).ok_or_else(|| {
                ApiError::bad_request(
                    "exec.code is required for kind 'wasm' (base64 of the module).",
                )
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(code.trim().as_bytes())
                .map_err(|e| {
                    ApiError::bad_request(format!("exec.code is not valid base64: {e}."))
                })?;
            if !bytes.starts_with(b"\0asm") {
                return Err(ApiError::bad_request(
                    "exec.code is not a WebAssembly module (no \\0asm header).",
                ));
            }
            let digest = Digest::of(&bytes);
            Ok((
                Exec::Wasm {
                    code: None,
                    binary: true,
                    digest: Some(digest.to_string()),
                },
                Some(bytes),
            ))
        }
        "sequence" => {
            let components = exec.components.unwrap_or_default();
            if components.is_empty() {
                return Err(ApiError::bad_request(
                    "exec.components must list at least one action for kind 'sequence'.",
                ));
            }
            if components.len() > MAX_SEQUENCE_COMPONENTS {
                return Err(ApiError::bad_request(format!(
                    "A sequence has at most {MAX_SEQUENCE_COMPONENTS} components."
                )));
            }
            let components = components
                .iter()
                .map(|c| {
                    QualifiedName::parse(c)
                        .map(|q| q.path(caller_ns))
                        .map_err(|e| {
                            ApiError::bad_request(format!(
                                "Sequence component {c:?} is not a valid action name: {e}."
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((Exec::Sequence { components }, None))
        }
        other => Err(ApiError::bad_request(format!(
            "The specified runtime '{other}' is not supported by this platform. \
             Valid values are: 'wasm', 'sequence'."
        ))),
    }
}

fn set_annotation(list: &mut Vec<KeyValue>, key: &str, value: Value) {
    list.retain(|kv| kv.key != key);
    list.push(KeyValue::new(key, value));
}

fn check_keys(what: &str, list: &[KeyValue]) -> Result<(), ApiError> {
    if list.iter().any(|kv| kv.key.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "{what} keys must not be empty."
        )));
    }
    Ok(())
}

/// An action PUT may carry up to 48 MB of code (OpenWhisk's limit); everything else in the
/// document is held to the API's 1 MB body limit.
fn check_put_size(
    object: &serde_json::Map<String, Value>,
    body_len: usize,
    limit: usize,
) -> Result<(), ApiError> {
    let code_len = object
        .get("exec")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .map_or(0, str::len);
    if body_len.saturating_sub(code_len) > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let decoded = code_len / 4 * 3;
    if decoded > wisp_core::run::MAX_CODE_BYTES {
        return Err(ApiError::CodeTooLarge {
            size: decoded,
            limit: wisp_core::run::MAX_CODE_BYTES,
        });
    }
    Ok(())
}

/// The code digest of a wasm action.
fn wasm_digest(action: &ActionDoc) -> Option<Digest> {
    match &action.exec {
        Exec::Wasm {
            digest: Some(d), ..
        } => d.parse().ok(),
        _ => None,
    }
}

/// After an action stopped using `digest`: when no action uses it any more (the store dropped
/// the blob), the runtimes drop their compiled copies too.
async fn forget_if_unused(state: &AppState, digest: &Digest) {
    match state.store.has_code(digest).await {
        Ok(false) => state.invoker.forget(digest),
        Ok(true) => {}
        Err(e) => tracing::warn!(%digest, error = %e, "cannot tell whether code is still used"),
    }
}

/// Bodies above this size are parsed, decoded and hashed on a blocking thread.
const OFF_WORKER_BYTES: usize = 256 << 10;

/// Runs `work` (parsing, base64 decoding, hashing: ~0.1 s per 10 MB of code) on a blocking
/// thread when the body is large, so a big upload never stalls the request workers that serve
/// invokes; inline when it is small (a thread hop costs more than the work).
async fn off_worker<T, F>(size: usize, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    if size < OFF_WORKER_BYTES {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("decoding the action failed: {e}")))?
}

/// Builds the document to store from a PUT body and the existing action (for an update).
fn prepare(
    put: ActionPut,
    key: &EntityKey,
    existing: Option<&ActionDoc>,
) -> Result<Prepared, ApiError> {
    let (exec, code) = match (put.exec, existing) {
        (Some(exec), _) => check_exec(exec, &key.namespace)?,
        (None, Some(old)) => (old.exec.clone(), None),
        (None, None) => {
            return Err(ApiError::bad_request(
                "exec is required to create an action (kind 'wasm' with base64 code, or 'sequence').",
            ));
        }
    };
    let base_limits = existing.map(|a| a.limits).unwrap_or_default();
    let limits = put.limits.unwrap_or_default().apply(base_limits);
    limits
        .validate()
        .map_err(|e| ApiError::bad_request(format!("The action limits are not valid: {e}.")))?;
    let parameters = put
        .parameters
        .or_else(|| existing.map(|a| a.parameters.clone()))
        .unwrap_or_default();
    check_keys("parameter", &parameters)?;
    let mut annotations = put
        .annotations
        .or_else(|| existing.map(|a| a.annotations.clone()))
        .unwrap_or_default();
    check_keys("annotation", &annotations)?;
    set_annotation(&mut annotations, "exec", json!(exec.kind()));
    let publish = put.publish.or(existing.map(|a| a.publish)).unwrap_or(false);
    Ok(Prepared {
        doc: ActionDoc {
            namespace: key.doc_namespace(),
            name: key.name.clone(),
            version: existing.map(|a| a.version.clone()).unwrap_or_default(),
            exec,
            parameters,
            annotations,
            limits,
            publish,
            updated: 0,
        },
        code,
    })
}

/// `PUT .../actions/[{pkg}/]{name}[?overwrite=true]`.
pub async fn put_action(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<std::collections::HashMap<String, String>>,
    Query(query): Query<QueryMap>,
    body: bytes::Bytes,
) -> Result<Json<ActionDoc>, ApiError> {
    let key = action_key(&identity, &path)?;
    let overwrite = query_flag(&query, "overwrite")?;
    let size = body.len();
    let limit = state.config.max_body_bytes;
    let put: ActionPut = off_worker(size, move || {
        let object = json_object(&body)?;
        check_put_size(&object, body.len(), limit)?;
        from_object(object)
    })
    .await?;
    if let Some(pkg) = &key.package {
        let package = state.store.get_package(&key.namespace, pkg).await?;
        match package {
            None => {
                return Err(ApiError::bad_request(format!(
                    "The package '{pkg}' does not exist: create it first."
                )));
            }
            Some(p) if p.binding.is_some() => {
                return Err(ApiError::bad_request(
                    "Actions cannot be created in a package binding.",
                ));
            }
            Some(_) => {}
        }
    }
    let existing = state.store.get_action(&key).await?;
    let old_digest = existing.as_ref().and_then(wasm_digest);
    if existing.is_some() && !overwrite {
        return Err(ApiError::Conflict(format!(
            "The action '{}' already exists (use overwrite=true to update it).",
            key.path()
        )));
    }
    let prepared = {
        let key = key.clone();
        off_worker(size, move || prepare(put, &key, existing.as_ref())).await?
    };
    if let Exec::Sequence { components } = &prepared.doc.exec {
        check_sequence(&state, &key, components).await?;
    }
    if let (
        Some(bytes),
        Exec::Wasm {
            digest: Some(d), ..
        },
    ) = (&prepared.code, &prepared.doc.exec)
    {
        let digest: Digest = d
            .parse()
            .map_err(|e: wisp_core::digest::BadDigest| ApiError::Internal(e.to_string()))?;
        state
            .invoker
            .prepare(&digest, bytes)
            .await
            .map_err(|e| match e {
                PrepareError::Invalid(msg) => {
                    ApiError::bad_request(format!("exec.code is not a valid wasm action: {msg}"))
                }
            })?;
    }
    let stored = state
        .store
        .put_action(&key, prepared.doc, prepared.code, overwrite)
        .await?;
    if let Some(old) = old_digest
        && wasm_digest(&stored).as_ref() != Some(&old)
    {
        forget_if_unused(&state, &old).await;
    }
    Ok(Json(stored))
}

/// Refuses a sequence whose components do not exist (or are not shared with the caller), or
/// that contains itself, directly or through other sequences.
async fn check_sequence(
    state: &AppState,
    key: &EntityKey,
    components: &[String],
) -> Result<(), ApiError> {
    use crate::invoke::{MAX_SEQUENCE_DEPTH, ResolveError, resolve, split_fqn};
    let me = key.path();
    // (component, the top-level component it was reached through, depth)
    let mut stack: Vec<(String, String, usize)> = components
        .iter()
        .rev()
        .map(|c| (c.clone(), c.clone(), 1))
        .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some((component, top, depth)) = stack.pop() {
        let missing =
            || ApiError::bad_request(format!("Sequence component does not exist: {component}."));
        if component == me {
            return Err(ApiError::bad_request(format!(
                "The sequence {me} may not contain itself (component {component})."
            )));
        }
        let (ns, pkg, name) = split_fqn(&component).ok_or_else(missing)?;
        let resolved = match resolve(&*state.store, &key.namespace, ns, pkg, name).await {
            Ok(r) => r,
            // Only the sequence's own components must exist; a nested sequence with a dangling
            // component fails when it runs.
            Err(ResolveError::NotFound | ResolveError::Forbidden) if depth == 1 => {
                return Err(missing());
            }
            Err(ResolveError::NotFound | ResolveError::Forbidden) => continue,
            Err(ResolveError::Store(e)) => return Err(e.into()),
        };
        if resolved.path == me {
            return Err(ApiError::bad_request(if depth == 1 {
                format!("The sequence {me} may not contain itself (component {component}).")
            } else {
                format!(
                    "The sequence {me} may not contain itself: its component {top} is a \
                     sequence that leads back to it."
                )
            }));
        }
        if let Exec::Sequence { components: inner } = &resolved.action.exec {
            if depth >= MAX_SEQUENCE_DEPTH {
                return Err(ApiError::bad_request(format!(
                    "Sequences may nest at most {MAX_SEQUENCE_DEPTH} deep (through component {top})."
                )));
            }
            if seen.insert(resolved.path.clone()) {
                stack.extend(
                    inner
                        .iter()
                        .rev()
                        .map(|c| (c.clone(), top.clone(), depth + 1)),
                );
            }
        }
    }
    Ok(())
}

/// `GET .../actions/[{pkg}/]{name}[?code=true]`.
pub async fn get_action(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<std::collections::HashMap<String, String>>,
    Query(query): Query<QueryMap>,
) -> Result<Json<ActionDoc>, ApiError> {
    let with_code = query_flag(&query, "code")?;
    let own = match action_key(&identity, &path) {
        Ok(key) => state.store.get_action(&key).await?,
        // Another namespace's action: readable when it (or its package) is published.
        Err(ApiError::Forbidden) => None,
        Err(e) => return Err(e),
    };
    let mut doc = match own {
        Some(doc) => doc,
        // Not the caller's own: another namespace's shared action, or one read through a
        // package binding.
        None => {
            let ns = path.get("ns").ok_or(ApiError::NotFound)?;
            let ns = if ns == "_" {
                identity.namespace.as_str()
            } else {
                ns
            };
            let name = path.get("name").ok_or(ApiError::NotFound)?;
            let pkg = path.get("pkg").map(String::as_str);
            crate::invoke::resolve(&*state.store, &identity.namespace, ns, pkg, name)
                .await?
                .action
        }
    };
    if with_code
        && let Exec::Wasm {
            code,
            digest: Some(d),
            ..
        } = &mut doc.exec
    {
        let digest: Digest = d
            .parse()
            .map_err(|e: wisp_core::digest::BadDigest| ApiError::Internal(e.to_string()))?;
        let bytes = state
            .store
            .get_code(&digest)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("code {digest} is missing")))?;
        *code = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    Ok(Json(doc))
}

/// `DELETE .../actions/[{pkg}/]{name}`: answers the deleted action.
pub async fn delete_action(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<std::collections::HashMap<String, String>>,
) -> Result<Json<ActionDoc>, ApiError> {
    let key = action_key(&identity, &path)?;
    let doc = state
        .store
        .delete_action(&key)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(digest) = wasm_digest(&doc) {
        forget_if_unused(&state, &digest).await;
    }
    Ok(Json(doc))
}

/// `GET .../actions[/{pkg}/]?limit=&skip=&count=`: newest first, without code;
/// `count=true` answers `{"actions": N}`.
pub async fn list_actions(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<std::collections::HashMap<String, String>>,
    Query(query): Query<QueryMap>,
) -> Result<Json<Value>, ApiError> {
    let ns = identity.namespace_for(path.get("ns").ok_or(ApiError::NotFound)?)?;
    let pkg = path.get("pkg").map(String::as_str);
    if let Some(p) = pkg {
        valid_name("package", p)?;
    }
    let store = &state.store;
    super::list_or_count(
        &query,
        "actions",
        || store.count_actions(ns, pkg),
        |limit, skip| store.list_actions(ns, pkg, limit, skip),
    )
    .await
}
