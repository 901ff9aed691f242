//! `trap` (hostile): panics; with `panic = "abort"` that ends in a wasm `unreachable` trap after
//! the panic message is written to stderr. Status: `action developer error`.
use serde_json::Value;

#[wisp_sdk::action]
fn main(_params: Value) -> Value {
    wisp_sdk::log("trap: about to panic");
    panic!("this action panics on purpose");
}
