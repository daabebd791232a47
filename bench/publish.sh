#!/usr/bin/env bash
# Durable write load: 64 connections each publishing single-observation releases over HTTP
# (every one acknowledged only after the flush of its group commit) for 10 s against
# `tradeledger serve` on a fresh store with the fixtures; prints publishes/s, p50 and p99,
# and the revisions recorded meanwhile (at least the requests wrk completed: requests cut off
# at the end may still be recorded).
#
#   bench/publish.sh
#   CONNECTIONS=8 DURATION=5s bench/publish.sh
#   SERVE_ARGS="--store jetstream --nats-url nats://127.0.0.1:4222" bench/publish.sh
#   (bench/publish-cluster.sh runs it against sled and a 3-replica stream side by side)
#
# Needs wrk (Debian package `wrk`).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18125}
WORK=${WORK:-/tmp/tradeledger-publish}
SECRET=publish-bench-secret

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --locked --quiet --bin tradeledger
BIN=target/release/tradeledger
rm -rf "$WORK" && mkdir -p "$WORK"
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
$BIN serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --write-tokens "bench:$SECRET" --log warn ${SERVE_ARGS:-} \
  > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/graphql"

cat > "$WORK/publish.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $SECRET"
wrk.body = '{"query":"mutation { publishRelease(input: {dataset: \\\\"KR_KNOWLEDGE_SERVICES\\\\", status: REVISED, title: \\\\"SYNTHETIC load\\\\", publishedAt: \\\\"2026-01-01T00:00:00Z\\\\", observations: [{key: \\\\"_T._T._T\\\\", period: \\\\"2026-S1\\\\", measure: \\\\"BAL\\\\", value: \\\\"1\\\\"}]}) { revision } }"}'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.3f %.3f %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests))
end
LUA

before=$(curl -s -H 'Content-Type: application/json' -d '{"query":"{ ledger { revision } }"}' "$URL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["ledger"]["revision"])')
line=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/publish.lua" "$URL" | grep '^RESULT')
read -r _ rps p50 p99 requests <<<"$line"
after=$(curl -s -H 'Content-Type: application/json' -d '{"query":"{ ledger { revision } }"}' "$URL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["ledger"]["revision"])')
echo "$(date +%F), wrk -t$THREADS -c$CONNECTIONS -d$DURATION, one observation per release"
printf 'publishes/s %s  p50 %s ms  p99 %s ms  requests %s  revisions recorded %s\n' "$rps" "$p50" "$p99" "$requests" "$((after - before))"
