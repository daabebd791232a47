#!/usr/bin/env bash
# Mixed workload: wrk draws every request at random (seeded) from pre-generated bodies of a
# realistic mix of reads over a generated store (bench/mixed_bodies.py: breakdowns, single
# figures, histories, filtered listings and revision summaries over random periods, keys,
# dimensions and asOf points, with varied selections). Runs the same mix with the response
# cache on and off and prints one line per run: throughput, latency and the cache's hit rate
# (from /metrics), plus the share of sampled bodies answered with errors (should be 0).
#
#   bench/mixed.sh                              # 2,000 releases x 500, 10 s, 64 connections
#   DURATION=30s CONNECTIONS=128 bench/mixed.sh
#   WRITES=50 bench/mixed.sh                    # with 50 releases/s published meanwhile
#   BIN=/tmp/tradeledger-before bench/mixed.sh  # another build, same store and bodies
#
# Env: RELEASES, PER_RELEASE, DURATION, CONNECTIONS, THREADS, BODY_COUNT, SEED,
# CACHES (response cache entries per run, default "1024 0"), WRITES, PORT, WORK.
# Needs wrk, curl and python3. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RELEASES=${RELEASES:-2000}
PER_RELEASE=${PER_RELEASE:-500}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BODY_COUNT=${BODY_COUNT:-20000}
SEED=${SEED:-1}
CACHES=${CACHES:-1024 0}
WRITES=${WRITES:-0}
PORT=${PORT:-$((20000 + RANDOM % 20000))}
WORK=${WORK:-/tmp/tradeledger-load}
mkdir -p "$WORK"
need wrk "apt-get install wrk"
need curl "apt-get install curl"
bench_bin
generated_store "$RELEASES" "$PER_RELEASE"
BODY_FILE="$WORK/mixed-$RELEASES-$SEED-$BODY_COUNT.jsonl"
python3 bench/mixed_bodies.py "$RELEASES" "$BODY_COUNT" "$SEED" >"$BODY_FILE"
URL="http://127.0.0.1:$PORT"
trap '[ -z "${WRITER:-}" ] || kill "$WRITER" 2>/dev/null; stop_server' EXIT

printf '%s, %s releases x %s observations, %s bodies (seed %s), wrk -t%s -c%s -d%s, %s writes/s, load average %s\n' \
  "$(date -u +%F)" "$RELEASES" "$PER_RELEASE" "$BODY_COUNT" "$SEED" "$THREADS" "$CONNECTIONS" "$DURATION" "$WRITES" \
  "$(cut -d" " -f1-3 /proc/loadavg)"
for entries in $CACHES; do
  DIR=$STORE
  if [ "$WRITES" != 0 ]; then
    # Writes change the store: run on a copy.
    DIR="$WORK/mixed-scratch"
    rm -rf "$DIR" && cp -r "$STORE" "$DIR"
  fi
  start_server "$DIR" "$PORT" --response-cache-entries "$entries"
  # A sample of the bodies must answer without errors, else the mix measures error paths.
  failed=$(python3 - "$URL/graphql" "$BODY_FILE" <<'PY'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
lines = open(sys.argv[2]).read().splitlines()
bad = 0
for body in lines[:: max(1, len(lines) // 300)]:
    c.request("POST", u.path, body, {"content-type": "application/json"})
    r = c.getresponse()
    out = json.loads(r.read())
    if r.status != 200 or out.get("errors"):
        bad += 1
        if bad <= 2:
            print(f"error: {body} -> {out}", file=sys.stderr)
print(f"{bad}/{len(lines[:: max(1, len(lines) // 300)])}")
PY
)
  BODIES="$BODY_FILE" SEED="$SEED" wrk -t"$THREADS" -c"$CONNECTIONS" -d3s -s bench/mixed.lua "$URL/graphql" >/dev/null
  if [ "$WRITES" != 0 ]; then
    start_writer "$URL/graphql" "$DIR/write-token" SYNTHETIC_TRADE \
      "$(python3 -c "print(','.join(f'{(1990*12+i)//12}-{(1990*12+i)%12+1:02d}' for i in range($RELEASES-3, $RELEASES)))")" \
      "_T._T._T,_T.P01._T,_T.P02._T,_T.P03._T,_T.P04._T" "$WRITES"
  fi
  read -r h0 m0 <<<"$(cache_counts "$URL")"
  f0=$(fast_count "$URL")
  line=$(BODIES="$BODY_FILE" SEED="$SEED" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/mixed.lua "$URL/graphql" | grep '^RESULT')
  read -r h1 m1 <<<"$(cache_counts "$URL")"
  f1=$(fast_count "$URL")
  writer=""
  if [ -n "${WRITER:-}" ]; then
    stop_writer
    writer=" writer: $WRITER_SUMMARY"
  fi
  stop_server
  read -r _ rps p50 p99 errors requests <<<"$line"
  hit=$(python3 -c "h,m=$h1-$h0,$m1-$m0; print(f'{h/(h+m):.3f}' if h+m else 'n/a')")
  # Share of the requests the fast path answered (the rest: cache hits, async-graphql).
  fast=$(python3 -c "f,n=$f1-$f0,$requests; print(f'{f/n:.3f}' if n else 'n/a')")
  echo "mixed cache_entries=$entries req_s=$rps p50_ms=$p50 p99_ms=$p99 hit_rate=$hit fast_path_share=$fast requests=$requests errors=$errors sample_errors=$failed$writer"
done
