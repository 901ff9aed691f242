//! Source kinds: JavaScript actions (`nodejs:*`) run by an interpreter that is itself a wasm
//! module, pre-initialised per action so an activation starts from a ready heap.
//!
//! # The interpreter
//!
//! `interp/js` (its own Cargo workspace, built for `wasm32-wasip1` by `runtime/build.rs` and
//! embedded here) is QuickJS-ng 0.16.2 through `rquickjs` 0.14, compiled with Debian's clang
//! against wasi-libc and linked by rustc. It is a WASI *reactor* (a `cdylib`: exports, no
//! `_start`, and no constructors, so no `_initialize` either) that implements OpenWhisk's Node.js runner conventions in a small JS prelude:
//! `function main(params)` / `exports.main` / `module.exports`, `exec.main` naming another
//! (dotted) entry point, a returned object or Promise as the result (`undefined` → `{}`),
//! `console.*` as stdout/stderr log lines, `process.env` from the WASI environment (the
//! `__OW_*` variables), `setTimeout`/`setInterval`, and a `require` that explains there are no
//! Node.js modules. It is not Node.js: no `fs`, `http`, `Buffer` or npm packages.
//!
//! # The snapshot ("wizer-style", with `wasmtime-wizer` 48 — the crate wasmtime ships for its
//! own `wizer`, built here against the same wasmtime 48 without a second copy of it)
//!
//! [`Snapshotter::snapshot`]:
//! 1. instruments the interpreter once (wizer's pass that exports every memory and global,
//!    including the shadow `__stack_pointer`), compiles it once per [`Snapshotter`];
//! 2. instantiates it with WASI preview 1, stdin = the entry name and the source, no
//!    environment, stdout/stderr captured; calls `_initialize` then `wisp_init`, which creates
//!    the QuickJS runtime and context, evaluates the prelude and the action's source and
//!    resolves its entry point — all under the action's time and memory limits;
//! 3. reads the instance's memory and globals and writes a new core module: the interpreter's
//!    code, data segments holding the post-init heap, globals with their post-init values,
//!    `_initialize` and `wisp_init` gone, and `wisp_run` exported as `_start`.
//!
//! That module is an ordinary wisp `wasm` action ([`Runtime::prepare`](crate::Runtime::prepare)
//! / [`Runtime::run`](crate::Runtime::run) run it unchanged, its compiled form is cached like any
//! other): its `_start` reads the params from stdin, sets `process.env`, calls the entry point,
//! drives the job queue and timers until the Promise settles, and prints the result as the last
//! stdout line. A thrown error or a rejected Promise prints `{"error": "<message>"}` as the last
//! line and exits with code 1 (the message and stack are also logged on stderr); a returned
//! `{error: …}` is an ordinary result line, so an application error.
//!
//! What must not be frozen into the snapshot is read only in `_start`: the environment
//! (wasi-libc caches it on first use), and `Math.random`'s seed (QuickJS seeds it when the
//! context is created; the prelude replaces it with a generator seeded from `random_get` per
//! activation). Top-level code runs at snapshot time, once per action, as OpenWhisk's `/init`.
//!
//! # Costs
//!
//! | step | cost |
//! |---|---|
//! | [`Snapshotter::new`] | nothing; the first snapshot instruments and compiles the interpreter (Cranelift, on a blocking thread: seconds) and keeps it |
//! | [`Snapshotter::snapshot`] | instantiate + evaluate the source + scan the heap + write the module: a few ms for a small action |
//! | the snapshot module | ≈ the interpreter's code plus the non-zero heap pages (see the `source` bench); compiled per action digest like any module |
//! | an activation | instantiate from the copy-on-write heap image + run: see the `source` bench |

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sha2::Digest as _;
use wasmtime::{Engine, InstancePre, Linker, Module, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wizer::{InstanceState, ModuleContext, SnapshotVal, ValType, Wizer};
use wisp_core::{Digest, Limits};

use crate::engine::{Host, MemoryLimiter, P1Host};

/// The JavaScript interpreter module (a WASI reactor), built from `interp/js` by `build.rs`.
pub const JS_INTERPRETER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wisp-interp-js.wasm"));

/// The Python interpreter module (a WASI reactor), built from `interp/py` by `build.rs` when the
/// `python` feature is on.
#[cfg(feature = "python")]
pub const PY_INTERPRETER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wisp-interp-py.wasm"));

/// What runs the source: the interpreter, not the OpenWhisk kind name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// QuickJS-ng through rquickjs, with OpenWhisk's Node.js conventions.
    JavaScript,
    /// RustPython with its frozen standard library, with OpenWhisk's Python conventions
    /// (available when built with the `python` feature).
    Python,
}

