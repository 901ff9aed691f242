//! Runtime health: the three states, the ring of the last 10 activation outcomes, pings and
//! test activations (OpenWhisk's `InvokerSupervision`, without Kafka: the scheduler pings).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Balancer, RuntimeId};

/// How many recent activation outcomes decide between Healthy and Unhealthy.
pub const OUTCOME_WINDOW: usize = 10;
/// A runtime is Unhealthy while at least this many of the last [`OUTCOME_WINDOW`] activations
/// ended in a system error, and Healthy again once fewer did.
pub const SYSTEM_ERROR_THRESHOLD: usize = 3;

/// Health of a runtime as this scheduler sees it. Only `Healthy` runtimes get user work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeState {
    /// Pings arrive and fewer than 3 of the last 10 activations were system errors.
    Healthy = 0,
    /// Pings arrive but 3 or more of the last 10 activations were system errors: only test
    /// activations are sent to it.
    Unhealthy = 1,
    /// No successful ping for `offline_after`, or it refused a connection.
    Offline = 2,
}

impl RuntimeState {
    fn from_u8(v: u8) -> RuntimeState {
        match v {
            0 => RuntimeState::Healthy,
            1 => RuntimeState::Unhealthy,
            _ => RuntimeState::Offline,
        }
    }

    /// `healthy`, `unhealthy` or `offline` (metric labels, `/ready`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeState::Healthy => "healthy",
            RuntimeState::Unhealthy => "unhealthy",
            RuntimeState::Offline => "offline",
        }
    }
}

impl std::fmt::Display for RuntimeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an activation's end says about the health of the runtime that ran it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The platform worked, whatever the action did (success, application error and action
    /// developer error all count as success for the runtime's health, as in OpenWhisk).
    Success,
    /// A whisk internal error, or the transport failed after the activation started.
    SystemError,
}

impl From<wisp_core::Status> for Outcome {
    fn from(status: wisp_core::Status) -> Outcome {
        match status {
            wisp_core::Status::InternalError => Outcome::SystemError,
            _ => Outcome::Success,
        }
    }
}

/// A runtime's answer to `GET /health`: `{"status":"ok","userMemory":<MB>,"inFlight":n}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingInfo {
    #[serde(default)]
    pub status: String,
    /// Capacity the runtime offers, in MB; divided between the scheduler replicas.
    #[serde(rename = "userMemory")]
    pub user_memory_mb: u64,
    /// Activations the runtime is running (for all schedulers).
    #[serde(rename = "inFlight", default)]
    pub in_flight: u64,
}

impl PingInfo {
    /// An `ok` answer offering `user_memory_mb`.
    pub fn ok(user_memory_mb: u64) -> PingInfo {
        PingInfo {
            status: "ok".into(),
            user_memory_mb,
            in_flight: 0,
        }
    }
}

