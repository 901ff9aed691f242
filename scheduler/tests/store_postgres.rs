//! The PostgreSQL store: the shared store suite (the one the embedded store passes), directly
//! and through the entity cache; two replicas (separate pools and caches) seeing each other's
//! writes at once (actions, packages, keys, namespace limits); replicas racing on one entity; concurrent migrations; retention.
//!
//! Needs a PostgreSQL server: `eval "$(scripts/postgres.sh)"` sets `WISP_TEST_POSTGRES`. Each
//! test creates a database of its own there and drops it after. Without the variable the tests
//! are skipped (and fail when `CI` is set).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use wisp_core::PackageDoc;
use wisp_scheduler::SchedulerConfig;
use wisp_scheduler::store::cache::CacheStats;
use wisp_scheduler::store::postgres::{PostgresOptions, PostgresStore};
use wisp_scheduler::store::suite::{TestDatabase, action_doc, fake_module, record, store_suite};
use wisp_scheduler::store::{
    ActivationFilter, AlarmRow, Credentials, EntityKey, LimitsUpdate, NamespaceLimits, Store,
    StoreError,
};

/// A scheduler's store on `url`, as `wisp-scheduler --store URL` opens it (entity cache and
/// change listener included).
async fn replica(url: &str) -> Result<(Arc<dyn Store>, Arc<CacheStats>)> {
    let config = SchedulerConfig {
        store: Some(url.to_string()),
        ..SchedulerConfig::default()
    };
    Ok(wisp_scheduler::store::open(&config).await?)
}

