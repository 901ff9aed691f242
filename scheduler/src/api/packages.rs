//! `PUT|GET|DELETE /api/v1/namespaces/{ns}/packages/{name}` and the package listing.
//!
//! A package groups actions and gives them default parameters (package < action < invocation).
//! `GET` answers the package with its `actions` (name, version, annotations), as OpenWhisk does.
//! A package still holding actions cannot be deleted (409). Bindings are stored (they must name
//! an existing package that is the caller's own or published, and not itself a binding); actions
//! are invoked through a binding with the parameters bound package < binding < action <
//! invocation (`crate::invoke::resolve`). A published package of another namespace can be read
//! (`GET`), bound and its actions invoked; nothing else of that namespace is visible.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use wisp_core::PackageDoc;
use wisp_core::entity::{Binding, KeyValue};

use super::{ApiError, QueryMap, from_object, json_object, query_flag, valid_name};
use crate::auth::Identity;
use crate::state::AppState;

/// The body of a package PUT (all fields optional).
#[derive(Debug, Deserialize)]
pub struct PackagePut {
    #[serde(default)]
    pub parameters: Option<Vec<KeyValue>>,
    #[serde(default)]
    pub annotations: Option<Vec<KeyValue>>,
    #[serde(default)]
    pub publish: Option<bool>,
    #[serde(default)]
    pub binding: Option<BindingPut>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `binding` of a package PUT; `{}` means "no binding" (as the OpenWhisk clients send it).
#[derive(Debug, Deserialize)]
pub struct BindingPut {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

fn package_path<'a>(
    identity: &'a Identity,
    path: &'a HashMap<String, String>,
) -> Result<(&'a str, &'a str), ApiError> {
    let ns = identity.namespace_for(path.get("ns").ok_or(ApiError::NotFound)?)?;
    let name = path.get("name").ok_or(ApiError::NotFound)?;
    valid_name("package", name)?;
    Ok((ns, name))
}

/// `PUT .../packages/{name}[?overwrite=true]`.
pub async fn put_package(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
    Query(query): Query<QueryMap>,
    body: bytes::Bytes,
) -> Result<Json<PackageDoc>, ApiError> {
    let (ns, name) = package_path(&identity, &path)?;
    let overwrite = query_flag(&query, "overwrite")?;
    let put: PackagePut = from_object(json_object(&body)?)?;
    let binding = match put.binding {
        Some(BindingPut {
            namespace: Some(bns),
            name: Some(bname),
        }) => {
            let bns = if bns == "_" { ns.to_string() } else { bns };
            valid_name("namespace", &bns)?;
            valid_name("package", &bname)?;
            Some(Binding {
                namespace: bns,
                name: bname,
            })
        }
        Some(BindingPut {
            namespace: None,
            name: None,
        })
        | None => None,
        Some(_) => {
            return Err(ApiError::bad_request(
                "A package binding needs both 'namespace' and 'name'.",
            ));
        }
    };
    for list in [&put.parameters, &put.annotations].into_iter().flatten() {
        if list.iter().any(|kv| kv.key.is_empty()) {
            return Err(ApiError::bad_request(
                "parameter and annotation keys must not be empty.",
            ));
        }
    }
    if let Some(b) = &binding {
        check_binding(&state, ns, b).await?;
    }
    let existing = state.store.get_package(ns, name).await?;
    if existing.is_some() && !overwrite {
        return Err(ApiError::Conflict(format!(
            "The package '/{ns}/{name}' already exists (use overwrite=true to update it)."
        )));
    }
    let old = existing.as_ref();
    let doc = PackageDoc {
        namespace: ns.to_string(),
        name: name.to_string(),
        version: String::new(),
        binding: binding.or_else(|| old.and_then(|p| p.binding.clone())),
        parameters: put
            .parameters
            .or_else(|| old.map(|p| p.parameters.clone()))
            .unwrap_or_default(),
        annotations: put
            .annotations
            .or_else(|| old.map(|p| p.annotations.clone()))
            .unwrap_or_default(),
        publish: put.publish.or(old.map(|p| p.publish)).unwrap_or(false),
        updated: 0,
    };
    Ok(Json(state.store.put_package(ns, doc, overwrite).await?))
}

/// A binding must name an existing package that is not itself a binding, and that is the
/// caller's own or published (OpenWhisk's rules).
async fn check_binding(state: &AppState, ns: &str, b: &Binding) -> Result<(), ApiError> {
    let target = format!("/{}/{}", b.namespace, b.name);
    let bound = state.store.get_package(&b.namespace, &b.name).await?;
    match bound {
        None => Err(ApiError::bad_request(format!(
            "Binding references a package that does not exist: {target}."
        ))),
        Some(p) if p.binding.is_some() => Err(ApiError::bad_request(format!(
            "Cannot bind to another package binding: {target} is a binding."
        ))),
        Some(p) if b.namespace != ns && !p.publish => Err(ApiError::Denied(format!(
            "Cannot bind to package {target}: it belongs to another namespace and is not \
             published (shared)."
        ))),
        Some(_) => Ok(()),
    }
}

/// `GET .../packages/{name}`: the package and its actions. Another namespace's package is
/// readable when it is published.
pub async fn get_package(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let raw_ns = path.get("ns").ok_or(ApiError::NotFound)?;
    let name = path.get("name").ok_or(ApiError::NotFound)?;
    valid_name("package", name)?;
    let (ns, shared_only) = match identity.namespace_for(raw_ns) {
        Ok(ns) => (ns, false),
        Err(_) => (raw_ns.as_str(), true),
    };
    let doc = match state.store.get_package(ns, name).await? {
        Some(doc) if shared_only && !doc.publish => return Err(ApiError::Forbidden),
        Some(doc) => doc,
        None if shared_only => return Err(ApiError::Forbidden),
        None => return Err(ApiError::NotFound),
    };
    // A binding shows the actions of the package it binds.
    let (list_ns, list_pkg) = match &doc.binding {
        Some(b) => (b.namespace.as_str(), b.name.as_str()),
        None => (ns, name.as_str()),
    };
    let actions = state
        .store
        .list_actions(list_ns, Some(list_pkg), super::MAX_LIST_LIMIT * 5, 0)
        .await?;
    let mut value = serde_json::to_value(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    value["actions"] = actions
        .iter()
        .map(|a| json!({"name": a.name, "version": a.version, "annotations": a.annotations}))
        .collect();
    value["feeds"] = json!([]);
    Ok(Json(value))
}

/// `DELETE .../packages/{name}`: 409 while it holds actions.
pub async fn delete_package(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<PackageDoc>, ApiError> {
    let (ns, name) = package_path(&identity, &path)?;
    let doc = state
        .store
        .delete_package(ns, name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(doc))
}

/// `GET .../packages?limit=&skip=&count=`.
pub async fn list_packages(
    State(state): State<AppState>,
    identity: Identity,
    Path(ns): Path<String>,
    Query(query): Query<QueryMap>,
) -> Result<Json<Value>, ApiError> {
    let ns = identity.namespace_for(&ns)?;
    let store = &state.store;
    super::list_or_count(
        &query,
        "packages",
        || store.count_packages(ns),
        |limit, skip| store.list_packages(ns, limit, skip),
    )
    .await
}
