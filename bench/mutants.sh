#!/usr/bin/env bash
# Mutation testing of the modules that guard the public, with cargo-mutants: each mutant (a
# `>` made `>=`, a function body replaced by a default, a match guard made `true`, ...) is
# built and run against the tests that guard its module; a mutant no test fails on is
# "missed". docs/architecture.md has the results and what each missed mutant means.
#
#   cargo install cargo-mutants --locked      # 27.x
#   bench/mutants.sh                          # the front door, the limits, the tokens
#   GROUP=served bench/mutants.sh             # QueryLimits' methods the HTTP layer calls, over HTTP
#   GROUP=conn bench/mutants.sh               # the connection guard, against the abuse tests
#   GROUP=tlog bench/mutants.sh               # the transparency log
#   SHARDS=2 bench/mutants.sh                 # two working copies at once (2 cores: about 1.7x)
#   ITERATE=1 bench/mutants.sh                # again, testing only what was missed or not reached
#   MAX_RSS_MB=3072 bench/mutants.sh          # the watchdog's bound on a mutant's memory (default)
#
# It mutates copies under $WORK (the first run of each builds the crate once, some minutes),
# not this checkout, and writes cargo-mutants' output to $WORK/out-<group>-<shard>/.
# Debug info is off for the builds, which makes each mutant's link a few times faster.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
GROUP=${GROUP:-front}
SHARDS=${SHARDS:-1}
WORK=${WORK:-${TMPDIR:-/tmp}/tradeledger-mutants}
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0

case $GROUP in
front)
    files=(-f src/graphql/guard.rs -f 'src/graphql/limits/*.rs' -f src/auth.rs
        -E 'QueryLimits::(cost|fast|wants_plan|learn)')
    tests=(--lib -- graphql:: auth:: http::) ;;
served)
    # The fast path and the access log's cost are seen only over HTTP.
    files=(-f src/graphql/limits/mod.rs -F 'QueryLimits::(cost|fast|wants_plan|learn)')
    tests=(--test abuse --test api -- fastpath:: request_log) ;;
conn)
    files=(-f src/http/conn.rs)
    tests=(--test abuse -- public2:: round2:: runtime::slow_clients) ;;
tlog)
    # `tlog` uses no other module of the crate (`src/layers.rs` holds it to that), so it is
    # mutated in a crate of its own: a build of 2 to 5 s per mutant instead of 20 to 60.
    files=(-f 'src/tlog/*.rs')
    tests=(--lib) ;;
*)
    echo "GROUP is front, served, conn or tlog" >&2
    exit 2 ;;
esac

mkdir -p "$WORK"

# A mutant can loop while it allocates (one in the tile code reached 11 GB in 13 s). Every
# second, the watchdog kills any process run from the copies that holds more than
# $MAX_RSS_MB of memory; its test then fails, and the mutant counts as caught.
MAX_RSS_MB=${MAX_RSS_MB:-3072}
watchdog() {
    while sleep 1; do
        ps -eo pid=,rss=,args= |
            awk -v max=$((MAX_RSS_MB * 1024)) -v copies="$WORK/tree-" '$2 > max && index($3, copies) == 1 {
                print $1
                print "watchdog: killed " $3 " at " int($2 / 1024) " MB" > "/dev/stderr"
            }' | xargs -r kill -9
    done
}
watchdog &
dog=$!
trap 'kill "$dog" 2>/dev/null || true' EXIT

# The crate `tlog` alone: its sources, and the dependencies it names at the versions locked.
tlog_crate() {
    local copy=$1
    rm -rf "$copy/src"
    mkdir -p "$copy/src"
    git -C "$here" archive HEAD src/tlog | tar -x -C "$copy"
    echo 'pub mod tlog;' >"$copy/src/lib.rs"
    git -C "$here" show HEAD:Cargo.lock >"$copy/Cargo.lock"
    {
        printf '[package]\nname = "tlog"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\n'
        git -C "$here" show HEAD:Cargo.toml |
            grep -E '^(anyhow|axum|base64|clap|ed25519-dalek|hex|rand|reqwest|serde_json|sha2|thiserror|tokio|tracing) '
        printf '\n[dev-dependencies]\n'
        git -C "$here" show HEAD:Cargo.toml | grep -E '^tempfile '
        printf '\n[profile.dev.package."*"]\nopt-level = 1\n'
    } >"$copy/Cargo.toml"
}

pids=()
for ((k = 0; k < SHARDS; k++)); do
    copy=$WORK/tree-$k
    # A copy of the committed tree, so that a mutant never lands in this checkout.
    if [[ $GROUP == tlog ]]; then
        tlog_crate "$copy"
    else
        rm -rf "$copy/src" "$copy/tests"
        git -C "$here" archive HEAD | (mkdir -p "$copy" && tar -x -C "$copy")
    fi
    args=(--in-place --no-shuffle --shard "$k/$SHARDS" -o "$WORK/out-$GROUP-$k"
        --timeout 120 --build-timeout 900)
    [[ ${ITERATE:-} ]] && args+=(--iterate)
    (cd "$copy" && cargo mutants "${args[@]}" "${files[@]}" -- "${tests[@]}" >"$WORK/out-$GROUP-$k.log" 2>&1) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
for ((k = 0; k < SHARDS; k++)); do
    out=$WORK/out-$GROUP-$k/mutants.out
    for kind in caught missed timeout unviable; do
        printf '%s shard %d %-8s %4d\n' "$GROUP" "$k" "$kind" "$(cat "$out/$kind.txt" 2>/dev/null | wc -l)"
    done
    sed 's/^/  missed: /' "$out/missed.txt" 2>/dev/null || true
done
