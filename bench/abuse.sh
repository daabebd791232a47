#!/usr/bin/env bash
# Issue 10, items 2 and 6, before and after: time, response size and the server's memory for
#  - item 2: eight aliases of `releases(first: 1000, after: "0") { nodes { observations
#    { key period measure value } } }` (about 900 bytes of query);
#  - item 6: 500 requests of `{ ledger { revision } }`, each with 2 MB of different unused
#    variables.
# Each attack runs against a fresh `serve` on a generated store (2,000 releases x 100
# observations = 2*10^5 figure versions by default). Memory is read from /proc/PID/status:
# VmHWM (peak) and VmRSS (resident) in MB, before and after.
#
#   BEFORE=/tmp/tl-before bench/abuse.sh          # compare with an older binary
#   RELEASES=200 bench/abuse.sh                   # a smaller store
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASES=${RELEASES:-2000}
PER_RELEASE=${PER_RELEASE:-100}
WORK=${WORK:-/tmp/tradeledger-abuse}
BEFORE=${BEFORE:-}
AFTER=${AFTER:-target/release/tradeledger}
mkdir -p "$WORK"

[ -n "${NO_BUILD:-}" ] || cargo build --release --locked --quiet --bin tradeledger
STORE="$WORK/store-$RELEASES-$PER_RELEASE"
if [ ! -f "$STORE/.complete" ]; then
  rm -rf "$STORE" && mkdir -p "$STORE"
  $AFTER generate --releases "$RELEASES" --observations-per-release "$PER_RELEASE" --seed 1 "$WORK/log.json" >/dev/null
  $AFTER import --log warn --data-dir "$STORE" "$WORK/log.json" >/dev/null
  touch "$STORE/.complete"
fi

# Runs attack $2 against a fresh server of binary $1; prints one table row.
attack() {
  local bin=$1 name=$2 out="$WORK/serve.out"
  # A copy of the store, so no run sees another's caches or writes.
  rm -rf "$WORK/run" && cp -r "$STORE" "$WORK/run" && rm -f "$WORK/run/lock"
  $bin serve --data-dir "$WORK/run" --listen 127.0.0.1:0 --no-fixtures --write-tokens "bench:bench-secret" \
    --log warn >"$out" 2>"$WORK/serve.err" &
  local pid=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$out" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$out" || { echo "server did not start: $(cat "$WORK/serve.err")" >&2; kill $pid; exit 1; }
  local addr
  addr=$(sed -n 's/^listening on //p' "$out")
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

echo "$(date -u +%F), $RELEASES releases x $PER_RELEASE observations"
echo "| attack | binary | seconds | answer | peak MB (VmHWM) | resident MB (VmRSS) |"
echo "|---|---|---:|---|---|---|"
for name in item2 item6; do
  [ -z "$BEFORE" ] || attack "$BEFORE" "$name"
  attack "$AFTER" "$name"
done
