//! Namespace limits, OpenWhisk's throttles: `invocationsPerMinute`, `concurrentInvocations` and
//! `firesPerMinute`, checked before an activation or a trigger fire is accepted.
//!
//! What counts, and when:
//! - **Invocations per minute** (OpenWhisk's `RateThrottler`): every activation request of the
//!   namespace — API invokes, web actions, sequences (once, for the sequence) and rule-fired
//!   activations — is counted in a *per-minute bucket*: the count of the current wall-clock
//!   minute (epoch ms / 60 000), reset when the minute changes, not a sliding window. As in
//!   OpenWhisk every request is charged, refused ones included, and it is refused when the count
//!   (with itself) exceeds the limit: `Too many requests in the last minute (count: N,
//!   allowed: M).`
//! - **Concurrent invocations** (OpenWhisk's `ActivationThrottler`): activations of the
//!   namespace accepted and not yet ended. A request is refused when that many are in flight
//!   already: `Too many concurrent requests in flight (count: N, allowed: M).` The slot is a
//!   [`Permit`], released when the activation's record has been handed to the store, on every
//!   path (success, failure, no runtime, a sequence's failed component). Components of a
//!   sequence each hold a slot while they run, as OpenWhisk counts each component activation
//!   in flight, but take it unchecked ([`Limiter::hold`]): a sequence that was admitted is never
//!   cut short by its own namespace's limit, and the sequence itself holds one slot throughout.
//!   So a running sequence shows as two in flight (itself and its current component).
//! - **Fires per minute**: trigger fires (API and alarm feed), in a per-minute bucket like
//!   invocations, with OpenWhisk's message for it (the same text: `Too many requests in the
//!   last minute ...`). The activations a fire starts count as invocations on top.
//!
//! Several replicas: the counters are this process's own, so each replica enforces
//! `ceil(limit / cluster_size)` ([`Limiter::share`]) and the messages name that share as
//! `allowed`. OpenWhisk divides by the number of controllers too (rounding down, after allowing
//! 20 % more for uneven balancing when there are several); rounding up keeps a limit of 1 at 1
//! and never gives the namespace less than its limit in total. With the sharding load
//! balancer a namespace's requests spread over the replicas, so the namespace as a whole gets
//! about its limit.
//!
//! Costs: one sharded-map read ([`DashMap`], no lock held across an await) and two or three
//! atomic operations per admission; a [`Permit`] is an `Arc` whose drop is one atomic
//! decrement. Per namespace seen: one small entry, kept for the limiter's lifetime (as long as
//! the scheduler).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use crate::store::NamespaceLimits;

/// Default of `--default-invocations-per-minute`: 120 000 (2 000 a second on average).
/// OpenWhisk ships 60, sized for activations that each take a container for 100 ms to seconds;
/// a warm wasm activation costs ~0.1–0.3 ms of scheduler and runtime CPU, a thousand or more
/// times less, so the same protection is a few thousand times the rate. It stops one namespace
/// from flooding the store with records at its full speed for long, and still lets `wisp bench`
/// run 32 clients for its default 10 s on one namespace (~5 300 invokes/s on the 2-core
/// development machine, ~53 000 in the minute) with 2× headroom.
pub const DEFAULT_INVOCATIONS_PER_MINUTE: u32 = 120_000;
/// Default of `--default-concurrent-invocations`: 64. OpenWhisk ships 30. What an activation in
/// flight holds (its memory reservation on a runtime, a pool slot, a task here) does not get
/// cheaper with wasm, so this stays close to OpenWhisk's: 64 is twice the 32 clients of the load
/// tests (which never hold more than 32) and caps a namespace that fires long-running
/// non-blocking activations at 64 at a time.
pub const DEFAULT_CONCURRENT_INVOCATIONS: u32 = 64;
/// Default of `--default-fires-per-minute`: 600 (10 a second). OpenWhisk ships 60. A fire costs
/// a store query for its rules and a record write, no wasm, so it is not a thousand times
/// cheaper than OpenWhisk's; 600 is far beyond what alarms (at most one tick a minute per cron
/// trigger) or webhooks need, and every activation a fire starts counts as an invocation on top.
pub const DEFAULT_FIRES_PER_MINUTE: u32 = 600;

const MINUTE_MS: u64 = 60_000;

/// Where the limiter reads the time (epoch ms): the wall clock, or a [`ManualClock`] in tests.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now_ms(&self) -> u64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        wisp_core::now_ms()
    }
}

