//! Compiled code: an in-memory moka cache of [`Prepared`] code per digest, in front of a disk
//! cache of serialized modules, in front of the compiler.
//!
//! Lookup order for a digest: memory → disk (`{cache_dir}/{digest}-{engine tag}.cwasm`) →
//! the code bytes given inline (`code`), compiled with Cranelift → `409 code_unknown`. Code
//! only ever arrives inline: the runtime never dials out for it. Loads of the same digest are
//! single-flight (moka `entry().or_try_insert_with`): 100 concurrent first invokes compile
//! once. Errors are not cached.
//!
//! The disk cache is private (dir 0700, files 0600 whatever the umask) and bounded
//! (`cache_max_bytes`): an in-memory index of its files, rebuilt from the dir at start (sizes,
//! mtimes), deletes the least recently used past the bound, preferring files whose code is not
//! compiled in memory. A load from disk refreshes the file's mtime so the order survives a
//! restart. [`CodeCache::remove`] drops a digest from both caches (`DELETE /code/{digest}`).

use crate::engine::{Linkers, P1Host, P2Host, check_action_module};
use crate::error::RunError;
use crate::metrics::Metrics;
use base64::Engine as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::{Engine, InstancePre, Module, Precompiled};
use wasmtime_wasi::p2::bindings::CommandPre;
use wisp_core::Digest;

/// Code ready to instantiate.
pub struct Prepared {
    pub code: Code,
    /// Bytes of compiled code (the cache weight).
    pub size: usize,
}

/// The two kinds of action.
pub enum Code {
    /// A WASI preview-1 command module, linked against WASI p1.
    Module(InstancePre<P1Host>),
    /// A WASI preview-2 command component (`wasi:cli/run`), linked against WASI p2.
    Component(CommandPre<P2Host>),
}

/// Pool slots a component activation reserves: a component built with the preview-1 adapter
/// holds several core instances (the program, the adapter, shims) and two memories.
pub const COMPONENT_SLOTS: u32 = 8;

impl Prepared {
    /// The engine the code was compiled for.
    pub fn engine(&self) -> &Engine {
        match &self.code {
            Code::Module(pre) => pre.module().engine(),
            Code::Component(pre) => pre.engine(),
        }
    }

    /// Pool-slot permits one activation of this code takes.
    pub fn slots(&self) -> u32 {
        match self.code {
            Code::Module(_) => 1,
            Code::Component(_) => COMPONENT_SLOTS,
        }
    }
}

/// Where the code came from on this load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadKind {
    /// Already compiled in memory.
    Memory,
    /// Deserialized from the disk cache.
    Disk,
    /// Compiled now.
    Compiled,
}

/// How to get code bytes when neither memory nor disk has them.
#[derive(Clone, Copy, Debug, Default)]
pub struct CodeSource<'a> {
    /// The module itself (library callers).
    pub bytes: Option<&'a [u8]>,
    /// base64 of the module.
    pub inline: Option<&'a str>,
}

pub struct CodeCache {
    engine: Engine,
    linkers: Arc<Linkers>,
    mem: moka::future::Cache<Digest, Arc<Prepared>>,
    dir: Option<PathBuf>,
    tag: String,
    /// The `.cwasm` files of `dir`, for least-recently-used eviction.
    disk: Mutex<DiskIndex>,
    disk_max_bytes: u64,
    max_code_bytes: usize,
    metrics: Arc<Metrics>,
}

pub struct CacheParams {
    pub engine: Engine,
    pub linkers: Linkers,
    pub capacity_bytes: u64,
    pub dir: Option<PathBuf>,
    /// Bound of the bytes of `.cwasm` files in `dir`.
    pub disk_max_bytes: u64,
    pub tag: String,
    pub max_code_bytes: usize,
    pub metrics: Arc<Metrics>,
}

impl CodeCache {
    /// Opens the cache. With a dir: makes it private (0700), indexes the `.cwasm` files in it
    /// (making them 0600, deleting temp files a crash left behind) and trims it to the bound.
    pub fn new(p: CacheParams) -> std::io::Result<Self> {
        let disk = match &p.dir {
            Some(dir) => DiskIndex::open(dir)?,
            None => DiskIndex::default(),
        };
        let mem = moka::future::Cache::builder()
            .max_capacity(p.capacity_bytes)
            .weigher(|_d: &Digest, v: &Arc<Prepared>| u32::try_from(v.size).unwrap_or(u32::MAX))
            .build();
        let cache = CodeCache {
            engine: p.engine,
            linkers: Arc::new(p.linkers),
            mem,
            dir: p.dir,
            tag: p.tag,
            disk: Mutex::new(disk),
            disk_max_bytes: p.disk_max_bytes,
            max_code_bytes: p.max_code_bytes,
            metrics: p.metrics,
        };
        cache.evict(None);
        cache.publish_disk();
        Ok(cache)
    }

