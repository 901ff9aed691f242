//! Test helpers shared by every wisp crate's tests and benches.
//!
//! - [`function_path`] / [`function_bytes`]: the guest programs of `functions/`, built for
//!   `wasm32-wasip1` in release **once per process** (a `OnceLock` guards the nested
//!   `cargo build`; later calls cost a `Path::exists`). When nothing changed the nested build is a
//!   cargo no-op (~0.2 s); a cold build of the functions workspace takes about a minute on 2 cores.
//!   The result lives in the functions' own target dir (see [`functions_target_dir`]), so it never
//!   fights the main workspace's build lock.
//! - [`c_function_path`]: the C action `functions/c/hello.c`, built with clang + wasi-libc when
//!   both are installed (`None` otherwise, so tests can skip with a note). Rebuilt only when the
//!   source is newer than the module.
//! - [`wait_healthy`]: polls `GET /health` with a minimal HTTP/1.1 client over `std::net` until a
//!   server answers 200 (up to 30 s). Holds nothing between calls.
//! - [`workspace_root`]: the root of the Cargo workspace (compile-time constant, free).
//!
//! Nothing here starts a tokio runtime or links wasmtime, so every crate can use it as a
//! dev-dependency without cost.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The wasm target every guest program is built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

/// The name [`function_path`] accepts for the C action (see [`c_function_path`]).
pub const C_FUNCTION_NAME: &str = "hello-c";

/// The Rust guest programs of `functions/`, one package and one `<name>.wasm` each.
///
/// Well-behaved: `hello`, `echo`, `web-hello`, `primes`, `aggregate`, `sleep`, `env`, `fill`.
/// Hostile (each must end with its exact OpenWhisk status, see `functions/README.md`):
/// `loop`, `membomb`, `recursion`, `trap`, `flood`, `badresult`, `exitcode`.
pub const RUST_FUNCTIONS: &[&str] = &[
    "hello",
    "echo",
    "web-hello",
    "primes",
    "aggregate",
    "sleep",
    "env",
    "loop",
    "membomb",
    "recursion",
    "trap",
    "flood",
    "badresult",
    "exitcode",
    "fill",
];

/// How long [`wait_healthy`] waits for a server before giving up.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// Path to the workspace root (the folder holding the root `Cargo.toml` and `functions/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the workspace root")
        .to_path_buf()
}

/// The `--target-dir` of the functions build: `$WISP_FUNCTIONS_TARGET_DIR` if set, else
/// `$CARGO_TARGET_DIR/wasm-functions` if `CARGO_TARGET_DIR` is set, else
/// `<root>/target/wasm-functions`.
pub fn functions_target_dir() -> PathBuf {
    resolve_target_dir(
        non_empty_env("WISP_FUNCTIONS_TARGET_DIR"),
        non_empty_env("CARGO_TARGET_DIR"),
        &workspace_root(),
    )
}

/// The rule of [`functions_target_dir`], over explicit values.
fn resolve_target_dir(
    wisp_dir: Option<OsString>,
    cargo_target_dir: Option<OsString>,
    root: &Path,
) -> PathBuf {
    match (wisp_dir, cargo_target_dir) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(dir)) => PathBuf::from(dir).join("wasm-functions"),
        (None, None) => root.join("target").join("wasm-functions"),
    }
}

/// Builds `functions/` for `wasm32-wasip1` in release once per process and returns the path of
/// `<name>.wasm`. `"hello-c"` returns the C action (panics when clang/wasi-libc are missing; call
/// [`c_function_path`] to skip instead).
///
/// # Panics
/// With a clear message (including cargo's stderr) when the build fails, when the
/// `wasm32-wasip1` target is not installed, or when `name` is not a function.
pub fn function_path(name: &str) -> PathBuf {
    if name == C_FUNCTION_NAME {
        return c_function_path().unwrap_or_else(|| {
            panic!(
                "wisp-testkit: the C action needs clang, lld and wasi-libc \
                 (apt-get install -y clang lld wasi-libc): {}",
                c_build().as_ref().err().map(String::as_str).unwrap_or("")
            )
        });
    }
    let dir = match rust_build() {
        Ok(dir) => dir,
        Err(message) => panic!("{message}"),
    };
    let path = dir.join(format!("{name}.wasm"));
    if !path.is_file() {
        panic!(
            "wisp-testkit: no function named {name:?} (expected {}); known functions: {}",
            path.display(),
            function_names().join(", ")
        );
    }
    path
}

/// The bytes of `<name>.wasm` (see [`function_path`]).
pub fn function_bytes(name: &str) -> Vec<u8> {
    let path = function_path(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("wisp-testkit: cannot read {}: {e}", path.display()))
}

/// All function names built: the Rust ones, plus `"hello-c"` when the C toolchain is present.
pub fn function_names() -> Vec<&'static str> {
    let mut names = RUST_FUNCTIONS.to_vec();
    if c_function_path().is_some() {
        names.push(C_FUNCTION_NAME);
    }
    names
}

