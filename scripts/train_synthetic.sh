#!/usr/bin/env bash
# End-to-end CPU run of the two-stage models on a generated PRW-format dataset: generates
# `psearch synth --format prw --size small`, trains NAE and OIM-base side by side (half the
# cores each), then NAE+ from that NAE, with configs/synthetic/*.yaml; evaluates each with
# the standard protocol and prints a table. About 35 minutes on 2 cores.
# Usage: bash scripts/train_synthetic.sh [OUT=out/synthetic_run]
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PSEARCH_ROOT"
out="${1:-out/synthetic_run}"
bin="$PSEARCH_BUILD_DIR/psearch"
[[ -x "$bin" ]] || bash scripts/build.sh
data="$out/prw_small"
[[ -f "$data/query_info.txt" ]] || "$bin" synth --format prw --size small --seed 0 --out "$data"
threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))

train() {  # name config threads [overrides...]
  local name=$1 config=$2 n=$3; shift 3
  local start=$SECONDS
  "$bin" train --threads "$n" --config "$config" --out "$out/$name" dataset.root="$data" "$@" > "$out/$name.log"
  echo "$name: trained in $((SECONDS - start)) s" >> "$out/times.txt"
  "$bin" eval --threads "$n" --checkpoint "$out/$name/final.pt" --dataset prw --root "$data" \
    --out "$out/$name/eval" > "$out/$name.eval.log"
}
rm -f "$out/times.txt"
train nae configs/synthetic/nae_prw_small.yaml "$threads" & nae=$!
train oim configs/synthetic/oim_prw_small.yaml "$threads" & oim=$!
wait "$nae"
train nae_plus configs/synthetic/nae_plus_prw_small.yaml "$threads" train.init_from="$out/nae/final.pt"
wait "$oim"

"$PSEARCH_PYTHON" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
times = dict(line.split(": trained in ") for line in open(f"{out}/times.txt").read().splitlines())
print(f"\n{'model':10} {'mAP':>7} {'top-1':>7} {'det AP':>7} {'recall':>7} {'train s':>8}")
for name in ["oim", "nae", "nae_plus"]:
    m = json.load(open(f"{out}/{name}/eval/metrics.json"))
    s, d = m["search"], m["detection"]
    print(f"{name:10} {100*s['mAP']:6.2f}% {100*s['top1']:6.2f}% {100*d['ap']:6.2f}% {100*d['recall']:6.2f}% {times[name].split()[0]:>8}")
PY
