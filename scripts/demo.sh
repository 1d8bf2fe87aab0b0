#!/usr/bin/env bash
# Sets up a fresh machine if needed, builds, and runs the most complete end-to-end job on
# built-in data: a synthetic PRW-format dataset is generated, the ResNet-50 baseline runs
# over its test split, and the standard protocol scores it; then the pipeline walk-through
# (`psearch demo`) ranks gallery boxes for a query on a built-in scene.
# Extra arguments go to `psearch eval` (e.g. --weights resnet50-0676ba61.pth).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$PSEARCH_ROOT/scripts/setup.sh"
bash "$PSEARCH_ROOT/scripts/build.sh"
out="$PSEARCH_ROOT/out/demo"
psearch="$PSEARCH_BUILD_DIR/psearch"
[ -f "$out/prw/query_info.txt" ] || "$psearch" synth --format prw --size tiny --seed 0 --out "$out/prw" --force \
  --preview "$out/prw_preview.png"
"$psearch" eval --dataset prw --root "$out/prw" --gt-boxes --min-size 240 --max-size 400 --out "$out/eval" "$@"
"$psearch" demo --output "$out"
echo "pictures: $out/prw_preview.png (generated frames), $out/eval/detection_pr.png; metrics: $out/eval/metrics.json"
