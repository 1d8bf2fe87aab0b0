#!/usr/bin/env bash
# End-to-end CPU run of the person-search models on a generated PRW-format dataset:
# generates `psearch synth --format prw --size small --seed 0`, trains the chosen models with
# configs/synthetic/MODEL_prw_small.yaml two at a time (half the cores each; NAE+ starts
# from the NAE of the same trunk), evaluates each with the standard protocol and prints one
# table.
# Usage: bash scripts/train_synthetic.sh [OUT=out/synthetic_run] [MODEL ...]
#   MODEL: oim_mnv2 nae_mnv2 nae_plus_mnv2 (the two-stage models on set-up's ImageNet
#   MobileNetV2, the default, about 35 minutes on 2 cores), oim nae nae_plus (the same on a
#   ResNet-18 from scratch, about 45), pcnet pcnet_dagger pcnet_light (ResNet-18 + FPN from
#   scratch, about 40).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PSEARCH_ROOT"
out="${1:-out/synthetic_run}"
shift || true
models=("$@")
((${#models[@]})) || models=(oim_mnv2 nae_mnv2 nae_plus_mnv2)
bin="$PSEARCH_BUILD_DIR/psearch"
[[ -x "$bin" ]] || bash scripts/build.sh
data="$out/prw_small"
[[ -f "$data/query_info.txt" ]] || "$bin" synth --format prw --size small --seed 0 --out "$data"
threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
mkdir -p "$out"

config_of() {
  local config="configs/synthetic/${1}_prw_small.yaml"
  [[ -f $config ]] || { echo "train_synthetic: unknown model '$1' (no $config)" >&2; exit 2; }
  echo "$config"
}

train() {  # name [overrides...]
  local name=$1; shift
  local start=$SECONDS
  "$bin" train --threads "$threads" --config "$(config_of "$name")" --out "$out/$name" --overwrite \
    dataset.root="$data" "$@" > "$out/$name.log"
  echo "$name: trained in $((SECONDS - start)) s" >> "$out/times.txt"
  "$bin" eval --threads "$threads" --checkpoint "$out/$name/final.pt" --dataset prw --root "$data" \
    --out "$out/$name/eval" > "$out/$name.eval.log"
}

for m in "${models[@]}"; do config_of "$m" > /dev/null; done

# NAE+ fine-tunes the NAE of its trunk (nae_plus_mnv2 <- nae_mnv2), so it runs last; the
# others run in pairs.
nae_of() { echo "${1/nae_plus/nae}"; }
queue=() fine_tunes=()
for m in "${models[@]}"; do
  if [[ $m == nae_plus* ]]; then
    fine_tunes+=("$m")
    [[ " ${models[*]} " == *" $(nae_of "$m") "* || -f "$out/$(nae_of "$m")/final.pt" ]] ||
      { echo "train_synthetic: $m fine-tunes $(nae_of "$m"); list it too" >&2; exit 2; }
  else
    queue+=("$m")
  fi
done
for ((i = 0; i < ${#queue[@]}; i += 2)); do
  train "${queue[i]}" & first=$!
  if ((i + 1 < ${#queue[@]})); then train "${queue[i + 1]}"; fi
  wait "$first"
done
for m in "${fine_tunes[@]}"; do train "$m" train.init_from="$out/$(nae_of "$m")/final.pt"; done

"$PSEARCH_PYTHON" - "$out" "${models[@]}" <<'PY'
import json, sys
out, models = sys.argv[1], sys.argv[2:]
times = {}
for line in open(f"{out}/times.txt").read().splitlines():
    name, t = line.split(": trained in ")
    times[name] = t.split()[0]
print(f"\n{'model':13} {'mAP':>7} {'top-1':>7} {'det AP':>7} {'recall':>7} {'train s':>8}")
for name in models:
    m = json.load(open(f"{out}/{name}/eval/metrics.json"))
    s, d = m["search"], m["detection"]
    print(f"{name:13} {100*s['mAP']:6.2f}% {100*s['top1']:6.2f}% {100*d['ap']:6.2f}% {100*d['recall']:6.2f}% {times.get(name, '-'):>8}")
PY
