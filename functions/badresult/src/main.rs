//! `badresult` (hostile): its last stdout line is not a JSON object. Status:
//! `action developer error`. `kind` picks how: `"text"` (default) prints `this is not json`,
//! `"array"` prints `[1,2,3]` (JSON, but not an object), `"none"` prints nothing at all.
use std::io::Write;

fn main() {
    let mut input = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut input);
    let params: serde_json::Value = serde_json::from_str(&input).unwrap_or_default();
    let kind = params["kind"].as_str().unwrap_or("text");
    wisp_sdk::log!("badresult: kind {kind}");
    let mut out = std::io::stdout().lock();
    let _ = match kind {
        "array" => writeln!(out, "[1,2,3]"),
        "none" => Ok(()),
        _ => writeln!(out, "a log line on stdout\nthis is not json"),
    };
    let _ = out.flush();
}
