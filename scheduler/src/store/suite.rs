//! The store test suite: one async function that exercises every [`Store`] method against any
//! implementation. The embedded store runs it in `tests/store_sqlite.rs`, the PostgreSQL store
//! in `tests/store_postgres.rs`. Namespaces get a random suffix, so the suite can run again
//! on a database that already holds data. Panics (with a message) on the first failed check.
//!
//! [`TestDatabase`] gives a PostgreSQL test a database of its own on the server named by
//! `WISP_TEST_POSTGRES` (`scripts/postgres.sh` starts one and prints that variable).

use std::sync::Arc;

use serde_json::json;
use wisp_core::entity::KeyValue;
use wisp_core::{
    ActionDoc, ActivationId, ActivationRecord, ActivationResponse, Digest, Exec, Limits,
    PackageDoc, Status,
};

use super::entities::{ACTIVE, INACTIVE};
use super::{
    ActivationFilter, AlarmRow, Credentials, EntityKey, LimitsUpdate, NamespaceLimits, RuleDoc,
    RuleRef, Store, StoreError, TriggerDoc,
};

fn suffix() -> String {
    hex::encode(rand::random::<[u8; 4]>())
}

/// A wasm-looking blob (the store does not validate modules).
pub fn fake_module(tag: &str) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend_from_slice(tag.as_bytes());
    m
}

/// An action document for `code` (digest set, as the API builds it).
pub fn action_doc(code: &[u8]) -> ActionDoc {
    ActionDoc {
        namespace: String::new(),
        name: String::new(),
        version: String::new(),
        exec: Exec::Wasm {
            code: None,
            binary: true,
            digest: Some(Digest::of(code).to_string()),
        },
        parameters: vec![KeyValue::new("greeting", "hi")],
        annotations: vec![KeyValue::new("exec", "wasm")],
        limits: Limits::default(),
        publish: false,
        updated: 0,
    }
}

