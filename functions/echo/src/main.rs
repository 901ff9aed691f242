//! `echo`: returns its parameters unchanged.
use serde_json::Value;

#[wisp_sdk::action]
fn main(params: Value) -> Value {
    params
}
