#!/usr/bin/env bash
# Bulk import, JSON against CSV: `tradeledger import` of the same generated releases as one
# JSON file and as a CSV file (after the dataset definition), each into a fresh store; prints
# observations per second (wall time of the whole command: reading, checking and recording)
# and peak resident memory per format, and the CSV/JSON throughput ratio of the run.
#
#   bench/import.sh                      # 10^6 and 10^7 observations (2,000 and 20,000 x 500)
#   SIZES=2000 bench/import.sh           # 10^6 only
#
# The 10^7 files take about 0.7 GB (JSON) and 1.7 GB (CSV) and the store 1.3 GB; each is
# deleted once measured. Env: SIZES (releases), PER_RELEASE, WORK (the stores), FILES (the
# generated files, default $WORK; a tmpfs such as /dev/shm/tl-import spares the disk), BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SIZES=${SIZES:-2000 20000}
PER_RELEASE=${PER_RELEASE:-500}
WORK=${WORK:-/tmp/tradeledger-import}
FILES=${FILES:-$WORK}
mkdir -p "$WORK" "$FILES"
need /usr/bin/time "apt-get install time"
bench_bin
trap 'rm -rf "$WORK" "$FILES"' EXIT

echo "$(date -u +%F), tradeledger import, $PER_RELEASE observations per release, files in $FILES, stores in $WORK, load average $(cut -d" " -f1-3 /proc/loadavg)"
for releases in $SIZES; do
  obs=$((releases * PER_RELEASE))
  "$BIN" generate --releases 0 "$FILES/dataset.json" >/dev/null
  declare -A rate
  for format in json csv; do
    file="$FILES/log.$format"
    "$BIN" generate --releases "$releases" --observations-per-release "$PER_RELEASE" --seed 1 --format "$format" "$file" >/dev/null
    files=("$file")
    [ "$format" = csv ] && files=("$FILES/dataset.json" "$file")
    rm -rf "$WORK/store" && mkdir -p "$WORK/store"
    read -r secs kb < <(/usr/bin/time -f "%e %M" "$BIN" import --log warn --data-dir "$WORK/store" "${files[@]}" 2>&1 >/dev/null | tail -1)
    bytes=$(stat -c %s "$file")
    rm -rf "$WORK/store" "$file"
    rate[$format]=$(python3 -c "print(round($obs / $secs))")
    echo "import format=$format observations=$obs file_mb=$((bytes / 1000000)) seconds=$secs obs_per_s=${rate[$format]} peak_rss_mb=$((kb / 1024))"
  done
  python3 -c "print(f'import observations=$obs csv_over_json={${rate[csv]} / ${rate[json]}:.2f}')"
done
