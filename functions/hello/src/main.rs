//! `hello`: greets `name` (default "stranger") and logs one line.
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Params {
    name: Option<String>,
}

#[derive(Serialize)]
struct Greeting {
    greeting: String,
}

#[wisp_sdk::action]
fn main(p: Params) -> Greeting {
    let name = p.name.filter(|n| !n.is_empty());
    let name = name.as_deref().unwrap_or("stranger");
    wisp_sdk::log!("hello: greeting {name}");
    Greeting {
        greeting: format!("Hello, {name}!"),
    }
}
