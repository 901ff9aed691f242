//! The load balancer: which runtime runs an activation. It is OpenWhisk's
//! `ShardingContainerPoolBalancer` (seed 001) adapted to wisp, where a runtime is a process
//! that runs wasm modules behind `POST /run` instead of an invoker fed by Kafka.
//!
//! One [`Balancer`] lives as long as the scheduler process, behind an `Arc`. It holds, per
//! runtime, a few atomics, a ring of 10 outcomes and the capacity books (one short mutex);
//! [`Balancer::schedule`] costs a hash of the action name, a read lock and a few probes, and
//! never waits. A [`Lease`] lives as long as one activation and gives its slots back on drop.
//!
//! ## Algorithm
//!
//! For every `namespace/action` a hash is calculated ([`hash_fqn`]: FNV-1a 64, identical on
//! every replica and every run, unlike `std`'s randomly seeded hasher) and a runtime is picked
//! from it: `hash % n` is the *home runtime*, where the progression **always** starts. If the
//! home runtime is healthy (see "Health") and has capacity (see "Capacity"), the activation is
//! scheduled to it.
//!
//! If not, the index is incremented by a step size. The step sizes are OpenWhisk's
//! `pairwiseCoprimeNumbersUntil(n)` ([`pairwise_coprime_numbers_until`]): the numbers `1..=n`
//! coprime to `n` and pairwise coprime with those chosen before, so that every step size walks
//! through all `n` runtimes and different actions collide as little as possible. The step size
//! is picked by the same hash: `step_sizes[hash % step_sizes.len()]`. The checks (healthy +
//! capacity) are repeated on the runtime landed on, until all `n` runtimes were probed once.
//!
//! Then the *overload* strategy applies: a healthy runtime is chosen at random and the
//! activation is scheduled to it even though its books say it is full (slots are
//! force-acquired, the free count goes negative; [`Lease::forced`] is `true`). In a steadily
//! running system, overload means that no runtime has capacity left for this activation.
//!
//! If there is no runtime, or no healthy one, [`schedule`](Balancer::schedule) returns
//! [`ScheduleError::NoHealthyRuntime`] (the API answers 503). Activations are not queued
//! anywhere.
//!
//! An example:
//! - runtimes: 10 (all healthy)
//! - hash: 13
//! - home runtime: `hash % 10 = 13 % 10 = 3`
//! - step sizes: 1, 3, 7 (2 and 5 are not coprime to 10; 9 is not coprime to 3)
//! - step size index: `hash % 3 = 13 % 3 = 1` => step size = 3
//!
//! Progression to check the runtimes: 3, 6, 9, 2, 5, 8, 1, 4, 7, 0 --> done
//! ([`Progression::indices`]; a unit test pins this example).
//!
//! This heuristic assumes that the chance of a warm cache (compiled module and `InstancePre`
//! ready) is best on the home runtime and degrades with every step. The hashing makes every
//! scheduler replica pick the same home runtime and walk the same progression for an action,
//! as long as the replicas see the same runtime list in the same order.
//!
//! Known caveats:
//! - The assumption is not always true: two heavy workloads with the same home runtime
//!   compete for its capacity and spill to the same next runtimes (their progressions only
//!   differ when their step sizes differ). A wasm runtime evicts compiled code far more
//!   cheaply than OpenWhisk evicts containers, so this costs compiles, not container starts.
//! - Replicas agree on home runtimes only if their lists agree. A static list (`--runtime`)
//!   keeps the order given; [`add_runtime`](Balancer::add_runtime) inserts in URL order, so
//!   replicas that discover the same set of runtimes (Kubernetes) end with the same list.
//!   While one replica has seen a new runtime and another has not, their homes differ.
//! - Any change of the list size changes `hash % n` for most actions (no consistent hashing,
//!   as in OpenWhisk): runtimes coming and going move actions to cold runtimes.
//!
//! ## Capacity
//!
//! The capacity of a runtime is its `user-memory` in MB, which it announces in its `/health`
//! answer (`{"status":"ok","userMemory":2048,"inFlight":0}`); until its first ping arrives
//! [`BalancerConfig::default_user_memory_mb`] is assumed, and a later ping with another value
//! resizes the books in place (leases in flight stay counted).
//!
//! Spare capacity is what the balancer thinks it scheduled to each runtime. Upon scheduling,
//! one slot per MB of the action's memory limit is taken from the runtime's semaphore
//! ([`Lease`]). The slots are released when the runtime's `/run` answer arrives **or** when
//! the request times out, whichever comes first: the caller drops the lease (or calls
//! [`Lease::release`], which is idempotent).
//!
//! Actions with `concurrency > 1` use OpenWhisk's `NestedSemaphore`: the first activation of
//! an action takes `memory` slots for a *slot-set* that holds up to `concurrency` activations
//! of that action (same name and limits); the next `concurrency - 1` activations take a free
//! place in a set already paid for and no memory; the memory is given back when a whole set
//! is unused.
//!
//! Known caveats:
//! - In overload, activations are sent to runtimes that are already full, where they wait for
//!   a pooling slot; the time they wait counts against their timeout, and a timed out request
//!   releases its slots while the runtime may still be running it, so the balancer may again
//!   think there is capacity where there is none. (OpenWhisk queues on the invoker's Kafka
//!   topic; wisp has no queue at the runtime beyond its pool, so this is bounded by timeouts.)
//! - The same holds for a runtime that is very slow: its requests time out, their slots come
//!   back, and more load goes to it. Health catches this only as far as the caller records
//!   such timeouts as system errors (the invoke path does for a `/run` left without an answer
//!   past the action's timeout plus a grace period; the action's own timeout, enforced by the
//!   runtime, is an action developer error and not the runtime's fault).
//! - Slot-sets of `concurrency > 1` are an accounting unit only: a wasm runtime runs every
//!   activation in its own instance, so they model memory that is shared, not used.
//! - The memory limit caps the wasm linear memory; host-side memory per activation (the
//!   runtime's `Store`, buffers) is not counted.
//!
//! ## Health
//!
//! OpenWhisk's invokers ping the controllers over Kafka. wisp's runtimes know no scheduler,
//! so the scheduler pings them: [`Balancer::spawn_health_task`] sends `GET /health` to every
//! runtime every [`ping_interval`](BalancerConfig::ping_interval) (1 s). If no ping succeeded
//! for [`offline_after`](BalancerConfig::offline_after) (10 s), the runtime is Offline; the
//! next successful ping brings it back. A runtime that refuses the connection of an activation
//! before it started is marked Offline at once ([`Balancer::mark_offline`]) and the caller
//! reschedules with that runtime in `exclude`, so a dead runtime costs no failed invocation.
//!
//! Moreover, the outcome of every activation is recorded ([`Balancer::record`]). If 3 or more
//! of the last 10 activations ended in a system error (`whisk internal error`, or a transport
//! failure after the activation started), the runtime is Unhealthy: no user work is sent to
//! it, but the health task sends it test activations, whose outcomes are recorded like any
//! other, until fewer than 3 of the last 10 are system errors and it is Healthy again.
//!
//! To summarize ([`RuntimeState`]):
//! - Offline: no successful ping for 10 s or more, or it refused a connection.
//! - Unhealthy: 3 or more system errors in the last 10 activations, pings arriving.
//! - Healthy: fewer than 3 system errors in the last 10 activations, pings arriving.
//!
//! Known caveats:
//! - The seed is inconsistent at exactly 3 errors (">3" unhealthy, "<3" healthy); wisp follows
//!   DESIGN.md: 3 of 10 is Unhealthy.
//! - A runtime starts **Healthy**, not Offline as an OpenWhisk invoker does until its first
//!   ping: a freshly started scheduler serves at once. A runtime in the list that is down is
//!   found out by its first refused connection (marked Offline, the activation goes elsewhere)
//!   or, if it does not refuse but never answers, after `offline_after`; until then activations
//!   sent to such a black hole time out.
//! - An Offline runtime that pings again goes straight back to Healthy (OpenWhisk goes through
//!   Unhealthy and a test activation) unless its ring still holds 3+ system errors, e.g. from
//!   activations that failed when it died; those bring it back Unhealthy and it is tested.
//! - Every scheduler replica pings every runtime: `replicas` pings per runtime per second.
//!
//! ## Horizontal sharding
//!
//! Sharding avoids that scheduler replicas share any data: the numbers used in scheduling
//! change far too fast. Each runtime's capacity is divided evenly between the replicas:
//! with `user-memory` 2048 MB and 2 replicas ([`Balancer::set_cluster_size`]`(2)`), each
//! replica books at most 1024 MB on it (never less than the smallest memory limit,
//! [`wisp_core::Limits::MIN_MEMORY_MB`]).
//!
//! Known caveats:
//! - When a replica joins or leaves the cluster, all capacity books are rebuilt from scratch
//!   (as OpenWhisk does): activations in flight are no longer counted (their leases release
//!   into the old books). These events should be rare.
//! - Concurrent slot-sets are counted per replica: two replicas open a set each for the same
//!   action on the same runtime where one would do.
//! - A replica that receives more load than the others cannot use their idle share.
//!
//! ## Runtime ids
//!
//! The algorithm works on the *position* of a runtime in the list. Leases, outcomes and pings
//! name a runtime by [`RuntimeId`], a number given to a URL the first time this balancer sees
//! it and never given to another URL, so an id stays valid while the list around it changes
//! (a runtime removed and added again gets its old id back, with fresh health and books).
//! Calls with an id no longer in the list are ignored.

