//! Fuzz target 3 of issue 7: web actions (`scheduler/src/web.rs`): the request → parameters
//! mapping, the result → HTTP response mapping, and whole requests through the real router
//! (`tower::ServiceExt::oneshot`) of a scheduler whose runtime runs the real `echo` function.
//!
//! Properties:
//! - `build_params` never panics and maps what it is given: `__ow_method` (lowercase),
//!   `__ow_headers` (every header, repeated ones joined), `__ow_path`, the query's decoded pairs
//!   (later wins), a JSON object or form body over the query, any other body in `__ow_body`
//!   (base64 when binary: it decodes back to the very bytes); `raw-http` gets the query string
//!   and body untouched; it fails only on a JSON body that does not parse;
//! - `transcode` never panics; an answer it refuses is a 4xx JSON `{error, code}`; a
//!   `{statusCode, headers, body}` result becomes exactly that response, and no status outside
//!   200-599 ever reaches hyper (which turns a 1xx into a 500);
//! - any request on `/api/v1/web/...` (any method, path bytes, extension, headers, query and
//!   body) answers without a 5xx, errors as JSON `{error, code}`, and `echo.json` shows the
//!   request's parameters.
//!
//! Cases per property: the defaults below (about 12 s in release on 2 cores); `PROPTEST_CASES=N`
//! runs N of each. Bugs found keep a `regression_*` test.

mod fuzz_common;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use base64::Engine as _;
use fuzz_common::{TestApp, cases, check, json_value, pct, pct_bytes};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use wisp_scheduler::web::{Extension, build_params, is_binary, transcode};

fn b64d(s: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str()?)
        .ok()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"
        ])
        .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
        "[A-Z]{1,8}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

/// Header names and values HTTP can carry (values: visible ASCII, spaces, obs-text bytes).
fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "x-custom",
            "accept",
            "x-require-whisk-auth",
            "cookie",
            "x-a"
        ])
        .prop_map(str::to_string),
        "[a-z][a-z0-9-]{0,10}",
    ];
    let value = prop_oneof![
        "[ -~]{0,20}".prop_map(String::into_bytes),
        prop::collection::vec(
            prop_oneof![0x20u8..=0x7e, 0x80u8..=0xff, Just(b'\t')],
            0..20
        ),
    ];
    prop::collection::vec((name, value), 0..5).prop_map(|hs| {
        hs.into_iter()
            .filter(|(_, v)| v.first() != Some(&b' ') && v.first() != Some(&b'\t'))
            .filter(|(_, v)| v.last() != Some(&b' ') && v.last() != Some(&b'\t'))
            .collect()
    })
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        prop::sample::select(vec![
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/vnd.api+json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "text/html; charset=iso-8859-1",
            "application/xml",
            "application/octet-stream",
            "image/png",
            "multipart/form-data; boundary=x",
        ])
        .prop_map(str::to_string),
        "[a-z]{1,6}/[a-z+.-]{1,8}",
    ])
}

/// Query pairs (unicode keys and values) and their encoding.
fn query() -> impl Strategy<Value = (Vec<(String, String)>, String)> {
    prop::collection::vec(("\\PC{1,6}", "\\PC{0,8}"), 0..5).prop_map(|pairs| {
        let text = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", pct(k), pct(v).replace("%20", "+")))
            .collect::<Vec<_>>()
            .join("&");
        (pairs, text)
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..64),
        "\\PC{0,32}".prop_map(String::into_bytes),
        json_value(3).prop_map(|v| v.to_string().into_bytes()),
        prop::collection::btree_map("[a-z]{1,5}", json_value(2), 0..4)
            .prop_map(|m| serde_json::to_vec(&m).unwrap()),
        prop::collection::vec(("[a-z]{1,4}", "\\PC{0,6}"), 0..4).prop_map(|p| p
            .iter()
            .map(|(k, v)| format!("{k}={}", pct(v)))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()),
    ]
}

/// Lowercase `type/subtype` of a content type, as the mapping classifies it.
fn media(ct: &Option<String>) -> String {
    ct.as_deref()
        .map(|c| c.split(';').next().unwrap().trim().to_ascii_lowercase())
        .unwrap_or_else(|| "application/octet-stream".into())
}

fn json_family(mt: &str) -> bool {
    mt == "application/json" || mt.ends_with("+json")
}

