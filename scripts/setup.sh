#!/usr/bin/env bash
# Installs what wisp's build and tests need on a fresh machine, idempotently:
# the wasm32-wasip1 Rust target, and (with apt-get, as root) the C toolchain for wasm (clang, lld,
# llvm-ar, wasi-libc) from Debian's packages, which wisp-runtime's build needs for QuickJS.
# Nothing is downloaded from anywhere but the package registries.
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

# The C toolchain for wasm: Debian's clang 14 + lld + llvm-ar (llvm-14) + wasi-libc + the wasm32
# compiler-rt builtins. Required: runtime/build.rs compiles QuickJS (interp/js, the interpreter
# of the nodejs:* kinds) with it, and the C example action uses it too.
need_apt=()
for pkg in clang lld llvm-14 wasi-libc libclang-rt-14-dev-wasm32; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing ${need_apt[*]} from Debian packages (QuickJS for wasm, the C example action)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    say "install ${need_apt[*]} (Debian packages) as root: building wisp-runtime needs them"
    say "(or build interp/ elsewhere and set WISP_INTERP_JS_WASM to the module, see runtime/build.rs)"
    exit 1
  fi
fi
for tool in clang llvm-ar-14 wasm-ld; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is missing after the install"; exit 1; }
done
