#!/usr/bin/env bash
# Regenerates the README's performance section (between <!-- perf:begin --> and <!-- perf:end -->)
# and the plots in docs/perf/, from measurements taken now on this machine:
#
#   1. the criterion benches (runtime: compile, disk cache, prewarmed, /run, native spawn;
#      invoke: blocking invokes through scheduler → runtime) — medians from
#      $CARGO_TARGET_DIR/criterion/*/*/new/estimates.json;
#   2. a native-process-per-call throughput baseline at 1, 32 and 256 client threads;
#   3. a platform on a temp data dir and port with `hello` and the hostile actions deployed, and
#      `wisp bench` at 1, 32 and 256 clients, then 32 clients with a 10% hostile mix (each run
#      checks that every acknowledged activation has a record);
#   4. `perf_report render`: the SVG plots and the README section.
#
#   scripts/perf-report.sh                       # ~10 minutes on 2 cores once everything is built
#   WISP_PERF_DURATION=5 WISP_PERF_MEASUREMENT_TIME=2 scripts/perf-report.sh   # quicker, noisier
#
# Run it on a quiet machine: every figure moves with the load. Nothing is left running.
#
# The platform is `wisp up` with `--activation-retention` raised: a run acknowledges more
# activations than the default 10,000 records kept per namespace, and pruned records could not be
# audited.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wisp/target}"
functions_target="${WISP_FUNCTIONS_TARGET_DIR:-$CARGO_TARGET_DIR/wasm-functions}"
duration="${WISP_PERF_DURATION:-10}"
measurement="${WISP_PERF_MEASUREMENT_TIME:-3}"
retention=10000000
say() { printf 'perf-report: %s\n' "$*" >&2; }

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
work="$(mktemp -d)"
results="$work/results"
mkdir -p "$results"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

say "building (release): wisp, wisp-scheduler, wisp-runtime, the benches, perf_report, functions/"
cargo build --release --locked -p wisp-cli -p wisp-scheduler -p wisp-runtime -p wisp-benches --bins
cargo bench --locked -p wisp-benches --no-run
cargo build --release --locked --manifest-path functions/Cargo.toml --target wasm32-wasip1 \
  --target-dir "$functions_target"
bin="$CARGO_TARGET_DIR/release"
fns="$functions_target/wasm32-wasip1/release"

say "criterion: runtime bench (cold-start paths and the native spawn baseline)"
cargo bench --locked -p wisp-benches --bench runtime -- --warm-up-time 1 \
  --measurement-time "$measurement" | tee "$results/runtime.txt"
say "criterion: invoke bench"
cargo bench --locked -p wisp-benches --bench invoke -- --warm-up-time 1 \
  --measurement-time "$measurement" | tee "$results/invoke.txt"

for c in 1 32 256; do
  say "native process per call: $c clients for $duration s"
  "$bin/perf_report" native --clients "$c" --seconds "$duration" >"$results/native-$c.json"
done

# A free port: nothing answers on it.
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}
wait_healthy() {
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "nothing healthy on port $1; logs:"; cat "$work"/*.log >&2; exit 1
}

uuid="$(cat /proc/sys/kernel/random/uuid)"
key="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
auth="$uuid:$key"
export WSK_CONFIG_FILE="$work/wskprops"   # leave the caller's ~/.wskprops alone
port="$(free_port)"
apihost="http://127.0.0.1:$port"
platform="\`wisp up\` (scheduler + 2 runtimes in one process)"
say "starting wisp up on $apihost"
# A load test measures the platform, not the namespace limits: raise them far past what 256
# clients can reach.
"$bin/wisp" up --port "$port" --data-dir "$work/data" --auth "$auth" \
  --default-invocations-per-minute 1000000000 --default-concurrent-invocations 100000 \
  --activation-retention "$retention" >"$work/up.log" 2>&1 &
pids+=("$!")
wait_healthy "$port"
wisp() { "$bin/wisp" --apihost "$apihost" --auth "$auth" "$@"; }
# The namespace may appear a moment after /health.
for _ in $(seq 1 100); do wisp namespace list >/dev/null 2>&1 && break; sleep 0.1; done

say "deploying hello and the hostile actions"
wisp action update hello "$fns/hello.wasm" >/dev/null
wisp action update loop "$fns/loop.wasm" --timeout 100 >/dev/null
wisp action update membomb "$fns/membomb.wasm" --memory 32 >/dev/null
wisp action update trap "$fns/trap.wasm" >/dev/null
wisp action update recursion "$fns/recursion.wasm" >/dev/null
wisp action update flood "$fns/flood.wasm" --logsize 1 -p mb 2 >/dev/null
wisp action update badresult "$fns/badresult.wasm" >/dev/null
wisp invoke hello name=warm-up >/dev/null

for c in 1 32 256; do
  say "wisp bench: $c clients for $duration s"
  wisp --json bench --clients "$c" --duration "$duration" --action hello \
    >"$results/bench-$c.json"
done
say "wisp bench: 32 clients for $duration s with a 10% hostile mix"
wisp --json bench --clients 32 --duration "$duration" --action hello --hostile-mix 0.1 \
  --hostile loop,membomb,trap,recursion,flood,badresult >"$results/bench-32-hostile.json"

say "rendering docs/perf/*.svg and the README section"
"$bin/perf_report" render --criterion "$CARGO_TARGET_DIR/criterion" --results "$results" \
  --readme README.md --svg-dir docs/perf --date "$(date -u +%Y-%m-%d)" \
  --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --load "$load_before" --duration "$duration" --measurement-time "$measurement" \
  --platform "$platform"
say "done: README.md (performance section), docs/perf/cold-start.svg, docs/perf/throughput.svg"
