//! The shapes `#[wisp_sdk::action]` accepts. Each module gets its own generated `fn main()`
//! (unused here, hence the `allow`); the user's function stays callable and is run through the
//! same `respond` the generated `main` uses on stdin.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wisp_sdk::__private::respond;

#[derive(Deserialize)]
pub struct Params {
    pub name: Option<String>,
}

#[derive(Serialize)]
pub struct Greeting {
    pub greeting: String,
}

#[allow(dead_code, reason = "the generated main is never called in a test")]
mod result_returning {
    use super::*;

    #[wisp_sdk::action]
    pub fn handler(p: Params) -> Result<Greeting, wisp_sdk::Error> {
        let name = p
            .name
            .ok_or_else(|| wisp_sdk::Error::msg("name is required"))?;
        Ok(Greeting {
            greeting: format!("Hello, {name}!"),
        })
    }
}

#[allow(dead_code, reason = "the generated main is never called in a test")]
mod plain_returning {
    use super::*;

    #[wisp_sdk::action]
    pub fn handler(p: Params) -> Greeting {
        Greeting {
            greeting: format!("Hi, {}!", p.name.unwrap_or_default()),
        }
    }
}

#[allow(dead_code, reason = "the generated main is never called in a test")]
mod std_error_returning {
    #[wisp_sdk::action]
    pub fn handler(v: serde_json::Value) -> Result<serde_json::Value, std::num::ParseIntError> {
        let n: i64 = v["n"].as_str().unwrap_or("").parse()?;
        Ok(serde_json::json!({ "double": n * 2 }))
    }
}

#[allow(dead_code, reason = "the generated main is never called in a test")]
mod no_params {
    #[wisp_sdk::action]
    pub fn handler() -> wisp_sdk::Result<serde_json::Value> {
        Ok(serde_json::json!({ "ok": true }))
    }
}

#[allow(dead_code, reason = "the generated main is never called in a test")]
mod named_main {
    // Named `main`: the attribute renames it so the generated entry point can take its place.
    #[wisp_sdk::action]
    fn main(v: serde_json::Value) -> serde_json::Value {
        v
    }

    pub fn call(v: serde_json::Value) -> serde_json::Value {
        __wisp_action_main(v)
    }
}

#[allow(dead_code, reason = "the generated main is never called in a test")]
mod web_action {
    use wisp_sdk::web::{Request, Response};

    #[wisp_sdk::action]
    pub fn handler(req: Request) -> Response {
        Response::html(format!("<b>{}</b>", req.method)).status(201)
    }
}

fn run<P, T>(input: Value, f: impl FnOnce(P) -> Result<T, wisp_sdk::Error>) -> Value
where
    P: serde::de::DeserializeOwned,
    T: Serialize,
{
    serde_json::from_str(&respond(input.to_string().as_bytes(), f)).unwrap()
}

#[test]
fn result_functions_report_errors_as_application_errors() {
    let ok = run(json!({"name": "Ada"}), result_returning::handler);
    assert_eq!(ok, json!({"greeting": "Hello, Ada!"}));
    let err = run(json!({}), result_returning::handler);
    assert_eq!(err, json!({"error": "name is required"}));
}

#[test]
fn plain_functions_always_succeed() {
    let out = run(json!({"name": "Bo"}), |p| Ok(plain_returning::handler(p)));
    assert_eq!(out, json!({"greeting": "Hi, Bo!"}));
}

#[test]
fn std_errors_convert_through_question_mark() {
    let ok = run(json!({"n": "21"}), |v| {
        std_error_returning::handler(v).map_err(wisp_sdk::Error::from)
    });
    assert_eq!(ok, json!({"double": 42}));
    let err = run(json!({"n": "x"}), |v| {
        std_error_returning::handler(v).map_err(wisp_sdk::Error::from)
    });
    assert_eq!(err, json!({"error": "invalid digit found in string"}));
}

#[test]
fn other_shapes_compile_and_behave() {
    assert_eq!(no_params::handler().unwrap(), json!({"ok": true}));
    assert_eq!(named_main::call(json!({"a": 1})), json!({"a": 1}));
    let page = run(json!({"__ow_method": "post"}), |r| {
        Ok(web_action::handler(r))
    });
    assert_eq!(
        page,
        json!({"statusCode": 201, "headers": {"content-type": "text/html"}, "body": "<b>post</b>"})
    );
}
