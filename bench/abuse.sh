#!/usr/bin/env bash
# Hostile clients against the release binary: time, answer and the server's memory (VmHWM
# peak and VmRSS resident from /proc/PID/status, MB), each attack against a fresh `serve` on
# a copy of a generated store, and each reported against a baseline measured on the same
# server just before the attack.
#
# First round (store "big": RELEASES x PER_RELEASE, 2,000 x 100 by default):
#  - item2: eight aliases of `releases(first: 1000, after: "0") { nodes { observations
#    { key period measure value } } }` (about 900 bytes of query);
#  - item6: 500 requests of `{ ledger { revision } }`, each with 2 MB of different unused
#    variables.
# Second round (bench/abuse2.py; "bigL" is BIGL_RELEASES x 10,000 observations, about
# 740 KB per event):
#  - proof: `observations(first: 1000) { nodes { proof { canonical } } }` under 3 aliases (bigL);
#  - events: `events(first: 1000) { nodes { canonical } }` under 30 aliases, 4 at once (big),
#    and resident memory after the answers, then after glibc's malloc_trim(0) (through gdb);
#  - idle-ws: /healthz from 127.0.0.2 while 127.0.0.1 opens 10,000 WebSockets that send
#    connection_init and never read (big);
#  - methods: /metrics size after 12,000 requests with distinct 60 KB methods (big);
#  - subscribers: 4 WebSockets that never read, with 30 replaying subscriptions of whole
#    releases each (bigL), until the server closes them (send timeout); then resident memory
#    15 s after the server let go of them, the allocator's in-use bytes (jemalloc's stats, or
#    glibc's malloc_stats() through gdb) and, with glibc, after malloc_trim(0);
#  - scans: /healthz from 127.0.0.2 while two clients run 30-alias fast-path scans of 1,000
#    figures and one publishes releases (big).
#
#   BEFORE=/tmp/tl-before bench/abuse.sh          # compare with an older binary
#   ATTACKS="proof events" bench/abuse.sh         # some attacks only
#   RELEASES=200 BIGL_RELEASES=10 bench/abuse.sh  # smaller stores
#   MALLOC_ARENA_MAX=2 ATTACKS=events bench/abuse.sh  # glibc with fewer arenas
#   BUILD_FLAGS=--no-default-features ATTACKS=subscribers bench/abuse.sh  # glibc's malloc
#   BUILD_FLAGS=--no-default-features PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 \
#     ATTACKS=subscribers bench/abuse.sh           # another allocator, preloaded into the server
#
# Needs python3, gdb (for malloc_trim; the row is left out without it) and `ulimit -n` of
# 25,000 or more for idle-ws.
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASES=${RELEASES:-2000}
PER_RELEASE=${PER_RELEASE:-100}
BIGL_RELEASES=${BIGL_RELEASES:-20}
ATTACKS=${ATTACKS:-item2 item6 proof events idle-ws methods subscribers scans}
WORK=${WORK:-/tmp/tradeledger-abuse}
BEFORE=${BEFORE:-}
AFTER=${AFTER:-${CARGO_TARGET_DIR:-target}/release/tradeledger}
mkdir -p "$WORK"

[ -n "${NO_BUILD:-}" ] || cargo build --release --locked --quiet --bin tradeledger ${BUILD_FLAGS:-}
# Generates and imports a store of $1 releases x $2 observations once; prints its path.
store() {
  local dir="$WORK/store-$1-$2"
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    $AFTER generate --releases "$1" --observations-per-release "$2" --seed 1 "$WORK/log.json" >/dev/null
    $AFTER import --log warn --data-dir "$dir" "$WORK/log.json" >/dev/null
    rm -f "$WORK/log.json"
    touch "$dir/.complete"
  fi
  echo "$dir"
}
BIG=$(store "$RELEASES" "$PER_RELEASE")
BIGL=$(store "$BIGL_RELEASES" 10000)

