#!/usr/bin/env bash
# Online import and export against their offline forms, in the same run: the same generated
# JSON file recorded by `tradeledger import --data-dir` (offline, no server) and by
# `tradeledger import --url` into a running server (admin token; the server checks every
# batch, then records it), then the server's log taken by `export --url` and the stopped
# store's by `export --data-dir`. Prints observations (import) or events (export) per second
# for each and the online/offline ratios; checks the two logs hold as many events.
#
#   bench/online.sh                        # 2,000 x 500 observations (10^6)
#   RELEASES=500 bench/online.sh
#
# Env: RELEASES, PER_RELEASE, WORK (stores and files), BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RELEASES=${RELEASES:-2000}
PER_RELEASE=${PER_RELEASE:-500}
WORK=${WORK:-/tmp/tradeledger-online}
rm -rf "$WORK" && mkdir -p "$WORK"
bench_bin
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
obs=$((RELEASES * PER_RELEASE))
now() { date +%s.%N; }
rate() { python3 -c "print(round($1 / ($3 - $2)))"; }

echo "$(date -u +%F), tradeledger online import and export, $RELEASES releases x $PER_RELEASE observations, load average $(cut -d" " -f1-3 /proc/loadavg)"
"$BIN" generate --releases "$RELEASES" --observations-per-release "$PER_RELEASE" --seed 1 "$WORK/releases.json" >/dev/null

t0=$(now); "$BIN" import --log warn --data-dir "$WORK/offline" "$WORK/releases.json" >/dev/null; t1=$(now)
offline=$(rate $obs "$t0" "$t1")

"$BIN" serve --log warn --data-dir "$WORK/online" --no-fixtures --listen 127.0.0.1:0 \
  --admin-tokens bench:online-bench-secret >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
for _ in $(seq 100); do grep -q '^listening on' "$WORK/serve.out" && break; sleep 0.1; done
url="http://$(sed -n 's/^listening on //p' "$WORK/serve.out")"
t0=$(now); "$BIN" import --url "$url" --token online-bench-secret "$WORK/releases.json" >/dev/null 2>&1; t1=$(now)
online=$(rate $obs "$t0" "$t1")
events=$((RELEASES + 1))
t0=$(now); "$BIN" export --url "$url" --token online-bench-secret --out "$WORK/online.jsonl" 2>/dev/null; t1=$(now)
online_export=$(rate $events "$t0" "$t1")
kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=
t0=$(now); "$BIN" export --data-dir "$WORK/offline" --out "$WORK/offline.jsonl" 2>/dev/null; t1=$(now)
offline_export=$(rate $events "$t0" "$t1")
# The two stores hold the same releases; their events differ only in recording time and actor.
[ "$(wc -l <"$WORK/online.jsonl")" = "$(wc -l <"$WORK/offline.jsonl")" ] || { echo "the exports differ in length" >&2; exit 1; }

echo "import offline: $offline observations/s"
echo "import online:  $online observations/s  (online/offline $(python3 -c "print(round($online / $offline, 2))"))"
echo "export offline: $offline_export events/s"
echo "export online:  $online_export events/s  (online/offline $(python3 -c "print(round($online_export / $offline_export, 2))"))"