mod health;
mod slots;
pub mod stepping;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::sync::Notify;

pub use health::{OUTCOME_WINDOW, Outcome, PingInfo, Prober, RuntimeState, SYSTEM_ERROR_THRESHOLD};
pub use stepping::{Progression, hash_fqn, pairwise_coprime_numbers_until};

use health::Runtime;
use slots::{ActionKey, Slots};

/// Settings of a [`Balancer`]. `Default` is a single scheduler with 1 s pings.
#[derive(Clone, Debug)]
pub struct BalancerConfig {
    /// Number of scheduler replicas sharing the runtimes (each books `1/cluster_size` of every
    /// runtime's capacity). Values below 1 mean 1.
    pub cluster_size: usize,
    /// A runtime without a successful ping for this long is Offline (10 s).
    pub offline_after: Duration,
    /// How often the health task pings every runtime (1 s); also the timeout of each ping.
    pub ping_interval: Duration,
    /// Capacity assumed for a runtime until its first ping says otherwise (2048 MB).
    pub default_user_memory_mb: u64,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig {
            cluster_size: 1,
            offline_after: Duration::from_secs(10),
            ping_interval: Duration::from_secs(1),
            default_user_memory_mb: 2048,
        }
    }
}

/// Names a runtime for as long as this balancer lives (see the module docs, "Runtime ids").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RuntimeId(pub u32);