/// One kind an action may be created with, as `GET /` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// The OpenWhisk kind, e.g. `nodejs:20`.
    pub kind: &'static str,
    /// The family `GET /` groups kinds under (`nodejs`).
    pub family: &'static str,
    /// The kind `<family>:default` resolves to.
    pub default: bool,
    pub source: SourceKind,
    /// What really runs the code.
    pub interpreter: &'static str,
}

/// The interpreter behind every `nodejs:*` kind.
pub const JS_INTERPRETER_NAME: &str = "QuickJS-ng 0.16.2 (via rquickjs 0.14) in WebAssembly: \
     ES2023 and later, console, process.env, timers; no Node.js built-in modules or npm packages";

/// The interpreter behind `python:3`.
pub const PY_INTERPRETER_NAME: &str = "RustPython 0.5 (Python 3.14 language level) in \
     WebAssembly: its frozen standard library, print and os.environ; no pip packages, no C \
     extensions, no files or sockets";

const NODEJS_20: KindInfo = KindInfo {
    kind: "nodejs:20",
    family: "nodejs",
    default: true,
    source: SourceKind::JavaScript,
    interpreter: JS_INTERPRETER_NAME,
};

const NODEJS_22: KindInfo = KindInfo {
    kind: "nodejs:22",
    family: "nodejs",
    default: false,
    source: SourceKind::JavaScript,
    interpreter: JS_INTERPRETER_NAME,
};

#[cfg(feature = "python")]
const PYTHON_3: KindInfo = KindInfo {
    kind: "python:3",
    family: "python",
    default: true,
    source: SourceKind::Python,
    interpreter: PY_INTERPRETER_NAME,
};

/// The source kinds this runtime runs, in `GET /` order. `nodejs:20` and `nodejs:22` name the
/// same interpreter: OpenWhisk users pick one of those kinds, and their code gets the language
/// level of QuickJS-ng, not of a particular Node.js. `python:3` is there only when the runtime
/// is built with the `python` feature.
#[cfg(not(feature = "python"))]
pub const KINDS: &[KindInfo] = &[NODEJS_20, NODEJS_22];

/// The source kinds this runtime runs, in `GET /` order. `nodejs:20` and `nodejs:22` name the
/// same interpreter: OpenWhisk users pick one of those kinds, and their code gets the language
/// level of QuickJS-ng, not of a particular Node.js. `python:3` is RustPython.
#[cfg(feature = "python")]
pub const KINDS: &[KindInfo] = &[NODEJS_20, NODEJS_22, PYTHON_3];

impl SourceKind {
    /// The interpreter for an OpenWhisk kind: `nodejs:20`, `nodejs:22`, `nodejs:default`
    /// (see [`resolve_kind`] for the stored kind name).
    pub fn parse(kind: &str) -> Result<SourceKind, SourceError> {
        resolve_kind(kind)
            .map(|info| info.source)
            .ok_or_else(|| SourceError::UnsupportedKind(kind.to_string()))
    }

    /// The entry point OpenWhisk uses when `exec.main` is absent.
    pub fn default_main(self) -> &'static str {
        match self {
            SourceKind::JavaScript | SourceKind::Python => "main",
        }
    }

    /// The interpreter module, if this runtime was built with it.
    pub fn interpreter(self) -> Option<&'static [u8]> {
        match self {
            SourceKind::JavaScript => Some(JS_INTERPRETER),
            #[cfg(feature = "python")]
            SourceKind::Python => Some(PY_INTERPRETER),
            #[cfg(not(feature = "python"))]
            SourceKind::Python => None,
        }
    }
}

/// The [`KindInfo`] of `kind`; `<family>:default` is the family's default kind (what OpenWhisk
/// stores for it).
pub fn resolve_kind(kind: &str) -> Option<&'static KindInfo> {
    match kind.strip_suffix(":default") {
        Some(family) => KINDS.iter().find(|k| k.family == family && k.default),
        None => KINDS.iter().find(|k| k.kind == kind),
    }
}

