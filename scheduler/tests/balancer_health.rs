//! Health supervision of runtimes in paused tokio time, with a fake prober: offline after
//! 10 s without a ping, back on the next ping, unhealthy at 3 of the last 10 system errors,
//! test activations until healthy again, and no user work for unhealthy or offline runtimes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use wisp_scheduler::balancer::{
    Balancer, BalancerConfig, Outcome, PingInfo, Prober, RuntimeId, RuntimeSnapshot, RuntimeState,
};

const A: &str = "http://127.0.0.1:9001";
const B: &str = "http://127.0.0.1:9002";

/// Answers pings and test activations as told, and counts them per URL.
struct FakeProber {
    /// Pings fail at once (connection refused).
    down: Mutex<HashSet<String>>,
    /// Pings never answer.
    silent: Mutex<HashSet<String>>,
    user_memory_mb: AtomicU64,
    tests_succeed: AtomicBool,
    pings: Mutex<HashMap<String, u64>>,
    tests: Mutex<HashMap<String, u64>>,
}

impl FakeProber {
    fn new() -> Arc<FakeProber> {
        Arc::new(FakeProber {
            down: Mutex::default(),
            silent: Mutex::default(),
            user_memory_mb: AtomicU64::new(2048),
            tests_succeed: AtomicBool::new(false),
            pings: Mutex::default(),
            tests: Mutex::default(),
        })
    }

    fn set_down(&self, url: &str, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(url.to_string());
        } else {
            set.remove(url);
        }
    }

    fn pings(&self, url: &str) -> u64 {
        self.pings.lock().unwrap().get(url).copied().unwrap_or(0)
    }

    fn tests(&self, url: &str) -> u64 {
        self.tests.lock().unwrap().get(url).copied().unwrap_or(0)
    }
}

impl Prober for FakeProber {
    async fn ping(&self, url: &str) -> Result<PingInfo, String> {
        *self
            .pings
            .lock()
            .unwrap()
            .entry(url.to_string())
            .or_default() += 1;
        if self.silent.lock().unwrap().contains(url) {
            std::future::pending::<()>().await;
        }
        if self.down.lock().unwrap().contains(url) {
            return Err("connection refused".into());
        }
        Ok(PingInfo {
            status: "ok".into(),
            user_memory_mb: self.user_memory_mb.load(Ordering::SeqCst),
            in_flight: 0,
        })
    }

    async fn test_activation(&self, url: &str) -> Result<(), String> {
        *self
            .tests
            .lock()
            .unwrap()
            .entry(url.to_string())
            .or_default() += 1;
        if self.tests_succeed.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("whisk internal error".into())
        }
    }
}

