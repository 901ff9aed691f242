//! The memory budget: every activation reserves its `limits.memory` MB of the runtime's
//! `--user-memory` before it is instantiated and returns it when its store is dropped. The
//! runtime never holds more reservations than the budget.
//!
//! # Who goes next
//!
//! When the budget is spent, activations wait in one FIFO queue per namespace. Each time memory
//! is returned the queues are served round-robin between namespaces, the namespace that holds
//! the least memory first (ties broken by round-robin order): a tenant with many activations
//! running cannot keep a tenant with none waiting behind it.
//!
//! A namespace may hold at most `max_namespace_mb` (the `--max-namespace-share` of the budget):
//! the rest stays free for other tenants, so one tenant flooding 5 s loops leaves room for
//! another tenant's `hello` to start at once. A namespace that holds nothing may always take one
//! activation as large as the whole budget (else an action of 2048 MB could never run on a
//! 2048 MB runtime at share 0.5). A namespace at its cap is skipped; other namespaces are
//! served past it.
//!
//! # Worked example
//!
//! Budget 2048 MB, share 0.5 (cap 1024 MB), activations of 256 MB. Tenant A sends 10 loops:
//! four are admitted (1024 MB, A's cap), six wait in A's queue. Tenant B sends a `hello`: A's
//! head is at A's cap and is skipped, 1024 MB are free, B's `hello` starts at once. When a loop
//! ends A's next loop starts.
//!
//! # Waiting is bounded
//!
//! [`MemoryBudget::reserve`] takes a deadline (the activation's own timeout): past it the waiter
//! leaves its queue holding nothing and gets [`AdmitError::TimedOut`]. Dropping the future
//! (the client went away) also leaves the queue; a grant that raced with the timeout or the
//! drop is returned, never leaked.
//!
//! # Known caveats
//!
//! - No overtaking on the budget: when the namespace chosen next does not fit in what is free,
//!   nobody is admitted until enough is returned, even if a smaller activation of another
//!   namespace would fit. This keeps large activations from starving; the namespace cap keeps
//!   the wait short for everyone else.
//! - The reservation is the action's *limit*, not what it uses: a 256 MB `hello` that touches
//!   1 MB still books 256 MB (as OpenWhisk's invoker books a container's memory).
//!
//! Cost: an uncontended reserve/release is one mutex lock and a few integer updates; a wait
//! costs a oneshot channel.

use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Why a reservation was not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The activation needs more than the whole budget: it could never run here.
    #[error(
        "The action's memory limit of {memory_mb} MB exceeds this runtime's memory budget of {budget_mb} MB."
    )]
    TooLarge { memory_mb: u64, budget_mb: u64 },
    /// The deadline passed while waiting for memory.
    #[error("no memory was granted within {waited:?}")]
    TimedOut { waited: Duration },
}

/// Gauges the budget keeps current (unregistered ones in unit tests).
#[derive(Clone, Debug, Default)]
pub struct BudgetGauges {
    /// Bytes reserved by running activations.
    pub reserved_bytes: Gauge,
    /// Activations waiting for memory.
    pub waiting: Gauge,
}

/// The runtime's memory budget and its fair queue. Shared behind an `Arc`; lives as long as the
/// [`Runtime`](crate::Runtime).
#[derive(Debug)]
pub struct MemoryBudget {
    budget_mb: u64,
    max_namespace_mb: u64,
    state: Mutex<State>,
    gauges: BudgetGauges,
}

#[derive(Debug, Default)]
struct State {
    reserved_mb: u64,
    /// MB held per namespace (entries at 0 are removed).
    held: HashMap<Arc<str>, u64>,
    /// The waiters of each namespace, FIFO.
    queues: HashMap<Arc<str>, VecDeque<Waiter>>,
    /// Namespaces with waiters, in round-robin order (served ones move to the back).
    order: VecDeque<Arc<str>>,
    waiting: usize,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    mb: u64,
    tx: oneshot::Sender<()>,
}

/// Memory held by one activation; returned to the budget (and the next waiter admitted) on drop.
#[derive(Debug)]
#[must_use = "the memory is returned when the reservation is dropped"]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    namespace: Arc<str>,
    mb: u64,
}

