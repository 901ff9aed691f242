//! The invoke path: from a resolved action to an activation record.
//!
//! [`Invoker::invoke`] asks a [`Balancer`] for a runtime — the subject's own one while it has a
//! healthy dedicated runtime ([`RuntimePools::for_namespace`]), the shared one otherwise (no
//! healthy runtime → [`InvokeError::NoRuntime`], nothing queued, no record), then runs the
//! activation in a task of its own so that it always ends as an [`ActivationRecord`] written
//! through [`Store::put_activation`], whether the caller waits for it (blocking, up to [`BLOCKING_WAIT`]), stops waiting (the 202 after 60 s), or never
//! waited (non-blocking). The task:
//!
//! 1. sends `POST /run` to the leased runtime, without the code (a runtime keeps what it was
//!    sent at create time, `/prepare`, or earlier);
//! 2. on a connection refused before anything was sent (or a 503 from a draining runtime, which
//!    runs nothing new), marks the runtime offline and schedules the activation on another
//!    runtime (excluding the refusers), so a dead or draining runtime costs no failed invocation;
//! 3. on `409 code_unknown`, sends it again with the code inline (read from the store);
//! 4. on a transport failure or timeout after sending, or any other refusal, ends the activation
//!    as `whisk internal error` and records a system error against the runtime;
//! 5. fills the record's annotations (`path`, `kind`, `limits`, `waitTime`, `initTime`,
//!    `causedBy`, `timeout`) from the runtime's µs timings plus the scheduler-side wait.
//!
//! Sequences (`exec.kind == "sequence"`) run inside the scheduler: components in order, each
//! one's result the next one's parameters, the first error stops the chain; components carry
//! `cause` = the sequence's activation id and `causedBy: sequence`, and the sequence's record lists
//! the component activation ids in `logs`.
//!
//! Admission: before anything is scheduled, the subject's namespace limits are checked
//! (`crate::activation::limits`, the limits cached with the user): over `invocationsPerMinute`
//! or `concurrentInvocations` the invoke is [`InvokeError::Throttled`] (429), nothing runs and
//! no record is written. An accepted activation holds a concurrency slot until its record has
//! been handed to the store (or, when it never started, until its caller is answered); a
//! sequence holds one for itself, and each component one more while it runs (taken unchecked).
//!
//! [`invoke_route`] is the HTTP handler of `POST /api/v1/namespaces/{ns}/actions/[{pkg}/]{name}`.
//!
//! Costs: an [`Invoker`] is a few `Arc`s (clone freely); it lives as long as the scheduler. Each
//! activation costs one tokio task, one oneshot channel and one `/run` exchange on a pooled
//! keep-alive connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use wisp_core::{
    ActionDoc, ActivationId, ActivationRecord, ActivationResponse, Digest, Exec, KeyValue, Limits,
    RunRequest, RunResponse, Status, entity::merge_params, run::ErrorBody,
};

use crate::activation::limits::{Limiter, Permit, Throttled};
use crate::api::ApiError;
use crate::auth::Identity;
use crate::balancer::{Balancer, Lease, Outcome, RuntimeId, RuntimeState};
use crate::kube::RuntimePools;
use crate::runtime_client::{PrepareFailure, RunFailure, RuntimeClient};
use crate::state::AppState;
use crate::store::{EntityKey, Store, StoreError};

/// How long a blocking invoke waits before answering 202 with the activation id (OpenWhisk's 60 s).
pub const BLOCKING_WAIT: Duration = Duration::from_secs(60);
/// Added to twice an action's timeout (the longest a runtime may wait for memory, then run it)
/// to bound a `/run` exchange: the runtime enforces both itself, so hitting this means the
/// runtime is stuck or gone.
pub const RUNTIME_GRACE: Duration = Duration::from_secs(30);
/// Most components a sequence may have (OpenWhisk's default `actionSequenceMaxLimit`).
pub const MAX_SEQUENCE_LENGTH: usize = 50;
/// Deepest nesting of sequences in sequences.
pub const MAX_SEQUENCE_DEPTH: usize = 8;
/// The response header carrying the activation id on every invoke answer.
pub const ACTIVATION_ID_HEADER: &str = "x-openwhisk-activation-id";

/// How the invoker reaches runtimes.
#[derive(Clone, Debug, Default)]
pub struct InvokerConfig {
    /// `WISP_RUNTIME_TOKEN`, sent as a bearer token to runtimes.
    pub runtime_token: Option<String>,
    /// `__OW_API_HOST` given to actions.
    pub api_host: String,
    /// This scheduler's instance id: the owner of the acceptances it commits.
    pub instance: String,
}

/// The error of an activation that was accepted (answered 202) but whose scheduler died before
/// it ended: it is never run again (at most once).
pub const RESTARTED_MESSAGE: &str =
    "The scheduler restarted before the activation finished; it was not run again.";

/// Why compile-ahead refused a module.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The module is not a valid action (a runtime said so, or it lacks the wasm magic when no
    /// runtime could be asked). The PUT handler answers 400 and stores nothing.
    #[error("{0}")]
    Invalid(String),
}

