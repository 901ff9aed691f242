//! One module per verb group (Spin-style), plus the flag groups they share.

pub mod action;
pub mod activation;
pub mod admin;
pub mod bench;
pub mod completions;
pub mod invoke;
pub mod namespace;
pub mod package;
pub mod property;
pub mod rule;
pub mod trigger;
pub mod up;
pub mod url;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgAction, Args};
use serde_json::{Map, Value, json};
use wisp_core::names::QualifiedName;

/// `-p/--param KEY VALUE` (repeatable) and `-P/--param-file FILE`, as in `wsk`.
#[derive(Clone, Debug, Default, Args)]
pub struct ParamArgs {
    /// Parameter KEY VALUE; VALUE is parsed as JSON when it parses, else taken as a string.
    #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append, allow_hyphen_values = true)]
    pub param: Vec<String>,
    /// A JSON object file of parameters (flags given with -p win over it).
    #[arg(short = 'P', long = "param-file", value_name = "FILE")]
    pub param_file: Option<PathBuf>,
}

impl ParamArgs {
    /// Whether no parameter was given (so an update keeps the existing ones).
    pub fn is_empty(&self) -> bool {
        self.param.is_empty() && self.param_file.is_none()
    }

    /// The parameters as a JSON object: the file first, then `-p` pairs in order.
    pub fn to_map(&self) -> anyhow::Result<Map<String, Value>> {
        let mut map = match &self.param_file {
            Some(path) => read_json_object(path, "parameter")?,
            None => Map::new(),
        };
        for pair in self.param.chunks(2) {
            if let [k, v] = pair {
                map.insert(k.clone(), parse_value(v));
            }
        }
        Ok(map)
    }
}

/// `-a/--annotation KEY VALUE` (repeatable) and `-A/--annotation-file FILE`, as in `wsk`.
#[derive(Clone, Debug, Default, Args)]
pub struct AnnotationArgs {
    /// Annotation KEY VALUE; VALUE is parsed as JSON when it parses, else taken as a string.
    #[arg(short = 'a', long = "annotation", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append, allow_hyphen_values = true)]
    pub annotation: Vec<String>,
    /// A JSON object file of annotations.
    #[arg(short = 'A', long = "annotation-file", value_name = "FILE")]
    pub annotation_file: Option<PathBuf>,
}

impl AnnotationArgs {
    pub fn is_empty(&self) -> bool {
        self.annotation.is_empty() && self.annotation_file.is_none()
    }

    pub fn to_map(&self) -> anyhow::Result<Map<String, Value>> {
        let mut map = match &self.annotation_file {
            Some(path) => read_json_object(path, "annotation")?,
            None => Map::new(),
        };
        for pair in self.annotation.chunks(2) {
            if let [k, v] = pair {
                map.insert(k.clone(), parse_value(v));
            }
        }
        Ok(map)
    }
}

/// A command-line value: JSON when it parses (`3`, `true`, `{"a":1}`, `"quoted"`), else the
/// string itself (`World`).
pub fn parse_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// `{k: v, ...}` as OpenWhisk's `[{key, value}, ...]`.
pub fn key_values(map: &Map<String, Value>) -> Value {
    Value::Array(
        map.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

/// Reads a JSON object from `path` (for `--param-file` and friends).
fn read_json_object(path: &Path, what: &str) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} file {}", path.display()))?;
    match serde_json::from_str::<Value>(&text)
        .with_context(|| format!("{what} file {} is not valid JSON", path.display()))?
    {
        Value::Object(map) => Ok(map),
        _ => bail!("{what} file {} must hold a JSON object", path.display()),
    }
}

/// An entity reference from the command line (`name`, `pkg/name`, `/ns/name`, `/ns/pkg/name`),
/// validated locally so typos get a clear error before any request.
#[derive(Clone, Debug)]
pub struct EntityRef {
    pub qname: QualifiedName,
    raw: String,
}

impl EntityRef {
    pub fn parse(raw: &str, what: &str) -> anyhow::Result<EntityRef> {
        let qname =
            QualifiedName::parse(raw).with_context(|| format!("invalid {what} name {raw:?}"))?;
        Ok(EntityRef {
            qname,
            raw: raw.to_string(),
        })
    }

    /// The namespace path segment (`_` = the caller's).
    pub fn namespace(&self) -> &str {
        self.qname.namespace.as_deref().unwrap_or("_")
    }

    /// `["api","v1","namespaces",ns,collection,(pkg),name]`.
    pub fn segments<'a>(&'a self, collection: &'a str) -> Vec<&'a str> {
        let mut s = vec!["api", "v1", "namespaces", self.namespace(), collection];
        if let Some(p) = &self.qname.package {
            s.push(p);
        }
        s.push(&self.qname.name);
        s
    }

