#!/usr/bin/env bash
# Memory per observation version: peak resident memory of `tradeledger serve` once it has
# opened a generated store, minus that of a server on an empty store, divided by the number
# of versions. Also times `rebuild` and `import` of the same log.
#
#   bench/memory.sh                               # 20,000 releases x 500 = 10^7 versions
#   RELEASES=2000 bench/memory.sh                 # 10^6
#
# The 10^7 log is a 700 MB file and its store 1.3 GB; both are kept in $WORK for reruns.
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASES=${RELEASES:-20000}
PER_RELEASE=${PER_RELEASE:-500}
WORK=${WORK:-/tmp/tradeledger-memory}
mkdir -p "$WORK"

cargo build --release --locked --quiet --bin tradeledger
BIN=target/release/tradeledger
LOG="$WORK/log-$RELEASES-$PER_RELEASE.json"
STORE="$WORK/store-$RELEASES-$PER_RELEASE"
[ -f "$LOG" ] || $BIN generate --releases "$RELEASES" --observations-per-release "$PER_RELEASE" --seed 1 "$LOG"
if [ ! -f "$STORE/.complete" ]; then
  rm -rf "$STORE" && mkdir -p "$STORE"
  echo "import: $(/usr/bin/time -f "%e s wall, peak %M KB" $BIN import --log warn --data-dir "$STORE" "$LOG" 2>&1 | tr "\n" " ")"
  touch "$STORE/.complete"
fi

# Peak resident memory (VmHWM, KB) of a server on $1, read once it listens.
peak_kb() {
  local out="$WORK/serve.out"
  $BIN serve --data-dir "$1" --listen 127.0.0.1:0 --no-fixtures --log warn >"$out" 2>"$WORK/serve.err" &
  local pid=$!
  for _ in $(seq 1 1200); do grep -q "listening on" "$out" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$out" || { echo "server did not start: $(cat "$WORK/serve.err")" >&2; kill $pid; exit 1; }
  awk '/VmHWM/ {print $2}' "/proc/$pid/status"
  kill $pid
  wait $pid 2>/dev/null || true
}

rm -rf "$WORK/empty" && mkdir -p "$WORK/empty"
empty=$(peak_kb "$WORK/empty")
started=$(date +%s.%N)
full=$(peak_kb "$STORE")
open_s=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
versions=$((RELEASES * PER_RELEASE))
echo "$(date +%F), $RELEASES releases x $PER_RELEASE observations = $versions versions"
echo "empty server peak:  $empty KB"
echo "loaded server peak: $full KB (start-up to listening: $open_s s)"
python3 -c "print(f'per version: {($full - $empty) * 1024 / $versions:.1f} bytes (target: at most 64)')"
echo "rebuild: $($BIN rebuild --data-dir "$STORE" | tail -1)"
