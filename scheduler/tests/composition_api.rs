//! Composition over the REST API (issue 5): package bindings and publishing, triggers and
//! rules, the alarm feed (driven through `wisp_scheduler::alarm::tick` with chosen instants, so no
//! test waits for minutes), and sequences (composed results, errors, refused cycles and bad
//! references). Real scheduler and runtime on 127.0.0.1:0, real wasm from `functions/`.

mod common;

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use common::{Client, Platform, TestScheduler, action_body, scheduler_config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_testkit::function_bytes;

const NS: &str = "/api/v1/namespaces/_";

async fn deploy(c: &Client, name: &str, function: &str, extra: Value) -> Result<()> {
    let mut body = action_body(&function_bytes(function));
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, answer) = c.put(&format!("{NS}/actions/{name}"), &body).await?;
    if status != StatusCode::OK {
        bail!("deploying {name}: {status} {answer}");
    }
    Ok(())
}

async fn ok(c: &Client, method: &str, path: &str, body: Value) -> Result<Value> {
    let (status, answer) = match method {
        "PUT" => c.put(path, &body).await?,
        "POST" => c.post(path, &body).await?,
        "GET" => c.get(path).await?,
        _ => c.delete(path).await?,
    };
    if !status.is_success() {
        bail!("{method} {path}: {status} {answer}");
    }
    Ok(answer)
}