/// A clock that moves only when told (tests of the per-minute windows).
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    pub fn new(now_ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: AtomicU64::new(now_ms),
        })
    }

    pub fn set(&self, now_ms: u64) {
        self.now.store(now_ms, Ordering::Release);
    }

    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }
}

/// The scheduler-wide defaults, for namespaces that have no limit of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitDefaults {
    pub invocations_per_minute: u32,
    pub concurrent_invocations: u32,
    pub fires_per_minute: u32,
}

impl Default for LimitDefaults {
    fn default() -> Self {
        LimitDefaults {
            invocations_per_minute: DEFAULT_INVOCATIONS_PER_MINUTE,
            concurrent_invocations: DEFAULT_CONCURRENT_INVOCATIONS,
            fires_per_minute: DEFAULT_FIRES_PER_MINUTE,
        }
    }
}

/// A namespace's limits in force (its own where set, else the defaults), for the namespace as a
/// whole; serialised with OpenWhisk's names, as the admin API answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveLimits {
    pub invocations_per_minute: u32,
    pub concurrent_invocations: u32,
    pub fires_per_minute: u32,
}

/// One of the three limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    InvocationsPerMinute,
    ConcurrentInvocations,
    FiresPerMinute,
}

impl LimitKind {
    pub const ALL: [LimitKind; 3] = [
        LimitKind::InvocationsPerMinute,
        LimitKind::ConcurrentInvocations,
        LimitKind::FiresPerMinute,
    ];

    /// OpenWhisk's name of the limit (the `limit` label of `wisp_throttled_total`).
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::InvocationsPerMinute => "invocationsPerMinute",
            LimitKind::ConcurrentInvocations => "concurrentInvocations",
            LimitKind::FiresPerMinute => "firesPerMinute",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A request refused by a limit (HTTP 429 `too_many_requests`). `count` and `allowed` are this
/// replica's (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub limit: LimitKind,
    pub count: u64,
    pub allowed: u64,
}

impl Throttled {
    /// OpenWhisk's message for it.
    pub fn message(&self) -> String {
        let Throttled { count, allowed, .. } = self;
        match self.limit {
            LimitKind::ConcurrentInvocations => format!(
                "Too many concurrent requests in flight (count: {count}, allowed: {allowed})."
            ),
            LimitKind::InvocationsPerMinute | LimitKind::FiresPerMinute => {
                format!(
                    "Too many requests in the last minute (count: {count}, allowed: {allowed})."
                )
            }
        }
    }
}

impl std::fmt::Display for Throttled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Throttled {}

/// A per-minute bucket in one word: the minute (epoch ms / 60 000) in the high 32 bits, its
/// count in the low 32.
#[derive(Debug, Default)]
struct Window(AtomicU64);

impl Window {
    /// Charges one request to `minute`; the count of the minute with it.
    fn hit(&self, minute: u64) -> u64 {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let (stored, count) = (current >> 32, current & 0xffff_ffff);
            // A clock that went back counts into the newer minute.
            let (minute, count) = if minute > stored {
                (minute, 1)
            } else {
                (stored, (count + 1).min(0xffff_ffff))
            };
            let next = (minute << 32) | count;
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return count,
                Err(actual) => current = actual,
            }
        }
    }
}

/// One namespace's counters.
#[derive(Debug, Default)]
struct Counters {
    invocations: Window,
    fires: Window,
    in_flight: AtomicU64,
    /// Refusals by [`LimitKind::index`], for `/metrics`.
    throttled: [AtomicU64; 3],
}

/// One slot of a namespace's concurrent invocations, held by an activation until its record is
/// handed to the store; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    counters: Arc<Counters>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The admission control of one scheduler. One per process (in the invoker); see the module
/// docs.
#[derive(Debug)]
pub struct Limiter {
    defaults: LimitDefaults,
    cluster_size: u64,
    clock: Arc<dyn Clock>,
    namespaces: DashMap<String, Arc<Counters>>,
}

impl Limiter {
    pub fn new(defaults: LimitDefaults, cluster_size: usize, clock: Arc<dyn Clock>) -> Limiter {
        Limiter {
            defaults,
            cluster_size: cluster_size.max(1) as u64,
            clock,
            namespaces: DashMap::new(),
        }
    }

    pub fn defaults(&self) -> LimitDefaults {
        self.defaults
    }

