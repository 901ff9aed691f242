//! Composition verbs of the real `wisp` binary against a real `wisp up` (issue 5): package
//! bindings and sharing, triggers and rules, the alarm feed, and sequences.

mod common;

use std::time::Duration;

use common::{Env, Platform, eventually, function};
use serde_json::{Value, json};

fn path_of(name: &str) -> String {
    function(name).to_str().unwrap().to_string()
}

/// The action activation ids a trigger activation's logs name.
fn fired_ids(trigger_record: &Value) -> Vec<String> {
    trigger_record["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| serde_json::from_str::<Value>(l.as_str()?).ok())
        .filter_map(|l| l["activationId"].as_str().map(str::to_string))
        .collect()
}

/// The record of activation `id`, once it is written.
fn record(env: &Env, id: &str) -> Value {
    eventually(&format!("activation {id}"), || {
        let run = env.wisp(["--json", "activation", "get", id]);
        run.success.then(|| run.json())
    })
}

#[test]
fn bound_packages_layer_parameters_and_only_shared_packages_can_be_bound() {
    let mut env = Env::new();
    env.vars
        .push(("WISP_ADMIN_KEY".into(), "test-admin-key".into()));
    let _up = Platform::start(&env, &[]);
    let bob = env.wisp(["admin", "user", "add", "bob"]).ok().stdout;
    let bob = bob.trim().to_string();

    env.wisp([
        "package", "create", "tools", "-p", "a", "pkg", "-p", "b", "pkg", "-p", "c", "pkg",
        "--shared", "yes",
    ])
    .ok();
    env.wisp(["action", "create", "tools/echo", &path_of("echo")])
        .ok();
    env.wisp(["package", "create", "private"]).ok();

    // Bob binds guest's shared package with parameters of his own.
    let bound = env
        .wisp([
            "--auth",
            &bob,
            "package",
            "bind",
            "/guest/tools",
            "mine",
            "-p",
            "b",
            "binding",
            "-p",
            "c",
            "binding",
        ])
        .ok();
    assert_eq!(
        bound.stdout.trim(),
        "ok: created binding mine to package /guest/tools"
    );
    // package < binding < invocation.
    let r = env
        .wisp(["--auth", &bob, "invoke", "mine/echo", "c=call"])
        .ok()
        .json();
    assert_eq!(r, json!({"a": "pkg", "b": "binding", "c": "call"}));
    let r = env
        .wisp(["--auth", &bob, "invoke", "mine/echo"])
        .ok()
        .json();
    assert_eq!(r, json!({"a": "pkg", "b": "binding", "c": "binding"}));
    let listed = env.wisp(["--auth", &bob, "package", "list"]).ok().stdout;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("/bob/mine") && l.contains("/guest/tools")),
        "{listed}"
    );
    // The shared package and its actions are readable; nothing else of guest's is.
    let doc = env
        .wisp(["--auth", &bob, "action", "get", "/guest/tools/echo"])
        .ok()
        .json();
    assert_eq!(doc["namespace"], "guest/tools");
    env.wisp(["--auth", &bob, "package", "get", "/guest/private"])
        .fails_with("HTTP 403");
    // A binding to a package that is not shared is refused, clearly.
    env.wisp(["--auth", &bob, "package", "bind", "/guest/private", "p2"])
        .fails_with("not published");
    env.wisp(["--auth", &bob, "package", "bind", "/guest/nothing", "p3"])
        .fails_with("does not exist");
}