impl std::fmt::Display for RuntimeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "runtime{}", self.0)
    }
}

/// Why an activation could not be scheduled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No runtime is known, or none is Healthy (and not excluded). Answer 503; nothing is
    /// queued.
    #[error("no healthy runtime is available to run the activation")]
    NoHealthyRuntime,
}

/// The slots one activation holds on one runtime. Dropping it (the `/run` answer arrived, or
/// the request timed out) gives them back.
#[derive(Debug)]
pub struct Lease {
    /// Where the activation goes.
    pub runtime: RuntimeId,
    /// The runtime's base URL (no trailing `/`).
    pub url: String,
    /// Scheduled by the overload strategy: the runtime's books were full.
    pub forced: bool,
    slots: Arc<Slots>,
    key: ActionKey,
    released: bool,
}

impl Lease {
    /// Gives the slots back now. Idempotent; dropping the lease afterwards does nothing.
    pub fn release(&mut self) {
        if !self.released {
            self.released = true;
            self.slots.release(&self.key);
        }
    }

    /// The memory limit (MB) this lease booked.
    pub fn memory_mb(&self) -> u64 {
        self.key.memory_mb
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release();
    }
}

/// One runtime as the balancer sees it, for `/ready`, `/metrics` and tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSnapshot {
    pub id: RuntimeId,
    /// Position in the list (what the hash picks).
    pub index: usize,
    pub url: String,
    pub state: RuntimeState,
    /// Capacity the runtime announced (or the default until its first ping).
    pub user_memory_mb: u64,
    /// Whether a ping ever succeeded (else `user_memory_mb` is the configured default).
    pub pinged: bool,
    /// This replica's share of the capacity, in MB slots.
    pub capacity_slots: u64,
    /// Slots still free in this replica's books; negative when overloaded.
    pub free_slots: i64,
    /// Leases this replica holds on the runtime (activations in flight).
    pub in_flight: u64,
    /// Activations in flight as the runtime itself reported in its last ping (all replicas).
    pub reported_in_flight: Option<u64>,
    /// System errors among the last 10 outcomes.
    pub recent_system_errors: usize,
    /// Milliseconds since the last successful ping (or since the runtime was added).
    pub since_last_ping_ms: u64,
    /// Activations scheduled to it since it was added (forced ones included).
    pub scheduled_total: u64,
    /// Of those, scheduled by the overload strategy.
    pub forced_total: u64,
    /// System errors recorded since it was added.
    pub system_errors_total: u64,
    /// Test activations sent to it while Unhealthy.
    pub test_activations_total: u64,
}