/// One activation to run.
#[derive(Clone, Debug)]
pub struct InvokeRequest {
    /// The caller's namespace: the record is stored there, and it is `__OW_NAMESPACE`.
    pub subject: String,
    /// The resolved action (`exec.digest` set for wasm actions).
    pub action: ActionDoc,
    /// `/ns/pkg/name` or `/ns/name`.
    pub path: String,
    /// The parameters, already merged (package < action < invocation).
    pub params: Map<String, Value>,
    pub blocking: bool,
    /// The trigger or sequence activation that caused this one.
    pub cause: Option<ActivationId>,
}

/// What [`Invoker::invoke`] gives back.
#[derive(Clone, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per invoke and moved into the answer; boxing would add an allocation"
)]
pub enum InvokeOutcome {
    /// A blocking invoke that finished in time: the record (already handed to the store).
    Completed(ActivationRecord),
    /// Non-blocking, or blocking past [`BLOCKING_WAIT`]: the activation goes on and will end as a
    /// record under this id.
    Accepted(ActivationId),
}

/// Why an invoke was not accepted. Maps to HTTP by variant (see [`InvokeError::status`]).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No healthy runtime (or every one refused the connection): nothing was queued, no record.
    #[error("no healthy runtime is available to run the action; try again later")]
    NoRuntime,
    /// The scheduler itself failed (a broken action document, a store failure...).
    #[error("internal error: {0}")]
    Internal(String),
    /// The activation ran but the store refused its record (disk full, read-only...): 503
    /// `store_unavailable`, so no caller takes a success whose record is lost.
    #[error("{0}")]
    RecordNotStored(String),
    /// Over a namespace limit (429 `too_many_requests`): nothing was accepted, no record.
    #[error(transparent)]
    Throttled(#[from] Throttled),
}

impl InvokeError {
    pub fn status(&self) -> StatusCode {
        match self {
            InvokeError::NoRuntime | InvokeError::RecordNotStored(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            InvokeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            InvokeError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            InvokeError::NoRuntime => "no_runtime",
            InvokeError::Internal(_) => "internal_error",
            InvokeError::RecordNotStored(_) => "store_unavailable",
            InvokeError::Throttled(_) => crate::api::TOO_MANY_REQUESTS,
        }
    }
}

impl IntoResponse for InvokeError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(ErrorBody::new(self.code(), self.to_string())),
        )
            .into_response()
    }
}

/// The activation could not start anywhere (no healthy runtime, or all refused).
#[derive(Debug)]
struct NeverStarted(String);

/// Runs activations on runtimes. Cheap to clone; one per scheduler.
#[derive(Clone)]
pub struct Invoker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// The shared balancer and the per-user balancers of dedicated runtimes: each activation
    /// goes to [`RuntimePools::for_namespace`] of its subject.
    pools: Arc<RuntimePools>,
    client: RuntimeClient,
    cfg: InvokerConfig,
    blocking_wait: Duration,
    grace: Duration,
    /// Every activation task, so shutdown can wait for their records ([`Invoker::drain`]).
    tasks: TaskTracker,
    /// Namespace limits: admission before anything is accepted.
    limiter: Arc<Limiter>,
}

/// One wasm activation being run.
struct Job {
    id: ActivationId,
    subject: String,
    action: ActionDoc,
    digest: Digest,
    path: String,
    params: Map<String, Value>,
    cause: Option<ActivationId>,
    /// A component of a sequence (annotation `causedBy: sequence`).
    in_sequence: bool,
    received: Instant,
    /// The balancer the job is scheduled on (its subject's dedicated one, or the shared one);
    /// outcomes are recorded on the same one.
    balancer: Arc<Balancer>,
    /// The namespace's concurrency slot of a top-level activation (a sequence's components
    /// are held by the sequence run).
    permit: Option<Permit>,
}

impl Invoker {
    /// An invoker with the default namespace limits for a single scheduler.
    pub fn new(store: Arc<dyn Store>, balancer: Arc<Balancer>, cfg: InvokerConfig) -> Self {
        let client = RuntimeClient::new(cfg.runtime_token.as_deref());
        let limiter = Limiter::new(
            Default::default(),
            1,
            Arc::new(crate::activation::limits::SystemClock),
        );
        Self::with_client(
            store,
            Arc::new(RuntimePools::new(balancer)),
            cfg,
            client,
            Arc::new(limiter),
        )
    }

    /// Like [`Invoker::new`] with the scheduler's runtime pools (shared balancer plus dedicated
    /// ones), a given client (share one pool with the health prober) and limiter.
    pub(crate) fn with_client(
        store: Arc<dyn Store>,
        pools: Arc<RuntimePools>,
        cfg: InvokerConfig,
        client: RuntimeClient,
        limiter: Arc<Limiter>,
    ) -> Self {
        Invoker {
            inner: Arc::new(Inner {
                store,
                pools,
                client,
                cfg,
                blocking_wait: BLOCKING_WAIT,
                grace: RUNTIME_GRACE,
                tasks: TaskTracker::new(),
                limiter,
            }),
        }
    }

    /// The same invoker with another blocking wait (tests of the 202-after-wait path).
    /// Call before cloning: it rebuilds the shared state.
    pub fn with_blocking_wait(self, wait: Duration) -> Self {
        let inner = &self.inner;
        Invoker {
            inner: Arc::new(Inner {
                store: Arc::clone(&inner.store),
                pools: Arc::clone(&inner.pools),
                client: inner.client.clone(),
                cfg: inner.cfg.clone(),
                blocking_wait: wait,
                grace: inner.grace,
                tasks: inner.tasks.clone(),
                limiter: Arc::clone(&inner.limiter),
            }),
        }
    }

