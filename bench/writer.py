#!/usr/bin/env python3
"""Publishes releases at a steady rate while a load test reads, and checks that each write is
visible at once: after every acknowledged publish it reads one of the figures it wrote and
compares value and revision with what it wrote and what the server acknowledged.

Usage: writer.py URL TOKEN_FILE DATASET PERIODS KEYS [RATE]
  PERIODS, KEYS: comma-separated; each release touches one period (chosen at random) and
  writes every key of KEYS in it. RATE: releases per second (default 50).
Prints READY once it is about to write, runs until SIGTERM or SIGINT, then prints one line:
  WRITER releases=N per_s=R ack_p50_ms= ack_p99_ms= read_after_write_checked=N stale=S errors=E
A stale read (an older value or revision after the acknowledgement) is an exactness failure.
"""
import http.client
import json
import random
import signal
import sys
import time
import urllib.parse
import uuid
from decimal import Decimal

url, token_file, dataset, periods, keys = sys.argv[1:6]
rate = float(sys.argv[6]) if len(sys.argv) > 6 else 50.0
periods, keys = periods.split(","), keys.split(",")
token = open(token_file).read().strip()
token = token.split(":", 1)[1] if ":" in token else token
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
rng = random.Random(7)

PUBLISH = """mutation Publish($input: ReleaseInput!) {
  publishRelease(input: $input) { revision duplicate } }"""
READ = """query Check($dataset: ID!, $key: String!, $period: Period!) {
  observation(dataset: $dataset, key: $key, period: $period) { value revision } }"""


def post(body, auth):
    headers = {"content-type": "application/json", "accept": "application/json"}
    if auth:
        headers["authorization"] = f"Bearer {token}"
    conn.request("POST", u.path, json.dumps(body), headers)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


stop = False


def on_signal(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
# The caller waits for this line before it starts measuring.
print("READY", flush=True)

acks, checked, stale, errors = [], 0, 0, 0
started = time.monotonic()
next_at = started
n = 0
while not stop:
    now = time.monotonic()
    if now < next_at:
        time.sleep(next_at - now)
        continue
    next_at += 1.0 / rate
    n += 1
    period = rng.choice(periods)
    values = {k: f"{rng.randrange(-99999, 99999)}.{rng.randrange(10)}" for k in keys}
    release = {
        "id": str(uuid.uuid4()),
        "dataset": dataset, "status": "REVISED",
        "title": f"SYNTHETIC bench write {n}",
        "publishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": "bench/writer.py (SYNTHETIC)",
        "observations": [{"key": k, "period": period, "value": v} for k, v in values.items()],
    }
    t0 = time.monotonic()
    try:
        status, out = post({"query": PUBLISH, "variables": {"input": release}}, True)
    except Exception as e:  # a dropped connection counts as an error, then reconnect
        errors += 1
        conn.close()
        continue
    acks.append(time.monotonic() - t0)
    result = (out.get("data") or {}).get("publishRelease")
    if status != 200 or not result:
        errors += 1
        if errors <= 3:
            print(f"writer: publish failed: {status} {out}", file=sys.stderr)
        continue
    key = rng.choice(keys)
    status, out = post({"query": READ, "variables": {"dataset": dataset, "key": key, "period": period}}, False)
    got = ((out.get("data") or {}).get("observation")) or {}
    checked += 1
    # The only writer: the figure read must be the one just acknowledged, exactly.
    if got.get("revision") != result["revision"] or Decimal(got["value"]) != Decimal(values[key]):
        stale += 1
        if stale <= 3:
            print(f"writer: STALE read of {key} {period}: wrote {values[key]} at revision "
                  f"{result['revision']}, read {got}", file=sys.stderr)

elapsed = time.monotonic() - started
acks.sort()
pct = lambda q: acks[min(len(acks) - 1, int(q * len(acks)))] * 1000 if acks else 0.0
print(f"WRITER releases={len(acks)} per_s={len(acks) / elapsed:.1f} ack_p50_ms={pct(0.5):.2f} "
      f"ack_p99_ms={pct(0.99):.2f} read_after_write_checked={checked} stale={stale} errors={errors}", flush=True)
