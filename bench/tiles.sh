#!/usr/bin/env bash
# Requests per second for the transparency log's tiles against /healthz, one server, in one
# run (the machine is noisy: compare the ratios, not the numbers):
#   /healthz, a full hash tile, the checkpoint (an Ed25519 signature each), and a full entry
#   bundle twice, plain and with gzip (kept in memory once built), and the partial bundle
#   of the last 221 events, which is built on every request (not kept): the cost without
#   the cache.
# Each URL gets `wrk -t2 -c16 -d${SECONDS_EACH}s` in turn against a store of
# `generate --releases 1500 --observations-per-release 4` (1,501 events).
#   bash bench/tiles.sh               # the release build
#   BIN=target/debug/tradeledger bash bench/tiles.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
need wrk "apt-get install wrk"
need curl "apt-get install curl"
bench_bin
SECONDS_EACH=${SECONDS_EACH:-8}
WORK=${WORK:-$(mktemp -d)}
trap 'stop_server' EXIT
generated_store 1500 4
PORT=${PORT:-18471}
start_server "$STORE" "$PORT"
base="http://127.0.0.1:$PORT"
curl -sf "$base/tlog/tile/entries/000" -o /dev/null || { echo "no full entry bundle: $(cat "$WORK/serve.err")" >&2; exit 1; }

rate() {
  wrk -t2 -c16 -d"${SECONDS_EACH}s" "$@" | awk '/^Requests\/sec:/{print $2}'
}
healthz=$(rate "$base/healthz")
report() {
  awk -v name="$1" -v r="$2" -v h="$healthz" 'BEGIN { printf "%-40s %10.0f req/s  %.2f of /healthz\n", name, r, r / h }'
}
report "/healthz" "$healthz"
report "/tlog/tile/0/000" "$(rate "$base/tlog/tile/0/000")"
report "/tlog/checkpoint" "$(rate "$base/tlog/checkpoint")"
report "/tlog/tile/entries/000" "$(rate "$base/tlog/tile/entries/000")"
report "/tlog/tile/entries/000 (gzip)" "$(rate -H 'Accept-Encoding: gzip' "$base/tlog/tile/entries/000")"
report "/tlog/tile/entries/005.p/221 (built)" "$(rate "$base/tlog/tile/entries/005.p/221")"
