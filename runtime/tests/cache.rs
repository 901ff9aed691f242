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

fn dir_bytes(dir: &std::path::Path) -> u64 {
    cwasm_files(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_cache_stays_within_its_bound() -> anyhow::Result<()> {
    let names = ["hello", "echo", "primes", "env", "sleep", "aggregate"];
    // Learn the sizes with an unbounded cache first.
    let sizes_dir = tempfile::tempdir()?;
    let probe = Runtime::new(RuntimeConfig {
        cache_dir: Some(sizes_dir.path().into()),
        ..test_config()
    })?;
    let mut digests = Vec::new();
    for name in names {
        let (bytes, digest) = function(name).await;
        probe.prepare(&digest, &bytes).await?;
        digests.push((bytes, digest));
    }
    let largest = cwasm_files(sizes_dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .max()
        .unwrap();
    let total = dir_bytes(sizes_dir.path());
    // Room for about two and a half of them.
    let bound = largest * 5 / 2;
    assert!(total > bound, "the bound must force evictions");
    drop(probe);

    let dir = tempfile::tempdir()?;
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().into()),
        cache_max_bytes: bound,
        ..test_config()
    })?;
    for (bytes, digest) in &digests {
        rt.prepare(digest, bytes).await?;
        assert!(dir_bytes(dir.path()) <= bound, "over the bound");
        assert_eq!(rt.disk_cache_usage().0, dir_bytes(dir.path()));
        // The one just compiled is kept.
        assert!(cwasm_files(dir.path()).iter().any(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(digest.as_str())
        }),);
    }
    assert!(cwasm_files(dir.path()).len() < names.len());
    // Evicted from disk is not forgotten: every one still runs from memory.
    let r = rt
        .run(request(
            &digests[0].1,
            json!({"name": "kept"}),
            Limits::default(),
        ))
        .await?;
    assert_status(&r, Status::Success);
    drop(rt);

    // A restart with a smaller bound trims the dir at once, least recently used first.
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().into()),
        cache_max_bytes: largest,
        ..test_config()
    })?;
    assert!(dir_bytes(dir.path()) <= largest);
    assert_eq!(rt.disk_cache_usage().0, dir_bytes(dir.path()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_code_shrinks_the_disk_cache() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = start_with(RuntimeConfig {
        cache_dir: Some(dir.path().into()),
        ..test_config()
    })
    .await?;
    let hello = s.deploy("hello").await?;
    let echo = s.deploy("echo").await?;
    assert_eq!(cwasm_files(dir.path()).len(), 2);
    let before = dir_bytes(dir.path());
    let resp = s
        .client
        .delete(s.url(&format!("/code/{hello}")))
        .bearer_auth(common::TOKEN)
        .send()
        .await?;
    assert_eq!(resp.status(), 204);
    let files = cwasm_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(echo.as_str())
    );
    assert!(dir_bytes(dir.path()) < before);
    assert_eq!(s.runtime.disk_cache_usage(), (dir_bytes(dir.path()), 1));
    let text = s.metrics().await?;
    assert_eq!(
        common::metric(&text, "wisp_disk_cache_bytes"),
        Some(dir_bytes(dir.path()) as f64)
    );
    // Gone from memory too: the scheduler must send it again.
    let resp = s
        .post("/run", &request(&hello, json!({}), Limits::default()))
        .await?;
    assert_eq!(resp.status(), 409);
    s.stop().await
}

/// The cache dir is 0700 and its files 0600 even under a umask that would make them public.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_files_are_private_whatever_the_umask() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: umask only swaps the process's file-mode mask; it touches no memory. Other tests
    // of this binary may create files meanwhile: a permissive mask only widens their modes.
    let old = unsafe { libc::umask(0) };
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache)?;
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777))?;
    // A file an older version left readable by all.
    let stale = cache.join(format!("{}-old.cwasm", wisp_core::Digest::of(b"old")));
    std::fs::write(&stale, b"stale")?;
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644))?;
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.clone()),
        ..test_config()
    })?;
    let (bytes, digest) = function("hello").await;
    rt.prepare(&digest, &bytes).await?;
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cache), 0o700);
    let files = cwasm_files(&cache);
    assert_eq!(files.len(), 2);
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    Ok(())
}
