#!/usr/bin/env bash
# Start-up with and without the projection snapshot, on the store bench/memory.sh
# generates (20,000 releases x 500 = 10^7 versions): time from launching `serve` to its
# `listening on` line, the snapshot's size, and how long writing one takes (and for how long
# the projection is read-locked, which is what writes wait for).
#
#   bench/snapshot.sh                      # uses $WORK/store-20000-500, made by bench/memory.sh
#   STORE=/tmp/some/store bench/snapshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${WORK:-/tmp/tradeledger-memory}
STORE=${STORE:-$WORK/store-20000-500}
BIN=${BIN:-target/release/tradeledger}
[ -n "${BIN_BUILT:-}" ] || cargo build --release --locked --quiet --bin tradeledger
[ -d "$STORE/log" ] || { echo "no store at $STORE: run bench/memory.sh first" >&2; exit 1; }

# Seconds from launch to `listening on`; the server is then stopped with SIGTERM (which
# writes a snapshot unless --no-snapshot) and its log kept in $WORK/snapshot-serve.err.
start_s() {
  local out="$WORK/snapshot-serve.out" err="$WORK/snapshot-serve.err"
  local started; started=$(date +%s.%N)
  $BIN serve --data-dir "$STORE" --listen 127.0.0.1:0 --no-fixtures "$@" >"$out" 2>"$err" &
  local pid=$!
  for _ in $(seq 1 12000); do grep -q "listening on" "$out" 2>/dev/null && break; sleep 0.01; done
  local now; now=$(date +%s.%N)
  grep -q "listening on" "$out" || { echo "server did not start: $(cat "$err")" >&2; kill $pid; exit 1; }
  python3 -c "print(f'{$now - $started:.2f}')"
  curl -s -o /dev/null "http://$(sed -n 's/^listening on //p' "$out")/healthz" || true
  kill -TERM $pid
  wait $pid 2>/dev/null || true
}

rm -f "$STORE/snapshot"
echo "$(date +%F), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for run in 1 2; do
  echo "run $run: start-up without snapshot (--no-snapshot): $(start_s --no-snapshot) s"
  rm -f "$STORE/snapshot"
  echo "run $run: start-up without a snapshot file (full fold; one is written at shutdown): $(start_s) s"
  grep -h "wrote a snapshot" "$WORK/snapshot-serve.err" | sed 's/^/  /'
  echo "  snapshot size: $(stat -c %s "$STORE/snapshot") bytes; log: $(du -sb "$STORE/log" | cut -f1) bytes"
  echo "run $run: start-up with snapshot: $(start_s) s"
  grep -h "loaded the snapshot\|ledger opened" "$WORK/snapshot-serve.err" | sed 's/^/  /'
done
