#!/usr/bin/env bash
# Reads on a JetStream node against a sled node, counted in instructions rather than req/s
# (within 5%). On a shared, loaded machine req/s and even CPU time per request
# swing by tens of percent from run to run; callgrind counts the instructions the server
# executes, the same whatever else runs. Each node runs under valgrind --tool=callgrind with
# instrumentation off during start-up; it is switched on, REQUESTS requests of each query
# are sent one after the other over one keep-alive connection, and the instructions (Ir) per
# request are printed for both nodes and their ratio. Background work of a node during the
# requests (the JetStream readiness probe, the consumer's heartbeats) is counted too.
#
#   bench/reads-jetstream-instructions.sh
#   REQUESTS=200 RELEASES=100 BIN=target/release/tradeledger bench/reads-jetstream-instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RELEASES=${RELEASES:-200}
PER_RELEASE=${PER_RELEASE:-500}
REQUESTS=${REQUESTS:-300}
PORT=${PORT:-18143}
WORK=${WORK:-/tmp/tradeledger-reads-instructions}
NATS=${TRADELEDGER_NATS_SERVER:-nats-server}
NATS_PORT=${NATS_PORT:-25342}
need valgrind "apt-get install valgrind"
need callgrind_control "apt-get install valgrind"
need "$NATS" "bash .ci/setup installs nats-server 2.15.1"
bench_bin

fresh_nats_and_data

MID=$(python3 -c "m=1990*12+$RELEASES//2; print(f'{m//12}-{m%12+1:02d}')")
QUERIES=(
  "{ breakdown(dataset: \"SYNTHETIC_TRADE\", dimension: \"PARTNER\", period: \"$MID\") { total { value } items { key value } sumOfItems residual } }"
  "{ history(dataset: \"SYNTHETIC_TRADE\", key: \"_T._T._T\", period: \"$MID\") { version value delta status } }"
  "{ observations(dataset: \"SYNTHETIC_TRADE\", first: 50) { edges { node { key period value } } } }"
)
NAMES=(breakdown history observations)

# Sends REQUESTS of each query in turn over one connection; prints nothing.
cat >"$WORK/send.py" <<'PY'
import http.client, json, os, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
for query in sys.argv[3:]:
    body = json.dumps({"query": query})
    for _ in range(n):
        conn.request("POST", "/graphql", body, {"content-type": "application/json"})
        answer = conn.getresponse().read()
        if b'"errors"' in answer:
            sys.exit(f"the query failed: {answer[:300]!r}")
PY

# ir STORE CACHE QUERY: instructions per request of QUERY on a node of STORE (sled|js).
ir() {
  local store=$1 cache=$2 query=$3 args=(--response-cache-entries "$2")
  [ "$store" = js ] && args+=(--store jetstream --nats-url "$NATS_URL")
  rm -f "$WORK"/callgrind.out.*
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out.%p" \
    "$BIN" serve --data-dir "$WORK/$store" --listen "127.0.0.1:$PORT" --no-fixtures --no-snapshot \
    --log warn "${args[@]}" >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER=$!
  for _ in $(seq 1 1200); do
    grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "listening on" "$WORK/serve.out" || { echo "the server did not start: $(tail -5 "$WORK/serve.err")" >&2; exit 1; }
  python3 "$WORK/send.py" "$PORT" 20 "$query" # warm-up, not counted
  callgrind_control -i on "$SERVER" >/dev/null 2>&1
  python3 "$WORK/send.py" "$PORT" "$REQUESTS" "$query"
  callgrind_control -i off "$SERVER" >/dev/null 2>&1
  stop_server
  local total
  total=$(cat "$WORK"/callgrind.out.* | sed -n 's/^totals: //p' | head -1)
  python3 -c "print(f'{$total / $REQUESTS:.0f}')"
}

printf '%s UTC, load average %s; %s releases x %s observations, %s requests a query, callgrind\n' \
  "$(date -u '+%F %H:%M')" "$(cut -d' ' -f1-3 /proc/loadavg)" "$RELEASES" "$PER_RELEASE" "$REQUESTS"
printf '%-6s %-13s %14s %14s %8s\n' cache query sled_Ir/req js_Ir/req js/sled
for cache in 1024 0; do
  label=$([ "$cache" = 0 ] && echo off || echo on)
  for i in "${!NAMES[@]}"; do
    s=$(ir sled "$cache" "${QUERIES[$i]}")
    j=$(ir js "$cache" "${QUERIES[$i]}")
    printf '%-6s %-13s %14s %14s %8s\n' "$label" "${NAMES[$i]}" "$s" "$j" "$(python3 -c "print(f'{$j/$s:.3f}')")"
  done
done