    /// The prepared code for `digest`, how it was found and the time it took.
    pub async fn load(
        &self,
        digest: &Digest,
        source: CodeSource<'_>,
    ) -> Result<(Arc<Prepared>, LoadKind, Duration), RunError> {
        if let Some(p) = self.mem.get(digest).await {
            self.metrics.cache_hits.inc();
            return Ok((p, LoadKind::Memory, Duration::ZERO));
        }
        self.metrics.cache_misses.inc();
        let start = Instant::now();
        let mut kind = LoadKind::Memory;
        let entry = self
            .mem
            .entry(digest.clone())
            .or_try_insert_with(async {
                let (p, k) = self.load_uncached(digest, source).await?;
                kind = k;
                Ok::<_, RunError>(Arc::new(p))
            })
            .await
            .map_err(|e| (*e).clone())?;
        Ok((entry.into_value(), kind, start.elapsed()))
    }

    /// Forgets every compiled module held in memory (the disk cache stays).
    pub fn clear_memory(&self) {
        self.mem.invalidate_all();
    }

    /// Drops `digest` from the memory and the disk cache (every engine tag). Running
    /// activations keep the code they hold. Returns whether anything was cached.
    pub async fn remove(&self, digest: &Digest) -> bool {
        let in_memory = self.mem.remove(digest).await.is_some();
        let on_disk = {
            let mut disk = self.lock_disk();
            let prefix = format!("{digest}-");
            let names: Vec<String> = disk
                .files
                .keys()
                .filter(|n| n.starts_with(&prefix))
                .cloned()
                .collect();
            for name in &names {
                disk.remove(self.dir.as_deref(), name);
            }
            !names.is_empty()
        };
        self.publish_disk();
        in_memory || on_disk
    }

    /// Bytes of `.cwasm` files in the disk cache, and how many there are.
    pub fn disk_usage(&self) -> (u64, usize) {
        let disk = self.lock_disk();
        (disk.total, disk.files.len())
    }