/// Path of the C action (`functions/c/hello.c` compiled with clang + wasi-libc), or `None` when
/// clang or wasi-libc is not installed or the compile fails (the reason is printed once to
/// stderr, so a skipping test leaves a note).
pub fn c_function_path() -> Option<PathBuf> {
    c_build().as_ref().ok().cloned()
}

/// Waits until `GET http://{addr}/health` answers 200, polling for up to [`HEALTH_TIMEOUT`].
pub fn wait_healthy(addr: SocketAddr) -> anyhow::Result<()> {
    wait_healthy_for(addr, HEALTH_TIMEOUT)
}

/// [`wait_healthy`] with an explicit deadline.
pub fn wait_healthy_for(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match http_status(addr, "/health") {
            Ok(200) => return Ok(()),
            Ok(status) => format!("answered HTTP {status}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "http://{addr}/health did not answer 200 within {:?} (last attempt: {last})",
                timeout
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One `GET {path}` over a fresh connection; returns the HTTP status code.
fn http_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let io_timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, io_timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(io_timeout))?;
    stream.set_write_timeout(Some(io_timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    )?;
    stream.flush()?;
    // The status line is all we need; read until its end (or until the server closes).
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).context("reading the status line")?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 8192 {
            break;
        }
    }
    parse_status_line(&head)
}

/// Parses `HTTP/1.x NNN reason` at the start of `head`.
fn parse_status_line(head: &[u8]) -> anyhow::Result<u16> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end]).context("status line is not UTF-8")?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") => code
            .parse::<u16>()
            .with_context(|| format!("bad status code in {line:?}")),
        _ => bail!("not an HTTP response: {line:?}"),
    }
}

fn non_empty_env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The release dir of the functions build, or the error message to panic with.
fn rust_build() -> &'static Result<PathBuf, String> {
    static BUILD: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILD.get_or_init(build_functions)
}

fn build_functions() -> Result<PathBuf, String> {
    let root = workspace_root();
    let manifest = root.join("functions").join("Cargo.toml");
    let target_dir = functions_target_dir();
    check_wasm_target_installed()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(WASM_TARGET)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root.join("functions"));
    scrub_cargo_env(&mut cmd);
    let started = Instant::now();
    let output = cmd.output().map_err(|e| {
        format!(
            "wisp-testkit: could not run {} to build functions/: {e}",
            Path::new(&cargo).display()
        )
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let hint = if looks_like_missing_target(&stderr) {
            format!(
                "\nhint: the {WASM_TARGET} target is not installed: run `rustup target add {WASM_TARGET}`"
            )
        } else {
            String::new()
        };
        return Err(format!(
            "wisp-testkit: `cargo build --release --target {WASM_TARGET} --manifest-path {} \
             --target-dir {}` failed ({}){hint}\n--- cargo stderr ---\n{stderr}",
            manifest.display(),
            target_dir.display(),
            output.status
        ));
    }
    let elapsed = started.elapsed();
    if elapsed > Duration::from_secs(2) {
        eprintln!(
            "wisp-testkit: built functions/ for {WASM_TARGET} in {:.1}s into {}",
            elapsed.as_secs_f64(),
            target_dir.display()
        );
    }
    Ok(target_dir.join(WASM_TARGET).join("release"))
}

/// Removes the variables `cargo test`/`cargo bench`/build scripts inject that would redirect or
/// break the nested build (target dir, host rustflags, build target, jobserver, profile
/// overrides); keeps what configures cargo itself (home, registries, network, toolchain).
fn scrub_cargo_env(cmd: &mut Command) {
    const KEEP_PREFIXES: &[&str] = &[
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    const REMOVE: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_MAKEFLAGS",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_var = key.starts_with("CARGO_") || key == "CARGO";
        let keep = KEEP_PREFIXES.iter().any(|p| key.starts_with(p));
        if (cargo_var && !keep) || REMOVE.contains(&key) {
            cmd.env_remove(key);
        }
    }
}

fn looks_like_missing_target(stderr: &str) -> bool {
    stderr.contains("may not be installed")
        || (stderr.contains(WASM_TARGET) && stderr.contains("can't find crate for `std`"))
        || (stderr.contains(WASM_TARGET) && stderr.contains("can't find crate for `core`"))
}

/// Fails early, with the fix, when the standard library for the wasm target is missing.
fn check_wasm_target_installed() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
    else {
        // Let cargo report whatever is wrong with the toolchain.
        return Ok(());
    };
    if !out.status.success() {
        return Ok(());
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let lib = sysroot.join("lib").join("rustlib").join(WASM_TARGET);
    if lib.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "wisp-testkit: the {WASM_TARGET} target is not installed in {} \
             (no {}): run `rustup target add {WASM_TARGET}`",
            sysroot.display(),
            lib.display()
        ))
    }
}

