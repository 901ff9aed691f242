#!/usr/bin/env bash
# Installs what wisp's build and tests need on a fresh machine, idempotently:
# the wasm32-wasip1 Rust target, and (when apt-get is available and we are root) the C toolchain for
# the C example action (clang, lld, wasi-libc) from Debian's packages. Nothing is downloaded from
# anywhere but the package registries.
set -euo pipefail

say() { printf 'wisp setup: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust with rustup first (https://rustup.rs)"
  exit 1
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  say "adding the wasm32-wasip1 target"
  rustup target add wasm32-wasip1
fi

# The C example action: clang 14 + lld + wasi-libc (+ the wasm32 compiler-rt builtins clang needs).
need_apt=()
for pkg in clang lld wasi-libc libclang-rt-14-dev-wasm32; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing ${need_apt[*]} from Debian packages (for the C example action)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    say "optional: install ${need_apt[*]} (Debian packages) to build the C example action; skipping"
  fi
fi
