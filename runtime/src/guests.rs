//! CPU fair share: long-running guests move off the request workers.
//!
//! Every activation starts on the task that received it (the request's tokio worker), so a
//! short one (`hello`: ~15 µs) pays nothing extra. Each epoch tick the guest yields; at its
//! [`DEMOTE_AFTER_TICKS`]-th tick (it has run for at least one whole tick) the rest of it moves
//! to the [`GuestPool`]: a tokio runtime of its own whose threads run at a lower OS priority
//! (`nice` 10 by default). There CPU-bound guests share their threads round-robin, yielding
//! every tick, while the request workers (and, in `wisp up`, the scheduler's HTTP servers on
//! the same threads) stay free for new requests and short activations, and the kernel prefers
//! them whenever both want a core. This is a two-level feedback queue: new work first,
//! long work in the background.
//!
//! Why not only yield on the request workers (the plain design): with N loops on 2 workers a
//! new request waits behind up to N/2 ticks of loops at every await point of its path, and a
//! flood of 5 s loops made another tenant's `hello` hundreds of times slower. Why not a cap on
//! running guests alone: the capped guests still occupy the workers for whole ticks. The
//! figures of each alternative are in `benches/benches/fairness.rs`.
//!
//! Cost: one thread per core (idle when no guest is long), a `nice` syscall per thread at
//! start; a demoted guest pays one task spawn and one cross-thread wake-up when it ends.
//!
//! Known caveats: the priority is the kernel's `nice`, a weight (nice 10 gets ~10% of a core
//! that a nice-0 thread also wants), not a strict order; guests in the pool are not yet
//! ordered by namespace (they share the pool's threads by tick, so a namespace with more long
//! guests gets more of the pool).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

/// Epoch ticks a guest runs where it started before it moves to the pool. 2: a guest that
/// happens to see a tick in its first microseconds (a tick is 2 ms, `hello` 15 µs) stays.
pub const DEMOTE_AFTER_TICKS: u32 = 2;

/// The background runtime long guests move to. One per [`Runtime`](crate::Runtime); its
/// threads are stopped (without waiting) when it is dropped.
pub struct GuestPool {
    rt: Option<tokio::runtime::Runtime>,
}

impl GuestPool {
    /// `threads` worker threads (at least 1) at `nice` (Linux; ignored elsewhere).
    pub fn new(threads: usize, nice: i32) -> std::io::Result<GuestPool> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("wisp-guest")
            .enable_all()
            .on_thread_start(move || lower_priority(nice))
            .build()?;
        Ok(GuestPool { rt: Some(rt) })
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.rt.as_ref().map(|rt| rt.handle())
    }
}

impl Drop for GuestPool {
    fn drop(&mut self) {
        // Dropping a runtime may block; this can run inside another runtime's task.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: setpriority has no memory-safety preconditions. On Linux the nice value is a
    // per-thread attribute and `who = 0` names the calling thread, so this lowers only this
    // pool thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        tracing::debug!(nice, error = %std::io::Error::last_os_error(), "cannot lower a guest thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

/// Set by the epoch callback when the guest should move to the pool.
#[derive(Clone, Debug, Default)]
pub struct DemoteFlag(Arc<AtomicBool>);

impl DemoteFlag {
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Polls `fut` where it is awaited until its [`DemoteFlag`] is raised, then spawns the rest of
/// it on the pool and waits for it there; either way it is dropped at `deadline` (`None`). The
/// deadline's timer is made where the future runs (a tokio timer belongs to the runtime that
/// made it), and only once the future is not ready at its first poll: a `hello` costs none.
/// Dropping this aborts the spawned rest (dropped at its next yield, at most a tick later).
pub struct Demotable<F: Future> {
    state: State<F>,
    flag: DemoteFlag,
    pool: Option<tokio::runtime::Handle>,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

enum State<F: Future> {
    Inline(Pin<Box<F>>),
    Spawned(JoinHandle<Option<F::Output>>),
    Done,
}

impl<F> Demotable<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub fn new(fut: F, deadline: Instant, flag: DemoteFlag, pool: Option<&GuestPool>) -> Self {
        Demotable {
            state: State::Inline(Box::pin(fut)),
            flag,
            pool: pool.and_then(|p| p.handle().cloned()),
            deadline,
            sleep: None,
        }
    }
}

impl<F> Future for Demotable<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Inline(fut) => {
                    if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                        this.state = State::Done;
                        return Poll::Ready(Some(v));
                    }
                    let deadline = this.deadline;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    let Some(pool) = this.pool.as_ref().filter(|_| this.flag.is_raised()) else {
                        return Poll::Pending;
                    };
                    let State::Inline(fut) = std::mem::replace(&mut this.state, State::Done) else {
                        unreachable!("matched Inline above")
                    };
                    this.sleep = None;
                    this.state =
                        State::Spawned(pool.spawn(async move {
                            tokio::time::timeout_at(deadline, fut).await.ok()
                        }));
                }
                State::Spawned(handle) => {
                    return match Pin::new(handle).poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Ok(v)) => {
                            this.state = State::Done;
                            Poll::Ready(v)
                        }
                        Poll::Ready(Err(e)) if e.is_panic() => {
                            std::panic::resume_unwind(e.into_panic())
                        }
                        // Cancelled: only when the pool shuts down, i.e. the runtime is being
                        // dropped; the guest is gone either way.
                        Poll::Ready(Err(_)) => {
                            this.state = State::Done;
                            Poll::Ready(None)
                        }
                    };
                }
                State::Done => panic!("Demotable polled after completion"),
            }
        }
    }
}

impl<F: Future> Drop for Demotable<F> {
    fn drop(&mut self) {
        if let State::Spawned(handle) = &self.state {
            handle.abort();
        }
    }
}
