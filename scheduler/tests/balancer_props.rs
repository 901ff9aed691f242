//! Property tests of the balancer's stepping and capacity books (seed 001's
//! ShardingContainerPoolBalancer): every runtime is probed once, every replica computes the same
//! order, slots only overflow through the overload strategy, and releasing restores capacity.

use std::collections::HashSet;

use proptest::prelude::*;
use wisp_scheduler::balancer::{
    Balancer, BalancerConfig, Lease, Progression, RuntimeSnapshot, ScheduleError, hash_fqn,
    pairwise_coprime_numbers_until, stepping::gcd,
};

fn urls(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("http://10.0.0.{i}:8080")).collect()
}

/// A balancer over `n` runtimes of `memory` MB each (as if they had pinged it).
fn balancer(n: usize, memory: u64) -> std::sync::Arc<Balancer> {
    let b = Balancer::new(BalancerConfig {
        default_user_memory_mb: memory,
        ..BalancerConfig::default()
    });
    b.set_runtimes(urls(n));
    b
}

fn index_of(snapshot: &[RuntimeSnapshot], lease: &Lease) -> usize {
    snapshot
        .iter()
        .find(|s| s.id == lease.runtime)
        .map(|s| s.index)
        .expect("lease names a runtime in the list")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn balancer_progression_visits_every_runtime_once(n in 1usize..=64, hash in any::<u64>()) {
        let p = Progression::for_hash(hash, n).unwrap();
        prop_assert_eq!(p.home, (hash % n as u64) as usize);
        let order: Vec<usize> = p.indices().collect();
        prop_assert_eq!(order.len(), n);
        prop_assert_eq!(order[0], p.home);
        let distinct: HashSet<usize> = order.iter().copied().collect();
        prop_assert_eq!(distinct.len(), n);
        prop_assert!(order.iter().all(|&i| i < n));
    }

    #[test]
    fn balancer_step_sizes_are_pairwise_coprime(n in 1usize..=64) {
        let steps = pairwise_coprime_numbers_until(n);
        prop_assert_eq!(steps[0], 1);
        for (i, &a) in steps.iter().enumerate() {
            prop_assert!(a >= 1 && a <= n);
            prop_assert_eq!(gcd(a, n), 1, "step {} not coprime to {}", a, n);
            for &b in &steps[i + 1..] {
                prop_assert_eq!(gcd(a, b), 1, "steps {} and {} share a factor", a, b);
            }
        }
        // Maximal: every number left out is not coprime to n or to one chosen before it.
        for c in 1..=n {
            if !steps.contains(&c) {
                prop_assert!(gcd(c, n) != 1 || steps.iter().any(|&s| s < c && gcd(s, c) != 1));
            }
        }
    }

    /// Two replicas built independently walk the runtimes in the same order for an action, and
    /// that order is the progression of its hash: with room for exactly one activation per
    /// runtime, the k-th activation lands on the k-th runtime of the progression.
    #[test]
    fn balancer_replicas_agree_on_home_and_order(n in 1usize..=64, fqn in "[a-z]{1,8}/[a-z0-9_-]{1,16}") {
        let expected: Vec<usize> = Progression::for_hash(hash_fqn(&fqn), n).unwrap().indices().collect();
        let mut orders = Vec::new();
        for _replica in 0..2 {
            let b = balancer(n, 256);
            let snapshot = b.snapshot();
            let leases: Vec<Lease> = (0..n).map(|_| b.schedule(&fqn, 256, 1, &[]).unwrap()).collect();
            prop_assert!(leases.iter().all(|l| !l.forced));
            orders.push(leases.iter().map(|l| index_of(&snapshot, l)).collect::<Vec<_>>());
            // Everything is full now: the next one is the overload strategy's.
            let overload = b.schedule(&fqn, 256, 1, &[]).unwrap();
            prop_assert!(overload.forced);
        }
        prop_assert_eq!(&orders[0], &expected);
        prop_assert_eq!(&orders[1], &expected);
    }

    /// Random schedules and releases: a non-forced lease never takes a runtime over its
    /// capacity, overload only happens when no runtime had room, and releasing every lease
    /// restores the full capacity.
    #[test]
    fn balancer_slots_bounded_and_restored(
        n in 1usize..=8,
        memory in prop::sample::select(vec![256u64, 512, 1024]),
        ops in prop::collection::vec((0u8..4, 0usize..6, prop::sample::select(vec![128u64, 256, 512]), 1u32..=4), 1..120),
    ) {
        let b = balancer(n, memory);
        let mut leases: Vec<Lease> = Vec::new();
        let mut ever_forced = false;
        for (op, action, mem, concurrency) in ops {
            if op == 0 && !leases.is_empty() {
                leases.swap_remove(action % leases.len());
                continue;
            }
            let before = b.snapshot();
            let lease = b.schedule(&format!("guest/action{action}"), mem, concurrency, &[]).unwrap();
            let after = b.snapshot();
            let i = index_of(&after, &lease);
            if lease.forced {
                // Overload: nobody had `mem` free slots (a free place in an open slot-set of
                // the same action would have been taken first).
                prop_assert!(before.iter().all(|s| s.free_slots < mem as i64));
            } else {
                // Either it booked `mem` slots and stayed within capacity, or (concurrency > 1)
                // it took a free place in a slot-set already paid for and booked nothing.
                let booked = before[i].free_slots - after[i].free_slots;
                prop_assert!(
                    (booked == mem as i64 && after[i].free_slots >= 0) || (concurrency > 1 && booked == 0),
                    "non-forced lease overcommitted {:?} (booked {})", after[i], booked
                );
                prop_assert!(after[i].free_slots <= after[i].capacity_slots as i64);
            }
            ever_forced |= lease.forced;
            leases.push(lease);
            // (A slot-set opened by force may outlive its forced lease, so only until then.)
            if !ever_forced {
                prop_assert!(after.iter().all(|s| s.free_slots >= 0));
            }
        }
        drop(leases);
        for s in b.snapshot() {
            prop_assert_eq!(s.free_slots, s.capacity_slots as i64);
            prop_assert_eq!(s.in_flight, 0);
        }
    }
}

#[test]
fn balancer_no_runtime_is_an_error() {
    let b = Balancer::new(BalancerConfig::default());
    assert_eq!(
        b.schedule("guest/a", 256, 1, &[]).unwrap_err(),
        ScheduleError::NoHealthyRuntime
    );
}
