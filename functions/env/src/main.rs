//! `env`: returns every `__OW_*` environment variable as a JSON string, plus `env_other`: the
//! names of any other environment variables (the ABI passes none, so tests expect `[]`).
use serde_json::{Map, Value};

#[wisp_sdk::action]
fn main() -> Value {
    let mut result = Map::new();
    let mut other = Vec::new();
    for (key, value) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("__OW_") {
            result.insert(key, Value::String(value.to_string_lossy().into_owned()));
        } else {
            other.push(Value::String(key));
        }
    }
    result.insert("env_other".to_owned(), Value::Array(other));
    Value::Object(result)
}