    fn lock_disk(&self) -> std::sync::MutexGuard<'_, DiskIndex> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_disk(&self) {
        let total = self.lock_disk().total;
        self.metrics
            .disk_cache_bytes
            .set(i64::try_from(total).unwrap_or(i64::MAX));
    }

    fn file_name(&self, digest: &Digest) -> String {
        format!("{digest}-{}.cwasm", self.tag)
    }

    /// Marks a disk-cache file as just used (in the index, and its mtime for the next start).
    fn touch(&self, name: &str) {
        let mut disk = self.lock_disk();
        disk.touch(name);
        if let Some(dir) = &self.dir {
            let now = std::time::SystemTime::now();
            let _ = std::fs::File::open(dir.join(name)).and_then(|f| f.set_modified(now));
        }
    }

    /// Deletes least-recently-used files until the disk cache is within its bound. `keep` (the
    /// file just written) goes last; code compiled in memory goes after code that is not.
    fn evict(&self, keep: Option<&str>) {
        let Some(dir) = self.dir.as_deref() else {
            return;
        };
        let mut disk = self.lock_disk();
        if disk.total <= self.disk_max_bytes {
            return;
        }
        let mut victims: Vec<(bool, bool, u64, String)> = disk
            .files
            .iter()
            .map(|(name, f)| {
                let in_memory = name
                    .split_once('-')
                    .and_then(|(d, _)| d.parse::<Digest>().ok())
                    .is_some_and(|d| self.mem.contains_key(&d));
                (Some(name.as_str()) == keep, in_memory, f.used, name.clone())
            })
            .collect();
        victims.sort();
        for (_, _, _, name) in victims {
            if disk.total <= self.disk_max_bytes {
                break;
            }
            tracing::debug!(file = %name, "evicting from the disk cache");
            disk.remove(Some(dir), &name);
            self.metrics.disk_evictions.inc();
        }
    }

    fn disk_path(&self, digest: &Digest) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(self.file_name(digest)))
    }

    async fn load_uncached(
        &self,
        digest: &Digest,
        source: CodeSource<'_>,
    ) -> Result<(Prepared, LoadKind), RunError> {
        if let Some(path) = self.disk_path(digest).filter(|p| p.exists()) {
            let start = Instant::now();
            // Loading maps the file and deserializes metadata: ~0.1-0.3 ms of work, cheaper done
            // here than handed to the blocking pool (a thread wake-up each way).
            match load_file(&self.engine, &self.linkers, &path) {
                Ok(p) => {
                    self.touch(&self.file_name(digest));
                    self.metrics.disk_loads.inc();
                    self.metrics
                        .disk_load_seconds
                        .observe(start.elapsed().as_secs_f64());
                    return Ok((p, LoadKind::Disk));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unusable disk-cache entry, recompiling");
                    self.lock_disk()
                        .remove(self.dir.as_deref(), &self.file_name(digest));
                }
            }
        }
        let bytes = self.code_bytes(digest, source).await?;
        let start = Instant::now();
        let engine = self.engine.clone();
        let linkers = self.linkers.clone();
        let path = self.disk_path(digest);
        let (prepared, written) = tokio::task::spawn_blocking(move || {
            compile(&engine, &linkers, &bytes, path.as_deref())
        })
        .await
        .map_err(|e| RunError::Internal(format!("compile task failed: {e}")))??;
        if let Some(size) = written {
            let name = self.file_name(digest);
            self.lock_disk().insert(name.clone(), size);
            self.evict(Some(&name));
            self.publish_disk();
        }
        self.metrics.compiles.inc();
        self.metrics
            .compile_seconds
            .observe(start.elapsed().as_secs_f64());
        Ok((prepared, LoadKind::Compiled))
    }

    async fn code_bytes(
        &self,
        digest: &Digest,
        source: CodeSource<'_>,
    ) -> Result<Vec<u8>, RunError> {
        if let Some(bytes) = source.bytes {
            let actual = Digest::of(bytes);
            if &actual != digest {
                return Err(RunError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            return Ok(bytes.to_vec());
        }
        if let Some(b64) = source.inline {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| RunError::BadRequest(format!("`code` is not valid base64: {e}")))?;
            if bytes.len() > self.max_code_bytes {
                return Err(RunError::BadRequest(format!(
                    "the code is {} bytes, more than the limit of {} bytes",
                    bytes.len(),
                    self.max_code_bytes
                )));
            }
            let actual = Digest::of(&bytes);
            if &actual != digest {
                return Err(RunError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            return Ok(bytes);
        }
        Err(RunError::CodeUnknown(digest.clone()))
    }
}

fn link_module(linker: &wasmtime::Linker<P1Host>, module: &Module) -> Result<Prepared, String> {
    check_action_module(module)?;
    let pre = linker
        .instantiate_pre(module)
        .map_err(|e| format!("{e:#}"))?;
    let r = module.image_range();
    let size = (r.end as usize).saturating_sub(r.start as usize);
    Ok(Prepared {
        code: Code::Module(pre),
        size,
    })
}

fn link_component(
    linker: &wasmtime::component::Linker<P2Host>,
    component: &Component,
) -> Result<Prepared, String> {
    let pre = linker.instantiate_pre(component).map_err(|e| {
        format!("{e:#} (a component action may import only WASI preview 2 interfaces)")
    })?;
    let pre = CommandPre::new(pre).map_err(|e| {
        format!("it does not export `wasi:cli/run` (build it as a WASI command): {e:#}")
    })?;
    let r = component.image_range();
    let size = (r.end as usize).saturating_sub(r.start as usize);
    Ok(Prepared {
        code: Code::Component(pre),
        size,
    })
}

/// Deserializes a module or component this runtime wrote earlier.
fn load_file(engine: &Engine, linkers: &Linkers, path: &Path) -> Result<Prepared, String> {
    let kind = Engine::detect_precompiled_file(path).map_err(|e| format!("{e:#}"))?;
    // SAFETY: `deserialize_file` trusts the file to be wasmtime-compiled code for a compatible
    // engine. The cache dir holds only files `compile` below wrote (atomically, via rename),
    // named after the digest and the engine's compatibility tag; wasmtime also checks the
    // engine version and settings in the file header and refuses a mismatch. The file is
    // mmapped for as long as the code lives: wisp never modifies a cache file in place
    // (writes go to a temp file renamed over the old one, leaving existing mappings on the old
    // inode), and nothing else may write into the cache dir.
    match kind {
        Some(Precompiled::Module) => {
            let module =
                unsafe { Module::deserialize_file(engine, path) }.map_err(|e| format!("{e:#}"))?;
            link_module(&linkers.p1, &module)
        }
        Some(Precompiled::Component) => {
            // SAFETY: as above.
            let component = unsafe { Component::deserialize_file(engine, path) }
                .map_err(|e| format!("{e:#}"))?;
            link_component(&linkers.p2, &component)
        }
        None => Err("not a precompiled wasmtime artifact".into()),
    }
}

/// Compiles `bytes` (a core module or a component), checks it is an action, and (with a cache
/// dir) writes the serialized code next to the other cache files; returns the bytes written.
fn compile(
    engine: &Engine,
    linkers: &Linkers,
    bytes: &[u8],
    path: Option<&Path>,
) -> Result<(Prepared, Option<u64>), RunError> {
    if !bytes.starts_with(b"\0asm") || bytes.len() < 8 {
        return Err(RunError::InvalidModule(
            "the code is not a WebAssembly binary (no \\0asm header)".into(),
        ));
    }
    let invalid = |e: wasmtime::Error| {
        RunError::InvalidModule(format!("not a valid WebAssembly module: {e:#}"))
    };
    let (prepared, serialized) = if bytes[4..8] == [1, 0, 0, 0] {
        let module = Module::new(engine, bytes).map_err(invalid)?;
        let prepared = link_module(&linkers.p1, &module).map_err(RunError::InvalidModule)?;
        (prepared, path.map(|_| module.serialize()))
    } else {
        let component = Component::new(engine, bytes).map_err(|e| {
            RunError::InvalidModule(format!("not a valid WebAssembly component: {e:#}"))
        })?;
        let prepared = link_component(&linkers.p2, &component).map_err(RunError::InvalidModule)?;
        (prepared, path.map(|_| component.serialize()))
    };
    let mut written = None;
    if let (Some(path), Some(serialized)) = (path, serialized) {
        let result = serialized
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|bytes| write_atomically(&bytes, path).map(|()| bytes.len() as u64));
        match result {
            Ok(n) => written = Some(n),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the disk cache")
            }
        }
    }
    Ok((prepared, written))
}

