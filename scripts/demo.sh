#!/usr/bin/env bash
# Sets up a fresh machine if needed, builds, and runs the end-to-end job on built-in data:
#  1. generates a synthetic PRW-format dataset (`psearch synth --size small`);
#  2. trains a joint model on it on the CPU (OIM-base on set-up's ImageNet MobileNetV2,
#     about 10 minutes on 2 cores; cached: the next run reuses it) and evaluates it with the
#     standard protocol (table + plots), next to the pretrained separate pipeline;
#  3. indexes real footage (Debian's opencv-doc vtest.avi) with the pretrained separate
#     pipeline (SSDLite person detector + ImageNet MobileNetV2, docs/pretrained.md) into a
#     gallery, searches it for a person picked in one frame and writes the HTML report.
# The last line says where the report is. Serve the gallery with
#   build/psearch serve --gallery out/demo/vtest.db
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$PSEARCH_ROOT/scripts/setup.sh"
bash "$PSEARCH_ROOT/scripts/build.sh"
out="$PSEARCH_ROOT/out/demo"
psearch="$PSEARCH_BUILD_DIR/psearch"
mkdir -p "$out"

data="$out/prw_small"
[ -f "$data/query_info.txt" ] || "$psearch" synth --format prw --size small --seed 0 --out "$data" --force \
  --preview "$out/prw_preview.png"

model="$out/oim_mnv2"
if [ ! -f "$model/final.pt" ]; then
  echo "demo: training OIM-base (MobileNetV2 trunk) on $data, about 10 minutes on 2 cores"
  "$psearch" train --config "$PSEARCH_ROOT/configs/synthetic/oim_mnv2_prw_small.yaml" --out "$model" --overwrite \
    dataset.root="$data"
fi
"$psearch" eval --checkpoint "$model/final.pt" --dataset prw --root "$data" --out "$out/eval_oim"
"$psearch" eval --model separate --dataset prw --root "$data" --out "$out/eval_separate"

vtest=/usr/share/doc/opencv-doc/examples/data/vtest.avi
"$psearch" index --gallery "$out/vtest.db" --model separate --every 4 "walkway=$vtest"
echo "pictures: $out/prw_preview.png (generated frames), $out/eval_oim/*.png and $out/eval_separate/*.png" \
  "(evaluation plots); metrics: $out/eval_oim/metrics.json, $out/eval_separate/metrics.json; hits: $out/search.json"
# Its last line, on stderr, is "report: .../report.html".
"$psearch" search --gallery "$out/vtest.db" --pick walkway:200 --top-k 24 --json "$out/search.json" \
  --report "$out/search" > /dev/null
