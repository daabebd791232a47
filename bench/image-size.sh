#!/usr/bin/env bash
# The size of the image ./Dockerfile builds, measured without a Docker daemon or registry:
# the runtime stage's root filesystem is rebuilt from Debian's archive the way the official
# debian:bookworm-slim image is made (debootstrap --variant=minbase, then debuerreotype's
# minimizing config, full-upgrade, slimify and fixup, and the paths debuerreotype leaves out
# of its tarball), then the Dockerfile's RUN step runs in it under chroot and the binary and
# fixtures/ are copied in. Prints each layer's size three ways: `du -sb`; the sum of the
# files' sizes, hard links once and directories not counted (how `docker images` counts);
# and `tar | gzip -6 | wc -c` (what a registry stores and a pull transfers).
#
#   bench/image-size.sh                   # builds the binary as the Dockerfile does
#   BIN=target/release/tradeledger bench/image-size.sh     # an already built (unstripped) binary
#   KEEP=1 bench/image-size.sh            # keep the root filesystems in $WORK (about 250 MB)
#
# Needs root (debootstrap, chroot, mounts) and Debian's debootstrap and debuerreotype packages.
# The base is fetched from the archive as it is today, so it carries today's point releases:
# compare its size with the published one of debian:bookworm-slim, not with an old pull.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "$1 is needed: $2" >&2; exit 1; }; }
need debootstrap "apt-get install debootstrap"
need debuerreotype-slimify "apt-get install debuerreotype"
[ "$(id -u)" = 0 ] || { echo "needs root (debootstrap, chroot)" >&2; exit 1; }

WORK=${WORK:-/tmp/tradeledger-image}
SUITE=bookworm
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
BASE="$WORK/base"
APP="$WORK/app"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$BASE" "$BASE.tmp" "$APP" "$WORK/layers"' EXIT

# The binary: the build stage's two commands, unless BIN names an (unstripped) build.
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --bin tradeledger
  BIN=${CARGO_TARGET_DIR:-target}/release/tradeledger
fi
cp "$BIN" "$WORK/tradeledger.built"
cp "$BIN" "$WORK/tradeledger"
strip --strip-debug "$WORK/tradeledger"
cp "$BIN" "$WORK/tradeledger.strip-all"
strip --strip-all "$WORK/tradeledger.strip-all"

# Runs a command in a root filesystem with /dev, /proc and /sys mounted (debuerreotype-chroot
# wants the epoch file it keeps at the root; it is removed again before anything is measured).
in_root() {
  local root=$1
  shift
  date +%s >"$root/debuerreotype-epoch"
  debuerreotype-chroot "$root" "$@"
  rm -f "$root/debuerreotype-epoch"
}