proptest! {
    #![proptest_config(fuzz_common::config(cases(50_000)))]

    #[test]
    fn web_requests_map_to_parameters(
        method in method(),
        hs in headers(),
        ct in content_type(),
        rest in prop_oneof![Just(String::new()), "(/\\PC{0,6}){1,3}"],
        (pairs, query) in prop_oneof![
            query(),
            "[ -~]{0,30}".prop_map(|q| (Vec::new(), q)),
        ],
        body in body(),
        raw in any::<bool>(),
        user in prop::option::of("[a-z]{1,8}"),
    ) {
        let mut headers = HeaderMap::new();
        for (n, v) in &hs {
            headers.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_bytes(v).unwrap());
        }
        if let Some(ct) = &ct {
            headers.insert("content-type", HeaderValue::from_str(ct).unwrap());
        }
        let mt = media(&ct);
        let result = build_params(&method, &headers, &rest, &query, &body, raw, user.as_deref());
        let p = match result {
            Ok(p) => p,
            Err(e) => {
                prop_assert!(!raw && json_family(&mt) && !body.is_empty(), "refused: {}", e);
                prop_assert!(serde_json::from_slice::<Value>(&body).is_err(), "valid JSON refused");
                return Ok(());
            }
        };
        let c = &p.context;
        prop_assert_eq!(&c["__ow_method"], &json!(method.as_str().to_ascii_lowercase()));
        prop_assert_eq!(&c["__ow_path"], &json!(rest));
        prop_assert_eq!(c.get("__ow_user").cloned(), user.as_ref().map(|u| json!(u)));
        // Every header, repeated ones joined with ", " in order.
        let mut expect_headers = Map::new();
        for (name, value) in headers.iter() {
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match expect_headers.get_mut(name.as_str()) {
                Some(Value::String(s)) => { s.push_str(", "); s.push_str(&v); }
                _ => { expect_headers.insert(name.as_str().into(), json!(v)); }
            }
        }
        prop_assert_eq!(&c["__ow_headers"], &Value::Object(expect_headers));
        if raw {
            prop_assert!(p.request.is_empty());
            prop_assert_eq!(&c["__ow_query"], &json!(query));
            let ob = &c["__ow_body"];
            if body.is_empty() {
                prop_assert_eq!(ob, &json!(""));
            } else if is_binary(&mt) || json_family(&mt) {
                prop_assert_eq!(b64d(ob), Some(body.clone()));
            } else if let Ok(text) = std::str::from_utf8(&body) {
                prop_assert_eq!(ob, &json!(text));
            }
            return Ok(());
        }
        prop_assert!(!c.contains_key("__ow_query"));
        // The body's fields win over the query's; otherwise the last query value wins.
        let body_object = json_family(&mt)
            .then(|| serde_json::from_slice::<Value>(&body).ok())
            .flatten()
            .and_then(|v| v.as_object().cloned());
        let form = mt == "application/x-www-form-urlencoded" && !body.is_empty();
        for (k, _) in &pairs {
            let last = pairs.iter().rev().find(|(k2, _)| k2 == k).unwrap();
            let overridden = body_object.as_ref().is_some_and(|o| o.contains_key(k)) || form;
            if !overridden {
                prop_assert_eq!(p.request.get(k), Some(&json!(last.1)), "query key {:?}", k);
            }
        }
        if let Some(o) = &body_object {
            for (k, v) in o {
                prop_assert_eq!(p.request.get(k), Some(v));
            }
            prop_assert!(!c.contains_key("__ow_body"));
        } else if body.is_empty() || form {
            prop_assert!(!c.contains_key("__ow_body"));
        } else if json_family(&mt) {
            // A JSON value that is not an object.
            prop_assert_eq!(Some(c["__ow_body"].clone()), serde_json::from_slice::<Value>(&body).ok());
        } else if is_binary(&mt) {
            prop_assert_eq!(b64d(&c["__ow_body"]), Some(body.clone()));
        } else if let Ok(text) = std::str::from_utf8(&body) {
            prop_assert_eq!(&c["__ow_body"], &json!(text));
        }
    }
}

fn extension() -> impl Strategy<Value = Extension> {
    prop::sample::select(vec![
        Extension::Http,
        Extension::Json,
        Extension::Html,
        Extension::Svg,
        Extension::Text,
    ])
}

/// A well-formed `.http` result: (status, headers, body text, content type).
fn http_result() -> impl Strategy<Value = (u16, Vec<(String, String)>, Vec<u8>, &'static str)> {
    (
        prop_oneof![200u16..=599, Just(200), Just(302)],
        prop::collection::vec(("x-[a-z]{1,8}", "[!-~]{1,12}"), 0..4),
        prop::collection::vec(any::<u8>(), 1..64),
        prop::sample::select(vec![
            "text/plain",
            "image/png",
            "application/octet-stream",
            "text/html; charset=UTF-8",
        ]),
    )
}