struct Setup {
    balancer: Arc<Balancer>,
    prober: Arc<FakeProber>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Setup {
    fn start(prober: Arc<FakeProber>) -> Setup {
        let balancer = Balancer::new(BalancerConfig::default());
        balancer.set_runtimes(vec![A.into(), B.into()]);
        let shutdown = CancellationToken::new();
        let task = balancer.spawn_health_task(Arc::clone(&prober), shutdown.clone());
        Setup {
            balancer,
            prober,
            shutdown,
            task,
        }
    }

    fn runtime(&self, url: &str) -> RuntimeSnapshot {
        self.balancer
            .snapshot()
            .into_iter()
            .find(|s| s.url == url)
            .unwrap()
    }

    fn id(&self, url: &str) -> RuntimeId {
        self.runtime(url).id
    }

    fn state(&self, url: &str) -> RuntimeState {
        self.runtime(url).state
    }

    /// Schedules `n` activations of distinct actions and returns the URLs they went to.
    fn user_work(&self, n: usize) -> HashSet<String> {
        (0..n)
            .map(|i| {
                self.balancer
                    .schedule(&format!("guest/action{i}"), 128, 1, &[])
                    .unwrap()
                    .url
                    .clone()
            })
            .collect()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

mod balancer_health {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn offline_after_ten_seconds_without_a_ping_and_not_before() {
        let prober = FakeProber::new();
        prober.set_down(A, true);
        let s = Setup::start(prober);
        sleep(Duration::from_millis(9_900)).await;
        assert!(s.prober.pings(A) >= 9, "A is pinged every second");
        assert_eq!(s.state(A), RuntimeState::Healthy);
        assert_eq!(s.state(B), RuntimeState::Healthy);

        sleep(Duration::from_millis(200)).await;
        assert_eq!(s.state(A), RuntimeState::Offline);
        assert_eq!(s.state(B), RuntimeState::Healthy);
        assert!(s.runtime(B).since_last_ping_ms <= 1_000);
        assert_eq!(s.balancer.healthy_count(), 1);
        assert_eq!(s.user_work(50), HashSet::from([B.to_string()]));

        // Back online on the next ping.
        s.prober.set_down(A, false);
        sleep(Duration::from_millis(1_000)).await;
        assert_eq!(s.state(A), RuntimeState::Healthy);
        assert_eq!(
            s.user_work(50),
            HashSet::from([A.to_string(), B.to_string()])
        );
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_runtime_that_never_answers_goes_offline() {
        let prober = FakeProber::new();
        prober.silent.lock().unwrap().insert(B.to_string());
        let s = Setup::start(prober);
        sleep(Duration::from_millis(9_500)).await;
        assert_eq!(s.state(B), RuntimeState::Healthy);
        sleep(Duration::from_millis(1_000)).await;
        assert_eq!(s.state(B), RuntimeState::Offline);
        assert_eq!(s.state(A), RuntimeState::Healthy);
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn refused_connection_is_offline_at_once_and_back_on_next_ping() {
        let s = Setup::start(FakeProber::new());
        sleep(Duration::from_millis(100)).await;
        s.balancer.mark_offline(s.id(A));
        assert_eq!(s.state(A), RuntimeState::Offline);
        assert_eq!(s.user_work(30), HashSet::from([B.to_string()]));
        sleep(Duration::from_millis(1_000)).await;
        assert_eq!(s.state(A), RuntimeState::Healthy);
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn pings_announce_the_capacity() {
        let prober = FakeProber::new();
        prober.user_memory_mb.store(4096, Ordering::SeqCst);
        let s = Setup::start(prober);
        assert_eq!(
            s.runtime(A).capacity_slots,
            2048,
            "default until the first ping"
        );
        sleep(Duration::from_millis(100)).await;
        let a = s.runtime(A);
        assert!(a.pinged);
        assert_eq!(
            (a.user_memory_mb, a.capacity_slots, a.free_slots),
            (4096, 4096, 4096)
        );
        s.balancer.set_cluster_size(2);
        assert_eq!(s.runtime(A).capacity_slots, 2048);
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn two_system_errors_keep_it_healthy_and_untested() {
        let s = Setup::start(FakeProber::new());
        s.balancer.record(s.id(A), Outcome::SystemError);
        s.balancer.record(s.id(A), Outcome::SystemError);
        sleep(Duration::from_secs(5)).await;
        assert_eq!(s.state(A), RuntimeState::Healthy);
        assert_eq!(s.prober.tests(A), 0);
        assert!(s.user_work(50).contains(A));
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn unhealthy_runtime_is_tested_until_healthy_again() {
        let s = Setup::start(FakeProber::new());
        for _ in 0..3 {
            s.balancer.record(s.id(A), Outcome::SystemError);
        }
        assert_eq!(s.state(A), RuntimeState::Unhealthy);
        assert_eq!(s.user_work(50), HashSet::from([B.to_string()]));

        // Failing test activations: one per ping interval, each recorded as a system error.
        sleep(Duration::from_millis(3_500)).await;
        let failed = s.prober.tests(A);
        assert!(
            (3..=5).contains(&failed),
            "{failed} test activations in 3.5 s"
        );
        assert_eq!(s.prober.tests(B), 0);
        let a = s.runtime(A);
        assert_eq!(a.state, RuntimeState::Unhealthy);
        assert_eq!(a.test_activations_total, failed);
        assert_eq!(a.system_errors_total, 3 + failed);
        assert_eq!(a.scheduled_total, 0, "no user work while unhealthy");
        assert_eq!(s.user_work(50), HashSet::from([B.to_string()]));

        // Tests succeed again: successes are sent back to back until fewer than 3 of the
        // last 10 outcomes are system errors (8 successes push the errors out).
        s.prober.tests_succeed.store(true, Ordering::SeqCst);
        sleep(Duration::from_millis(1_100)).await;
        let a = s.runtime(A);
        assert_eq!(a.state, RuntimeState::Healthy);
        assert_eq!(a.recent_system_errors, 2);
        assert_eq!(s.prober.tests(A), failed + 8);
        assert!(s.user_work(50).contains(A));

        // Healthy: no more tests.
        sleep(Duration::from_secs(5)).await;
        assert_eq!(s.prober.tests(A), failed + 8);
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn offline_runtime_is_not_tested_and_comes_back_unhealthy() {
        let s = Setup::start(FakeProber::new());
        for _ in 0..3 {
            s.balancer.record(s.id(A), Outcome::SystemError);
        }
        s.prober.set_down(A, true);
        sleep(Duration::from_secs(11)).await;
        assert_eq!(s.state(A), RuntimeState::Offline);
        let tests = s.prober.tests(A);
        sleep(Duration::from_secs(10)).await;
        assert_eq!(s.prober.tests(A), tests, "no test activation while offline");
        assert_eq!(s.user_work(50), HashSet::from([B.to_string()]));

        // It pings again but its window still holds 3+ system errors: Unhealthy, tested,
        // and Healthy once the tests succeed.
        s.prober.tests_succeed.store(true, Ordering::SeqCst);
        s.prober.set_down(A, false);
        sleep(Duration::from_millis(1_000)).await;
        assert_eq!(s.state(A), RuntimeState::Healthy);
        assert!(s.prober.tests(A) > tests);
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn runtimes_added_later_are_supervised_and_shutdown_stops_it() {
        let s = Setup::start(FakeProber::new());
        let c = "http://127.0.0.1:9003";
        s.balancer.add_runtime(c.to_string());
        s.prober.set_down(c, true);
        sleep(Duration::from_millis(10_500)).await;
        assert_eq!(s.state(c), RuntimeState::Offline);
        assert!(s.prober.pings(c) >= 10);
        s.balancer.remove_runtime(A);
        let pings_a = s.prober.pings(A);
        sleep(Duration::from_secs(3)).await;
        assert_eq!(
            s.prober.pings(A),
            pings_a,
            "a removed runtime is no longer pinged"
        );

        let prober = Arc::clone(&s.prober);
        s.stop().await;
        let pings_b = prober.pings(B);
        sleep(Duration::from_secs(5)).await;
        assert_eq!(prober.pings(B), pings_b, "no ping after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_ping_interval_is_treated_as_one_millisecond() {
        let balancer = Balancer::new(BalancerConfig {
            ping_interval: Duration::ZERO,
            ..BalancerConfig::default()
        });
        balancer.set_runtimes(vec![A.into()]);
        let prober = FakeProber::new();
        let shutdown = CancellationToken::new();
        let task = balancer.spawn_health_task(Arc::clone(&prober), shutdown.clone());
        sleep(Duration::from_millis(10)).await;
        let pings = prober.pings(A);
        assert!((10..=11).contains(&pings), "{pings} pings in 10 ms");
        shutdown.cancel();
        task.await.unwrap();
    }
}