impl Reservation {
    /// MB held.
    pub fn mb(&self) -> u64 {
        self.mb
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut st = self.budget.lock();
        st.release(&self.namespace, self.mb);
        self.budget.dispatch(&mut st);
        self.budget.publish(&st);
    }
}

/// Removes a waiter from its queue if the wait ends without the grant being taken (timeout, or
/// the future dropped); a grant already sent is returned.
struct Waiting<'a> {
    budget: &'a Arc<MemoryBudget>,
    namespace: Arc<str>,
    id: u64,
    mb: u64,
    armed: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut st = self.budget.lock();
        let removed = match st.queues.get_mut(&self.namespace) {
            Some(q) => match q.iter().position(|w| w.id == self.id) {
                Some(pos) => {
                    q.remove(pos);
                    true
                }
                None => false,
            },
            None => false,
        };
        if removed {
            st.waiting -= 1;
            if st
                .queues
                .get(&self.namespace)
                .is_some_and(VecDeque::is_empty)
            {
                st.queues.remove(&self.namespace);
                st.order.retain(|n| n != &self.namespace);
            }
        } else {
            // Granted while we stopped waiting: give it back.
            st.release(&self.namespace, self.mb);
        }
        // Either way the head of the line may have changed.
        self.budget.dispatch(&mut st);
        self.budget.publish(&st);
    }
}

impl State {
    fn held(&self, ns: &str) -> u64 {
        self.held.get(ns).copied().unwrap_or(0)
    }

    fn take(&mut self, ns: &Arc<str>, mb: u64) {
        self.reserved_mb += mb;
        match self.held.get_mut(&**ns) {
            Some(h) => *h += mb,
            None => {
                self.held.insert(ns.clone(), mb);
            }
        }
    }

    fn release(&mut self, ns: &str, mb: u64) {
        self.reserved_mb -= mb;
        if let Some(h) = self.held.get_mut(ns) {
            *h -= mb;
            if *h == 0 {
                self.held.remove(ns);
            }
        }
    }
}

impl MemoryBudget {
    /// A budget of `budget_mb`, of which one namespace may hold `max_namespace_share` (clamped
    /// to `(0, 1]`; at least 1 MB).
    pub fn new(budget_mb: u64, max_namespace_share: f64, gauges: BudgetGauges) -> Self {
        let share = if max_namespace_share.is_finite() && max_namespace_share > 0.0 {
            max_namespace_share.min(1.0)
        } else {
            1.0
        };
        let max_namespace_mb = ((budget_mb as f64 * share).floor() as u64).max(1);
        MemoryBudget {
            budget_mb,
            max_namespace_mb,
            state: Mutex::new(State::default()),
            gauges,
        }
    }

    pub fn budget_mb(&self) -> u64 {
        self.budget_mb
    }

    /// Most MB one namespace may hold (but see the module docs: a namespace holding nothing may
    /// take one activation up to the whole budget).
    pub fn max_namespace_mb(&self) -> u64 {
        self.max_namespace_mb
    }

    /// MB reserved now.
    pub fn reserved_mb(&self) -> u64 {
        self.lock().reserved_mb
    }

