//! `wisp bench` against a real `wisp up`: a short run acknowledges invokes and loses none, a
//! hostile mix counts the hostile actions' errors and still loses nothing, and the audit does
//! report an acknowledged id that has no record.

mod common;

use std::time::Duration;

use common::{Env, Platform, function};
use serde_json::Value;

fn create(env: &Env, name: &str, fun: &str, limits: &[&str]) {
    let path = function(fun);
    let mut args = vec!["action", "create", name, path.to_str().unwrap()];
    args.extend_from_slice(limits);
    env.wisp(args).ok();
}

fn bench(env: &Env, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "bench", "--clients", "2", "--duration", "1.5"];
    args.extend_from_slice(extra);
    env.wisp(args).ok().json()
}

#[test]
fn a_short_run_acknowledges_invokes_and_loses_none() {
    let env = Env::new();
    let _up = Platform::start(&env, &[]);
    create(&env, "hello", "hello", &[]);

    let s = bench(&env, &["--param", "name=Bench"]);
    let invokes = s["invokes"].as_u64().unwrap();
    assert!(invokes > 0, "{s}");
    assert_eq!(s["clients"], 2);
    assert_eq!(s["action"], "hello");
    assert_eq!(s["answers"]["ok"], invokes, "{s}");
    assert_eq!(s["answers"]["refused"], 0, "{s}");
    assert_eq!(s["answers"]["failed"], 0, "{s}");
    assert_eq!(s["records"]["acknowledged"], invokes, "{s}");
    assert_eq!(s["records"]["found"], invokes, "{s}");
    assert_eq!(s["lost"], 0, "{s}");
    assert_eq!(s["latency_ms"]["samples"], invokes, "{s}");
    let l = &s["latency_ms"];
    let (p50, p99, max) = (
        l["p50"].as_f64().unwrap(),
        l["p99"].as_f64().unwrap(),
        l["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{l}");
    assert!(s["hostile_latency_ms"].is_null(), "{s}");

    // The server kept a record for every one of them, with the parameters of the run.
    let count = env
        .wisp(["activation", "list", "--json", "--limit", "1"])
        .ok()
        .json();
    assert_eq!(count[0]["name"], "hello", "{count}");
    let last = env.wisp(["activation", "result", "--last"]).ok().json();
    assert_eq!(last["greeting"], "Hello, Bench!", "{last}");

    // The human form: the figures and the `lost: 0` line.
    let text = env
        .wisp(["bench", "--clients", "2", "--duration", "0.5"])
        .ok()
        .stdout;
    assert!(text.contains("invokes/s"), "{text}");
    assert!(text.contains("p99.9"), "{text}");
    assert!(text.lines().any(|l| l == "lost: 0"), "{text}");
}

#[test]
fn a_hostile_mix_counts_errors_and_loses_nothing() {
    let env = Env::new();
    let _up = Platform::start(&env, &[]);
    create(&env, "hello", "hello", &[]);
    create(&env, "loop", "loop", &["--timeout", "200"]);
    create(&env, "trap", "trap", &[]);
    create(&env, "badresult", "badresult", &[]);
    create(&env, "membomb", "membomb", &["--memory", "32"]);

    let s = bench(
        &env,
        &[
            "--hostile-mix",
            "0.5",
            "--hostile",
            "loop,trap,badresult,membomb",
        ],
    );
    let invokes = s["invokes"].as_u64().unwrap();
    let per = &s["per_action"];
    let hostile_calls: u64 = ["loop", "trap", "badresult", "membomb"]
        .iter()
        .map(|h| per[h]["calls"].as_u64().unwrap())
        .sum();
    assert!(hostile_calls > 0, "{s}");
    // Every hostile call is an action error (timeout, trap, bad result, memory cap); hello's
    // calls all succeed.
    for h in ["loop", "trap", "badresult", "membomb"] {
        assert_eq!(per[h]["action_error"], per[h]["calls"], "{h}: {s}");
        assert_eq!(per[h]["ok"], 0, "{h}: {s}");
    }
    assert_eq!(per["hello"]["ok"], per["hello"]["calls"], "{s}");
    assert_eq!(s["answers"]["action_error"], hostile_calls, "{s}");
    assert_eq!(s["answers"]["internal_error"], 0, "{s}");
    assert_eq!(s["hostile_latency_ms"]["samples"], hostile_calls, "{s}");
    assert_eq!(s["records"]["found"], invokes, "{s}");
    assert_eq!(s["lost"], 0, "{s}");
}

#[test]
fn missing_actions_fail_before_the_run() {
    let env = Env::new();
    let _up = Platform::start(&env, &[]);
    create(&env, "hello", "hello", &[]);
    env.wisp(["bench", "--duration", "1", "--action", "nope"])
        .fails_with("cannot benchmark action nope");
    env.wisp(["bench", "--duration", "1", "--hostile-mix", "0.1"])
        .fails_with("--hostile-mix needs the hostile actions");
}

#[test]
fn the_audit_reports_an_acknowledged_id_without_a_record() {
    let env = Env::new();
    let up = Platform::start(&env, &[]);
    create(&env, "hello", "hello", &[]);
    let rec = env
        .wisp(["--json", "action", "invoke", "hello", "-b"])
        .ok()
        .json();
    let real = rec["activationId"].as_str().unwrap().to_string();
    let never = "0123456789abcdef0123456789abcdef".to_string();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let audit = tokio
        .block_on(wisp_cli::commands::bench::check_records(
            &up.apihost,
            &up.auth,
            vec![real, never.clone()],
            Duration::from_millis(500),
        ))
        .unwrap();
    assert_eq!(audit.acknowledged, 2);
    assert_eq!(audit.found, 1);
    assert_eq!(audit.lost, 1);
    assert_eq!(audit.unverified, 0);
    assert_eq!(audit.lost_ids, [never]);
}
