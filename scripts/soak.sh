#!/usr/bin/env bash
# Soak test: sustained load on a fresh `wisp up`, watching its disk and memory.
#
#   scripts/soak.sh                      # 10 minutes, 16 clients, a 5% hostile mix
#   SOAK_DURATION=30s scripts/soak.sh    # a quick check that it works
#
# It starts `wisp up` on a temp data dir and a free port, deploys `hello` and the hostile actions
# (as scripts/perf-report.sh does: loop with a 100 ms timeout, membomb with a 32 MB cap, trap,
# recursion, flood capped at 1 MB of logs, badresult), runs
#
#   wisp bench --clients $SOAK_CLIENTS --hostile-mix $SOAK_MIX \
#     --hostile loop,membomb,trap,recursion,flood,badresult --duration $SOAK_DURATION
#
# and every $SOAK_INTERVAL seconds appends a row to $SOAK_OUT/soak.csv:
#
#   elapsed_s,data_dir_kb,wal_bytes,rss_kb
#
# (`du -sk` of the data dir, the size of `wisp.db-wal`, and VmRSS of the `wisp up` process). At the
# end it prints the largest data dir and WAL, the RSS first/last/max, the bench's lost and pruned
# counts, and the data dir after a clean stop; it exits non-zero when an activation was lost, the
# bench failed, or the data dir grew past SOAK_MAX_DATA_MB at any sample.
#
# The bound on the data dir follows retention, not uptime. The server keeps the newest
# R = SOAK_RETENTION records per namespace (`wisp up --activation-retention`, default 10,000; the
# soak uses one namespace), and up to R/16 more between two prunes. SQLite reuses the pages of
# pruned records, so the database file stays near the largest live set. So:
#
#   SOAK_MAX_DATA_MB = R × 17/16 × record_kb / 1024 + SOAK_WAL_MB + SOAK_BASE_MB
#
#   record_kb    the average stored record: 2 KB for an ordinary one (the JSON document, its
#                index entries and page slack), 1024 KB for a `flood` one (its 1 MB of logs),
#                which is f = SOAK_MIX / 6 of the calls (six hostile actions, picked uniformly):
#                record_kb = (1 - f) × 2 + f × 1024.
#   SOAK_WAL_MB  the WAL's own bound (default 128): the store forces a TRUNCATE checkpoint once
#                the WAL passes 64 MB (checked every 250 ms), so it stays under about twice that.
#   SOAK_BASE_MB the actions' code, the runtimes' compiled-code caches and free pages (default 64).
#
# For R = 10,000 and a 5% mix: f = 0.0083, record_kb = 10.5, 10,625 × 10.5 KB = 109 MB, so the
# bound is 109 + 128 + 64 = 301 MB. SOAK_MAX_DATA_MB overrides the computed bound.
#
# Other knobs: SOAK_OUT (where the CSV, the bench output and the logs go; default a temp dir that
# is kept), SOAK_NO_BUILD=1 (use the binaries already built). Nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wisp/target}"
functions_target="${WISP_FUNCTIONS_TARGET_DIR:-$CARGO_TARGET_DIR/wasm-functions}"
duration="${SOAK_DURATION:-10m}"
clients="${SOAK_CLIENTS:-16}"
mix="${SOAK_MIX:-0.05}"
interval="${SOAK_INTERVAL:-10}"
retention="${SOAK_RETENTION:-10000}"
wal_mb="${SOAK_WAL_MB:-128}"
base_mb="${SOAK_BASE_MB:-64}"
hostile="loop,membomb,trap,recursion,flood,badresult"
say() { printf 'soak: %s\n' "$*" >&2; }

if [ -z "${SOAK_MAX_DATA_MB:-}" ]; then
  SOAK_MAX_DATA_MB="$(awk -v r="$retention" -v m="$mix" -v w="$wal_mb" -v b="$base_mb" 'BEGIN {
    f = m / 6; kb = (1 - f) * 2 + f * 1024; printf "%d", r * 17 / 16 * kb / 1024 + w + b + 0.5 }')"
fi
out="${SOAK_OUT:-$(mktemp -d -t wisp-soak.XXXXXX)}"
mkdir -p "$out"
work="$(mktemp -d -t wisp-soak-data.XXXXXX)"
data="$work/data"
csv="$out/soak.csv"
up_pid=""
sampler_pid=""
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  if [ -n "$up_pid" ]; then
    kill "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${SOAK_NO_BUILD:-0}" != 1 ]; then
  say "building (release): wisp and functions/"
  cargo build --release -p wisp-cli
  cargo build --release --manifest-path functions/Cargo.toml --target wasm32-wasip1 \
    --target-dir "$functions_target"
