//! Scheduling decisions of the balancer (seed 001's ShardingContainerPoolBalancer): home
//! runtime, progression, capacity, overload, exclusion, horizontal sharding, concurrency.

use std::sync::Arc;

use wisp_scheduler::balancer::{
    Balancer, BalancerConfig, Outcome, PingInfo, Progression, RuntimeId, RuntimeState,
    ScheduleError, hash_fqn,
};

fn urls(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("http://127.0.0.1:{}", 9000 + i))
        .collect()
}

fn balancer(n: usize, memory: u64, cluster_size: usize) -> Arc<Balancer> {
    let b = Balancer::new(BalancerConfig {
        default_user_memory_mb: memory,
        cluster_size,
        ..BalancerConfig::default()
    });
    b.set_runtimes(urls(n));
    b
}

fn id_at(b: &Balancer, index: usize) -> RuntimeId {
    b.snapshot()[index].id
}

fn index_of(b: &Balancer, id: RuntimeId) -> usize {
    b.snapshot().iter().find(|s| s.id == id).unwrap().index
}

/// An action name whose hash is 13 modulo 30, i.e. home 3 and step 3 over 10 runtimes.
fn fqn_like_hash_13() -> String {
    (0..)
        .map(|i| format!("guest/action{i}"))
        .find(|f| hash_fqn(f) % 30 == 13)
        .unwrap()
}

mod balancer_scheduling {
    use super::*;

    #[test]
    fn seed_worked_example_through_the_balancer() {
        let fqn = fqn_like_hash_13();
        let p = Progression::for_hash(hash_fqn(&fqn), 10).unwrap();
        assert_eq!((p.home, p.step), (3, 3));
        // One activation of 256 MB fits each runtime: they fill in progression order.
        let b = balancer(10, 256, 1);
        let leases: Vec<_> = (0..10)
            .map(|_| b.schedule(&fqn, 256, 1, &[]).unwrap())
            .collect();
        let order: Vec<usize> = leases.iter().map(|l| index_of(&b, l.runtime)).collect();
        assert_eq!(order, vec![3, 6, 9, 2, 5, 8, 1, 4, 7, 0]);
        assert!(leases.iter().all(|l| !l.forced));
    }

    #[test]
    fn home_keeps_winning_while_it_has_capacity() {
        let fqn = fqn_like_hash_13();
        let b = balancer(10, 1024, 1);
        let mut leases: Vec<_> = (0..4)
            .map(|_| b.schedule(&fqn, 256, 1, &[]).unwrap())
            .collect();
        assert!(leases.iter().all(|l| index_of(&b, l.runtime) == 3));
        assert_eq!(b.snapshot()[3].free_slots, 0);
        // Full: the next runtime in the progression (3 + 3).
        let next = b.schedule(&fqn, 256, 1, &[]).unwrap();
        assert_eq!(index_of(&b, next.runtime), 6);
        assert_eq!(leases[0].url, "http://127.0.0.1:9003");
        // A lease ends: home has room again and wins.
        leases.pop();
        let again = b.schedule(&fqn, 256, 1, &[]).unwrap();
        assert_eq!(index_of(&b, again.runtime), 3);
        // 1024 MB fits neither home (0 free) nor 6 (768 free): the third in the progression.
        let big = b.schedule(&fqn, 1024, 1, &[]).unwrap();
        assert_eq!(index_of(&b, big.runtime), 9);
    }

    #[test]
    fn release_is_idempotent_and_on_drop() {
        let b = balancer(1, 512, 1);
        let mut lease = b.schedule("guest/a", 256, 1, &[]).unwrap();
        assert_eq!(b.snapshot()[0].free_slots, 256);
        assert_eq!(b.snapshot()[0].in_flight, 1);
        lease.release();
        lease.release();
        assert_eq!(b.snapshot()[0].free_slots, 512);
        drop(lease);
        assert_eq!(b.snapshot()[0].free_slots, 512);
        assert_eq!(b.snapshot()[0].in_flight, 0);
        assert_eq!(b.snapshot()[0].scheduled_total, 1);
    }