    /// The HTTP client to runtimes (shared with the health prober).
    pub fn client(&self) -> &RuntimeClient {
        &self.inner.client
    }

    /// Waits until every activation started so far has handed its record to the store
    /// (call on shutdown, before flushing the store).
    pub async fn drain(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.tasks.reopen();
    }

    /// Number of activations running (their records not yet handed to the store).
    pub fn in_flight(&self) -> usize {
        self.inner.tasks.len()
    }

    /// The admission control of namespace limits.
    pub(crate) fn limiter(&self) -> &Arc<Limiter> {
        &self.inner.limiter
    }

    /// Admits one activation of `namespace` under its limits (cached with its user: no store
    /// read when warm). Limits that cannot be read fall back to the defaults.
    async fn admit(&self, namespace: &str) -> Result<Permit, Throttled> {
        let stored = match self.inner.store.user_limits(namespace).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(namespace, error = %e,
                    "cannot read the namespace's limits; the defaults apply");
                None
            }
        };
        let limits = self.inner.limiter.effective(stored.as_ref());
        self.inner.limiter.admit_invocation(namespace, &limits)
    }

    /// Compiles `code` ahead of its first invoke on every healthy runtime; answers as soon as the
    /// first runtime has compiled it (the others go on in the background). A runtime's 422 makes
    /// it [`PrepareError::Invalid`]. With no runtime reachable, only the wasm magic is checked.
    pub async fn prepare(&self, digest: &Digest, code: &[u8]) -> Result<(), PrepareError> {
        if !code.starts_with(b"\0asm") {
            return Err(PrepareError::Invalid(
                "the code is not a WebAssembly module (no \\0asm magic)".into(),
            ));
        }
        let urls: Vec<String> = self
            .inner
            .pools
            .shared()
            .snapshot()
            .into_iter()
            .filter(|r| r.state == RuntimeState::Healthy)
            .map(|r| r.url)
            .collect();
        if urls.is_empty() {
            return Ok(());
        }
        let code: Arc<[u8]> = Arc::from(code);
        let (tx, mut rx) = tokio::sync::mpsc::channel(urls.len());
        for url in urls {
            let client = self.inner.client.clone();
            let (digest, code, tx) = (digest.clone(), Arc::clone(&code), tx.clone());
            self.inner.tasks.spawn(async move {
                let result = client.prepare(&url, &digest, &code).await;
                if let Err(PrepareFailure::Unavailable { url, message }) = &result {
                    tracing::warn!(runtime = %url, error = %message, "prepare failed");
                }
                let _ = tx.send(result).await;
            });
        }
        drop(tx);
        while let Some(result) = rx.recv().await {
            match result {
                Ok(_) => return Ok(()),
                Err(PrepareFailure::Invalid(message)) => {
                    return Err(PrepareError::Invalid(message));
                }
                Err(PrepareFailure::Unavailable { .. }) => continue,
            }
        }
        // Every runtime failed for reasons that say nothing about the code: accept on the magic.
        Ok(())
    }

    /// Tells every known runtime (shared and dedicated) to drop the compiled code of `digest`,
    /// which no action uses any more, from its caches, so deleted and overwritten actions do not
    /// fill the runtimes' disks. In the background; a runtime that cannot be reached keeps the
    /// file until its own LRU bound evicts it.
    pub fn forget(&self, digest: &Digest) {
        let pools = &self.inner.pools;
        let mut urls: Vec<String> = pools
            .shared()
            .snapshot()
            .into_iter()
            .map(|r| r.url)
            .collect();
        for user in pools.dedicated_users() {
            if let Some(b) = pools.dedicated(&user) {
                urls.extend(b.snapshot().into_iter().map(|r| r.url));
            }
        }
        for url in urls {
            let (client, digest) = (self.inner.client.clone(), digest.clone());
            self.inner.tasks.spawn(async move {
                if let Err(e) = client.forget(&url, &digest).await {
                    tracing::warn!(runtime = %url, %digest, error = %e, "cannot drop unused code");
                }
            });
        }
    }

    /// Starts an activation. See the module docs.
    pub async fn invoke(&self, req: InvokeRequest) -> Result<InvokeOutcome, InvokeError> {
        let permit = self.admit(&req.subject).await?;
        let received = Instant::now();
        let id = ActivationId::generate();
        let blocking = req.blocking;
        let (tx, rx) = oneshot::channel::<Result<ActivationRecord, InvokeError>>();
        // The record this activation ends as if the scheduler dies after answering 202.
        let mut fallback: Option<ActivationRecord>;
        match &req.action.exec {
            Exec::Wasm { digest, .. } => {
                let digest = parse_digest(&req.action, digest.as_deref())?;
                let balancer = self.inner.pools.for_namespace(&req.subject);
                let job = Job {
                    id: id.clone(),
                    subject: req.subject,
                    digest,
                    path: req.path,
                    params: req.params,
                    cause: req.cause,
                    in_sequence: false,
                    received,
                    balancer,
                    action: req.action,
                    permit: Some(permit),
                };
                let lease = self
                    .schedule(&job, &[])
                    .map_err(|_| InvokeError::NoRuntime)?;
                fallback =
                    Some(self.failed_record(&job, None, Status::InternalError, RESTARTED_MESSAGE));
                if !blocking {
                    self.accept(fallback.take()).await?;
                }
                let this = self.clone();
                self.inner.tasks.spawn(async move {
                    let mut job = job;
                    let result = this.execute(&mut job, lease).await;
                    this.finish(result, &mut job, tx).await;
                });
            }
            Exec::Sequence { components } => {
                // Components are scheduled one by one as the chain runs; refuse at once (503,
                // nothing queued) when no runtime could take even the first.
                if self.inner.pools.for_namespace(&req.subject).healthy_count() == 0 {
                    return Err(InvokeError::NoRuntime);
                }
                let components = components.clone();
                let this = self.clone();
                let seq_job = SeqJob {
                    id: id.clone(),
                    subject: req.subject,
                    path: req.path,
                    params: req.params,
                    cause: req.cause,
                    in_sequence: false,
                    received,
                    action: req.action,
                };
                fallback = Some(seq_job.failed_record(Status::InternalError, RESTARTED_MESSAGE));
                if !blocking {
                    self.accept(fallback.take()).await?;
                }
                let seq = seq_job;
                self.inner.tasks.spawn(async move {
                    let result = this.run_sequence(&seq, components, 0).await;
                    match result {
                        Ok(record) => this.deliver(record, tx, Some(permit)).await,
                        Err(never) => {
                            let failed = || seq.failed_record(Status::InternalError, &never.0);
                            this.never_started(tx, Some(permit), failed).await;
                        }
                    }
                });
            }
        }
        if !blocking {
            return Ok(InvokeOutcome::Accepted(id));
        }
        match tokio::time::timeout(self.inner.blocking_wait, rx).await {
            Ok(Ok(Ok(record))) => Ok(InvokeOutcome::Completed(record)),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(InvokeError::Internal(format!(
                "activation {id} ended without an answer"
            ))),
            Err(_) => {
                // Past the blocking wait: the 202 leaves once the acceptance is committed.
                self.accept(fallback).await?;
                Ok(InvokeOutcome::Accepted(id))
            }
        }
    }

    /// Commits the acceptance of an activation about to be answered 202.
    async fn accept(&self, fallback: Option<ActivationRecord>) -> Result<(), InvokeError> {
        let Some(fallback) = fallback else {
            return Ok(());
        };
        let id = fallback.activation_id.clone();
        self.inner
            .store
            .accept_activation(&self.inner.cfg.instance, fallback)
            .await
            .map_err(|e| {
                tracing::error!(activation = %id, error = %e, "cannot commit an acceptance");
                InvokeError::RecordNotStored(format!(
                    "activation {id} could not be accepted durably: {e}"
                ))
            })
    }

    /// A lease on a runtime for `job`, excluding runtimes that refused it.
    fn schedule(&self, job: &Job, exclude: &[RuntimeId]) -> Result<Lease, NeverStarted> {
        let limits = &job.action.limits;
        job.balancer
            .schedule(
                job.path.trim_start_matches('/'),
                limits.memory,
                limits.concurrency,
                exclude,
            )
            .map_err(|e| NeverStarted(e.to_string()))
    }

    /// Hands the record to the store and the waiting caller; an activation that never started
    /// answers `NoRuntime` to a blocking caller still waiting, and ends as an internal-error
    /// record otherwise (it was accepted).
    async fn finish(
        &self,
        result: Result<ActivationRecord, NeverStarted>,
        job: &mut Job,
        tx: oneshot::Sender<Result<ActivationRecord, InvokeError>>,
    ) {
        let permit = job.permit.take();
        match result {
            Ok(record) => self.deliver(record, tx, permit).await,
            Err(never) => {
                let failed = || self.failed_record(job, None, Status::InternalError, &never.0);
                self.never_started(tx, permit, failed).await;
            }
        }
    }

    /// An activation that could not start anywhere: a caller still waiting gets `NoRuntime`
    /// (its slot freed first, nothing was accepted); otherwise it was accepted, and ends as the
    /// `failed` record.
    async fn never_started(
        &self,
        tx: oneshot::Sender<Result<ActivationRecord, InvokeError>>,
        mut permit: Option<Permit>,
        failed: impl FnOnce() -> ActivationRecord,
    ) {
        if !tx.is_closed() {
            drop(permit.take());
            if tx.send(Err(InvokeError::NoRuntime)).is_ok() {
                return;
            }
        }
        let _ = self.store_record(failed()).await;
        drop(permit);
    }

    /// Stores the record, then hands it to the caller if one still waits: the answer leaves only
    /// after `put_activation` returned, i.e. once the record is committed (a `GET` right after
    /// the answer finds it, and a `kill -9` of the scheduler cannot lose it). A record the store
    /// refused is answered as [`InvokeError::RecordNotStored`], never as a success. The record
    /// is copied only when someone waits. The activation's concurrency slot (`permit`) is freed
    /// once the record is stored, before the caller hears back (a caller invoking in a loop
    /// never meets its own previous activation).
    async fn deliver(
        &self,
        record: ActivationRecord,
        tx: oneshot::Sender<Result<ActivationRecord, InvokeError>>,
        permit: Option<Permit>,
    ) {
        if tx.is_closed() {
            let _ = self.store_record(record).await;
            drop(permit);
            return;
        }
        let id = record.activation_id.clone();
        let answer = match self.store_record(record.clone()).await {
            Ok(()) => Ok(record),
            Err(e) => Err(InvokeError::RecordNotStored(format!(
                "activation {id} ran, but its record could not be stored: {e}"
            ))),
        };
        drop(permit);
        let _ = tx.send(answer);
    }

    /// Writes the record (returns once committed); failures are logged and returned.
    async fn store_record(&self, record: ActivationRecord) -> Result<(), StoreError> {
        let id = record.activation_id.clone();
        let stored = self.inner.store.put_activation(record).await;
        if let Err(e) = &stored {
            tracing::error!(activation = %id, error = %e, "cannot store activation record");
        }
        stored
    }

    /// Runs `job` on the leased runtime, moving to another one when the connection is refused.
    /// Takes `job.params` (they go into the request, not the record).
    async fn execute(&self, job: &mut Job, first: Lease) -> Result<ActivationRecord, NeverStarted> {
        let inner = &self.inner;
        let mut request = RunRequest {
            activation_id: job.id.clone(),
            namespace: job.subject.clone(),
            action: job.path.clone(),
            version: job.action.version.clone(),
            digest: job.digest.clone(),
            code: None,
            limits: job.action.limits,
            params: std::mem::take(&mut job.params),
            api_host: inner.cfg.api_host.clone(),
        };
        // A runtime may spend up to the action's timeout waiting for memory (its budget is
        // spent), then up to the timeout running it.
        let timeout = 2 * Duration::from_millis(job.action.limits.timeout) + inner.grace;
        let mut lease = first;
        let mut refused: Vec<RuntimeId> = Vec::new();
        loop {
            let sent = Instant::now();
            match inner.client.run(&lease.url, &request, timeout).await {
                Ok(response) => {
                    job.balancer
                        .record(lease.runtime, Outcome::from(response.response.status));
                    drop(lease);
                    return Ok(self.record(job, sent, response));
                }
                Err(failure @ (RunFailure::Unreachable { .. } | RunFailure::Draining { .. })) => {
                    tracing::warn!(activation = %job.id, error = %failure,
                        "the runtime did not take the activation; rescheduling");
                    job.balancer.mark_offline(lease.runtime);
                    refused.push(lease.runtime);
                    drop(lease);
                    lease = match self.schedule(job, &refused) {
                        Ok(next) => next,
                        Err(never) => {
                            // The last dedicated runtime of the subject went: its activations
                            // fall back to the shared pool, as new ones do.
                            let shared = inner.pools.for_namespace(&job.subject);
                            if Arc::ptr_eq(&shared, &job.balancer) {
                                return Err(never);
                            }
                            job.balancer = shared;
                            refused.clear();
                            self.schedule(job, &refused)?
                        }
                    };
                }
                Err(RunFailure::CodeUnknown { url }) if request.code.is_none() => {
                    match inner.store.get_code(&job.digest).await {
                        Ok(Some(code)) => {
                            request.code =
                                Some(base64::engine::general_purpose::STANDARD.encode(code));
                        }
                        Ok(None) => {
                            drop(lease);
                            let msg = format!("the code of the action ({}) is missing", job.digest);
                            return Ok(self.failed_record(
                                job,
                                Some(sent),
                                Status::InternalError,
                                &msg,
                            ));
                        }
                        Err(e) => {
                            drop(lease);
                            let msg =
                                format!("cannot read the action's code for runtime {url}: {e}");
                            return Ok(self.failed_record(
                                job,
                                Some(sent),
                                Status::InternalError,
                                &msg,
                            ));
                        }
                    }
                }
                Err(failure) => {
                    tracing::warn!(activation = %job.id, error = %failure, "activation failed on the runtime");
                    job.balancer.record(lease.runtime, Outcome::SystemError);
                    drop(lease);
                    let message = match &failure {
                        RunFailure::Lost {
                            timed_out: true,
                            url,
                            ..
                        } => format!(
                            "the runtime {url} did not answer within {} ms",
                            timeout.as_millis()
                        ),
                        other => other.to_string(),
                    };
                    return Ok(self.failed_record(
                        job,
                        Some(sent),
                        Status::InternalError,
                        &message,
                    ));
                }
            }
        }
    }

    /// The record of an activation the runtime answered.
    fn record(&self, job: &Job, sent: Instant, r: RunResponse) -> ActivationRecord {
        let queued_us = sent.duration_since(job.received).as_micros() as u64;
        let wait_ms = (queued_us + r.wait_time_us) / 1000;
        let init_ms = r.init_time_us.div_ceil(1000);
        let timed_out = r.response.status == Status::DeveloperError
            && r.duration_us >= job.action.limits.timeout.saturating_mul(1000);
        let mut annotations =
            base_annotations(&job.path, "wasm", &job.action.limits, job.in_sequence);
        annotations.push(KeyValue::new("waitTime", wait_ms));
        annotations.push(KeyValue::new("initTime", init_ms));
        if timed_out {
            annotations.push(KeyValue::new("timeout", true));
        }
        let end = r.end.max(r.start);
        ActivationRecord {
            activation_id: job.id.clone(),
            namespace: job.subject.clone(),
            name: job.action.name.clone(),
            version: job.action.version.clone(),
            subject: job.subject.clone(),
            start: r.start,
            end,
            duration: end - r.start,
            status_code: r.response.status_code,
            response: r.response,
            logs: r.logs,
            annotations,
            cause: job.cause.clone(),
            publish: false,
        }
    }

    /// The record of an activation that got no answer from a runtime.
    fn failed_record(
        &self,
        job: &Job,
        sent: Option<Instant>,
        status: Status,
        message: &str,
    ) -> ActivationRecord {
        let now = wisp_core::now_ms();
        let elapsed = sent.map(|s| s.elapsed().as_millis() as u64).unwrap_or(0);
        let start = now.saturating_sub(elapsed);
        let wait_ms = sent
            .map(|s| s.duration_since(job.received).as_millis() as u64)
            .unwrap_or_else(|| job.received.elapsed().as_millis() as u64);
        let mut annotations =
            base_annotations(&job.path, "wasm", &job.action.limits, job.in_sequence);
        annotations.push(KeyValue::new("waitTime", wait_ms));
        let response = ActivationResponse::error(status, message);
        ActivationRecord {
            activation_id: job.id.clone(),
            namespace: job.subject.clone(),
            name: job.action.name.clone(),
            version: job.action.version.clone(),
            subject: job.subject.clone(),
            start,
            end: now,
            duration: now - start,
            status_code: response.status_code,
            response,
            logs: Vec::new(),
            annotations,
            cause: job.cause.clone(),
            publish: false,
        }
    }

    /// Runs a sequence's components in order (see the module docs). `Err` only when the first
    /// component could not start anywhere (nothing ran: a blocking caller gets 503).
    fn run_sequence<'a>(
        &'a self,
        seq: &'a SeqJob,
        components: Vec<String>,
        depth: usize,
    ) -> BoxFuture<'a, Result<ActivationRecord, NeverStarted>> {
        Box::pin(async move {
            if components.len() > MAX_SEQUENCE_LENGTH {
                let msg = format!(
                    "a sequence may have at most {MAX_SEQUENCE_LENGTH} components, this one has {}",
                    components.len()
                );
                return Ok(seq.failed_record(Status::ApplicationError, &msg));
            }
            if depth >= MAX_SEQUENCE_DEPTH {
                let msg = format!("sequences may nest at most {MAX_SEQUENCE_DEPTH} deep");
                return Ok(seq.failed_record(Status::ApplicationError, &msg));
            }
            let started = wisp_core::now_ms();
            let wait_ms = seq.received.elapsed().as_millis() as u64;
            let mut params = seq.params.clone();
            let mut ids: Vec<String> = Vec::with_capacity(components.len());
            let mut duration = 0u64;
            let mut last: Option<ActivationResponse> = None;
            for (index, component) in components.iter().enumerate() {
                let resolved = match self.resolve_component(&seq.subject, component).await {
                    Ok(r) => r,
                    Err(message) => {
                        last = Some(ActivationResponse::error(Status::ApplicationError, message));
                        break;
                    }
                };
                let mut merged = resolved.defaults;
                merged.extend(std::mem::take(&mut params));
                let exec = resolved.action.exec.clone();
                // The component is in flight from here until its record is stored.
                let held = self.inner.limiter.hold(&seq.subject);
                let record = match &exec {
                    Exec::Wasm { digest, .. } => {
                        let digest = match parse_digest(&resolved.action, digest.as_deref()) {
                            Ok(d) => d,
                            Err(e) => {
                                last = Some(ActivationResponse::error(
                                    Status::InternalError,
                                    e.to_string(),
                                ));
                                break;
                            }
                        };
                        let mut job = Job {
                            id: ActivationId::generate(),
                            subject: seq.subject.clone(),
                            action: resolved.action,
                            digest,
                            path: resolved.path,
                            params: merged,
                            cause: Some(seq.id.clone()),
                            in_sequence: true,
                            received: Instant::now(),
                            balancer: self.inner.pools.for_namespace(&seq.subject),
                            permit: None,
                        };
                        let ran = match self.schedule(&job, &[]) {
                            Ok(lease) => self.execute(&mut job, lease).await,
                            Err(never) => Err(never),
                        };
                        match ran {
                            Ok(record) => record,
                            Err(never) if index == 0 => return Err(never),
                            Err(never) => {
                                let message =
                                    format!("component {component} could not start: {}", never.0);
                                self.failed_record(&job, None, Status::InternalError, &message)
                            }
                        }
                    }
                    Exec::Sequence { components: inner } => {
                        let child = SeqJob {
                            id: ActivationId::generate(),
                            subject: seq.subject.clone(),
                            path: resolved.path,
                            params: merged,
                            cause: Some(seq.id.clone()),
                            in_sequence: true,
                            received: Instant::now(),
                            action: resolved.action,
                        };
                        match self.run_sequence(&child, inner.clone(), depth + 1).await {
                            Ok(record) => record,
                            Err(never) if index == 0 => return Err(never),
                            Err(never) => child.failed_record(Status::InternalError, &never.0),
                        }
                    }
                };
                let _ = self.store_record(record.clone()).await;
                drop(held);
                ids.push(record.activation_id.to_string());
                duration += record.duration;
                let ok = record.response.success;
                if ok {
                    params = match &record.response.result {
                        Value::Object(m) => m.clone(),
                        _ => Map::new(),
                    };
                }
                last = Some(record.response);
                if !ok {
                    break;
                }
            }
            let response = last.unwrap_or_else(|| {
                ActivationResponse::new(Status::Success, Value::Object(seq.params.clone()))
            });
            let end = wisp_core::now_ms().max(started);
            let mut annotations =
                base_annotations(&seq.path, "sequence", &seq.action.limits, seq.in_sequence);
            if !seq.in_sequence {
                annotations.push(KeyValue::new("topmost", true));
            }
            annotations.push(KeyValue::new("waitTime", wait_ms));
            Ok(ActivationRecord {
                activation_id: seq.id.clone(),
                namespace: seq.subject.clone(),
                name: seq.action.name.clone(),
                version: seq.action.version.clone(),
                subject: seq.subject.clone(),
                start: started,
                end,
                duration,
                status_code: response.status_code,
                response,
                logs: ids,
                annotations,
                cause: seq.cause.clone(),
                publish: false,
            })
        })
    }

    /// Finds a sequence component (`/ns/pkg/name`, `/ns/name`, `_` = the caller's namespace) and
    /// its package defaults. Another namespace's component must be published.
    async fn resolve_component(&self, subject: &str, component: &str) -> Result<Resolved, String> {
        let missing = || format!("Sequence component does not exist: {component}");
        let (ns, pkg, name) = split_fqn(component).ok_or_else(missing)?;
        let ns = if ns == "_" { subject } else { ns };
        resolve(&*self.inner.store, subject, ns, pkg, name)
            .await
            .map_err(|e| match e {
                ResolveError::NotFound | ResolveError::Forbidden => missing(),
                other => format!("cannot resolve sequence component {component}: {other}"),
            })
    }
}

