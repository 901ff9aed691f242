//! `wisp-runtime`: the invoker. It runs WebAssembly actions (WASI preview-1 command modules,
//! and WASI preview-2 command components) with wasmtime, one fresh instance per activation,
//! behind `POST /run`.
//!
//! # Types, what they cost and how long they live
//!
//! | type | lives | cost |
//! |---|---|---|
//! | [`Runtime`] | the process (or one per simulated runtime in `wisp up`); clones share everything | `new`: a few ms, builds the [`wasmtime::Engine`], reserves the pooling allocator's address space (`pool_slots` × ~4 GiB of *virtual* memory, nothing resident), starts one epoch-ticker thread |
//! | `Engine` + linkers | one per `Runtime` | the WASI p1 (modules) and p2 (components) linkers are built once |
//! | compiled code (`InstancePre` per digest) | in a moka cache weighted by code size (`code_cache_bytes`, LRU-ish TinyLFU eviction) and serialized on disk in `cache_dir` | compile: 10–100s of ms (Cranelift, on a blocking thread); disk load: ~1 ms (mmap + relocate); memory hit: a hash lookup |
//! | `Store` + instance | one activation | instantiate from a warm pool slot (copy-on-write memory image): µs; the slot is reset as soon as the answer is built, touching only the pages the guest dirtied (Linux `PAGEMAP_SCAN`): a few µs |
//! | [`output::SharedCapture`] | one activation | at most the `logs` limit plus two partial lines |
//! | [`admission::MemoryBudget`] | one per `Runtime` | reserve/release: one mutex lock; a wait: a oneshot channel |
//! | [`guests::GuestPool`] | one per `Runtime` | one thread per core (`guest_threads`), idle unless a guest runs past its first ticks |
//!
//! # An activation
//!
//! [`Runtime::run`] takes a [`RunRequest`](wisp_core::RunRequest):
//! 1. finds the code: memory cache → disk cache → inline `code` → `409 code_unknown` (the
//!    runtime never dials out for code). Loads are single-flight per digest. Code that is not
//!    a WASI command (not wasm; a module importing outside `wasi_snapshot_preview1` or without
//!    `_start: () -> ()`; a component importing more than WASI p2 or not exporting
//!    `wasi:cli/run`) is refused (`422`) and never cached.
//! 2. reserves its `limits.memory` MB of the memory budget (`user_memory_mb`), waiting in a
//!    queue fair between namespaces, at most its own timeout ([`admission`]); more than the
//!    whole budget is a `whisk internal error` at once, a time limit reached while waiting an
//!    `action developer error` (a busy runtime is not an unhealthy one);
//! 3. waits for a pool slot (a semaphore of `pool_slots` permits, one per module activation and
//!    [`cache::COMPONENT_SLOTS`] per component activation: excess requests queue, they do not
//!    fail);
//! 4. builds a `Store` with a WASI context: stdin = the params as JSON, env `__OW_ACTIVATION_ID`,
//!    `__OW_ACTION_NAME`, `__OW_NAMESPACE`, `__OW_ACTION_VERSION`, `__OW_API_HOST`,
//!    `__OW_DEADLINE`; no preopens, no sockets, nothing inherited from the host; clocks and random
//!    allowed; stdout/stderr into an [`output::Capture`];
//! 5. instantiates from the `InstancePre` and calls `_start` (a component: `wasi:cli/run`)
//!    asynchronously, on the task that received the request. Every epoch tick (2 ms) the guest
//!    yields to the tokio scheduler; from its second tick on it finishes on the [`guests`] pool,
//!    background threads at a lower OS priority, so CPU-bound guests never hold the request
//!    workers and another tenant's short activation is not queued behind them; past the
//!    deadline it is interrupted. A `tokio::time::timeout` around the call also
//!    covers a guest blocked in a host call (e.g. `poll_oneoff` sleeping);
//! 6. maps how it ended to OpenWhisk's status (below), drops the `Store` (its slot is reset),
//!    returns its memory reservation and answers.
//!
//! # Status mapping
//!
//! | how the guest ended | status | `result` |
//! |---|---|---|
//! | last non-blank stdout line is a JSON object without `error` | `success` | that object |
//! | last stdout line is a JSON object with `error` | `application error` | that object |
//! | no last line, or it is not a JSON object | `action developer error` | `{"error":"The action did not return a JSON object."}` |
//! | result line over 1 MB | `action developer error` | `{"error":"The action produced a response that exceeded the allowed length: N > M bytes."}` |
//! | time limit reached | `action developer error` | `{"error":"The action exceeded its time limit of N milliseconds."}` |
//! | linear memory grown past `limits.memory` MB | `action developer error` | `{"error":"The action exceeded its memory limit of N MB."}` |
//! | trap (`unreachable`, e.g. a Rust panic; stack overflow; out-of-bounds) | `action developer error` | `{"error":"The action trapped: <trap message>."}` |
//! | `exit(n)`, `n ≠ 0` (a component's `run` returning `err` counts as `exit(1)`) | `action developer error` | `{"error":"The action exited with code n."}` |
//! | time limit reached while waiting for memory | `action developer error` | `{"error":"The action exceeded its time limit of N milliseconds while waiting for M MB of memory on the runtime (its budget is B MB)."}` |
//! | memory limit over the whole budget | `whisk internal error` | `{"error":"The action's memory limit of M MB exceeds this runtime's memory budget of B MB."}` |
//! | engine failure | `whisk internal error` | `{"error": "<cause>"}` |
//!
//! Logs are every stdout line but the result line, and every stderr line, in arrival order,
//! formatted `ISO-timestamp stdout|stderr: text`. When their bytes exceed `limits.logs` MB
//! the rest is dropped and a stderr line "Logs were truncated because the total bytes size
//! exceeds the limit of N bytes." ends them; the result is still found.
//!
//! # HTTP ([`server::app`], [`serve`])
//!
//! `POST /run` (bearer token; 200 + `RunResponse` whatever the status; 400 malformed or params
//! not an object; 401 token; 409 `code_unknown`; 413 params over 1 MB; 422 invalid module; 503
//! draining), `POST /prepare`, `DELETE /code/{digest}` (token; 204: drops the digest from the
//! memory and disk caches), `GET /health`
//! (`{"status":"ok","userMemory":MB,"reservedMemory":MB,"inFlight":n,"waiting":n}`), `GET /ready`
//! (503 while draining), `GET /metrics` (see [`metrics`]).
//!
//! **Architecture Invariant**: this is the only crate that knows wasmtime and WASI.

pub mod admission;
pub mod cache;
pub mod config;
pub mod engine;
pub mod error;
pub mod execute;
pub mod guests;
pub mod metrics;
pub mod output;
mod runtime;
pub mod server;
pub mod source;

pub use cache::LoadKind;
pub use config::{Allocator, ArgsError, RuntimeArgs, RuntimeConfig};
pub use error::{RunError, RuntimeError};
pub use runtime::{CacheStats, Runtime};
pub use server::{app, serve, serve_runtime};
