//! wisp's JavaScript interpreter: QuickJS-ng (through `rquickjs`) as a WASI preview-1 reactor
//! that `wisp_runtime::source` pre-initialises once per action and then runs as an ordinary
//! wisp `wasm` action.
//!
//! # Exports
//!
//! - `wisp_init() -> i32`: reads the action from stdin (first line: the entry point name, e.g.
//!   `main` or `handlers.run`; the rest: the source text), creates the QuickJS runtime and
//!   context, evaluates the prelude (`prelude.js`: `console`, `process`, timers, `require`
//!   that explains it has no modules) and the source in a CommonJS-like function scope, and
//!   resolves the entry point. 0 on success; 1 with the reason on stderr otherwise. The host
//!   snapshots the instance right after this returns, so the parsed program is in the heap.
//! - `wisp_stash() -> i32`: only stores stdin (entry + source) for `wisp_run` to evaluate
//!   later: the "no snapshot" comparison, where every activation starts QuickJS from zero.
//! - `wisp_run()`: renamed `_start` by the snapshot. Reads the params (one JSON object) from
//!   stdin, sets `process.env` from the WASI environment, calls the entry point, runs the job
//!   queue and timers until its Promise settles, and prints the result as the last stdout line.
//!   A thrown error or a rejected Promise prints `{"error": message}` and exits with code 1.
//!
//! Nothing reads the WASI environment, arguments or randomness before the snapshot: those are
//! the activation's own, read in `wisp_run` (wasi-libc caches the environment on first use, so
//! reading it during `wisp_init` would freeze the init-time environment into every
//! activation). `Math.random` is re-seeded from `random_get` per activation for the same reason.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::time::Duration;

use rquickjs::context::EvalOptions;
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Promise, Runtime,
};

const PRELUDE: &str = include_str!("prelude.js");

/// The QuickJS-ng version compiled in (`rquickjs-sys`), shown as `process.versions.quickjs`.
const ENGINE_VERSION: &str = "quickjs-ng 0.16.2";

/// QuickJS's own stack limit, below the 1 MiB shadow stack Rust gives wasm32 binaries, so deep
/// recursion is a catchable `RangeError` rather than a trap.
const MAX_STACK_BYTES: usize = 768 << 10;

/// The interpreter after `wisp_init`: lives in the snapshot.
struct State {
    // Field order is drop order: the harness before the context before the runtime.
    harness: Persistent<Object<'static>>,
    context: Context,
    _runtime: Runtime,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    /// Entry + source kept by `wisp_stash`, evaluated by `wisp_run`.
    static STASH: RefCell<Option<String>> = const { RefCell::new(None) };
    /// xorshift64* state for `Math.random`, seeded in `wisp_run`.
    static RNG: RefCell<u64> = const { RefCell::new(0x9e37_79b9_7f4a_7c15) };
    /// Whether the last byte written to stdout ended a line (the result must start one).
    static STDOUT_LINE_START: Cell<bool> = const { Cell::new(true) };
}

fn read_stdin() -> Result<String, String> {
    let mut text = String::new();
    std::io::stdin()
        .lock()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    Ok(text)
}

fn write_fd(fd: i32, text: &str) {
    if text.is_empty() {
        return;
    }
    // Unbuffered, so stdout and stderr lines reach the logs in the order they were written.
    let _ = if fd == 2 {
        let mut e = std::io::stderr().lock();
        e.write_all(text.as_bytes()).and_then(|()| e.flush())
    } else {
        STDOUT_LINE_START.with(|s| s.set(text.ends_with('\n')));
        let mut o = std::io::stdout().lock();
        o.write_all(text.as_bytes()).and_then(|()| o.flush())
    };
}

/// Prints the result line: on a line of its own, and the last one on stdout.
fn write_result(line: &str) {
    let fresh = STDOUT_LINE_START.with(Cell::get);
    write_fd(1, &format!("{}{line}\n", if fresh { "" } else { "\n" }));
}

