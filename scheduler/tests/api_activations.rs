//! The activations read API over real invokes: get, logs, result, and listing with name, limit,
//! skip, since, upto, docs and count; non-blocking invokes end as fetchable records.

mod common;

use anyhow::{Result, bail};
use common::{Client, Platform, hello_wasm};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACTS: &str = "/api/v1/namespaces/_/activations";

async fn wait_for(client: &Client, id: &str) -> Result<Value> {
    for _ in 0..400 {
        let (s, body) = client.get(&format!("{ACTS}/{id}")).await?;
        if s == StatusCode::OK {
            return Ok(body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    bail!("activation {id} never appeared")
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["activationId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_logs_results_and_listing_filters() -> Result<()> {
    let p = Platform::start(1).await?;
    let g = &p.guest;
    g.create_action("hello", &hello_wasm()).await?;
    g.create_action("echo", &wisp_testkit::function_bytes("echo"))
        .await?;
    let mut invoked = Vec::new();
    for i in 0..4 {
        let (s, rec) = g.invoke("hello", json!({"name": format!("n{i}")})).await?;
        assert_eq!(s, StatusCode::OK, "{rec}");
        invoked.push(rec["activationId"].as_str().unwrap().to_string());
        let (s, rec) = g.invoke("echo", json!({"i": i})).await?;
        assert_eq!(s, StatusCode::OK, "{rec}");
        invoked.push(rec["activationId"].as_str().unwrap().to_string());
        // Distinct start times for the since/upto checks below.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let first = &invoked[0];

    let (s, rec) = g.get(&format!("{ACTS}/{first}")).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rec["name"], "hello");
    assert_eq!(rec["namespace"], "guest");
    assert_eq!(rec["response"]["status"], "success");
    assert_eq!(rec["response"]["result"], json!({"greeting": "Hello, n0!"}));
    let (s, logs) = g.get(&format!("{ACTS}/{first}/logs")).await?;
    assert_eq!(s, StatusCode::OK);
    let lines = logs["logs"].as_array().expect("logs list");
    assert!(
        lines
            .iter()
            .any(|l| l.as_str().unwrap().contains("hello: greeting n0")),
        "{logs}"
    );
    let (s, result) = g.get(&format!("{ACTS}/{first}/result")).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        result,
        json!({"result": {"greeting": "Hello, n0!"}, "status": "success", "success": true})
    );

    // Listing: newest first, summaries unless docs=true.
    let (_, all) = g.get(&format!("{ACTS}?limit=200")).await?;
    let mut expected = invoked.clone();
    expected.reverse();
    assert_eq!(ids(&all), expected);
    assert!(
        all[0].get("response").is_none() && all[0].get("logs").is_none(),
        "summary: {}",
        all[0]
    );
    let (_, docs) = g.get(&format!("{ACTS}?docs=true&limit=1")).await?;
    assert!(docs[0]["response"]["result"].is_object(), "{docs}");

    let (_, page) = g.get(&format!("{ACTS}?limit=3&skip=2")).await?;
    assert_eq!(ids(&page), expected[2..5]);
    let (_, hellos) = g.get(&format!("{ACTS}?name=hello")).await?;
    assert_eq!(hellos.as_array().unwrap().len(), 4);
    assert!(
        hellos
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] == "hello")
    );
    let (_, count) = g.get(&format!("{ACTS}?count=true&name=echo")).await?;
    assert_eq!(count, json!({"activations": 4}));
    let (_, none) = g.get(&format!("{ACTS}?name=missing")).await?;
    assert_eq!(none, json!([]));

    // since/upto bound the start time (inclusive).
    let starts: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["start"].as_u64().unwrap())
        .collect();
    let (lo, hi) = (starts[5], starts[2]);
    let (_, window) = g
        .get(&format!("{ACTS}?since={lo}&upto={hi}&limit=200"))
        .await?;
    let got: Vec<u64> = window
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["start"].as_u64().unwrap())
        .collect();
    assert!(!got.is_empty());
    assert!(
        got.iter().all(|s| (lo..=hi).contains(s)),
        "{got:?} outside {lo}..={hi}"
    );
    let inside = starts.iter().filter(|s| (lo..=hi).contains(*s)).count();
    assert_eq!(got.len(), inside);

    // Bad ids and filters are 400s with a JSON error; unknown ids 404.
    for bad in [
        format!("{ACTS}/not-an-id"),
        format!("{ACTS}?since=yesterday"),
        format!("{ACTS}?name=a..b"),
        format!("{ACTS}?limit=500"),
    ] {
        let (s, body) = g.get(&bad).await?;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string() && body["code"].is_string());
    }
    let (s, _) = g.get(&format!("{ACTS}/{}", "0".repeat(32))).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    p.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_blocking_invokes_end_as_records() -> Result<()> {
    let p = Platform::start(1).await?;
    let g = &p.guest;
    g.create_action("hello", &hello_wasm()).await?;
    let (s, accepted) = g
        .post(
            "/api/v1/namespaces/_/actions/hello",
            &json!({"name": "later"}),
        )
        .await?;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["activationId"]
        .as_str()
        .expect("activationId")
        .to_string();
    let rec = wait_for(g, &id).await?;
    assert_eq!(rec["response"]["result"]["greeting"], "Hello, later!");
    let (_, listed) = g.get(&format!("{ACTS}?name=hello")).await?;
    assert_eq!(ids(&listed), [id]);
    p.stop().await
}
