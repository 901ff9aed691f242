//! `exitcode` (hostile): logs a line, then exits with code `code` (default 3) without printing a
//! result. Status: `action developer error`.
fn main() {
    let mut input = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut input);
    let params: serde_json::Value = serde_json::from_str(&input).unwrap_or_default();
    let code = params["code"].as_i64().map_or(3, |c| c as i32);
    wisp_sdk::log!("exitcode: exiting with code {code}");
    std::process::exit(code);
}
