//! Group-committed activation writes, after OpenWhisk's `Batcher` (the controller's dbBatcher).
//!
//! [`ActivationBatcher::put`] returns only once the record's batch is committed (one transaction
//! through the [`ActivationSink`]), so an acknowledged activation survives a `kill -9` of the
//! scheduler. Meanwhile the record is visible to reads (from the in-memory `pending` map).
//!
//! Group commit: one writer task per store takes the first queued record, then drains whatever
//! else is *already* queued (no lingering) up to `batch_size`, commits the batch, and answers
//! every waiter of the batch through its oneshot. Records that arrive while a commit runs form
//! the next batch, so under load a batch holds about one record per concurrent caller and the
//! cost of a commit (an fsync with `synchronous=FULL`) is shared by all of them; with a single
//! caller nothing waits for a timer. Records leave `pending` only after their batch committed, and
//! before their waiters are answered, so a read after `put` returned finds the stored record.
//!
//! Acceptances ride the same group commits: [`ActivationBatcher::accept`] returns once the row
//! saying "activation X was answered 202" is committed, and the `put` of X's record later deletes
//! that row in the transaction that writes the record, so after a crash exactly the activations
//! that were acknowledged and never recorded have a row (see [`super::Store::recover_accepted`]).
//!
//! [`ActivationBatcher::flush`] queues a marker and waits until everything queued before it is
//! written; `close` flushes and stops the writer (later `put`s get [`StoreError::WriterClosed`]).
//! A flush reports a failed batch that no waiter heard about (its `put` future was dropped), so
//! every failure reaches someone once; failures already answered to their `put`s do not fail a
//! later flush or a clean shutdown.
//!
//! Costs: `put` is a map insert, a channel send, a oneshot and the wait for one commit (a batch
//! that is being committed plus the one being collected, at worst).
//!
//! Known caveats: a failed batch is retried a few times with back-off (up to ~1.3 s), then
//! given up: every `put` of the batch returns [`StoreError::WriteFailed`] (so the invoke path
//! answers an error, never a success whose record is lost), the records are dropped from
//! `pending`, counted in [`ActivationBatcher::failed`] and logged. Durability is the sink's:
//! with SQLite in WAL mode, `synchronous=NORMAL` survives a process crash but not a power loss;
//! `FULL` survives both.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::{DashMap, DashSet};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use wisp_core::{ActivationId, ActivationRecord};

use super::{ActivationFilter, StoreError, StoreResult};

/// Where batches go: one call = one transaction.
#[async_trait]
pub trait ActivationSink: Send + Sync + 'static {
    async fn write_batch(&self, batch: &Batch) -> StoreResult<()>;
}

/// An activation answered 202 by scheduler `owner`: `fallback` is the record it ends as if no
/// scheduler lives to write the real one (a whisk internal error).
#[derive(Debug)]
pub struct Acceptance {
    pub owner: String,
    pub accepted_ms: u64,
    pub fallback: ActivationRecord,
}

/// What one group commit writes, in one transaction, in this order: acceptances, records, then
/// the deletion of the acceptances the records settle.
#[derive(Debug, Default)]
pub struct Batch {
    pub accepted: Vec<Arc<Acceptance>>,
    pub records: Vec<Arc<ActivationRecord>>,
    /// Ids of `records` whose activation was accepted: their acceptance rows go.
    pub settled: Vec<ActivationId>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.accepted.is_empty() && self.records.is_empty()
    }

    fn len(&self) -> usize {
        self.accepted.len() + self.records.len()
    }

    fn clear(&mut self) {
        self.accepted.clear();
        self.records.clear();
        self.settled.clear();
    }
}

/// A queued record and its `put` order.
type Pending = (u64, Arc<ActivationRecord>);

/// How a commit ended, as told to a waiter (`Err` carries the store's message).
type Done = oneshot::Sender<Result<(), String>>;