# Runs attack $2 against a fresh server of binary $1; prints one table row.
attack() {
  local bin=$1 name=$2 out="$WORK/serve.out" store=$BIG
  case $name in proof|subscribers) store=$BIGL ;; esac
  # A copy of the store, so no run sees another's caches or writes.
  rm -rf "$WORK/run" && cp -r "$store" "$WORK/run" && rm -f "$WORK/run/lock"
  env ${PRELOAD:+LD_PRELOAD=$PRELOAD} $bin serve --data-dir "$WORK/run" --listen 127.0.0.1:0 --no-fixtures --write-tokens "bench:bench-secret" \
    --log warn >"$out" 2>"$WORK/serve.err" &
  local pid=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$out" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$out" || { echo "server did not start: $(cat "$WORK/serve.err")" >&2; kill $pid; exit 1; }
  local addr
  addr=$(sed -n 's/^listening on //p' "$out")
  case $name in
    item2|item6) ;;
    *)
      SERVE_ERR="$WORK/serve.err" python3 bench/abuse2.py "$name" "$addr" "$pid"
      kill $pid
      wait $pid 2>/dev/null || true
      return
      ;;
  esac
  python3 - "$addr" "$pid" "$name" "$bin" <<'PY'
import http.client, json, sys, time

addr, pid, name, binary = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
host, port = addr.rsplit(":", 1)

def mem():
    status = open(f"/proc/{pid}/status").read()
    get = lambda k: int(next(l for l in status.splitlines() if l.startswith(k)).split()[1]) // 1024
    return get("VmHWM:"), get("VmRSS:")

def post(body):
    c = http.client.HTTPConnection(host, int(port), timeout=600)
    c.request("POST", "/graphql", body, {"content-type": "application/json", "accept": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data

hwm0, rss0 = mem()
start = time.time()
if name == "item2":
    one = lambda i: f'a{i}: releases(first: 1000, after: "0") {{ nodes {{ observations {{ key period measure value }} }} }}'
    query = "{ " + " ".join(one(i) for i in range(8)) + " }"
    status, data = post(json.dumps({"query": query}).encode())
    v = json.loads(data)
    err = v.get("errors", [{}])[0]
    what = f"HTTP {status}, {len(data)/1e6:.1f} MB, " + (
        f"{err.get('extensions', {}).get('code')} cost {err.get('extensions', {}).get('cost')}" if "errors" in v else "data")
else:
    sizes = set()
    for i in range(500):
        junk = f"{i}" + "x" * 2_000_000
        status, data = post(json.dumps({"query": "{ ledger { revision } }", "variables": {"unused": junk}}).encode())
        sizes.add(status)
    what = f"500 x 2 MB, statuses {sorted(sizes)}"
secs = time.time() - start
hwm1, rss1 = mem()
print(f"| {name} | {binary} | {secs:.2f} | {what} | {hwm0} -> {hwm1} | {rss0} -> {rss1} |")
PY
  kill $pid
  wait $pid 2>/dev/null || true
}

ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "big: $RELEASES releases x $PER_RELEASE observations; bigL: $BIGL_RELEASES x 10,000; build flags: ${BUILD_FLAGS:-none}; preload: ${PRELOAD:-none}; MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-unset}"
echo
echo "| attack | binary | seconds | answer | peak MB (VmHWM) | resident MB (VmRSS) |"
echo "|---|---|---:|---|---|---|"
for name in item2 item6; do
  case " $ATTACKS " in *" $name "*) ;; *) continue ;; esac
  [ -z "$BEFORE" ] || attack "$BEFORE" "$name"
  attack "$AFTER" "$name"
done
echo
echo "| attack | measure | baseline | under attack | ratio | notes |"
echo "|---|---|---:|---:|---:|---|"
for name in proof events idle-ws methods subscribers scans; do
  case " $ATTACKS " in *" $name "*) ;; *) continue ;; esac
  [ -z "$BEFORE" ] || attack "$BEFORE" "$name"
  attack "$AFTER" "$name"
done
