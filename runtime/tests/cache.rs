//! The compiled-code caches: single-flight compiles, the serialized-module disk cache that a
//! restarted runtime loads instead of recompiling, and recovery from a corrupt cache file.

mod common;

use common::{assert_status, function, request, start_with, test_config};
use serde_json::json;
use wisp_core::{Limits, Status};
use wisp_runtime::{CacheStats, Runtime, RuntimeConfig};

fn cwasm_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_loads_compile_once() -> anyhow::Result<()> {
    let rt = Runtime::new(test_config())?;
    let (bytes, digest) = function("primes").await;
    let loads: Vec<_> = (0..20).map(|_| rt.prepare(&digest, &bytes)).collect();
    futures::future::try_join_all(loads).await?;
    let stats = rt.cache_stats();
    assert_eq!(stats.compiles, 1, "{stats:?}");
    // Prepared code is a memory hit from then on.
    let again = rt.prepare(&digest, &bytes).await?;
    assert_eq!(again.init_time_us, 0);
    assert_eq!(rt.cache_stats().memory_hits, stats.memory_hits + 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runtime_loads_from_disk_without_compiling() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..test_config()
    };
    let (bytes, digest) = function("hello").await;

    let first = Runtime::new(config.clone())?;
    first.prepare(&digest, &bytes).await?;
    assert_eq!(
        first.cache_stats(),
        CacheStats {
            memory_hits: 0,
            misses: 1,
            disk_loads: 0,
            compiles: 1
        }
    );
    let files = cwasm_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(digest.as_str()), "{name}");
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
    drop(first);

    // "Restart": a new runtime on the same dir, serving over HTTP, told nothing but the digest.
    let s = start_with(config.clone()).await?;
    let r = s.invoke(&digest, json!({"name": "disk"})).await?;
    assert_status(&r, Status::Success);
    assert_eq!(r.response.result, json!({"greeting": "Hello, disk!"}));
    assert!(r.init_time_us > 0, "loaded on this invoke: {r:?}");
    assert_eq!(
        s.runtime.cache_stats(),
        CacheStats {
            memory_hits: 0,
            misses: 1,
            disk_loads: 1,
            compiles: 0
        }
    );
    let text = s.metrics().await?;
    assert_eq!(
        common::metric(&text, "wisp_code_disk_loads_total"),
        Some(1.0)
    );
    assert_eq!(common::metric(&text, "wisp_code_compiles_total"), Some(0.0));
    s.stop().await?;

    // A corrupt cache file is detected, dropped and replaced by a fresh compile. (Replaced, not
    // rewritten in place: modules are mmapped from these files, which wisp never modifies.)
    std::fs::remove_file(&files[0])?;
    std::fs::write(&files[0], b"garbage, not a compiled module")?;
    let third = Runtime::new(config)?;
    let r = third
        .run(request(
            &digest,
            json!({"name": "again"}),
            Limits::default(),
        ))
        .await;
    assert!(
        matches!(r, Err(wisp_runtime::RunError::CodeUnknown(_))),
        "no code given: {r:?}"
    );
    third.prepare(&digest, &bytes).await?;
    assert_eq!(third.cache_stats().compiles, 1);
    let r = third
        .run(request(
            &digest,
            json!({"name": "again"}),
            Limits::default(),
        ))
        .await?;
    assert_status(&r, Status::Success);
    assert_ne!(std::fs::read(&files[0])?, b"garbage, not a compiled module");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_the_memory_cache_falls_back_to_disk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().into()),
        ..test_config()
    })?;
    let (bytes, digest) = function("echo").await;
    rt.prepare(&digest, &bytes).await?;
    rt.clear_memory_cache();
    let r = rt
        .run(request(&digest, json!({"k": "v"}), Limits::default()))
        .await?;
    assert_eq!(r.response.result, json!({"k": "v"}));
    assert_eq!(rt.cache_stats().disk_loads, 1);
    assert_eq!(rt.cache_stats().compiles, 1);
    Ok(())
}