enum Msg {
    /// A record, and whether it settles an acceptance.
    Record(Arc<ActivationRecord>, bool, Done),
    Accept(Arc<Acceptance>, Done),
    Flush(Done),
}

/// Capacity of the queue between `put` and the writer; `put` waits when it is full.
const QUEUE: usize = 65_536;
const RETRIES: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(250),
    Duration::from_secs(1),
];

/// The queue, the pending map and the writer task of one store.
pub struct ActivationBatcher {
    tx: mpsc::Sender<Msg>,
    pending: Arc<DashMap<ActivationId, Pending>>,
    /// Activations whose acceptance was queued and whose record was not yet put.
    accepted: DashSet<ActivationId>,
    /// Order of `put`s, to list queued records of one start time newest first.
    sequence: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
    failed: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    closed: AtomicBool,
}

impl ActivationBatcher {
    /// Starts the writer task (needs a tokio runtime). Batches hold at most `batch_size`
    /// records; the writer never waits for more records (group commit, see the module docs).
    pub fn spawn(sink: Arc<dyn ActivationSink>, batch_size: usize) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let pending = Arc::new(DashMap::new());
        let failed = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(writer_loop(
            rx,
            sink,
            pending.clone(),
            failed.clone(),
            written.clone(),
            batch_size.max(1),
        ));
        ActivationBatcher {
            tx,
            pending,
            accepted: DashSet::new(),
            sequence: AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
            failed,
            written,
            closed: AtomicBool::new(false),
        }
    }

    /// Queues `record` and returns once its batch is committed. The record is readable through
    /// [`Self::get`] / [`Self::matching`] from the call on. [`StoreError::WriteFailed`] when the
    /// batch could not be written after the retries; [`StoreError::WriterClosed`] after `close`.
    /// Dropping the future does not withdraw the record: it is written all the same.
    pub async fn put(&self, record: ActivationRecord) -> StoreResult<()> {
        let settles = self.accepted.remove(&record.activation_id).is_some();
        self.put_settling(record, settles).await
    }

    /// [`Self::put`] of the record of an activation whose acceptance row is stored: the same
    /// transaction deletes that row.
    pub async fn put_settled(&self, record: ActivationRecord) -> StoreResult<()> {
        self.put_settling(record, true).await
    }

    async fn put_settling(&self, record: ActivationRecord, settles: bool) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::WriterClosed);
        }
        let record = Arc::new(record);
        let id = record.activation_id.clone();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.pending.insert(id.clone(), (seq, record.clone()));
        let (done, committed) = oneshot::channel();
        if self
            .tx
            .send(Msg::Record(record, settles, done))
            .await
            .is_err()
        {
            self.pending.remove(&id);
            return Err(StoreError::WriterClosed);
        }
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::WriteFailed(e)),
            // The writer stopped (aborted by `close`) before reaching this record.
            Err(_) => {
                self.pending.remove(&id);
                Err(StoreError::WriterClosed)
            }
        }
    }

    /// Queues `acceptance` and returns once it is committed; the later `put` of the activation's
    /// record deletes it in the record's transaction. Errors as [`Self::put`].
    pub async fn accept(&self, acceptance: Acceptance) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::WriterClosed);
        }
        let id = acceptance.fallback.activation_id.clone();
        self.accepted.insert(id.clone());
        let (done, committed) = oneshot::channel();
        let outcome = match self.tx.send(Msg::Accept(Arc::new(acceptance), done)).await {
            Err(_) => Err(StoreError::WriterClosed),
            Ok(()) => match committed.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(StoreError::WriteFailed(e)),
                Err(_) => Err(StoreError::WriterClosed),
            },
        };
        if outcome.is_err() {
            self.accepted.remove(&id);
        }
        outcome
    }

    /// A queued, not yet written record.
    pub fn get(&self, namespace: &str, id: &ActivationId) -> Option<ActivationRecord> {
        self.pending
            .get(id)
            .filter(|p| p.1.namespace == namespace)
            .map(|p| (*p.1).clone())
    }

    /// Queued records of `namespace` passing `filter` (limit/skip not applied), the most
    /// recently queued first.
    pub fn matching(&self, namespace: &str, filter: &ActivationFilter) -> Vec<ActivationRecord> {
        let mut found: Vec<Pending> = self
            .pending
            .iter()
            .filter(|p| p.1.namespace == namespace && filter.matches(&p.1))
            .map(|p| p.value().clone())
            .collect();
        found.sort_by_key(|p| std::cmp::Reverse(p.0));
        found.into_iter().map(|(_, r)| (*r).clone()).collect()
    }

    /// Number of records waiting for the writer.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Records dropped after failed retries since start.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Records written since start.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Waits until every record queued before this call went through the writer.
    /// [`StoreError::WriteFailed`] when a batch failed since the last flush and no `put` was
    /// waiting to hear it (see the module docs).
    pub async fn flush(&self) -> StoreResult<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Flush(done))
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        wait.await
            .map_err(|_| StoreError::WriterClosed)?
            .map_err(StoreError::WriteFailed)
    }

    /// Flushes, then stops the writer. Idempotent.
    pub async fn close(&self) -> StoreResult<()> {
        let Some(writer) = self.writer.lock().await.take() else {
            return Ok(());
        };
        self.closed.store(true, Ordering::Release);
        let flushed = self.flush().await;
        writer.abort();
        let _ = writer.await;
        flushed
    }
}