    /// The limits in force for a namespace whose user stores `stored` (`None`: no such user, or
    /// its limits could not be read: the defaults).
    pub fn effective(&self, stored: Option<&NamespaceLimits>) -> EffectiveLimits {
        let own = stored.copied().unwrap_or_default();
        EffectiveLimits {
            invocations_per_minute: own
                .invocations_per_minute
                .unwrap_or(self.defaults.invocations_per_minute),
            concurrent_invocations: own
                .concurrent_invocations
                .unwrap_or(self.defaults.concurrent_invocations),
            fires_per_minute: own
                .fires_per_minute
                .unwrap_or(self.defaults.fires_per_minute),
        }
    }

    /// This replica's share of a namespace-wide limit: `ceil(limit / cluster_size)`.
    pub fn share(&self, limit: u32) -> u64 {
        u64::from(limit).div_ceil(self.cluster_size)
    }

    fn counters(&self, namespace: &str) -> Arc<Counters> {
        if let Some(c) = self.namespaces.get(namespace) {
            return Arc::clone(&c);
        }
        Arc::clone(&self.namespaces.entry(namespace.to_string()).or_default())
    }

    fn refuse(counters: &Counters, limit: LimitKind, count: u64, allowed: u64) -> Throttled {
        counters.throttled[limit.index()].fetch_add(1, Ordering::Relaxed);
        Throttled {
            limit,
            count,
            allowed,
        }
    }

    fn minute(&self) -> u64 {
        self.clock.now_ms() / MINUTE_MS
    }