/// An activation record of `namespace`'s action `name` started at `start`.
pub fn record(namespace: &str, name: &str, start: u64) -> ActivationRecord {
    ActivationRecord {
        activation_id: ActivationId::generate(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        version: "0.0.1".into(),
        subject: namespace.to_string(),
        start,
        end: start + 3,
        duration: 3,
        status_code: 0,
        response: ActivationResponse::new(Status::Success, json!({"n": start})),
        logs: vec![format!("2026-01-01T00:00:00.000000000Z stdout: {name}")],
        annotations: vec![
            KeyValue::new("path", format!("{namespace}/{name}")),
            KeyValue::new("kind", "wasm"),
        ],
        cause: None,
        publish: false,
    }
}

/// Runs every check against `store`.
pub async fn store_suite(store: Arc<dyn Store>) {
    users(store.as_ref()).await;
    limits(store.as_ref()).await;
    actions(store.as_ref()).await;
    packages(store.as_ref()).await;
    activations(store.as_ref()).await;
    triggers_and_rules(store.as_ref()).await;
    alarms(store.as_ref()).await;
    delete_user_cascades(store.as_ref()).await;
}

/// Namespace limits: unset after create, set key by key, reset to the default, unknown users,
/// kept across a key change.
async fn limits(store: &dyn Store) {
    let name = format!("lim-{}", suffix());
    assert_eq!(store.user_limits(&name).await.unwrap(), None, "no user yet");
    let unknown = LimitsUpdate {
        invocations_per_minute: Some(Some(5)),
        ..LimitsUpdate::default()
    };
    assert_eq!(store.set_user_limits(&name, &unknown).await.unwrap(), None);
    store.create_user(&name).await.expect("create_user");
    assert_eq!(
        store.user_limits(&name).await.unwrap(),
        Some(NamespaceLimits::default()),
        "a new user has the defaults"
    );
    let set = LimitsUpdate {
        invocations_per_minute: Some(Some(120)),
        concurrent_invocations: Some(Some(7)),
        fires_per_minute: None,
    };
    let after = store.set_user_limits(&name, &set).await.unwrap().unwrap();
    let expected = NamespaceLimits {
        invocations_per_minute: Some(120),
        concurrent_invocations: Some(7),
        fires_per_minute: None,
    };
    assert_eq!(after, expected);
    assert_eq!(store.user_limits(&name).await.unwrap(), Some(expected));
    // One key at a time: the others stay.
    let fires = LimitsUpdate {
        fires_per_minute: Some(Some(u32::MAX)),
        ..LimitsUpdate::default()
    };
    let after = store.set_user_limits(&name, &fires).await.unwrap().unwrap();
    assert_eq!(after.invocations_per_minute, Some(120));
    assert_eq!(after.fires_per_minute, Some(u32::MAX));
    let reset = LimitsUpdate {
        invocations_per_minute: Some(None),
        ..LimitsUpdate::default()
    };
    let after = store.set_user_limits(&name, &reset).await.unwrap().unwrap();
    assert_eq!(after.invocations_per_minute, None, "reset to the default");
    assert_eq!(after.concurrent_invocations, Some(7));
    assert_eq!(store.user_limits(&name).await.unwrap(), Some(after));
    // A new key keeps the limits.
    let creds = Credentials::parse(&format!("{}:{}", uuid::Uuid::new_v4(), suffix())).unwrap();
    store.set_user_key(&name, &creds).await.unwrap();
    assert_eq!(store.user_limits(&name).await.unwrap(), Some(after));
    assert!(store.delete_user(&name).await.unwrap());
    assert_eq!(store.user_limits(&name).await.unwrap(), None, "deleted");
}

async fn users(store: &dyn Store) {
    let name = format!("alice-{}", suffix());
    let creds = store.create_user(&name).await.expect("create_user");
    assert_eq!(creds.key.len(), 64, "generated keys are 64 characters");
    assert!(
        matches!(
            store.create_user(&name).await,
            Err(StoreError::Conflict { .. })
        ),
        "creating an existing user is a conflict"
    );
    assert_eq!(
        store
            .authenticate(&creds.uuid, &creds.key)
            .await
            .unwrap()
            .as_deref(),
        Some(name.as_str())
    );
    assert_eq!(
        store.authenticate(&creds.uuid, "wrong").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .authenticate("no-such-uuid", &creds.key)
            .await
            .unwrap(),
        None
    );
    let stored = store.identity_by_uuid(&creds.uuid).await.unwrap().unwrap();
    assert_ne!(stored.key_hash, creds.key, "keys are stored hashed");

    let fixed = Credentials::parse(&format!("{}:{}", uuid::Uuid::new_v4(), suffix())).unwrap();
    store
        .set_user_key(&name, &fixed)
        .await
        .expect("set_user_key");
    assert_eq!(
        store.authenticate(&creds.uuid, &creds.key).await.unwrap(),
        None,
        "old key gone"
    );
    assert_eq!(
        store
            .authenticate(&fixed.uuid, &fixed.key)
            .await
            .unwrap()
            .as_deref(),
        Some(name.as_str())
    );
    let other = format!("bob-{}", suffix());
    store
        .set_user_key(&other, &Credentials::generate())
        .await
        .expect("set_user_key creates");
    let user = store
        .get_user(&other)
        .await
        .unwrap()
        .expect("created by set_user_key");
    assert_eq!(user.namespace, other);
    assert!(
        matches!(
            store.set_user_key(&other, &fixed).await,
            Err(StoreError::Conflict { .. })
        ),
        "a uuid belongs to one user"
    );
    let all = store.list_users().await.unwrap();
    assert!(all.iter().any(|u| u.name == name) && all.iter().any(|u| u.name == other));
    assert!(store.delete_user(&other).await.unwrap());
    assert!(!store.delete_user(&other).await.unwrap());
    assert!(store.get_user(&other).await.unwrap().is_none());
    assert!(store.delete_user(&name).await.unwrap());
}

async fn actions(store: &dyn Store) {
    let ns = format!("acts-{}", suffix());
    let code = fake_module(&ns);
    let digest = Digest::of(&code);
    let key = EntityKey::new(&ns, None, "hello");
    let codes_before = store.count_code().await.unwrap();

    let created = store
        .put_action(&key, action_doc(&code), Some(code.clone()), false)
        .await
        .expect("create action");
    assert_eq!(created.version, "0.0.1");
    assert_eq!(created.namespace, ns);
    assert_eq!(created.name, "hello");
    assert!(created.updated > 0);
    assert_eq!(store.count_code().await.unwrap(), codes_before + 1);

    let got = store.get_action(&key).await.unwrap().expect("get action");
    assert_eq!(got, created);
    match &got.exec {
        Exec::Wasm {
            code, digest: d, ..
        } => {
            assert!(code.is_none(), "stored documents carry no code");
            assert_eq!(d.as_deref(), Some(digest.as_str()));
        }
        other => panic!("unexpected exec {other:?}"),
    }
    assert_eq!(
        store.get_code(&digest).await.unwrap().as_deref(),
        Some(code.as_slice())
    );

    let conflict = store
        .put_action(&key, action_doc(&code), Some(code.clone()), false)
        .await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict { .. })),
        "{conflict:?}"
    );
    assert_eq!(
        store.get_action(&key).await.unwrap().unwrap().version,
        "0.0.1"
    );

    let updated = store
        .put_action(&key, action_doc(&code), Some(code.clone()), true)
        .await
        .expect("overwrite");
    assert_eq!(updated.version, "0.0.2");
    let updated = store
        .put_action(&key, action_doc(&code), None, true)
        .await
        .unwrap();
    assert_eq!(
        updated.version, "0.0.3",
        "an update without code keeps the stored digest"
    );

    // Same code in a second action: stored once.
    let key2 = EntityKey::new(&ns, None, "hello2");
    store
        .put_action(&key2, action_doc(&code), Some(code.clone()), false)
        .await
        .unwrap();
    assert_eq!(
        store.count_code().await.unwrap(),
        codes_before + 1,
        "code is deduplicated"
    );

    // A wasm action must come with code the store holds.
    let missing = fake_module("never stored");
    let r = store
        .put_action(
            &EntityKey::new(&ns, None, "nocode"),
            action_doc(&missing),
            None,
            false,
        )
        .await;
    assert!(matches!(r, Err(StoreError::MissingCode(_))), "{r:?}");
    assert!(
        store
            .get_action(&EntityKey::new(&ns, None, "nocode"))
            .await
            .unwrap()
            .is_none()
    );

    // Sequences need no code.
    let seq = ActionDoc {
        exec: Exec::Sequence {
            components: vec![format!("/{ns}/hello")],
        },
        ..action_doc(&code)
    };
    store
        .put_action(&EntityKey::new(&ns, None, "seq"), seq, None, false)
        .await
        .unwrap();

    // An action in a package.
    let pkey = EntityKey::new(&ns, Some("tools"), "inner");
    let inner = store
        .put_action(&pkey, action_doc(&code), None, false)
        .await
        .unwrap();
    assert_eq!(inner.namespace, format!("{ns}/tools"));
    assert!(
        store
            .get_action(&EntityKey::new(&ns, None, "inner"))
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(store.count_actions(&ns, None).await.unwrap(), 4);
    assert_eq!(store.count_actions(&ns, Some("tools")).await.unwrap(), 1);
    let all = store.list_actions(&ns, None, 30, 0).await.unwrap();
    assert_eq!(all.len(), 4);
    let first_two = store.list_actions(&ns, None, 2, 0).await.unwrap();
    let last_two = store.list_actions(&ns, None, 2, 2).await.unwrap();
    assert_eq!(first_two.len(), 2);
    assert_eq!(last_two.len(), 2);
    let mut names: Vec<_> = first_two
        .iter()
        .chain(&last_two)
        .map(|a| a.name.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["hello", "hello2", "inner", "seq"],
        "limit/skip pages cover all once"
    );
    let in_pkg = store.list_actions(&ns, Some("tools"), 30, 0).await.unwrap();
    assert_eq!(in_pkg.len(), 1);
    assert_eq!(in_pkg[0].name, "inner");
    assert!(
        store
            .list_actions("nobody-here", None, 30, 0)
            .await
            .unwrap()
            .is_empty()
    );

    // Delete: code stays while another action uses it, goes with the last one.
    let deleted = store.delete_action(&key).await.unwrap().expect("deleted");
    assert_eq!(deleted.name, "hello");
    assert!(store.delete_action(&key).await.unwrap().is_none());
    assert!(store.get_action(&key).await.unwrap().is_none());
    assert!(store.get_code(&digest).await.unwrap().is_some());
    store.delete_action(&key2).await.unwrap().unwrap();
    store.delete_action(&pkey).await.unwrap().unwrap();
    assert!(
        store.get_code(&digest).await.unwrap().is_none(),
        "unused code is deleted with its last action"
    );
    store
        .delete_action(&EntityKey::new(&ns, None, "seq"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.count_actions(&ns, None).await.unwrap(), 0);

    // Replacing the code of an action drops the old, unused blob.
    let a = fake_module("a");
    let b = fake_module("b");
    let k = EntityKey::new(&ns, None, "swap");
    store
        .put_action(&k, action_doc(&a), Some(a.clone()), false)
        .await
        .unwrap();
    store
        .put_action(&k, action_doc(&b), Some(b.clone()), true)
        .await
        .unwrap();
    assert!(store.get_code(&Digest::of(&a)).await.unwrap().is_none());
    assert!(store.get_code(&Digest::of(&b)).await.unwrap().is_some());
    store.delete_action(&k).await.unwrap();
}

fn package(name: &str) -> PackageDoc {
    PackageDoc {
        namespace: String::new(),
        name: name.to_string(),
        version: String::new(),
        binding: None,
        parameters: vec![KeyValue::new("p", 1)],
        annotations: vec![],
        publish: false,
        updated: 0,
    }
}

async fn packages(store: &dyn Store) {
    let ns = format!("pkgs-{}", suffix());
    let created = store
        .put_package(&ns, package("tools"), false)
        .await
        .unwrap();
    assert_eq!(created.version, "0.0.1");
    assert_eq!(created.namespace, ns);
    assert!(matches!(
        store.put_package(&ns, package("tools"), false).await,
        Err(StoreError::Conflict { .. })
    ));
    let updated = store
        .put_package(
            &ns,
            PackageDoc {
                publish: true,
                ..package("tools")
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(updated.version, "0.0.2");
    let got = store.get_package(&ns, "tools").await.unwrap().unwrap();
    assert!(got.publish);
    assert_eq!(got.parameters, vec![KeyValue::new("p", 1)]);
    store
        .put_package(&ns, package("more"), false)
        .await
        .unwrap();
    assert_eq!(store.count_packages(&ns).await.unwrap(), 2);
    assert_eq!(store.list_packages(&ns, 1, 0).await.unwrap().len(), 1);
    assert_eq!(store.list_packages(&ns, 10, 1).await.unwrap().len(), 1);

    let code = fake_module(&ns);
    let key = EntityKey::new(&ns, Some("tools"), "x");
    store
        .put_action(&key, action_doc(&code), Some(code), false)
        .await
        .unwrap();
    assert!(matches!(
        store.delete_package(&ns, "tools").await,
        Err(StoreError::PackageNotEmpty(_))
    ));
    assert!(store.get_package(&ns, "tools").await.unwrap().is_some());
    store.delete_action(&key).await.unwrap();
    assert!(store.delete_package(&ns, "tools").await.unwrap().is_some());
    assert!(store.delete_package(&ns, "tools").await.unwrap().is_none());
    assert!(store.get_package(&ns, "tools").await.unwrap().is_none());
    store.delete_package(&ns, "more").await.unwrap();
}

async fn activations(store: &dyn Store) {
    let ns = format!("acts-{}", suffix());
    let other = format!("other-{}", suffix());
    let base = 1_700_000_000_000u64;
    let mut ids = Vec::new();
    for i in 0..10u64 {
        let name = if i % 2 == 0 { "even" } else { "odd" };
        let r = record(&ns, name, base + i * 1000);
        ids.push(r.activation_id.clone());
        store.put_activation(r.clone()).await.unwrap();
        // Visible at once, before any flush.
        assert_eq!(
            store.get_activation(&ns, &r.activation_id).await.unwrap(),
            Some(r)
        );
    }
    let foreign = record(&other, "even", base);
    store.put_activation(foreign.clone()).await.unwrap();
    let all = |limit| ActivationFilter {
        limit,
        ..ActivationFilter::default()
    };
    assert_eq!(
        store.list_activations(&ns, &all(100)).await.unwrap().len(),
        10,
        "before flush"
    );

    store.flush().await.expect("flush");
    let listed = store.list_activations(&ns, &all(100)).await.unwrap();
    assert_eq!(listed.len(), 10);
    let starts: Vec<u64> = listed.iter().map(|r| r.start).collect();
    let mut sorted = starts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted, "newest first");
    assert_eq!(listed[0].activation_id, ids[9]);

    // Tenancy: another namespace's record is invisible.
    assert!(
        store
            .get_activation(&ns, &foreign.activation_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_activation(&other, &ids[0])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .list_activations(&other, &all(100))
            .await
            .unwrap()
            .len(),
        1
    );

    // Filters.
    let by_name = ActivationFilter {
        name: Some("odd".into()),
        ..all(100)
    };
    let odd = store.list_activations(&ns, &by_name).await.unwrap();
    assert_eq!(odd.len(), 5);
    assert!(odd.iter().all(|r| r.name == "odd"));
    assert_eq!(store.count_activations(&ns, &by_name).await.unwrap(), 5);
    let window = ActivationFilter {
        since: Some(base + 2000),
        upto: Some(base + 5000),
        ..all(100)
    };
    let mid = store.list_activations(&ns, &window).await.unwrap();
    assert_eq!(
        mid.iter().map(|r| r.start).collect::<Vec<_>>(),
        [base + 5000, base + 4000, base + 3000, base + 2000]
    );
    let page = ActivationFilter {
        limit: 3,
        skip: 2,
        ..ActivationFilter::default()
    };
    let page = store.list_activations(&ns, &page).await.unwrap();
    assert_eq!(
        page.iter().map(|r| &r.activation_id).collect::<Vec<_>>(),
        [&ids[7], &ids[6], &ids[5]]
    );
    assert_eq!(store.count_activations(&ns, &all(0)).await.unwrap(), 10);

    // Records queued and stored merge correctly in one listing.
    let late = record(&ns, "even", base + 20_000);
    store.put_activation(late.clone()).await.unwrap();
    let merged = store.list_activations(&ns, &all(3)).await.unwrap();
    assert_eq!(merged[0].activation_id, late.activation_id);
    assert_eq!(merged.len(), 3);
    assert_eq!(store.count_activations(&ns, &all(0)).await.unwrap(), 11);
    store.flush().await.unwrap();
    let again = store
        .get_activation(&ns, &late.activation_id)
        .await
        .unwrap();
    assert_eq!(again, Some(late));

    // The name filter matches an action in a package by `pkg/name` and by its name.
    let mut packaged = record(&ns, "inner", base + 30_000);
    packaged.annotations[0] = KeyValue::new("path", format!("{ns}/tools/inner"));
    store.put_activation(packaged.clone()).await.unwrap();
    for flushed in [false, true] {
        if flushed {
            store.flush().await.unwrap();
        }
        for name in ["inner", "tools/inner"] {
            let f = ActivationFilter {
                name: Some(name.into()),
                ..all(10)
            };
            let found = store.list_activations(&ns, &f).await.unwrap();
            assert_eq!(found.len(), 1, "{name} (flushed: {flushed})");
            assert_eq!(found[0].activation_id, packaged.activation_id);
        }
        let f = ActivationFilter {
            name: Some("other/inner".into()),
            ..all(10)
        };
        assert!(store.list_activations(&ns, &f).await.unwrap().is_empty());
    }
}

async fn delete_user_cascades(store: &dyn Store) {
    let name = format!("carol-{}", suffix());
    store.create_user(&name).await.unwrap();
    let code = fake_module(&name);
    let key = EntityKey::new(&name, None, "a");
    store
        .put_action(&key, action_doc(&code), Some(code.clone()), false)
        .await
        .unwrap();
    store.put_package(&name, package("p"), false).await.unwrap();
    store.put_trigger(&name, trigger("t"), false).await.unwrap();
    store
        .put_rule(&name, rule(&name, "r", "t", "a", ACTIVE), false)
        .await
        .unwrap();
    store.put_alarm(&alarm(&name, "t", 5)).await.unwrap();
    let r = record(&name, "a", 1);
    store.put_activation(r.clone()).await.unwrap();
    assert!(store.delete_user(&name).await.unwrap());
    assert!(store.get_action(&key).await.unwrap().is_none());
    assert!(store.get_package(&name, "p").await.unwrap().is_none());
    assert!(store.get_trigger(&name, "t").await.unwrap().is_none());
    assert!(store.get_rule(&name, "r").await.unwrap().is_none());
    assert!(store.get_alarm(&name, "t").await.unwrap().is_none());
    assert!(
        store
            .get_activation(&name, &r.activation_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.get_code(&Digest::of(&code)).await.unwrap().is_none());
}

/// A trigger document named `name` with one default parameter.
pub fn trigger(name: &str) -> TriggerDoc {
    TriggerDoc {
        namespace: String::new(),
        name: name.to_string(),
        version: String::new(),
        parameters: vec![KeyValue::new("source", "suite")],
        annotations: Vec::new(),
        limits: Default::default(),
        publish: false,
        updated: 0,
    }
}

/// A rule of namespace `ns` from its trigger `t` to its action `a`.
pub fn rule(ns: &str, name: &str, t: &str, a: &str, status: &str) -> RuleDoc {
    RuleDoc {
        namespace: String::new(),
        name: name.to_string(),
        version: String::new(),
        trigger: RuleRef {
            path: ns.to_string(),
            name: t.to_string(),
        },
        action: RuleRef {
            path: ns.to_string(),
            name: a.to_string(),
        },
        status: status.to_string(),
        annotations: Vec::new(),
        publish: false,
        updated: 0,
    }
}

fn alarm(ns: &str, trigger: &str, next_fire: u64) -> AlarmRow {
    AlarmRow {
        namespace: ns.to_string(),
        trigger: trigger.to_string(),
        next_fire,
        spec: json!({"interval": 1}),
    }
}

async fn triggers_and_rules(store: &dyn Store) {
    let ns = format!("trig-{}", suffix());
    let created = store.put_trigger(&ns, trigger("t1"), false).await.unwrap();
    assert_eq!(
        (created.version.as_str(), created.namespace.as_str()),
        ("0.0.1", ns.as_str())
    );
    assert!(matches!(
        store.put_trigger(&ns, trigger("t1"), false).await,
        Err(StoreError::Conflict { .. })
    ));
    let updated = store.put_trigger(&ns, trigger("t1"), true).await.unwrap();
    assert_eq!(updated.version, "0.0.2");
    assert_eq!(store.get_trigger(&ns, "t1").await.unwrap(), Some(updated));
    store.put_trigger(&ns, trigger("t2"), false).await.unwrap();
    assert_eq!(store.count_triggers(&ns).await.unwrap(), 2);
    assert_eq!(store.list_triggers(&ns, 1, 0).await.unwrap().len(), 1);
    assert_eq!(store.list_triggers(&ns, 10, 0).await.unwrap().len(), 2);

    let r1 = store
        .put_rule(&ns, rule(&ns, "r1", "t1", "a", ACTIVE), false)
        .await
        .unwrap();
    assert_eq!(r1.version, "0.0.1");
    store
        .put_rule(&ns, rule(&ns, "r2", "t1", "b", INACTIVE), false)
        .await
        .unwrap();
    store
        .put_rule(&ns, rule(&ns, "r3", "t2", "a", ACTIVE), false)
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_rule(&ns, rule(&ns, "r1", "t1", "a", ACTIVE), false)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let of_t1 = store
        .rules_for_trigger(&ns, &format!("/{ns}/t1"))
        .await
        .unwrap();
    let names: Vec<&str> = of_t1.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["r1", "r2"]);
    assert_eq!(of_t1.iter().filter(|r| r.is_active()).count(), 1);
    let disabled = store
        .put_rule(&ns, rule(&ns, "r1", "t1", "a", INACTIVE), true)
        .await
        .unwrap();
    assert_eq!(disabled.version, "0.0.2");
    assert!(
        !store
            .get_rule(&ns, "r1")
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    assert_eq!(store.count_rules(&ns).await.unwrap(), 3);
    assert_eq!(store.list_rules(&ns, 2, 1).await.unwrap().len(), 2);
    assert!(store.delete_rule(&ns, "r1").await.unwrap().is_some());
    assert!(store.delete_rule(&ns, "r1").await.unwrap().is_none());
    assert_eq!(store.count_rules(&ns).await.unwrap(), 2);
    assert!(store.delete_trigger(&ns, "t2").await.unwrap().is_some());
    assert!(store.delete_trigger(&ns, "t2").await.unwrap().is_none());
    assert!(store.get_trigger(&ns, "t2").await.unwrap().is_none());
}

async fn due_in(store: &dyn Store, ns: &str, now: u64) -> usize {
    store
        .due_alarms(now, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.namespace == ns)
        .count()
}

async fn alarms(store: &dyn Store) {
    let ns = format!("alarm-{}", suffix());
    store
        .put_trigger(&ns, trigger("tick"), false)
        .await
        .unwrap();
    // Far in the past, so only this suite's alarm is due at its own times below.
    store.put_alarm(&alarm(&ns, "tick", 1_000)).await.unwrap();
    assert_eq!(
        store.get_alarm(&ns, "tick").await.unwrap().map(|a| a.spec),
        Some(json!({"interval": 1}))
    );
    let due = |now| due_in(store, &ns, now);
    assert_eq!(due(999).await, 0, "not due before next_fire");
    assert_eq!(due(1_000).await, 1);
    // Two replicas claim the same tick: exactly one wins.
    assert!(
        store
            .claim_alarm(&ns, "tick", 1_000, Some(61_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_alarm(&ns, "tick", 1_000, Some(61_000))
            .await
            .unwrap()
    );
    assert_eq!(due(1_000).await, 0, "the claimed tick moved on");
    assert_eq!(
        store
            .get_alarm(&ns, "tick")
            .await
            .unwrap()
            .unwrap()
            .next_fire,
        61_000
    );
    // The last tick deletes the alarm, once.
    assert!(store.claim_alarm(&ns, "tick", 61_000, None).await.unwrap());
    assert!(!store.claim_alarm(&ns, "tick", 61_000, None).await.unwrap());
    assert!(store.get_alarm(&ns, "tick").await.unwrap().is_none());
    // Deleting a trigger removes its alarm.
    store.put_alarm(&alarm(&ns, "tick", 2_000)).await.unwrap();
    store.delete_trigger(&ns, "tick").await.unwrap();
    assert!(store.get_alarm(&ns, "tick").await.unwrap().is_none());
    assert!(!store.delete_alarm(&ns, "tick").await.unwrap());
}

/// The environment variable naming the PostgreSQL server tests use (a URL whose user may
/// create databases), e.g. `postgres://wisp:wisp@127.0.0.1:55432/wisp_test`.
pub const TEST_POSTGRES_ENV: &str = "WISP_TEST_POSTGRES";

/// A database created for one test on the `WISP_TEST_POSTGRES` server, dropped (with any
/// connection left open) when this value is dropped, panics included.
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    /// Creates `wisp_test_<random>`. Without `WISP_TEST_POSTGRES` it prints why `test` is
    /// skipped and answers `None`, unless `CI` is set: then the suite must run, and it panics.
    pub async fn create(test: &str) -> Option<TestDatabase> {
        use sqlx::Connection as _;
        let Some(server) = std::env::var(TEST_POSTGRES_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
        else {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(
                !ci,
                "{TEST_POSTGRES_ENV} is not set but CI is: the PostgreSQL tests must run in CI \
                 (eval \"$(scripts/postgres.sh)\" before cargo test)"
            );
            // Straight to stderr: the test harness hides what `eprintln!` prints in a passing test.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "{test}: skipped: set {TEST_POSTGRES_ENV} (eval \"$(scripts/postgres.sh)\")"
            );
            return None;
        };
        let name = format!("wisp_test_{}", suffix());
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("connecting to {TEST_POSTGRES_ENV}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let _ = conn.close().await;
        let mut url = reqwest::Url::parse(&server)
            .unwrap_or_else(|e| panic!("{TEST_POSTGRES_ENV} is not a URL: {e}"));
        url.set_path(&name);
        Some(TestDatabase {
            url: url.to_string(),
            server,
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        use sqlx::Connection as _;
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop may run inside a runtime (or while unwinding): use a thread with a runtime of
        // its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&server).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
