#!/usr/bin/env bash
# Rebuilds dist/ from npm at the versions pinned in package-lock.json, and MANIFEST with
# each file's package, version and SHA-256, as assets/graphiql/build.sh does for GraphiQL.
# The binary embeds dist/ (src/web/assets.rs) and a unit test checks dist/ against MANIFEST
# and MANIFEST against package-lock.json. Needs node and npm; `cargo build` does not.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work"/
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
rm -rf dist && mkdir dist
: > MANIFEST
# file in dist/ <- package and the file inside it (production builds only)
while read -r name pkg path; do
  cp "$work/node_modules/$pkg/$path" "dist/$name"
  version=$(node -p "require('$work/node_modules/$pkg/package.json').version")
  sum=$(sha256sum "dist/$name" | cut -d' ' -f1)
  echo "$name $pkg $version $sum" >> MANIFEST
done <<'FILES'
uplot.iife.min.js uplot dist/uPlot.iife.min.js
uplot.min.css uplot dist/uPlot.min.css
FILES
cat MANIFEST
