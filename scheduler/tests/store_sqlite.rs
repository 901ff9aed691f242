//! The embedded store: the shared store suite (also run against PostgreSQL by issue 6), restart
//! durability, retention, and batched activation writes under concurrency.

use std::sync::Arc;

use anyhow::Result;
use wisp_core::{ActivationId, Digest};
use wisp_scheduler::SchedulerConfig;
use wisp_scheduler::store::sqlite::{SqliteOptions, SqliteStore};
use wisp_scheduler::store::suite::{action_doc, fake_module, record, store_suite};
use wisp_scheduler::store::{ActivationFilter, EntityKey, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_the_embedded_store() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).await?);
    store_suite(store.clone()).await;
    store.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_through_the_entity_cache() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = SchedulerConfig {
        data_dir: dir.path().to_path_buf(),
        ..SchedulerConfig::default()
    };
    let (store, stats) = wisp_scheduler::store::open(&config).await?;
    store_suite(store.clone()).await;
    let hits = stats.hits.load(std::sync::atomic::Ordering::Relaxed);
    assert!(hits > 0, "the suite's repeated reads hit the cache");
    store.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let code = fake_module("durable");
    let key = EntityKey::new("guest", None, "kept");
    let creds;
    let mut ids: Vec<ActivationId> = Vec::new();
    {
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).await?;
        creds = store.create_user("guest").await?;
        store
            .put_action(&key, action_doc(&code), Some(code.clone()), false)
            .await?;
        store
            .put_action(&key, action_doc(&code), None, true)
            .await?;
        for i in 0..250 {
            let r = record("guest", "kept", 1_000 + i);
            ids.push(r.activation_id.clone());
            store.put_activation(r).await?;
        }
        // No flush: close() must write every acknowledged record.
        store.close().await?;
    }
    assert!(dir.path().join("wisp.db").exists());
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).await?;
    assert_eq!(
        store
            .authenticate(&creds.uuid, &creds.key)
            .await?
            .as_deref(),
        Some("guest")
    );
    let action = store.get_action(&key).await?.expect("action after restart");
    assert_eq!(action.version, "0.0.2");
    assert_eq!(
        store.get_code(&Digest::of(&code)).await?.as_deref(),
        Some(code.as_slice())
    );
    assert_eq!(store.pending_activations(), 0);
    let filter = ActivationFilter {
        limit: 1000,
        ..ActivationFilter::default()
    };
    assert_eq!(store.count_activations("guest", &filter).await?, 250);
    for id in &ids {
        assert!(
            store.get_activation("guest", id).await?.is_some(),
            "record {id} lost"
        );
    }
    store.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_records_per_namespace() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let options = SqliteOptions {
        activation_retention: 5,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path(), options).await?;
    let mut ids = Vec::new();
    for i in 0..12 {
        let r = record("ns1", "a", 100 + i);
        ids.push(r.activation_id.clone());
        store.put_activation(r).await?;
        store.put_activation(record("ns2", "b", 100 + i)).await?;
        // Several batches, not one.
        if i % 4 == 3 {
            store.flush().await?;
        }
    }
    store.flush().await?;
    let all = ActivationFilter {
        limit: 100,
        ..ActivationFilter::default()
    };
    let kept = store.list_activations("ns1", &all).await?;
    assert_eq!(
        kept.iter()
            .map(|r| r.activation_id.clone())
            .collect::<Vec<_>>(),
        ids.iter().rev().take(5).cloned().collect::<Vec<_>>()
    );
    assert_eq!(store.count_activations("ns2", &all).await?, 5);
    store.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing_and_writes_after_close_fail() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).await?);
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500u64 {
                store
                    .put_activation(record("busy", "x", t * 10_000 + i))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    store.close().await?;
    assert!(
        store.put_activation(record("busy", "x", 1)).await.is_err(),
        "closed store refuses writes"
    );
    let reopened = SqliteStore::open(dir.path(), SqliteOptions::default()).await?;
    let all = ActivationFilter {
        limit: 10,
        ..ActivationFilter::default()
    };
    assert_eq!(reopened.count_activations("busy", &all).await?, 4000);
    reopened.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_of_a_migrated_store_is_a_no_op() -> Result<()> {
    let dir = tempfile::tempdir()?;
    SqliteStore::open(dir.path(), SqliteOptions::default())
        .await?
        .close()
        .await?;
    let again = SqliteStore::open(dir.path(), SqliteOptions::default()).await?;
    assert_eq!(again.count_code().await?, 0);
    again.close().await?;
    Ok(())
}