fn next_random() -> f64 {
    RNG.with(|r| {
        let mut x = *r.borrow();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *r.borrow_mut() = x;
        // 53 random bits → [0, 1).
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn seed_random() {
    let mut seed = [0u8; 8];
    let s = match getrandom::fill(&mut seed) {
        Ok(()) => u64::from_le_bytes(seed),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    RNG.with(|r| *r.borrow_mut() = s | 1);
}

/// Whether `main` is a dotted path of identifiers (`main`, `handlers.run`).
fn valid_entry(main: &str) -> bool {
    !main.is_empty()
        && main.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c == '_' || c == '$' || c.is_ascii_alphabetic())
                && chars.all(|c| c == '_' || c == '$' || c.is_ascii_alphanumeric())
        })
}

/// The action's source inside a function scope (OpenWhisk's runner evaluates it the same way),
/// returning the entry point if the scope defines it. The prefix shares the first line so that
/// line numbers in errors match the user's file.
fn wrap(source: &str, main: &str) -> String {
    let first = main.split('.').next().unwrap_or(main);
    format!(
        "(function (exports, require, module, __filename, __dirname) {{{source}\n;return [typeof {first} === \"undefined\" ? undefined : ({main})];\n}})"
    )
}

/// An exception as JavaScript prints it: `TypeError: message`, then the stack.
fn caught(e: CaughtError<'_>) -> String {
    match e {
        CaughtError::Exception(ex) => {
            let name: Option<String> = ex.get("name").ok().flatten();
            let mut text = match (name, ex.message()) {
                (Some(name), Some(message)) if !message.is_empty() => format!("{name}: {message}"),
                (Some(name), _) => name,
                (None, message) => message.unwrap_or_else(|| "Error".into()),
            };
            // The user's frames only: the prelude's are wisp's, not the action's.
            let stack = ex.stack().unwrap_or_default();
            for frame in stack.lines().filter(|l| !l.trim().is_empty()) {
                if !frame.contains("wisp-prelude.js") {
                    text.push('\n');
                    text.push_str(frame.trim_end());
                }
            }
            text
        }
        CaughtError::Value(v) => match v.as_string().and_then(|s| s.to_string().ok()) {
            Some(s) => s,
            None => format!("{v:?}"),
        },
        other => other.to_string(),
    }
}

/// Creates the interpreter and evaluates the action (`input`: entry name, newline, source).
fn init(input: &str) -> Result<State, String> {
    let (main, source) = input.split_once('\n').unwrap_or((input, ""));
    let main = main.trim();
    let main = if main.is_empty() { "main" } else { main };
    if !valid_entry(main) {
        return Err(format!(
            "The entry point name {main:?} is not a JavaScript identifier or dotted path."
        ));
    }
    let runtime = Runtime::new().map_err(|e| format!("cannot start QuickJS: {e}"))?;
    runtime.set_max_stack_size(MAX_STACK_BYTES);
    let context = Context::full(&runtime).map_err(|e| format!("cannot start QuickJS: {e}"))?;
    let harness = context.with(|ctx| -> Result<Persistent<Object<'static>>, String> {
        let native = natives(&ctx).map_err(|e| format!("cannot set up the natives: {e}"))?;
        let prelude: Function = ctx
            .eval_with_options(PRELUDE, options("wisp-prelude.js"))
            .catch(&ctx)
            .map_err(caught)?;
        let harness: Object = prelude.call((native,)).catch(&ctx).map_err(caught)?;
        let wrapped: Function = ctx
            .eval_with_options(wrap(source, main), options("action.js"))
            .catch(&ctx)
            .map_err(caught)?;
        let load: Function = harness.get("load").catch(&ctx).map_err(caught)?;
        load.call::<_, ()>((wrapped, main))
            .catch(&ctx)
            .map_err(caught)?;
        // Top-level promises and timers of the source run in the activation, not here.
        Ok(Persistent::save(&ctx, harness))
    })?;
    runtime.run_gc();
    Ok(State {
        harness,
        context,
        _runtime: runtime,
    })
}

fn options(filename: &str) -> EvalOptions {
    let mut o = EvalOptions::default();
    o.global = true;
    o.strict = false;
    o.filename = Some(filename.to_string());
    o
}

