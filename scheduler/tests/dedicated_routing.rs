//! Issue 6: a user with dedicated runtimes (`admin user add --dedicated-runtimes N`) has its
//! activations routed to them only, everyone else stays on the shared runtimes; when the last
//! dedicated runtime goes, its activations fall back to the shared pool without a failed
//! invocation. `/ready` and `/metrics` report the dedicated pools. Discovery (which fills the
//! pools from pods) is tested in `kube_discovery.rs`; here the pool is set as discovery does,
//! with `RuntimePools::set_dedicated`, and the runtimes are real. Which runtime ran what is read
//! from each runtime's own `wisp_activations_total`.

mod common_b;

use std::collections::BTreeSet;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use common_b::{RuntimeProc, SchedulerProc, plain};
use serde_json::{Value, json};

/// Blocking invoke of `name` in the caller's namespace with `auth`; the HTTP status.
async fn invoke_as(s: &SchedulerProc, auth: &str, name: &str) -> Result<u16> {
    let resp = plain()
        .post(format!(
            "{}/api/v1/namespaces/_/actions/{name}?blocking=true&result=true",
            s.base
        ))
        .basic_auth(
            auth.split_once(':').unwrap().0,
            auth.split_once(':').map(|p| p.1),
        )
        .json(&json!({}))
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

async fn deploy_as(s: &SchedulerProc, auth: &str, name: &str) -> Result<()> {
    let code = wisp_testkit::function_bytes("hello");
    let (user, key) = auth.split_once(':').unwrap();
    let resp = plain()
        .put(format!(
            "{}/api/v1/namespaces/_/actions/{name}?overwrite=true",
            s.base
        ))
        .basic_auth(user, Some(key))
        .json(&json!({"exec": {"kind": "wasm", "binary": true,
            "code": base64::engine::general_purpose::STANDARD.encode(code)}}))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("PUT {name}: {}", resp.status());
    }
    Ok(())
}

async fn totals(runtimes: &[&RuntimeProc]) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for r in runtimes {
        out.push(r.activations_total().await?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_runtimes_take_only_their_users_activations() -> Result<()> {
    let shared = RuntimeProc::start()?;
    let mut dedicated = RuntimeProc::start()?;
    let s = SchedulerProc::start(&[&shared]).await?;
    let alice = s.auth.clone();
    let bob = s.state.store.create_user("bob").await?.auth();
    deploy_as(&s, &alice, "hello").await?;
    deploy_as(&s, &bob, "hello").await?;

    // What discovery does when alice's runtime pod becomes Ready.
    s.state
        .pools
        .set_dedicated("alice", &BTreeSet::from([dedicated.url.clone()]));

    for _ in 0..5 {
        assert_eq!(invoke_as(&s, &alice, "hello").await?, 200);
    }
    assert_eq!(totals(&[&shared, &dedicated]).await?, vec![0, 5], "alice");
    for _ in 0..3 {
        assert_eq!(invoke_as(&s, &bob, "hello").await?, 200);
    }
    assert_eq!(totals(&[&shared, &dedicated]).await?, vec![3, 5], "bob");

    // /ready: ready on the shared pool, alice's pool listed.
    let ready: Value = plain()
        .get(format!("{}/ready", s.base))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["healthyRuntimes"], 1, "{ready}");
    assert_eq!(ready["dedicated"]["alice"]["healthyRuntimes"], 1, "{ready}");
    assert_eq!(
        ready["dedicated"]["alice"]["runtimes"][0]["url"],
        dedicated.url.as_str(),
        "{ready}"
    );
    // /metrics: both pools' runtimes, labelled.
    let metrics = plain()
        .get(format!("{}/metrics", s.base))
        .send()
        .await?
        .text()
        .await?;
    let healthy_line = |url: &str, pool: &str| {
        format!("wisp_runtime_healthy{{runtime=\"{url}\",pool=\"{pool}\"}} 1")
    };
    assert!(
        metrics.contains(&healthy_line(&dedicated.url, "alice")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&healthy_line(&shared.url, "shared")),
        "{metrics}"
    );

    // The dedicated runtime dies: alice's next invokes still succeed, on the shared runtime.
    dedicated.kill();
    dedicated.wait_refused().await?;
    for _ in 0..4 {
        assert_eq!(invoke_as(&s, &alice, "hello").await?, 200);
    }
    assert_eq!(shared.activations_total().await?, 7);

    // The pool goes when discovery sees no dedicated pod left.
    s.state.pools.set_dedicated("alice", &BTreeSet::new());
    let ready: Value = plain()
        .get(format!("{}/ready", s.base))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(ready["dedicated"], json!({}), "{ready}");
    s.stop().await.context("stop")?;
    Ok(())
}
