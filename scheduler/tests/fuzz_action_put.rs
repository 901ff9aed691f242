//! Fuzz target 1 of issue 7, over HTTP: the body and name of an action PUT
//! (`scheduler/src/api/actions.rs` + wisp-core's `ActionDoc`/`Exec`), through the real router
//! (`tower::ServiceExt::oneshot`) of a scheduler with a real runtime, which compiles the code.
//!
//! Properties:
//! - arbitrary bodies and valid documents with one field corrupted (wrong type, huge numbers,
//!   unicode, bad base64, code that is not wasm, deep nesting) answer 200 or a 4xx JSON
//!   `{error, code}`, never a 5xx; a refused PUT leaves the stored action exactly as it was;
//! - a valid document is stored as sent: the answer and a later `GET` show its parameters,
//!   annotations (plus `exec`), limits (defaults filled in) and publish flag, `?code=true`
//!   gives back the very module, and PUTting the `GET` answer back (parse → serialise → parse)
//!   changes nothing but the version, which moves forward;
//! - any path segment as the action name: accepted exactly when `names::validate` accepts it.
//!
//! Cases per property: the defaults below (about 5-15 s in release on 2 cores, with
//! `core/tests/fuzz_action_doc.rs` 10-20 s for the target); `PROPTEST_CASES=N`
//! runs N of each.

mod fuzz_common;

use base64::Engine as _;
use fuzz_common::{TestApp, cases, check, json_value, nested, pct};
use proptest::prelude::*;
use serde_json::{Value, json};
use wisp_core::entity::bump_version;
use wisp_core::{ActionDoc, Digest, Exec, Limits};

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn hello() -> Vec<u8> {
    wisp_testkit::function_bytes("hello")
}

fn key_values() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(
        (
            prop_oneof!["[a-z_]{1,8}", "\\PC{1,6}"],
            prop_oneof![
                json_value(3),
                (100usize..=120)
                    .prop_map(|d| serde_json::from_str::<Value>(&nested(d, "0")).unwrap())
            ],
        )
            .prop_map(|(k, v)| json!({"key": k, "value": v})),
        0..4,
    )
}

/// A valid PUT body for `code` (all optional fields sometimes left out).
fn valid_body(code: String) -> impl Strategy<Value = Value> {
    (
        prop::option::of(key_values()),
        prop::option::of(key_values()),
        prop::option::of((
            prop::option::of(Limits::MIN_TIMEOUT_MS..=Limits::MAX_TIMEOUT_MS),
            prop::option::of(Limits::MIN_MEMORY_MB..=Limits::MAX_MEMORY_MB),
            prop::option::of(0..=Limits::MAX_LOGS_MB),
            prop::option::of(1..=Limits::MAX_CONCURRENCY),
        )),
        prop::option::of(any::<bool>()),
        any::<bool>(),
    )
        .prop_map(move |(parameters, annotations, limits, publish, extras)| {
            let mut body = json!({"exec": {"kind": "wasm", "code": code.clone(), "binary": true}});
            if let Some(p) = parameters {
                body["parameters"] = json!(p);
            }
            if let Some(a) = annotations {
                body["annotations"] = json!(a);
            }
            if let Some((t, m, l, c)) = limits {
                let mut lim = json!({});
                for (k, v) in [
                    ("timeout", t),
                    ("memory", m),
                    ("logs", l),
                    ("concurrency", c.map(u64::from)),
                ] {
                    if let Some(v) = v {
                        lim[k] = json!(v);
                    }
                }
                body["limits"] = lim;
            }
            if let Some(p) = publish {
                body["publish"] = json!(p);
            }
            if extras {
                // Ignored fields OpenWhisk clients send.
                body["name"] = json!("ignored");
                body["namespace"] = json!("ignored");
                body["version"] = json!("9.9.9");
                body["exec"]["main"] = json!("main");
            }
            body
        })
}

/// The document the scheduler must store for `body`, over `old` (an update) or the defaults.
fn expected(body: &Value, old: Option<&ActionDoc>) -> (Value, Value, Limits, bool) {
    let list = |key: &str, old: Option<Vec<wisp_core::KeyValue>>| -> Value {
        body.get(key)
            .cloned()
            .unwrap_or_else(|| json!(old.unwrap_or_default()))
    };
    let parameters = list("parameters", old.map(|o| o.parameters.clone()));
    let mut annotations: Vec<Value> = list("annotations", old.map(|o| o.annotations.clone()))
        .as_array()
        .unwrap()
        .iter()
        .filter(|kv| kv["key"] != "exec")
        .cloned()
        .collect();
    annotations.push(json!({"key": "exec", "value": "wasm"}));
    let mut limits = old.map(|o| o.limits).unwrap_or_default();
    if let Some(l) = body.get("limits") {
        let get = |k: &str| l.get(k).and_then(Value::as_u64);
        limits.timeout = get("timeout").unwrap_or(limits.timeout);
        limits.memory = get("memory").unwrap_or(limits.memory);
        limits.logs = get("logs").unwrap_or(limits.logs);
        limits.concurrency = get("concurrency").map_or(limits.concurrency, |c| c as u32);
    }
    let publish = body
        .get("publish")
        .and_then(Value::as_bool)
        .or(old.map(|o| o.publish))
        .unwrap_or(false);
    (parameters, json!(annotations), limits, publish)
}

