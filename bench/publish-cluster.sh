#!/usr/bin/env bash
# Durable publishes from 64 writers on sled and on a 3-replica JetStream stream, in one run:
# starts a 3-server NATS cluster on loopback (nats-server from `bash .ci/setup`), runs
# bench/publish.sh on sled, then with `--store jetstream --nats-replicas 3` on a fresh stream,
# and prints both lines and their ratio.
#
#   bench/publish-cluster.sh
#   DURATION=5s bench/publish-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."

NATS=${TRADELEDGER_NATS_SERVER:-nats-server}
command -v "$NATS" >/dev/null || { echo "nats-server is needed: bash .ci/setup" >&2; exit 1; }
WORK=${WORK:-/tmp/tradeledger-publish-cluster}
BASE=${NATS_BASE_PORT:-24222}
rm -rf "$WORK" && mkdir -p "$WORK"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
routes=""
for i in 1 2 3; do routes="$routes,nats://127.0.0.1:$((BASE + 1000 + i))"; done
routes=${routes#,}
for i in 1 2 3; do
  "$NATS" -n "n$i" -a 127.0.0.1 -p $((BASE + i)) -m $((BASE + 2000 + i)) -js -sd "$WORK/n$i" \
    --cluster_name bench --cluster "nats://127.0.0.1:$((BASE + 1000 + i))" --routes "$routes" \
    > "$WORK/n$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$((BASE + 2000 + i))/healthz?js-enabled-only=true" >/dev/null && break
    sleep 0.2
  done
done
urls="nats://127.0.0.1:$((BASE + 1)),nats://127.0.0.1:$((BASE + 2)),nats://127.0.0.1:$((BASE + 3))"

sled=$(WORK="$WORK/sled" bench/publish.sh | tail -1)
js=$(WORK="$WORK/js" SERVE_ARGS="--store jetstream --nats-url $urls --nats-replicas 3" bench/publish.sh | tail -1)
echo "$(date +%F), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sled:          $sled"
echo "jetstream R3:  $js"
awk -v a="$(awk '{print $2}' <<<"$sled")" -v b="$(awk '{print $2}' <<<"$js")" \
  'BEGIN { printf "jetstream R3 / sled: %.2f\n", b / a }'
