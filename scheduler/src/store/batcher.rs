//! Batched activation writes, after OpenWhisk's `Batcher` (the controller's dbBatcher).
//!
//! `put` costs a map insert and a channel send: the record is visible to reads at once (from the
//! in-memory `pending` map) and the invoke path never waits for the disk. One writer task per
//! store takes the first queued record, keeps collecting until the batch is full
//! (`batch_size`) or `linger` has passed, and hands the batch to the [`ActivationSink`] (one
//! transaction). Records leave `pending` only after their batch committed. [`ActivationBatcher::flush`]
//! queues a marker and waits until everything queued before it is written; `close` flushes and
//! stops the writer, so no acknowledged record is lost on a clean shutdown.
//!
//! Known caveats: a failed batch is retried a few times with back-off, then dropped (counted in
//! [`ActivationBatcher::failed`], logged, and reported by the next `flush`); records that are
//! only in memory are lost on a crash (`kill -9`), which is the price of not syncing per invoke.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use wisp_core::{ActivationId, ActivationRecord};

use super::{ActivationFilter, StoreError, StoreResult};

/// Where batches go: one call = one transaction.
#[async_trait]
pub trait ActivationSink: Send + Sync + 'static {
    async fn write_batch(&self, records: &[Arc<ActivationRecord>]) -> StoreResult<()>;
}

/// A queued record and its `put` order.
type Pending = (u64, Arc<ActivationRecord>);

enum Msg {
    Record(Arc<ActivationRecord>),
    Flush(oneshot::Sender<Result<(), String>>),
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
    /// Order of `put`s, to list queued records of one start time newest first.
    sequence: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
    failed: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    closed: AtomicBool,
}

impl ActivationBatcher {
    /// Starts the writer task (needs a tokio runtime).
    pub fn spawn(sink: Arc<dyn ActivationSink>, batch_size: usize, linger: Duration) -> Self {
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
            linger,
        ));
        ActivationBatcher {
            tx,
            pending,
            sequence: AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
            failed,
            written,
            closed: AtomicBool::new(false),
        }
    }

    /// Queues `record`; it is readable through [`Self::get`] / [`Self::matching`] at once.
    pub async fn put(&self, record: ActivationRecord) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::WriterClosed);
        }
        let record = Arc::new(record);
        let id = record.activation_id.clone();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.pending.insert(id.clone(), (seq, record.clone()));
        if self.tx.send(Msg::Record(record)).await.is_err() {
            self.pending.remove(&id);
            return Err(StoreError::WriterClosed);
        }
        Ok(())
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

    /// Waits until every record queued before this call is written.
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
    linger: Duration,
) {
    let mut batch: Vec<Arc<ActivationRecord>> = Vec::with_capacity(batch_size);
    let mut flushes: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    let mut last_error: Option<String> = None;
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut open = true;
        match first {
            Msg::Record(r) => batch.push(r),
            Msg::Flush(f) => flushes.push(f),
        }
        if flushes.is_empty() {
            let deadline = tokio::time::Instant::now() + linger;
            while batch.len() < batch_size {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Msg::Record(r))) => batch.push(r),
                    Ok(Some(Msg::Flush(f))) => {
                        flushes.push(f);
                        break;
                    }
                    Ok(None) => {
                        open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if !batch.is_empty() {
            if let Err(e) = write_with_retries(sink.as_ref(), &batch).await {
                tracing::error!(records = batch.len(), error = %e, "dropping activation records");
                failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                last_error = Some(e.to_string());
            } else {
                written.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            for r in batch.drain(..) {
                pending.remove(&r.activation_id);
            }
        }
        for f in flushes.drain(..) {
            let _ = f.send(match last_error.take() {
                Some(e) => Err(e),
                None => Ok(()),
            });
        }
        if !open {
            break;
        }
    }
}

async fn write_with_retries(
    sink: &dyn ActivationSink,
    batch: &[Arc<ActivationRecord>],
) -> StoreResult<()> {
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
    use std::sync::Mutex as StdMutex;

    /// Records batch sizes; fails the first `failures` calls.
    struct TestSink {
        batches: StdMutex<Vec<usize>>,
        failures: AtomicU64,
    }

    #[async_trait]
    impl ActivationSink for TestSink {
        async fn write_batch(&self, records: &[Arc<ActivationRecord>]) -> StoreResult<()> {
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(StoreError::WriteFailed("disk full".into()));
            }
            self.batches.lock().unwrap().push(records.len());
            Ok(())
        }
    }

    fn sink(failures: u64) -> Arc<TestSink> {
        Arc::new(TestSink {
            batches: StdMutex::new(Vec::new()),
            failures: AtomicU64::new(failures),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn records_are_written_in_batches_no_larger_than_the_limit() {
        let s = sink(0);
        let b = ActivationBatcher::spawn(s.clone(), 64, Duration::from_millis(5));
        for i in 0..1000 {
            b.put(record("ns", "a", i)).await.unwrap();
        }
        assert_eq!(
            b.matching("ns", &ActivationFilter::default()).len() + b.written() as usize,
            1000
        );
        b.flush().await.unwrap();
        let batches = s.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 1000);
        assert!(batches.iter().all(|&n| n <= 64), "{batches:?}");
        assert!(
            batches.len() < 1000 / 8,
            "records were batched: {batches:?}"
        );
        assert_eq!(b.pending_len(), 0);
        assert_eq!(b.written(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_batch_is_retried_then_reported_by_flush() {
        let flaky = sink(2);
        let b = ActivationBatcher::spawn(flaky.clone(), 64, Duration::from_millis(5));
        b.put(record("ns", "a", 1)).await.unwrap();
        b.flush().await.expect("two failures are retried");
        assert_eq!(*flaky.batches.lock().unwrap(), [1]);

        let broken = sink(u64::MAX);
        let b = ActivationBatcher::spawn(broken, 64, Duration::from_millis(5));
        b.put(record("ns", "a", 1)).await.unwrap();
        b.put(record("ns", "a", 2)).await.unwrap();
        let err = b.flush().await.unwrap_err();
        assert!(matches!(err, StoreError::WriteFailed(_)), "{err}");
        assert_eq!(b.failed(), 2);
        assert_eq!(
            b.pending_len(),
            0,
            "given-up records do not pile up in memory"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn close_flushes_and_refuses_later_writes() {
        let s = sink(0);
        let b = ActivationBatcher::spawn(s.clone(), 512, Duration::from_secs(3600));
        let r = record("ns", "a", 1);
        b.put(r.clone()).await.unwrap();
        assert_eq!(b.get("ns", &r.activation_id), Some(r.clone()));
        assert_eq!(
            b.get("other", &r.activation_id),
            None,
            "records stay in their namespace"
        );
        b.close().await.unwrap();
        assert_eq!(
            *s.batches.lock().unwrap(),
            [1],
            "close wrote the queued record at once"
        );
        assert!(matches!(
            b.put(record("ns", "a", 2)).await,
            Err(StoreError::WriterClosed)
        ));
        b.close().await.unwrap();
    }
}