    #[test]
    fn overload_picks_a_healthy_runtime_and_overcommits() {
        let b = balancer(3, 256, 1);
        let unhealthy = id_at(&b, 1);
        for _ in 0..3 {
            b.record(unhealthy, Outcome::SystemError);
        }
        assert_eq!(b.snapshot()[1].state, RuntimeState::Unhealthy);
        let _fill: Vec<_> = (0..2)
            .map(|i| b.schedule(&format!("guest/f{i}"), 256, 1, &[]).unwrap())
            .collect();
        let mut forced = Vec::new();
        for i in 0..60 {
            let lease = b.schedule(&format!("guest/x{i}"), 256, 1, &[]).unwrap();
            assert!(lease.forced);
            assert_ne!(lease.runtime, unhealthy);
            forced.push(lease);
        }
        let snap = b.snapshot();
        // Both healthy runtimes were picked (random choice) and are over their capacity.
        assert!(snap[0].free_slots < 0 && snap[2].free_slots < 0);
        assert_eq!(snap[1].free_slots, 256);
        assert_eq!(snap[0].forced_total + snap[2].forced_total, 60);
        drop(forced);
        let snap = b.snapshot();
        assert_eq!(snap[0].free_slots + snap[2].free_slots, 0);
    }

    #[test]
    fn activation_bigger_than_a_runtime_is_forced() {
        let b = balancer(2, 256, 1);
        let lease = b.schedule("guest/big", 512, 1, &[]).unwrap();
        assert!(lease.forced);
        assert_eq!(lease.memory_mb(), 512);
    }

    #[test]
    fn no_healthy_runtime_is_an_error() {
        let b = balancer(3, 1024, 1);
        for s in b.snapshot() {
            b.mark_offline(s.id);
        }
        assert_eq!(b.healthy_count(), 0);
        assert_eq!(
            b.schedule("guest/a", 256, 1, &[]).unwrap_err(),
            ScheduleError::NoHealthyRuntime
        );
        // Nothing was booked or queued.
        assert!(
            b.snapshot()
                .iter()
                .all(|s| s.in_flight == 0 && s.free_slots == 1024)
        );
    }

    #[test]
    fn unhealthy_and_offline_runtimes_get_no_user_work() {
        let b = balancer(4, 1 << 20, 1);
        let offline = id_at(&b, 0);
        let unhealthy = id_at(&b, 2);
        b.mark_offline(offline);
        for outcome in [
            Outcome::SystemError,
            Outcome::Success,
            Outcome::SystemError,
            Outcome::SystemError,
        ] {
            b.record(unhealthy, outcome);
        }
        assert_eq!(b.healthy_count(), 2);
        let leases: Vec<_> = (0..200)
            .map(|i| {
                b.schedule(&format!("ns{i}/action{i}"), 128, 1, &[])
                    .unwrap()
            })
            .collect();
        assert!(
            leases
                .iter()
                .all(|l| l.runtime != offline && l.runtime != unhealthy)
        );
        let used: std::collections::HashSet<_> = leases.iter().map(|l| l.runtime).collect();
        assert_eq!(used.len(), 2, "both healthy runtimes serve");
    }

    #[test]
    fn exclude_skips_a_runtime() {
        let fqn = fqn_like_hash_13();
        let b = balancer(10, 1024, 1);
        let home = id_at(&b, 3);
        let lease = b.schedule(&fqn, 256, 1, &[home]).unwrap();
        assert_eq!(index_of(&b, lease.runtime), 6);
        let lease = b.schedule(&fqn, 256, 1, &[home, id_at(&b, 6)]).unwrap();
        assert_eq!(index_of(&b, lease.runtime), 9);
        // Excluding every runtime leaves none to run it, even by overload.
        let all: Vec<RuntimeId> = b.snapshot().iter().map(|s| s.id).collect();
        assert_eq!(
            b.schedule(&fqn, 256, 1, &all).unwrap_err(),
            ScheduleError::NoHealthyRuntime
        );
        // Overload never picks an excluded runtime either.
        let small = balancer(2, 256, 1);
        let _full: Vec<_> = (0..2)
            .map(|_| small.schedule("guest/a", 256, 1, &[]).unwrap())
            .collect();
        let excluded = id_at(&small, 0);
        for _ in 0..20 {
            let l = small.schedule("guest/a", 256, 1, &[excluded]).unwrap();
            assert!(l.forced);
            assert_eq!(l.runtime, id_at(&small, 1));
        }
    }

