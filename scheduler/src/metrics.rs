//! `/metrics` of the scheduler, in Prometheus/OpenMetrics text (prometheus-client).
//!
//! - `wisp_http_requests_total{method, route, status}`: every routed request (route = the
//!   matched path template, so cardinality stays bounded).
//! - `wisp_invokes_total{status}`: invoke answers by HTTP status (200, 202, 502, 500, 503...).
//! - `wisp_activations_total{status}`: activations by OpenWhisk status, for the invoke path to
//!   count with [`Metrics::activation`].
//! - balancer gauges taken from `Balancer::snapshot()` of the shared balancer and of every
//!   per-user (dedicated runtimes) balancer at scrape time, labelled `pool` (`shared` or the
//!   user): `wisp_runtimes{state, pool}`, `wisp_runtime_free_slots{runtime, pool}`,
//!   `wisp_runtime_in_flight{runtime, pool}` (activations this replica has in flight there),
//!   `wisp_runtime_reserved_memory_mb{runtime, pool}` (memory booked for them, MB; above the
//!   capacity when the overload strategy forced slots), `wisp_runtime_capacity_mb{runtime, pool}`
//!   (this replica's share of the runtime's memory), `wisp_runtime_healthy{runtime, pool}`.
//! - `wisp_throttled_total{namespace, limit}`: requests refused by a namespace limit (`limit` =
//!   `invocationsPerMinute`, `concurrentInvocations` or `firesPerMinute`), read from the
//!   limiter at scrape time.
//! - `wisp_entity_cache_requests_total{result="hit"|"miss"|"remote_invalidation"}` (the last:
//!   entries dropped because another replica changed them).
//!
//! One [`Metrics`] per scheduler; recording costs a label-set hash and an atomic add.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use wisp_core::Status;

use crate::activation::limits::Limiter;
use crate::balancer::RuntimeState;
use crate::kube::RuntimePools;
use crate::store::cache::CacheStats;

