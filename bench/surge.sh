#!/usr/bin/env bash
# Release-day surge: many clients asking the same five queries (head figures, breakdowns, an
# asOf figure, the ledger head) over GET, first straight at the server, then through Varnish
# (deploy/varnish/tradeledger.vcl) with the server purging it (--purge-url). In the middle of
# each run a release is published. Prints one line per run: client throughput and latency,
# the server's GraphQL requests per second, and how long after the publish's acknowledgement
# a client of the run saw the new figure; then the ratios of the two runs.
#
#   bench/surge.sh                                  # 1,000 connections, 10 s per run
#   CONNECTIONS=200 DURATION=6 bench/surge.sh
#   BIN=target/debug/tradeledger bench/surge.sh     # another build
#
# Env: CONNECTIONS, THREADS, DURATION (seconds), MAX_AGE (--cache-max-age), PORT,
# VARNISH_PORT, VARNISHD, WORK. Needs wrk, curl, python3 and varnishd with the xkey vmod
# (Debian: varnish, varnish-modules). Everything runs on 127.0.0.1, so the load generator,
# Varnish and the server share the machine's cores.
#
# "Seen after" is measured by one client polling through the same path every 10 ms from the
# acknowledgement: every client behind Varnish is answered from the same cached object, so
# the first poll that shows the new figure bounds when the others do too (to the poll
# interval).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

CONNECTIONS=${CONNECTIONS:-1000}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10}
MAX_AGE=${MAX_AGE:-2}
PORT=${PORT:-$((20000 + RANDOM % 20000))}
VARNISH_PORT=${VARNISH_PORT:-$((PORT + 1))}
VARNISHD=${VARNISHD:-/usr/sbin/varnishd}
WORK=${WORK:-$(mktemp -d /tmp/tradeledger-surge.XXXXXX)}
SECRET=surge-bench-secret
need wrk "apt-get install wrk"
need curl "apt-get install curl"
need python3 "apt-get install python3"
[ -x "$VARNISHD" ] || { echo "varnishd is needed: apt-get install varnish varnish-modules" >&2; exit 1; }
bench_bin
ulimit -n $((CONNECTIONS * 4 + 1024)) 2>/dev/null || true

URL="http://127.0.0.1:$PORT"
VURL="http://127.0.0.1:$VARNISH_PORT"
VARNISH=
cleanup() {
  [ -z "$VARNISH" ] || { kill "$VARNISH" 2>/dev/null || true; wait "$VARNISH" 2>/dev/null || true; }
  stop_server
}
trap cleanup EXIT

"$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --log warn \
  --write-tokens "bench:$SECRET" --cache-max-age "$MAX_AGE" --purge-url "$VURL/" \
  >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
for _ in $(seq 1 600); do
  grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break
  sleep 0.1
done
grep -q "listening on" "$WORK/serve.out" || { echo "the server did not start: $(cat "$WORK/serve.err")" >&2; exit 1; }

sed "s/\.port = \"8000\";/.port = \"$PORT\";/" deploy/varnish/tradeledger.vcl >"$WORK/tradeledger.vcl"
"$VARNISHD" -F -j none -T none -n "$WORK/varnish" -a "127.0.0.1:$VARNISH_PORT" \
  -f "$WORK/tradeledger.vcl" -s malloc,256m >"$WORK/varnish.log" 2>&1 &
VARNISH=$!
for _ in $(seq 1 600); do
  curl -sf "$VURL/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "$VURL/healthz" >/dev/null || { echo "varnish did not start: $(cat "$WORK/varnish.log")" >&2; exit 1; }

