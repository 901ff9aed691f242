//! Builds the language interpreters of `interp/` (a workspace of its own) for `wasm32-wasip1`
//! and leaves them in `OUT_DIR`, where `src/source.rs` embeds them with `include_bytes!`.
//!
//! Needs what `scripts/setup.sh` installs: the `wasm32-wasip1` Rust target, and Debian's
//! `clang`, `lld`, `wasi-libc` (QuickJS is C). The nested build has its own target dir
//! (`$WISP_INTERP_TARGET_DIR`, else `<target>/wasm-interp` beside this build's `release/`), so it
//! never waits on the outer build's lock, and it is a cargo no-op when `interp/` is unchanged.
//! `WISP_INTERP_JS_WASM=<path>` embeds a module built elsewhere (by the same `interp/`
//! workspace, e.g. in an earlier stage of a container build) instead.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip1";

/// (package, file name in OUT_DIR, override variable, cargo feature that embeds it) of each
/// interpreter. Python (RustPython: a 20 MB module that takes minutes to build) only with the
/// `python` feature.
const ALL_INTERPRETERS: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "wisp-interp-js",
        "wisp-interp-js.wasm",
        "WISP_INTERP_JS_WASM",
        None,
    ),
    (
        "wisp-interp-py",
        "wisp-interp-py.wasm",
        "WISP_INTERP_PY_WASM",
        Some("CARGO_FEATURE_PYTHON"),
    ),
];

fn main() {
    let interpreters: Vec<(&str, &str, &str)> = ALL_INTERPRETERS
        .iter()
        .filter(|(_, _, _, feature)| feature.is_none_or(|f| std::env::var_os(f).is_some()))
        .map(|&(package, name, var, _)| (package, name, var))
        .collect();
    let interpreters = interpreters.as_slice();
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let interp = manifest_dir
        .parent()
        .expect("runtime/ lives in the workspace root")
        .join("interp");
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "js/Cargo.toml",
        "js/src",
        "py/Cargo.toml",
        "py/src",
    ] {
        println!("cargo:rerun-if-changed={}", interp.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=WISP_INTERP_TARGET_DIR");
    for (_, _, var) in interpreters {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let overridden: Vec<_> = interpreters
        .iter()
        .map(|(_, name, var)| (name, std::env::var_os(var).filter(|v| !v.is_empty())))
        .collect();
    if overridden.iter().all(|(_, path)| path.is_some()) {
        for (name, path) in overridden {
            let path = PathBuf::from(path.expect("checked"));
            copy(&path, &out_dir.join(name));
        }
        return;
    }

    let target_dir = std::env::var_os("WISP_INTERP_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| default_target_dir(&out_dir));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--locked", "--target", TARGET]);
    for (package, _, _) in interpreters {
        cmd.args(["-p", package]);
    }
    cmd.arg("--manifest-path")
        .arg(interp.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // interp/.cargo/config.toml (the C toolchain for QuickJS) is found from the cwd.
        .current_dir(&interp);
    scrub_cargo_env(&mut cmd);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("wisp-runtime build: cannot run {cargo:?}: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        panic!(
            "wisp-runtime build: building the interpreters in {} for {TARGET} failed ({}).\n\
             It needs `rustup target add {TARGET}` and Debian's clang, lld and wasi-libc \
             (`scripts/setup.sh` installs them; or set WISP_INTERP_JS_WASM to a prebuilt module).\n\
             --- cargo stderr ---\n{stderr}",
            interp.display(),
            output.status
        );
    }
    for (package, name, var) in interpreters {
        let from = match std::env::var_os(var).filter(|v| !v.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => target_dir
                .join(TARGET)
                .join("release")
                .join(format!("{}.wasm", package.replace('-', "_"))),
        };
        copy(&from, &out_dir.join(name));
    }
}

/// `<target>/release/build/wisp-runtime-<hash>/out` → `<target>/wasm-interp`.
fn default_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("wasm-interp"))
        .unwrap_or_else(|| out_dir.join("wasm-interp"))
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| {
        panic!(
            "wisp-runtime build: cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        )
    });
}

/// Removes what cargo sets for build scripts that would redirect or break the nested build
/// (target dir, flags for the host, jobserver, profile), keeping cargo's own configuration.
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
        "CC",
        "CFLAGS",
        "AR",
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
