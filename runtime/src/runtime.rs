//! [`Runtime`]: the invoker, as a library.

use crate::admission::{AdmitError, BudgetGauges, MemoryBudget};
use crate::cache::{CacheParams, CodeCache, CodeSource, LoadKind};
use crate::config::RuntimeConfig;
use crate::engine::{EpochTicker, build_engine, build_linkers, engine_tag};
use crate::error::{RunError, RuntimeError};
use crate::execute::execute;
use crate::guests::GuestPool;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::Engine;
use wisp_core::run::{MAX_PAYLOAD_BYTES, PrepareRequest, PrepareResponse};
use wisp_core::{ActivationResponse, Digest, RunRequest, RunResponse, Status};

/// The invoker. Cheap to clone (one `Arc`); all clones share one engine, one code cache, one
/// pool of instance slots, one epoch ticker and one set of metrics. The ticker thread stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeConfig,
    engine: Engine,
    cache: CodeCache,
    /// One permit per pool slot: instantiation waits for a free slot instead of failing.
    slots: Arc<Semaphore>,
    /// `user_memory_mb`, reserved by each activation before it is instantiated.
    memory: Arc<MemoryBudget>,
    /// Where guests that run past their first ticks finish (`None`: where they started).
    guests: Option<GuestPool>,
    metrics: Arc<Metrics>,
    draining: AtomicBool,
    in_flight: AtomicU64,
    // Declared last: dropped after everything that could still run wasm.
    _ticker: EpochTicker,
}

/// Counters of how code was found, for tests and benches (also in `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub memory_hits: u64,
    pub misses: u64,
    pub disk_loads: u64,
    pub compiles: u64,
}

/// Counts an activation as in flight until dropped.
struct InFlight<'a>(&'a Inner);

impl<'a> InFlight<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.in_flight.fetch_add(1, Ordering::Relaxed);
        inner.metrics.in_flight.inc();
        InFlight(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.in_flight.dec();
    }
}