# debian:bookworm-slim, as debuerreotype's examples/debian.sh makes it, except that the
# archive is read as it is now rather than from a snapshot.debian.org date.
if [ ! -f "$BASE/etc/debian_version" ]; then
  rm -rf "$BASE.tmp"
  debootstrap --variant=minbase --merged-usr --force-check-gpg "$SUITE" "$BASE.tmp" >"$WORK/debootstrap.log"
  # The same archive debootstrap used, as the deb822 sources file the image has.
  mirror=$(awk '$1 == "deb" { print $2; exit }' "$BASE.tmp/etc/apt/sources.list")
  rm -f "$BASE.tmp/etc/apt/sources.list"
  cat >"$BASE.tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $mirror-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  in_root "$BASE.tmp" bash -c 'apt-mark auto ".*" >/dev/null'
  date +%s >"$BASE.tmp/debuerreotype-epoch"
  debuerreotype-minimizing-config "$BASE.tmp"
  debuerreotype-apt-get "$BASE.tmp" update -qq
  debuerreotype-apt-get "$BASE.tmp" full-upgrade -yqq >/dev/null
  debuerreotype-slimify "$BASE.tmp"
  debuerreotype-fixup "$BASE.tmp"
  # What debuerreotype-tar and examples/debian.sh leave out of the image's tarball.
  rm -rf "$BASE.tmp/debuerreotype-epoch" "$BASE.tmp"/var/cache/apt/* "$BASE.tmp"/var/lib/apt/lists/* \
    "$BASE.tmp/etc/apt/apt.conf.d/01autoremove-kernels" "$BASE.tmp/var/log/apt/history.log" \
    "$BASE.tmp/var/log/apt/term.log" "$BASE.tmp/etc/machine-id"
  mv "$BASE.tmp" "$BASE"
fi

# The runtime stage: the RUN step, then the two COPY steps.
rm -rf "$APP"
cp -a "$BASE" "$APP"
run_step=$(awk '/^FROM debian:bookworm-slim/ { f = 1; next } f && /^RUN / { r = 1 }
  r { line = $0; sub(/^RUN /, "", line); sub(/\\$/, "", line); printf "%s", line; if ($0 !~ /\\$/) exit }' Dockerfile)
[ -n "$run_step" ] || { echo "no RUN step after FROM debian:bookworm-slim in Dockerfile" >&2; exit 1; }
in_root "$APP" sh -c "$run_step" </dev/null >"$WORK/run-step.log" 2>&1 || { cat "$WORK/run-step.log" >&2; exit 1; }
install -D -m 0755 "$WORK/tradeledger" "$APP/usr/local/bin/tradeledger"
mkdir -p "$APP/opt/tradeledger"
cp -r fixtures "$APP/opt/tradeledger/fixtures"

# One line per file: path, size, mtime, mode, owner, type, link target. A file of the RUN
# layer is one that is new or differs in any of these (overlayfs copies a changed file whole).
listing() { (cd "$1" && find . -xdev -not -type d -printf '%p\t%s\t%T@\t%m\t%U:%G\t%y\t%l\n' | LC_ALL=C sort); }
listing "$BASE" >"$WORK/base.files"
listing "$APP" | grep -v -e $'^\./usr/local/bin/tradeledger\t' -e $'^\./opt/tradeledger/' >"$WORK/app.files" || true
LC_ALL=C comm -13 "$WORK/base.files" "$WORK/app.files" | cut -f1 >"$WORK/run-layer.files"

# The RUN layer as a directory of its own, to be measured like the others.
rm -rf "$WORK/layers" && mkdir -p "$WORK/layers/run" "$WORK/layers/bin/usr/local/bin" "$WORK/layers/fixtures/opt/tradeledger"
tar -C "$APP" --no-recursion -cf - -T "$WORK/run-layer.files" | tar -C "$WORK/layers/run" -xf -
cp -a "$APP/usr/local/bin/tradeledger" "$WORK/layers/bin/usr/local/bin/"
cp -a "$APP/opt/tradeledger/fixtures" "$WORK/layers/fixtures/opt/tradeledger/"

du_b() { du -sb "$1" | cut -f1; }
# Sum of the sizes of everything but directories, hard links once (moby's directory.Size).
docker_b() { find "$1" -xdev -not -type d -size +0 -printf '%i %s\n' | sort -u -k1,1 | awk '{ s += $2 } END { print s + 0 }'; }
gz_b() { tar -C "$1" --numeric-owner -cf - . | gzip -6 | wc -c; }
mb() { awk -v b="$1" 'BEGIN { printf "%.3f", b / 1e6 }'; }

echo "$(date +%F): Debian $(cat "$APP/etc/debian_version"), $(in_root "$BASE" dpkg-query -W -f '.\n' | wc -l) packages in the base, $(in_root "$APP" dpkg-query -W -f '.\n' | wc -l) in the image; $(rustc --version)"
printf '%-34s %12s %12s %12s\n' "MB (10^6 bytes)" "du -sb" "files" "tar|gzip -6"
total_gz=0
row() {
  local gz; gz=$(gz_b "$2")
  total_gz=$((total_gz + gz))
  printf '%-34s %12s %12s %12s\n' "$1" "$(mb "$(du_b "$2")")" "$(mb "$(docker_b "$2")")" "$(mb "$gz")"
}
row "base (debian:bookworm-slim)" "$BASE"
row "RUN: ca-certificates, user" "$WORK/layers/run"
row "COPY tradeledger (strip-debug)" "$WORK/layers/bin"
row "COPY fixtures" "$WORK/layers/fixtures"
printf '%-34s %12s %12s %12s\n' "image (gzip: the four layers)" "$(mb "$(du_b "$APP")")" "$(mb "$(docker_b "$APP")")" "$(mb "$total_gz")"
echo
printf '%-34s %12s %12s\n' "the binary, MB" "size" "gzip -6"
for b in built:tradeledger.built strip-debug:tradeledger strip-all:tradeledger.strip-all; do
  f="$WORK/${b#*:}"
  printf '%-34s %12s %12s\n' "${b%%:*}" "$(mb "$(stat -c %s "$f")")" "$(mb "$(gzip -6 <"$f" | wc -c)")"
done
rm -f "$WORK/tradeledger.built" "$WORK/tradeledger" "$WORK/tradeledger.strip-all"
