#!/usr/bin/env bash
# Reads during writes: the peer benchmark's reads (q1: current balances of ST07 for 2025-H1,
# 20 rows; q2: the same as of release seq 1950; q3: the history of one figure; see
# ../shared/peer-bench/README.md) and a 20-item breakdown, each measured read-only and then
# while bench/writer.py publishes 50 releases per second (each touching one period: 20
# figures of ST07 in one of the four latest half-years), in the same run, with the response
# cache on and off. The writer reads a figure back after every acknowledged publish and
# counts any read that does not show it (`stale`, must be 0).
#
#   bench/reads-during-writes.sh                 # 10 s per figure, 64 connections
#   DURATION=30s CONNECTIONS=32 RATE=100 bench/reads-during-writes.sh
#   BIN=/tmp/tradeledger-before bench/reads-during-writes.sh
#
# The store is the peer's 2,000 releases x 500 observations (pg/gen_data.py, converted by
# ours/convert.py, imported once into $WORK/peer-store); every run uses a fresh copy, since
# the writer adds to it. Env: DURATION, CONNECTIONS, THREADS, RATE, CACHES (response cache
# entries per pass, default "1024 0"), QUERIES, PEER_BENCH, PORT, WORK.
# Needs wrk, curl and python3. Prints one line per query and pass.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
RATE=${RATE:-50}
CACHES=${CACHES:-1024 0}
QUERIES=${QUERIES:-q1 q2 q3 breakdown}
# The peer benchmark beside the project (../shared/peer-bench), or beside a worktree's parent.
if [ -z "${PEER_BENCH:-}" ]; then
  for d in ../shared/peer-bench ../../shared/peer-bench; do
    [ -d "$d" ] && PEER_BENCH=$(cd "$d" && pwd) && break
  done
fi
[ -d "${PEER_BENCH:-}" ] || { echo "the peer benchmark is not found: set PEER_BENCH" >&2; exit 1; }
PORT=${PORT:-$((20000 + RANDOM % 20000))}
WORK=${WORK:-/tmp/tradeledger-rw}
mkdir -p "$WORK"
need wrk "apt-get install wrk"
need curl "apt-get install curl"
bench_bin

STORE="$WORK/peer-store"
if [ ! -f "$STORE/.complete" ]; then
  [ -f "$WORK/data/observations.csv" ] || python3 "$PEER_BENCH/pg/gen_data.py" "$WORK/data" 2>/dev/null
  [ -f "$WORK/data/ours/01_itss.csv" ] || python3 "$PEER_BENCH/ours/convert.py" "$WORK/data" "$WORK/data/ours" >/dev/null
  rm -rf "$STORE" && mkdir -p "$STORE"
  "$BIN" import --log warn --data-dir "$STORE" "$WORK/data/ours/00_itss.json" "$WORK/data/ours/01_itss.csv" >/dev/null
  rm -rf "$WORK/data"
  touch "$STORE/.complete"
fi

mkdir -p "$WORK/bodies"
for q in q1 q2 q3; do cp "$PEER_BENCH/bench/ours/$q.json" "$WORK/bodies/$q.json"; done
cat >"$WORK/bodies/breakdown.json" <<'JSON'
{"query": "{ breakdown(dataset: \"ITSS\", dimension: \"REGION\", key: \"ST07._T\", period: \"2025-H1\") { items { key value } sumOfItems } }"}
JSON
cat >"$WORK/post.lua" <<'LUA'
local f = assert(io.open(os.getenv("BODY_FILE"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status + e.connect + e.read + e.write + e.timeout, summary.requests))
end
LUA

URL="http://127.0.0.1:$PORT"
trap '[ -z "${WRITER:-}" ] || kill "$WRITER" 2>/dev/null; stop_server' EXIT
# One wrk run of body $1: "req/s p50 p99 errors".
load() {
  BODY_FILE="$WORK/bodies/$1.json" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency -s "$WORK/post.lua" "$URL/graphql" \
    | awk '/^RESULT/ {print $2, $3, $4, $5}'
}

printf '%s, peer store (2,000 releases x 500 observations), wrk -t%s -c%s -d%s, writer %s releases/s, load average %s\n' \
  "$(date -u +%F)" "$THREADS" "$CONNECTIONS" "$DURATION" "$RATE" "$(cut -d" " -f1-3 /proc/loadavg)"
for entries in $CACHES; do
  rm -rf "$WORK/scratch" && cp -r "$STORE" "$WORK/scratch"
  start_server "$WORK/scratch" "$PORT" --response-cache-entries "$entries"
  for q in $QUERIES; do
    out=$(curl -s "$URL/graphql" -H 'content-type: application/json' --data-binary "@$WORK/bodies/$q.json")
    case "$out" in *'"errors"'*|"") echo "query $q failed: $out" >&2; exit 1;; esac
    load "$q" 2s >/dev/null
    read -r rps p50 p99 errors <<<"$(load "$q" "$DURATION")"
    start_writer "$URL/graphql" "$WORK/scratch/write-token" ITSS 2025-H1,2025-H2,2024-H1,2024-H2 \
      "$(python3 -c "print(','.join(f'ST07.R{i:02d}' for i in range(1, 21)))")" "$RATE"
    read -r wrps wp50 wp99 werrors <<<"$(load "$q" "$DURATION")"
    stop_writer
    ratio=$(python3 -c "print(f'{$wrps/$rps:.2f}')")
    echo "reads-during-writes cache_entries=$entries query=$q read_only_req_s=$rps read_only_p99_ms=$p99 during_writes_req_s=$wrps during_writes_p50_ms=$wp50 during_writes_p99_ms=$wp99 ratio=$ratio errors=$((errors + werrors)) writer: $WRITER_SUMMARY"
  done
  stop_server
done
rm -rf "$WORK/scratch"