fn write_atomically(bytes: &[u8], path: &Path) -> std::io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{seq}", std::process::id()));
    let mut file = private_file_options().open(&tmp)?;
    std::io::Write::write_all(&mut file, bytes)?;
    drop(file);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Options that create a file only its owner can read (0600 on Unix; the umask can only take
/// bits away).
fn private_file_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// One `.cwasm` file of the disk cache.
#[derive(Debug)]
struct DiskFile {
    size: u64,
    /// Recency: larger is more recent (nanoseconds since the epoch of its last use).
    used: u64,
}

/// The `.cwasm` files of the cache dir by file name, with their sizes and last use. Rebuilt from
/// the dir (sizes and mtimes) at start; wisp is the only writer of the dir.
#[derive(Debug, Default)]
struct DiskIndex {
    files: HashMap<String, DiskFile>,
    total: u64,
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl DiskIndex {
    fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        set_mode(dir, 0o700)?;
        let mut index = DiskIndex::default();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(String::from) else {
                continue;
            };
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            if name.contains(".tmp.") {
                // A write that a crash interrupted.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".cwasm") {
                continue;
            }
            set_mode(&path, 0o600)?;
            let used = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as u64);
            index.total += meta.len();
            index.files.insert(
                name,
                DiskFile {
                    size: meta.len(),
                    used,
                },
            );
        }
        Ok(index)
    }

    fn insert(&mut self, name: String, size: u64) {
        let file = DiskFile {
            size,
            used: now_nanos(),
        };
        if let Some(old) = self.files.insert(name, file) {
            self.total -= old.size;
        }
        self.total += size;
    }

    fn touch(&mut self, name: &str) {
        if let Some(f) = self.files.get_mut(name) {
            f.used = now_nanos();
        }
    }

    /// Forgets `name` and deletes its file. Code loaded from it stays valid: it is mapped, and
    /// the mapping keeps the unlinked inode alive.
    fn remove(&mut self, dir: Option<&Path>, name: &str) {
        if let Some(f) = self.files.remove(name) {
            self.total -= f.size;
        }
        if let Some(dir) = dir {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
}
