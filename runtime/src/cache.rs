//! Compiled code: an in-memory moka cache of [`Prepared`] code per digest, in front of a disk
//! cache of serialized modules, in front of the compiler.
//!
//! Lookup order for a digest: memory → disk (`{cache_dir}/{digest}-{engine tag}.cwasm`) →
//! the code bytes (inline `code`, or fetched from `code_url`) compiled with Cranelift. Loads
//! of the same digest are single-flight (moka `entry().or_try_insert_with`): 100 concurrent
//! first invokes compile once. Errors are not cached.

use crate::engine::{Linkers, P1Host, P2Host, check_action_module};
use crate::error::RunError;
use crate::metrics::Metrics;
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    pub url: Option<&'a str>,
}

pub struct CodeCache {
    engine: Engine,
    linkers: Arc<Linkers>,
    mem: moka::future::Cache<Digest, Arc<Prepared>>,
    dir: Option<PathBuf>,
    tag: String,
    http: reqwest::Client,
    token: Option<String>,
    max_code_bytes: usize,
    metrics: Arc<Metrics>,
}

pub struct CacheParams {
    pub engine: Engine,
    pub linkers: Linkers,
    pub capacity_bytes: u64,
    pub dir: Option<PathBuf>,
    pub tag: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
    pub max_code_bytes: usize,
    pub metrics: Arc<Metrics>,
}

impl CodeCache {
    pub fn new(p: CacheParams) -> Self {
        let mem = moka::future::Cache::builder()
            .max_capacity(p.capacity_bytes)
            .weigher(|_d: &Digest, v: &Arc<Prepared>| u32::try_from(v.size).unwrap_or(u32::MAX))
            .build();
        CodeCache {
            engine: p.engine,
            linkers: Arc::new(p.linkers),
            mem,
            dir: p.dir,
            tag: p.tag,
            http: p.http,
            token: p.token,
            max_code_bytes: p.max_code_bytes,
            metrics: p.metrics,
        }
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

    fn disk_path(&self, digest: &Digest) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{}.cwasm", self.tag)))
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
                    self.metrics.disk_loads.inc();
                    self.metrics
                        .disk_load_seconds
                        .observe(start.elapsed().as_secs_f64());
                    return Ok((p, LoadKind::Disk));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unusable disk-cache entry, recompiling");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let bytes = self.code_bytes(digest, source).await?;
        let start = Instant::now();
        let engine = self.engine.clone();
        let linkers = self.linkers.clone();
        let path = self.disk_path(digest);
        let prepared = tokio::task::spawn_blocking(move || {
            compile(&engine, &linkers, &bytes, path.as_deref())
        })
        .await
        .map_err(|e| RunError::Internal(format!("compile task failed: {e}")))??;
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
            let actual = Digest::of(&bytes);
            if &actual != digest {
                return Err(RunError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            return Ok(bytes);
        }
        if let Some(url) = source.url {
            return self.fetch(digest, url).await;
        }
        Err(RunError::CodeUnknown(digest.clone()))
    }

    async fn fetch(&self, digest: &Digest, url: &str) -> Result<Vec<u8>, RunError> {
        let fail = |reason: String| RunError::Fetch {
            url: url.to_string(),
            reason,
        };
        let mut req = self.http.get(url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        if resp
            .content_length()
            .is_some_and(|n| n as usize > self.max_code_bytes)
        {
            return Err(fail(format!(
                "code is larger than {} bytes",
                self.max_code_bytes
            )));
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            if body.len() + chunk.len() > self.max_code_bytes {
                return Err(fail(format!(
                    "code is larger than {} bytes",
                    self.max_code_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if &Digest::of(&body) == digest {
            return Ok(body);
        }
        // Be lenient about the transfer encoding: accept the module as base64 text too.
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(body.trim_ascii())
            && &Digest::of(&decoded) == digest
        {
            return Ok(decoded);
        }
        Err(fail(format!(
            "the code served does not match digest {digest}"
        )))
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
/// dir) writes the serialized code next to the other cache files.
fn compile(
    engine: &Engine,
    linkers: &Linkers,
    bytes: &[u8],
    path: Option<&Path>,
) -> Result<Prepared, RunError> {
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
    if let (Some(path), Some(serialized)) = (path, serialized) {
        let written = serialized
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|bytes| write_atomically(&bytes, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the disk cache");
        }
    }
    Ok(prepared)
}

fn write_atomically(bytes: &[u8], path: &Path) -> std::io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{seq}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