    /// Activations waiting for memory now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    /// MB `namespace` holds now.
    pub fn held_by(&self, namespace: &str) -> u64 {
        self.lock().held(namespace)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only integers behind: keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fits_namespace(&self, st: &State, ns: &str, mb: u64) -> bool {
        let held = st.held(ns);
        held == 0 || held + mb <= self.max_namespace_mb
    }

    /// Reserves `mb` for an activation of `namespace`, waiting (fairly, see the module docs)
    /// until `deadline` at most.
    pub async fn reserve(
        self: &Arc<Self>,
        namespace: &str,
        mb: u64,
        deadline: Instant,
    ) -> Result<Reservation, AdmitError> {
        if mb > self.budget_mb {
            return Err(AdmitError::TooLarge {
                memory_mb: mb,
                budget_mb: self.budget_mb,
            });
        }
        let started = Instant::now();
        let ns: Arc<str> = Arc::from(namespace);
        let (id, mut rx) = {
            let mut st = self.lock();
            if st.waiting == 0
                && st.reserved_mb + mb <= self.budget_mb
                && self.fits_namespace(&st, namespace, mb)
            {
                st.take(&ns, mb);
                self.publish(&st);
                return Ok(self.granted(ns, mb));
            }
            let (tx, rx) = oneshot::channel();
            let id = st.next_id;
            st.next_id += 1;
            match st.queues.get_mut(&ns) {
                Some(q) => q.push_back(Waiter { id, mb, tx }),
                None => {
                    st.queues
                        .insert(ns.clone(), VecDeque::from([Waiter { id, mb, tx }]));
                    st.order.push_back(ns.clone());
                }
            }
            st.waiting += 1;
            self.dispatch(&mut st);
            self.publish(&st);
            (id, rx)
        };
        let mut waiting = Waiting {
            budget: self,
            namespace: ns.clone(),
            id,
            mb,
            armed: true,
        };
        let granted = match tokio::time::timeout_at(deadline, &mut rx).await {
            Ok(Ok(())) => true,
            // The sender is dropped only with the budget; treat it as not granted.
            Ok(Err(_)) => false,
            // A grant may have raced with the deadline: take it rather than waste it.
            Err(_elapsed) => rx.try_recv().is_ok(),
        };
        if granted {
            waiting.armed = false;
            Ok(self.granted(ns, mb))
        } else {
            drop(waiting);
            Err(AdmitError::TimedOut {
                waited: started.elapsed(),
            })
        }
    }

    fn granted(self: &Arc<Self>, namespace: Arc<str>, mb: u64) -> Reservation {
        Reservation {
            budget: self.clone(),
            namespace,
            mb,
        }
    }

    /// Admits waiters while the one chosen next fits.
    fn dispatch(&self, st: &mut State) {
        while st.waiting > 0 {
            // The namespace holding the least memory among those whose head fits their cap;
            // the first in round-robin order among equals.
            let mut best: Option<(usize, u64)> = None;
            for (i, ns) in st.order.iter().enumerate() {
                let Some(head) = st.queues.get(ns).and_then(VecDeque::front) else {
                    continue;
                };
                if !self.fits_namespace(st, ns, head.mb) {
                    continue;
                }
                let held = st.held(ns);
                if best.is_none_or(|(_, b)| held < b) {
                    best = Some((i, held));
                }
            }
            let Some((i, _)) = best else { return };
            let ns = st.order[i].clone();
            let Some(q) = st.queues.get_mut(&ns) else {
                return;
            };
            let Some(head_mb) = q.front().map(|w| w.mb) else {
                return;
            };
            if st.reserved_mb + head_mb > self.budget_mb {
                return;
            }
            let Some(waiter) = q.pop_front() else { return };
            let now_empty = q.is_empty();
            st.waiting -= 1;
            let _ = st.order.remove(i);
            if now_empty {
                st.queues.remove(&ns);
            } else {
                st.order.push_back(ns.clone());
            }
            // Taken even if the waiter's receiver is gone: its `Waiting` guard has not run yet
            // (it would have removed the waiter under this lock), and when it runs it finds the
            // waiter gone and returns exactly this grant.
            st.take(&ns, waiter.mb);
            let _ = waiter.tx.send(());
        }
    }

    fn publish(&self, st: &State) {
        self.gauges
            .reserved_bytes
            .set(i64::try_from(st.reserved_mb << 20).unwrap_or(i64::MAX));
        self.gauges
            .waiting
            .set(i64::try_from(st.waiting).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    fn budget(mb: u64, share: f64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget::new(mb, share, BudgetGauges::default()))
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    type Pending = Pin<Box<dyn Future<Output = Result<Reservation, AdmitError>> + Send>>;

    /// Starts a reservation and polls it once, so it is queued in call order.
    fn queue(b: &Arc<MemoryBudget>, ns: &'static str, mb: u64) -> Pending {
        let b = b.clone();
        let mut fut: Pending = Box::pin(async move { b.reserve(ns, mb, far()).await });
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            fut.as_mut().poll(&mut cx).is_pending(),
            "{ns}/{mb} was admitted at once"
        );
        fut
    }

    /// Polls every pending reservation once; returns the indexes admitted (in index order).
    fn admitted(pending: &mut [Option<Pending>], held: &mut Vec<Reservation>) -> Vec<usize> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(fut) = slot
                && let Poll::Ready(r) = fut.as_mut().poll(&mut cx)
            {
                held.push(r.expect("granted"));
                out.push(i);
                *slot = None;
            }
        }
        out
    }