/// Why an action's source could not be turned into a module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Not a kind of [`KINDS`].
    #[error("the runtime '{0}' is not supported by this platform")]
    UnsupportedKind(String),
    /// `exec.main` is not an identifier or a dotted path of identifiers.
    #[error("the entry point name {0:?} is not an identifier or a dotted path of identifiers")]
    InvalidEntry(String),
    /// The source exceeds [`SnapshotLimits::max_source_bytes`].
    #[error("the action's source is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The action's code failed to load: a syntax error, top-level code that threw, an entry
    /// point that is not a function. The action developer's fault; `message` is the engine's.
    #[error("{message}")]
    Init { message: String },
    /// Top-level code ran past the time limit.
    #[error("initializing the action exceeded its time limit of {0} milliseconds")]
    InitTimeout(u64),
    /// Top-level code grew the memory past the cap.
    #[error("initializing the action exceeded its memory limit of {0} MB")]
    InitMemory(u64),
    /// The engine or the snapshot writer failed: not the action's fault.
    #[error("cannot snapshot the interpreter: {0}")]
    Internal(String),
}

/// Bounds of one snapshot (the action's top-level code runs inside them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub max_source_bytes: usize,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        SnapshotLimits::from(&Limits::default())
    }
}

impl From<&Limits> for SnapshotLimits {
    /// The action's own `timeout` and `memory`; sources up to OpenWhisk's 48 MB code limit.
    fn from(limits: &Limits) -> Self {
        SnapshotLimits {
            timeout: Duration::from_millis(limits.timeout),
            memory_bytes: limits.memory_bytes(),
            max_source_bytes: wisp_core::run::MAX_CODE_BYTES,
        }
    }
}

/// Whether the snapshot holds the evaluated source or only the source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prewarm {
    /// The source evaluated and its entry point resolved: what actions use.
    Evaluated,
    /// Only the source text stored: every activation starts QuickJS and evaluates the source
    /// from scratch. For measuring what the snapshot saves.
    None,
}

/// The key under which to remember the snapshot of `source`: it changes with the interpreter,
/// the kind, the entry point and the source. (The snapshot module itself is prepared and run
/// under its own digest, `Digest::of(&module)`, as the runtime checks; it differs between two
/// snapshots of the same source, since QuickJS seeds its hash tables from the clock.)
pub fn code_digest(kind: SourceKind, source: &str, main: Option<&str>) -> Digest {
    static JS_SHA: OnceLock<[u8; 32]> = OnceLock::new();
    static PY_SHA: OnceLock<[u8; 32]> = OnceLock::new();
    let sha = match kind {
        SourceKind::JavaScript => &JS_SHA,
        SourceKind::Python => &PY_SHA,
    };
    let interp =
        sha.get_or_init(|| sha2::Sha256::digest(kind.interpreter().unwrap_or_default()).into());
    let mut h = sha2::Sha256::new();
    h.update(b"wisp-source-snapshot-v1\0");
    h.update(interp);
    h.update(format!("{kind:?}\0{}\0", main.unwrap_or(kind.default_main())).as_bytes());
    h.update(source.as_bytes());
    Digest::try_from(hex::encode(h.finalize())).expect("a sha256 in lowercase hex")
}

/// Snapshots `source` with a [`Snapshotter`] made for this call: it compiles the interpreter
/// (seconds). Keep a [`Snapshotter`] to snapshot more than one action.
pub async fn snapshot(
    engine: &Engine,
    kind: SourceKind,
    source: &str,
    main: Option<&str>,
) -> Result<Vec<u8>, SourceError> {
    Snapshotter::new(engine.clone())
        .snapshot(kind, source, main, &SnapshotLimits::default())
        .await
}

/// Turns sources into pre-initialised action modules. Cheap to clone (one `Arc`); holds the
/// engine, a WASI p1 linker and, once used, the compiled instrumented interpreter. The engine's
/// epoch must advance (a [`Runtime`](crate::Runtime)'s does) for the time limit to hold. Each
/// snapshot takes one instance slot of the engine's pooling allocator while it runs.
#[derive(Clone)]
pub struct Snapshotter {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<P1Host>,
    js: tokio::sync::OnceCell<Instrumented>,
    py: tokio::sync::OnceCell<Instrumented>,
}

/// The interpreter with every memory and global exported, compiled and linked.
struct Instrumented {
    cx: ModuleContext<'static>,
    pre: InstancePre<P1Host>,
}

/// Largest init-time output kept for the error message.
const INIT_OUTPUT_BYTES: usize = 64 << 10;

