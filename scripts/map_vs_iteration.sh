#!/usr/bin/env bash
# Search mAP against the training iteration, as a PNG:
#   bash scripts/map_vs_iteration.sh CONFIG OUT STEP [KEY=VALUE ...]
# trains CONFIG (with the overrides) in segments of STEP iterations (--stop-after, then
# --resume, which continues exactly: the same run as one without stops), evaluates each
# segment's checkpoint with the standard protocol on the config's test split, and draws
# search mAP and top-1 against the iteration (`psearch plot-logs`):
#   OUT/run/               the training run
#   OUT/eval_<N>/          metrics.json and plots of the checkpoint after N iterations
#   OUT/curve/log.jsonl    {"iteration": N, "search_mAP": .., "top1": .., "detection_AP": ..}
#   OUT/map_vs_iteration.png, OUT/top1_vs_iteration.png
# Environment: DATASET and ROOT for the evaluation (default: dataset.name and dataset.root
# of the resolved config); THREADS (default 2).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
[ $# -ge 3 ] || { echo "usage: $0 CONFIG OUT STEP [KEY=VALUE ...]" >&2; exit 2; }
config=$1 out=$2 step=$3
shift 3
psearch="$PSEARCH_BUILD_DIR/psearch"
python="$PSEARCH_VENV/bin/python"
threads=${THREADS:-2}
resolved=$("$psearch" config --config "$config" "$@" | sed -n "/^dataset:/,/^[a-z]/p")
dataset=${DATASET:-$(echo "$resolved" | sed -n "s/^  name: *//p" | tr -d "\"")}
root=${ROOT:-$(echo "$resolved" | sed -n "s/^  root: *//p" | tr -d "\"")}
mkdir -p "$out/curve"

n=0
resume=()
while [ ! -f "$out/run/final.pt" ]; do
  n=$((n + step))
  "$psearch" train --threads "$threads" --config "$config" --out "$out/run" --quiet --stop-after "$n" "${resume[@]}" "$@"
  resume=(--resume)
  checkpoint="$out/run/last.pt"
  [ -f "$out/run/final.pt" ] && checkpoint="$out/run/final.pt"
  "$psearch" eval --threads "$threads" --checkpoint "$checkpoint" --dataset "$dataset" --root "$root" \
    --out "$out/eval_$n" > "$out/eval_$n.log" 2>&1
  echo "map_vs_iteration: iteration $n evaluated ($out/eval_$n/metrics.json)"
done

"$python" - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = []
for folder in out.glob("eval_*"):
    if not folder.is_dir():
        continue
    m = json.loads((folder / "metrics.json").read_text())
    rows.append({"iteration": int(folder.name.split("_")[1]), "search_mAP": m["search"]["mAP"],
                 "top1": m["search"]["top1"], "detection_AP": m["detection"]["ap"]})
rows.sort(key=lambda r: r["iteration"])
(out / "curve" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
for r in rows:
    print(f"iteration {r['iteration']:6d}: search mAP {100 * r['search_mAP']:6.2f} %, top-1 {100 * r['top1']:6.2f} %, "
          f"detection AP {100 * r['detection_AP']:6.2f} %")
PY
"$psearch" plot-logs "$out/curve" --key search_mAP --out "$out/map_vs_iteration.png"
"$psearch" plot-logs "$out/curve" --key top1 --out "$out/top1_vs_iteration.png"
