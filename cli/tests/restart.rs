//! `wisp up` stopped with SIGTERM and started again on the same data dir keeps every action,
//! every acknowledged activation, and the guest key; `--auth` replaces the key.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Env, Platform, free_port, function};
use serde_json::json;

#[test]
fn restart_keeps_actions_activations_and_the_guest_key() {
    let env = Env::new();
    // An existing OpenWhisk config: its other lines must survive `wisp up`.
    std::fs::write(env.config_file(), "NAMESPACE=guest\nFOO=bar\n").unwrap();
    let port = free_port();
    let mut up = Platform::start_on(&env, port, &[]);
    let props = std::fs::read_to_string(env.config_file()).unwrap();
    assert_eq!(
        props,
        format!(
            "NAMESPACE=guest\nFOO=bar\nAPIHOST=http://127.0.0.1:{port}\nAUTH={}\n",
            up.auth
        )
    );
    let key_file = env.data_dir().join("guest.auth");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), up.auth);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "guest.auth must be private");

    let hello = function("hello");
    env.wisp([
        "action",
        "create",
        "hello",
        hello.to_str().unwrap(),
        "-p",
        "name",
        "Kept",
    ])
    .ok();
    let rec = env
        .wisp(["--json", "action", "invoke", "hello", "--blocking"])
        .ok()
        .json();
    let id = rec["activationId"].as_str().unwrap().to_string();
    // Stop right away: the acknowledged record must be flushed by the clean shutdown.
    assert!(
        up.stop(),
        "wisp up did not exit cleanly on SIGTERM:\n{}",
        up.stderr()
    );

    env.wisp(["action", "list"])
        .fails_with("is `wisp up` running?");

    let up2 = Platform::start_on(&env, port, &[]);
    assert_eq!(up2.auth, up.auth, "a restart must keep the guest key");
    let doc = env.wisp(["action", "get", "hello"]).ok().json();
    assert_eq!(doc["parameters"], json!([{"key": "name", "value": "Kept"}]));
    let got = env.wisp(["activation", "get", &id]).ok().json();
    assert_eq!(
        got["response"]["result"],
        json!({"greeting": "Hello, Kept!"})
    );
    // And it still runs (its code comes back from the store).
    let r = env.wisp(["invoke", "hello"]).ok().json();
    assert_eq!(r, json!({"greeting": "Hello, Kept!"}));
    // Ctrl-C stops it cleanly too.
    let mut up2 = up2;
    assert!(
        up2.stop_with(libc::SIGINT),
        "wisp up did not exit cleanly on SIGINT:\n{}",
        up2.stderr()
    );
    assert!(
        up2.stderr().contains("wisp stopped; data kept in"),
        "{}",
        up2.stderr()
    );

    // `--auth` sets the guest key; the old one stops working.
    let custom = "5f1e3b2a-1111-4222-8333-944455556666:customkeycustomkeycustomkey";
    let up3 = Platform::start_on(&env, port, &["--auth", custom]);
    assert_eq!(up3.auth, custom);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), custom);
    assert_eq!(
        env.wisp(["--json", "namespace", "list"]).ok().json(),
        json!(["guest"])
    );
    env.wisp(["--auth", &up.auth, "action", "list"])
        .fails_with("HTTP 401");
    assert_eq!(
        env.wisp(["--json", "action", "list"]).ok().json()[0]["name"],
        "hello"
    );
}
