//! Runtime discovery: pods become balancer runtimes when Ready and stop being runtimes when not
//! ready, terminating or deleted; dedicated runtimes go to their user's own balancer. Tested by
//! feeding a reflector store directly, and end to end through the kube crate's mock service
//! (the exact list and watch requests of the pod reflector).

mod kube_mock;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use kube_mock::{Answer, Seen, mock_api};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wisp_scheduler::balancer::{Balancer, BalancerConfig};
use wisp_scheduler::kube::discovery::{Discovery, endpoint};
use wisp_scheduler::kube::{RuntimePools, spawn_discovery};

const OWN: &str = "wisp-system";

fn pod_json(ns: &str, name: &str, ip: &str, ready: bool, user: Option<&str>) -> Value {
    let mut labels = json!({"app.kubernetes.io/name": "wisp-runtime", "wisp.dev/runtime": "true"});
    if let Some(u) = user {
        labels["wisp.dev/user"] = json!(u);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"),
            "resourceVersion": "1", "labels": labels},
        "spec": {"containers": [{"name": "runtime", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

fn pod(ns: &str, name: &str, ip: &str, ready: bool, user: Option<&str>) -> Pod {
    serde_json::from_value(pod_json(ns, name, ip, ready, user)).unwrap()
}

fn urls(b: &Balancer) -> Vec<String> {
    b.snapshot().into_iter().map(|r| r.url).collect()
}

/// A discovery over a fresh shared balancer, fed through a reflector store.
struct Fed {
    pools: Arc<RuntimePools>,
    discovery: Discovery,
    store: reflector::Store<Pod>,
    writer: reflector::store::Writer<Pod>,
}

impl Fed {
    fn new() -> Fed {
        let pools = Arc::new(RuntimePools::new(Balancer::new(BalancerConfig::default())));
        let (store, writer) = reflector::store();
        Fed {
            discovery: Discovery::new(Arc::clone(&pools), OWN),
            pools,
            store,
            writer,
        }
    }

    fn event(&mut self, e: Event<Pod>) {
        self.writer.apply_watcher_event(&e);
        self.discovery.reconcile_store(&self.store);
    }

    fn shared(&self) -> Vec<String> {
        urls(self.pools.shared())
    }
}

#[test]
fn a_ready_pod_is_added_and_a_not_ready_or_deleted_one_removed() {
    let mut f = Fed::new();
    f.event(Event::Apply(pod(OWN, "rt-a", "10.0.0.5", true, None)));
    assert_eq!(f.shared(), ["http://10.0.0.5:8080"]);

    // Not ready from the start: not added.
    f.event(Event::Apply(pod(OWN, "rt-b", "10.0.0.6", false, None)));
    assert_eq!(f.shared(), ["http://10.0.0.5:8080"]);
    // ...until it turns Ready.
    f.event(Event::Apply(pod(OWN, "rt-b", "10.0.0.6", true, None)));
    assert_eq!(f.shared(), ["http://10.0.0.5:8080", "http://10.0.0.6:8080"]);

    // Ready → not ready: removed.
    f.event(Event::Apply(pod(OWN, "rt-a", "10.0.0.5", false, None)));
    assert_eq!(f.shared(), ["http://10.0.0.6:8080"]);

    // Terminating (deletionTimestamp set, still Ready while it drains): removed.
    let mut terminating = pod_json(OWN, "rt-b", "10.0.0.6", true, None);
    terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    f.event(Event::Apply(serde_json::from_value(terminating).unwrap()));
    assert!(f.shared().is_empty());

    // Back, then deleted.
    f.event(Event::Apply(pod(OWN, "rt-c", "10.0.0.7", true, None)));
    assert_eq!(f.shared(), ["http://10.0.0.7:8080"]);
    f.event(Event::Delete(pod(OWN, "rt-c", "10.0.0.7", true, None)));
    assert!(f.shared().is_empty());
}

#[test]
fn a_watch_restart_drops_pods_deleted_meanwhile() {
    let mut f = Fed::new();
    f.event(Event::Apply(pod(OWN, "rt-a", "10.0.0.5", true, None)));
    f.event(Event::Apply(pod(OWN, "rt-b", "10.0.0.6", true, None)));
    f.event(Event::Init);
    f.event(Event::InitApply(pod(OWN, "rt-b", "10.0.0.6", true, None)));
    f.event(Event::InitDone);
    assert_eq!(f.shared(), ["http://10.0.0.6:8080"]);
}

#[test]
fn dedicated_runtimes_get_their_own_balancer() {
    let mut f = Fed::new();
    f.event(Event::Apply(pod(OWN, "shared", "10.0.0.5", true, None)));
    f.event(Event::Apply(pod(
        "wisp-user-alice",
        "rt-1",
        "10.1.0.1",
        true,
        Some("alice"),
    )));
    f.event(Event::Apply(pod(
        "wisp-user-alice",
        "rt-2",
        "10.1.0.2",
        false,
        Some("alice"),
    )));
    assert_eq!(
        f.shared(),
        ["http://10.0.0.5:8080"],
        "not in the shared list"
    );
    assert_eq!(f.pools.dedicated_users(), ["alice"]);
    let alice = f.pools.dedicated("alice").unwrap();
    assert_eq!(urls(&alice), ["http://10.1.0.1:8080"]);
    assert!(Arc::ptr_eq(&f.pools.for_namespace("alice"), &alice));
    assert!(Arc::ptr_eq(&f.pools.for_namespace("bob"), f.pools.shared()));

    f.event(Event::Apply(pod(
        "wisp-user-alice",
        "rt-2",
        "10.1.0.2",
        true,
        Some("alice"),
    )));
    assert_eq!(
        urls(&alice),
        ["http://10.1.0.1:8080", "http://10.1.0.2:8080"]
    );
    assert!(
        Arc::ptr_eq(&f.pools.dedicated("alice").unwrap(), &alice),
        "same balancer kept"
    );

    f.event(Event::Delete(pod(
        "wisp-user-alice",
        "rt-1",
        "10.1.0.1",
        true,
        Some("alice"),
    )));
    f.event(Event::Delete(pod(
        "wisp-user-alice",
        "rt-2",
        "10.1.0.2",
        true,
        Some("alice"),
    )));
    assert!(f.pools.dedicated("alice").is_none());
    assert!(f.pools.dedicated_users().is_empty());
    assert!(Arc::ptr_eq(
        &f.pools.for_namespace("alice"),
        f.pools.shared()
    ));
    assert_eq!(f.shared(), ["http://10.0.0.5:8080"]);
}

#[test]
fn pods_outside_wisp_namespaces_are_ignored() {
    let mut f = Fed::new();
    // A runtime label in some other namespace: would receive the runtime token and users' code.
    f.event(Event::Apply(pod(
        "default", "impostor", "10.9.0.1", true, None,
    )));
    // A user label outside that user's namespace, or naming another user.
    f.event(Event::Apply(pod(
        "default",
        "impostor-2",
        "10.9.0.2",
        true,
        Some("alice"),
    )));
    f.event(Event::Apply(pod(
        "wisp-user-bob",
        "impostor-3",
        "10.9.0.3",
        true,
        Some("alice"),
    )));
    // A user label in the scheduler's own namespace.
    f.event(Event::Apply(pod(
        OWN,
        "impostor-4",
        "10.9.0.4",
        true,
        Some("alice"),
    )));
    assert!(f.shared().is_empty());
    assert!(f.pools.dedicated_users().is_empty());
}

#[test]
fn endpoints_use_the_port_named_http() {
    let mut v = pod_json(OWN, "rt", "10.0.0.5", true, None);
    v["spec"]["containers"][0]["ports"] = json!([{"name": "metrics", "containerPort": 9100}, {"name": "http", "containerPort": 9000}]);
    let e = endpoint(&serde_json::from_value(v.clone()).unwrap(), OWN).unwrap();
    assert_eq!(e.url, "http://10.0.0.5:9000");
    assert_eq!(e.user, None);
    v["spec"]["containers"][0]["ports"] = json!([]);
    let e = endpoint(&serde_json::from_value(v.clone()).unwrap(), OWN).unwrap();
    assert_eq!(
        e.url, "http://10.0.0.5:8080",
        "8080 when no port is named http"
    );
    v["status"]["podIP"] = json!("fd00::5");
    let e = endpoint(&serde_json::from_value(v.clone()).unwrap(), OWN).unwrap();
    assert_eq!(e.url, "http://[fd00::5]:8080");
    // No IP yet (Pending), or no runtime label: not a runtime.
    v["status"]["podIP"] = Value::Null;
    assert!(endpoint(&serde_json::from_value(v.clone()).unwrap(), OWN).is_none());
    let mut unlabelled = pod_json(OWN, "x", "10.0.0.8", true, None);
    unlabelled["metadata"]["labels"] = json!({"wisp.dev/runtime": "false"});
    assert!(endpoint(&serde_json::from_value(unlabelled).unwrap(), OWN).is_none());
}

/// The shared runtimes and each user's dedicated ones, when the mock got a request.
type State = (Vec<String>, BTreeMap<String, Vec<String>>);

/// The pod reflector end to end: the mock answers the initial list (one Ready pod, one not
/// ready), then a watch (the not-ready one turns Ready, the first is deleted, a dedicated runtime
/// appears). The balancer state is captured at each request: the reflector handles every event
/// of an answer before it sends its next request.
#[tokio::test]
async fn the_pod_reflector_follows_list_and_watch() -> Result<()> {
    let pools = Arc::new(RuntimePools::new(Balancer::new(BalancerConfig::default())));
    let shutdown = CancellationToken::new();
    let states: Arc<Mutex<Vec<State>>> = Arc::default();
    let (client, api) = {
        let (pools, shutdown, states) = (Arc::clone(&pools), shutdown.clone(), Arc::clone(&states));
        mock_api(move |_s: &Seen, i| {
            let dedicated = pools
                .dedicated_users()
                .into_iter()
                .map(|u| {
                    let b = pools.dedicated(&u).unwrap();
                    (u, urls(&b))
                })
                .collect();
            states
                .lock()
                .unwrap()
                .push((urls(pools.shared()), dedicated));
            match i {
                0 => Answer::json(
                    200,
                    &json!({
                        "apiVersion": "v1", "kind": "PodList",
                        "metadata": {"resourceVersion": "100"},
                        "items": [
                            pod_json(OWN, "rt-a", "10.0.0.5", true, None),
                            pod_json(OWN, "rt-b", "10.0.0.6", false, None),
                        ],
                    }),
                ),
                1 => Answer::lines(&[
                    json!({"type": "MODIFIED", "object": pod_json(OWN, "rt-b", "10.0.0.6", true, None)}),
                    json!({"type": "DELETED", "object": pod_json(OWN, "rt-a", "10.0.0.5", true, None)}),
                    json!({"type": "ADDED", "object": pod_json("wisp-user-alice", "rt-1", "10.1.0.1", true, Some("alice"))}),
                ]),
                _ => {
                    shutdown.cancel();
                    Answer::lines(&[])
                }
            }
        })
    };
    let task = spawn_discovery(client, Arc::clone(&pools), shutdown.clone());
    task.await?;
    let seen = api.finish().await;
    assert!(seen.len() >= 3, "{seen:#?}");

    let selector = "wisp.dev/runtime=true";
    assert_eq!(seen[0].line(), "GET /api/v1/pods", "cluster-wide list");
    assert_eq!(
        seen[0].query,
        BTreeMap::from([
            ("labelSelector".to_string(), selector.to_string()),
            ("limit".to_string(), "500".to_string()),
        ])
    );
    for s in &seen[1..] {
        assert_eq!(s.line(), "GET /api/v1/pods", "cluster-wide watch");
        assert_eq!(s.q("watch"), Some("true"), "{s:#?}");
        assert_eq!(s.q("labelSelector"), Some(selector));
        assert_eq!(s.q("allowWatchBookmarks"), Some("true"));
    }
    assert_eq!(
        seen[1].q("resourceVersion"),
        Some("100"),
        "watches from the list's version"
    );

    let states = states.lock().unwrap();
    assert_eq!(
        states[0],
        (vec![], BTreeMap::new()),
        "nothing before the list"
    );
    assert_eq!(
        states[1],
        (vec!["http://10.0.0.5:8080".to_string()], BTreeMap::new()),
        "after the list: the Ready pod only"
    );
    assert_eq!(
        states[2],
        (
            vec!["http://10.0.0.6:8080".to_string()],
            BTreeMap::from([(
                "alice".to_string(),
                vec!["http://10.1.0.1:8080".to_string()]
            )])
        ),
        "after the watch: b Ready, a deleted, alice's dedicated runtime in its own balancer"
    );
    Ok(())
}
