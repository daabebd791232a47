#!/usr/bin/env python3
"""The second round of hostile clients, against one running `serve`; run by bench/abuse.sh.

    abuse2.py ATTACK ADDR PID

Prints one Markdown table row per measure: the attack, its baseline (measured in the same
run, on the same server, just before the attack), the figure under attack and their ratio.
Memory comes from /proc/PID/status (VmHWM peak, VmRSS resident), in MB.
"""
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

ATTACK, ADDR, PID = sys.argv[1], sys.argv[2], sys.argv[3]
HOST, PORT = ADDR.rsplit(":", 1)
PORT = int(PORT)
TOKEN = "bench-secret"


def mem():
    status = open(f"/proc/{PID}/status").read()
    get = lambda k: int(next(l for l in status.splitlines() if l.startswith(k)).split()[1]) / 1024
    return get("VmHWM:"), get("VmRSS:")


def row(attack, measure, baseline, under, note=""):
    ratio = under / baseline if baseline else float("nan")
    print(f"| {attack} | {measure} | {baseline:,.1f} | {under:,.1f} | {ratio:.2f} | {note} |", flush=True)


def post(body, token=None, source="127.0.0.1", timeout=600):
    c = http.client.HTTPConnection(HOST, PORT, timeout=timeout, source_address=(source, 0))
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    c.request("POST", "/graphql", json.dumps(body).encode(), headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def get(path, source="127.0.0.1"):
    c = http.client.HTTPConnection(HOST, PORT, timeout=60, source_address=(source, 0))
    c.request("GET", path)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def healthz_latencies(n, source="127.0.0.2"):
    """n GETs of /healthz from `source`, one connection each; latencies in ms, sorted."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        try:
            status, _ = get("/healthz", source)
        except OSError:
            status = 0
        out.append(((time.perf_counter() - t) * 1000, status))
    return sorted(out)


def pct(values, p):
    return values[min(len(values) - 1, int(len(values) * p))]


def error_code(data):
    try:
        v = json.loads(data)
    except ValueError:
        return data[:80].decode(errors="replace")
    if "errors" in v:
        e = v["errors"][0]
        return e.get("extensions", {}).get("code") or e.get("message", "")[:60]
    return "data"


def frame(text):
    """A masked WebSocket text frame (client to server)."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_open(source="127.0.0.1"):
    """A graphql-transport-ws connection that has sent connection_init; None if refused."""
    s = socket.create_connection((HOST, PORT), timeout=30, source_address=(source, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /graphql/ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        s.close()
        return None
    s.sendall(frame(json.dumps({"type": "connection_init"})))
    return s


def proof_canonical():
    """Text fields that copy whole events: proofs' canonical text of 1,000 figures, 3 aliases."""
    hwm0, rss0 = mem()
    one = lambda i: f'a{i}: observations(dataset: "SYNTHETIC_TRADE", first: 1000) {{ nodes {{ proof {{ canonical }} }} }}'
    t = time.time()
    status, data = post({"query": "{ " + " ".join(one(i) for i in range(3)) + " }"})
    secs = time.time() - t
    hwm1, rss1 = mem()
    row("proof canonical x3 aliases", "peak MB", hwm0, hwm1, f"HTTP {status} {error_code(data)}, {secs:.2f} s")


def events_canonical():
    """events(first: 1000) { nodes { canonical } } under 30 aliases, 4 requests at once."""
    hwm0, rss0 = mem()
    one = lambda i: f"a{i}: events(first: 1000) {{ nodes {{ canonical }} }}"
    query = "{ " + " ".join(one(i) for i in range(30)) + " }"
    results = []
    threads = [threading.Thread(target=lambda: results.append(post({"query": query}))) for _ in range(4)]
    t = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    secs = time.time() - t
    hwm1, rss1 = mem()
    codes = sorted({f"{s} {error_code(d)}" for s, d in results})
    row("events canonical x30 aliases, 4 at once", "peak MB", hwm0, hwm1, f"{', '.join(codes)}, {secs:.2f} s")
    time.sleep(2)
    _, rss2 = mem()
    row("events canonical, after the answers", "resident MB", rss0, rss2, "2 s after the last answer")
    trimmed = malloc_trim()
    if trimmed is not None:
        row("events canonical, after malloc_trim(0)", "resident MB", rss0, trimmed, "glibc gives free pages back")


def malloc_trim():
    """Calls glibc's malloc_trim(0) in the server through gdb; its resident MB after, or None."""
    try:
        subprocess.run(
            ["gdb", "-p", PID, "-batch", "-ex", "call (int) malloc_trim(0)"],
            capture_output=True,
            timeout=120,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return mem()[1]


def idle_websockets():
    """/healthz from 127.0.0.2 while 127.0.0.1 holds (or tries to hold) 10,000 idle WebSockets."""
    before = healthz_latencies(200)
    held, refused = [], 0
    for _ in range(10_000):
        try:
            s = ws_open()
        except OSError:
            s = None
        if s is None:
            refused += 1
        else:
            held.append(s)
    during = healthz_latencies(200)
    ok = sum(1 for _, status in during if status == 200)
    note = f"{len(held)} held, {refused} refused; {ok}/200 answered 200"
    row("/healthz p50 while 10,000 idle WebSockets", "ms", pct(before, 0.5)[0], pct(during, 0.5)[0], note)
    row("/healthz p99 while 10,000 idle WebSockets", "ms", pct(before, 0.99)[0], pct(during, 0.99)[0], "")
    for s in held:
        s.close()


def odd_methods():
    """/metrics size after 12,000 requests with distinct 60 KB methods."""
    size0 = len(get("/metrics")[1])
    statuses = {}
    t = time.time()
    for i in range(12_000):
        method = f"M{i:05d}" + "X" * 60_000
        try:
            s = socket.create_connection((HOST, PORT), timeout=30)
            s.sendall(f"{method} / HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            answer = s.recv(64)
            code = answer[9:12].decode(errors="replace") or "closed"
        except OSError:
            code = "reset"
        finally:
            s.close()
        statuses[code] = statuses.get(code, 0) + 1
    secs = time.time() - t
    size1 = len(get("/metrics")[1])
    _, rss = mem()
    note = f"answers {statuses}, {secs:.1f} s; resident {rss:.0f} MB after"
    row("/metrics after 12,000 distinct 60 KB methods", "KB", size0 / 1024, size1 / 1024, note)


def metric(name):
    """A sample of /metrics (0 when absent), e.g. `tradeledger_websocket_connections`."""
    _, data = get("/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def gdb_call(expr):
    """Calls `expr` in the server through gdb; False when that is not possible."""
    try:
        subprocess.run(["gdb", "-p", PID, "-batch", "-ex", f"call {expr}"],
                       capture_output=True, timeout=120, check=True)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def allocator_in_use():
    """MB the allocator has handed out and not had back, and where the figure comes from:
    jemalloc's stats.allocated from /metrics (a `--features jemalloc` build), or printed by
    a preloaded libjemalloc's malloc_stats_print(), or glibc's malloc_stats() "in use bytes"
    (both called through gdb and read from the server's stderr, SERVE_ERR). None otherwise."""
    allocated = metric("tradeledger_allocator_allocated_bytes")
    if allocated:
        return allocated / 1e6, "jemalloc stats.allocated"
    err = os.environ.get("SERVE_ERR")
    maps = open(f"/proc/{PID}/maps").read()
    if not err or "libmimalloc" in maps:
        return None
    if "libjemalloc" in maps:
        if not gdb_call("(void) malloc_stats_print(0, 0, 0)"):
            return None
        text = open(err).read()
        line = text[text.rfind("Allocated: "):].splitlines()[0]
        return int(line.split(",")[0].split()[1]) / 1e6, "jemalloc stats.allocated"
    if not gdb_call("(void) malloc_stats()"):
        return None
    text = open(err).read()
    total = text[text.rfind("Total (incl. mmap):"):]
    in_use = [l for l in total.splitlines() if l.startswith("in use bytes")]
    if not in_use:
        return None
    return int(in_use[0].split("=")[1]) / 1e6, "glibc malloc_stats in use"


def subscribers():
    """4 WebSockets that never read, each with 30 replaying subscriptions of whole releases."""
    hwm0, rss0 = mem()
    base = allocator_in_use()
    query = (
        "subscription { releasePublished(afterRevision: 0) "
        "{ revision release { observations { key period value previousValue } } } }"
    )
    socks = []
    for _ in range(4):
        s = ws_open()
        if s is None:
            continue
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for i in range(30):
            s.sendall(frame(json.dumps({"type": "subscribe", "id": f"s{i}", "payload": {"query": query}})))
        socks.append(s)
    # Until the server closes them for not reading (the send timeout, 30 s by default): the
    # subscriptions have built what they could by then.
    started = time.time()
    while metric("tradeledger_websocket_connections") and time.time() < started + 300:
        time.sleep(0.5)
    closed_after = time.time() - started
    hwm1, rss1 = mem()
    for s in socks:
        s.close()
    row("4 non-reading subscribers x 30 replays", "peak MB", hwm0, hwm1,
        f"{len(socks)} connections, closed by the server after {closed_after:.0f} s")
    # Until the server has let go of the connections and their subscription streams.
    deadline = time.time() + 120
    while metric("tradeledger_websocket_connections") or metric("tradeledger_subscribers"):
        if time.time() > deadline:
            print("the server still had WebSockets or subscription streams 120 s after the close", file=sys.stderr)
            break
        time.sleep(0.2)
    _, at_close = mem()
    time.sleep(15)
    _, rss2 = mem()
    row("4 non-reading subscribers, after the close", "resident MB", rss0, rss2,
        f"15 s after the server let go of the connections ({at_close:.0f} MB at once)")
    now = allocator_in_use()
    if base and now:
        row("4 non-reading subscribers, after the close", "allocated MB", base[0], now[0], base[1])
    glibc = not metric("tradeledger_allocator_allocated_bytes") and "alloc.so" not in open(f"/proc/{PID}/maps").read()
    trimmed = malloc_trim() if glibc else None
    if trimmed is not None:
        row("4 non-reading subscribers, after malloc_trim(0)", "resident MB", rss0, trimmed, "")


def scans_and_writes():
    """/healthz p99 from 127.0.0.2 while two clients run aliased fast-path scans and one writes."""
    before = healthz_latencies(300)
    one = lambda i: f'a{i}: observations(dataset: "SYNTHETIC_TRADE", first: 1000) {{ nodes {{ key period measure value revisionCount }} }}'
    scan = {"query": "{ " + " ".join(one(i) for i in range(30)) + " }"}
    # Learned by the fast path from async-graphql's first answer.
    post(scan)
    post(scan)
    stop = threading.Event()
    counts = {"scans": 0, "writes": 0, "write_ms": []}

    def scanner():
        while not stop.is_set():
            post(scan)
            counts["scans"] += 1

    _, data = post({"query": '{ observations(dataset: "SYNTHETIC_TRADE", first: 1) { nodes { key period measure } } }'})
    figure = json.loads(data)["data"]["observations"]["nodes"][0]

    def writer():
        n = 0
        while not stop.is_set():
            n += 1
            release = {
                "dataset": "SYNTHETIC_TRADE",
                "status": "REVISED",
                "title": f"SYNTHETIC bench write {n}",
                "publishedAt": "2026-01-15T00:00:00Z",
                "observations": [dict(figure, value=f"{n}.5")],
            }
            t = time.perf_counter()
            post({"query": "mutation($i: ReleaseInput!) { publishRelease(input: $i) { revision } }",
                  "variables": {"i": release}}, token=TOKEN)
            counts["write_ms"].append((time.perf_counter() - t) * 1000)
            counts["writes"] += 1

    threads = [threading.Thread(target=scanner) for _ in range(2)] + [threading.Thread(target=writer)]
    for th in threads:
        th.start()
    time.sleep(1)
    during = healthz_latencies(300)
    stop.set()
    for th in threads:
        th.join()
    writes = sorted(counts["write_ms"]) or [float("nan")]
    note = f"{counts['scans']} scans, {counts['writes']} writes (p99 {pct(writes, 0.99):.0f} ms) meanwhile"
    row("/healthz p50 during aliased scans and writes", "ms", pct(before, 0.5)[0], pct(during, 0.5)[0], note)
    row("/healthz p99 during aliased scans and writes", "ms", pct(before, 0.99)[0], pct(during, 0.99)[0], "")


ATTACKS = {
    "proof": proof_canonical,
    "events": events_canonical,
    "idle-ws": idle_websockets,
    "methods": odd_methods,
    "subscribers": subscribers,
    "scans": scans_and_writes,
}
ATTACKS[ATTACK]()
