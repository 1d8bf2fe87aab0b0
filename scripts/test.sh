#!/usr/bin/env bash
# Sets up a fresh machine if needed, builds, and runs the whole test suite
# (C++ tests and the Python oracle tests) through ctest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$PSEARCH_ROOT/scripts/setup.sh"
bash "$PSEARCH_ROOT/scripts/build.sh"
cd "$PSEARCH_BUILD_DIR"
ctest --output-on-failure -j "${PSEARCH_JOBS:-$(nproc)}" "$@"
