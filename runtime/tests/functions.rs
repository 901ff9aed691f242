//! Every function of `functions/` run over HTTP against a real runtime, each with its exact
//! status; every hostile one while a concurrent `hello` keeps being served.

mod common;

use common::{Server, assert_status, request, start};
use serde_json::{Value, json};
use wisp_core::{Limits, RunResponse, Status};

async fn hello_ok(s: &Server, name: &str) -> anyhow::Result<()> {
    let d = s.deploy("hello").await?;
    let r = s.invoke(&d, json!({"name": name})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(
        r.response.result,
        json!({"greeting": format!("Hello, {name}!")})
    );
    Ok(())
}

/// Runs `hostile` and, concurrently, a `hello`; returns the hostile activation's response.
async fn hostile_beside_hello(
    s: &Server,
    name: &'static str,
    params: Value,
    limits: Limits,
) -> anyhow::Result<RunResponse> {
    let d = s.deploy(name).await?;
    let req = request(&d, params, limits);
    let (bad, ()) = tokio::try_join!(s.run(&req), hello_ok(s, "neighbour"))?;
    // The runtime still serves afterwards.
    hello_ok(s, "after").await?;
    Ok(bad)
}

fn log_texts(r: &RunResponse) -> Vec<&str> {
    r.logs
        .iter()
        .map(|l| l.split_once(' ').expect("timestamped line").1)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_greets_and_logs() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("hello").await?;
    let r = s.invoke(&d, json!({"name": "wisp"})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"greeting": "Hello, wisp!"}));
    // The result line is not a log line; the SDK's log line is, stamped and tagged.
    assert_eq!(log_texts(&r), vec!["stderr: hello: greeting wisp"]);
    assert!(
        r.logs[0].starts_with("20") && r.logs[0].contains('T'),
        "{:?}",
        r.logs
    );
    assert!(r.end >= r.start);
    // Prepared ahead: no code loading on the invoke.
    assert_eq!(r.init_time_us, 0);
    let r = s.invoke(&d, json!({})).await?;
    assert_eq!(r.response.result, json!({"greeting": "Hello, stranger!"}));
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_returns_its_params() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("echo").await?;
    let params = json!({"a": 1, "nested": {"list": [1, "two", null, true]}, "unicode": "héllo ✓"});
    let r = s.invoke(&d, params.clone()).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, params);
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_hello_answers_html() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("web-hello").await?;
    let params = json!({
        "name": "<b>web</b>",
        "__ow_method": "get",
        "__ow_path": "/x",
        "__ow_headers": {"accept": "text/html"},
        "__ow_query": "",
        "__ow_body": ""
    });
    let r = s.invoke(&d, params).await?;
    assert_status(&r, Status::Success);
    let res = &r.response.result;
    assert_eq!(res["statusCode"], 200);
    assert_eq!(res["headers"]["content-type"], "text/html");
    let body = res["body"].as_str().expect("string body");
    assert!(
        body.contains("<h1>Hello, &lt;b&gt;web&lt;/b&gt;!</h1>"),
        "{body}"
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primes_counts_and_reports_bad_params_as_application_errors() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("primes").await?;
    let r = s.invoke(&d, json!({"n": 100})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result["count"], 25);
    assert_eq!(r.response.result["largest"], 97);
    let r = s.invoke(&d, json!({"n": 1_000_000})).await?;
    assert_eq!(r.response.result["count"], 78_498);
    let r = s.invoke(&d, json!({})).await?;
    assert_status(&r, Status::ApplicationError);
    assert!(
        r.response.result["error"]
            .as_str()
            .unwrap()
            .contains("missing parameter n")
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_computes_daily_min_mean_max() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("aggregate").await?;
    let readings = json!({"readings": [
        {"sensor": "t1", "timestamp": "2026-11-23T01:00:00Z", "value": 10.0},
        {"sensor": "t1", "timestamp": "2026-11-23T13:00:00Z", "value": 20.0},
        {"sensor": "t1", "timestamp": 1_795_478_400_000_i64, "value": 30.0},
        {"sensor": "t2", "timestamp": "2026-11-23T05:00:00+02:00", "value": -1.5}
    ]});
    let r = s.invoke(&d, readings).await?;
    assert_status(&r, Status::Success);
    let res = &r.response.result;
    assert_eq!(res["readings"], 4);
    let t1 = res["aggregates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["sensor"] == "t1" && a["day"] == "2026-11-23")
        .expect("t1 on 2026-11-23");
    assert_eq!(
        (t1["min"].as_f64(), t1["mean"].as_f64(), t1["max"].as_f64()),
        (Some(10.0), Some(15.0), Some(20.0))
    );
    assert_eq!(t1["count"], 2);
    let bad = s
        .invoke(
            &d,
            json!({"readings": [{"sensor": "", "timestamp": 0, "value": 1.0}]}),
        )
        .await?;
    assert_status(&bad, Status::ApplicationError);
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_sleeps_and_is_cut_at_its_time_limit() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("sleep").await?;
    let r = s.invoke(&d, json!({"ms": 30})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result["slept"], 30);
    assert!(r.duration_us >= 30_000, "{r:?}");
    // Blocked in a host call (poll_oneoff): the epoch cannot interrupt it, the timeout does.
    let limits = Limits {
        timeout: 300,
        ..Limits::default()
    };
    let slow = request(&d, json!({"ms": 60_000}), limits);
    let (r, ()) = tokio::try_join!(s.run(&slow), hello_ok(&s, "while sleeping"))?;
    assert_status(&r, Status::DeveloperError);
    assert_eq!(
        r.response.result,
        json!({"error": "The action exceeded its time limit of 300 milliseconds."})
    );
    // Busy-waiting in wasm: the epoch deadline interrupts it.
    let r = s
        .run(&request(&d, json!({"ms": 60_000, "busy": true}), limits))
        .await?;
    assert_status(&r, Status::DeveloperError);
    assert_eq!(
        r.response.result,
        json!({"error": "The action exceeded its time limit of 300 milliseconds."})
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_shows_the_ow_variables_and_nothing_of_the_host() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("env").await?;
    let req = request(
        &d,
        json!({}),
        Limits {
            timeout: 5000,
            ..Limits::default()
        },
    );
    let before = wisp_core::now_ms();
    let r = s.run(&req).await?;
    assert_status(&r, Status::Success);
    let res = &r.response.result;
    assert_eq!(res["__OW_ACTIVATION_ID"], req.activation_id.as_str());
    assert_eq!(res["__OW_ACTION_NAME"], req.action.as_str());
    assert_eq!(res["__OW_NAMESPACE"], "guest");
    assert_eq!(res["__OW_ACTION_VERSION"], "0.0.1");
    assert_eq!(res["__OW_API_HOST"], "http://127.0.0.1:3233");
    let deadline: u64 = res["__OW_DEADLINE"].as_str().unwrap().parse()?;
    assert!(
        deadline >= before + 5000 && deadline <= wisp_core::now_ms() + 5000,
        "{deadline}"
    );
    // Nothing inherited from the host environment (PATH, HOME, CARGO_*...).
    assert_eq!(res["env_other"], json!([]));
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_are_interrupted_and_never_delay_a_concurrent_hello() -> anyhow::Result<()> {
    let s = start().await?;
    let d = s.deploy("loop").await?;
    hello_ok(&s, "warm").await?;
    // 64 MB each: the four fit in the namespace's share of the memory budget beside the hello.
    let limits = Limits {
        timeout: 3000,
        memory: 64,
        ..Limits::default()
    };
    // More spinning guests than worker threads: without epoch yielding they would hold both.
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let req = request(&d, json!({}), limits);
            let client = s.client.clone();
            let url = s.url("/run");
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(common::TOKEN)
                    .json(&req)
                    .send()
                    .await?;
                anyhow::Ok(resp.json::<RunResponse>().await?)
            })
        })
        .collect();
    // All four admitted (their memory reserved) and so instantiated or about to be.
    while s.runtime.reserved_memory_mb() < 4 * 64 {
        tokio::task::yield_now().await;
    }
    hello_ok(&s, "beside the loops").await?;
    assert!(
        loops.iter().all(|l| !l.is_finished()),
        "hello should complete while every loop is still running"
    );
    for l in loops {
        let r = l.await??;
        assert_status(&r, Status::DeveloperError);
        assert_eq!(
            r.response.result,
            json!({"error": "The action exceeded its time limit of 3000 milliseconds."})
        );
        assert_eq!(log_texts(&r), vec!["stderr: loop: spinning forever"]);
    }
    hello_ok(&s, "after").await?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membomb_hits_its_memory_cap() -> anyhow::Result<()> {
    let s = start().await?;
    let limits = Limits {
        memory: 64,
        ..Limits::default()
    };
    let r = hostile_beside_hello(&s, "membomb", json!({}), limits).await?;
    assert_status(&r, Status::DeveloperError);
    assert_eq!(
        r.response.result,
        json!({"error": "The action exceeded its memory limit of 64 MB."})
    );
    assert_eq!(
        log_texts(&r)[0],
        "stderr: membomb: allocating until the memory cap"
    );
    let text = s.metrics().await?;
    assert!(
        common::metric(&text, r#"wisp_activations_total{status="developer_error"}"#).unwrap()
            >= 1.0
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursion_overflows_the_stack_into_a_trap() -> anyhow::Result<()> {
    let s = start().await?;
    let r = hostile_beside_hello(&s, "recursion", json!({}), Limits::default()).await?;
    assert_status(&r, Status::DeveloperError);
    let err = r.response.result["error"].as_str().unwrap();
    assert!(err.starts_with("The action trapped: "), "{err}");
    assert!(
        err.contains("call stack exhausted") || err.contains("out of bounds"),
        "{err}"
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_panics_into_unreachable_with_the_panic_in_the_logs() -> anyhow::Result<()> {
    let s = start().await?;
    let r = hostile_beside_hello(&s, "trap", json!({}), Limits::default()).await?;
    assert_status(&r, Status::DeveloperError);
    let err = r.response.result["error"].as_str().unwrap();
    assert!(
        err.starts_with("The action trapped: ") && err.contains("unreachable"),
        "{err}"
    );
    assert!(
        r.logs
            .iter()
            .any(|l| l.contains("this action panics on purpose")),
        "{:?}",
        r.logs
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_truncates_logs_and_still_finds_the_result() -> anyhow::Result<()> {
    let s = start().await?;
    let limits = Limits {
        logs: 1,
        ..Limits::default()
    };
    let r = hostile_beside_hello(&s, "flood", json!({"mb": 20}), limits).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result["flooded"], true);
    let last = r.logs.last().unwrap();
    assert!(
        last.ends_with(
            "stderr: Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
        ),
        "{last}"
    );
    let kept: usize = log_texts(&r)[..r.logs.len() - 1]
        .iter()
        .map(|l| l.split_once(": ").unwrap().1.len() + 1)
        .sum();
    assert!(
        kept <= 1 << 20 && kept > (1 << 20) - 200,
        "kept {kept} bytes of logs"
    );
    // Both streams were captured (each is buffered by the guest, so they arrive in blocks).
    assert!(
        r.logs[0].contains("stdout: flood line         0"),
        "{}",
        r.logs[0]
    );
    assert!(
        r.logs
            .iter()
            .any(|l| l.contains("stderr: flood line         1 "))
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badresult_is_a_developer_error() -> anyhow::Result<()> {
    let s = start().await?;
    for kind in ["text", "array", "none"] {
        let r =
            hostile_beside_hello(&s, "badresult", json!({"kind": kind}), Limits::default()).await?;
        assert_status(&r, Status::DeveloperError);
        assert_eq!(
            r.response.result,
            json!({"error": "The action did not return a JSON object."})
        );
        if kind == "text" {
            assert!(
                log_texts(&r).contains(&"stdout: a log line on stdout"),
                "{:?}",
                r.logs
            );
        }
    }
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exitcode_reports_its_exit_code() -> anyhow::Result<()> {
    let s = start().await?;
    let r = hostile_beside_hello(&s, "exitcode", json!({}), Limits::default()).await?;
    assert_status(&r, Status::DeveloperError);
    assert_eq!(
        r.response.result,
        json!({"error": "The action exited with code 3."})
    );
    let r = hostile_beside_hello(&s, "exitcode", json!({"code": 42}), Limits::default()).await?;
    assert_eq!(
        r.response.result,
        json!({"error": "The action exited with code 42."})
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_in_c_follows_the_same_abi() -> anyhow::Result<()> {
    let Some(path) = tokio::task::spawn_blocking(wisp_testkit::c_function_path).await? else {
        eprintln!("skipped: clang/wasi-libc not installed, hello-c not built");
        return Ok(());
    };
    let s = start().await?;
    let bytes = std::fs::read(path)?;
    let digest = wisp_core::Digest::of(&bytes);
    let mut req = request(&digest, json!({"name": "C"}), Limits::default());
    req.code = Some(common::b64(&bytes));
    let r = s.run(&req).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"greeting": "Hello from C, C!"}));
    s.stop().await
}