/// A sequence activation being run.
struct SeqJob {
    id: ActivationId,
    subject: String,
    action: ActionDoc,
    path: String,
    params: Map<String, Value>,
    cause: Option<ActivationId>,
    in_sequence: bool,
    received: Instant,
}

impl SeqJob {
    fn failed_record(&self, status: Status, message: &str) -> ActivationRecord {
        let now = wisp_core::now_ms();
        let response = ActivationResponse::error(status, message);
        let mut annotations = base_annotations(
            &self.path,
            "sequence",
            &self.action.limits,
            self.in_sequence,
        );
        if !self.in_sequence {
            annotations.push(KeyValue::new("topmost", true));
        }
        ActivationRecord {
            activation_id: self.id.clone(),
            namespace: self.subject.clone(),
            name: self.action.name.clone(),
            version: self.action.version.clone(),
            subject: self.subject.clone(),
            start: now,
            end: now,
            duration: 0,
            status_code: response.status_code,
            response,
            logs: Vec::new(),
            annotations,
            cause: self.cause.clone(),
            publish: false,
        }
    }
}

fn base_annotations(path: &str, kind: &str, limits: &Limits, in_sequence: bool) -> Vec<KeyValue> {
    let mut annotations = Vec::with_capacity(7);
    annotations.push(KeyValue::new("path", path.trim_start_matches('/')));
    annotations.push(KeyValue::new("kind", kind));
    annotations.push(KeyValue::new(
        "limits",
        serde_json::to_value(limits).unwrap_or(Value::Null),
    ));
    if in_sequence {
        annotations.push(KeyValue::new("causedBy", "sequence"));
    }
    annotations
}

