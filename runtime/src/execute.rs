//! One activation: a fresh `Store`, WASI p1 context, instantiate, call `_start`, and the
//! OpenWhisk status of how it ended.

use crate::cache::{Code, Prepared};
use crate::engine::{Host, MemoryLimiter, P2Wasi};
use crate::guests::{DEMOTE_AFTER_TICKS, Demotable, DemoteFlag, GuestPool};
use crate::metrics::Metrics;
use crate::output::{Output, SharedCapture};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtxBuilder};
use wisp_core::activation::Stream;
use wisp_core::{ActivationResponse, Limits, RunRequest, Status};

/// Largest result accepted (OpenWhisk's payload limit, 1 MB).
pub const MAX_RESULT_BYTES: usize = wisp_core::run::MAX_PAYLOAD_BYTES;

/// How the guest ended, before looking at its output.
#[derive(Debug)]
pub enum Ended {
    /// `_start` returned, or the guest called `proc_exit(0)`.
    Returned,
    /// `proc_exit(n)` with `n != 0`.
    Exit(i32),
    /// A wasm trap (unreachable, stack overflow, out-of-bounds...): its message.
    Trap(String),
    /// The time limit was reached.
    Timeout,
    /// The guest tried to grow its memory beyond the cap.
    MemoryCap,
    /// Any other failure of the guest (a WASI call it misused, a failed instantiation).
    Failed(String),
}

/// What one activation produced.
pub struct Outcome {
    pub response: ActivationResponse,
    pub logs: Vec<String>,
    /// Epoch ms.
    pub start: u64,
    /// Epoch ms.
    pub end: u64,
    pub duration: Duration,
    /// The store and what the activation holds (pool slot permit, memory reservation), for
    /// the caller to drop once the answer is built: the store first (recycling its pool
    /// slot), then the rest.
    pub store: Box<dyn Send>,
}

/// A store and what must outlive it; fields drop in order: the store first.
struct Guest<S> {
    store: S,
    _hold: Box<dyn Send>,
}

/// A fresh store for one activation: memory limiter and epoch deadline callback installed.
fn new_store<W: Send + 'static>(
    engine: &wasmtime::Engine,
    wasi: W,
    limits: &Limits,
    deadline: Instant,
    demote: DemoteFlag,
) -> Store<Host<W>> {
    let host = Host {
        wasi,
        limiter: MemoryLimiter {
            max_bytes: limits.memory_bytes(),
            hit: false,
        },
        deadline,
        timed_out: false,
        ticks: 0,
        demote,
    };
    let mut store = Store::new(engine, host);
    store.limiter(|h| &mut h.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let h = ctx.data_mut();
        if Instant::now() >= h.deadline {
            h.timed_out = true;
            Ok(UpdateDeadline::Interrupt)
        } else {
            h.ticks += 1;
            if h.ticks == DEMOTE_AFTER_TICKS {
                // A long guest: the rest of it runs in the background pool (see `guests`).
                h.demote.raise();
            }
            // Let other activations on this worker thread run, then continue.
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        }
    });
    store
}

/// An error, and whether it happened while instantiating.
type Failure = (bool, wasmtime::Error);

