//! Namespace limits over REST, against a real scheduler and a real in-process runtime:
//! `invocationsPerMinute`, `concurrentInvocations` and `firesPerMinute` refuse with 429 and
//! OpenWhisk's messages before anything is accepted (no record), count sequences, rule-fired
//! activations, web actions and alarm fires, divide by the cluster size, and are set through the
//! admin API. The per-minute windows run on a `ManualClock` the tests move, so no test waits for
//! a minute (and no minute boundary can fall inside one).

mod common;

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_scheduler::ManualClock;

use common::{ADMIN_KEY, Client, TestRuntime, TestScheduler, action_body, http, scheduler_config};

const NS: &str = "/api/v1/namespaces/_";
/// 10 s into a minute of 2026.
const T0: u64 = 29_500_000 * 60_000 + 10_000;

struct Limited {
    scheduler: TestScheduler,
    runtime: TestRuntime,
    guest: Client,
    clock: std::sync::Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl Limited {
    /// One runtime, a scheduler on a manual clock (with `cluster_size`), user `guest`.
    async fn start(cluster_size: usize) -> Result<Limited> {
        let dir = tempfile::tempdir()?;
        let runtime = TestRuntime::start().await?;
        let clock = ManualClock::new(T0);
        let mut config = scheduler_config(std::slice::from_ref(&runtime.url), dir.path());
        config.cluster_size = cluster_size;
        config.clock = clock.clone();
        let scheduler = TestScheduler::start_with(config).await?;
        scheduler.wait_ready().await?;
        let guest = scheduler.create_user("guest").await?;
        Ok(Limited {
            scheduler,
            runtime,
            guest,
            clock,
            _dir: dir,
        })
    }

    async fn stop(self) -> Result<()> {
        self.scheduler.stop().await?;
        self.runtime.stop().await
    }

    fn admin_url(&self, user: &str) -> String {
        format!("{}/admin/v1/users/{user}/limits", self.scheduler.url)
    }

    /// `PUT /admin/v1/users/{user}/limits`: (status, body).
    async fn put_limits(&self, user: &str, body: &str) -> Result<(StatusCode, Value)> {
        let r = http()
            .put(self.admin_url(user))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        Ok((r.status(), r.json().await?))
    }

    async fn get_limits(&self, user: &str) -> Result<(StatusCode, Value)> {
        let r = http()
            .get(self.admin_url(user))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await?;
        Ok((r.status(), r.json().await?))
    }

    /// Sets limits that must be accepted.
    async fn limit(&self, body: Value) -> Result<Value> {
        let (status, answer) = self.put_limits("guest", &body.to_string()).await?;
        if status != StatusCode::OK {
            bail!("setting limits {body}: {status} {answer}");
        }
        Ok(answer)
    }

    async fn metrics(&self) -> Result<String> {
        Ok(http()
            .get(format!("{}/metrics", self.scheduler.url))
            .send()
            .await?
            .text()
            .await?)
    }
}

async fn deploy(c: &Client, name: &str, function: &str, extra: Value) -> Result<()> {
    let mut body = action_body(&wisp_testkit::function_bytes(function));
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, answer) = c.put(&format!("{NS}/actions/{name}"), &body).await?;
    if status != StatusCode::OK {
        bail!("deploying {name}: {status} {answer}");
    }
    Ok(())
}

/// Records of the caller's namespace (`name` filters by action or trigger).
async fn count(c: &Client, name: Option<&str>) -> Result<u64> {
    let filter = name.map(|n| format!("&name={n}")).unwrap_or_default();
    let (status, body) = c
        .get(&format!("{NS}/activations?count=true{filter}"))
        .await?;
    if status != StatusCode::OK {
        bail!("counting activations: {status} {body}");
    }
    body["activations"].as_u64().context("activations count")
}

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

fn too_many(count: u64, allowed: u64) -> Value {
    json!({
        "error": format!("Too many requests in the last minute (count: {count}, allowed: {allowed})."),
        "code": "too_many_requests",
    })
}

fn too_many_concurrent(count: u64, allowed: u64) -> Value {
    json!({
        "error": format!("Too many concurrent requests in flight (count: {count}, allowed: {allowed})."),
        "code": "too_many_requests",
    })
}

