//! Actions and packages through the REST API, against a real scheduler and a real runtime:
//! CRUD round trip, overwrite and version bumps, code stored once per digest, listing windows,
//! every refused input of issue 3 leaving the store unchanged, packages and parameter merging.

mod common;

use anyhow::Result;
use base64::Engine as _;
use common::{Platform, action_body, hello_wasm};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACTIONS: &str = "/api/v1/namespaces/_/actions";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Asserts `{error, code}` with a non-empty message.
fn assert_error(body: &Value) {
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "no error message: {body}"
    );
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "no error code: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_round_trip() -> Result<()> {
    let p = Platform::start(1).await?;
    let wasm = hello_wasm();
    let created = p.guest.create_action("hello", &wasm).await?;
    assert_eq!(created["name"], "hello");
    assert_eq!(created["namespace"], "guest");
    assert_eq!(created["version"], "0.0.1");
    assert_eq!(created["exec"]["kind"], "wasm");
    assert!(
        created["exec"].get("code").is_none(),
        "PUT answers without code"
    );
    assert_eq!(created["limits"]["timeout"], 60_000);
    assert_eq!(created["limits"]["memory"], 256);

    let (s, got) = p.guest.get(&format!("{ACTIONS}/hello")).await?;
    assert_eq!(s, StatusCode::OK);
    assert!(
        got["exec"].get("code").is_none(),
        "GET omits code by default"
    );
    assert_eq!(
        got["exec"]["digest"],
        wisp_core::Digest::of(&wasm).to_string()
    );

    let (s, with_code) = p.guest.get(&format!("{ACTIONS}/hello?code=true")).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(with_code["exec"]["code"], b64(&wasm));

    let (s, list) = p.guest.get(ACTIONS).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["name"], "hello");
    assert!(list[0]["exec"].get("code").is_none());

    let (s, deleted) = p.guest.delete(&format!("{ACTIONS}/hello")).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(deleted["name"], "hello");
    let (s, body) = p.guest.get(&format!("{ACTIONS}/hello")).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&body);
    let (s, _) = p.guest.delete(&format!("{ACTIONS}/hello")).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        p.scheduler.state.store.count_code().await?,
        0,
        "code goes with its last action"
    );
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_bumps_the_version_and_merges_fields() -> Result<()> {
    let p = Platform::start(1).await?;
    let wasm = hello_wasm();
    let mut body = action_body(&wasm);
    body["parameters"] = json!([{"key": "name", "value": "Ada"}]);
    body["limits"] = json!({"timeout": 5000});
    let (s, _) = p.guest.put(&format!("{ACTIONS}/greet"), &body).await?;
    assert_eq!(s, StatusCode::OK);

    let (s, conflict) = p.guest.put(&format!("{ACTIONS}/greet"), &body).await?;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_error(&conflict);
    let (_, got) = p.guest.get(&format!("{ACTIONS}/greet")).await?;
    assert_eq!(got["version"], "0.0.1", "a refused create changes nothing");

    let (s, updated) = p
        .guest
        .put(&format!("{ACTIONS}/greet?overwrite=true"), &body)
        .await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(updated["version"], "0.0.2");

    // An update without exec keeps the code; limits merge field by field.
    let (s, updated) = p
        .guest
        .put(
            &format!("{ACTIONS}/greet?overwrite=true"),
            &json!({"limits": {"memory": 128}, "publish": true}),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["version"], "0.0.3");
    assert_eq!(updated["limits"]["timeout"], 5000);
    assert_eq!(updated["limits"]["memory"], 128);
    assert_eq!(updated["publish"], true);
    assert_eq!(
        updated["parameters"],
        json!([{"key": "name", "value": "Ada"}])
    );
    assert_eq!(
        updated["exec"]["digest"],
        wisp_core::Digest::of(&wasm).to_string()
    );

    // The updated action still runs, with its default parameter.
    let (s, rec) = p.guest.invoke("greet", json!({})).await?;
    assert_eq!(s, StatusCode::OK, "{rec}");
    assert_eq!(rec["response"]["result"]["greeting"], "Hello, Ada!");
    assert_eq!(rec["version"], "0.0.3");
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_code_is_stored_once() -> Result<()> {
    let p = Platform::start(1).await?;
    let hello = hello_wasm();
    let echo = wisp_testkit::function_bytes("echo");
    let store = &p.scheduler.state.store;
    p.guest.create_action("a", &hello).await?;
    p.guest.create_action("b", &hello).await?;
    assert_eq!(store.count_code().await?, 1);
    p.guest.create_action("c", &echo).await?;
    assert_eq!(store.count_code().await?, 2);
    // Moving `c` to hello's code drops echo's blob.
    let (s, _) = p
        .guest
        .put(&format!("{ACTIONS}/c?overwrite=true"), &action_body(&hello))
        .await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(store.count_code().await?, 1);
    // Every action still runs from the shared blob.
    for name in ["a", "b", "c"] {
        let (s, rec) = p.guest.invoke(name, json!({"name": name})).await?;
        assert_eq!(s, StatusCode::OK, "{rec}");
        assert_eq!(
            rec["response"]["result"]["greeting"],
            format!("Hello, {name}!")
        );
    }
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_honours_limit_skip_and_count() -> Result<()> {
    let p = Platform::start(1).await?;
    let wasm = hello_wasm();
    for i in 0..5 {
        p.guest.create_action(&format!("a{i}"), &wasm).await?;
    }
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, all) = p.guest.get(ACTIONS).await?;
    let all = names(&all);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, ["a0", "a1", "a2", "a3", "a4"]);
    // Pages are consecutive windows of the full listing (newest update first).
    let (_, page) = p.guest.get(&format!("{ACTIONS}?limit=2")).await?;
    assert_eq!(names(&page), all[0..2]);
    let (_, page) = p.guest.get(&format!("{ACTIONS}?limit=2&skip=2")).await?;
    assert_eq!(names(&page), all[2..4]);
    let (_, page) = p.guest.get(&format!("{ACTIONS}?skip=4")).await?;
    assert_eq!(names(&page), all[4..5]);
    // An update moves an action to the front.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (s, _) = p
        .guest
        .put(
            &format!("{ACTIONS}/{}?overwrite=true", all[4]),
            &json!({"publish": true}),
        )
        .await?;
    assert_eq!(s, StatusCode::OK);
    let (_, first) = p.guest.get(&format!("{ACTIONS}?limit=1")).await?;
    assert_eq!(names(&first), all[4..5]);
    let (_, count) = p.guest.get(&format!("{ACTIONS}?count=true")).await?;
    assert_eq!(count, json!({"actions": 5}));
    for bad in [
        "limit=201",
        "limit=-1",
        "limit=abc",
        "skip=x",
        "count=maybe",
    ] {
        let (s, body) = p.guest.get(&format!("{ACTIONS}?{bad}")).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_error(&body);
    }
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_leaves_the_store_unchanged() -> Result<()> {
    let p = Platform::start(1).await?;
    let wasm = hello_wasm();
    p.guest.create_action("existing", &wasm).await?;
    let store = &p.scheduler.state.store;
    let before = p.guest.action_listing().await?;
    let codes_before = store.count_code().await?;

    let with_exec = |exec: Value| json!({"exec": exec});
    let valid_exec = action_body(&wasm)["exec"].clone();
    let mut cases: Vec<(&str, String, Vec<u8>, StatusCode)> = vec![
        (
            "malformed JSON",
            "x".into(),
            b"{\"exec\": ".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not an object",
            "x".into(),
            b"[1, 2]".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no exec",
            "x".into(),
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "code not a string",
            "x".into(),
            with_exec(json!({"kind": "wasm", "code": 123}))
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "parameters not a list",
            "x".into(),
            json!({"exec": valid_exec, "parameters": "a=b"})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "timeout not a number",
            "x".into(),
            json!({"exec": valid_exec, "limits": {"timeout": "soon"}})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "publish not a bool",
            "x".into(),
            json!({"exec": valid_exec, "publish": "yes"})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "memory out of range",
            "x".into(),
            json!({"exec": valid_exec, "limits": {"memory": 4096}})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "timeout out of range",
            "x".into(),
            json!({"exec": valid_exec, "limits": {"timeout": 300_001}})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "kind nodejs",
            "x".into(),
            with_exec(json!({"kind": "nodejs:20", "code": "function main(){}"}))
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "code not base64",
            "x".into(),
            with_exec(json!({"kind": "wasm", "code": "%%% not base64 %%%"}))
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "code not wasm",
            "x".into(),
            with_exec(json!({"kind": "wasm", "code": b64(b"#!/bin/sh\necho hi\n")}))
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "wasm magic but not a module",
            "x".into(),
            with_exec(
                json!({"kind": "wasm", "code": b64(b"\0asm\x01\0\0\0garbage that is no section")}),
            )
            .to_string()
            .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "empty sequence",
            "x".into(),
            with_exec(json!({"kind": "sequence", "components": []}))
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad sequence component",
            "x".into(),
            with_exec(json!({"kind": "sequence", "components": ["/guest/a..b"]}))
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "name with ..",
            "a..b".into(),
            action_body(&wasm).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "name over 256 chars",
            "n".repeat(257),
            action_body(&wasm).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "name starting with -",
            "-x".into(),
            action_body(&wasm).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing package",
            "nopkg/x".into(),
            action_body(&wasm).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "create over an existing action",
            "existing".into(),
            action_body(&wasm).to_string().into_bytes(),
            StatusCode::CONFLICT,
        ),
    ];
    // Over 1 MB: 413, whatever the content.
    let mut big = action_body(&wasm);
    big["parameters"] = json!([{"key": "blob", "value": "x".repeat(1024 * 1024)}]);
    cases.push((
        "body over 1 MB",
        "big".into(),
        big.to_string().into_bytes(),
        StatusCode::PAYLOAD_TOO_LARGE,
    ));

    for (what, name, body, expected) in cases {
        let (status, answer) = p.guest.put_raw(&format!("{ACTIONS}/{name}"), body).await?;
        assert_eq!(status, expected, "{what}: {answer}");
        assert_error(&answer);
    }
    // Also through the package route, and a 413 on an invoke body.
    let (s, body) = p
        .guest
        .put_raw(
            &format!("{ACTIONS}/p..q/x"),
            action_body(&wasm).to_string().into_bytes(),
        )
        .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let big_params = json!({"blob": "y".repeat(1024 * 1024 + 10)});
    let (s, body) = p
        .guest
        .post(&format!("{ACTIONS}/existing?blocking=true"), &big_params)
        .await?;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_error(&body);

    assert_eq!(
        p.guest.action_listing().await?,
        before,
        "the store is unchanged"
    );
    assert_eq!(store.count_code().await?, codes_before);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_are_stored_with_qualified_components() -> Result<()> {
    let p = Platform::start(1).await?;
    // Components must exist (issue 5: missing ones are refused, see composition_api.rs).
    let (s, _) = p
        .guest
        .put("/api/v1/namespaces/_/packages/pkg", &json!({}))
        .await?;
    assert_eq!(s, StatusCode::OK);
    let echo = wisp_testkit::function_bytes("echo");
    for name in ["a", "pkg/b", "c", "d"] {
        p.guest.create_action(name, &echo).await?;
    }
    let body =
        json!({"exec": {"kind": "sequence", "components": ["a", "pkg/b", "/guest/c", "/_/d"]}});
    let (s, doc) = p.guest.put(&format!("{ACTIONS}/seq"), &body).await?;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(
        doc["exec"]["components"],
        json!(["/guest/a", "/guest/pkg/b", "/guest/c", "/guest/d"])
    );
    let (_, got) = p.guest.get(&format!("{ACTIONS}/seq")).await?;
    assert_eq!(got["exec"]["kind"], "sequence");
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_hold_actions_and_default_parameters() -> Result<()> {
    let p = Platform::start(1).await?;
    let pkgs = "/api/v1/namespaces/_/packages";
    let (s, pkg) = p
        .guest
        .put(
            &format!("{pkgs}/tools"),
            &json!({"parameters": [{"key": "a", "value": "pkg"}, {"key": "b", "value": "pkg"}, {"key": "c", "value": "pkg"}]}),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{pkg}");
    assert_eq!(pkg["version"], "0.0.1");
    let (s, _) = p.guest.put(&format!("{pkgs}/tools"), &json!({})).await?;
    assert_eq!(s, StatusCode::CONFLICT);

    let mut body = action_body(&wisp_testkit::function_bytes("echo"));
    body["parameters"] = json!([{"key": "b", "value": "action"}, {"key": "c", "value": "action"}]);
    let (s, doc) = p.guest.put(&format!("{ACTIONS}/tools/echo"), &body).await?;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["namespace"], "guest/tools");

    let (s, got) = p.guest.get(&format!("{pkgs}/tools")).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["actions"][0]["name"], "echo");
    let (_, listed) = p.guest.get(&format!("{ACTIONS}/tools/")).await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let (_, listed) = p.guest.get("/api/v1/namespaces/_/packages").await?;
    assert_eq!(listed[0]["name"], "tools");

    // package < action < invocation.
    let (s, rec) = p
        .guest
        .post(
            &format!("{ACTIONS}/tools/echo?blocking=true&result=true"),
            &json!({"c": "invoke"}),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{rec}");
    assert_eq!(rec, json!({"a": "pkg", "b": "action", "c": "invoke"}));

    let (s, body) = p.guest.delete(&format!("{pkgs}/tools")).await?;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a package with actions cannot go: {body}"
    );
    assert_error(&body);
    p.guest.delete(&format!("{ACTIONS}/tools/echo")).await?;
    let (s, _) = p.guest.delete(&format!("{pkgs}/tools")).await?;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = p.guest.get(&format!("{pkgs}/tools")).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    p.stop().await
}

/// Appends a custom section of `size` bytes: still a valid module, just bigger.
fn with_custom_section(wasm: &[u8], size: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"wisp-test-padding";
    let mut payload = Vec::with_capacity(size + name.len() + 1);
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.resize(payload.len() + size, 0xab);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_over_one_megabyte_is_accepted_up_to_openwhisks_48_mb() -> Result<()> {
    let p = Platform::start(1).await?;
    // A 3 MB module: the body is over the 1 MB document limit, but code may be up to 48 MB.
    let big = with_custom_section(&hello_wasm(), 3 << 20);
    p.guest.create_action("big", &big).await?;
    let (s, answer) = p
        .guest
        .post(
            &format!("{ACTIONS}/big?blocking=true&result=true"),
            &json!({"name": "Big"}),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["greeting"], "Hello, Big!");

    // The rest of the document is still held to 1 MB, code or not.
    let mut body = action_body(&hello_wasm());
    body["parameters"] = json!([{"key": "blob", "value": "x".repeat(1024 * 1024)}]);
    let (s, answer) = p
        .guest
        .put_raw(&format!("{ACTIONS}/params"), body.to_string().into_bytes())
        .await?;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_error(&answer);

    // Code just over 48 MB: 413 naming the limit, and nothing stored.
    let mut huge = b"\0asm\x01\0\0\0".to_vec();
    huge.resize((48 << 20) + (100 << 10), 0);
    let (s, answer) = p
        .guest
        .put_raw(
            &format!("{ACTIONS}/huge"),
            action_body(&huge).to_string().into_bytes(),
        )
        .await?;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("50331648"),
        "{answer}"
    );
    let (s, _) = p.guest.get(&format!("{ACTIONS}/huge")).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    Ok(())
}
