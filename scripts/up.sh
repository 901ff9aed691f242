#!/usr/bin/env bash
# The newcomer's first command: sets everything up, builds wisp, starts the platform locally
# (`wisp up` on the embedded store, in the background), deploys the `hello` example action and
# invokes it. The platform keeps running afterwards; `wisp` is installed in ~/.cargo/bin.
#
#   scripts/up.sh            # port 3233, data in ~/.wisp/data
#   WISP_PORT=4000 scripts/up.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wisp/target}"
functions_target="${WISP_FUNCTIONS_TARGET_DIR:-$CARGO_TARGET_DIR/wasm-functions}"
port="${WISP_PORT:-3233}"
data_dir="${WISP_DATA_DIR:-$HOME/.wisp/data}"
state_dir="$(dirname "$data_dir")"   # up.log and up.pid live beside the data dir
say() { printf 'wisp: %s\n' "$*" >&2; }

scripts/setup.sh

say "building the wisp CLI (release; the first build compiles wasmtime and takes a while)"
cargo build --release --locked -p wisp-cli
bin_dir="${CARGO_HOME:-$HOME/.cargo}/bin"
mkdir -p "$bin_dir"
install -m 0755 "$CARGO_TARGET_DIR/release/wisp" "$bin_dir/wisp"
wisp="$bin_dir/wisp"

say "building the example actions for wasm32-wasip1"
cargo build --release --manifest-path functions/Cargo.toml --target wasm32-wasip1 \
  --target-dir "$functions_target" -p wisp-fn-hello -p wisp-fn-web-hello
hello_wasm="$functions_target/wasm32-wasip1/release/hello.wasm"

if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
  say "a wisp is already answering on 127.0.0.1:$port; using it"
else
  mkdir -p "$data_dir"
  log="$state_dir/up.log"
  say "starting wisp up on 127.0.0.1:$port (data: $data_dir, log: $log)"
  nohup "$wisp" up --port "$port" --data-dir "$data_dir" >"$log" 2>&1 </dev/null &
  echo $! >"$state_dir/up.pid"
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$state_dir/up.pid")" 2>/dev/null; then
      say "wisp up exited; its log:"; cat "$log" >&2; exit 1
    fi
    sleep 0.2
  done
  # wisp up writes APIHOST/AUTH to the CLI config once the guest namespace exists.
  for _ in $(seq 1 100); do grep -q '^AUTH=' "${WSK_CONFIG_FILE:-$HOME/.wskprops}" 2>/dev/null && break; sleep 0.1; done
fi

say "deploying the hello action"
"$wisp" action update hello "$hello_wasm"
say "invoking it"
"$wisp" invoke hello name=World
cat >&2 <<MSG

wisp is running on http://127.0.0.1:$port (pid $(cat "$state_dir/up.pid" 2>/dev/null || echo '?'), log $state_dir/up.log).
Try:  wisp action list   |   wisp activation list   |   wisp activation logs --last
Stop: kill \$(cat $state_dir/up.pid)
MSG