/// The C action, or why it is unavailable.
fn c_build() -> &'static Result<PathBuf, String> {
    static BUILD: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILD.get_or_init(|| {
        let built = build_c_function();
        if let Err(reason) = &built {
            eprintln!("wisp-testkit: note: the C action is unavailable: {reason}");
        }
        built
    })
}

/// Candidate locations of the wasi-libc sysroot: Debian's `wasi-libc` package installs into
/// `/usr` (`/usr/lib/wasm32-wasi/libc.a`, `/usr/include/wasm32-wasi`), wasi-sdk into its own.
const WASI_SYSROOTS: &[&str] = &[
    "/usr",
    "/usr/share/wasi-sysroot",
    "/usr/lib/wasi-sysroot",
    "/opt/wasi-sdk/share/wasi-sysroot",
];

/// Whether `root` is a wasi-libc sysroot clang can use with `--target=wasm32-wasi`.
fn is_wasi_sysroot(root: &Path) -> bool {
    root.join("lib")
        .join("wasm32-wasi")
        .join("libc.a")
        .is_file()
}

fn build_c_function() -> Result<PathBuf, String> {
    let source = workspace_root().join("functions").join("c").join("hello.c");
    if !source.is_file() {
        return Err(format!("{} is missing", source.display()));
    }
    let sysroot = non_empty_env("WASI_SYSROOT")
        .map(PathBuf::from)
        .into_iter()
        .chain(WASI_SYSROOTS.iter().map(PathBuf::from))
        .find(|p| is_wasi_sysroot(p))
        .ok_or_else(|| {
            format!(
                "no wasi-libc sysroot found (tried $WASI_SYSROOT, {}); \
                 install it with `apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32`",
                WASI_SYSROOTS.join(", ")
            )
        })?;
    let clang = find_clang().ok_or_else(|| {
        "clang not found on PATH; install it with `apt-get install -y clang lld wasi-libc`"
            .to_string()
    })?;
    let out_dir = functions_target_dir().join("c");
    let output = out_dir.join(format!("{C_FUNCTION_NAME}.wasm"));
    if is_up_to_date(&output, &source) {
        return Ok(output);
    }
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    // Build into a temporary name first so a concurrent reader never sees a half-written module.
    let tmp = out_dir.join(format!("{C_FUNCTION_NAME}.{}.wasm.tmp", std::process::id()));
    let result = Command::new(&clang)
        .arg("--target=wasm32-wasi")
        .arg(format!("--sysroot={}", sysroot.display()))
        .args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&tmp)
        .arg(&source)
        .output()
        .map_err(|e| format!("could not run {}: {e}", clang.display()))?;
    if !result.status.success() {
        let _ = std::fs::remove_file(&tmp);
        let stderr = String::from_utf8_lossy(&result.stderr);
        let hint = if stderr.contains("libclang_rt.builtins-wasm32") {
            "\nhint: clang's wasm32 builtins are missing: \
             `apt-get install -y libclang-rt-14-dev-wasm32` (match your clang version)"
        } else {
            ""
        };
        return Err(format!(
            "{} failed ({}):\n{stderr}{hint}",
            clang.display(),
            result.status,
        ));
    }
    std::fs::rename(&tmp, &output)
        .map_err(|e| format!("cannot move {} into place: {e}", tmp.display()))?;
    Ok(output)
}

fn find_clang() -> Option<PathBuf> {
    if let Some(cc) = non_empty_env("WISP_CLANG") {
        return Some(PathBuf::from(cc));
    }
    let path = std::env::var_os("PATH")?;
    let names = [
        "clang", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14",
    ];
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn is_up_to_date(output: &Path, source: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(output), modified(source)) {
        (Some(out), Some(src)) => out >= src,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n").unwrap(), 200);
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\nx: y\r\n").unwrap(),
            503
        );
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 abc\r\n").is_err());
        assert!(parse_status_line(b"").is_err());
    }

    #[test]
    fn missing_target_is_recognised() {
        let stderr = "error[E0463]: can't find crate for `core`\n  = note: the `wasm32-wasip1` \
                      target may not be installed";
        assert!(looks_like_missing_target(stderr));
        assert!(!looks_like_missing_target("error: expected `;`"));
    }

    #[test]
    fn target_dir_prefers_the_wisp_variable_then_cargo_target_dir() {
        let root = Path::new("/repo");
        assert_eq!(
            resolve_target_dir(Some("/w".into()), Some("/c".into()), root),
            PathBuf::from("/w")
        );
        assert_eq!(
            resolve_target_dir(None, Some("/c".into()), root),
            PathBuf::from("/c/wasm-functions")
        );
        assert_eq!(
            resolve_target_dir(None, None, root),
            PathBuf::from("/repo/target/wasm-functions")
        );
    }

    #[test]
    fn workspace_root_holds_the_functions_workspace() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("functions").join("Cargo.toml").is_file());
    }
}
