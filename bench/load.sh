#!/usr/bin/env bash
# Load test: tradeledger serve on a generated store (2,000 releases x 500 observations, i.e.
# 10^6 figure versions), 10-second wrk runs at 64 connections for a baseline `{ __typename }`
# and three ledger queries; prints req/s, p50, p99 and each query's ratio to the baseline.
#
#   bench/load.sh                       # defaults
#   RELEASES=200 PER_RELEASE=500 DURATION=5s bench/load.sh
#   BIN=/tmp/tradeledger-before bench/load.sh   # another build, same store
#
# Needs wrk (Debian package `wrk`). Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASES=${RELEASES:-2000}
PER_RELEASE=${PER_RELEASE:-500}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18123}
WORK=${WORK:-/tmp/tradeledger-load}
# Responses kept per revision by the server; CACHE_ENTRIES=0 measures every query executed.
CACHE_ENTRIES=${CACHE_ENTRIES:-1024}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
# BIN=path runs another build (for example the previous release) against the same store.
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet --bin tradeledger
  BIN=target/release/tradeledger
fi

STORE="$WORK/store-$RELEASES-$PER_RELEASE"
if [ ! -f "$STORE/.complete" ]; then
  rm -rf "$STORE" && mkdir -p "$STORE"
  $BIN generate --releases "$RELEASES" --observations-per-release "$PER_RELEASE" --seed 1 "$WORK/log.json"
  $BIN import --data-dir "$STORE" "$WORK/log.json"
  touch "$STORE/.complete"
fi

$BIN serve --data-dir "$STORE" --listen "127.0.0.1:$PORT" --no-fixtures --write-tokens "load:load-test-secret" \
  --response-cache-entries "$CACHE_ENTRIES" --max-connections-per-peer 100000 --log warn > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
  grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT/graphql"

# Periods are months from 1990-01; the middle one has all three versions of its figures.
MID=$(python3 -c "m=1990*12+$RELEASES//2; print(f'{m//12}-{m%12+1:02d}')")
EARLY=1990-03

cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY")
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests))
end
LUA

declare -A QUERIES=(
  [typename]='{ __typename }'
  [breakdown]="{ breakdown(dataset: \\\"SYNTHETIC_TRADE\\\", dimension: \\\"PARTNER\\\", period: \\\"$MID\\\") { total { value } items { key value } sumOfItems residual } }"
  [breakdown_asof]="{ breakdown(dataset: \\\"SYNTHETIC_TRADE\\\", dimension: \\\"PARTNER\\\", period: \\\"$EARLY\\\", asOf: { revision: 4 }) { total { value } items { key value } sumOfItems residual } }"
  [history]="{ history(dataset: \\\"SYNTHETIC_TRADE\\\", key: \\\"_T._T._T\\\", period: \\\"$MID\\\") { version value delta status } }"
)
ORDER=(typename breakdown breakdown_asof history)

# Check each query answers with data before loading it.
for name in "${ORDER[@]}"; do
  body="{\"query\": \"${QUERIES[$name]}\"}"
  out=$(curl -s "$URL" -H 'content-type: application/json' -d "$body")
  case "$out" in *'"errors"'*|"") echo "query $name failed: $out" >&2; exit 1;; esac
done

echo "warming up..."
BODY="{\"query\": \"${QUERIES[breakdown]}\"}" wrk -t"$THREADS" -c"$CONNECTIONS" -d3s -s "$WORK/post.lua" "$URL" >/dev/null

printf '\n%s, %s releases x %s observations, wrk -t%s -c%s -d%s, response cache %s entries\n' "$(date -u +%F)" "$RELEASES" "$PER_RELEASE" "$THREADS" "$CONNECTIONS" "$DURATION" "$CACHE_ENTRIES"
printf '%-16s %12s %10s %10s %8s %8s\n' query req/s p50_ms p99_ms errors ratio
base=""
for name in "${ORDER[@]}"; do
  line=$(BODY="{\"query\": \"${QUERIES[$name]}\"}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/post.lua" "$URL" | grep '^RESULT')
  read -r _ rps p50 p99 errors _ <<<"$line"
  [ -z "$base" ] && base=$rps
  ratio=$(python3 -c "print(f'{$rps/$base:.2f}')")
  printf '%-16s %12s %10s %10s %8s %8s\n' "$name" "$rps" "$p50" "$p99" "$errors" "$ratio"
done
