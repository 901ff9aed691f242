#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script):
# setup, formatting, clippy with -D warnings (workspace and functions/), a private PostgreSQL
# (scripts/postgres.sh: the PostgreSQL store's tests run against it), then every test.
#
# Builds go to $CARGO_TARGET_DIR (default ~/.cache/wisp/target, outside the clone) so that a
# second run, and CI on the same machine, reuse the heavy wasmtime build. Everything builds with
# the release profile: tests, benches and `wisp up` then share one set of artefacts.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wisp/target}"
export WISP_FUNCTIONS_TARGET_DIR="${WISP_FUNCTIONS_TARGET_DIR:-$CARGO_TARGET_DIR/wasm-functions}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "setup"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path functions/Cargo.toml --all --check

step "cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets --locked -- -D warnings
cargo clippy --release --manifest-path functions/Cargo.toml --target wasm32-wasip1 \
  --target-dir "$WISP_FUNCTIONS_TARGET_DIR" --workspace -- -D warnings

step "PostgreSQL for the store tests"
eval "$(scripts/postgres.sh)"

step "cargo test"
cargo test --release --workspace --locked "$@"
