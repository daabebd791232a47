#!/usr/bin/env bash
# Online import and export while reads run, against the offline import, in the same run.
#
# The same generated CSV file (after its dataset definition) is recorded by `tradeledger
# import --data-dir` (offline, no server), then by `tradeledger import --url` into a running
# server that holds the fixtures, while wrk asks the server for a breakdown of the fixtures
# (with the response cache, as served by default). The reads are measured first with nothing
# else running (the baseline), then during the online import, then during `export --url` of
# the whole log; each line gives requests per second and p99, and their ratios to the
# baseline. Then nothing may be lost or duplicated: the head must be the fixtures plus the
# dataset and every release; a second `import --url` must find every release already there;
# the export's signed checkpoint (checked with `--vkey`) must have the root and size that
# `tradeledger verify` finds in the stopped store, and the fixtures' root from before the
# import must be what `verify` found then.
#
#   bench/online.sh                        # 2,000 x 500 observations (10^6 versions)
#   RELEASES=500 bench/online.sh
#
# Env: RELEASES, PER_RELEASE, DURATION (baseline reads), CONNECTIONS, THREADS, PORT, WORK, BIN.
# Needs wrk, curl, python3 and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RELEASES=${RELEASES:-2000}
PER_RELEASE=${PER_RELEASE:-500}
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
PORT=${PORT:-$((20000 + RANDOM % 20000))}
WORK=${WORK:-/tmp/tradeledger-online}
need wrk "apt-get install wrk"
need curl "apt-get install curl"
need /usr/bin/time "apt-get install time"
rm -rf "$WORK" && mkdir -p "$WORK"
bench_bin
WRK=
trap '[ -n "$WRK" ] && kill "$WRK" 2>/dev/null; stop_server; rm -rf "$WORK"' EXIT
obs=$((RELEASES * PER_RELEASE))
SECRET=online-bench-secret
URL="http://127.0.0.1:$PORT"
now() { date +%s.%N; }
rate() { python3 -c "print(round($1 / ($3 - $2)))"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
# The root (hex) and size of a checkpoint note.
note_root() { python3 -c "import base64,sys; l=open(sys.argv[1]).read().split('\n'); print(base64.b64decode(l[2]).hex(), l[1])" "$1"; }
# "root events" from `tradeledger verify`.
verify_root() { "$BIN" verify --log warn --data-dir "$1" | sed -n 's/^ok: \([0-9]*\) events.*tree root \([0-9a-f]*\).*/\2 \1/p'; }

cat >"$WORK/read.json" <<'JSON'
{"query": "{ breakdown(dataset: \"KR_KNOWLEDGE_SERVICES\", dimension: \"SERVICE_TYPE\", period: \"2025-S1\") { total { value } items { key value status } sumOfItems residual } }"}
JSON
cat >"$WORK/post.lua" <<'LUA'
local f = assert(io.open(os.getenv("BODY_FILE"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.3f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(99) / 1000, e.status + e.connect + e.read + e.write + e.timeout))
end
LUA
# Reads in the background until stop_reads: "req/s p99_ms errors" in $WORK/$1.wrk.
start_reads() {
  BODY_FILE="$WORK/read.json" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${2:-3600s}" --latency -s "$WORK/post.lua" \
    "$URL/graphql" >"$WORK/$1.wrk" &
  WRK=$!
}
stop_reads() {
  kill -INT "$WRK" 2>/dev/null || true
  wait "$WRK" || true
  WRK=
}
reads_of() { awk '/^RESULT/ {print $2, $3, $4}' "$WORK/$1.wrk"; }

echo "$(date -u +%F), tradeledger online import and export, $RELEASES releases x $PER_RELEASE observations (CSV), reads: wrk -t$THREADS -c$CONNECTIONS, load average $(cut -d" " -f1-3 /proc/loadavg)"
"$BIN" generate --releases 0 "$WORK/dataset.json" >/dev/null
"$BIN" generate --releases "$RELEASES" --observations-per-release "$PER_RELEASE" --seed 1 --format csv \
  "$WORK/releases.csv" >/dev/null
files=("$WORK/dataset.json" "$WORK/releases.csv")

t0=$(now); "$BIN" import --log warn --data-dir "$WORK/offline" "${files[@]}" >/dev/null; t1=$(now)
offline=$(rate $obs "$t0" "$t1")
rm -rf "$WORK/offline"

# The server's store: the fixtures, verified before it serves.
"$BIN" import --log warn --data-dir "$WORK/online" fixtures/*.json >/dev/null
read -r root_before events_before <<<"$(verify_root "$WORK/online")"
start_server "$WORK/online" "$PORT" --admin-tokens "bench:$SECRET"
vkey=$(curl -s "$URL/graphql" -H 'content-type: application/json' -d '{"query":"{ verifierKey }"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["verifierKey"])')
curl -s "$URL/checkpoint" >"$WORK/before.checkpoint"
[ "$(note_root "$WORK/before.checkpoint")" = "$root_before $events_before" ] ||
  { echo "the served checkpoint is not what verify found" >&2; exit 1; }

start_reads baseline "$DURATION"; wait "$WRK"; WRK=
read -r base_rps base_p99 base_err <<<"$(reads_of baseline)"

start_reads import
t0=$(now)
/usr/bin/time -f "%M" -o "$WORK/import.rss" "$BIN" import --url "$URL" --token "$SECRET" "${files[@]}" \
  >"$WORK/import.out" 2>"$WORK/import.err" || { stop_reads; cat "$WORK/import.err" >&2; exit 1; }
t1=$(now)
stop_reads
online=$(rate $obs "$t0" "$t1")
read -r imp_rps imp_p99 imp_err <<<"$(reads_of import)"

events=$((events_before + 1 + RELEASES))
head=$(curl -s "$URL/graphql" -H 'content-type: application/json' -d '{"query":"{ ledger { revision } }"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["ledger"]["revision"])')
[ "$head" = "$events" ] || { echo "head $head after the import, expected $events" >&2; exit 1; }
"$BIN" import --url "$URL" --token "$SECRET" "${files[@]}" >"$WORK/again.out" 2>/dev/null
grep -q "recorded 0 datasets and 0 releases" "$WORK/again.out" ||
  { echo "a second import recorded something: $(cat "$WORK/again.out")" >&2; exit 1; }

start_reads export
t0=$(now)
"$BIN" export --url "$URL" --token "$SECRET" --vkey "$vkey" --out "$WORK/online.jsonl" 2>/dev/null ||
  { stop_reads; echo "export failed" >&2; exit 1; }
t1=$(now)
stop_reads
online_export=$(rate $events "$t0" "$t1")
read -r exp_rps exp_p99 exp_err <<<"$(reads_of export)"
stop_server
read -r root_after events_after <<<"$(verify_root "$WORK/online")"
[ "$(note_root "$WORK/online.jsonl.checkpoint")" = "$root_after $events_after" ] && [ "$events_after" = "$events" ] ||
  { echo "the export's checkpoint ($(note_root "$WORK/online.jsonl.checkpoint")) is not what verify found ($root_after $events_after)" >&2; exit 1; }

echo "import offline: $offline observations/s"
echo "import online:  $online observations/s (online/offline $(ratio "$online" "$offline")); client peak RSS $(($(cat "$WORK/import.rss") / 1024)) MB, file $(($(stat -c %s "$WORK/releases.csv") / 1000000)) MB"
echo "export online:  $online_export events/s"
echo "reads alone:           $base_rps req/s, p99 $base_p99 ms, errors $base_err"
echo "reads during import:   $imp_rps req/s, p99 $imp_p99 ms, errors $imp_err (throughput x$(ratio "$imp_rps" "$base_rps"), p99 x$(ratio "$imp_p99" "$base_p99"))"
echo "reads during export:   $exp_rps req/s, p99 $exp_p99 ms, errors $exp_err (throughput x$(ratio "$exp_rps" "$base_rps"), p99 x$(ratio "$exp_p99" "$base_p99"))"
echo "verify before: $events_before events, root $root_before (the served checkpoint's); after: $events_after events, root $root_after (the export's signed checkpoint's); a second import: every release already there"
