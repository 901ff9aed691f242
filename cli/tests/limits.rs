//! `wisp admin user limits` against a real `wisp up`: reading a user's namespace limits, setting
//! some of them, back to the default, the refusals of bad values and unknown users, and a limit
//! that refuses an invoke with the server's message.

mod common;

use common::{Env, Platform, function};
use serde_json::Value;

const KEYS: [&str; 3] = [
    "invocationsPerMinute",
    "concurrentInvocations",
    "firesPerMinute",
];

fn limits(env: &Env, args: &[&str]) -> Value {
    let mut full = vec!["--json", "admin", "user", "limits"];
    full.extend_from_slice(args);
    env.wisp(full).ok().json()
}

#[test]
fn admin_user_limits_read_set_and_reset() {
    let mut env = Env::new();
    env.vars
        .push(("WISP_ADMIN_KEY".into(), "limits-admin-key".into()));
    let _up = Platform::start(&env, &[]);
    let alice = env.wisp(["admin", "user", "add", "alice"]).ok();
    let alice = alice.stdout.trim().to_string();

    let defaults = limits(&env, &["alice"]);
    for k in KEYS {
        assert!(
            defaults[k].as_u64().is_some_and(|n| n >= 1),
            "{k}: {defaults}"
        );
    }
    // The table form: one row per limit.
    let table = env.wisp(["admin", "user", "limits", "alice"]).ok().stdout;
    for k in KEYS {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(k) && l.contains(&defaults[k].to_string())),
            "{k}: {table}"
        );
    }

    // A partial write answers the effective values; the others keep theirs.
    let set = limits(&env, &["alice", "--invocations-per-minute", "2"]);
    assert_eq!(set["invocationsPerMinute"], 2, "{set}");
    assert_eq!(
        set["concurrentInvocations"],
        defaults["concurrentInvocations"]
    );
    assert_eq!(set["firesPerMinute"], defaults["firesPerMinute"]);
    assert_eq!(limits(&env, &["alice"]), set);

    // Over the limit, the invoke is refused with the server's message. As OpenWhisk's
    // RateThrottler, the count includes the refused request itself.
    env.wisp([
        "--auth",
        &alice,
        "action",
        "create",
        "hello",
        function("hello").to_str().unwrap(),
    ])
    .ok();
    for _ in 0..2 {
        env.wisp(["--auth", &alice, "invoke", "hello"]).ok();
    }
    env.wisp(["--auth", &alice, "invoke", "hello"])
        .fails_with("Too many requests in the last minute (count: 3, allowed: 2).");

    // `default` returns a limit to the server's default.
    let reset = limits(
        &env,
        &[
            "alice",
            "--invocations-per-minute",
            "default",
            "--fires-per-minute",
            "7",
        ],
    );
    assert_eq!(
        reset["invocationsPerMinute"],
        defaults["invocationsPerMinute"]
    );
    assert_eq!(reset["firesPerMinute"], 7);
    assert_eq!(
        reset["concurrentInvocations"],
        defaults["concurrentInvocations"]
    );

    // Bad values never reach the server; an unknown user is the server's 404.
    for bad in ["0", "-3", "lots"] {
        let run = env.wisp([
            "admin",
            "user",
            "limits",
            "alice",
            "--concurrent-invocations",
            bad,
        ]);
        assert!(!run.success, "{bad}: {run:?}");
        assert!(
            run.stderr.contains("--concurrent-invocations"),
            "{bad}: {}",
            run.stderr
        );
    }
    env.wisp(["admin", "user", "limits", "nobody"])
        .fails_with("HTTP 404");
    env.wisp([
        "admin",
        "user",
        "limits",
        "nobody",
        "--fires-per-minute",
        "3",
    ])
    .fails_with("cannot set the limits of user nobody");
    env.wisp(["admin", "user", "limits", "bad..name"])
        .fails_with("invalid user name");
}
