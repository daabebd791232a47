#!/usr/bin/env bash
# SDMX-CSV of a whole generated store, beside GraphQL's paged listing of the same figures:
# `tradeledger serve` on a generated RELEASES x 500 store (2,000 gives 10^6 versions), then,
# one after the other, `data/{dataset}?format=csvdata` (the latest figures),
# `...&includeHistory=true` (every version) and `observations(first: 1000, after: ...)` paged
# to the end over GraphQL. For each: rows, seconds, rows per second, and the server's peak
# resident memory (VmHWM) after it, beside the peak once the store was opened.
#
#   bench/sdmx.sh                       # RELEASES=2000: 10^6 versions
#   RELEASES=200 bench/sdmx.sh          # a quick look
#
# Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RELEASES=${RELEASES:-2000}
PER_RELEASE=${PER_RELEASE:-500}
WORK=${WORK:-/tmp/tradeledger-sdmx}
PORT=${PORT:-18961}
need curl "Debian package curl"
need python3 "Debian package python3"
bench_bin
mkdir -p "$WORK"
generated_store "$RELEASES" "$PER_RELEASE"
trap stop_server EXIT
start_server "$STORE" "$PORT" --sdmx-max-observations 100000000
URL="http://127.0.0.1:$PORT"
peak() { awk '/VmHWM/ {printf "%d MB", $2 / 1024}' "/proc/$SERVER/status"; }
DATASET=$(curl -s "$URL/graphql" -H 'content-type: application/json' -d '{"query":"{ datasets { id } }"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["datasets"][0]["id"])')
echo "$(date +%F), $RELEASES releases x $PER_RELEASE observations, dataset $DATASET"
echo "opened: peak $(peak)"

# csv NAME QUERY: streams the SDMX-CSV answer to a counter; rows, seconds, rows/s, peak.
csv() {
  local start end rows
  start=$(date +%s.%N)
  rows=$(curl -sf "$URL/sdmx/2.1/data/$DATASET$2" | tail -n +2 | wc -l)
  end=$(date +%s.%N)
  python3 -c "s = $end - $start; print(f'$1: {$rows} rows in {s:.2f} s, {$rows / s:,.0f} rows/s, peak $(peak)')"
}
csv "SDMX-CSV latest" "?format=csvdata"
csv "SDMX-CSV includeHistory" "?format=csvdata&includeHistory=true"

python3 - "$URL" "$DATASET" <<'PY'
import json, sys, time, urllib.request
url, dataset = sys.argv[1], sys.argv[2]
query = """query($after: String) { observations(dataset: "%s", first: 1000, after: $after) {
  nodes { key period measure value status release { id publishedAt } } pageInfo { hasNextPage endCursor } } }""" % dataset
rows, after, start = 0, None, time.time()
while True:
    body = json.dumps({"query": query, "variables": {"after": after}}).encode()
    req = urllib.request.Request(url + "/graphql", body, {"content-type": "application/json"})
    page = json.load(urllib.request.urlopen(req))["data"]["observations"]
    rows += len(page["nodes"])
    if not page["pageInfo"]["hasNextPage"]:
        break
    after = page["pageInfo"]["endCursor"]
s = time.time() - start
print(f"GraphQL pages of 1000: {rows} rows in {s:.2f} s, {rows / s:,.0f} rows/s", end="")
PY
echo ", peak $(peak)"