    #[tokio::test]
    async fn admits_at_once_while_it_fits_and_never_overcommits() {
        let b = budget(1024, 1.0);
        let r1 = b.reserve("a", 512, far()).await.unwrap();
        let r2 = b.reserve("b", 512, far()).await.unwrap();
        assert_eq!(b.reserved_mb(), 1024);
        let mut pending = vec![Some(queue(&b, "c", 1))];
        let mut held = Vec::new();
        assert!(admitted(&mut pending, &mut held).is_empty());
        assert_eq!(b.waiting(), 1);
        drop(r1);
        assert_eq!(admitted(&mut pending, &mut held), vec![0]);
        assert_eq!(b.reserved_mb(), 513);
        drop(r2);
        drop(held);
        assert_eq!(b.reserved_mb(), 0);
        assert_eq!(b.waiting(), 0);
    }

    #[tokio::test]
    async fn namespaces_are_served_round_robin_and_fifo_within_one() {
        let b = budget(100, 1.0);
        let blocker = b.reserve("x", 100, far()).await.unwrap();
        // a1 a2 a3 b1 b2 c1, each needing the whole budget, so one runs at a time.
        let order = [
            ("a", "a1"),
            ("a", "a2"),
            ("a", "a3"),
            ("b", "b1"),
            ("b", "b2"),
            ("c", "c1"),
        ];
        let mut pending: Vec<Option<Pending>> = order
            .iter()
            .map(|(ns, _)| Some(queue(&b, ns, 100)))
            .collect();
        let mut held = Vec::new();
        drop(blocker);
        let mut served = Vec::new();
        for _ in 0..order.len() {
            let now = admitted(&mut pending, &mut held);
            assert_eq!(now.len(), 1, "exactly one fits at a time");
            served.push(order[now[0]].1);
            assert!(b.reserved_mb() <= 100);
            held.clear(); // it ends: the next one is admitted
        }
        assert_eq!(served, ["a1", "b1", "c1", "a2", "b2", "a3"]);
        assert_eq!(b.reserved_mb(), 0);
    }

    #[tokio::test]
    async fn the_namespace_holding_less_goes_first() {
        let b = budget(300, 1.0);
        let a_run = b.reserve("a", 100, far()).await.unwrap();
        let a_run2 = b.reserve("a", 100, far()).await.unwrap();
        let x = b.reserve("x", 100, far()).await.unwrap();
        // A queued first, B second; when 100 MB come back, B (holding nothing) goes first.
        let mut pending = vec![Some(queue(&b, "a", 100)), Some(queue(&b, "b", 100))];
        let mut held = Vec::new();
        drop(x);
        assert_eq!(admitted(&mut pending, &mut held), vec![1]);
        drop(a_run);
        assert_eq!(admitted(&mut pending, &mut held), vec![0]);
        drop(a_run2);
    }