/// How the health task talks to runtimes. The scheduler implements it over HTTP; tests with a
/// fake. Both calls get a timeout from the caller (see [`Balancer::spawn_health_task`]).
pub trait Prober: Send + Sync + 'static {
    /// `GET {url}/health`.
    fn ping(&self, url: &str) -> impl Future<Output = Result<PingInfo, String>> + Send;
    /// Runs the health test action on that runtime; `Ok(())` when it succeeded.
    fn test_activation(&self, url: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// What is known about one runtime's health. Lives as long as its URL stays in the list.
#[derive(Debug)]
pub(crate) struct Health {
    ring: VecDeque<Outcome>,
    last_ok: Instant,
    pub user_memory_mb: u64,
    pub pinged: bool,
    pub reported_in_flight: Option<u64>,
}

/// One runtime: identity, health and counters. Its capacity books live next to it in the
/// balancer's list (they are rebuilt when the cluster size changes; this is not).
#[derive(Debug)]
pub(crate) struct Runtime {
    pub id: RuntimeId,
    pub url: String,
    state: AtomicU8,
    health: Mutex<Health>,
    /// A test-activation loop is running for it.
    testing: AtomicBool,
    pub scheduled: AtomicU64,
    pub forced: AtomicU64,
    pub system_errors: AtomicU64,
    pub test_activations: AtomicU64,
}

impl Runtime {
    /// Starts Healthy (optimistic, so a fresh scheduler serves at once) and as if a ping had
    /// just arrived, so it goes Offline `offline_after` from now unless pings arrive.
    pub fn new(id: RuntimeId, url: String, user_memory_mb: u64) -> Runtime {
        Runtime {
            id,
            url,
            state: AtomicU8::new(RuntimeState::Healthy as u8),
            health: Mutex::new(Health {
                ring: VecDeque::with_capacity(OUTCOME_WINDOW),
                last_ok: Instant::now(),
                user_memory_mb,
                pinged: false,
                reported_in_flight: None,
            }),
            testing: AtomicBool::new(false),
            scheduled: AtomicU64::new(0),
            forced: AtomicU64::new(0),
            system_errors: AtomicU64::new(0),
            test_activations: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> RuntimeState {
        RuntimeState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // Every update leaves `Health` consistent: a poisoned lock is still usable.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the state (caller holds the health lock, so transitions are serialized);
    /// returns the previous one.
    fn set_state(&self, _held: &Health, new: RuntimeState) -> RuntimeState {
        let old = RuntimeState::from_u8(self.state.swap(new as u8, Ordering::AcqRel));
        if old != new {
            tracing::info!(runtime = %self.url, from = %old, to = %new, "runtime state changed");
        }
        old
    }

    fn state_from_ring(h: &Health) -> RuntimeState {
        if system_errors_in(h) >= SYSTEM_ERROR_THRESHOLD {
            RuntimeState::Unhealthy
        } else {
            RuntimeState::Healthy
        }
    }

    /// Adds an activation's outcome to the ring and re-evaluates Healthy/Unhealthy (an
    /// Offline runtime stays Offline: only a ping brings it back). Returns the new state.
    pub fn record(&self, outcome: Outcome) -> RuntimeState {
        if outcome == Outcome::SystemError {
            self.system_errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut h = self.health();
        if h.ring.len() == OUTCOME_WINDOW {
            h.ring.pop_front();
        }
        h.ring.push_back(outcome);
        let current = self.state();
        if current == RuntimeState::Offline {
            return current;
        }
        let new = Self::state_from_ring(&h);
        self.set_state(&h, new);
        new
    }

    /// A successful ping: refreshes the ping clock and the capacity; an Offline runtime comes
    /// back (Healthy, or Unhealthy if its ring still holds 3+ system errors). Returns the
    /// user memory it announced before, if that changed.
    pub fn ping_ok(&self, info: &PingInfo) -> Option<u64> {
        let mut h = self.health();
        h.last_ok = Instant::now();
        h.pinged = true;
        h.reported_in_flight = Some(info.in_flight);
        let changed = (h.user_memory_mb != info.user_memory_mb).then_some(h.user_memory_mb);
        h.user_memory_mb = info.user_memory_mb;
        if self.state() == RuntimeState::Offline {
            let new = Self::state_from_ring(&h);
            self.set_state(&h, new);
        }
        changed
    }

    /// Marks the runtime Offline if its last successful ping is `offline_after` old or older.
    pub fn expire(&self, offline_after: Duration) -> bool {
        let h = self.health();
        if self.state() != RuntimeState::Offline && h.last_ok.elapsed() >= offline_after {
            self.set_state(&h, RuntimeState::Offline);
            return true;
        }
        false
    }

    /// Offline at once (it refused a connection); a later successful ping brings it back.
    pub fn mark_offline(&self) {
        let h = self.health();
        self.set_state(&h, RuntimeState::Offline);
    }

    pub fn since_last_ok(&self) -> Duration {
        self.health().last_ok.elapsed()
    }
}

pub(crate) fn system_errors_in(h: &Health) -> usize {
    h.ring
        .iter()
        .filter(|o| **o == Outcome::SystemError)
        .count()
}

/// Resets a runtime's "test loop running" flag when the loop ends or is aborted.
struct TestingGuard(Arc<Runtime>);

impl Drop for TestingGuard {
    fn drop(&mut self) {
        self.0.testing.store(false, Ordering::Release);
    }
}

impl Balancer {
    /// Starts the health supervision of every runtime in the list (runtimes added later
    /// included) and returns its task. Every `ping_interval`:
    ///
    /// - runtimes whose last successful ping is `offline_after` old become Offline;
    /// - each runtime is pinged, all concurrently, each ping bounded by `ping_interval`
    ///   ([`on_ping`](Balancer::on_ping) applies the answer);
    /// - each Unhealthy runtime without one gets a test-activation loop: a test activation
    ///   (bounded by `offline_after`), its outcome recorded like any activation's; after a
    ///   success the next one goes at once (to flush the errors out of the ring quickly, as
    ///   OpenWhisk does), after a failure one `ping_interval` later; the loop ends when the
    ///   runtime is no longer Unhealthy. A runtime turning Unhealthy wakes the task at once.
    ///
    /// The task holds an `Arc` of the balancer and stops (aborting pings and tests in flight)
    /// when `shutdown` is cancelled.
    pub fn spawn_health_task<P: Prober>(
        self: &Arc<Self>,
        prober: Arc<P>,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let balancer = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(balancer.ping_interval());
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut tasks = JoinSet::new();
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        while tasks.try_join_next().is_some() {}
                        balancer.expire_stale();
                        balancer.spawn_pings(&prober, &mut tasks);
                        balancer.spawn_tests(&prober, &mut tasks);
                    }
                    _ = balancer.wake.notified() => {
                        balancer.spawn_tests(&prober, &mut tasks);
                    }
                }
            }
            tasks.shutdown().await;
        })
    }

    /// The configured interval, at least 1 ms (a zero interval would spin).
    fn ping_interval(&self) -> Duration {
        self.config.ping_interval.max(Duration::from_millis(1))
    }

    fn expire_stale(&self) {
        for runtime in self.runtimes() {
            runtime.expire(self.config.offline_after);
        }
    }

    fn spawn_pings<P: Prober>(self: &Arc<Self>, prober: &Arc<P>, tasks: &mut JoinSet<()>) {
        let timeout = self.ping_interval();
        for runtime in self.runtimes() {
            let balancer = Arc::clone(self);
            let prober = Arc::clone(prober);
            tasks.spawn(async move {
                let result = match tokio::time::timeout(timeout, prober.ping(&runtime.url)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                };
                balancer.on_ping(runtime.id, result);
            });
        }
    }

    fn spawn_tests<P: Prober>(self: &Arc<Self>, prober: &Arc<P>, tasks: &mut JoinSet<()>) {
        for runtime in self.runtimes() {
            if runtime.state() != RuntimeState::Unhealthy
                || runtime
                    .testing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            let balancer = Arc::clone(self);
            let prober = Arc::clone(prober);
            let guard = TestingGuard(runtime);
            tasks.spawn(async move {
                let runtime = Arc::clone(&guard.0);
                let timeout = balancer.config.offline_after;
                while runtime.state() == RuntimeState::Unhealthy && balancer.holds(&runtime) {
                    runtime.test_activations.fetch_add(1, Ordering::Relaxed);
                    let outcome =
                        match tokio::time::timeout(timeout, prober.test_activation(&runtime.url))
                            .await
                        {
                            Ok(Ok(())) => Outcome::Success,
                            Ok(Err(e)) => {
                                tracing::debug!(runtime = %runtime.url, error = %e, "test activation failed");
                                Outcome::SystemError
                            }
                            Err(_) => Outcome::SystemError,
                        };
                    runtime.record(outcome);
                    if outcome == Outcome::SystemError {
                        tokio::time::sleep(balancer.ping_interval()).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
                drop(guard);
            });
        }
    }
}
