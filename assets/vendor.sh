#!/usr/bin/env bash
# Rebuilds DIR/dist/ from npm at the versions pinned in DIR/package-lock.json, and
# DIR/MANIFEST with each file's package, version and SHA-256. Standard input lists the files,
# one a line: `name-in-dist package path-inside-the-package` (production builds only; a name
# may have a directory, for ES modules that import their neighbours by relative path). The
# binary embeds dist/ (src/web/assets.rs) and a unit test checks dist/ against MANIFEST and
# MANIFEST against package-lock.json, so a hand-edited or stale file fails the build's tests.
# Needs node and npm; `cargo build` does not. Called by DIR/build.sh.
set -euo pipefail
cd "$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work"/
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
rm -rf dist && mkdir dist
: > MANIFEST
while read -r name pkg path; do
  mkdir -p "$(dirname "dist/$name")"
  cp "$work/node_modules/$pkg/$path" "dist/$name"
  version=$(node -p "require('$work/node_modules/$pkg/package.json').version")
  sum=$(sha256sum "dist/$name" | cut -d' ' -f1)
  echo "$name $pkg $version $sum" >> MANIFEST
done
cat MANIFEST
