#!/usr/bin/env bash
# Catch-up of a JetStream node, beside a sled node on the same data, in one run:
# one nats-server (R1, JetStream in $WORK/nats), a stream filled with `tradeledger import
# --store jetstream` from `generate` (RELEASES x 500 observations for each size in SIZES:
# 2000 and 20000 give 10^6 and 10^7 versions), and the same file imported into a sled store.
# For each: seconds from launching `serve` to `/readyz` answering 200 at the head revision,
# for a FRESH node (empty data directory, no snapshot: the full fold, as the stream
# downloads), for a node with its snapshot and its copy of the stream (second start), and for
# a node with its copy but no snapshot (third start, --no-snapshot: the copy folded from the
# disk); versions per second of the full folds; peak RSS of each node
# (/usr/bin/time -v).
#
#   bench/catchup.sh                       # SIZES="2000 20000"
#   SIZES=200 bench/catchup.sh             # a quick look
#   BIN=/tmp/tradeledger-before bench/catchup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SIZES=${SIZES:-"2000 20000"}
PER_RELEASE=${PER_RELEASE:-500}
WORK=${WORK:-/tmp/tradeledger-catchup}
NATS=${TRADELEDGER_NATS_SERVER:-nats-server}
PORT=${NATS_PORT:-25222}
need "$NATS" "bash .ci/setup installs nats-server 2.15.1"
need /usr/bin/time "Debian package time"
need curl "Debian package curl"
bench_bin

rm -rf "$WORK" && mkdir -p "$WORK"
NATS_PID=
NODE=
trap 'kill $NODE $NATS_PID 2>/dev/null || true' EXIT
start_nats "$PORT"
URL=$NATS_URL

# start DATA_DIR HEAD [serve flags...]: launches `serve` under /usr/bin/time -v, sets SECS to
# the seconds until /readyz says 200 at revision HEAD, stops it with SIGTERM (which writes the
# snapshot unless --no-snapshot), sets RSS_MB to its peak RSS and prints its "ledger opened".
start() {
  local dir=$1 head=$2
  shift 2
  local out="$WORK/serve.out" err="$WORK/serve.err"
  rm -f "$out"
  local started; started=$(date +%s.%N)
  /usr/bin/time -v -o "$WORK/time.txt" "$BIN" serve --data-dir "$dir" --listen 127.0.0.1:0 \
    --no-fixtures --log info "$@" >"$out" 2>"$err" &
  NODE=$!
  local addr="" now=""
  for _ in $(seq 1 30000); do
    [ -z "$addr" ] && addr=$(sed -n 's/^listening on //p' "$out" 2>/dev/null)
    if [ -n "$addr" ] && curl -fs "http://$addr/readyz" 2>/dev/null | grep -q "\"revision\":$head[,}]"; then
      now=$(date +%s.%N)
      break
    fi
    kill -0 $NODE 2>/dev/null || { echo "serve exited: $(tail -5 "$err")" >&2; exit 1; }
    sleep 0.01
  done
  [ -n "$now" ] || { echo "not ready at revision $head: $(tail -5 "$err")" >&2; exit 1; }
  # /usr/bin/time does not pass signals on: stop the server itself, then reap time.
  kill -TERM "$(pgrep -P $NODE)"
  wait $NODE 2>/dev/null || true
  NODE=
  RSS_MB=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$WORK/time.txt")
  SECS=$(python3 -c "print(f'{$now - $started:.2f}')")
  grep -h "ledger opened" "$err" | sed 's/^/  /' || true
}

echo "$(date -u '+%F %H:%M') UTC, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $("$NATS" --version)"
for releases in $SIZES; do
  versions=$((releases * PER_RELEASE))
  file="$WORK/log-$releases.json"
  "$BIN" generate --releases "$releases" --observations-per-release "$PER_RELEASE" --seed 1 "$file" >/dev/null
  stream="CATCHUP_$releases"
  t0=$(date +%s.%N)
  "$BIN" import --log warn --data-dir "$WORK/import-$releases" --store jetstream --nats-url "$URL" \
    --nats-stream "$stream" "$file" >"$WORK/import.out"
  t1=$(date +%s.%N)
  "$BIN" import --log warn --data-dir "$WORK/sled-$releases" "$file" >"$WORK/import-sled.out"
  t2=$(date +%s.%N)
  rm -f "$file"
  head=$((releases + 1))
  echo
  echo "== $releases releases x $PER_RELEASE = $versions versions, head revision $head"
  python3 -c "print(f'import: jetstream {$t1 - $t0:.1f} s, sled {$t2 - $t1:.1f} s')"
  js_dir="$WORK/js-node-$releases"
  js=(--store jetstream --nats-url "$URL" --nats-stream "$stream")
  start "$js_dir" "$head" "${js[@]}"; js_full=$SECS; js_full_rss=$RSS_MB
  start "$js_dir" "$head" "${js[@]}"; js_snap=$SECS; js_snap_rss=$RSS_MB
  start "$js_dir" "$head" "${js[@]}" --no-snapshot; js_copy=$SECS; js_copy_rss=$RSS_MB
  sled_dir="$WORK/sled-$releases"
  start "$sled_dir" "$head" --no-snapshot; sled_full=$SECS; sled_full_rss=$RSS_MB
  start "$sled_dir" "$head" >/dev/null # writes the snapshot at shutdown
  start "$sled_dir" "$head"; sled_snap=$SECS; sled_snap_rss=$RSS_MB
  python3 - <<PY
v = $versions
rows = [("jetstream, fresh node (full fold)", $js_full, $js_full_rss, True),
        ("jetstream, with its snapshot", $js_snap, $js_snap_rss, False),
        ("jetstream, its copy, no snapshot", $js_copy, $js_copy_rss, True),
        ("sled, full fold (--no-snapshot)", $sled_full, $sled_full_rss, True),
        ("sled, with its snapshot", $sled_snap, $sled_snap_rss, False)]
for name, s, rss, full in rows:
    rate = f"{v / s:12,.0f} versions/s" if full else " " * 23
    print(f"{name:36} {s:7.2f} s to /readyz 200  {rate}  peak RSS {rss:6} MB")
print(f"jetstream / sled time: full fold {$js_full / $sled_full:.2f}, with snapshot {$js_snap / $sled_snap:.2f}")
PY
done