    #[test]
    fn horizontal_sharding_halves_capacity() {
        let fqn = fqn_like_hash_13();
        let b = balancer(10, 2048, 2);
        assert!(
            b.snapshot()
                .iter()
                .all(|s| s.capacity_slots == 1024 && s.user_memory_mb == 2048)
        );
        let leases: Vec<_> = (0..5)
            .map(|_| b.schedule(&fqn, 256, 1, &[]).unwrap())
            .collect();
        let homes: Vec<usize> = leases.iter().map(|l| index_of(&b, l.runtime)).collect();
        assert_eq!(homes, vec![3, 3, 3, 3, 6]);

        // Alone again: the books are rebuilt from scratch with the full capacity.
        b.set_cluster_size(1);
        assert_eq!(b.cluster_size(), 1);
        assert!(
            b.snapshot()
                .iter()
                .all(|s| s.capacity_slots == 2048 && s.free_slots == 2048)
        );
        drop(leases);
        assert!(b.snapshot().iter().all(|s| s.free_slots == 2048));
        b.set_cluster_size(0);
        assert_eq!(b.cluster_size(), 1);
        b.set_cluster_size(4);
        assert!(b.snapshot().iter().all(|s| s.capacity_slots == 512));
    }

    #[test]
    fn concurrency_shares_a_memory_slot_set() {
        let b = balancer(2, 512, 1);
        let fqn = "guest/concurrent";
        let home = (hash_fqn(fqn) % 2) as usize;
        // concurrency 3, 256 MB: two slot-sets, six activations fit the home runtime.
        let mut leases: Vec<_> = (0..6)
            .map(|_| b.schedule(fqn, 256, 3, &[]).unwrap())
            .collect();
        assert!(
            leases
                .iter()
                .all(|l| index_of(&b, l.runtime) == home && !l.forced)
        );
        assert_eq!(b.snapshot()[home].free_slots, 0);
        assert_eq!(b.snapshot()[home].in_flight, 6);
        let seventh = b.schedule(fqn, 256, 3, &[]).unwrap();
        assert_eq!(index_of(&b, seventh.runtime), 1 - home);
        // One activation ends: its place in the slot-set is free, but its memory is not, so
        // another action (on home alone) only gets in by force...
        leases.pop();
        assert_eq!(b.snapshot()[home].free_slots, 0);
        let elsewhere = b.snapshot()[1 - home].id;
        let other = b.schedule("guest/other", 256, 1, &[elsewhere]).unwrap();
        assert!(other.forced);
        drop(other);
        // ...while the same action takes the free place without booking memory.
        let eighth = b.schedule(fqn, 256, 3, &[]).unwrap();
        assert_eq!(index_of(&b, eighth.runtime), home);
        assert!(!eighth.forced);
        assert_eq!(b.snapshot()[home].free_slots, 0);
        // Memory returns only when a whole slot-set is unused.
        leases.truncate(3);
        assert_eq!(b.snapshot()[home].free_slots, 0);
        drop(eighth);
        assert_eq!(b.snapshot()[home].free_slots, 256);
        drop(leases);
        drop(seventh);
        assert!(
            b.snapshot()
                .iter()
                .all(|s| s.free_slots == 512 && s.in_flight == 0)
        );
    }