    #[tokio::test]
    async fn one_namespace_cannot_take_more_than_its_share() {
        let b = budget(1000, 0.5);
        assert_eq!(b.max_namespace_mb(), 500);
        let a: Vec<_> = futures::future::join_all((0..2).map(|_| b.reserve("a", 250, far())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // A is at its cap: its next one waits although half the budget is free...
        let mut pending = vec![Some(queue(&b, "a", 250))];
        let mut held = Vec::new();
        assert!(admitted(&mut pending, &mut held).is_empty());
        // ... and B is served past A's waiting head at once.
        let b1 = b.reserve("b", 250, far()).await.unwrap();
        let b2 = b.reserve("b", 250, far()).await.unwrap();
        assert_eq!(b.reserved_mb(), 1000);
        assert_eq!(b.held_by("a"), 500);
        drop(b1);
        drop(b2);
        // The budget has room again but A is still at its cap.
        assert!(admitted(&mut pending, &mut held).is_empty());
        drop(a);
        assert_eq!(admitted(&mut pending, &mut held), vec![0]);
        assert_eq!(b.held_by("a"), 250);
    }

    #[tokio::test]
    async fn a_namespace_holding_nothing_may_take_one_activation_over_its_share() {
        let b = budget(2048, 0.5);
        let big = b.reserve("a", 2048, far()).await.unwrap();
        assert_eq!(b.reserved_mb(), 2048);
        drop(big);
        let first = b.reserve("a", 1536, far()).await.unwrap();
        let mut pending = vec![Some(queue(&b, "a", 1))];
        let mut held = Vec::new();
        assert!(
            admitted(&mut pending, &mut held).is_empty(),
            "over its share"
        );
        drop(first);
        assert_eq!(admitted(&mut pending, &mut held), vec![0]);
    }

    #[tokio::test]
    async fn more_than_the_budget_is_refused_at_once() {
        let b = budget(1024, 1.0);
        let e = b.reserve("a", 2048, far()).await.unwrap_err();
        assert_eq!(
            e,
            AdmitError::TooLarge {
                memory_mb: 2048,
                budget_mb: 1024
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("2048 MB") && msg.contains("1024 MB"), "{msg}");
        assert_eq!(b.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_while_waiting_leaves_the_queue_holding_nothing() {
        let b = budget(100, 1.0);
        let blocker = b.reserve("x", 100, far()).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(500);
        let e = b.reserve("a", 50, deadline).await.unwrap_err();
        assert!(
            matches!(e, AdmitError::TimedOut { waited } if waited >= Duration::from_millis(500))
        );
        assert_eq!(b.waiting(), 0);
        assert_eq!(b.reserved_mb(), 100);
        assert_eq!(b.held_by("a"), 0);
        drop(blocker);
        assert_eq!(b.reserved_mb(), 0);
        // The queue works on: a new one is admitted at once.
        let r = b.reserve("a", 100, far()).await.unwrap();
        assert_eq!(r.mb(), 100);
    }

    #[tokio::test]
    async fn a_timed_out_head_unblocks_the_ones_behind_it() {
        let b = budget(100, 1.0);
        let small = b.reserve("x", 60, far()).await.unwrap();
        // a needs 50 (does not fit), b needs 40 (fits, but must not overtake a).
        let mut a_wait = Some(queue(&b, "a", 50));
        let mut pending = vec![Some(queue(&b, "b", 40))];
        let mut held = Vec::new();
        assert!(
            admitted(&mut pending, &mut held).is_empty(),
            "no overtaking"
        );
        // a gives up (its future is dropped): b is admitted.
        a_wait.take();
        assert_eq!(admitted(&mut pending, &mut held), vec![0]);
        assert_eq!(b.reserved_mb(), 100);
        drop(small);
        drop(held);
        assert_eq!(b.reserved_mb(), 0);
        assert_eq!(b.waiting(), 0);
    }

    #[tokio::test]
    async fn a_grant_that_is_never_taken_is_returned() {
        let b = budget(100, 1.0);
        let blocker = b.reserve("x", 100, far()).await.unwrap();
        let waiting = queue(&b, "a", 100);
        drop(blocker); // grants it (the oneshot is sent) ...
        assert_eq!(b.reserved_mb(), 100);
        drop(waiting); // ... but the future is dropped before it sees the grant.
        assert_eq!(b.reserved_mb(), 0);
        assert_eq!(b.held_by("a"), 0);
    }

    #[tokio::test]
    async fn gauges_follow_reservations_and_waiters() {
        let gauges = BudgetGauges::default();
        let b = Arc::new(MemoryBudget::new(100, 1.0, gauges.clone()));
        let r = b.reserve("a", 100, far()).await.unwrap();
        assert_eq!(gauges.reserved_bytes.get(), 100 << 20);
        let w = queue(&b, "b", 10);
        assert_eq!(gauges.waiting.get(), 1);
        drop(w);
        assert_eq!(gauges.waiting.get(), 0);
        drop(r);
        assert_eq!(gauges.reserved_bytes.get(), 0);
    }
}
