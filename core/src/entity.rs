//! The REST API's entity documents, in OpenWhisk's JSON shape.

use crate::limits::Limits;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One `{key, value}` pair of a parameter or annotation list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Value,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: impl Into<Value>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The value of `key` in a key/value list (the last one wins, as in OpenWhisk).
pub fn lookup<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    list.iter()
        .rev()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value)
}

/// Whether annotation `key` is set to a truthy value (`true` or `"true"`).
pub fn is_true(list: &[KeyValue], key: &str) -> bool {
    matches!(lookup(list, key), Some(Value::Bool(true)))
        || matches!(lookup(list, key), Some(Value::String(s)) if s == "true")
}

/// Merges key/value lists into one JSON object, later lists winning over earlier ones
/// (OpenWhisk precedence: package < binding < action < invocation).
pub fn merge_params<'a>(layers: impl IntoIterator<Item = &'a [KeyValue]>) -> Map<String, Value> {
    let mut out = Map::new();
    for layer in layers {
        for kv in layer {
            out.insert(kv.key.clone(), kv.value.clone());
        }
    }
    out
}

/// What an action runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Exec {
    /// A WebAssembly module (WASI preview 1 command) or preview-2 command component.
    #[serde(rename = "wasm")]
    Wasm {
        /// Base64 of the module; present on `PUT`, and on `GET` only with `?code=true`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(default = "yes")]
        binary: bool,
        /// sha256 of the module: code is stored once per digest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    },
    /// A chain of actions, each one's result the next one's parameters.
    #[serde(rename = "sequence")]
    Sequence { components: Vec<String> },
}

fn yes() -> bool {
    true
}

impl Exec {
    pub fn kind(&self) -> &'static str {
        match self {
            Exec::Wasm { .. } => "wasm",
            Exec::Sequence { .. } => "sequence",
        }
    }
}

/// An action, as `GET /namespaces/{ns}/actions/{name}` returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionDoc {
    /// `ns` or `ns/pkg`, as OpenWhisk reports it.
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub exec: Exec,
    #[serde(default)]
    pub parameters: Vec<KeyValue>,
    #[serde(default)]
    pub annotations: Vec<KeyValue>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub publish: bool,
    /// Epoch ms of the last write.
    #[serde(default)]
    pub updated: u64,
}

/// A package binding: `{namespace, name}` of the package it binds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub namespace: String,
    pub name: String,
}

/// A package, as `GET /namespaces/{ns}/packages/{name}` returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackageDoc {
    pub namespace: String,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
    #[serde(default)]
    pub parameters: Vec<KeyValue>,
    #[serde(default)]
    pub annotations: Vec<KeyValue>,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub updated: u64,
}

/// The next semantic version after `v` (patch bump), as OpenWhisk bumps on update. A patch (or
/// minor) number at `u64::MAX` carries into the next part instead of wrapping around;
/// `MAX.MAX.MAX` stays as it is.
pub fn bump_version(v: &str) -> String {
    let parts: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
    let [major, minor, patch] = parts[..] else {
        return "0.0.1".to_string();
    };
    let (major, minor, patch) = match (patch.checked_add(1), minor.checked_add(1)) {
        (Some(p), _) => (major, minor, p),
        (None, Some(m)) => (major, m, 0),
        (None, None) => match major.checked_add(1) {
            Some(m) => (m, 0, 0),
            None => (major, minor, patch),
        },
    };
    format!("{major}.{minor}.{patch}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exec_kinds_parse_and_unknown_kinds_fail() {
        let e: Exec = serde_json::from_value(json!({"kind": "wasm", "code": "AGFzbQ=="})).unwrap();
        assert!(matches!(e, Exec::Wasm { binary: true, .. }));
        let e: Exec =
            serde_json::from_value(json!({"kind": "sequence", "components": ["/a/b"]})).unwrap();
        assert_eq!(e.kind(), "sequence");
        assert!(serde_json::from_value::<Exec>(json!({"kind": "nodejs:20", "code": ""})).is_err());
    }

    #[test]
    fn merge_precedence_later_wins() {
        let pkg = vec![KeyValue::new("a", 1), KeyValue::new("b", 1)];
        let inv = vec![KeyValue::new("b", 2)];
        let m = merge_params([pkg.as_slice(), inv.as_slice()]);
        assert_eq!(m["a"], 1);
        assert_eq!(m["b"], 2);
    }

    #[test]
    fn versions_bump_patch() {
        assert_eq!(bump_version("0.0.1"), "0.0.2");
        assert_eq!(bump_version("junk"), "0.0.1");
    }
}