impl Snapshotter {
    pub fn new(engine: Engine) -> Snapshotter {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |h: &mut P1Host| &mut h.wasi)
            .expect("WASI p1 defines each import once");
        Snapshotter {
            inner: Arc::new(Inner {
                engine,
                linker,
                js: tokio::sync::OnceCell::new(),
                py: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The module of `source` evaluated by `kind`'s interpreter: an ordinary action module.
    pub async fn snapshot(
        &self,
        kind: SourceKind,
        source: &str,
        main: Option<&str>,
        limits: &SnapshotLimits,
    ) -> Result<Vec<u8>, SourceError> {
        self.snapshot_with(kind, source, main, limits, Prewarm::Evaluated)
            .await
    }

    /// [`Snapshotter::snapshot`], choosing how much is done ahead of the activation.
    pub async fn snapshot_with(
        &self,
        kind: SourceKind,
        source: &str,
        main: Option<&str>,
        limits: &SnapshotLimits,
        prewarm: Prewarm,
    ) -> Result<Vec<u8>, SourceError> {
        let main = main.unwrap_or(kind.default_main());
        if !is_entry_path(main) {
            return Err(SourceError::InvalidEntry(main.to_string()));
        }
        if source.len() > limits.max_source_bytes {
            return Err(SourceError::TooLarge {
                size: source.len(),
                limit: limits.max_source_bytes,
            });
        }
        let interp = self.instrumented(kind).await?;
        let init_func = match prewarm {
            Prewarm::Evaluated => "wisp_init",
            Prewarm::None => "wisp_stash",
        };
        let mut input = Vec::with_capacity(main.len() + 1 + source.len());
        input.extend_from_slice(main.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(source.as_bytes());
        let stdout = MemoryOutputPipe::new(INIT_OUTPUT_BYTES);
        let stderr = MemoryOutputPipe::new(INIT_OUTPUT_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(input))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build_p1();
        let deadline = Instant::now() + limits.timeout;
        let mut store = Store::new(
            &self.inner.engine,
            Host {
                wasi,
                limiter: MemoryLimiter {
                    max_bytes: limits.memory_bytes,
                    hit: false,
                },
                deadline,
                timed_out: false,
                // Initialisation yields on each tick but is never moved to the guest pool.
                ticks: 0,
                demote: Default::default(),
            },
        );
        store.limiter(|h| &mut h.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let h = ctx.data_mut();
            if Instant::now() >= h.deadline {
                h.timed_out = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        let run = async {
            let instance = interp.pre.instantiate_async(&mut store).await?;
            // A reactor with C/C++ constructors exports `_initialize` to run them.
            if let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
                initialize.call_async(&mut store, ()).await?;
            }
            let init = instance.get_typed_func::<(), i32>(&mut store, init_func)?;
            let status = init.call_async(&mut store, ()).await?;
            Ok::<_, wasmtime::Error>((instance, status))
        };
        let ran = tokio::time::timeout_at(deadline.into(), run).await;
        let output = || {
            let mut text = String::from_utf8_lossy(&stderr.contents()).into_owned();
            let out = String::from_utf8_lossy(&stdout.contents()).into_owned();
            if text.trim().is_empty() {
                text = out;
            }
            text.trim().to_string()
        };
        let limit_ms = limits.timeout.as_millis() as u64;
        let instance = match ran {
            Err(_) => return Err(SourceError::InitTimeout(limit_ms)),
            Ok(_) if store.data().timed_out => return Err(SourceError::InitTimeout(limit_ms)),
            Ok(_) if store.data().limiter.hit => {
                return Err(SourceError::InitMemory((limits.memory_bytes >> 20) as u64));
            }
            Ok(Ok((instance, 0))) => instance,
            Ok(Ok((_, _))) => return Err(SourceError::Init { message: output() }),
            Ok(Err(e)) => {
                let message = match e.downcast_ref::<wasmtime::Trap>() {
                    Some(trap) => {
                        format!("the interpreter trapped while loading the action: {trap}")
                    }
                    None => return Err(SourceError::Internal(format!("{e:#}"))),
                };
                let logged = output();
                return Err(SourceError::Init {
                    message: if logged.is_empty() {
                        message
                    } else {
                        format!("{message}\n{logged}")
                    },
                });
            }
        };
        let mut wizer = Wizer::new();
        wizer.init_func(init_func).func_rename("_start", "wisp_run");
        let mut state = StoreState {
            store: &mut store,
            instance,
        };
        wizer
            .snapshot(&interp.cx, &mut state)
            .await
            .map_err(|e| SourceError::Internal(format!("{e:#}")))
    }

    async fn instrumented(&self, kind: SourceKind) -> Result<&Instrumented, SourceError> {
        let cell = match kind {
            SourceKind::JavaScript => &self.inner.js,
            SourceKind::Python => &self.inner.py,
        };
        let wasm = kind
            .interpreter()
            .ok_or_else(|| SourceError::UnsupportedKind(format!("{kind:?}")))?;
        cell.get_or_try_init(|| async {
            let engine = self.inner.engine.clone();
            let (cx, module) = tokio::task::spawn_blocking(move || {
                let (cx, instrumented) = Wizer::new()
                    .instrument(wasm)
                    .map_err(|e| format!("instrumenting the interpreter: {e:#}"))?;
                let module = Module::new(&engine, &instrumented)
                    .map_err(|e| format!("compiling the interpreter: {e:#}"))?;
                Ok::<_, String>((cx, module))
            })
            .await
            .map_err(|e| SourceError::Internal(format!("the compile task failed: {e}")))?
            .map_err(SourceError::Internal)?;
            let pre =
                self.inner.linker.instantiate_pre(&module).map_err(|e| {
                    SourceError::Internal(format!("linking the interpreter: {e:#}"))
                })?;
            Ok(Instrumented { cx, pre })
        })
        .await
    }
}

/// Whether `main` is a JavaScript identifier or a dotted path of them (`main`, `handlers.run`).
/// ASCII only: what OpenWhisk users name entry points.
pub fn is_entry_path(main: &str) -> bool {
    !main.is_empty()
        && main.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c == '_' || c == '$' || c.is_ascii_alphabetic())
                && chars.all(|c| c == '_' || c == '$' || c.is_ascii_alphanumeric())
        })
}

/// The instance state wizer reads the snapshot from.
struct StoreState<'a> {
    store: &'a mut Store<P1Host>,
    instance: wasmtime::Instance,
}

impl InstanceState for StoreState<'_> {
    async fn global_get(&mut self, name: &str, _type_hint: ValType) -> SnapshotVal {
        let global = self
            .instance
            .get_global(&mut *self.store, name)
            .expect("wizer's instrumentation exports every global it asks for");
        match global.get(&mut *self.store) {
            wasmtime::Val::I32(x) => SnapshotVal::I32(x),
            wasmtime::Val::I64(x) => SnapshotVal::I64(x),
            wasmtime::Val::F32(x) => SnapshotVal::F32(x),
            wasmtime::Val::F64(x) => SnapshotVal::F64(x),
            wasmtime::Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => {
                panic!("wizer rejects modules with reference-typed mutable globals: {other:?}")
            }
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self
            .instance
            .get_memory(&mut *self.store, name)
            .expect("wizer's instrumentation exports every memory it asks for");
        contents(memory.data(&*self.store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_resolve_with_their_default() {
        assert_eq!(SourceKind::parse("nodejs:20"), Ok(SourceKind::JavaScript));
        assert_eq!(SourceKind::parse("nodejs:22"), Ok(SourceKind::JavaScript));
        assert_eq!(
            resolve_kind("nodejs:default").map(|k| k.kind),
            Some("nodejs:20")
        );
        assert_eq!(
            SourceKind::parse("nodejs:6"),
            Err(SourceError::UnsupportedKind("nodejs:6".into()))
        );
        assert!(SourceKind::parse("wasm").is_err());
        assert!(SourceKind::parse("python:2").is_err());
        for family in KINDS.iter().map(|k| k.family) {
            let defaults = KINDS.iter().filter(|k| k.family == family && k.default);
            assert_eq!(defaults.count(), 1, "one default per family");
        }
    }

    #[test]
    fn entry_paths() {
        for ok in ["main", "handler", "$x", "_a1", "exports.main", "a.b.c"] {
            assert!(is_entry_path(ok), "{ok}");
        }
        for bad in ["", "1a", "a..b", "a.", "main()", "a-b", "a b", "x;y"] {
            assert!(!is_entry_path(bad), "{bad}");
        }
    }

    #[test]
    fn digests_change_with_each_input() {
        let k = SourceKind::JavaScript;
        let a = code_digest(k, "function main(){}", None);
        assert_eq!(a, code_digest(k, "function main(){}", Some("main")));
        assert_ne!(a, code_digest(k, "function main(){} ", None));
        assert_ne!(a, code_digest(k, "function main(){}", Some("other")));
    }

    #[test]
    fn the_interpreter_is_a_wasi_reactor() {
        let engine = Engine::default();
        let module = Module::new(&engine, JS_INTERPRETER).expect("the interpreter compiles");
        // (The Python interpreter has the same exports; compiling its 10 MB of code here would
        // add a minute to the unit tests: tests/source_py.rs runs it.)
        let exports: Vec<_> = module.exports().map(|e| e.name().to_string()).collect();
        for name in ["wisp_init", "wisp_stash", "wisp_run", "memory"] {
            assert!(exports.iter().any(|e| e == name), "{name} in {exports:?}");
        }
        for import in module.imports() {
            assert_eq!(import.module(), crate::engine::WASI_P1);
        }
    }
}