# The five release-day queries, as GET paths.
python3 - "$WORK/paths" <<'PY'
import json, sys, urllib.parse
ds = "KR_KNOWLEDGE_SERVICES"
queries = [
    '{ observation(dataset: "%s", key: "_T._T._T", period: "2025-S1") { value revision status } }' % ds,
    '{ breakdown(dataset: "%s", dimension: "SERVICE_TYPE", period: "2025-S1") { total { value } items { key value } residual } }' % ds,
    '{ breakdown(dataset: "%s", dimension: "COUNTERPART", period: "2025-S1") { total { value } items { key value } residual } }' % ds,
    '{ observation(dataset: "%s", key: "_T._T._T", period: "2025-S1", asOf: { revision: 2 }) { value revision status } }' % ds,
    '{ ledger { revision hash } }',
]
with open(sys.argv[1], "w") as f:
    for q in queries:
        f.write("/graphql?" + urllib.parse.urlencode({"query": q}) + "\n")
PY
HEAD_PATH=$(head -1 "$WORK/paths")

origin_gets() {
  curl -s "$URL/metrics" | awk '/^tradeledger_http_requests_total\{/ && /route="\/graphql"/ && /method="GET"/ {s += $NF} END {printf "%d\n", s}'
}

now_ms() { date +%s%3N; }

# run LABEL TARGET VALUE: wrk against TARGET, a release setting the head figure to VALUE
# published halfway; prints the run's line and sets RPS, P99, ORIGIN_RPS, SEEN_MS.
run() {
  local label=$1 target=$2 value=$3
  local before after start ack seen=-1
  before=$(origin_gets)
  PATHS="$WORK/paths" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
    -s bench/surge.lua "$target" >"$WORK/$label.wrk" 2>&1 &
  local load=$!
  start=$(now_ms)
  sleep "$(python3 -c "print($DURATION / 2)")"
  local body
  body=$(python3 - "$value" <<'PY'
import json, sys, uuid, datetime
print(json.dumps({
    "query": "mutation($input: ReleaseInput!) { publishRelease(input: $input) { revision } }",
    "variables": {"input": {
        "id": str(uuid.uuid4()), "dataset": "KR_KNOWLEDGE_SERVICES", "status": "REVISED",
        "title": "SYNTHETIC surge release", "source": "SYNTHETIC: bench/surge.sh",
        "publishedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "observations": [{"key": "_T._T._T", "period": "2025-S1", "value": sys.argv[1]}]}},
}))
PY
)
  curl -sf -H "authorization: Bearer $SECRET" -H 'content-type: application/json' -d "$body" "$URL/graphql" >"$WORK/$label.publish"
  ack=$(now_ms)
  while [ $(($(now_ms) - start)) -lt $((DURATION * 1000)) ]; do
    if curl -s -H 'accept: application/json' "$target$HEAD_PATH" | grep -q "\"$value\""; then
      seen=$(($(now_ms) - ack))
      break
    fi
    sleep 0.01
  done
  wait "$load"
  after=$(origin_gets)
  read -r _ RPS P50 P99 ERRORS REQUESTS < <(grep '^RESULT' "$WORK/$label.wrk")
  ORIGIN_RPS=$(python3 -c "print(round(($after - $before) / $DURATION, 1))")
  SEEN_MS=$seen
  printf '%-8s clients %9.1f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %s/%s  origin %8.1f req/s  new figure seen %s ms after the ack\n' \
    "$label" "$RPS" "$P50" "$P99" "$ERRORS" "$REQUESTS" "$ORIGIN_RPS" "$SEEN_MS"
}

echo "surge: $CONNECTIONS connections, $THREADS wrk threads, ${DURATION}s per run, --cache-max-age $MAX_AGE, $BIN"
run origin "$URL" "-4701"
ORIGIN_CLIENT_RPS=$RPS
ORIGIN_P99=$P99
run varnish "$VURL" "-4702"
python3 - "$ORIGIN_CLIENT_RPS" "$RPS" "$ORIGIN_P99" "$P99" "$ORIGIN_RPS" <<'PY'
import sys
bare, cached, bare_p99, cached_p99, origin = map(float, sys.argv[1:])
print(f"ratios:  clients served through varnish / bare origin = {cached / bare:.1f}x;"
      f"  p99 through varnish / bare = {cached_p99 / bare_p99:.2f};"
      f"  origin load through varnish / bare origin load = {origin / bare:.4f}")
PY