    /// Admits one activation of `namespace` under `limits`: charges the minute's invocations,
    /// then takes a concurrency slot. Refused: nothing is held (the minute's count keeps the
    /// charge, as in OpenWhisk).
    pub fn admit_invocation(
        &self,
        namespace: &str,
        limits: &EffectiveLimits,
    ) -> Result<Permit, Throttled> {
        let counters = self.counters(namespace);
        let allowed = self.share(limits.invocations_per_minute);
        let count = counters.invocations.hit(self.minute());
        if count > allowed {
            return Err(Self::refuse(
                &counters,
                LimitKind::InvocationsPerMinute,
                count,
                allowed,
            ));
        }
        let allowed = self.share(limits.concurrent_invocations);
        match counters
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < allowed).then_some(n + 1)
            }) {
            Ok(_) => Ok(Permit { counters }),
            Err(in_flight) => Err(Self::refuse(
                &counters,
                LimitKind::ConcurrentInvocations,
                in_flight,
                allowed,
            )),
        }
    }

    /// A slot for an activation that was admitted as part of another one (a sequence's
    /// component): counted in flight, never refused.
    pub fn hold(&self, namespace: &str) -> Permit {
        let counters = self.counters(namespace);
        counters.in_flight.fetch_add(1, Ordering::AcqRel);
        Permit { counters }
    }

    /// Admits one trigger fire of `namespace` under `limits`.
    pub fn admit_fire(&self, namespace: &str, limits: &EffectiveLimits) -> Result<(), Throttled> {
        let counters = self.counters(namespace);
        let allowed = self.share(limits.fires_per_minute);
        let count = counters.fires.hit(self.minute());
        if count > allowed {
            return Err(Self::refuse(
                &counters,
                LimitKind::FiresPerMinute,
                count,
                allowed,
            ));
        }
        Ok(())
    }

    /// Activations of `namespace` in flight on this replica.
    #[cfg(test)]
    fn in_flight(&self, namespace: &str) -> u64 {
        self.namespaces
            .get(namespace)
            .map_or(0, |c| c.in_flight.load(Ordering::Acquire))
    }

    /// Refused requests so far, per namespace and limit (only those refused at least once).
    pub fn throttled_counts(&self) -> Vec<(String, LimitKind, u64)> {
        let mut out = Vec::new();
        for entry in self.namespaces.iter() {
            for kind in LimitKind::ALL {
                let n = entry.value().throttled[kind.index()].load(Ordering::Relaxed);
                if n > 0 {
                    out.push((entry.key().clone(), kind, n));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(cluster_size: usize, clock: &Arc<ManualClock>) -> Limiter {
        let clock: Arc<dyn Clock> = clock.clone();
        Limiter::new(LimitDefaults::default(), cluster_size, clock)
    }

    fn limits(per_minute: u32, concurrent: u32, fires: u32) -> EffectiveLimits {
        EffectiveLimits {
            invocations_per_minute: per_minute,
            concurrent_invocations: concurrent,
            fires_per_minute: fires,
        }
    }

    #[test]
    fn the_minute_bucket_counts_refusals_and_resets_with_the_minute() {
        // 10 s into a minute.
        let clock = ManualClock::new(1_000 * MINUTE_MS + 10_000);
        let l = limiter(1, &clock);
        let lim = limits(3, 100, 1);
        let held: Vec<Permit> = (0..3)
            .map(|_| l.admit_invocation("a", &lim).expect("within the limit"))
            .collect();
        let refused = l.admit_invocation("a", &lim).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "Too many requests in the last minute (count: 4, allowed: 3)."
        );
        assert_eq!(
            l.admit_invocation("a", &lim).unwrap_err().count,
            5,
            "refused requests are charged too"
        );
        assert!(l.admit_invocation("b", &lim).is_ok(), "per namespace");
        // Still the same minute 49 s later.
        clock.advance(Duration::from_secs(49));
        assert!(l.admit_invocation("a", &lim).is_err());
        // The next minute starts from zero (a bucket, not a sliding window).
        clock.advance(Duration::from_secs(1));
        assert!(l.admit_invocation("a", &lim).is_ok());
        drop(held);
        let counts = l.throttled_counts();
        assert_eq!(
            counts,
            vec![("a".into(), LimitKind::InvocationsPerMinute, 3)]
        );
    }

    #[test]
    fn concurrency_counts_permits_until_they_drop() {
        let clock = ManualClock::new(0);
        let l = limiter(1, &clock);
        let lim = limits(1_000, 2, 1);
        let first = l.admit_invocation("a", &lim).unwrap();
        let second = l.admit_invocation("a", &lim).unwrap();
        let refused = l.admit_invocation("a", &lim).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "Too many concurrent requests in flight (count: 2, allowed: 2)."
        );
        assert_eq!(l.in_flight("a"), 2, "a refusal holds nothing");
        // Components are counted but never refused.
        let component = l.hold("a");
        assert_eq!(l.in_flight("a"), 3);
        drop(component);
        drop(first);
        let third = l.admit_invocation("a", &lim).expect("a slot was freed");
        drop((second, third));
        assert_eq!(l.in_flight("a"), 0);
    }

    #[test]
    fn fires_have_their_own_bucket() {
        let clock = ManualClock::new(0);
        let l = limiter(1, &clock);
        let lim = limits(1, 1, 2);
        l.admit_fire("a", &lim).unwrap();
        l.admit_fire("a", &lim).unwrap();
        let refused = l.admit_fire("a", &lim).unwrap_err();
        assert_eq!(refused.limit, LimitKind::FiresPerMinute);
        assert_eq!(
            refused.to_string(),
            "Too many requests in the last minute (count: 3, allowed: 2)."
        );
        assert!(l.admit_invocation("a", &lim).is_ok(), "invocations apart");
    }

    #[test]
    fn replicas_enforce_their_share_rounded_up() {
        let clock = ManualClock::new(0);
        let l = limiter(3, &clock);
        assert_eq!(l.share(10), 4);
        assert_eq!(l.share(9), 3);
        assert_eq!(l.share(1), 1, "never below 1");
        let lim = limits(5, 100, 1);
        for _ in 0..2 {
            let _ = l.admit_invocation("a", &lim).unwrap();
        }
        let refused = l.admit_invocation("a", &lim).unwrap_err();
        assert_eq!((refused.count, refused.allowed), (3, 2));
    }

    #[test]
    fn stored_limits_override_the_defaults_key_by_key() {
        let clock = ManualClock::new(0);
        let l = limiter(1, &clock);
        let d = LimitDefaults::default();
        assert_eq!(
            l.effective(None),
            limits(
                d.invocations_per_minute,
                d.concurrent_invocations,
                d.fires_per_minute
            )
        );
        let own = NamespaceLimits {
            concurrent_invocations: Some(3),
            ..NamespaceLimits::default()
        };
        assert_eq!(
            l.effective(Some(&own)),
            limits(d.invocations_per_minute, 3, d.fires_per_minute)
        );
    }

    #[test]
    fn a_clock_going_back_keeps_counting() {
        let clock = ManualClock::new(10 * MINUTE_MS);
        let l = limiter(1, &clock);
        let lim = limits(2, 100, 1);
        let _a = l.admit_invocation("a", &lim).unwrap();
        clock.set(9 * MINUTE_MS);
        let _b = l.admit_invocation("a", &lim).unwrap();
        assert!(l.admit_invocation("a", &lim).is_err());
    }
}