fn parse_digest(action: &ActionDoc, digest: Option<&str>) -> Result<Digest, InvokeError> {
    digest
        .and_then(|d| d.parse::<Digest>().ok())
        .ok_or_else(|| {
            InvokeError::Internal(format!(
                "action /{}/{} has no valid code digest",
                action.namespace, action.name
            ))
        })
}

/// Splits `/ns/pkg/name`, `/ns/name` (leading slash optional) into its parts.
pub fn split_fqn(fqn: &str) -> Option<(&str, Option<&str>, &str)> {
    let parts: Vec<&str> = fqn.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [ns, name] if !ns.is_empty() && !name.is_empty() => Some((ns, None, name)),
        [ns, pkg, name] if !ns.is_empty() && !pkg.is_empty() && !name.is_empty() => {
            Some((ns, Some(pkg), name))
        }
        _ => None,
    }
}

/// An action found for a caller, with its package's default parameters merged under its own.
pub struct Resolved {
    pub action: ActionDoc,
    /// `/ns/pkg/name` or `/ns/name`.
    pub path: String,
    /// Package parameters < action parameters.
    pub defaults: Map<String, Value>,
}

/// Why an action could not be resolved for a caller.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("The requested resource does not exist.")]
    NotFound,
    #[error("You are not authorized to access this resource.")]
    Forbidden,
    #[error("store error: {0}")]
    Store(#[from] StoreError),
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> ApiError {
        match e {
            ResolveError::NotFound => ApiError::NotFound,
            ResolveError::Forbidden => ApiError::Forbidden,
            ResolveError::Store(e) => ApiError::Store(e),
        }
    }
}