async fn writer_loop(
    mut rx: mpsc::Receiver<Msg>,
    sink: Arc<dyn ActivationSink>,
    pending: Arc<DashMap<ActivationId, Pending>>,
    failed: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    batch_size: usize,
) {
    let mut batch = Batch::default();
    let mut waiters: Vec<Done> = Vec::with_capacity(batch_size);
    let mut flushes: Vec<Done> = Vec::new();
    let mut last_error: Option<String> = None;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Take what is already queued, never wait for more: callers are waiting.
        while let Some(msg) = next {
            match msg {
                Msg::Record(r, settles, done) => {
                    if settles {
                        batch.settled.push(r.activation_id.clone());
                    }
                    batch.records.push(r);
                    waiters.push(done);
                }
                Msg::Accept(a, done) => {
                    batch.accepted.push(a);
                    waiters.push(done);
                }
                Msg::Flush(f) => flushes.push(f),
            }
            next = if batch.len() < batch_size {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let outcome = if batch.is_empty() {
            Ok(())
        } else {
            let result = write_with_retries(sink.as_ref(), &batch).await;
            match &result {
                Ok(()) => {
                    written.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::error!(records = batch.records.len(), accepted = batch.accepted.len(),
                        error = %e, "activation records not written");
                    failed.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                }
            }
            for r in &batch.records {
                pending.remove(&r.activation_id);
            }
            batch.clear();
            result.map_err(|e| e.to_string())
        };
        let mut unheard = false;
        for w in waiters.drain(..) {
            unheard |= w.send(outcome.clone()).is_err();
        }
        // A failure whose `put` stopped waiting was told to nobody: the next flush reports it.
        if unheard && let Err(e) = &outcome {
            last_error = Some(e.clone());
        }
        for f in flushes.drain(..) {
            let _ = f.send(match last_error.take() {
                Some(e) => Err(e),
                None => Ok(()),
            });
        }
    }
}

async fn write_with_retries(sink: &dyn ActivationSink, batch: &Batch) -> StoreResult<()> {
    let mut attempt = 0;
    loop {
        match sink.write_batch(batch).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < RETRIES.len() => {
                tracing::warn!(error = %e, attempt, "activation batch failed, retrying");
                tokio::time::sleep(RETRIES[attempt]).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::suite::record;
    use std::collections::HashSet;
    use std::sync::Mutex as StdMutex;

    /// Records batches (ids) after a commit that takes `commit` (paused time); fails the first
    /// `failures` calls.
    struct TestSink {
        batches: StdMutex<Vec<Vec<ActivationId>>>,
        /// Per batch: the acceptances written and the acceptances settled.
        acceptances: StdMutex<Vec<(Vec<ActivationId>, Vec<ActivationId>)>>,
        failures: AtomicU64,
        commit: Duration,
    }

    impl TestSink {
        fn sizes(&self) -> Vec<usize> {
            self.batches.lock().unwrap().iter().map(Vec::len).collect()
        }

        fn committed(&self) -> HashSet<ActivationId> {
            self.batches
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .cloned()
                .collect()
        }
    }

    #[async_trait]
    impl ActivationSink for TestSink {
        async fn write_batch(&self, batch: &Batch) -> StoreResult<()> {
            let records = &batch.records;
            tokio::time::sleep(self.commit).await;
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(StoreError::WriteFailed("disk full".into()));
            }
            self.batches
                .lock()
                .unwrap()
                .push(records.iter().map(|r| r.activation_id.clone()).collect());
            self.acceptances.lock().unwrap().push((
                batch
                    .accepted
                    .iter()
                    .map(|a| a.fallback.activation_id.clone())
                    .collect(),
                batch.settled.clone(),
            ));
            Ok(())
        }
    }

    fn sink(failures: u64) -> Arc<TestSink> {
        Arc::new(TestSink {
            batches: StdMutex::new(Vec::new()),
            acceptances: StdMutex::new(Vec::new()),
            failures: AtomicU64::new(failures),
            commit: Duration::from_millis(2),
        })
    }

    fn batcher(s: &Arc<TestSink>, batch_size: usize) -> Arc<ActivationBatcher> {
        Arc::new(ActivationBatcher::spawn(s.clone(), batch_size))
    }

    #[tokio::test(start_paused = true)]
    async fn put_returns_only_after_its_batch_is_committed() {
        let s = sink(0);
        let b = batcher(&s, 64);
        for i in 0..20 {
            let r = record("ns", "a", i);
            let id = r.activation_id.clone();
            b.put(r).await.unwrap();
            assert!(
                s.committed().contains(&id),
                "put {i} returned before its commit"
            );
            assert_eq!(b.pending_len(), 0, "a committed record leaves the queue");
        }
        assert_eq!(
            s.sizes(),
            vec![1; 20],
            "a lone caller never waits for company"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_puts_share_commits_no_larger_than_the_limit() {
        let s = sink(0);
        let b = batcher(&s, 64);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let b = b.clone();
            tasks.spawn(async move {
                let r = record("ns", "a", i);
                let id = r.activation_id.clone();
                b.put(r).await.map(|()| id)
            });
        }
        // Queued records are readable before their commit.
        tokio::task::yield_now().await;
        let mut acknowledged = HashSet::new();
        while let Some(done) = tasks.join_next().await {
            acknowledged.insert(done.unwrap().unwrap());
        }
        assert_eq!(acknowledged.len(), 1000);
        assert_eq!(
            s.committed(),
            acknowledged,
            "every acknowledged record was committed"
        );
        let sizes = s.sizes();
        assert!(sizes.iter().all(|&n| n <= 64), "{sizes:?}");
        assert!(sizes.len() < 1000 / 8, "records shared commits: {sizes:?}");
        assert_eq!(b.pending_len(), 0);
        assert_eq!(b.written(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn records_arriving_during_a_commit_form_the_next_batch() {
        let s = Arc::new(TestSink {
            batches: StdMutex::new(Vec::new()),
            acceptances: StdMutex::new(Vec::new()),
            failures: AtomicU64::new(0),
            commit: Duration::from_millis(100),
        });
        let b = batcher(&s, 64);
        let first = {
            let b = b.clone();
            tokio::spawn(async move { b.put(record("ns", "a", 0)).await })
        };
        // The writer is now inside the first commit.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let queued: Vec<ActivationRecord> = (1..=3).map(|i| record("ns", "a", i)).collect();
        let mut later = Vec::new();
        for r in queued.clone() {
            let b = b.clone();
            later.push(tokio::spawn(async move { b.put(r).await }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        for r in &queued {
            assert_eq!(
                b.get("ns", &r.activation_id).as_ref(),
                Some(r),
                "a queued record is readable"
            );
        }
        first.await.unwrap().unwrap();
        for t in later {
            t.await.unwrap().unwrap();
        }
        assert_eq!(s.sizes(), [1, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_batch_is_retried_then_reported_to_its_waiters_and_flush() {
        let flaky = sink(2);
        let b = batcher(&flaky, 64);
        b.put(record("ns", "a", 1))
            .await
            .expect("two failures are retried");
        b.flush().await.unwrap();
        assert_eq!(flaky.sizes(), [1]);

        let broken = sink(u64::MAX);
        let b = batcher(&broken, 64);
        let (one, two) = tokio::join!(b.put(record("ns", "a", 1)), b.put(record("ns", "a", 2)));
        for put in [one, two] {
            assert!(
                matches!(put, Err(StoreError::WriteFailed(ref m)) if m.contains("disk full")),
                "{put:?}"
            );
        }
        b.flush()
            .await
            .expect("failures told to their puts do not fail a flush");
        // A put that stopped waiting: nobody heard of its failure, the next flush reports it.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(1), b.put(record("ns", "a", 3))).await;
        assert!(gave_up.is_err(), "the put was still retrying");
        let err = b.flush().await.unwrap_err();
        assert!(matches!(err, StoreError::WriteFailed(_)), "{err}");
        b.flush().await.expect("reported once");
        assert_eq!(b.failed(), 3);
        assert_eq!(b.written(), 0);
        assert_eq!(
            b.pending_len(),
            0,
            "given-up records do not pile up in memory"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_accepted_activations_record_settles_its_acceptance() {
        let s = sink(0);
        let b = batcher(&s, 64);
        let accepted = record("ns", "a", 1);
        let plain = record("ns", "a", 2);
        b.accept(Acceptance {
            owner: "me".into(),
            accepted_ms: 1,
            fallback: accepted.clone(),
        })
        .await
        .unwrap();
        assert_eq!(
            s.acceptances.lock().unwrap().last().cloned(),
            Some((vec![accepted.activation_id.clone()], vec![])),
            "accept returns once its row is committed"
        );
        b.put(plain.clone()).await.unwrap();
        b.put(accepted.clone()).await.unwrap();
        let settled: Vec<ActivationId> = s
            .acceptances
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, settled)| settled.clone())
            .collect();
        assert_eq!(
            settled,
            vec![accepted.activation_id.clone()],
            "only the accepted activation's record deletes an acceptance"
        );
        // A second put of the same id (a retry) does not settle twice.
        b.put(accepted).await.unwrap();
        assert_eq!(s.acceptances.lock().unwrap().last().unwrap().1.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn close_flushes_and_refuses_later_writes() {
        let s = sink(0);
        let b = batcher(&s, 512);
        let r = record("ns", "a", 1);
        let put = {
            let (b, r) = (b.clone(), r.clone());
            tokio::spawn(async move { b.put(r).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(b.get("ns", &r.activation_id), Some(r.clone()));
        assert_eq!(
            b.get("other", &r.activation_id),
            None,
            "records stay in their namespace"
        );
        b.close().await.unwrap();
        put.await.unwrap().unwrap();
        assert_eq!(s.sizes(), [1], "close wrote the queued record");
        assert!(matches!(
            b.put(record("ns", "a", 2)).await,
            Err(StoreError::WriterClosed)
        ));
        b.close().await.unwrap();
    }
}