/// Polls `check` until it answers `true`. The bound only keeps a broken build from hanging:
/// without the change feed the awaited state would come after the 300 s cache TTL.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    for _ in 0..1000 {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("never happened: {what}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_postgres() -> Result<()> {
    let Some(db) = TestDatabase::create("suite_passes_on_postgres").await else {
        return Ok(());
    };
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::open(&db.url, PostgresOptions::default()).await?);
    store_suite(store.clone()).await;
    // Again on the same database (the suite's names are random): nothing it left behind
    // gets in the way.
    store_suite(store.clone()).await;
    store.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_postgres_through_the_entity_cache() -> Result<()> {
    let Some(db) = TestDatabase::create("suite_through_the_entity_cache").await else {
        return Ok(());
    };
    let (store, stats) = replica(&db.url).await?;
    store_suite(store.clone()).await;
    assert!(
        stats.hits.load(Ordering::Relaxed) > 0,
        "the suite's repeated reads hit the cache"
    );
    // This replica hears its own writes too.
    assert!(stats.remote_invalidations.load(Ordering::Relaxed) > 0);
    store.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_sees_writes_of_the_first_at_once() -> Result<()> {
    let Some(db) = TestDatabase::create("a_second_replica_sees_writes").await else {
        return Ok(());
    };
    let (a, _) = replica(&db.url).await?;
    let (b, b_stats) = replica(&db.url).await?;
    let key = EntityKey::new("guest", None, "shared");
    let code = fake_module("v1");

    // B caches "no such action", A creates it: B sees it.
    assert!(b.get_action(&key).await?.is_none());
    assert!(b.get_action(&key).await?.is_none());
    let hits = b_stats.hits.load(Ordering::Relaxed);
    assert!(hits > 0, "B answers the second read from its cache");
    a.put_action(&key, action_doc(&code), Some(code.clone()), false)
        .await?;
    eventually("B sees the created action", || async {
        Ok(b.get_action(&key).await?.map(|d| d.version).as_deref() == Some("0.0.1"))
    })
    .await?;

    // B has it cached (a hit), A updates it with other code: B sees the new version and digest.
    let before = b_stats.hits.load(Ordering::Relaxed);
    b.get_action(&key).await?;
    assert!(b_stats.hits.load(Ordering::Relaxed) > before, "cached in B");
    let code2 = fake_module("v2");
    a.put_action(&key, action_doc(&code2), Some(code2.clone()), true)
        .await?;
    let digest2 = wisp_core::Digest::of(&code2).to_string();
    eventually("B sees the update", || async {
        let doc = b.get_action(&key).await?;
        Ok(doc.as_ref().map(|d| d.version.as_str()) == Some("0.0.2")
            && matches!(doc.map(|d| d.exec), Some(wisp_core::Exec::Wasm { digest: Some(d), .. }) if d == digest2))
    })
    .await?;

    // A deletes it: B stops serving it.
    a.delete_action(&key).await?;
    eventually("B sees the delete", || async {
        Ok(b.get_action(&key).await?.is_none())
    })
    .await?;

    // Packages too.
    let pkg = PackageDoc {
        namespace: String::new(),
        name: "tools".into(),
        version: String::new(),
        binding: None,
        parameters: vec![],
        annotations: vec![],
        publish: false,
        updated: 0,
    };
    assert!(b.get_package("guest", "tools").await?.is_none());
    a.put_package("guest", pkg, false).await?;
    eventually("B sees the package", || async {
        Ok(b.get_package("guest", "tools").await?.is_some())
    })
    .await?;
    a.delete_package("guest", "tools").await?;
    eventually("B sees the package deleted", || async {
        Ok(b.get_package("guest", "tools").await?.is_none())
    })
    .await?;

    // Identities: B has authenticated the old key; A replaces it.
    let old = a.create_user("guest").await?;
    eventually("B authenticates the new user", || async {
        Ok(b.authenticate(&old.uuid, &old.key).await?.as_deref() == Some("guest"))
    })
    .await?;
    let new = Credentials::generate();
    a.set_user_key("guest", &new).await?;
    eventually("B refuses the old key and takes the new one", || async {
        Ok(b.authenticate(&old.uuid, &old.key).await?.is_none()
            && b.authenticate(&new.uuid, &new.key).await?.as_deref() == Some("guest"))
    })
    .await?;
    assert!(b_stats.remote_invalidations.load(Ordering::Relaxed) > 0);

    // Namespace limits: B has them cached (read on every invoke), A changes them: B applies
    // the new ones at once, and the reset too.
    assert_eq!(
        b.user_limits("guest").await?,
        Some(NamespaceLimits::default())
    );
    let update = LimitsUpdate {
        concurrent_invocations: Some(Some(3)),
        ..LimitsUpdate::default()
    };
    a.set_user_limits("guest", &update).await?;
    eventually("B sees the new limits", || async {
        Ok(b.user_limits("guest")
            .await?
            .and_then(|l| l.concurrent_invocations)
            == Some(3))
    })
    .await?;
    let reset = LimitsUpdate {
        concurrent_invocations: Some(None),
        ..LimitsUpdate::default()
    };
    a.set_user_limits("guest", &reset).await?;
    eventually("B sees the limits reset", || async {
        Ok(b.user_limits("guest").await? == Some(NamespaceLimits::default()))
    })
    .await?;

    a.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_on_one_entity_take_turns() -> Result<()> {
    let Some(db) = TestDatabase::create("replicas_racing").await else {
        return Ok(());
    };
    let a = Arc::new(PostgresStore::open(&db.url, PostgresOptions::default()).await?);
    let b = Arc::new(PostgresStore::open(&db.url, PostgresOptions::default()).await?);
    let code = fake_module("race");

    // Creates without overwrite: exactly one of two racing replicas wins, every time.
    for i in 0..20 {
        let key = EntityKey::new("race", None, &format!("a{i}"));
        let (ra, rb) = tokio::join!(
            a.put_action(&key, action_doc(&code), Some(code.clone()), false),
            b.put_action(&key, action_doc(&code), Some(code.clone()), false),
        );
        let conflicts = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Conflict { .. })))
            .count();
        assert_eq!(
            (ra.is_ok() as usize + rb.is_ok() as usize, conflicts),
            (1, 1),
            "round {i}: {ra:?} / {rb:?}"
        );
    }

    // Overwrites: no lost version bump.
    let key = EntityKey::new("race", None, "bumped");
    a.put_action(&key, action_doc(&code), Some(code.clone()), false)
        .await?;
    let writer = |s: Arc<PostgresStore>| {
        let key = key.clone();
        let code = code.clone();
        tokio::spawn(async move {
            for _ in 0..15 {
                s.put_action(&key, action_doc(&code), None, true).await?;
            }
            anyhow::Ok(())
        })
    };
    let (wa, wb) = (writer(a.clone()), writer(b.clone()));
    wa.await??;
    wb.await??;
    let doc = a.get_action(&key).await?.expect("bumped action");
    assert_eq!(doc.version, "0.0.31", "1 create + 30 updates");

    // An alarm tick is claimed by one replica.
    for i in 0..20u64 {
        let alarm = AlarmRow {
            namespace: "race".into(),
            trigger: format!("t{i}"),
            next_fire: 1_000,
            spec: serde_json::json!({"interval": 1}),
        };
        a.put_alarm(&alarm).await?;
        let (ca, cb) = tokio::join!(
            a.claim_alarm("race", &alarm.trigger, 1_000, Some(61_000)),
            b.claim_alarm("race", &alarm.trigger, 1_000, Some(61_000)),
        );
        assert_eq!(ca? as u8 + cb? as u8, 1, "tick {i} claimed once");
    }
    a.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() -> Result<()> {
    let Some(db) = TestDatabase::create("replicas_starting_together").await else {
        return Ok(());
    };
    let (a, b, c) = tokio::join!(
        PostgresStore::open(&db.url, PostgresOptions::default()),
        PostgresStore::open(&db.url, PostgresOptions::default()),
        PostgresStore::open(&db.url, PostgresOptions::default()),
    );
    let (a, b, c) = (a?, b?, c?);
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(a.write_pool())
        .await?;
    assert_eq!(
        applied as usize,
        wisp_scheduler::store::postgres::migrator().iter().count()
    );
    // Each works on the migrated schema.
    let creds = b.create_user("first").await?;
    assert_eq!(
        c.authenticate(&creds.uuid, &creds.key).await?.as_deref(),
        Some("first")
    );
    for s in [a, b, c] {
        s.close().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activations_are_batched_kept_within_retention_and_shared() -> Result<()> {
    let Some(db) = TestDatabase::create("activations_batched").await else {
        return Ok(());
    };
    let options = PostgresOptions {
        activation_retention: 5,
        ..PostgresOptions::default()
    };
    let a = PostgresStore::open(&db.url, options.clone()).await?;
    let b = PostgresStore::open(&db.url, options).await?;
    let mut ids = Vec::new();
    for i in 0..12 {
        let r = record("ns1", "a", 100 + i);
        ids.push(r.activation_id.clone());
        a.put_activation(r).await?;
        a.put_activation(record("ns2", "b", 100 + i)).await?;
        if i % 4 == 3 {
            a.flush().await?;
        }
    }
    a.flush().await?;
    let all = ActivationFilter {
        limit: 100,
        ..ActivationFilter::default()
    };
    // Read through the other replica: written records are shared.
    let kept = b.list_activations("ns1", &all).await?;
    assert_eq!(
        kept.iter()
            .map(|r| r.activation_id.clone())
            .collect::<Vec<_>>(),
        ids.iter().rev().take(5).cloned().collect::<Vec<_>>()
    );
    assert_eq!(b.count_activations("ns2", &all).await?, 5);

    // Many concurrent writers, several batches: nothing lost (retention 10,000 here).
    let c = Arc::new(PostgresStore::open(&db.url, PostgresOptions::default()).await?);
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500u64 {
                c.put_activation(record("busy", "x", t * 10_000 + i))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    c.close().await?;
    assert_eq!(b.count_activations("busy", &all).await?, 2000);
    a.close().await?;
    b.close().await?;
    Ok(())
}
