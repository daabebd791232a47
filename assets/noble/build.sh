#!/usr/bin/env bash
# The web interface's fallback cryptography for dist/, from the npm packages package-lock.json
# pins (see ../vendor.sh): the packages' own ES module files, unchanged, each package in a
# directory of its own (sha2.js imports its neighbours by relative path), with its licence.
set -euo pipefail
exec "$(dirname "$0")/../vendor.sh" "$(dirname "$0")" <<'FILES'
noble-hashes/sha2.js @noble/hashes sha2.js
noble-hashes/_md.js @noble/hashes _md.js
noble-hashes/_u64.js @noble/hashes _u64.js
noble-hashes/utils.js @noble/hashes utils.js
noble-hashes/LICENSE @noble/hashes LICENSE
noble-ed25519/index.js @noble/ed25519 index.js
noble-ed25519/LICENSE @noble/ed25519 LICENSE
FILES
