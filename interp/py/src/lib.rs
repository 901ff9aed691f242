//! wisp's Python interpreter: RustPython 0.5 with its standard library frozen into the module,
//! as a WASI preview-1 reactor that `wisp_runtime::source` pre-initialises once per action.
//!
//! The exports are those of `interp/js`: `wisp_init() -> i32` (stdin: entry name, newline,
//! source; starts the VM, imports `json`/`os`/`traceback`, executes the source as `__main__`
//! and resolves the entry point), `wisp_stash() -> i32` (stores stdin only, for the "no
//! snapshot" comparison) and `wisp_run()` (renamed `_start` by the snapshot: params from stdin,
//! `os.environ` from the WASI environment, `main(params)` → the last stdout line).
//!
//! The environment is read with WASI's `environ_get` directly: the VM's `os` module read the
//! (empty) init-time environment through wasi-libc, which caches it, so the libc view would be
//! the snapshot's, not the activation's. `random` is re-seeded per activation.

use std::cell::RefCell;
use std::io::{Read, Write};

use rustpython_vm::builtins::{PyCode, PyStr};
use rustpython_vm::compiler::Mode;
use rustpython_vm::scope::Scope;
use rustpython_vm::{Interpreter, InterpreterBuilder, PyRef, Settings, VirtualMachine};

const PRELUDE: &str = include_str!("prelude.py");

struct State {
    interp: Interpreter,
    scope: Scope,
    run: PyRef<PyCode>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    static STASH: RefCell<Option<String>> = const { RefCell::new(None) };
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
    let _ = if fd == 2 {
        let mut e = std::io::stderr().lock();
        e.write_all(text.as_bytes()).and_then(|()| e.flush())
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(text.as_bytes()).and_then(|()| o.flush())
    };
}

mod wasi {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        pub fn environ_sizes_get(count: *mut usize, buf_size: *mut usize) -> u16;
        pub fn environ_get(environ: *mut *mut u8, buf: *mut u8) -> u16;
    }
}

/// The activation's environment, straight from WASI (bypassing wasi-libc's cached copy).
fn environment() -> Vec<(String, String)> {
    let (mut count, mut size) = (0usize, 0usize);
    // SAFETY: both out-pointers are valid for writes of one usize.
    if unsafe { wasi::environ_sizes_get(&mut count, &mut size) } != 0 {
        return Vec::new();
    }
    let mut ptrs: Vec<*mut u8> = vec![std::ptr::null_mut(); count];
    let mut buf = vec![0u8; size];
    // SAFETY: `ptrs` has room for `count` pointers and `buf` for `size` bytes, the sizes WASI
    // just reported; WASI writes NUL-terminated `KEY=VALUE` strings into `buf`.
    if unsafe { wasi::environ_get(ptrs.as_mut_ptr(), buf.as_mut_ptr()) } != 0 {
        return Vec::new();
    }
    buf.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn valid_entry(main: &str) -> bool {
    !main.is_empty()
        && main.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
                && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        })
}

fn text_of(vm: &VirtualMachine, scope: &Scope, name: &str) -> Result<String, String> {
    let value = scope
        .globals
        .get_item(name, vm)
        .map_err(|_| format!("the prelude set no {name}"))?;
    let s = value
        .downcast_ref::<PyStr>()
        .ok_or_else(|| format!("{name} is not a str"))?;
    Ok(s.to_string())
}

fn exception_text(vm: &VirtualMachine, e: &rustpython_vm::builtins::PyBaseExceptionRef) -> String {
    let mut out = String::new();
    let _ = vm.write_exception(&mut out, e);
    out.trim_end().to_string()
}