type Labels = Vec<(&'static str, String)>;

/// The scheduler's metrics registry.
pub struct Metrics {
    registry: Registry,
    http: Family<Labels, Counter>,
    invokes: Family<Labels, Counter>,
    activations: Family<Labels, Counter>,
    runtimes: Family<Labels, Gauge>,
    free_slots: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    reserved: Family<Labels, Gauge>,
    capacity: Family<Labels, Gauge>,
    healthy: Family<Labels, Gauge>,
    cache: Family<Labels, Counter>,
    cache_stats: Option<Arc<CacheStats>>,
    throttled: Family<Labels, Counter>,
    limiter: Option<Arc<Limiter>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(cache_stats: Option<Arc<CacheStats>>) -> Self {
        let mut registry = Registry::default();
        let http = Family::<Labels, Counter>::default();
        let invokes = Family::<Labels, Counter>::default();
        let activations = Family::<Labels, Counter>::default();
        let runtimes = Family::<Labels, Gauge>::default();
        let free_slots = Family::<Labels, Gauge>::default();
        let in_flight = Family::<Labels, Gauge>::default();
        let healthy = Family::<Labels, Gauge>::default();
        let reserved = Family::<Labels, Gauge>::default();
        let capacity = Family::<Labels, Gauge>::default();
        let cache = Family::<Labels, Counter>::default();
        let throttled = Family::<Labels, Counter>::default();
        registry.register(
            "wisp_http_requests",
            "HTTP requests by route and status",
            http.clone(),
        );
        registry.register(
            "wisp_invokes",
            "Invoke answers by HTTP status",
            invokes.clone(),
        );
        registry.register(
            "wisp_activations",
            "Activations by OpenWhisk status",
            activations.clone(),
        );
        registry.register(
            "wisp_runtimes",
            "Runtimes by balancer state",
            runtimes.clone(),
        );
        registry.register(
            "wisp_runtime_free_slots",
            "Free memory slots (MB) in this scheduler's books",
            free_slots.clone(),
        );
        registry.register(
            "wisp_runtime_in_flight",
            "Activations this scheduler has in flight per runtime",
            in_flight.clone(),
        );
        registry.register(
            "wisp_runtime_reserved_memory_mb",
            "Memory (MB) this scheduler has booked for its activations in flight per runtime",
            reserved.clone(),
        );
        registry.register(
            "wisp_runtime_capacity_mb",
            "This scheduler's share of the runtime's memory (MB)",
            capacity.clone(),
        );
        registry.register(
            "wisp_throttled",
            "Requests refused by a namespace limit",
            throttled.clone(),
        );
        registry.register(
            "wisp_runtime_healthy",
            "1 when the runtime is healthy",
            healthy.clone(),
        );
        registry.register(
            "wisp_entity_cache_requests",
            "Entity cache lookups by result",
            cache.clone(),
        );
        Metrics {
            registry,
            http,
            invokes,
            activations,
            runtimes,
            free_slots,
            in_flight,
            reserved,
            capacity,
            healthy,
            cache,
            cache_stats,
            throttled,
            limiter: None,
        }
    }

    /// The same metrics reporting `limiter`'s refusals as `wisp_throttled_total`.
    pub(crate) fn with_limiter(mut self, limiter: Arc<Limiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Counts one routed HTTP request.
    pub fn request(&self, method: &str, route: &str, status: u16) {
        self.http
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("route", route.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    /// Counts one invoke answer.
    pub fn invoke(&self, status: u16) {
        self.invokes
            .get_or_create(&vec![("status", status.to_string())])
            .inc();
    }

    /// Counts one finished activation.
    pub fn activation(&self, status: Status) {
        self.activations
            .get_or_create(&vec![("status", status.label().to_string())])
            .inc();
    }

    /// The text exposition, with balancer gauges refreshed from every balancer of `pools`
    /// (label `pool`: `shared`, or the user name of a dedicated pool).
    pub fn render(&self, pools: &RuntimePools) -> String {
        self.runtimes.clear();
        self.free_slots.clear();
        self.in_flight.clear();
        self.reserved.clear();
        self.capacity.clear();
        self.healthy.clear();
        let mut all = vec![("shared".to_string(), Arc::clone(pools.shared()))];
        all.extend(
            pools
                .dedicated_users()
                .into_iter()
                .filter_map(|user| pools.dedicated(&user).map(|b| (user, b))),
        );
        for (pool, balancer) in all {
            for state in [
                RuntimeState::Healthy,
                RuntimeState::Unhealthy,
                RuntimeState::Offline,
            ] {
                self.runtimes
                    .get_or_create(&vec![
                        ("state", state.as_str().to_string()),
                        ("pool", pool.clone()),
                    ])
                    .set(0);
            }
            for rt in balancer.snapshot() {
                let label = vec![("runtime", rt.url.clone()), ("pool", pool.clone())];
                self.runtimes
                    .get_or_create(&vec![
                        ("state", rt.state.as_str().to_string()),
                        ("pool", pool.clone()),
                    ])
                    .inc();
                self.free_slots.get_or_create(&label).set(rt.free_slots);
                self.in_flight
                    .get_or_create(&label)
                    .set(i64::try_from(rt.in_flight).unwrap_or(i64::MAX));
                let capacity = i64::try_from(rt.capacity_slots).unwrap_or(i64::MAX);
                self.capacity.get_or_create(&label).set(capacity);
                self.reserved
                    .get_or_create(&label)
                    .set(capacity.saturating_sub(rt.free_slots));
                self.healthy
                    .get_or_create(&label)
                    .set(i64::from(rt.state == RuntimeState::Healthy));
            }
        }
        if let Some(stats) = &self.cache_stats {
            for (result, total) in [
                ("hit", stats.hits.load(Ordering::Relaxed)),
                ("miss", stats.misses.load(Ordering::Relaxed)),
                // Entries dropped because another replica wrote them (PostgreSQL NOTIFY).
                (
                    "remote_invalidation",
                    stats.remote_invalidations.load(Ordering::Relaxed),
                ),
            ] {
                let c = self
                    .cache
                    .get_or_create(&vec![("result", result.to_string())]);
                let seen = c.get();
                if total > seen {
                    c.inc_by(total - seen);
                }
            }
        }
        if let Some(limiter) = &self.limiter {
            for (namespace, limit, total) in limiter.throttled_counts() {
                let c = self.throttled.get_or_create(&vec![
                    ("namespace", namespace),
                    ("limit", limit.name().to_string()),
                ]);
                let seen = c.get();
                if total > seen {
                    c.inc_by(total - seen);
                }
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
