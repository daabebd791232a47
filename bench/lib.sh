# Shared by the bench scripts (sourced, not run).

# The load generators run on 127.0.0.1 with more connections than one client address may
# hold by default (--max-connections-per-peer 64).
export TRADELEDGER_MAX_CONNECTIONS_PER_PEER=${TRADELEDGER_MAX_CONNECTIONS_PER_PEER:-100000}

need() { command -v "$1" >/dev/null || { echo "$1 is needed: $2" >&2; exit 1; }; }

# The release build, unless BIN names another (for example the previous release).
bench_bin() {
  if [ -z "${BIN:-}" ]; then
    cargo build --release --locked --quiet --bin tradeledger
    BIN=target/release/tradeledger
  fi
}

# A store of `tradeledger generate --releases $1 --observations-per-release $2 --seed 1` in
# $WORK (the layout of bench/load.sh, so a store made by one is reused by the others).
generated_store() {
  STORE="$WORK/store-$1-$2"
  if [ ! -f "$STORE/.complete" ]; then
    rm -rf "$STORE" && mkdir -p "$STORE"
    "$BIN" generate --releases "$1" --observations-per-release "$2" --seed 1 "$WORK/log-$1-$2.json" >/dev/null
    "$BIN" import --log warn --data-dir "$STORE" "$WORK/log-$1-$2.json" >/dev/null
    rm -f "$WORK/log-$1-$2.json"
    touch "$STORE/.complete"
  fi
}

# start_server DATA_DIR PORT [serve flags...]: starts `serve` (write token generated in the
# data directory, `write-token`), waits until it listens; SERVER is its pid.
start_server() {
  local dir=$1 port=$2
  shift 2
  "$BIN" serve --data-dir "$dir" --listen "127.0.0.1:$port" --no-fixtures --log warn "$@" \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER=$!
  for _ in $(seq 1 600); do
    grep -q "listening on" "$WORK/serve.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not start: $(cat "$WORK/serve.err")" >&2
  exit 1
}

stop_server() {
  if [ -n "${SERVER:-}" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=
  fi
}

# "hits misses" of the response cache so far, from /metrics.
cache_counts() {
  curl -s "$1/metrics" | awk '/^tradeledger_response_cache_hits_total /{h=$2} /^tradeledger_response_cache_misses_total /{m=$2} END{print h+0, m+0}'
}

# fast_count URL: requests the fast path has answered (tradeledger_graphql_fast_path_answers_total).
fast_count() {
  curl -s "$1/metrics" | awk '/^tradeledger_graphql_fast_path_answers_total /{f=$2} END{print f+0}'
}

# start_writer URL TOKEN_FILE DATASET PERIODS KEYS RATE: bench/writer.py in the background,
# once it is ready to write (Python can take seconds to start on a loaded machine); WRITER is
# its pid, its output in $WORK/writer.out.
start_writer() {
  python3 bench/writer.py "$@" >"$WORK/writer.out" 2>"$WORK/writer.err" &
  WRITER=$!
  for _ in $(seq 1 300); do
    grep -q '^READY' "$WORK/writer.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the writer did not start: $(cat "$WORK/writer.err")" >&2
  exit 1
}

# Stops the writer (not from a subshell: it must be this shell's child to be waited for) and
# sets WRITER_SUMMARY to its summary line, without the WRITER tag.
stop_writer() {
  kill -TERM "$WRITER" 2>/dev/null || true
  wait "$WRITER" 2>/dev/null || true
  WRITER=
  WRITER_SUMMARY=$(sed -n 's/^WRITER //p' "$WORK/writer.out")
  [ -n "$WRITER_SUMMARY" ] || { echo "the writer failed: $(cat "$WORK/writer.err")" >&2; exit 1; }
}

# start_nats PORT: a nats-server with JetStream on 127.0.0.1:PORT (monitoring on PORT+1), its
# data in $WORK/nats; waits until JetStream answers. NATS_PID is its pid, NATS_URL its URL.
# The caller's EXIT trap stops it.
start_nats() {
  "${TRADELEDGER_NATS_SERVER:-nats-server}" -a 127.0.0.1 -p "$1" -m $(($1 + 1)) -js -sd "$WORK/nats" \
    >"$WORK/nats.log" 2>&1 &
  NATS_PID=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$(($1 + 1))/healthz?js-enabled-only=true" >/dev/null && break
    sleep 0.2
  done
  NATS_URL="nats://127.0.0.1:$1"
}

# fresh_nats_and_data: an empty $WORK, a nats-server on $NATS_PORT (start_nats), and
# RELEASES x PER_RELEASE in both stores (sled_and_stream); the server and any node started
# with start_server are stopped at exit.
fresh_nats_and_data() {
  rm -rf "$WORK" && mkdir -p "$WORK"
  NATS_PID=
  trap 'stop_server; kill $NATS_PID 2>/dev/null || true' EXIT
  start_nats "$NATS_PORT"
  sled_and_stream "$RELEASES" "$PER_RELEASE"
}

# sled_and_stream RELEASES PER_RELEASE: the same generated file imported into a sled store
# ($WORK/sled) and into the stream at $NATS_URL (data directory $WORK/js).
sled_and_stream() {
  "$BIN" generate --releases "$1" --observations-per-release "$2" --seed 1 "$WORK/log.json" >/dev/null
  "$BIN" import --log warn --data-dir "$WORK/sled" "$WORK/log.json" >/dev/null
  "$BIN" import --log warn --data-dir "$WORK/js" --store jetstream --nats-url "$NATS_URL" "$WORK/log.json" >/dev/null
  rm -f "$WORK/log.json"
}