/// An answer the web route may give: a 4xx refusal must be JSON `{error, code}`.
fn check_answer(s: u16, headers: &HeaderMap, body: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!((200..600).contains(&s), "status {}", s);
    if s >= 400 {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        prop_assert!(ct.starts_with("application/json"), "{} with {:?}", s, ct);
        let v: Value =
            serde_json::from_slice(body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(v["error"].is_string() && v["code"].is_string(), "{}", v);
    }
    Ok(())
}

fn response_parts(r: axum::response::Response) -> (axum::response::Response<()>, Vec<u8>) {
    let (parts, body) = r.into_parts();
    let bytes = futures::executor::block_on(axum::body::to_bytes(body, usize::MAX)).unwrap();
    (
        axum::response::Response::from_parts(parts, ()),
        bytes.to_vec(),
    )
}

proptest! {
    #![proptest_config(fuzz_common::config(cases(50_000)))]

    #[test]
    fn web_results_map_to_responses(
        ext in extension(),
        result in prop_oneof![
            json_value(4),
            (json_value(2), json_value(2), json_value(2)).prop_map(|(s, h, b)| json!({"statusCode": s, "headers": h, "body": b})),
            (any::<i64>(), "[a-z]{0,5}").prop_map(|(s, b)| json!({"statusCode": s, "body": b})),
            (0u16..1000).prop_map(|s| json!({"statusCode": s})),
            (0u16..1000).prop_map(|s| json!({"statusCode": s.to_string()})),
        ],
    ) {
        // Did the action choose a (valid) status itself?
        let chosen = ext == Extension::Http
            && match result.get("statusCode") {
                Some(Value::Number(n)) => n.as_u64().is_some_and(|c| (200..600).contains(&c)),
                Some(Value::String(t)) => t.trim().parse::<u16>().is_ok_and(|c| (200..600).contains(&c)),
                _ => false,
            };
        let (r, body) = response_parts(transcode(ext, result));
        let s = r.status().as_u16();
        prop_assert!((200..600).contains(&s), "status {} reaches hyper", s);
        if !chosen {
            check_answer(s, r.headers(), &body)?;
        }
    }

    #[test]
    fn http_results_become_exactly_that_response((status, hs, bytes, ct) in http_result(), as_string in any::<bool>()) {
        let hs: std::collections::BTreeMap<String, String> = hs.into_iter().collect();
        let mut headers = Map::new();
        for (k, v) in &hs {
            headers.insert(k.clone(), json!(v));
        }
        headers.insert("content-type".into(), json!(ct));
        let binary = is_binary(&media(&Some(ct.to_string())));
        let body = if binary {
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let code = if as_string { json!(status.to_string()) } else { json!(status) };
        let (r, got) = response_parts(transcode(
            Extension::Http,
            json!({"statusCode": code, "headers": headers, "body": body}),
        ));
        prop_assert_eq!(r.status().as_u16(), status);
        prop_assert_eq!(r.headers()["content-type"].to_str().unwrap(), ct);
        for (k, v) in &hs {
            prop_assert!(r.headers().get_all(k.as_str()).iter().any(|x| x == v.as_str()), "header {}", k);
        }
        let expected = if binary { bytes } else { body.into_bytes() };
        prop_assert_eq!(got, expected);
    }
}

// ---- whole requests through the router ----

fn deploy(app: &TestApp, path: &str, annotations: Value) {
    let echo = wisp_testkit::function_bytes("echo");
    let body = json!({
        "exec": {"kind": "wasm", "code": base64::engine::general_purpose::STANDARD.encode(echo)},
        "annotations": annotations,
    });
    let r = app.call(
        "PUT",
        &format!("/api/v1/namespaces/_/actions/{path}?overwrite=true"),
        &[],
        body.to_string().into_bytes(),
    );
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
}

fn web_app() -> TestApp {
    let app = TestApp::start(true);
    let r = app.call(
        "PUT",
        "/api/v1/namespaces/_/packages/pkg",
        &[],
        b"{}".to_vec(),
    );
    assert_eq!(r.status, 200);
    let export = json!([{"key": "web-export", "value": true}]);
    deploy(&app, "echo", export.clone());
    deploy(&app, "pkg/echo", export);
    deploy(
        &app,
        "rawecho",
        json!([{"key": "web-export", "value": true}, {"key": "raw-http", "value": true}]),
    );
    deploy(
        &app,
        "authecho",
        json!([{"key": "web-export", "value": true}, {"key": "require-whisk-auth", "value": "s3cret"}]),
    );
    deploy(&app, "private", json!([]));
    app
}

/// One path segment: a name, a near-miss, or arbitrary bytes (percent-encoded).
fn segment(names: Vec<&'static str>) -> impl Strategy<Value = String> {
    prop_oneof![
        16 => prop::sample::select(names).prop_map(str::to_string),
        1 => "\\PC{1,6}".prop_map(|s| pct(&s)),
        1 => prop::collection::vec(any::<u8>(), 1..6).prop_map(|b| pct_bytes(&b)),
        1 => Just("%FF".to_string()),
        1 => Just("..".to_string()),
    ]
}

/// A request: method, URI, headers, body.
type WebRequest = (Method, String, Vec<(String, Vec<u8>)>, Vec<u8>);

fn web_request() -> impl Strategy<Value = WebRequest> {
    let path = (
        segment(vec!["guest", "guest", "nobody"]),
        segment(vec!["default", "default", "pkg"]),
        segment(vec!["echo", "echo", "rawecho", "authecho", "private"]),
        prop::sample::select(vec![
            "", "", ".json", ".json", ".http", ".html", ".svg", ".text", ".xml",
        ]),
        prop_oneof![
            Just(String::new()),
            prop::collection::vec(segment(vec!["a", "b"]), 1..3)
                .prop_map(|s| format!("/{}", s.join("/")))
        ],
        prop_oneof![
            query().prop_map(|(_, q)| q),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| pct_bytes(&b)),
        ],
    )
        .prop_map(|(ns, pkg, name, ext, rest, q)| {
            let q = if q.is_empty() {
                String::new()
            } else {
                format!("?{q}")
            };
            format!("/api/v1/web/{ns}/{pkg}/{name}{ext}{rest}{q}")
        });
    (
        method(),
        path,
        headers(),
        content_type(),
        body(),
        any::<bool>(),
    )
        .prop_map(|(m, path, mut hs, ct, body, secret)| {
            if let Some(ct) = ct {
                hs.push(("content-type".into(), ct.into_bytes()));
            }
            if secret {
                hs.push(("x-require-whisk-auth".into(), b"s3cret".to_vec()));
            }
            (m, path, hs, body)
        })
}

#[test]
fn web_requests_through_the_router_never_fail_with_5xx() {
    let app = web_app();
    let (sent, activated) = (AtomicUsize::new(0), AtomicUsize::new(0));
    check(
        "web request",
        cases(60_000),
        web_request(),
        |(method, uri, headers, body)| {
            let r = app.call_raw(method.as_str(), &uri, &headers, body);
            sent.fetch_add(1, Ordering::Relaxed);
            if r.headers.contains_key("x-openwhisk-activation-id") {
                activated.fetch_add(1, Ordering::Relaxed);
            }
            prop_assert!(
                r.status < 500,
                "{} {} answered {}: {}",
                method,
                uri,
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            // (HEAD answers carry no body.)
            if r.status >= 400 && method != Method::HEAD {
                r.assert_clean_error()?;
            }
            if r.status == 200
                && uri.contains("/echo.json")
                && method != Method::HEAD
                && method != Method::OPTIONS
            {
                let p: Value = serde_json::from_slice(&r.body).unwrap();
                prop_assert_eq!(
                    &p["__ow_method"],
                    &json!(method.as_str().to_ascii_lowercase())
                );
                prop_assert!(p["__ow_headers"].is_object());
            }
            Ok(())
        },
    );
    // The generator must reach the actions, not only the 404s around them.
    let (sent, activated) = (sent.into_inner(), activated.into_inner());
    assert!(
        activated * 10 >= sent,
        "only {activated} of {sent} requests ran an action"
    );
}

// ---- regressions ----

/// A path that is not UTF-8 once decoded was answered 400 in text/plain by axum's extractor.
#[test]
fn regression_non_utf8_path_is_a_json_error() {
    let app = TestApp::start(false);
    let r = app.call_raw("GET", "/api/v1/web/guest/default/%FF", &[], Vec::new());
    assert_eq!(r.status, 400);
    fuzz_common::Reply::assert_clean_error(&r).unwrap();
}

/// A body over the 1 MB limit was answered 413 in text/plain.
#[test]
fn regression_oversized_web_body_is_a_json_error() {
    let app = TestApp::start(false);
    let r = app.call_raw(
        "POST",
        "/api/v1/web/guest/default/echo.json",
        &[("content-type".into(), b"text/plain".to_vec())],
        vec![b'x'; 2 << 20],
    );
    assert_eq!(r.status, 413);
    fuzz_common::Reply::assert_clean_error(&r).unwrap();
}

/// `statusCode: 101` went to hyper as a final status, which answers a 500 instead.
#[test]
fn regression_informational_status_codes_are_refused() {
    for code in [json!(100), json!(101), json!("199"), json!(600), json!(999)] {
        let r = transcode(Extension::Http, json!({"statusCode": code, "body": "hi"}));
        assert_eq!(r.status().as_u16(), 400, "{code}");
    }
}