fi
bin="$CARGO_TARGET_DIR/release/wisp"
fns="$functions_target/wasm32-wasip1/release"

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
  say "nothing healthy on port $1; log:"; cat "$out/up.log" >&2; exit 1
}

uuid="$(cat /proc/sys/kernel/random/uuid)"
key="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
auth="$uuid:$key"
export WSK_CONFIG_FILE="$work/wskprops"   # leave the caller's ~/.wskprops alone
port="$(free_port)"
apihost="http://127.0.0.1:$port"
say "starting wisp up on $apihost (data dir $data, retention $retention)"
# The soak measures the disk and memory, not the namespace limits: raise them past the load.
"$bin" up --port "$port" --data-dir "$data" --auth "$auth" \
  --default-invocations-per-minute 1000000000 --default-concurrent-invocations 100000 \
  --activation-retention "$retention" >"$out/up.log" 2>&1 &
up_pid=$!
wait_healthy "$port"
wisp() { "$bin" --apihost "$apihost" --auth "$auth" "$@"; }
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

sample() {
  local kb wal rss
  kb="$(du -sk "$data" 2>/dev/null | cut -f1)"
  wal="$(stat -c %s "$data/wisp.db-wal" 2>/dev/null || echo 0)"
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$up_pid/status" 2>/dev/null || echo 0)"
  echo "$(( SECONDS - started )),${kb:-0},${wal:-0},${rss:-0}" >>"$csv"
}
echo "elapsed_s,data_dir_kb,wal_bytes,rss_kb" >"$csv"
started=$SECONDS
sample
( while sleep "$interval"; do sample; done ) &
sampler_pid=$!

say "wisp bench: $clients clients, ${mix} hostile mix, for $duration (samples every ${interval}s in $csv)"
bench_status=0
wisp bench --clients "$clients" --hostile-mix "$mix" --hostile "$hostile" \
  --duration "$duration" >"$out/bench.txt" 2>"$out/bench.err" || bench_status=$?
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
sample
cat "$out/bench.txt"
[ -s "$out/bench.err" ] && cat "$out/bench.err" >&2

# A clean stop, then the data dir as it is left.
kill "$up_pid" 2>/dev/null || true
wait "$up_pid" 2>/dev/null || true
up_pid=""
stopped_kb="$(du -sk "$data" | cut -f1)"
stopped_wal="$(stat -c %s "$data/wisp.db-wal" 2>/dev/null || echo 0)"

lost="$(awk '/^lost: / {print $2}' "$out/bench.txt")"
pruned="$(awk '/^pruned: / {print $2}' "$out/bench.txt")"
read -r max_kb max_wal rss_first rss_last rss_max < <(awk -F, 'NR > 1 {
    if ($2 > kb) kb = $2; if ($3 > wal) wal = $3; if (first == "") first = $4; last = $4
    if ($4 > rss) rss = $4 } END { print kb + 0, wal + 0, first + 0, last + 0, rss + 0 }' "$csv")
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo
echo "soak: $duration at $clients clients, ${mix} hostile mix, retention $retention ($(( $(wc -l <"$csv") - 1 )) samples in $csv)"
echo "data dir max: $(mb "$max_kb") MB (bound $SOAK_MAX_DATA_MB MB); after a clean stop: $(mb "$stopped_kb") MB"
echo "WAL max:      $(mb $(( max_wal / 1024 ))) MB; after a clean stop: $(mb $(( stopped_wal / 1024 ))) MB"
echo "RSS:          first $(mb "$rss_first") MB, last $(mb "$rss_last") MB, max $(mb "$rss_max") MB"
echo "records:      ${lost:-?} lost, ${pruned:-?} pruned"

failed=0
if [ "$bench_status" != 0 ]; then say "wisp bench failed (exit $bench_status)"; failed=1; fi
if [ "${lost:-x}" != 0 ]; then say "activations lost: ${lost:-unknown}"; failed=1; fi
if [ "$max_kb" -gt $(( SOAK_MAX_DATA_MB * 1024 )) ]; then
  say "the data dir reached $(mb "$max_kb") MB, over the bound of $SOAK_MAX_DATA_MB MB"
  failed=1
fi
exit "$failed"