#[test]
fn triggers_rules_alarms_and_sequences() {
    let env = Env::new();
    let _up = Platform::start(&env, &[]);
    for f in ["echo", "hello", "primes"] {
        env.wisp(["action", "create", f, &path_of(f)]).ok();
    }

    // A trigger with two active rules: one fire, exactly two action activations.
    let created = env
        .wisp(["trigger", "create", "events", "-p", "from", "trigger"])
        .ok();
    assert_eq!(created.stdout.trim(), "ok: created trigger events");
    let r1 = env.wisp(["rule", "create", "r1", "events", "echo"]).ok();
    assert_eq!(
        r1.stdout.trim(),
        "ok: created rule r1 (/guest/events → /guest/echo, active)"
    );
    env.wisp(["rule", "create", "r2", "events", "hello"]).ok();
    let status = env.wisp(["rule", "status", "r2"]).ok();
    assert_eq!(status.stdout.trim(), "ok: rule r2 is active");

    let fired = env
        .wisp(["--json", "trigger", "fire", "events", "-p", "name", "Fire"])
        .ok()
        .json();
    let tid = fired["activationId"].as_str().unwrap().to_string();
    let trecord = record(&env, &tid);
    assert_eq!(trecord["name"], "events");
    let ids = fired_ids(&trecord);
    assert_eq!(ids.len(), 2, "{trecord}");
    let mut results = Vec::new();
    for id in &ids {
        let a = record(&env, id);
        assert_eq!(a["cause"], tid.as_str(), "{a}");
        results.push(a["response"]["result"].clone());
    }
    results.sort_by_key(|r| r.to_string());
    assert_eq!(
        results,
        [
            json!({"from": "trigger", "name": "Fire"}),
            json!({"greeting": "Hello, Fire!"})
        ]
    );

    // A disabled rule fires nothing.
    let off = env.wisp(["rule", "disable", "r2"]).ok();
    assert_eq!(off.stdout.trim(), "ok: disabled rule r2");
    assert_eq!(
        env.wisp(["--json", "rule", "get", "r2"]).ok().json()["status"],
        "inactive"
    );
    let fired = env.wisp(["trigger", "fire", "events"]).ok();
    let tid = fired.stdout.trim().rsplit(' ').next().unwrap().to_string();
    assert!(fired.stdout.starts_with("ok: triggered events with id "));
    let ids = fired_ids(&record(&env, &tid));
    assert_eq!(ids.len(), 1);
    assert_eq!(record(&env, &ids[0])["name"], "echo");
    env.wisp(["rule", "disable", "r1"]).ok();
    let none = env.wisp(["trigger", "fire", "events"]).ok();
    assert!(none.stdout.contains("no active rule"), "{}", none.stdout);
    env.wisp(["rule", "enable", "r1"]).ok();

    // Lists and documents.
    let rules = env.wisp(["rule", "list"]).ok().stdout;
    assert!(rules.starts_with("RULE"), "{rules}");
    assert!(
        rules
            .lines()
            .any(|l| l.starts_with("/guest/r2") && l.contains("inactive")),
        "{rules}"
    );
    let t = env.wisp(["trigger", "get", "events"]).ok().json();
    assert_eq!(t["rules"]["guest/r1"]["status"], "active");
    let triggers = env.wisp(["--json", "trigger", "list"]).ok().json();
    assert_eq!(triggers.as_array().unwrap().len(), 1);

    // Bad references are refused with a clear one-line error.
    env.wisp(["rule", "create", "bad", "nope", "echo"])
        .fails_with("trigger /guest/nope does not exist");
    env.wisp(["rule", "create", "bad", "events", "nope"])
        .fails_with("action /guest/nope does not exist");
    env.wisp(["trigger", "fire", "ghost"])
        .fails_with("HTTP 404");
    env.wisp([
        "trigger", "create", "t", "--feed", "alarm", "-p", "cron", "* * *",
    ])
    .fails_with("5 fields");
    env.wisp(["rule", "delete", "r1"]).ok();
    env.wisp(["rule", "delete", "r2"]).ok();
    let deleted = env.wisp(["trigger", "delete", "events"]).ok();
    assert_eq!(deleted.stdout.trim(), "ok: deleted trigger events");

    // An interval alarm (0.02 minutes = 1.2 s, a short interval for the test) fires on its
    // schedule with its payload, and stops when its trigger is deleted.
    let alarm = env
        .wisp([
            "trigger",
            "create",
            "tick",
            "--feed",
            "alarm",
            "-p",
            "interval",
            "0.02",
            "-p",
            "trigger_payload",
            r#"{"tick": true}"#,
        ])
        .ok();
    assert!(
        alarm
            .stdout
            .contains("ok: created trigger tick (alarm: first fire at "),
        "{}",
        alarm.stdout
    );
    env.wisp(["rule", "create", "onTick", "tick", "echo"]).ok();
    let count_ticks = || {
        env.wisp(["--json", "activation", "list", "tick", "--limit", "200"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len()
    };
    eventually("two alarm ticks", || (count_ticks() >= 2).then_some(()));
    let ticks = env
        .wisp(["--json", "activation", "list", "tick", "--full"])
        .ok()
        .json();
    let first = &ticks.as_array().unwrap()[0];
    let echo = record(&env, &fired_ids(first)[0]);
    assert_eq!(echo["response"]["result"], json!({"tick": true}));
    assert_eq!(echo["cause"], first["activationId"]);
    env.wisp(["trigger", "delete", "tick"]).ok();
    // A tick claimed just before the delete may still be written; after that, nothing.
    std::thread::sleep(Duration::from_millis(1500));
    let after_delete = count_ticks();
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(
        count_ticks(),
        after_delete,
        "the alarm stopped with its trigger"
    );

    // A 3-step sequence composes results; a failing middle step ends it with its error.
    env.wisp([
        "action",
        "create",
        "count",
        "--sequence",
        "echo,primes,echo",
    ])
    .ok();
    let r = env.wisp(["invoke", "count", "n=100"]).ok().json();
    assert_eq!(r, json!({"n": 100, "count": 25, "largest": 97}));
    let failed = env.wisp(["--json", "action", "invoke", "count", "-b"]);
    failed.fails_with("ended with status 'application error'");
    let body = failed.json();
    assert!(
        body["response"]["result"]["error"]
            .as_str()
            .unwrap()
            .contains("missing parameter n"),
        "{body}"
    );
    assert_eq!(body["logs"].as_array().unwrap().len(), 2);
    // Cycles and bad references are refused.
    env.wisp(["action", "create", "loopy", "--sequence", "echo,loopy"])
        .fails_with("may not contain itself");
    env.wisp(["action", "create", "outer", "--sequence", "count"])
        .ok();
    env.wisp(["action", "update", "count", "--sequence", "outer"])
        .fails_with("may not contain itself");
    env.wisp(["action", "create", "ghost", "--sequence", "echo,nothing"])
        .fails_with("does not exist");
}
