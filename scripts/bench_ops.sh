#!/usr/bin/env bash
# Times psearch's ops against torchvision.ops on the CPU, in one process, and prints a table.
# Extra arguments go to bench/bench_ops.py (e.g. --threads 1 --repeat 20).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$PSEARCH_ROOT/scripts/setup.sh" >/dev/null
bash "$PSEARCH_ROOT/scripts/build.sh" >/dev/null
"$PSEARCH_PYTHON" "$PSEARCH_ROOT/bench/bench_ops.py" --lib "$PSEARCH_BUILD_DIR/src/libpsearch_ops.so" "$@"
