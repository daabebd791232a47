#!/usr/bin/env python3
"""Publishes releases at a steady rate while a load test reads, and checks that each write is
visible at once: after every acknowledged publish it reads one of the figures it wrote and
compares value and revision with what it wrote and what the server acknowledged.

Usage: writer.py URL TOKEN_FILE DATASET PERIODS KEYS [RATE] [WORKERS]
  PERIODS, KEYS: comma-separated; each release touches one period (chosen at random).
  RATE: releases per second in all (default 50), shared by WORKERS connections (default 4),
  each publishing then reading back in turn; each worker writes its own share of KEYS, so
  the figure it reads back was written last by itself and must be exactly what it wrote.
Prints READY once it is about to write, runs until SIGTERM or SIGINT, then prints one line:
  WRITER releases=N per_s=R ack_p50_ms= ack_p99_ms= read_after_write_checked=N stale=S errors=E
A stale read (another value or revision than the acknowledged write's) is an exactness failure.
"""
import http.client
import json
import random
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from decimal import Decimal

url, token_file, dataset, periods, keys = sys.argv[1:6]
rate = float(sys.argv[6]) if len(sys.argv) > 6 else 50.0
workers = int(sys.argv[7]) if len(sys.argv) > 7 else 4
periods, keys = periods.split(","), keys.split(",")
workers = max(1, min(workers, len(keys)))
token = open(token_file).read().strip()
token = token.split(":", 1)[1] if ":" in token else token
u = urllib.parse.urlsplit(url)

PUBLISH = """mutation Publish($input: ReleaseInput!) {
  publishRelease(input: $input) { revision duplicate } }"""
READ = """query Check($dataset: ID!, $key: String!, $period: Period!) {
  observation(dataset: $dataset, key: $key, period: $period) { value revision } }"""

stop = threading.Event()
lock = threading.Lock()
acks, totals = [], {"checked": 0, "stale": 0, "errors": 0}


def on_signal(*_):
    stop.set()


def work(number, my_keys):
    rng = random.Random(number)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def post(body, auth):
        headers = {"content-type": "application/json", "accept": "application/json"}
        if auth:
            headers["authorization"] = f"Bearer {token}"
        conn.request("POST", u.path, json.dumps(body), headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())

    def count(what, message=None):
        with lock:
            totals[what] += 1
            if message and totals[what] <= 3:
                print(f"writer: {message}", file=sys.stderr)

    next_at = time.monotonic() + number / rate
    n = 0
    while not stop.is_set():
        now = time.monotonic()
        if now < next_at:
            stop.wait(next_at - now)
            continue
        next_at += workers / rate
        n += 1
        period = rng.choice(periods)
        values = {k: f"{rng.randrange(-99999, 99999)}.{rng.randrange(10)}" for k in my_keys}
        release = {
            "id": str(uuid.uuid4()),
            "dataset": dataset, "status": "REVISED",
            "title": f"SYNTHETIC bench write {number}-{n}",
            "publishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": "bench/writer.py (SYNTHETIC)",
            "observations": [{"key": k, "period": period, "value": v} for k, v in values.items()],
        }
        try:
            t0 = time.monotonic()
            status, out = post({"query": PUBLISH, "variables": {"input": release}}, True)
            took = time.monotonic() - t0
            result = (out.get("data") or {}).get("publishRelease")
            if status != 200 or not result:
                count("errors", f"publish failed: {status} {out}")
                continue
            with lock:
                acks.append(took)
            key = rng.choice(my_keys)
            status, out = post({"query": READ, "variables": {"dataset": dataset, "key": key, "period": period}}, False)
        except (OSError, http.client.HTTPException) as e:
            count("errors", f"request failed: {e}")
            conn.close()
            continue
        got = (out.get("data") or {}).get("observation") or {}
        count("checked")
        if got.get("revision") != result["revision"] or Decimal(got.get("value") or "NaN") != Decimal(values[key]):
            count("stale", f"STALE read of {key} {period}: wrote {values[key]} at revision {result['revision']}, read {got}")


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
started = time.monotonic()
threads = [threading.Thread(target=work, args=(i, keys[i::workers])) for i in range(workers)]
for t in threads:
    t.start()
# The caller waits for this line before it starts measuring.
print("READY", flush=True)
while not stop.is_set():
    stop.wait(0.2)
for t in threads:
    t.join()
elapsed = time.monotonic() - started
acks.sort()
pct = lambda q: acks[min(len(acks) - 1, int(q * len(acks)))] * 1000 if acks else 0.0
print(f"WRITER releases={len(acks)} per_s={len(acks) / elapsed:.1f} ack_p50_ms={pct(0.5):.2f} "
      f"ack_p99_ms={pct(0.99):.2f} read_after_write_checked={totals['checked']} stale={totals['stale']} "
      f"errors={totals['errors']}", flush=True)