    #[test]
    fn ping_sets_user_memory_and_resizes_books() {
        let b = balancer(2, 2048, 2);
        let id = id_at(&b, 0);
        let lease = b.schedule("guest/a", 256, 1, &[id_at(&b, 1)]).unwrap();
        assert_eq!(lease.runtime, id);
        assert!(!b.snapshot()[0].pinged);
        b.on_ping(
            id,
            Ok(PingInfo {
                status: "ok".into(),
                user_memory_mb: 4096,
                in_flight: 7,
            }),
        );
        let s = &b.snapshot()[0];
        assert!(s.pinged);
        assert_eq!(
            (s.user_memory_mb, s.capacity_slots, s.free_slots),
            (4096, 2048, 1792)
        );
        assert_eq!(s.reported_in_flight, Some(7));
        drop(lease);
        assert_eq!(b.snapshot()[0].free_slots, 2048);
        // The /health JSON of a runtime parses into PingInfo.
        let info: PingInfo =
            serde_json::from_str(r#"{"status":"ok","userMemory":1024,"inFlight":3}"#).unwrap();
        assert_eq!(
            info,
            PingInfo {
                status: "ok".into(),
                user_memory_mb: 1024,
                in_flight: 3
            }
        );
    }

    #[test]
    fn runtime_ids_are_stable_across_list_changes() {
        let b = balancer(3, 1024, 1);
        let before = b.snapshot();
        b.mark_offline(before[1].id);
        // New order, one removed, one added: known URLs keep id and state.
        b.set_runtimes(vec![
            urls(3)[2].clone(),
            format!("{}/", urls(3)[1]),
            "http://127.0.0.1:9100".into(),
            urls(3)[2].clone(),
        ]);
        let after = b.snapshot();
        assert_eq!(after.len(), 3);
        assert_eq!(after[0].id, before[2].id);
        assert_eq!(after[1].id, before[1].id);
        assert_eq!(after[1].state, RuntimeState::Offline);
        assert_eq!(after[2].state, RuntimeState::Healthy);
        assert!(after.iter().all(|s| s.id != before[0].id));
        assert_eq!(b.runtime_id("http://127.0.0.1:9100/"), Some(after[2].id));
        assert_eq!(b.runtime_id(&urls(3)[0]), None);
        // Calls naming a removed runtime are ignored.
        b.mark_offline(before[0].id);
        b.record(before[0].id, Outcome::SystemError);
        assert_eq!(b.healthy_count(), 2);
        // Removed and added again: same id, fresh state.
        b.remove_runtime(&urls(3)[1]);
        assert_eq!(b.len(), 2);
        b.add_runtime(urls(3)[1].clone());
        let again = b.snapshot();
        let back = again.iter().find(|s| s.url == urls(3)[1]).unwrap();
        assert_eq!(back.id, before[1].id);
        assert_eq!(back.state, RuntimeState::Healthy);
    }

    #[test]
    fn discovery_order_does_not_matter() {
        let found = [
            "http://10.1.0.7:8080",
            "http://10.1.0.3:8080",
            "http://10.1.0.5:8080",
        ];
        let a = Balancer::new(BalancerConfig::default());
        let b = Balancer::new(BalancerConfig::default());
        for url in found {
            a.add_runtime(url.to_string());
        }
        for url in found.iter().rev() {
            b.add_runtime(url.to_string());
        }
        a.add_runtime(found[0].to_string());
        let order = |x: &Balancer| x.snapshot().into_iter().map(|s| s.url).collect::<Vec<_>>();
        assert_eq!(order(&a), order(&b));
        assert_eq!(a.len(), 3);
        for i in 0..50 {
            let fqn = format!("guest/a{i}");
            let (la, lb) = (
                a.schedule(&fqn, 256, 1, &[]).unwrap(),
                b.schedule(&fqn, 256, 1, &[]).unwrap(),
            );
            assert_eq!(la.url, lb.url);
        }
    }

    #[test]
    fn unhealthy_at_three_of_ten_system_errors_not_two() {
        let b = balancer(1, 1024, 1);
        let id = id_at(&b, 0);
        for _ in 0..7 {
            b.record(id, Outcome::Success);
        }
        b.record(id, Outcome::SystemError);
        b.record(id, Outcome::SystemError);
        assert_eq!(b.snapshot()[0].state, RuntimeState::Healthy);
        assert_eq!(b.snapshot()[0].recent_system_errors, 2);
        assert!(b.schedule("guest/a", 128, 1, &[]).is_ok());
        b.record(id, Outcome::SystemError);
        assert_eq!(b.snapshot()[0].state, RuntimeState::Unhealthy);
        assert_eq!(
            b.schedule("guest/a", 128, 1, &[]).unwrap_err(),
            ScheduleError::NoHealthyRuntime
        );
        // Window [S x7, E, E, E]: 7 successes push the older successes out, the errors stay.
        for _ in 0..7 {
            b.record(id, Outcome::Success);
            assert_eq!(b.snapshot()[0].state, RuntimeState::Unhealthy);
        }
        // The 8th pushes the first error out of the window of 10: 2 left, healthy again.
        b.record(id, Outcome::Success);
        let s = &b.snapshot()[0];
        assert_eq!(
            (s.state, s.recent_system_errors, s.system_errors_total),
            (RuntimeState::Healthy, 2, 3)
        );
        assert!(b.schedule("guest/a", 128, 1, &[]).is_ok());
    }

    #[test]
    fn outcome_from_activation_status() {
        use wisp_core::Status;
        assert_eq!(Outcome::from(Status::InternalError), Outcome::SystemError);
        for ok in [
            Status::Success,
            Status::ApplicationError,
            Status::DeveloperError,
        ] {
            assert_eq!(Outcome::from(ok), Outcome::Success);
        }
    }

    #[test]
    fn offline_runtime_stays_offline_on_outcomes() {
        let b = balancer(1, 1024, 1);
        let id = id_at(&b, 0);
        b.mark_offline(id);
        b.record(id, Outcome::Success);
        assert_eq!(b.snapshot()[0].state, RuntimeState::Offline);
        b.on_ping(id, Ok(PingInfo::ok(1024)));
        assert_eq!(b.snapshot()[0].state, RuntimeState::Healthy);
    }
}
