//! What every handler gets: [`AppState`], cloned per request (a handful of `Arc`s).

use std::sync::Arc;

use crate::balancer::Balancer;
use crate::config::SchedulerConfig;
use crate::invoke::Invoker;
use crate::metrics::Metrics;
use crate::store::Store;

/// Shared state of the scheduler's HTTP handlers. Cloning costs a few reference-count bumps;
/// everything inside lives as long as the [`crate::Scheduler`].
#[derive(Clone)]
pub struct AppState {
    /// The entity and activation store (behind the entity cache).
    pub store: Arc<dyn Store>,
    /// The sharding load balancer.
    pub balancer: Arc<Balancer>,
    /// The invoke path (runtime client, activation tasks).
    pub invoker: Invoker,
    pub config: Arc<SchedulerConfig>,
    pub metrics: Arc<Metrics>,
    /// Per-user Kubernetes namespaces ([`crate::kube::Provisioner::Off`] without a cluster).
    pub provisioner: crate::kube::Provisioner,
    /// The shared balancer (= `balancer`) and the per-user balancers of dedicated runtimes.
    pub pools: Arc<crate::kube::RuntimePools>,
}