/// Looks up action `ns[/pkg]/name` for `caller` (a namespace): the caller's own, or another
/// namespace's when the action (or its package) is published ([`ResolveError::Forbidden`] when it
/// exists but is private). Merges the package's parameters under the action's.
///
/// When `pkg` is a package binding, the action is the bound package's, and the parameters are
/// merged as OpenWhisk merges them: bound package < binding < action (< invocation, merged by the
/// caller). The bound package must still be the caller's or published.
pub async fn resolve(
    store: &dyn Store,
    caller: &str,
    ns: &str,
    pkg: Option<&str>,
    name: &str,
) -> Result<Resolved, ResolveError> {
    let package = match pkg {
        Some(p) => store.get_package(ns, p).await?,
        None => None,
    };
    if let Some(binding_pkg) = package.as_ref()
        && let Some(binding) = &binding_pkg.binding
    {
        if ns != caller && !binding_pkg.publish {
            return Err(ResolveError::Forbidden);
        }
        let bound = store
            .get_package(&binding.namespace, &binding.name)
            .await?
            .ok_or(ResolveError::NotFound)?;
        if binding.namespace != ns && !bound.publish {
            // The bound package is another namespace's and no longer shared.
            return Err(ResolveError::Forbidden);
        }
        let key = EntityKey::new(&binding.namespace, Some(&binding.name), name);
        let action = store
            .get_action(&key)
            .await?
            .ok_or(ResolveError::NotFound)?;
        let defaults = merge_params([
            bound.parameters.as_slice(),
            binding_pkg.parameters.as_slice(),
            action.parameters.as_slice(),
        ]);
        return Ok(Resolved {
            path: key.path(),
            action,
            defaults,
        });
    }
    let key = EntityKey::new(ns, pkg, name);
    let action = store
        .get_action(&key)
        .await?
        .ok_or(ResolveError::NotFound)?;
    if ns != caller && !action.publish && !package.as_ref().is_some_and(|p| p.publish) {
        return Err(ResolveError::Forbidden);
    }
    let empty: &[KeyValue] = &[];
    let pkg_params = package
        .as_ref()
        .map(|p| p.parameters.as_slice())
        .unwrap_or(empty);
    let defaults = merge_params([pkg_params, action.parameters.as_slice()]);
    Ok(Resolved {
        path: key.path(),
        action,
        defaults,
    })
}

