//! The cargo build driver of `wisp action create|update NAME DIR`: builds a Cargo project for
//! `wasm32-wasip1` and finds the module it produced.
//!
//! One `cargo build --release --target wasm32-wasip1` child process per call (with a spinner on
//! stderr while it runs; the compiler's own messages are shown when it fails), then one
//! `cargo metadata --no-deps` to find `<target_directory>/wasm32-wasip1/release/<bin>.wasm`.
//! `$CARGO` names the cargo to run when set (as it is under `cargo run`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::commands::str_field;

/// The wasm target actions are built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

/// Runs `cargo build --release --target wasm32-wasip1` in `dir` with a spinner, and returns the
/// path of the binary's `.wasm` (found through `cargo metadata`).
pub fn build_project(dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    spinner.set_message(format!(
        "building {} for {WASM_TARGET} (cargo build --release)",
        dir.display()
    ));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let output = std::process::Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--message-format",
            "short",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output();
    spinner.finish_and_clear();
    let output = output.with_context(|| {
        format!(
            "cannot run {} to build {}",
            Path::new(&cargo).display(),
            dir.display()
        )
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The compiler's messages are the useful part: show them, then the one-line error.
        eprint!("{stderr}");
        let hint = if stderr.contains("may not be installed") {
            format!(" (run `rustup target add {WASM_TARGET}`)")
        } else {
            String::new()
        };
        bail!(
            "cargo build --release --target {WASM_TARGET} failed in {} ({}){hint}",
            dir.display(),
            output.status
        );
    }
    find_built_wasm(&cargo, dir)
}

/// Finds `<target_directory>/wasm32-wasip1/release/<bin>.wasm` of the package in `dir`.
fn find_built_wasm(cargo: &std::ffi::OsStr, dir: &Path) -> anyhow::Result<PathBuf> {
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let meta: Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid JSON")?;
    let target_dir = PathBuf::from(str_field(&meta, "target_directory"));
    let release = target_dir.join(WASM_TARGET).join("release");
    let manifest =
        std::fs::canonicalize(dir.join("Cargo.toml")).unwrap_or_else(|_| dir.join("Cargo.toml"));
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let package = packages
        .iter()
        .find(|p| {
            let m = PathBuf::from(str_field(p, "manifest_path"));
            std::fs::canonicalize(&m).unwrap_or(m) == manifest
        })
        .or_else(|| packages.first())
        .with_context(|| format!("cargo metadata lists no package in {}", dir.display()))?;
    let mut candidates: Vec<String> = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .map(|t| str_field(t, "name").to_string())
        .collect();
    candidates.push(str_field(package, "name").replace('-', "_"));
    candidates.push(str_field(package, "name").to_string());
    candidates
        .iter()
        .map(|name| release.join(format!("{name}.wasm")))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "the build succeeded but no .wasm was found in {} (looked for {})",
                release.display(),
                candidates.join(".wasm, ") + ".wasm"
            )
        })
}
