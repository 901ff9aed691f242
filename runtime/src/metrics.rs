//! Prometheus metrics of one [`Runtime`](crate::Runtime), served as text on `GET /metrics`.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `wisp_activations_total{status}` | counter | activations by status label (`success`, `application_error`, `developer_error`, `internal_error`) |
//! | `wisp_code_cache_hits_total` | counter | code found compiled in memory |
//! | `wisp_code_cache_misses_total` | counter | code not in memory (then loaded from disk or compiled) |
//! | `wisp_code_disk_loads_total` | counter | misses served from the serialized-module disk cache |
//! | `wisp_code_compiles_total` | counter | misses that compiled the module |
//! | `wisp_compile_seconds` | histogram | time to compile a module |
//! | `wisp_disk_load_seconds` | histogram | time to load a serialized module |
//! | `wisp_instantiate_seconds` | histogram | time to instantiate from the prepared `InstancePre` |
//! | `wisp_activations_in_flight` | gauge | activations being served now: loading code, waiting for memory or running |
//! | `wisp_activations_waiting` | gauge | activations waiting for memory (the budget or their namespace's share is spent) |
//! | `wisp_memory_budget_bytes` | gauge | the memory budget (`--user-memory`), bytes |
//! | `wisp_memory_reserved_bytes` | gauge | memory reserved by admitted activations (their `limits.memory`), bytes |
//! | `wisp_memory_wait_timeouts_total` | counter | activations that reached their time limit while waiting for memory |
//! | `wisp_disk_cache_bytes` | gauge | bytes of compiled code in the disk cache |
//! | `wisp_disk_cache_evictions_total` | counter | disk-cache files deleted to stay within `--cache-max-mb` |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wisp_core::Status;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

/// The runtime's metrics. Updating one is a few atomic operations.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub activations: Family<StatusLabel, Counter>,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub disk_loads: Counter,
    pub compiles: Counter,
    pub compile_seconds: Histogram,
    pub disk_load_seconds: Histogram,
    pub instantiate_seconds: Histogram,
    pub in_flight: Gauge,
    pub waiting: Gauge,
    pub memory_budget_bytes: Gauge,
    pub memory_reserved_bytes: Gauge,
    pub memory_wait_timeouts: Counter,
    pub disk_cache_bytes: Gauge,
    pub disk_evictions: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let activations = Family::<StatusLabel, Counter>::default();
        registry.register(
            "wisp_activations",
            "Activations by status",
            activations.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "wisp_code_cache_hits",
            "Code found compiled in memory",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "wisp_code_cache_misses",
            "Code not compiled in memory",
            cache_misses.clone(),
        );
        let disk_loads = Counter::default();
        registry.register(
            "wisp_code_disk_loads",
            "Modules loaded from the disk cache",
            disk_loads.clone(),
        );
        let compiles = Counter::default();
        registry.register("wisp_code_compiles", "Modules compiled", compiles.clone());
        let compile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "wisp_compile_seconds",
            "Time to compile a module",
            compile_seconds.clone(),
        );
        let disk_load_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 14));
        registry.register(
            "wisp_disk_load_seconds",
            "Time to load a serialized module from disk",
            disk_load_seconds.clone(),
        );
        let instantiate_seconds = Histogram::new(exponential_buckets(0.000_001, 2.0, 18));
        registry.register(
            "wisp_instantiate_seconds",
            "Time to instantiate an activation from its InstancePre",
            instantiate_seconds.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "wisp_activations_in_flight",
            "Activations running now",
            in_flight.clone(),
        );
        let waiting = Gauge::default();
        registry.register(
            "wisp_activations_waiting",
            "Activations waiting for memory",
            waiting.clone(),
        );
        let memory_budget_bytes = Gauge::default();
        registry.register(
            "wisp_memory_budget_bytes",
            "The memory budget (--user-memory), bytes",
            memory_budget_bytes.clone(),
        );
        let memory_reserved_bytes = Gauge::default();
        registry.register(
            "wisp_memory_reserved_bytes",
            "Memory reserved by admitted activations, bytes",
            memory_reserved_bytes.clone(),
        );
        let memory_wait_timeouts = Counter::default();
        registry.register(
            "wisp_memory_wait_timeouts",
            "Activations that reached their time limit while waiting for memory",
            memory_wait_timeouts.clone(),
        );
        let disk_cache_bytes = Gauge::default();
        registry.register(
            "wisp_disk_cache_bytes",
            "Bytes of compiled code in the disk cache",
            disk_cache_bytes.clone(),
        );
        let disk_evictions = Counter::default();
        registry.register(
            "wisp_disk_cache_evictions",
            "Disk-cache files deleted to stay within the bound",
            disk_evictions.clone(),
        );
        // Every status is present from the start, at 0, so dashboards see the series.
        for s in Status::ALL {
            let _ = activations.get_or_create(&StatusLabel { status: s.label() });
        }
        Metrics {
            registry,
            activations,
            cache_hits,
            cache_misses,
            disk_loads,
            compiles,
            compile_seconds,
            disk_load_seconds,
            instantiate_seconds,
            in_flight,
            waiting,
            memory_budget_bytes,
            memory_reserved_bytes,
            memory_wait_timeouts,
            disk_cache_bytes,
            disk_evictions,
        }
    }

    pub fn count_activation(&self, status: Status) {
        self.activations
            .get_or_create(&StatusLabel {
                status: status.label(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