/// Parses an OpenWhisk boolean query flag (`true`/`false`, absent = `false`).
fn query_flag(query: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match query.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" || v.is_empty() => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "The query parameter '{name}' was malformed: {v:?} is not true or false."
        ))),
    }
}

/// Parses an invoke body: empty = `{}`, else a JSON object.
pub fn parse_params_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "The request content was malformed: the parameters must be a JSON object.",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "The request content was malformed: {e}"
        ))),
    }
}

fn with_activation_header(mut response: Response, id: &ActivationId) -> Response {
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(ACTIVATION_ID_HEADER), v);
    }
    response
}

/// The HTTP status of a finished blocking invoke (OpenWhisk's mapping).
pub fn status_for(status: Status) -> StatusCode {
    match status {
        Status::Success => StatusCode::OK,
        Status::ApplicationError | Status::DeveloperError => StatusCode::BAD_GATEWAY,
        Status::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `POST /api/v1/namespaces/{ns}/actions/[{pkg}/]{name}?blocking=&result=`.
///
/// Body: the invocation parameters (a JSON object; empty = `{}`). Answers: 200 with the record
/// (or only the result with `result=true`); 502 for an application or developer error; 500 for a
/// whisk internal error; 202 `{activationId}` when non-blocking or past the blocking wait; 503 when
/// no runtime is healthy; 403/404 for another namespace's private or a missing action. Every
/// answer about an activation carries `x-openwhisk-activation-id`.
pub async fn invoke_route(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let caller = identity.namespace.as_str();
    let (Some(ns), Some(name)) = (path.get("ns"), path.get("name")) else {
        return Err(ApiError::NotFound);
    };
    let ns = if ns == "_" { caller } else { ns.as_str() };
    let pkg = path.get("pkg").map(String::as_str);
    let blocking = query_flag(&query, "blocking")?;
    let result_only = query_flag(&query, "result")?;
    let invocation = parse_params_body(&body)?;
    let resolved = resolve(&*state.store, caller, ns, pkg, name).await?;
    let mut params = resolved.defaults;
    params.extend(invocation);
    let request = InvokeRequest {
        subject: caller.to_string(),
        action: resolved.action,
        path: resolved.path,
        params,
        blocking,
        cause: None,
    };
    Ok(match state.invoker.invoke(request).await {
        Ok(outcome) => outcome_response(outcome, result_only),
        Err(e) => e.into_response(),
    })
}

/// Shapes an invoke's outcome as OpenWhisk answers it.
pub fn outcome_response(outcome: InvokeOutcome, result_only: bool) -> Response {
    match outcome {
        InvokeOutcome::Accepted(id) => with_activation_header(
            (StatusCode::ACCEPTED, Json(json!({ "activationId": id }))).into_response(),
            &id,
        ),
        InvokeOutcome::Completed(record) => {
            let status = status_for(record.response.status);
            let id = record.activation_id.clone();
            let response = if result_only {
                (status, Json(record.response.result)).into_response()
            } else {
                (status, Json(record)).into_response()
            };
            with_activation_header(response, &id)
        }
    }
}
