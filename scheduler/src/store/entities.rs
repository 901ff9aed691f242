//! The documents of the event model: triggers, rules, and the alarm feed's schedule rows.
//! Shaped as OpenWhisk's REST API answers them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wisp_core::entity::KeyValue;

/// A trigger, as `GET /namespaces/{ns}/triggers/{name}` returns it (without `rules`, which the
/// API adds from the rules table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerDoc {
    pub namespace: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub parameters: Vec<KeyValue>,
    #[serde(default)]
    pub annotations: Vec<KeyValue>,
    /// OpenWhisk's (empty) trigger limits.
    #[serde(default)]
    pub limits: Map<String, Value>,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub updated: u64,
}

/// A rule's reference to its trigger or action: `path` is `ns` or `ns/pkg`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub path: String,
    pub name: String,
}

impl RuleRef {
    /// `/path/name`.
    pub fn fqn(&self) -> String {
        format!("/{}/{}", self.path, self.name)
    }
}

/// Rule status strings (OpenWhisk's).
pub const ACTIVE: &str = "active";
pub const INACTIVE: &str = "inactive";

/// A rule: when `trigger` fires and `status` is `active`, `action` runs with the trigger's
/// parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleDoc {
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub trigger: RuleRef,
    pub action: RuleRef,
    pub status: String,
    #[serde(default)]
    pub annotations: Vec<KeyValue>,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub updated: u64,
}

impl RuleDoc {
    pub fn is_active(&self) -> bool {
        self.status == ACTIVE
    }
}

/// A trigger fed by the alarm feed: when it fires next (epoch ms) and its schedule (the JSON
/// of `crate::alarm::AlarmSpec`; the store does not interpret it).
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmRow {
    pub namespace: String,
    pub trigger: String,
    pub next_fire: u64,
    pub spec: Value,
}