    /// The name as the user typed it, for messages.
    pub fn display(&self) -> String {
        self.raw.clone()
    }
}

/// `GET` of one entity of `collection` (`actions`, `packages`...); `cannot get KIND NAME` on
/// failure.
pub async fn get_entity(
    ctx: &crate::Ctx,
    entity: &EntityRef,
    collection: &str,
    kind: &str,
) -> anyhow::Result<Value> {
    ctx.client()?
        .get(&entity.segments(collection), &[])
        .await
        .with_context(|| format!("cannot get {kind} {}", entity.display()))
}

/// `DELETE` of one entity of `collection`; prints `deleted KIND NAME` (the deleted document with
/// `--json`).
pub async fn delete_entity(
    ctx: &crate::Ctx,
    entity: &EntityRef,
    collection: &str,
    kind: &str,
) -> anyhow::Result<()> {
    let doc = ctx
        .client()?
        .delete(&entity.segments(collection))
        .await
        .with_context(|| format!("cannot delete {kind} {}", entity.display()))?;
    ctx.out
        .ok(&format!("deleted {kind} {}", entity.display()), || {
            doc.clone()
        });
    Ok(())
}

/// `--limit` / `--skip` of a `list` verb.
#[derive(Debug, clap::Args)]
pub struct ListWindow {
    /// At most this many entries (default 30, max 200).
    #[arg(short = 'l', long, default_value_t = 30)]
    pub limit: u32,
    /// Skip this many entries.
    #[arg(short = 's', long, default_value_t = 0)]
    pub skip: u32,
}

/// `GET /api/v1/namespaces/_/{collection}?limit=&skip=`: the JSON array of documents.
pub async fn list_collection(
    ctx: &crate::Ctx,
    collection: &str,
    window: &ListWindow,
) -> anyhow::Result<Value> {
    use anyhow::Context as _;
    let query = [
        ("limit", window.limit.to_string()),
        ("skip", window.skip.to_string()),
    ];
    ctx.client()?
        .get(&collection_segments(collection), &query)
        .await
        .with_context(|| format!("cannot list {collection}"))
}

/// `["api","v1","namespaces","_",collection]`.
pub fn collection_segments(collection: &str) -> [&str; 5] {
    ["api", "v1", "namespaces", "_", collection]
}

/// A JSON string field, or `""`.
pub fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The value of annotation `key` in an OpenWhisk `[{key, value}]` list.
pub fn annotation<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    doc.get("annotations")?
        .as_array()?
        .iter()
        .rev()
        .find(|kv| kv.get("key").and_then(Value::as_str) == Some(key))
        .and_then(|kv| kv.get("value"))
}

/// Epoch milliseconds as a local-independent UTC timestamp (`2026-11-23 14:05:01`).
pub fn format_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.trim_end_matches('Z').replace('T', " ")
}

/// `(namespace, package)` from an entity document's `namespace` field (`ns` or `ns/pkg`).
pub fn split_namespace(ns: &str) -> (&str, Option<&str>) {
    match ns.split_once('/') {
        Some((n, p)) => (n, Some(p)),
        None => (ns, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_json_or_fall_back_to_strings() {
        assert_eq!(parse_value("3"), json!(3));
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("{\"a\":[1]}"), json!({"a":[1]}));
        assert_eq!(parse_value("World"), json!("World"));
        assert_eq!(parse_value("\"3\""), json!("3"));
        assert_eq!(parse_value(""), json!(""));
    }

    #[test]
    fn entity_refs_build_paths() {
        let e = EntityRef::parse("pkg/hello", "action").unwrap();
        assert_eq!(
            e.segments("actions"),
            ["api", "v1", "namespaces", "_", "actions", "pkg", "hello"]
        );
        let e = EntityRef::parse("/guest/hello", "action").unwrap();
        assert_eq!(
            e.segments("actions"),
            ["api", "v1", "namespaces", "guest", "actions", "hello"]
        );
        assert!(EntityRef::parse("a/b/c", "action").is_err());
        assert!(EntityRef::parse("../x", "action").is_err());
    }

    #[test]
    fn params_merge_file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        std::fs::write(&file, r#"{"a": 1, "b": "file"}"#).unwrap();
        let args = ParamArgs {
            param: vec!["b".into(), "flag".into(), "c".into(), "[1,2]".into()],
            param_file: Some(file),
        };
        let map = args.to_map().unwrap();
        assert_eq!(
            Value::Object(map),
            json!({"a": 1, "b": "flag", "c": [1, 2]})
        );
        std::fs::write(dir.path().join("bad.json"), "[1]").unwrap();
        let bad = ParamArgs {
            param: vec![],
            param_file: Some(dir.path().join("bad.json")),
        };
        assert!(
            bad.to_map()
                .unwrap_err()
                .to_string()
                .contains("JSON object")
        );
    }

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00");
    }
}
