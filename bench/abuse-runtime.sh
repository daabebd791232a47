#!/usr/bin/env bash
# Issue 10, classes 3 and 5, before and after: on a generated store of 2,000 releases x 100
# observations (2*10^5 versions), release builds,
#   - /healthz p50/p99 while 3 heavy queries (30 aliases of `releases(first: 1000) { nodes { hash } }`)
#     run, and how long each heavy query takes;
#   - a heavy query under a 1 s request timeout: when the answer comes, and the server's CPU
#     time in the 3 s after it (work that goes on after the timeout shows up here);
#   - 50,000 `observationRevised` subscriptions on one WebSocket: how many are accepted, and
#     the growth of resident memory.
#
#   bench/abuse-runtime.sh                         # BEFORE=/tmp/tl-before, AFTER=target/release/tradeledger
#   BEFORE= bench/abuse-runtime.sh                 # only the current build
#
# Python 3 (standard library only) drives the clients. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASES=${RELEASES:-2000}
PER_RELEASE=${PER_RELEASE:-100}
WORK=${WORK:-/tmp/tradeledger-abuse-runtime}
BEFORE=${BEFORE-/tmp/tl-before}
AFTER=${AFTER:-target/release/tradeledger}
SUBSCRIPTIONS=${SUBSCRIPTIONS:-50000}
mkdir -p "$WORK"

[ -x "$AFTER" ] || cargo build --release --locked --quiet --bin tradeledger

LOG="$WORK/log-$RELEASES-$PER_RELEASE.json"
TEMPLATE="$WORK/store-$RELEASES-$PER_RELEASE"
if [ ! -f "$TEMPLATE/.complete" ]; then
  rm -rf "$TEMPLATE" && mkdir -p "$TEMPLATE"
  $AFTER generate --releases "$RELEASES" --observations-per-release "$PER_RELEASE" --seed 1 "$LOG"
  $AFTER import --log warn --data-dir "$TEMPLATE" "$LOG"
  touch "$TEMPLATE/.complete"
fi

cat > "$WORK/drive.py" <<'PY'
import base64, http.client, json, os, socket, struct, sys, threading, time

addr, pid, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
host, port = addr.rsplit(":", 1)
port = int(port)
HEAVY = "{ " + " ".join(f"a{i}: releases(first: 1000) {{ nodes {{ hash }} }}" for i in range(30)) + " }"
TICK = os.sysconf("SC_CLK_TCK")

def cpu():
    rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK

def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

def post(query, timeout=600):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    t = time.monotonic()
    c.request("POST", "/graphql", json.dumps({"query": query}), {"content-type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, time.monotonic() - t, len(body)

def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, -(-len(xs) * p // 100) - 1)]

if what == "health":
    heavy_times, stop = [], False
    def heavy():
        while not stop:
            status, took, size = post(HEAVY)
            heavy_times.append((status, round(took, 2), size))
    threads = [threading.Thread(target=heavy) for _ in range(3)]
    for t in threads: t.start()
    time.sleep(1)
    samples = []
    c = http.client.HTTPConnection(host, port, timeout=600)
    for _ in range(100):
        t = time.monotonic()
        c.request("GET", "/healthz"); c.getresponse().read()
        samples.append((time.monotonic() - t) * 1000)
        time.sleep(0.02)
    stop = True
    for t in threads: t.join()
    print(f"  /healthz while 3 heavy queries run: p50 {pct(samples, 50):.1f} ms, p99 {pct(samples, 99):.1f} ms, max {max(samples):.1f} ms")
    print(f"  heavy queries (status, s, bytes): {heavy_times}")
elif what == "timeout":
    before = cpu()
    status, took, _ = post(HEAVY)
    at_answer = cpu()
    time.sleep(3)
    after = cpu()
    print(f"  heavy query under a 1 s timeout: HTTP {status} after {took:.2f} s; server CPU {at_answer - before:.2f} s until the answer, {after - at_answer:.2f} s in the 3 s after it")
elif what == "subscriptions":
    n = int(sys.argv[4])
    s = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /graphql/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    def frame(text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    counts = {"error": 0, "other": 0}
    def reader():
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk: return
            buf += chunk
            while len(buf) >= 2:
                ln = buf[1] & 0x7f; off = 2
                if ln == 126: ln = struct.unpack(">H", buf[2:4])[0]; off = 4
                elif ln == 127: ln = struct.unpack(">Q", buf[2:10])[0]; off = 10
                if len(buf) < off + ln: break
                payload, buf = buf[off:off + ln], buf[off + ln:]
                counts["error" if b'"error"' in payload else "other"] += 1
    threading.Thread(target=reader, daemon=True).start()
    s.sendall(frame(json.dumps({"type": "connection_init"})))
    time.sleep(0.5)
    base = rss_kb()
    q = 'subscription { observationRevised(dataset: "SYNTHETIC_TRADE") { value } }'
    batch = b"".join(frame(json.dumps({"type": "subscribe", "id": str(i), "payload": {"query": q}})) for i in range(n))
    t = time.monotonic()
    s.sendall(batch)
    time.sleep(3)
    while True:
        before = counts["error"]; time.sleep(1)
        if counts["error"] == before: break
    print(f"  {n} subscribe messages on one connection: {n - counts['error']} accepted, {counts['error']} refused; "
          f"resident memory +{(rss_kb() - base) / 1024:.0f} MB")
PY

serve() { # $1 binary, $2 store, rest: flags; prints "addr pid"
  local bin=$1 store=$2; shift 2
  $bin serve --data-dir "$store" --listen 127.0.0.1:0 --no-fixtures --log warn --response-cache-entries 0 "$@" \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
  local pid=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$WORK/serve.out" || { echo "server did not start: $(cat "$WORK/serve.err")" >&2; exit 1; }
  echo "$(awk '/listening on/ {print $3}' "$WORK/serve.out") $pid"
}

# The server is not a child of this shell (it was started in a process substitution): poll.
stop() { kill "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }

measure() { # $1 label, $2 binary
  local store="$WORK/run"
  echo "$1 ($2):"
  rm -rf "$store" && cp -r "$TEMPLATE" "$store" && rm -f "$store/lock"
  read -r addr pid < <(serve "$2" "$store")
  python3 "$WORK/drive.py" "$addr" "$pid" health; stop "$pid"
  read -r addr pid < <(serve "$2" "$store" --request-timeout-ms 1000)
  python3 "$WORK/drive.py" "$addr" "$pid" timeout; stop "$pid"
  read -r addr pid < <(serve "$2" "$store")
  python3 "$WORK/drive.py" "$addr" "$pid" subscriptions "$SUBSCRIPTIONS"; stop "$pid"
}

echo "$(date +%F), $RELEASES releases x $PER_RELEASE observations, $(nproc) cores"
[ -n "$BEFORE" ] && measure before "$BEFORE"
measure after "$AFTER"
