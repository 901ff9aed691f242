//! `wisp bench` against a real `wisp up`: a short run acknowledges invokes and loses none, a
//! hostile mix counts the hostile actions' errors and still loses nothing, a non-blocking run
//! waits for every accepted activation's record, a noisy neighbour is measured beside the main
//! tenant, and the audit reports an acknowledged id without a record as lost, or as pruned when
//! retention explains it.

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
            None,
            0,
            Duration::from_millis(500),
        ))
        .unwrap();
    assert_eq!(audit.acknowledged, 2);
    assert_eq!(audit.found, 1);
    assert_eq!(audit.lost, 1);
    assert_eq!(audit.pruned, 0);
    assert_eq!(audit.unverified, 0);
    assert_eq!(audit.retention, None);
    assert_eq!(audit.lost_ids, [never]);
}

/// Blocking invokes of `hello` as `auth`; their activation ids, oldest first.
fn invoke_ids(env: &Env, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let rec = env
                .wisp(["--json", "action", "invoke", "hello", "-b"])
                .ok()
                .json();
            rec["activationId"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn retention_tells_pruned_from_lost() {
    let env = Env::new();
    let retention = 5;
    let up = Platform::start(&env, &["--activation-retention", &retention.to_string()]);
    create(&env, "hello", "hello", &[]);
    // 12 activations with a retention of 5: the oldest are pruned as newer records arrive.
    let ids = invoke_ids(&env, 12);
    let newest: Vec<String> = ids[ids.len() - retention..].to_vec();
    let found = |id: &String| env.wisp(["activation", "result", id.as_str()]).success;
    common::eventually("the oldest record to be pruned", || {
        (!found(&ids[0])).then_some(())
    });
    assert!(newest.iter().all(found), "the newest {retention} are kept");

    // An id that never existed, as the newest acknowledged one: lost. The same id among the old
    // ones, and the real pruned ones: pruned.
    let never_new = "0123456789abcdef0123456789abcdef".to_string();
    let never_old = "fedcba9876543210fedcba9876543210".to_string();
    let mut audited = vec![never_old.clone()];
    audited.extend(ids.iter().cloned());
    audited.push(never_new.clone());
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let check = |retention: Option<u64>| {
        tokio
            .block_on(wisp_cli::commands::bench::check_records(
                &up.apihost,
                &up.auth,
                audited.clone(),
                retention,
                1,
                Duration::from_millis(500),
            ))
            .unwrap()
    };
    let audit = check(Some(retention as u64));
    assert_eq!(audit.acknowledged, 14);
    // The newest retention - slack = 4 must exist: never_new and the 3 newest real ones.
    assert_eq!(audit.must_exist, 4);
    assert_eq!(audit.lost, 1, "{audit:?}");
    assert_eq!(audit.lost_ids, std::slice::from_ref(&never_new));
    assert_eq!(audit.unverified, 0);
    assert_eq!(audit.found + audit.pruned + audit.lost, 14, "{audit:?}");
    assert!(
        audit.pruned >= 8,
        "never_old and at least 7 real ones: {audit:?}"
    );
    assert!(audit.found >= 3, "{audit:?}");
    assert_eq!(audit.retention, Some(retention as u64));

    // Without a known retention every missing record is lost.
    let audit = check(None);
    assert_eq!(audit.pruned, 0);
    assert_eq!(audit.lost, 14 - audit.found, "{audit:?}");
}

#[test]
fn a_non_blocking_run_waits_for_every_record() {
    let env = Env::new();
    let _up = Platform::start(&env, &[]);
    create(&env, "hello", "hello", &[]);
    create(&env, "loop", "loop", &["--timeout", "200"]);

    let s = bench(
        &env,
        &[
            "--non-blocking",
            "--hostile-mix",
            "0.2",
            "--hostile",
            "loop",
        ],
    );
    assert_eq!(s["non_blocking"], true, "{s}");
    let invokes = s["invokes"].as_u64().unwrap();
    assert!(invokes > 0, "{s}");
    // Every acknowledged call was a 202; the audit found every record, the loops' included.
    assert_eq!(s["answers"]["accepted"], invokes, "{s}");
    assert_eq!(s["answers"]["ok"], 0, "{s}");
    assert_eq!(s["answers"]["failed"], 0, "{s}");
    assert!(
        s["per_action"]["loop"]["accepted"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert_eq!(s["records"]["acknowledged"], invokes, "{s}");
    assert_eq!(s["records"]["found"], invokes, "{s}");
    assert_eq!(s["records"]["patience_s"], 30.0, "{s}");
    assert_eq!(s["lost"], 0, "{s}");
    assert_eq!(s["pruned"], 0, "{s}");
    assert_eq!(
        s["latency_ms"]["samples"], s["per_action"]["hello"]["accepted"],
        "{s}"
    );

    let text = env
        .wisp(["bench", "--non-blocking", "--duration", "0.5"])
        .ok()
        .stdout;
    assert!(text.contains("non-blocking"), "{text}");
    assert!(text.contains(" accepted in "), "{text}");
    assert!(text.lines().any(|l| l == "pruned: 0"), "{text}");
    assert!(text.lines().any(|l| l == "lost: 0"), "{text}");
}

#[test]
fn a_run_past_the_retention_reports_pruned_not_lost() {
    // Needs the server to report `activationRetention` at /api/v1/namespaces/_/limits.
    let env = Env::new();
    let _up = Platform::start(&env, &["--activation-retention", "20"]);
    create(&env, "hello", "hello", &[]);
    let s = bench(&env, &[]);
    let invokes = s["invokes"].as_u64().unwrap();
    assert!(invokes > 40, "the run must pass the retention: {s}");
    let r = &s["records"];
    assert_eq!(r["retention"], 20, "{s}");
    assert_eq!(r["must_exist"], 18, "20 less the 2 clients' slack: {s}");
    assert_eq!(s["lost"], 0, "{s}");
    // The server keeps the newest 20 (and up to 1/16 more between prunes).
    assert!(s["pruned"].as_u64().unwrap() >= invokes - 21, "{s}");
    assert_eq!(
        r["found"].as_u64().unwrap() + r["pruned"].as_u64().unwrap(),
        invokes,
        "{s}"
    );
}

#[test]
fn a_noisy_neighbour_is_measured_beside_the_main_tenant() {
    let mut env = Env::new();
    env.vars
        .push(("WISP_ADMIN_KEY".into(), "bench-admin-key".into()));
    let up = Platform::start(&env, &[]);
    create(&env, "hello", "hello", &[]);
    let noisy = env.wisp(["admin", "user", "add", "noisy"]).ok();
    let noisy_auth = noisy.stdout.trim().to_string();
    let path = function("loop");
    env.wisp([
        "--auth",
        &noisy_auth,
        "action",
        "create",
        "loop",
        path.to_str().unwrap(),
        "--timeout",
        "200",
    ])
    .ok();

    let s = bench(
        &env,
        &[
            "--noisy-auth",
            &noisy_auth,
            "--noisy-clients",
            "2",
            "--alone-share",
            "0.5",
        ],
    );
    let n = &s["noisy"];
    assert_eq!(n["action"], "loop", "{s}");
    assert_eq!(n["clients"], 2, "{s}");
    assert_eq!(n["non_blocking"], false, "{s}");
    assert!(n["alone"]["noisy"].is_null(), "{s}");
    for phase in ["alone", "flood"] {
        let main = &n[phase]["main"];
        assert_eq!(main["action"], "hello", "{s}");
        assert!(main["invokes"].as_u64().unwrap() > 0, "{phase}: {s}");
        assert_eq!(main["errors"], 0, "{phase}: {s}");
        assert_eq!(
            main["latency_ms"]["samples"], main["invokes"],
            "{phase}: {s}"
        );
        assert!(n[phase]["duration_s"].as_f64().unwrap() > 0.0, "{s}");
    }
    // Every loop is acknowledged and ends at its timeout: an action error, not a bench error.
    let flood = &n["flood"]["noisy"];
    assert_eq!(flood["action"], "loop", "{s}");
    let calls = flood["answers"]["calls"].as_u64().unwrap();
    assert!(calls > 0, "{s}");
    assert_eq!(flood["answers"]["action_error"], calls, "{s}");
    assert_eq!(flood["errors"], 0, "{s}");
    assert_eq!(flood["invokes"], calls, "{s}");
    // The phases add up to the whole run of the main tenant, and both tenants were audited.
    let phase_invokes = n["alone"]["main"]["invokes"].as_u64().unwrap()
        + n["flood"]["main"]["invokes"].as_u64().unwrap();
    assert_eq!(s["invokes"], phase_invokes, "{s}");
    assert_eq!(n["records"]["acknowledged"], calls, "{s}");
    assert_eq!(n["records"]["found"], calls, "{s}");
    assert_eq!(s["lost"], 0, "{s}");

    // The table names both tenants in the flood phase.
    let text = env
        .wisp([
            "bench",
            "--duration",
            "1",
            "--noisy-auth",
            &noisy_auth,
            "--noisy-clients",
            "1",
            "--noisy-non-blocking",
        ])
        .ok()
        .stdout;
    assert!(
        text.contains("noisy neighbour: loop by 1 clients (non-blocking)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("flood") && l.contains("noisy")),
        "{text}"
    );

    // The neighbour must be another tenant, with its action deployed.
    env.wisp(["bench", "--duration", "1", "--noisy-auth", &up.auth])
        .fails_with("the noisy neighbour must be another tenant");
    env.wisp([
        "bench",
        "--duration",
        "1",
        "--noisy-auth",
        &noisy_auth,
        "--noisy-action",
        "nope",
    ])
    .fails_with("the noisy neighbour (--noisy-auth): cannot benchmark action nope");
}