/// The value of the sample `name{labels}` in a metrics text (labels as written).
fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key == name_and_labels).then(|| value.parse().ok())?
    })
}

/// Waits until the scheduler has `n` activations in flight on the runtime (its balancer's
/// leases, from `/metrics`).
async fn wait_in_flight(p: &Limited, n: f64) -> Result<()> {
    let key = format!(
        "wisp_runtime_in_flight{{runtime=\"{}\",pool=\"shared\"}}",
        p.runtime.url
    );
    for _ in 0..600 {
        if sample(&p.metrics().await?, &key) == Some(n) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("never {n} activations in flight")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_per_minute_refuse_with_openwhisks_message_and_record_nothing() -> Result<()> {
    let p = Limited::start(1).await?;
    let c = &p.guest;
    deploy(c, "hello", "hello", json!({})).await?;
    // Invoked once under the defaults (which the scheduler caches), then limited: the new
    // limit applies at once.
    assert_eq!(c.invoke("hello", json!({})).await?.0, StatusCode::OK);
    let set = p.limit(json!({"invocationsPerMinute": 3})).await?;
    assert_eq!(set["invocationsPerMinute"], 3);
    for _ in 0..2 {
        let (status, body) = c.invoke("hello", json!({})).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(count(c, None).await?, 3);

    let (status, body) = c.invoke("hello", json!({"name": "x"})).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, too_many(4, 3));
    // Non-blocking and result-only invokes are refused the same way; refusals count too.
    let (status, body) = c.post(&format!("{NS}/actions/hello"), &json!({})).await?;
    assert_eq!(
        (status, body),
        (StatusCode::TOO_MANY_REQUESTS, too_many(5, 3))
    );
    let (status, _) = c
        .post(
            &format!("{NS}/actions/hello?blocking=true&result=true"),
            &json!({}),
        )
        .await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        count(c, None).await?,
        3,
        "nothing is recorded for a refusal"
    );

    // Later in the same minute: still refused. The next minute starts from zero.
    p.clock.advance(Duration::from_secs(49));
    assert_eq!(
        c.invoke("hello", json!({})).await?.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    p.clock.advance(Duration::from_secs(1));
    assert_eq!(c.invoke("hello", json!({})).await?.0, StatusCode::OK);
    assert_eq!(count(c, None).await?, 4);

    let metrics = p.metrics().await?;
    assert_eq!(
        sample(
            &metrics,
            "wisp_throttled_total{namespace=\"guest\",limit=\"invocationsPerMinute\"}"
        ),
        Some(4.0),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "wisp_runtime_reserved_memory_mb{{runtime=\"{}\",pool=\"shared\"}} 0",
            p.runtime.url
        )),
        "{metrics}"
    );
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_count_activations_until_their_records_are_stored() -> Result<()> {
    let p = Limited::start(1).await?;
    let c = &p.guest;
    deploy(c, "sleep", "sleep", json!({})).await?;
    deploy(c, "hello", "hello", json!({})).await?;
    p.limit(json!({"concurrentInvocations": 2})).await?;
    // Two blocking sleeps held in flight.
    let slow = |c: Client| async move { c.invoke("sleep", json!({"ms": 4000})).await };
    let first = tokio::spawn(slow(c.clone()));
    let second = tokio::spawn(slow(c.clone()));
    wait_in_flight(&p, 2.0).await?;
    let (status, body) = c.invoke("hello", json!({})).await?;
    assert_eq!(
        (status, body),
        (StatusCode::TOO_MANY_REQUESTS, too_many_concurrent(2, 2))
    );
    let (status, _) = c.post(&format!("{NS}/actions/hello"), &json!({})).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "non-blocking too");
    assert_eq!(count(c, None).await?, 0, "nothing recorded");
    // Once they answered, their slots are free (released before the answer).
    for done in [first, second] {
        let (status, body) = done.await??;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = c.invoke("hello", json!({})).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A failed activation frees its slot too (an application error: ms over the maximum).
    for _ in 0..3 {
        let (status, body) = c.invoke("sleep", json!({"ms": 400_000})).await?;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    }
    assert_eq!(count(c, None).await?, 6);
    let metrics = p.metrics().await?;
    assert_eq!(
        sample(
            &metrics,
            "wisp_throttled_total{namespace=\"guest\",limit=\"concurrentInvocations\"}"
        ),
        Some(2.0),
        "{metrics}"
    );
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_count_once_per_minute_and_each_component_in_flight() -> Result<()> {
    let p = Limited::start(1).await?;
    let c = &p.guest;
    deploy(c, "hello", "hello", json!({})).await?;
    deploy(c, "sleep", "sleep", json!({})).await?;
    let seq = |components: Value| json!({"exec": {"kind": "sequence", "components": components}});
    for (name, components) in [
        ("twice", json!(["hello", "hello"])),
        ("nap", json!(["sleep"])),
    ] {
        let (status, body) = c
            .put(&format!("{NS}/actions/{name}"), &seq(components))
            .await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    p.limit(json!({"invocationsPerMinute": 2})).await?;
    for _ in 0..2 {
        let (status, body) = c.invoke("twice", json!({})).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(count(c, None).await?, 6, "two sequences of two components");
    let (status, body) = c.invoke("twice", json!({})).await?;
    assert_eq!(
        (status, body),
        (StatusCode::TOO_MANY_REQUESTS, too_many(3, 2)),
        "the sequence is charged once, its components not"
    );
    assert_eq!(count(c, None).await?, 6);

    // A running sequence is in flight, and so is its component.
    p.clock.advance(Duration::from_secs(60));
    p.limit(json!({"invocationsPerMinute": null, "concurrentInvocations": 2}))
        .await?;
    let nap = tokio::spawn({
        let c = c.clone();
        async move { c.invoke("nap", json!({"ms": 3000})).await }
    });
    wait_in_flight(&p, 1.0).await?;
    let (status, body) = c.invoke("hello", json!({})).await?;
    assert_eq!(
        (status, body),
        (StatusCode::TOO_MANY_REQUESTS, too_many_concurrent(2, 2))
    );
    let (status, body) = nap.await??;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(c.invoke("hello", json!({})).await?.0, StatusCode::OK);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_fired_activations_over_the_limit_are_not_started_and_logged() -> Result<()> {
    let p = Limited::start(1).await?;
    let c = &p.guest;
    deploy(c, "hello", "hello", json!({})).await?;
    for (path, body) in [
        ("triggers/events", json!({})),
        (
            "rules/greet",
            json!({"trigger": "/_/events", "action": "/_/hello"}),
        ),
    ] {
        let (status, answer) = c.put(&format!("{NS}/{path}"), &body).await?;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    p.limit(json!({"invocationsPerMinute": 1})).await?;
    let mut lines = Vec::new();
    for _ in 0..2 {
        let (status, fired) = c
            .post(&format!("{NS}/triggers/events"), &json!({"name": "rule"}))
            .await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{fired}");
        let trecord = record(c, fired["activationId"].as_str().context("id")?).await?;
        let logs = trecord["logs"].as_array().context("logs")?;
        assert_eq!(logs.len(), 1, "{trecord}");
        lines.push(serde_json::from_str::<Value>(
            logs[0].as_str().context("line")?,
        )?);
    }
    assert_eq!(lines[0]["success"], true, "{}", lines[0]);
    let started = lines[0]["activationId"].as_str().context("started id")?;
    assert_eq!(record(c, started).await?["name"], "hello");
    assert_eq!(
        lines[1],
        json!({
            "statusCode": 1,
            "success": false,
            "error": "Too many requests in the last minute (count: 2, allowed: 1).",
            "rule": "guest/greet",
            "action": "guest/hello",
        })
    );
    assert_eq!(
        count(c, Some("hello")).await?,
        1,
        "the second was never started"
    );
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fires_per_minute_throttle_api_and_alarm_fires() -> Result<()> {
    use wisp_scheduler::alarm::tick;
    let p = Limited::start(1).await?;
    let c = &p.guest;
    let kv = |k: &str, v: Value| json!([{"key": k, "value": v}]);
    deploy(c, "hello", "hello", json!({})).await?;
    for (path, body) in [
        ("triggers/events", json!({})),
        (
            "rules/greet",
            json!({"trigger": "/_/events", "action": "/_/hello"}),
        ),
        // Every 10 minutes: the scheduler's own poller never reaches a tick during the test.
        (
            "triggers/every10",
            json!({"annotations": kv("feed", json!("alarm")), "parameters": kv("interval", json!(10))}),
        ),
    ] {
        let (status, answer) = c.put(&format!("{NS}/{path}"), &body).await?;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    p.limit(json!({"firesPerMinute": 2})).await?;
    for _ in 0..2 {
        let (status, body) = c.post(&format!("{NS}/triggers/events"), &json!({})).await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = c.post(&format!("{NS}/triggers/events"), &json!({})).await?;
    assert_eq!(
        (status, body),
        (StatusCode::TOO_MANY_REQUESTS, too_many(3, 2))
    );
    assert_eq!(
        count(c, Some("events")).await?,
        2,
        "no record for a refused fire"
    );

    // An alarm tick in the same minute is refused as well (claimed, not fired).
    let state = &p.scheduler.state;
    let first = state
        .store
        .get_alarm("guest", "every10")
        .await?
        .context("alarm row")?
        .next_fire;
    assert_eq!(tick(state, first).await?, 0, "over firesPerMinute");
    assert_eq!(count(c, Some("every10")).await?, 0);
    // The next minute of the limiter's clock lets the next tick fire.
    p.clock.advance(Duration::from_secs(60));
    assert_eq!(tick(state, first + 600_000).await?, 1);
    let metrics = p.metrics().await?;
    assert_eq!(
        sample(
            &metrics,
            "wisp_throttled_total{namespace=\"guest\",limit=\"firesPerMinute\"}"
        ),
        Some(2.0),
        "{metrics}"
    );
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_actions_are_invocations_of_their_owner() -> Result<()> {
    let p = Limited::start(1).await?;
    let c = &p.guest;
    deploy(
        c,
        "hi",
        "hello",
        json!({"annotations": [{"key": "web-export", "value": true}]}),
    )
    .await?;
    p.limit(json!({"invocationsPerMinute": 1})).await?;
    let url = format!("{}/api/v1/web/guest/default/hi.json", p.scheduler.url);
    let first = http().get(&url).send().await?;
    assert_eq!(first.status(), StatusCode::OK);
    let second = http().get(&url).send().await?;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.json::<Value>().await?, too_many(2, 1));
    assert_eq!(count(c, None).await?, 1);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_route_answers_openwhisks_user_limits() -> Result<()> {
    let p = Limited::start(1).await?;
    let c = &p.guest;
    let (status, limits) = c.get(&format!("{NS}/limits")).await?;
    assert_eq!(status, StatusCode::OK, "{limits}");
    assert_eq!(
        limits,
        json!({
            "invocationsPerMinute": 120_000,
            "concurrentInvocations": 64,
            "firesPerMinute": 600,
            "maxActionInstances": 64,
            "minActionMemory": wisp_core::Limits::MIN_MEMORY_MB,
            "maxActionMemory": wisp_core::Limits::MAX_MEMORY_MB,
            "minActionTimeout": wisp_core::Limits::MIN_TIMEOUT_MS,
            "maxActionTimeout": wisp_core::Limits::MAX_TIMEOUT_MS,
            "minActionLogs": 0,
            "maxActionLogs": wisp_core::Limits::MAX_LOGS_MB,
            "minActionConcurrency": 1,
            "maxActionConcurrency": wisp_core::Limits::MAX_CONCURRENCY,
            "maxParameterSize": "1048576 B",
            "maxPayloadSize": "1048576 B",
            "activationRetention": 10_000,
        })
    );
    p.limit(json!({"concurrentInvocations": 5, "firesPerMinute": 7}))
        .await?;
    let (status, own) = c.get("/api/v1/namespaces/guest/limits").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["concurrentInvocations"], 5);
    assert_eq!(own["maxActionInstances"], 5);
    assert_eq!(own["firesPerMinute"], 7);
    assert_eq!(own["invocationsPerMinute"], 120_000, "the default stays");
    // Another namespace's limits are not the caller's business; no credentials: 401.
    p.scheduler.create_user("other").await?;
    let (status, body) = c.get("/api/v1/namespaces/other/limits").await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = c.with_auth("").get(&format!("{NS}/limits")).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The API root shows the defaults.
    let root: Value = http().get(&p.scheduler.url).send().await?.json().await?;
    assert_eq!(root["limits"]["actions_per_minute"], 120_000);
    assert_eq!(root["limits"]["concurrent_actions"], 64);
    assert_eq!(root["limits"]["triggers_per_minute"], 600);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_gets_sets_resets_and_refuses_bad_limits() -> Result<()> {
    let p = Limited::start(1).await?;
    let defaults = json!({"invocationsPerMinute": 120_000, "concurrentInvocations": 64, "firesPerMinute": 600});
    assert_eq!(
        p.get_limits("guest").await?,
        (StatusCode::OK, defaults.clone())
    );
    let (status, set) = p
        .put_limits(
            "guest",
            r#"{"invocationsPerMinute": 120, "concurrentInvocations": 3}"#,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{set}");
    let expected =
        json!({"invocationsPerMinute": 120, "concurrentInvocations": 3, "firesPerMinute": 600});
    assert_eq!(set, expected);
    assert_eq!(
        p.get_limits("guest").await?,
        (StatusCode::OK, expected.clone())
    );
    // A subset changes only its keys; an empty object changes nothing.
    let (_, set) = p.put_limits("guest", r#"{"firesPerMinute": 9}"#).await?;
    assert_eq!(set["invocationsPerMinute"], 120);
    assert_eq!(set["firesPerMinute"], 9);
    assert_eq!(p.put_limits("guest", "{}").await?.1, set);
    // null resets a key to the default.
    let (_, reset) = p
        .put_limits(
            "guest",
            r#"{"invocationsPerMinute": null, "firesPerMinute": null}"#,
        )
        .await?;
    assert_eq!(
        reset,
        json!({"invocationsPerMinute": 120_000, "concurrentInvocations": 3, "firesPerMinute": 600})
    );
    for (body, needle) in [
        (r#"{"invocationsPerMinute": 0}"#, "at least 1"),
        (r#"{"concurrentInvocations": -2}"#, "at least 1"),
        (r#"{"firesPerMinute": 2.5}"#, "whole number"),
        (r#"{"firesPerMinute": "many"}"#, "number or null"),
        (
            r#"{"invocationsPerMinute": 10, "burst": 3}"#,
            "Unknown limit 'burst'",
        ),
        (r#"[10]"#, "JSON object"),
        ("not json", "malformed"),
    ] {
        let (status, answer) = p.put_limits("guest", body).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["code"], "bad_request");
        assert!(
            answer["error"].as_str().unwrap_or("").contains(needle),
            "{body}: {answer}"
        );
    }
    assert_eq!(
        p.get_limits("guest").await?.1,
        reset,
        "a refused update changes nothing"
    );
    // Unknown users: 404.
    let (status, body) = p.get_limits("nobody").await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = p.put_limits("nobody", r#"{"firesPerMinute": 5}"#).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Behind the admin key.
    let r = http()
        .get(p.admin_url("guest"))
        .bearer_auth("wrong")
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http()
        .put(p.admin_url("guest"))
        .json(&json!({"firesPerMinute": 1}))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(p.get_limits("guest").await?.1, reset);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_enforces_its_share_of_the_limit() -> Result<()> {
    let p = Limited::start(2).await?;
    let c = &p.guest;
    deploy(c, "hello", "hello", json!({})).await?;
    p.limit(json!({"invocationsPerMinute": 3})).await?;
    for _ in 0..2 {
        let (status, body) = c.invoke("hello", json!({})).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = c.invoke("hello", json!({})).await?;
    assert_eq!(
        (status, body),
        (StatusCode::TOO_MANY_REQUESTS, too_many(3, 2)),
        "ceil(3 / 2) = 2 on each of 2 replicas"
    );
    let (_, limits) = c.get(&format!("{NS}/limits")).await?;
    assert_eq!(
        limits["invocationsPerMinute"], 3,
        "the namespace's limit, not the share"
    );
    p.stop().await
}
