#!/usr/bin/env bash
# Checks the index math of the CUDA kernels without a GPU: builds harness.cu (the
# kernel sources with their __host__ __device__ element functions called from the
# host) into a temporary shared library and compares it with torchvision on CPU, and
# the host NMS with our CPU kernel from build/src/libpsearch_ops.so. Takes about a
# minute of nvcc time. Usage: bash scripts/cuda_host_check/run.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
here="$PSEARCH_ROOT/scripts/cuda_host_check"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
torch_dir="$("$PSEARCH_PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
nvcc -std=c++17 --expt-relaxed-constexpr -gencode arch=compute_90,code=sm_90 -O1 \
  -Xcompiler -fPIC -shared -I"$PSEARCH_ROOT/src" -isystem "$torch_dir/include" \
  -isystem "$torch_dir/include/torch/csrc/api/include" "$here/harness.cu" \
  -o "$tmp/libharness.so" -L"$torch_dir/lib" -ltorch -ltorch_cpu -ltorch_cuda -lc10 \
  -lc10_cuda -Xlinker -rpath="$torch_dir/lib"
"$PSEARCH_PYTHON" "$here/check.py" "$tmp/libharness.so" "$tmp/nms_cases.pt"
# Separate process: libpsearch_ops registers the same CUDA kernels as the harness.
lib="${PSEARCH_OPS_LIB:-$PSEARCH_BUILD_DIR/src/libpsearch_ops.so}"
"$PSEARCH_PYTHON" - "$lib" "$tmp/nms_cases.pt" <<'PY'
import sys
import torch
torch.ops.load_library(sys.argv[1])
cases = torch.load(sys.argv[2])
for (dtype, threshold), (boxes, scores, keep) in cases.items():
    assert torch.equal(torch.ops.psearch.nms(boxes, scores, threshold), keep), (dtype, threshold)
print(f"host NMS == psearch CPU nms on {len(cases)} cases")
PY
