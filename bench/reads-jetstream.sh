#!/usr/bin/env bash
# Reads on a JetStream node against a sled node with the same data, in one run (the target:
# within 5%, since both read the in-memory projection): one nats-server (R1), the same
# generated file (RELEASES x PER_RELEASE) imported into a sled store and into a stream, one
# node over each, and wrk with the same queries on both, alternating sled and JetStream
# query by query, with the response cache on (default) and off (--response-cache-entries 0).
# Only one node runs at a time, so each has the machine to itself. Besides req/s, each run
# reports the server's CPU time per request (user + system, /proc/PID/stat), which other
# processes on the machine disturb much less. ROUNDS=N repeats the whole alternation.
#
#   bench/reads-jetstream.sh
#   DURATION=5s RELEASES=200 bench/reads-jetstream.sh
#   ROUNDS=3 BIN=target/release/tradeledger bench/reads-jetstream.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RELEASES=${RELEASES:-2000}
PER_RELEASE=${PER_RELEASE:-500}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18133}
WORK=${WORK:-/tmp/tradeledger-reads-jetstream}
NATS=${TRADELEDGER_NATS_SERVER:-nats-server}
NATS_PORT=${NATS_PORT:-25322}
need wrk "apt-get install wrk"
need "$NATS" "bash .ci/setup installs nats-server 2.15.1"
bench_bin

fresh_nats_and_data
JS_ARGS=(--store jetstream --nats-url "$NATS_URL")

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY")
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.requests))
end
LUA

MID=$(python3 -c "m=1990*12+$RELEASES//2; print(f'{m//12}-{m%12+1:02d}')")
declare -A QUERIES=(
  [breakdown]="{ breakdown(dataset: \\\"SYNTHETIC_TRADE\\\", dimension: \\\"PARTNER\\\", period: \\\"$MID\\\") { total { value } items { key value } sumOfItems residual } }"
  [history]="{ history(dataset: \\\"SYNTHETIC_TRADE\\\", key: \\\"_T._T._T\\\", period: \\\"$MID\\\") { version value delta status } }"
  [observations]="{ observations(dataset: \\\"SYNTHETIC_TRADE\\\", first: 50) { edges { node { key period value } } } }"
  [ledger]="{ ledger { revision hash eventCount } }"
)
ORDER=(breakdown history observations ledger)
URL="http://127.0.0.1:$PORT/graphql"

# CPU time (user + system, in clock ticks) the process $1 has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run STORE CACHE_ENTRIES QUERY: one wrk run on a node of STORE (sled|js); prints req/s p50 p99
# errors and the server's CPU time per request in microseconds (less sensitive to other
# processes on the machine than req/s: they take cores, not the server's instructions).
run() {
  local store=$1 cache=$2 name=$3
  local args=(--response-cache-entries "$cache")
  [ "$store" = js ] && args+=("${JS_ARGS[@]}")
  start_server "$WORK/$store" "$PORT" "${args[@]}"
  local body="{\"query\": \"${QUERIES[$name]}\"}"
  local out; out=$(curl -s "$URL" -H 'content-type: application/json' -d "$body")
  case "$out" in *'"errors"'*|"") echo "query $name failed on $store: $out" >&2; exit 1;; esac
  BODY="$body" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/post.lua" "$URL" >/dev/null
  local before; before=$(cpu_ticks "$SERVER")
  local result
  result=$(BODY="$body" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/post.lua" "$URL" |
    sed -n 's/^RESULT //p')
  local after; after=$(cpu_ticks "$SERVER")
  read -r rps p50 p99 errors requests <<<"$result"
  echo "$rps $p50 $p99 $errors $(python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) / $requests * 1e6:.1f}')")"
  stop_server
}

printf '%s UTC, %s cores, load average %s; %s releases x %s observations, wrk -t%s -c%s -d%s\n' \
  "$(date -u '+%F %H:%M')" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$RELEASES" "$PER_RELEASE" \
  "$THREADS" "$CONNECTIONS" "$DURATION"
printf '%-6s %-13s %12s %12s %8s %9s %9s %8s %8s %8s\n' cache query sled_req/s js_req/s js/sled \
  sled_p99 js_p99 sled_us js_us js/sled
for round in $(seq 1 "${ROUNDS:-1}"); do
  for cache in 1024 0; do
    label=$([ "$cache" = 0 ] && echo off || echo on)
    for name in "${ORDER[@]}"; do
      read -r s_rps _ s_p99 s_err s_us <<<"$(run sled "$cache" "$name")"
      read -r j_rps _ j_p99 j_err j_us <<<"$(run js "$cache" "$name")"
      [ "$s_err" = 0 ] && [ "$j_err" = 0 ] || echo "errors: sled $s_err, jetstream $j_err" >&2
      printf '%-6s %-13s %12s %12s %8s %9s %9s %8s %8s %8s\n' "$label" "$name" "$s_rps" "$j_rps" \
        "$(python3 -c "print(f'{$j_rps/$s_rps:.3f}')")" "$s_p99" "$j_p99" "$s_us" "$j_us" \
        "$(python3 -c "print(f'{$j_us/$s_us:.3f}')")"
    done
  done
done
