//! The one place that configures wasmtime ("narrow the flexibility of wasmtime").
//!
//! [`build_engine`] makes the process-wide-per-[`Runtime`](crate::Runtime) [`Engine`]: pooling
//! allocator (or on-demand for comparison), epoch interruption always on, copy-on-write memory
//! init as configured. [`EpochTicker`] is the one thread per engine that advances the epoch.
//! [`Host`] is the per-activation store data: WASI context (p1 for modules, p2 for
//! components), memory limiter and deadline.

use crate::config::{Allocator, RuntimeConfig};
use crate::error::RuntimeError;
use sha2::Digest as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::{
    Enabled, Engine, ExternType, InstanceAllocationStrategy, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// The only module actions may import from.
pub const WASI_P1: &str = "wasi_snapshot_preview1";

/// Largest linear memory any action may have (the `memory` limit's maximum, 2048 MB).
pub const MAX_MEMORY_BYTES: usize = 2 << 30;

/// Wasm stack available to an action; deeper recursion traps with "call stack exhausted".
pub const MAX_WASM_STACK: usize = 1 << 20;

/// Builds the engine for `config`.
pub fn build_engine(config: &RuntimeConfig) -> Result<Engine, RuntimeError> {
    let mut cfg = wasmtime::Config::new();
    cfg.epoch_interruption(true);
    cfg.memory_init_cow(config.memory_init_cow);
    cfg.max_wasm_stack(MAX_WASM_STACK);
    cfg.async_stack_size(MAX_WASM_STACK + (512 << 10));
    if config.allocator == Allocator::Pooling {
        let n = config.pool_slots.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(n)
            .total_memories(n)
            .total_tables(n)
            .total_stacks(n)
            .total_component_instances(n)
            .max_unused_warm_slots(n)
            .max_memory_size(MAX_MEMORY_BYTES)
            .linear_memory_keep_resident(config.memory_keep_resident)
            .table_keep_resident(64 << 10)
            .pagemap_scan(if config.pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&cfg).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// A short tag that changes whenever compiled code of `engine` would not load in another
/// engine (wasmtime version, compiler settings, CPU features): part of disk-cache file names.
pub fn engine_tag(engine: &Engine) -> String {
    struct Sha(sha2::Sha256);
    impl std::hash::Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = Sha(sha2::Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    hex::encode(&h.0.finalize()[..8])
}

/// The linkers every action is instantiated with: WASI preview 1 for core modules, WASI
/// preview 2 for components (async host functions), and nothing else.
pub fn build_linkers(engine: &Engine) -> Result<Linkers, RuntimeError> {
    let err = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
    let mut p1 = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut p1, |h: &mut P1Host| &mut h.wasi).map_err(err)?;
    let mut p2 = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut p2).map_err(err)?;
    Ok(Linkers { p1, p2 })
}

/// Checks that `module` is an action: imports only WASI p1, exports `_start: () -> ()`.
pub fn check_action_module(module: &Module) -> Result<(), String> {
    for import in module.imports() {
        if import.module() != WASI_P1 {
            return Err(format!(
                "it imports `{}::{}`; an action may import only from `{WASI_P1}` \
                 (build it for wasm32-wasip1)",
                import.module(),
                import.name()
            ));
        }
    }
    match module.get_export("_start") {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => Ok(()),
        Some(_) => Err("its `_start` export is not a function of type () -> ()".into()),
        None => Err(
            "it exports no `_start` function: build it as a WASI command (a wasm32-wasip1 binary, \
             not a library)"
                .into(),
        ),
    }
}

/// Store data of one activation; `W` is the WASI flavour: [`WasiP1Ctx`] for core modules,
/// [`P2Wasi`] for components.
pub struct Host<W> {
    pub wasi: W,
    pub limiter: MemoryLimiter,
    /// When the activation's time limit is reached.
    pub deadline: Instant,
    /// Set by the epoch callback when it interrupted the guest at the deadline.
    pub timed_out: bool,
    /// Epoch ticks seen so far.
    pub ticks: u32,
    /// Raised to move a long guest to the background pool.
    pub demote: crate::guests::DemoteFlag,
}

/// Store data of a core-module (WASI preview 1) activation.
pub type P1Host = Host<WasiP1Ctx>;

/// WASI preview 2 state of a component activation.
pub struct P2Wasi {
    pub ctx: WasiCtx,
    pub table: ResourceTable,
}

/// Store data of a component (WASI preview 2) activation.
pub type P2Host = Host<P2Wasi>;

impl WasiView for P2Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}

/// The linkers of a runtime: WASI p1 for modules, WASI p2 for components. Built once and
/// shared behind an `Arc` (cloning the p2 linker copies every WASI p2 definition).
pub struct Linkers {
    pub p1: Linker<P1Host>,
    pub p2: wasmtime::component::Linker<P2Host>,
}

/// Caps an activation's linear memory and remembers whether the cap was hit, so that the
/// resulting error is classified from here rather than by inspecting it.
#[derive(Debug)]
pub struct MemoryLimiter {
    pub max_bytes: usize,
    pub hit: bool,
}

/// The error a memory grow beyond the cap raises (a trap for the guest).
#[derive(Debug, thiserror::Error)]
#[error("linear memory cap of {0} bytes reached")]
pub struct MemoryCapHit(pub usize);

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Err(wasmtime::Error::new(MemoryCapHit(self.max_bytes)));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The thread that advances the engine's epoch every `tick`; stopped and joined on drop.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wisp-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