/// Runs one activation of `prepared`. Never fails: every way the guest can end is an
/// [`ActivationResponse`]. `hold` (pool-slot permit, memory reservation) is kept until the
/// store is dropped, wherever the guest ends up running; with a `pool`, a guest that runs past
/// its first ticks finishes there (see [`guests`](crate::guests)).
pub async fn execute(
    prepared: Arc<Prepared>,
    req: &RunRequest,
    stdin: Vec<u8>,
    metrics: &Arc<Metrics>,
    hold: Box<dyn Send>,
    pool: Option<&GuestPool>,
) -> Outcome {
    let limits = req.limits;
    let timeout = Duration::from_millis(limits.timeout);
    let capture = SharedCapture::new(limits.logs_bytes());
    let start_ms = wisp_core::now_ms();
    let started = Instant::now();
    let deadline = started + timeout;
    let demote = DemoteFlag::default();

    let mut wasi = WasiCtxBuilder::new();
    wasi.stdin(MemoryInputPipe::new(stdin))
        .stdout(capture.stream(Stream::Stdout))
        .stderr(capture.stream(Stream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .arg(&req.action)
        .env("__OW_ACTIVATION_ID", req.activation_id.as_str())
        .env("__OW_ACTION_NAME", &req.action)
        .env("__OW_NAMESPACE", &req.namespace)
        .env("__OW_ACTION_VERSION", &req.version)
        .env("__OW_API_HOST", &req.api_host)
        .env("__OW_DEADLINE", (start_ms + limits.timeout).to_string());

    let metrics = metrics.clone();
    let (ended, store): (Ended, Box<dyn Send>) = match &prepared.code {
        Code::Module(_) => {
            let engine = prepared.engine().clone();
            let store = new_store(&engine, wasi.build_p1(), &limits, deadline, demote.clone());
            let mut guest = Guest { store, _hold: hold };
            let run = async move {
                let Code::Module(pre) = &prepared.code else {
                    unreachable!("matched a module above")
                };
                let store = &mut guest.store;
                let call = async {
                    let t0 = Instant::now();
                    let instance = pre
                        .instantiate_async(&mut *store)
                        .await
                        .map_err(|e| (true, e))?;
                    metrics
                        .instantiate_seconds
                        .observe(t0.elapsed().as_secs_f64());
                    let start = instance
                        .get_typed_func::<(), ()>(&mut *store, "_start")
                        .map_err(|e| (true, e))?;
                    start
                        .call_async(&mut *store, ())
                        .await
                        .map_err(|e| (false, e))
                };
                let result = call.await;
                let ended = ended(result, guest.store.data());
                (ended, guest)
            };
            match Demotable::new(run, deadline.into(), demote, pool).await {
                Some((ended, guest)) => (ended, Box::new(guest)),
                // Dropped at the deadline, store first: the guest was blocked in a host call.
                None => (Ended::Timeout, Box::new(())),
            }
        }
        Code::Component(_) => {
            let p2 = P2Wasi {
                ctx: wasi.build(),
                table: ResourceTable::new(),
            };
            let engine = prepared.engine().clone();
            let store = new_store(&engine, p2, &limits, deadline, demote.clone());
            let mut guest = Guest { store, _hold: hold };
            let run = async move {
                let Code::Component(pre) = &prepared.code else {
                    unreachable!("matched a component above")
                };
                let store = &mut guest.store;
                let call = async {
                    let t0 = Instant::now();
                    let command = pre
                        .instantiate_async(&mut *store)
                        .await
                        .map_err(|e| (true, e))?;
                    metrics
                        .instantiate_seconds
                        .observe(t0.elapsed().as_secs_f64());
                    match command.wasi_cli_run().call_run(&mut *store).await {
                        Ok(Ok(())) => Ok(()),
                        // `run` returning `err` is the component's `exit(1)`.
                        Ok(Err(())) => {
                            Err((false, wasmtime::Error::new(wasmtime_wasi::I32Exit(1))))
                        }
                        Err(e) => Err((false, e)),
                    }
                };
                let result = call.await;
                let ended = ended(result, guest.store.data());
                (ended, guest)
            };
            match Demotable::new(run, deadline.into(), demote, pool).await {
                Some((ended, guest)) => (ended, Box::new(guest)),
                // Dropped at the deadline, store first: the guest was blocked in a host call.
                None => (Ended::Timeout, Box::new(())),
            }
        }
    };
    let duration = started.elapsed();
    let end_ms = wisp_core::now_ms();
    let out = capture.take();
    let response = respond(&ended, &out, &limits);
    Outcome {
        response,
        logs: out.logs,
        start: start_ms,
        end: end_ms,
        duration,
        store,
    }
}

fn ended<W>(result: Result<(), Failure>, host: &Host<W>) -> Ended {
    match result {
        _ if host.timed_out => Ended::Timeout,
        _ if host.limiter.hit => Ended::MemoryCap,
        Ok(()) => Ended::Returned,
        Err((instantiating, e)) => classify_error(instantiating, &e),
    }
}

fn classify_error(instantiating: bool, e: &wasmtime::Error) -> Ended {
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return if exit.0 == 0 {
            Ended::Returned
        } else {
            Ended::Exit(exit.0)
        };
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return Ended::Trap(trap.to_string());
    }
    if instantiating {
        Ended::Failed(format!("it could not be instantiated: {e}"))
    } else {
        Ended::Failed(format!("{e}"))
    }
}

/// The OpenWhisk response for how the guest ended and what it printed.
///
/// | how it ended | status | result |
/// |---|---|---|
/// | returned, last stdout line a JSON object without `error` | success | that object |
/// | returned, last stdout line a JSON object with `error` | application error | that object |
/// | returned, no last line or not a JSON object | action developer error | `{"error": "The action did not return a JSON object."}` |
/// | returned, result over 1 MB | action developer error | `{"error": "The action produced a response that exceeded the allowed length: ..."}` |
/// | time limit | action developer error | `{"error": "The action exceeded its time limit of N milliseconds."}` |
/// | memory cap | action developer error | `{"error": "The action exceeded its memory limit of N MB."}` |
/// | trap | action developer error | `{"error": "The action trapped: <trap>."}` |
/// | `exit(n)`, n ≠ 0 | action developer error | `{"error": "The action exited with code n."}` |
pub fn respond(ended: &Ended, out: &Output, limits: &Limits) -> ActivationResponse {
    let dev = |msg: String| ActivationResponse::error(Status::DeveloperError, msg);
    match ended {
        Ended::Timeout => dev(format!(
            "The action exceeded its time limit of {} milliseconds.",
            limits.timeout
        )),
        Ended::MemoryCap => dev(format!(
            "The action exceeded its memory limit of {} MB.",
            limits.memory
        )),
        Ended::Trap(t) => dev(format!("The action trapped: {t}.")),
        Ended::Exit(code) => dev(format!("The action exited with code {code}.")),
        Ended::Failed(msg) => dev(format!("The action failed: {msg}")),
        Ended::Returned => {
            if out.result_len > MAX_RESULT_BYTES {
                return dev(format!(
                    "The action produced a response that exceeded the allowed length: {} > {} bytes.",
                    out.result_len, MAX_RESULT_BYTES
                ));
            }
            match out
                .result_line
                .as_deref()
                .map(serde_json::from_str::<Value>)
            {
                Some(Ok(Value::Object(obj))) => {
                    let status = if obj.contains_key("error") {
                        Status::ApplicationError
                    } else {
                        Status::Success
                    };
                    ActivationResponse::new(status, Value::Object(obj))
                }
                _ => dev("The action did not return a JSON object.".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(line: Option<&str>) -> Output {
        Output {
            result_line: line.map(String::from),
            result_len: line.map_or(0, str::len),
            ..Output::default()
        }
    }

    #[test]
    fn status_mapping() {
        let l = Limits::default();
        let ok = respond(&Ended::Returned, &out(Some(r#"{"a":1}"#)), &l);
        assert_eq!(ok.status, Status::Success);
        assert_eq!(ok.result, serde_json::json!({"a":1}));
        let app = respond(&Ended::Returned, &out(Some(r#"{"error":"no"}"#)), &l);
        assert_eq!(app.status, Status::ApplicationError);
        for bad in [None, Some("not json"), Some("[1,2]"), Some("42")] {
            let r = respond(&Ended::Returned, &out(bad), &l);
            assert_eq!(r.status, Status::DeveloperError);
            assert_eq!(
                r.result["error"],
                "The action did not return a JSON object."
            );
        }
        let t = respond(
            &Ended::Timeout,
            &out(Some("{}")),
            &Limits { timeout: 100, ..l },
        );
        assert_eq!(
            t.result["error"],
            "The action exceeded its time limit of 100 milliseconds."
        );
        let m = respond(&Ended::MemoryCap, &out(None), &Limits { memory: 64, ..l });
        assert_eq!(
            m.result["error"],
            "The action exceeded its memory limit of 64 MB."
        );
        let e = respond(&Ended::Exit(3), &out(Some("{}")), &l);
        assert_eq!(e.status, Status::DeveloperError);
        assert!(e.result["error"].as_str().unwrap().contains("code 3"));
        let big = Output {
            result_len: MAX_RESULT_BYTES + 1,
            ..out(Some("{}"))
        };
        assert_eq!(
            respond(&Ended::Returned, &big, &l).status,
            Status::DeveloperError
        );
    }
}