/// Waits for activation `id` of the caller's namespace to have a record.
async fn record(c: &Client, id: &str) -> Result<Value> {
    for _ in 0..600 {
        let (status, body) = c.get(&format!("{NS}/activations/{id}")).await?;
        if status == StatusCode::OK {
            return Ok(body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("activation {id} never got a record")
}

fn kv(pairs: Value) -> Value {
    Value::Array(
        pairs
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_layer_parameters_and_publishing_shares_read_only() -> Result<()> {
    let p = Platform::start(1).await?;
    let alice = &p.guest;
    let bob = p.scheduler.create_user("bob").await?;

    // Bob's package `tools` (params a, b, c), its action `echo`.
    ok(
        &bob,
        "PUT",
        &format!("{NS}/packages/tools"),
        json!({"parameters": kv(json!({"a": "pkg", "b": "pkg", "c": "pkg"}))}),
    )
    .await?;
    deploy(&bob, "tools/echo", "echo", json!({})).await?;
    deploy(&bob, "secret", "echo", json!({})).await?;

    // Private: alice can neither bind, read nor invoke it.
    let (status, body) = alice
        .put(
            &format!("{NS}/packages/mytools"),
            &json!({"binding": {"namespace": "bob", "name": "tools"}}),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not published"),
        "{body}"
    );
    assert!(alice.get(&format!("{NS}/packages/mytools")).await?.0 == StatusCode::NOT_FOUND);
    let (status, _) = alice
        .post(
            "/api/v1/namespaces/bob/actions/tools/echo?blocking=true",
            &json!({}),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Binding a missing package is refused too.
    let (status, body) = alice
        .put(
            &format!("{NS}/packages/ghost"),
            &json!({"binding": {"namespace": "bob", "name": "nothing"}}),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("does not exist"));

    // Published: readable and invocable at /bob/tools/echo, binding works.
    ok(
        &bob,
        "PUT",
        &format!("{NS}/packages/tools?overwrite=true"),
        json!({"publish": true}),
    )
    .await?;
    let pkg = ok(
        alice,
        "GET",
        "/api/v1/namespaces/bob/packages/tools",
        json!(null),
    )
    .await?;
    assert_eq!(pkg["actions"][0]["name"], "echo");
    ok(
        alice,
        "GET",
        "/api/v1/namespaces/bob/actions/tools/echo",
        json!(null),
    )
    .await?;
    let r = ok(
        alice,
        "POST",
        "/api/v1/namespaces/bob/actions/tools/echo?blocking=true&result=true",
        json!({"c": "call"}),
    )
    .await?;
    assert_eq!(r, json!({"a": "pkg", "b": "pkg", "c": "call"}));
    // Nothing else of bob's is visible.
    for path in [
        "/api/v1/namespaces/bob/actions/secret",
        "/api/v1/namespaces/bob/actions",
        "/api/v1/namespaces/bob/packages",
    ] {
        let (status, _) = alice.get(path).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }

    // The binding: package < binding < invocation.
    ok(
        alice,
        "PUT",
        &format!("{NS}/packages/mytools"),
        json!({"binding": {"namespace": "bob", "name": "tools"},
               "parameters": kv(json!({"b": "binding", "c": "binding"}))}),
    )
    .await?;
    let r = ok(
        alice,
        "POST",
        &format!("{NS}/actions/mytools/echo?blocking=true&result=true"),
        json!({"c": "call"}),
    )
    .await?;
    assert_eq!(r, json!({"a": "pkg", "b": "binding", "c": "call"}));
    let record = ok(
        alice,
        "POST",
        &format!("{NS}/actions/mytools/echo?blocking=true"),
        json!({}),
    )
    .await?;
    assert_eq!(record["namespace"], "guest", "the record is the caller's");
    let binding = ok(alice, "GET", &format!("{NS}/packages/mytools"), json!(null)).await?;
    assert_eq!(
        binding["binding"],
        json!({"namespace": "bob", "name": "tools"})
    );
    assert_eq!(
        binding["actions"][0]["name"], "echo",
        "a binding lists the bound actions"
    );
    // Read through the binding too.
    let doc = ok(
        alice,
        "GET",
        &format!("{NS}/actions/mytools/echo"),
        json!(null),
    )
    .await?;
    assert_eq!(doc["name"], "echo");
    // Actions cannot be created inside a binding.
    let (status, _) = alice
        .put(
            &format!("{NS}/actions/mytools/mine"),
            &action_body(&function_bytes("echo")),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Unpublishing cuts the binding off.
    ok(
        &bob,
        "PUT",
        &format!("{NS}/packages/tools?overwrite=true"),
        json!({"publish": false}),
    )
    .await?;
    let (status, _) = alice
        .post(
            &format!("{NS}/actions/mytools/echo?blocking=true"),
            &json!({}),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_a_trigger_runs_each_active_rule_once_with_its_cause() -> Result<()> {
    let p = Platform::start(1).await?;
    let c = &p.guest;
    deploy(
        c,
        "echo",
        "echo",
        json!({"parameters": kv(json!({"from": "action", "x": "action"}))}),
    )
    .await?;
    deploy(c, "hello", "hello", json!({})).await?;
    let t = ok(
        c,
        "PUT",
        &format!("{NS}/triggers/events"),
        json!({"parameters": kv(json!({"x": "trigger", "name": "trigger"}))}),
    )
    .await?;
    assert_eq!(t["version"], "0.0.1");
    let r1 = ok(
        c,
        "PUT",
        &format!("{NS}/rules/r1"),
        json!({"trigger": "/_/events", "action": "/_/echo"}),
    )
    .await?;
    assert_eq!(r1["status"], "active");
    assert_eq!(r1["trigger"], json!({"path": "guest", "name": "events"}));
    assert_eq!(r1["action"], json!({"path": "guest", "name": "echo"}));
    ok(
        c,
        "PUT",
        &format!("{NS}/rules/r2"),
        json!({"trigger": "events", "action": "hello"}),
    )
    .await?;

    let (status, fired) = c
        .post(&format!("{NS}/triggers/events"), &json!({"name": "fire"}))
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{fired}");
    let tid = fired["activationId"].as_str().context("activationId")?;
    let trecord = record(c, tid).await?;
    assert_eq!(trecord["name"], "events");
    assert_eq!(
        trecord["response"]["result"],
        json!({"x": "trigger", "name": "fire"})
    );
    let ids = fired_ids(&trecord);
    assert_eq!(ids.len(), 2, "{trecord}");
    let mut by_name = std::collections::BTreeMap::new();
    for id in &ids {
        let a = record(c, id).await?;
        assert_eq!(a["cause"], tid, "{a}");
        by_name.insert(a["name"].as_str().unwrap().to_string(), a);
    }
    assert_eq!(
        by_name["echo"]["response"]["result"],
        json!({"from": "action", "x": "trigger", "name": "fire"}),
        "action defaults < trigger defaults < fire payload"
    );
    assert_eq!(
        by_name["hello"]["response"]["result"],
        json!({"greeting": "Hello, fire!"})
    );
    let listed = ok(
        c,
        "GET",
        &format!("{NS}/activations?name=echo"),
        json!(null),
    )
    .await?;
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "exactly one echo activation"
    );

    // GET shows the rules; disabling one fires only the other.
    let t = ok(c, "GET", &format!("{NS}/triggers/events"), json!(null)).await?;
    assert_eq!(t["rules"]["guest/r1"]["status"], "active");
    let off = ok(
        c,
        "POST",
        &format!("{NS}/rules/r2"),
        json!({"status": "inactive"}),
    )
    .await?;
    assert_eq!(off["status"], "inactive");
    let got = ok(c, "GET", &format!("{NS}/rules/r2"), json!(null)).await?;
    assert_eq!(got["status"], "inactive");
    let (_, fired) = c.post(&format!("{NS}/triggers/events"), &json!({})).await?;
    let trecord = record(c, fired["activationId"].as_str().unwrap()).await?;
    let ids = fired_ids(&trecord);
    assert_eq!(ids.len(), 1);
    assert_eq!(record(c, &ids[0]).await?["name"], "echo");
    // No active rule: 204, nothing runs.
    ok(
        c,
        "POST",
        &format!("{NS}/rules/r1"),
        json!({"status": "inactive"}),
    )
    .await?;
    let (status, _) = c.post(&format!("{NS}/triggers/events"), &json!({})).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Bad references and bad input are refused, clearly, and store nothing.
    for (body, needle) in [
        (
            json!({"trigger": "nope", "action": "echo"}),
            "trigger /guest/nope does not exist",
        ),
        (
            json!({"trigger": "events", "action": "nope"}),
            "action /guest/nope does not exist",
        ),
        (
            json!({"trigger": "events", "action": "/bob/echo"}),
            "does not exist",
        ),
        (json!({"trigger": "events"}), "needs an 'action'"),
        (
            json!({"trigger": "a/b/c/d", "action": "echo"}),
            "not a valid name",
        ),
        (
            json!({"trigger": "events", "action": "echo", "status": "on"}),
            "'active' or 'inactive'",
        ),
    ] {
        let (status, answer) = c.put(&format!("{NS}/rules/bad"), &body).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body}: {answer}"
        );
    }
    assert_eq!(
        c.get(&format!("{NS}/rules/bad")).await?.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = c
        .post(&format!("{NS}/rules/r1"), &json!({"status": "maybe"}))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = c.put(&format!("{NS}/triggers/events"), &json!({})).await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        c.post(&format!("{NS}/triggers/ghost"), &json!({})).await?.0,
        StatusCode::NOT_FOUND
    );

    // Listings and counts; delete.
    assert_eq!(
        ok(c, "GET", &format!("{NS}/rules?count=true"), json!(null)).await?,
        json!({"rules": 2})
    );
    assert_eq!(
        ok(c, "GET", &format!("{NS}/triggers"), json!(null))
            .await?
            .as_array()
            .unwrap()
            .len(),
        1
    );
    ok(c, "DELETE", &format!("{NS}/rules/r1"), json!(null)).await?;
    ok(c, "DELETE", &format!("{NS}/triggers/events"), json!(null)).await?;
    assert_eq!(
        c.get(&format!("{NS}/triggers/events")).await?.0,
        StatusCode::NOT_FOUND
    );
    // Another user sees none of it.
    let bob = p.scheduler.create_user("bob").await?;
    assert_eq!(
        bob.get("/api/v1/namespaces/guest/rules").await?.0,
        StatusCode::FORBIDDEN
    );
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_alarm_fires_each_tick_once_survives_restart_and_stops_when_deleted()
-> Result<()> {
    use wisp_scheduler::alarm::tick;
    let p = Platform::start(1).await?;
    let c = &p.guest;
    deploy(c, "echo", "echo", json!({})).await?;
    // Every 10 minutes: the scheduler's own (wall-clock) poller never reaches a tick during the
    // test; the test drives `tick` with chosen instants instead.
    let t = ok(
        c,
        "PUT",
        &format!("{NS}/triggers/every10"),
        json!({"annotations": kv(json!({"feed": "alarm"})),
               "parameters": kv(json!({"interval": 10, "trigger_payload": {"tick": true}}))}),
    )
    .await?;
    assert_eq!(t["alarm"]["schedule"], json!({"intervalMs": 600_000}));
    assert!(
        t["parameters"].as_array().unwrap().is_empty(),
        "feed params are not trigger params"
    );
    ok(
        c,
        "PUT",
        &format!("{NS}/rules/onTick"),
        json!({"trigger": "every10", "action": "echo"}),
    )
    .await?;
    let state = &p.scheduler.state;
    let first = state
        .store
        .get_alarm("guest", "every10")
        .await?
        .context("alarm row")?
        .next_fire;

    assert_eq!(tick(state, first - 1).await?, 0, "not due yet");
    // Two replicas race for the same tick: exactly one fires.
    let (a, b) = tokio::join!(tick(state, first), tick(state, first));
    assert_eq!(a? + b?, 1);
    assert_eq!(tick(state, first).await?, 0, "a tick fires once");
    let second = state
        .store
        .get_alarm("guest", "every10")
        .await?
        .unwrap()
        .next_fire;
    assert_eq!(second, first + 600_000);

    let triggers = ok(
        c,
        "GET",
        &format!("{NS}/activations?name=every10&docs=true"),
        json!(null),
    )
    .await?;
    let trecord = &triggers.as_array().unwrap()[0];
    let ids = fired_ids(trecord);
    assert_eq!(ids.len(), 1);
    let echo = record(c, &ids[0]).await?;
    assert_eq!(echo["response"]["result"], json!({"tick": true}));
    assert_eq!(echo["cause"], trecord["activationId"]);

    // A restarted scheduler keeps the alarm and fires its next tick.
    let Platform {
        scheduler,
        runtimes,
        guest,
        dir,
    } = p;
    scheduler.stop().await?;
    let urls: Vec<String> = runtimes.iter().map(|r| r.url.clone()).collect();
    let scheduler = TestScheduler::start_with(scheduler_config(&urls, dir.path())).await?;
    scheduler.wait_ready().await?;
    let c = Client::new(&scheduler.url, &guest.auth, "guest");
    let state = &scheduler.state;
    assert_eq!(
        state
            .store
            .get_alarm("guest", "every10")
            .await?
            .unwrap()
            .next_fire,
        second
    );
    assert_eq!(tick(state, second + 5).await?, 1);
    let listed = ok(
        &c,
        "GET",
        &format!("{NS}/activations?name=every10&docs=true"),
        json!(null),
    )
    .await?;
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Deleting the trigger removes its alarm: nothing fires any more.
    ok(&c, "DELETE", &format!("{NS}/triggers/every10"), json!(null)).await?;
    assert!(state.store.get_alarm("guest", "every10").await?.is_none());
    assert_eq!(tick(state, u64::MAX / 2).await?, 0);

    // Bad schedules are refused with the reason.
    for (params, needle) in [
        (json!({"cron": "61 * * * *"}), "outside 0-59"),
        (json!({"cron": "* * *"}), "5 fields"),
        (json!({}), "needs one of"),
        (json!({"once": "2001-01-01T00:00:00Z"}), "in the future"),
    ] {
        let (status, body) = c
            .put(
                &format!("{NS}/triggers/bad"),
                &json!({"annotations": kv(json!({"feed": "alarm"})), "parameters": kv(params.clone())}),
            )
            .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{params}: {body}"
        );
    }
    let (status, body) = c
        .put(
            &format!("{NS}/triggers/bad"),
            &json!({"annotations": kv(json!({"feed": "/whisk.system/messaging/kafkaFeed"}))}),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        c.get(&format!("{NS}/triggers/bad")).await?.0,
        StatusCode::NOT_FOUND
    );
    // A cron alarm's first fire is its next matching minute.
    let t = ok(
        &c,
        "PUT",
        &format!("{NS}/triggers/hourly"),
        json!({"annotations": kv(json!({"feed": "/whisk.system/alarms/alarm"})),
               "parameters": kv(json!({"cron": "0 * * * *"}))}),
    )
    .await?;
    let next = t["alarm"]["nextFire"].as_u64().unwrap();
    assert_eq!(next % 3_600_000, 0);
    assert!(next > wisp_core::now_ms() && next <= wisp_core::now_ms() + 3_600_000);

    scheduler.stop().await?;
    for r in runtimes {
        r.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_compose_stop_at_errors_and_refuse_cycles() -> Result<()> {
    let p = Platform::start(1).await?;
    let c = &p.guest;
    deploy(c, "echo", "echo", json!({})).await?;
    deploy(c, "primes", "primes", json!({})).await?;
    let seq = |components: Value| json!({"exec": {"kind": "sequence", "components": components}});
    ok(
        c,
        "PUT",
        &format!("{NS}/actions/count"),
        seq(json!(["echo", "/_/primes", "/guest/echo"])),
    )
    .await?;

    let (status, r) = c
        .post(
            &format!("{NS}/actions/count?blocking=true"),
            &json!({"n": 100}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        r["response"]["result"],
        json!({"n": 100, "count": 25, "largest": 97})
    );
    let ids: Vec<&str> = r["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ids.len(), 3);
    for (id, name) in ids.iter().zip(["echo", "primes", "echo"]) {
        let component = record(c, id).await?;
        assert_eq!(component["name"], name);
        assert_eq!(component["cause"], r["activationId"]);
        let caused_by = component["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "causedBy");
        assert_eq!(caused_by.map(|a| &a["value"]), Some(&json!("sequence")));
    }

    // The failing middle step ends the sequence with its error; the third never runs.
    let (status, r) = c
        .post(&format!("{NS}/actions/count?blocking=true"), &json!({}))
        .await?;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{r}");
    assert_eq!(r["response"]["status"], "application error");
    assert!(
        r["response"]["result"]["error"]
            .as_str()
            .unwrap()
            .contains("missing parameter n")
    );
    assert_eq!(r["logs"].as_array().unwrap().len(), 2);

    // Cycles and bad references are refused at create time.
    let refusals = [
        (
            "self",
            seq(json!(["echo", "self"])),
            "may not contain itself",
        ),
        (
            "ghost",
            seq(json!(["echo", "nothing"])),
            "does not exist: /guest/nothing",
        ),
        ("other", seq(json!(["/bob/echo"])), "does not exist"),
        ("long", seq(json!(vec!["echo"; 51])), "at most 50"),
    ];
    for (name, body, needle) in refusals {
        let (status, answer) = c.put(&format!("{NS}/actions/{name}"), &body).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{name}: {answer}"
        );
        assert_eq!(
            c.get(&format!("{NS}/actions/{name}")).await?.0,
            StatusCode::NOT_FOUND
        );
    }
    // Indirect: outer contains inner; making inner contain outer is refused.
    ok(
        c,
        "PUT",
        &format!("{NS}/actions/inner"),
        seq(json!(["echo"])),
    )
    .await?;
    ok(
        c,
        "PUT",
        &format!("{NS}/actions/outer"),
        seq(json!(["inner", "echo"])),
    )
    .await?;
    let (status, answer) = c
        .put(
            &format!("{NS}/actions/inner?overwrite=true"),
            &seq(json!(["outer"])),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("may not contain itself"),
        "{answer}"
    );
    let inner = ok(c, "GET", &format!("{NS}/actions/inner"), json!(null)).await?;
    assert_eq!(
        inner["exec"]["components"],
        json!(["/guest/echo"]),
        "left unchanged"
    );
    // 50 components is the limit, not over it.
    ok(
        c,
        "PUT",
        &format!("{NS}/actions/fifty"),
        seq(json!(vec!["echo"; 50])),
    )
    .await?;
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheduler_runs_the_alarm_poller_on_the_wall_clock() -> Result<()> {
    let p = Platform::start(1).await?;
    let c = &p.guest;
    deploy(c, "echo", "echo", json!({})).await?;
    // 0.02 minutes = 1.2 s: the scheduler's own poller (started by `Scheduler::open`) fires it.
    ok(
        c,
        "PUT",
        &format!("{NS}/triggers/fast"),
        json!({"annotations": kv(json!({"feed": "alarm"})),
               "parameters": kv(json!({"interval": 0.02, "trigger_payload": {"fast": 1}}))}),
    )
    .await?;
    ok(
        c,
        "PUT",
        &format!("{NS}/rules/onFast"),
        json!({"trigger": "fast", "action": "echo"}),
    )
    .await?;
    let mut fired = None;
    for _ in 0..600 {
        let listed = ok(
            c,
            "GET",
            &format!("{NS}/activations?name=fast&docs=true"),
            json!(null),
        )
        .await?;
        if let Some(first) = listed.as_array().and_then(|a| a.first()) {
            fired = Some(first.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let trecord = fired.context("the poller never fired the alarm")?;
    let echo = record(c, &fired_ids(&trecord)[0]).await?;
    assert_eq!(echo["response"]["result"], json!({"fast": 1}));
    ok(c, "DELETE", &format!("{NS}/triggers/fast"), json!(null)).await?;
    p.stop().await
}
