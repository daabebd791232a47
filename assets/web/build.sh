#!/usr/bin/env bash
# The web interface's chart library for dist/, from the npm package package-lock.json pins
# (see ../vendor.sh); graphql-ws is shared with ../graphiql.
set -euo pipefail
exec "$(dirname "$0")/../vendor.sh" "$(dirname "$0")" <<'FILES'
uplot.iife.min.js uplot dist/uPlot.iife.min.js
uplot.min.css uplot dist/uPlot.min.css
FILES
