#!/usr/bin/env bash
# GraphiQL's files for dist/, from the npm packages package-lock.json pins (see ../vendor.sh).
set -euo pipefail
exec "$(dirname "$0")/../vendor.sh" "$(dirname "$0")" <<'FILES'
react.production.min.js react umd/react.production.min.js
react-dom.production.min.js react-dom umd/react-dom.production.min.js
graphiql.min.js graphiql graphiql.min.js
graphiql.min.css graphiql graphiql.min.css
graphql-ws.min.js graphql-ws umd/graphql-ws.min.js
FILES