fn get_action(app: &TestApp, name: &str, code: bool) -> Option<ActionDoc> {
    let r = app.call(
        "GET",
        &format!("/api/v1/namespaces/_/actions/{}?code={code}", pct(name)),
        &[],
        Vec::new(),
    );
    match r.status {
        200 => Some(serde_json::from_slice(&r.body).expect("an ActionDoc")),
        404 => None,
        s => panic!("GET {name}: {s} {}", String::from_utf8_lossy(&r.body)),
    }
}

fn put(app: &TestApp, name: &str, body: Vec<u8>) -> fuzz_common::Reply {
    app.call(
        "PUT",
        &format!("/api/v1/namespaces/_/actions/{}?overwrite=true", pct(name)),
        &[("content-type".into(), b"application/json".to_vec())],
        body,
    )
}

#[test]
fn valid_action_documents_are_stored_as_sent() {
    let app = TestApp::start(true);
    let code = hello();
    let digest = Digest::of(&code).to_string();
    let input = (valid_body(b64(&code)), "[a-z][a-z0-9_-]{0,5}");
    check("valid PUT", cases(1500), input, |(body, name)| {
        let old = get_action(&app, &name, false);
        let r = put(&app, &name, body.to_string().into_bytes());
        prop_assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let doc: ActionDoc = serde_json::from_slice(&r.body).unwrap();
        let (parameters, annotations, limits, publish) = expected(&body, old.as_ref());
        prop_assert_eq!(&doc.name, &name);
        prop_assert_eq!(&doc.namespace, "guest");
        prop_assert_eq!(json!(doc.parameters), parameters);
        prop_assert_eq!(json!(doc.annotations), annotations);
        prop_assert_eq!(doc.limits, limits);
        prop_assert_eq!(doc.publish, publish);
        prop_assert_eq!(
            &doc.exec,
            &Exec::Wasm {
                code: None,
                binary: true,
                digest: Some(digest.clone())
            }
        );
        match &old {
            Some(o) => prop_assert_eq!(&doc.version, &bump_version(&o.version)),
            None => prop_assert_eq!(&doc.version, "0.0.1"),
        }
        // GET shows the same document; ?code=true the very module.
        let got = get_action(&app, &name, false).unwrap();
        prop_assert_eq!(&got, &doc);
        let with_code = get_action(&app, &name, true).unwrap();
        let Exec::Wasm { code: Some(c), .. } = &with_code.exec else {
            return Err(TestCaseError::fail("no code with ?code=true"));
        };
        prop_assert!(base64::engine::general_purpose::STANDARD.decode(c).unwrap() == code);
        // PUT the GET answer back: only the version (and time) moves.
        let again = put(&app, &name, serde_json::to_vec(&with_code).unwrap());
        prop_assert_eq!(
            again.status,
            200,
            "{}",
            String::from_utf8_lossy(&again.body)
        );
        let again: ActionDoc = serde_json::from_slice(&again.body).unwrap();
        prop_assert_eq!(&again.version, &bump_version(&doc.version));
        prop_assert_eq!(
            ActionDoc {
                version: doc.version.clone(),
                updated: doc.updated,
                ..again
            },
            doc
        );
        Ok(())
    });
}

/// JSON paths of a PUT body to corrupt.
const FIELDS: &[&[&str]] = &[
    &[],
    &["exec"],
    &["exec", "kind"],
    &["exec", "code"],
    &["exec", "binary"],
    &["exec", "components"],
    &["parameters"],
    &["annotations"],
    &["limits"],
    &["limits", "timeout"],
    &["limits", "memory"],
    &["limits", "logs"],
    &["limits", "concurrency"],
    &["publish"],
    &["version"],
    &["name"],
];

