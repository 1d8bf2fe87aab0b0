#!/usr/bin/env bash
# Configures and builds psearch in $PSEARCH_BUILD_DIR (default: build/). Extra
# arguments go to cmake's configure step, e.g. -DPSEARCH_CUDA=OFF.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
prefix="$("$PSEARCH_PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$PSEARCH_BUILD_DIR/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S "$PSEARCH_ROOT" -B "$PSEARCH_BUILD_DIR" "${generator[@]}" \
    -DCMAKE_PREFIX_PATH="$prefix" -DPSEARCH_PYTHON="$PSEARCH_PYTHON" "$@" \
    > "$PSEARCH_BUILD_DIR.configure.log" 2>&1 || { cat "$PSEARCH_BUILD_DIR.configure.log"; exit 1; }
fi
cmake --build "$PSEARCH_BUILD_DIR" -j "${PSEARCH_JOBS:-$(nproc)}"
