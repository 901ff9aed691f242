//! Authentication of the REST API: HTTP Basic `uuid:key`, as OpenWhisk does it.
//!
//! [`Identity`] is an axum extractor: a request without credentials or with a wrong key is
//! refused with 401 before the handler runs. Keys are compared as sha256 hashes in constant time
//! ([`crate::store::key_matches`]); identities come from the entity cache, so a warm lookup costs
//! a hash and a map read. `_` in a path means the caller's namespace
//! ([`Identity::namespace_for`]); another namespace is 403 (OpenWhisk's "not authorized").

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, header, request::Parts};
use base64::Engine as _;

use crate::api::ApiError;
use crate::state::AppState;
use crate::store::{Store, key_matches};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's name.
    pub name: String,
    /// The user's namespace: where its entities and activations live.
    pub namespace: String,
    pub uuid: String,
}

impl Identity {
    /// The namespace a path segment names for this caller: `_` or its own namespace, else
    /// [`ApiError::Forbidden`].
    pub fn namespace_for(&self, ns: &str) -> Result<&str, ApiError> {
        if ns == "_" || ns == self.namespace {
            Ok(&self.namespace)
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// `uuid:key` from an `Authorization: Basic ...` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (uuid, key) = text.split_once(':')?;
    Some((uuid.to_string(), key.to_string()))
}

/// Authenticates the Basic credentials of `headers` against `store`.
/// [`ApiError::Unauthorized`] when they are missing, malformed or wrong.
pub async fn authenticate(store: &dyn Store, headers: &HeaderMap) -> Result<Identity, ApiError> {
    let (uuid, key) = basic_credentials(headers).ok_or(ApiError::Unauthorized)?;
    let stored = store
        .identity_by_uuid(&uuid)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if !key_matches(&key, &stored.key_hash) {
        return Err(ApiError::Unauthorized);
    }
    Ok(Identity {
        name: stored.name,
        namespace: stored.namespace,
        uuid: stored.uuid,
    })
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state.store.as_ref(), &parts.headers).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn basic_credentials_parse_uuid_and_key() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("u-1:k:with:colons");
        assert_eq!(
            basic_credentials(&headers(&format!("Basic {encoded}"))),
            Some(("u-1".to_string(), "k:with:colons".to_string()))
        );
        assert_eq!(
            basic_credentials(&headers(&format!("basic {encoded}"))).map(|c| c.0),
            Some("u-1".into())
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic", "Basic Zm9v"] {
            assert_eq!(basic_credentials(&headers(bad)), None, "{bad}");
        }
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
    }

    #[test]
    fn underscore_means_the_callers_namespace() {
        let id = Identity {
            name: "alice".into(),
            namespace: "alice".into(),
            uuid: "u".into(),
        };
        assert_eq!(id.namespace_for("_").unwrap(), "alice");
        assert_eq!(id.namespace_for("alice").unwrap(), "alice");
        assert!(matches!(id.namespace_for("bob"), Err(ApiError::Forbidden)));
    }
}
