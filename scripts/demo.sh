#!/usr/bin/env bash
# Sets up a fresh machine if needed, builds, and runs the most complete end-to-end job on
# built-in data: a synthetic PRW-format dataset is generated, the pretrained models that
# set-up installs (SSDLite person detector + ImageNet MobileNetV2 embedder, docs/pretrained.md)
# search its test split and the standard protocol scores them; the detector runs on real
# footage (Debian's opencv-doc vtest.avi); then the pipeline walk-through (`psearch demo`)
# ranks gallery boxes for a query on a built-in scene.
# Extra arguments go to `psearch eval` (e.g. --set model.separate.detector_input_size=[600,800]).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$PSEARCH_ROOT/scripts/setup.sh"
bash "$PSEARCH_ROOT/scripts/build.sh"
out="$PSEARCH_ROOT/out/demo"
psearch="$PSEARCH_BUILD_DIR/psearch"
[ -f "$out/prw/query_info.txt" ] || "$psearch" synth --format prw --size tiny --seed 0 --out "$out/prw" --force \
  --preview "$out/prw_preview.png"
"$psearch" eval --model separate --dataset prw --root "$out/prw" --out "$out/eval" "$@"
vtest=/usr/share/doc/opencv-doc/examples/data/vtest.avi
"$psearch" detect "$vtest" --every 100 --out "$out/vtest"
"$psearch" demo --output "$out"
echo "pictures: $out/prw_preview.png (generated frames), $out/eval/detection_pr.png, $out/vtest/*.png" \
  "(people found in vtest.avi); metrics: $out/eval/metrics.json, detections: $out/vtest/detections.json"