fn junk(code: &[u8]) -> impl Strategy<Value = Value> + use<> {
    let not_wasm = b64(b"#!/bin/sh\necho hi\n");
    let no_start = b64(b"\0asm\x01\0\0\0");
    let truncated = b64(&code[..code.len() / 2]);
    let wrapped = {
        let s = b64(code);
        format!("{}\n{}", &s[..64], &s[64..])
    };
    prop_oneof![
        json_value(3),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e300)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(18446744073709551616.0)),
        Just(json!("")),
        Just(json!("   ")),
        Just(json!("@@not base64@@")),
        Just(json!(not_wasm)),
        Just(json!(no_start)),
        Just(json!(truncated)),
        Just(json!(wrapped)),
        Just(json!("nodejs:20")),
        Just(json!("sequence")),
        Just(json!([{"key": "", "value": 1}])),
        Just(json!([{"key": 1, "value": 1}])),
        Just(json!([{"value": 1}])),
        Just(json!({"kind": "sequence", "components": ["/guest/missing"]})),
        Just(json!({"kind": "sequence", "components": ["a/b/c/d"]})),
        Just(json!({"kind": "sequence", "components": []})),
        (126usize..135)
            .prop_map(|d| serde_json::from_str::<Value>(&nested(d.min(126), "1")).unwrap()),
    ]
}

fn set_path(body: &mut Value, path: &[&str], v: Value) {
    if path.is_empty() {
        *body = v;
        return;
    }
    let mut at = body;
    for k in &path[..path.len() - 1] {
        if !at[*k].is_object() {
            at[*k] = json!({});
        }
        at = at.get_mut(*k).unwrap();
    }
    at[path[path.len() - 1]] = v;
}

#[test]
fn corrupted_action_documents_are_refused_cleanly() {
    let app = TestApp::start(true);
    let code = hello();
    let name = "victim";
    let first = put(
        &app,
        name,
        json!({"exec": {"kind": "wasm", "code": b64(&code)}})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(first.status, 200);
    let raw = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (0usize..3000).prop_map(|d| format!("{{\"parameters\": [{{\"key\": \"k\", \"value\": {}}}]}}", "[".repeat(d)).into_bytes()),
        (100usize..140).prop_map(|d| format!("{{\"parameters\": [{{\"key\": \"k\", \"value\": {}}}]}}", nested(d, "1")).into_bytes()),
        Just(b"{\"exec\": {\"kind\": \"wasm\", \"code\": \"AGFzbQ==\"}, \"limits\": {\"timeout\": 1e400}}".to_vec()),
        Just(b"\xef\xbb\xbf{}".to_vec()),
        Just(b"{\"exec\": {\"kind\": \"wasm\", \"code\": \"\\ud800\"}}".to_vec()),
    ];
    let structured = (
        valid_body(b64(&code)),
        prop::sample::select(FIELDS),
        junk(&code),
    )
        .prop_map(|(mut body, path, junk)| {
            set_path(&mut body, path, junk);
            body.to_string().into_bytes()
        });
    let input = prop_oneof![3 => structured, 1 => raw];
    check("corrupted PUT", cases(5000), input, |body| {
        let before = get_action(&app, name, true);
        let r = put(&app, name, body.clone());
        if r.status == 200 {
            let doc: ActionDoc = serde_json::from_slice(&r.body).unwrap();
            prop_assert!(doc.limits.validate().is_ok());
            // What was stored reads back.
            prop_assert!(get_action(&app, name, true).is_some());
        } else {
            r.assert_clean_error()?;
            prop_assert_eq!(
                get_action(&app, name, true),
                before,
                "a refused PUT changed the action"
            );
        }
        Ok(())
    });
}

#[test]
fn action_names_are_accepted_exactly_when_valid() {
    let app = TestApp::start(false);
    let body = json!({"exec": {"kind": "wasm", "code": b64(b"\0asm\x01\0\0\0")}}).to_string();
    let name = prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9_@ .\\-]{1,10}",
        "\\PC{1,10}",
        "[a-z]{250,260}",
        Just("..".to_string()),
        Just("a/b".to_string()),
        Just("_".to_string()),
    ];
    check("action names", cases(5000), name, |name| {
        prop_assume!(!name.is_empty());
        let r = put(&app, &name, body.clone().into_bytes());
        let valid = wisp_core::names::validate(&name).is_ok();
        if valid {
            prop_assert_eq!(
                r.status,
                200,
                "{:?}: {}",
                name,
                String::from_utf8_lossy(&r.body)
            );
            let doc: ActionDoc = serde_json::from_slice(&r.body).unwrap();
            prop_assert_eq!(&doc.name, &name);
            prop_assert_eq!(
                get_action(&app, &name, false).map(|d| d.name),
                Some(name.clone())
            );
        } else {
            r.assert_clean_error()?;
        }
        Ok(())
    });
}