/// A runtime in the list with this replica's capacity books for it.
#[derive(Clone, Debug)]
struct Entry {
    runtime: Arc<Runtime>,
    slots: Arc<Slots>,
}

#[derive(Debug, Default)]
struct Books {
    entries: Vec<Entry>,
    step_sizes: Vec<usize>,
    by_id: HashMap<RuntimeId, usize>,
    cluster_size: usize,
}

/// The sharding load balancer. `Send + Sync`; share it as `Arc<Balancer>`.
#[derive(Debug)]
pub struct Balancer {
    config: BalancerConfig,
    books: RwLock<Books>,
    /// URL → id, forever (ids are never reused for another URL).
    ids: Mutex<HashMap<String, RuntimeId>>,
    /// Wakes the health task when a runtime turns Unhealthy.
    wake: Notify,
}

/// This replica's share of a runtime's memory (OpenWhisk's `getInvokerSlot`).
fn shard_capacity(user_memory_mb: u64, cluster_size: usize) -> u64 {
    (user_memory_mb / cluster_size.max(1) as u64).max(wisp_core::Limits::MIN_MEMORY_MB)
}

fn normalize(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

impl Balancer {
    /// A balancer with no runtimes.
    pub fn new(config: BalancerConfig) -> Arc<Balancer> {
        let cluster_size = config.cluster_size.max(1);
        Arc::new(Balancer {
            config,
            books: RwLock::new(Books {
                cluster_size,
                ..Books::default()
            }),
            ids: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &BalancerConfig {
        &self.config
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Books> {
        // Books are replaced whole under the write lock: never seen half-built.
        self.books.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Books> {
        self.books.write().unwrap_or_else(|e| e.into_inner())
    }

    fn id_for(&self, url: &str) -> RuntimeId {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let next = RuntimeId(ids.len() as u32);
        *ids.entry(url.to_string()).or_insert(next)
    }

    /// Replaces the list with `urls`, in this order (duplicates and trailing `/` ignored).
    /// Runtimes already known keep their id, health and books; new ones start Healthy.
    pub fn set_runtimes(&self, urls: Vec<String>) {
        let mut books = self.write();
        let mut seen = std::collections::HashSet::new();
        let urls: Vec<String> = urls
            .iter()
            .map(|u| normalize(u))
            .filter(|u| !u.is_empty() && seen.insert(u.clone()))
            .collect();
        self.rebuild(&mut books, urls);
    }

    /// Adds a runtime (if not in the list yet) at its place in URL order, so replicas that
    /// discover the same runtimes in any order end with the same list.
    pub fn add_runtime(&self, url: String) {
        let url = normalize(&url);
        if url.is_empty() {
            return;
        }
        let mut books = self.write();
        let mut urls: Vec<String> = books
            .entries
            .iter()
            .map(|e| e.runtime.url.clone())
            .collect();
        if urls.contains(&url) {
            return;
        }
        let at = urls.partition_point(|u| *u < url);
        urls.insert(at, url);
        self.rebuild(&mut books, urls);
    }

    /// Removes a runtime from the list. Its leases in flight release into books that are no
    /// longer used.
    pub fn remove_runtime(&self, url: &str) {
        let url = normalize(url);
        let mut books = self.write();
        let urls: Vec<String> = books
            .entries
            .iter()
            .map(|e| e.runtime.url.clone())
            .filter(|u| *u != url)
            .collect();
        if urls.len() != books.entries.len() {
            self.rebuild(&mut books, urls);
        }
    }

    fn rebuild(&self, books: &mut Books, urls: Vec<String>) {
        let mut old: HashMap<String, Entry> = books
            .entries
            .drain(..)
            .map(|e| (e.runtime.url.clone(), e))
            .collect();
        let cluster_size = books.cluster_size;
        books.entries = urls
            .into_iter()
            .map(|url| {
                old.remove(&url).unwrap_or_else(|| {
                    let id = self.id_for(&url);
                    let memory = self.config.default_user_memory_mb;
                    tracing::info!(runtime = %url, %id, "runtime added");
                    Entry {
                        runtime: Arc::new(Runtime::new(id, url, memory)),
                        slots: Arc::new(Slots::new(shard_capacity(memory, cluster_size))),
                    }
                })
            })
            .collect();
        for gone in old.keys() {
            tracing::info!(runtime = %gone, "runtime removed");
        }
        books.step_sizes = pairwise_coprime_numbers_until(books.entries.len());
        books.by_id = books
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.runtime.id, i))
            .collect();
    }

    /// Number of scheduler replicas sharing the runtimes. A change rebuilds every runtime's
    /// books from scratch with `user_memory / n` slots (as OpenWhisk does; see the caveats).
    pub fn set_cluster_size(&self, n: usize) {
        let n = n.max(1);
        let mut books = self.write();
        if books.cluster_size == n {
            return;
        }
        tracing::info!(
            from = books.cluster_size,
            to = n,
            "scheduler cluster size changed"
        );
        books.cluster_size = n;
        for entry in &mut books.entries {
            let memory = entry.runtime.health().user_memory_mb;
            entry.slots = Arc::new(Slots::new(shard_capacity(memory, n)));
        }
    }

    /// The current number of scheduler replicas.
    pub fn cluster_size(&self) -> usize {
        self.read().cluster_size
    }

    /// Picks a runtime for one activation of `fqn` (`namespace/[package/]action`, the same
    /// string on every replica) needing `memory_mb` MB, and books the slots. Never waits.
    ///
    /// `concurrency` is the action's concurrency limit (values below 1 mean 1). `exclude` lists
    /// runtimes that already refused the connection for this activation: they are skipped,
    /// for the progression and for overload.
    pub fn schedule(
        &self,
        fqn: &str,
        memory_mb: u64,
        concurrency: u32,
        exclude: &[RuntimeId],
    ) -> Result<Lease, ScheduleError> {
        let concurrency = concurrency.max(1);
        let key = ActionKey {
            // The name only matters to share slot-sets; don't allocate it otherwise.
            fqn: if concurrency > 1 {
                fqn.into()
            } else {
                "".into()
            },
            memory_mb: memory_mb.max(1),
            concurrency,
        };
        let books = self.read();
        let n = books.entries.len();
        let Some(progression) = Progression::new(hash_fqn(fqn), n, &books.step_sizes) else {
            return Err(ScheduleError::NoHealthyRuntime);
        };
        let usable = |e: &Entry| {
            e.runtime.state() == RuntimeState::Healthy && !exclude.contains(&e.runtime.id)
        };
        for index in progression.indices() {
            let entry = &books.entries[index];
            if usable(entry) && entry.slots.acquire(&key, false) {
                return Ok(lease(entry, key, false));
            }
        }
        // Overload: a healthy runtime at random, over its capacity.
        let healthy = books.entries.iter().filter(|e| usable(e)).count();
        if healthy == 0 {
            return Err(ScheduleError::NoHealthyRuntime);
        }
        let pick = rand::rng().random_range(0..healthy);
        let Some(entry) = books.entries.iter().filter(|e| usable(e)).nth(pick) else {
            return Err(ScheduleError::NoHealthyRuntime);
        };
        entry.slots.acquire(&key, true);
        tracing::warn!(runtime = %entry.runtime.url, action = fqn, "system is overloaded: runtime chosen at random");
        Ok(lease(entry, key, true))
    }

    fn find(&self, id: RuntimeId) -> Option<Entry> {
        let books = self.read();
        books.by_id.get(&id).map(|&i| books.entries[i].clone())
    }

    /// Whether `runtime` is still the one in the list under its id.
    fn holds(&self, runtime: &Arc<Runtime>) -> bool {
        self.find(runtime.id)
            .is_some_and(|e| Arc::ptr_eq(&e.runtime, runtime))
    }

    fn runtimes(&self) -> Vec<Arc<Runtime>> {
        self.read()
            .entries
            .iter()
            .map(|e| Arc::clone(&e.runtime))
            .collect()
    }

    /// Records how an activation on `runtime` ended (every activation, test ones included).
    /// 3 system errors among the last 10 make it Unhealthy; fewer make it Healthy again.
    pub fn record(&self, runtime: RuntimeId, outcome: Outcome) {
        let Some(entry) = self.find(runtime) else {
            return;
        };
        let before = entry.runtime.state();
        if entry.runtime.record(outcome) == RuntimeState::Unhealthy
            && before != RuntimeState::Unhealthy
        {
            self.wake.notify_one();
        }
    }

    /// The runtime refused the connection before the activation started: Offline at once, so
    /// no other activation is sent there until a ping succeeds again.
    pub fn mark_offline(&self, runtime: RuntimeId) {
        if let Some(entry) = self.find(runtime) {
            entry.runtime.mark_offline();
        }
    }

    /// Applies the result of a ping of `runtime`. Success: the ping clock restarts, the
    /// announced capacity is taken over, an Offline runtime comes back. Failure: Offline if
    /// the last success is `offline_after` old.
    pub fn on_ping(&self, runtime: RuntimeId, result: Result<PingInfo, String>) {
        let Some(entry) = self.find(runtime) else {
            return;
        };
        match result {
            Ok(info) => {
                let before = entry.runtime.state();
                let memory_changed = entry.runtime.ping_ok(&info).is_some();
                if before == RuntimeState::Offline
                    && entry.runtime.state() == RuntimeState::Unhealthy
                {
                    // Back, but with 3+ system errors in its window: test it at once.
                    self.wake.notify_one();
                }
                if memory_changed {
                    let cluster_size = self.read().cluster_size;
                    // Re-read the entry: the books may have been rebuilt meanwhile.
                    if let Some(entry) = self.find(runtime) {
                        let memory = entry.runtime.health().user_memory_mb;
                        entry.slots.resize(shard_capacity(memory, cluster_size));
                    }
                }
            }
            Err(error) => {
                tracing::debug!(runtime = %entry.runtime.url, %error, "ping failed");
                entry.runtime.expire(self.config.offline_after);
            }
        }
    }

    /// The id of the runtime at `url`, if it is in the list.
    pub fn runtime_id(&self, url: &str) -> Option<RuntimeId> {
        let url = normalize(url);
        self.read()
            .entries
            .iter()
            .find(|e| e.runtime.url == url)
            .map(|e| e.runtime.id)
    }

    /// Every runtime in list order.
    pub fn snapshot(&self) -> Vec<RuntimeSnapshot> {
        let books = self.read();
        books
            .entries
            .iter()
            .enumerate()
            .map(|(index, e)| {
                let (capacity, free, in_flight) = e.slots.counts();
                let r = &e.runtime;
                let (user_memory_mb, pinged, reported_in_flight, recent_system_errors) = {
                    let h = r.health();
                    (
                        h.user_memory_mb,
                        h.pinged,
                        h.reported_in_flight,
                        health::system_errors_in(&h),
                    )
                };
                RuntimeSnapshot {
                    id: r.id,
                    index,
                    url: r.url.clone(),
                    state: r.state(),
                    user_memory_mb,
                    pinged,
                    capacity_slots: capacity.max(0) as u64,
                    free_slots: free,
                    in_flight,
                    reported_in_flight,
                    recent_system_errors,
                    since_last_ping_ms: r.since_last_ok().as_millis() as u64,
                    scheduled_total: r.scheduled.load(Ordering::Relaxed),
                    forced_total: r.forced.load(Ordering::Relaxed),
                    system_errors_total: r.system_errors.load(Ordering::Relaxed),
                    test_activations_total: r.test_activations.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Runtimes that get user work now.
    pub fn healthy_count(&self) -> usize {
        self.read()
            .entries
            .iter()
            .filter(|e| e.runtime.state() == RuntimeState::Healthy)
            .count()
    }

    /// Runtimes in the list.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// No runtime in the list.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lease(entry: &Entry, key: ActionKey, forced: bool) -> Lease {
    let runtime = &entry.runtime;
    runtime.scheduled.fetch_add(1, Ordering::Relaxed);
    if forced {
        runtime.forced.fetch_add(1, Ordering::Relaxed);
    }
    Lease {
        runtime: runtime.id,
        url: runtime.url.clone(),
        forced,
        slots: Arc::clone(&entry.slots),
        key,
        released: false,
    }
}