impl Runtime {
    /// Builds the engine (reserving the pool's address space), the linker, the caches and
    /// starts the epoch ticker. Costs a few milliseconds; make one per process (or one per
    /// simulated runtime in `wisp up`).
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = build_engine(&config)?;
        let linkers = build_linkers(&engine)?;
        let metrics = Arc::new(Metrics::new());
        let cache = CodeCache::new(CacheParams {
            engine: engine.clone(),
            linkers,
            capacity_bytes: config.code_cache_bytes,
            dir: config.cache_dir.clone(),
            disk_max_bytes: config.cache_max_bytes,
            tag: engine_tag(&engine),
            max_code_bytes: config.max_code_bytes,
            metrics: metrics.clone(),
        })
        .map_err(|source| RuntimeError::CacheDir {
            path: config.cache_dir.clone().unwrap_or_default(),
            source,
        })?;
        metrics
            .memory_budget_bytes
            .set(i64::try_from(config.user_memory_mb << 20).unwrap_or(i64::MAX));
        let memory = Arc::new(MemoryBudget::new(
            config.user_memory_mb,
            config.max_namespace_share,
            BudgetGauges {
                reserved_bytes: metrics.memory_reserved_bytes.clone(),
                waiting: metrics.waiting.clone(),
            },
        ));
        let guests = match config.guest_threads {
            0 => None,
            n => Some(GuestPool::new(n, config.guest_nice).map_err(|e| {
                RuntimeError::Engine(format!("cannot start the guest thread pool: {e}"))
            })?),
        };
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(config.pool_slots.max(1) as usize)),
                memory,
                guests,
                config,
                engine,
                cache,
                metrics,
                draining: AtomicBool::new(false),
                in_flight: AtomicU64::new(0),
                _ticker: ticker,
            }),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The wasmtime engine (for benches that compare against raw wasmtime).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Activations being served now (loading code, waiting for memory or running).
    pub fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// MB of the memory budget reserved by admitted activations now.
    pub fn reserved_memory_mb(&self) -> u64 {
        self.inner.memory.reserved_mb()
    }

    /// Activations waiting for memory now.
    pub fn waiting(&self) -> usize {
        self.inner.memory.waiting()
    }

    /// MB of the budget `namespace` holds now.
    pub fn reserved_memory_mb_of(&self, namespace: &str) -> u64 {
        self.inner.memory.held_by(namespace)
    }

    /// Drops `digest` from the memory and disk caches (activations running it finish). Returns
    /// whether it was cached.
    pub async fn remove_code(&self, digest: &Digest) -> bool {
        self.inner.cache.remove(digest).await
    }

    /// Bytes of compiled code in the disk cache, and the number of files.
    pub fn disk_cache_usage(&self) -> (u64, usize) {
        self.inner.cache.disk_usage()
    }

    /// Stops accepting activations (`/run` answers 503, `/ready` 503); running ones finish.
    pub fn drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Prometheus text of this runtime's metrics.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.encode()
    }

    pub fn cache_stats(&self) -> CacheStats {
        let m = &self.inner.metrics;
        CacheStats {
            memory_hits: m.cache_hits.get(),
            misses: m.cache_misses.get(),
            disk_loads: m.disk_loads.get(),
            compiles: m.compiles.get(),
        }
    }

    /// Forgets the compiled code held in memory (the disk cache stays): the next activation of
    /// each digest loads from disk or compiles. For benchmarks and tests.
    pub fn clear_memory_cache(&self) {
        self.inner.cache.clear_memory();
    }

    /// Compiles (or loads from disk) `code` and keeps it ready under `digest`.
    pub async fn prepare(&self, digest: &Digest, code: &[u8]) -> Result<PrepareResponse, RunError> {
        let source = CodeSource {
            bytes: Some(code),
            ..CodeSource::default()
        };
        self.prepare_from(digest, source).await
    }

    /// [`Runtime::prepare`] for a `/prepare` request (code inline as base64; without code it
    /// only checks that the digest is cached, else 409).
    pub async fn prepare_request(&self, req: &PrepareRequest) -> Result<PrepareResponse, RunError> {
        let source = CodeSource {
            inline: req.code.as_deref(),
            ..CodeSource::default()
        };
        self.prepare_from(&req.digest, source).await
    }

    async fn prepare_from(
        &self,
        digest: &Digest,
        source: CodeSource<'_>,
    ) -> Result<PrepareResponse, RunError> {
        let (_, _, took) = self.inner.cache.load(digest, source).await?;
        Ok(PrepareResponse {
            digest: digest.clone(),
            init_time_us: took.as_micros() as u64,
        })
    }

    /// Runs one activation. `Ok` whatever the activation's status (a trap, a timeout, a time
    /// limit reached while waiting for memory is a [`RunResponse`]); `Err` when it could not be
    /// attempted (bad request, code unknown, invalid module, draining).
    ///
    /// Memory: the activation reserves `limits.memory` MB of the budget after its code is
    /// found and before it is instantiated, waiting at most its own timeout (see
    /// [`admission`](crate::admission)); it returns it once its store is dropped, on every
    /// path (the reservation is a guard).
    pub async fn run(&self, req: RunRequest) -> Result<RunResponse, RunError> {
        let arrived = Instant::now();
        let inner = &*self.inner;
        if self.is_draining() {
            return Err(RunError::Draining);
        }
        req.limits
            .validate()
            .map_err(|e| RunError::BadRequest(e.to_string()))?;
        let stdin = serde_json::to_vec(&req.params)
            .map_err(|e| RunError::BadRequest(format!("params: {e}")))?;
        if stdin.len() > MAX_PAYLOAD_BYTES {
            return Err(RunError::PayloadTooLarge {
                size: stdin.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let _in_flight = InFlight::new(inner);
        let budget_mb = inner.memory.budget_mb();
        if req.limits.memory > budget_mb {
            let e = AdmitError::TooLarge {
                memory_mb: req.limits.memory,
                budget_mb,
            };
            return Ok(self.refused(&req, Status::InternalError, e.to_string(), arrived));
        }
        let source = CodeSource {
            inline: req.code.as_deref(),
            ..CodeSource::default()
        };
        let (prepared, kind, init) = match inner.cache.load(&req.digest, source).await {
            Ok(found) => found,
            Err(e @ RunError::Internal(_)) => {
                tracing::warn!(activation = %req.activation_id, error = %e, "cannot load code");
                return Ok(self.refused(&req, Status::InternalError, e.to_string(), arrived));
            }
            Err(e) => return Err(e),
        };
        let deadline =
            tokio::time::Instant::from_std(arrived) + Duration::from_millis(req.limits.timeout);
        let reservation = match inner
            .memory
            .reserve(&req.namespace, req.limits.memory, deadline)
            .await
        {
            Ok(r) => r,
            Err(e @ AdmitError::TooLarge { .. }) => {
                return Ok(self.refused(&req, Status::InternalError, e.to_string(), arrived));
            }
            Err(AdmitError::TimedOut { .. }) => {
                // The action's fault for asking, not the runtime's: a busy runtime is healthy.
                inner.metrics.memory_wait_timeouts.inc();
                let msg = format!(
                    "The action exceeded its time limit of {} milliseconds while waiting for {} MB \
                     of memory on the runtime (its budget is {} MB).",
                    req.limits.timeout, req.limits.memory, budget_mb
                );
                return Ok(self.refused(&req, Status::DeveloperError, msg, arrived));
            }
        };
        let permits = prepared.slots().min(inner.config.pool_slots.max(1));
        let permit = inner
            .slots
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| RunError::Internal("the instance pool is closed".into()))?;
        let init_us = if kind == LoadKind::Memory {
            0
        } else {
            init.as_micros() as u64
        };
        let wait_us = (arrived.elapsed().saturating_sub(init)).as_micros() as u64;
        let hold: Box<dyn Send> = Box::new((permit, reservation));
        let outcome = execute(
            prepared,
            &req,
            stdin,
            &inner.metrics,
            hold,
            inner.guests.as_ref(),
        )
        .await;
        inner.metrics.count_activation(outcome.response.status);
        // The answer is built: recycle the pool slot now, then return the permit and the
        // memory. With PAGEMAP_SCAN the reset touches only the pages the guest dirtied (a few
        // µs for `hello`); handing the store to a spawned task instead measured slower (14 µs
        // vs 21 µs per `hello` in the `prewarmed` bench), as it wakes a parked worker thread.
        drop(outcome.store);
        Ok(RunResponse {
            activation_id: req.activation_id,
            response: outcome.response,
            logs: outcome.logs,
            start: outcome.start,
            end: outcome.end,
            wait_time_us: wait_us,
            init_time_us: init_us,
            duration_us: outcome.duration.as_micros() as u64,
        })
    }

    /// The answer for an activation that was never started.
    fn refused(
        &self,
        req: &RunRequest,
        status: Status,
        message: String,
        arrived: Instant,
    ) -> RunResponse {
        self.inner.metrics.count_activation(status);
        let now = wisp_core::now_ms();
        RunResponse {
            activation_id: req.activation_id.clone(),
            response: ActivationResponse::error(status, message),
            logs: Vec::new(),
            start: now,
            end: now,
            wait_time_us: arrived.elapsed().as_micros() as u64,
            init_time_us: 0,
            duration_us: 0,
        }
    }
}
