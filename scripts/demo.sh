#!/usr/bin/env bash
# Sets up a fresh machine if needed, builds, and runs the end-to-end demo on the
# built-in synthetic scene. Extra arguments go to `psearch demo`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$PSEARCH_ROOT/scripts/setup.sh"
bash "$PSEARCH_ROOT/scripts/build.sh"
"$PSEARCH_BUILD_DIR/psearch" demo --output "$PSEARCH_ROOT/out/demo" "$@"