fn init(input: &str) -> Result<State, String> {
    let (main, source) = input.split_once('\n').unwrap_or((input, ""));
    let main = main.trim();
    let main = if main.is_empty() { "main" } else { main };
    if !valid_entry(main) {
        return Err(format!(
            "The entry point name {main:?} is not a Python identifier or dotted path."
        ));
    }
    let builder = InterpreterBuilder::new().settings(Settings::default());
    let defs = rustpython_stdlib::stdlib_module_defs(&builder.ctx);
    let interp = builder
        .add_native_modules(&defs)
        .add_frozen_modules(rustpython_pylib::FROZEN_STDLIB)
        .interpreter();
    let (scope, run) = interp.enter(|vm| -> Result<_, String> {
        let scope = vm.new_scope_with_builtins();
        vm.run_string(scope.clone(), PRELUDE, "<wisp-prelude>".to_owned())
            .map_err(|e| exception_text(vm, &e))?;
        let globals = &scope.globals;
        let set = |k: &str, v: &str| {
            globals
                .set_item(k, vm.ctx.new_str(v).into(), vm)
                .map_err(|e| exception_text(vm, &e))
        };
        set("_wisp_source", source)?;
        set("_wisp_main", main)?;
        vm.run_string(
            scope.clone(),
            "_wisp_loaded = _wisp_load(_wisp_source, _wisp_main)\ndel _wisp_source",
            "<wisp>".to_owned(),
        )
        .map_err(|e| exception_text(vm, &e))?;
        let loaded = text_of(vm, &scope, "_wisp_loaded")?;
        if let Some(error) = loaded.strip_prefix('1') {
            return Err(error.to_string());
        }
        let run = vm
            .compile(
                "_wisp_out = _wisp_run(_wisp_params, _wisp_env)",
                Mode::Exec,
                "<wisp>".to_owned(),
            )
            .map_err(|e| format!("{e}"))?;
        Ok((scope, run))
    })?;
    Ok(State { interp, scope, run })
}

fn activation(state: &State, params: String) -> Result<String, String> {
    state.interp.enter(|vm| {
        let globals = &state.scope.globals;
        let env = vm.ctx.new_dict();
        for (k, v) in environment() {
            env.set_item(k.as_str(), vm.ctx.new_str(v).into(), vm)
                .map_err(|e| exception_text(vm, &e))?;
        }
        globals
            .set_item("_wisp_params", vm.ctx.new_str(params).into(), vm)
            .map_err(|e| exception_text(vm, &e))?;
        globals
            .set_item("_wisp_env", env.into(), vm)
            .map_err(|e| exception_text(vm, &e))?;
        vm.run_code_obj(state.run.clone(), state.scope.clone())
            .map_err(|e| exception_text(vm, &e))?;
        text_of(vm, &state.scope, "_wisp_out")
    })
}

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

fn fail(error: &str) -> ! {
    write_fd(2, &format!("{error}\n"));
    write_fd(1, &format!("{{\"error\":{}}}\n", json_string(error)));
    std::process::exit(1)
}

#[unsafe(no_mangle)]
pub extern "C" fn wisp_init() -> i32 {
    match read_stdin().and_then(|input| init(&input)) {
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
    if STATE.with(|s| s.borrow().is_none()) {
        let Some(input) = STASH.with(|s| s.borrow_mut().take()) else {
            fail("The interpreter was not initialised with an action.")
        };
        match init(&input) {
            Ok(state) => STATE.with(|s| *s.borrow_mut() = Some(state)),
            Err(message) => fail(&message),
        }
    }
    let params = match read_stdin() {
        Ok(p) if p.trim().is_empty() => "{}".to_string(),
        Ok(p) => p,
        Err(message) => fail(&message),
    };
    let out = STATE.with(|s| {
        let state = s.borrow();
        activation(state.as_ref().expect("initialised above"), params)
    });
    match out {
        Ok(out) => match out.strip_prefix('1') {
            Some(failed) => {
                let (_, line) = failed.split_once('\n').unwrap_or((failed, "{}"));
                write_fd(1, &format!("{line}\n"));
                std::process::exit(1)
            }
            None => write_fd(1, &format!("{}\n", out.strip_prefix('0').unwrap_or(&out))),
        },
        Err(message) => fail(&message),
    }
}