/// `process.exit(code)`.
fn js_exit(code: i32) {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

fn natives<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    let native = Object::new(ctx.clone())?;
    native.set(
        "write",
        Function::new(ctx.clone(), |fd: i32, text: String| write_fd(fd, &text))?,
    )?;
    native.set("exit", Function::new(ctx.clone(), js_exit)?)?;
    native.set("random", Function::new(ctx.clone(), next_random)?)?;
    native.set("engineVersion", ENGINE_VERSION)?;
    Ok(native)
}

/// What one activation printed last, and whether it failed.
enum Outcome {
    Result(String),
    Failed { error: String, line: String },
}

fn activation(state: &State, params: String) -> Result<Outcome, String> {
    state.context.with(|ctx| {
        let harness = state
            .harness
            .clone()
            .restore(&ctx)
            .map_err(|e| e.to_string())?;
        let env = Object::new(ctx.clone()).map_err(|e| e.to_string())?;
        for (k, v) in std::env::vars() {
            env.set(k, v).map_err(|e| e.to_string())?;
        }
        let run: Function = harness.get("run").map_err(|e| e.to_string())?;
        let next_timer: Function = harness.get("nextTimer").map_err(|e| e.to_string())?;
        let fire_timers: Function = harness.get("fireTimers").map_err(|e| e.to_string())?;
        let promise: Promise = run.call((params, env)).catch(&ctx).map_err(caught)?;
        loop {
            while ctx.execute_pending_job() {}
            if let Some(done) = promise.result::<Object>() {
                let done = done.catch(&ctx).map_err(caught)?;
                let line: String = done.get("line").map_err(|e| e.to_string())?;
                let error: Option<String> = done.get("error").map_err(|e| e.to_string())?;
                return Ok(match error {
                    Some(error) => Outcome::Failed { error, line },
                    None => Outcome::Result(line),
                });
            }
            let wait: f64 = next_timer.call(()).catch(&ctx).map_err(caught)?;
            if wait < 0.0 {
                let error =
                    "The action's Promise can never settle: nothing it waits for is pending."
                        .to_string();
                return Err(error);
            }
            if wait > 0.0 {
                std::thread::sleep(Duration::from_micros((wait * 1000.0) as u64));
            }
            if let Err(e) = fire_timers.call::<_, ()>(()).catch(&ctx) {
                return Err(format!("Uncaught exception in a timer: {}", caught(e)));
            }
        }
    })
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Ends a failed activation: `{"error": error}` as the result line (the prelude's own `line`
/// when it made one and already logged the error), then exit code 1.
fn fail(error: &str, line: Option<String>) -> ! {
    let line = line.unwrap_or_else(|| {
        write_fd(2, &format!("{error}\n"));
        format!("{{\"error\":{}}}", json_string(error))
    });
    write_result(&line);
    std::process::exit(1)
}

#[unsafe(no_mangle)]
pub extern "C" fn wisp_init() -> i32 {
    let result = read_stdin().and_then(|input| init(&input));
    match result {
        Ok(state) => {
            STATE.with(|s| *s.borrow_mut() = Some(state));
            0
        }
        Err(message) => {
            write_fd(2, &format!("{message}\n"));
            1
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn wisp_stash() -> i32 {
    match read_stdin() {
        Ok(input) => {
            STASH.with(|s| *s.borrow_mut() = Some(input));
            0
        }
        Err(message) => {
            write_fd(2, &format!("{message}\n"));
            1
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn wisp_run() {
    seed_random();
    let ready = STATE.with(|s| s.borrow().is_some());
    if !ready {
        let Some(input) = STASH.with(|s| s.borrow_mut().take()) else {
            fail("The interpreter was not initialised with an action.", None)
        };
        match init(&input) {
            Ok(state) => STATE.with(|s| *s.borrow_mut() = Some(state)),
            Err(message) => fail(&message, None),
        }
    }
    let params = match read_stdin() {
        Ok(p) if p.trim().is_empty() => "{}".to_string(),
        Ok(p) => p,
        Err(message) => fail(&message, None),
    };
    let outcome = STATE.with(|s| {
        let state = s.borrow();
        let state = state.as_ref().expect("initialised above");
        activation(state, params)
    });
    match outcome {
        Ok(Outcome::Result(line)) => write_result(&line),
        Ok(Outcome::Failed { error, line }) => fail(&error, Some(line)),
        Err(message) => fail(&message, None),
    }
}
