"""Times `psearch eval-results` on a PRW-sized problem: a random dataset in PRW's on-disk
layout (6,112 test frames, 2,057 queries, 932 identities; empty image files) and a random
results file (about 10 detections per frame, 256-d embeddings, query-image detections for
CBGM). Prints the program's own timing line for plain search and for CBGM, and with
--oracle also checks mAP / top-k against tests/python/eval_oracle.py at this scale.

    python bench/bench_eval.py [--work DIR] [--oracle] [--threads N]
"""
import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.io
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
BINARY = pathlib.Path(os.environ.get("PSEARCH_BINARY", REPO / "build" / "psearch"))
FRAMES, QUERIES, IDS, DIM, DETS = 6112, 2057, 932, 256, 10


def cell(items):
    arr = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        arr[i, 0] = item
    return arr


def write_dataset(root, rng):
    (root / "frames").mkdir(parents=True)
    (root / "annotations").mkdir()
    frames = [f"c{1 + i % 6}s{1 + (i // 6) % 4}_{i:06d}" for i in range(FRAMES)]
    persons = {}
    labeled = []
    for frame in frames:
        n = rng.integers(1, 7)
        pids = rng.permutation(IDS)[:n] + 1
        rows = []
        for pid in pids:
            w = rng.uniform(20, 120)
            h = w * rng.uniform(1.8, 3.0)
            pid = float(pid) if rng.random() < 0.6 else -2.0
            rows.append([pid, rng.uniform(-5, 1900 - w), rng.uniform(-5, 1080 - h), w, h])
        persons[frame] = rows
        labeled += [(frame, r) for r in rows if r[0] > 0]
        scipy.io.savemat(root / "annotations" / f"{frame}.jpg.mat", {"box_new": np.array(rows)})
        (root / "frames" / f"{frame}.jpg").write_bytes(b"")
    scipy.io.savemat(root / "frame_test.mat", {"img_index_test": cell(frames)})
    scipy.io.savemat(root / "frame_train.mat", {"img_index_train": cell(frames[:1])})
    lines = []
    for i in rng.permutation(len(labeled))[:QUERIES]:
        frame, r = labeled[i]
        lines.append(f"{int(r[0])} {r[1]:.4f} {r[2]:.4f} {r[3]:.4f} {r[4]:.4f} {frame}\r\n")
    (root / "query_info.txt").write_bytes("".join(lines).encode())
    return frames, persons, lines


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def write_results(path, rng, frames, persons, lines):
    ids = unit(rng.normal(size=(IDS + 1, DIM)))
    gallery = []
    for frame in frames:
        boxes, feats = [], []
        for pid, x, y, w, h in persons[frame]:
            x1, y1 = max(0.0, x), max(0.0, y)
            boxes.append([x1 + rng.normal(0, 3), y1 + rng.normal(0, 3), x + w + rng.normal(0, 3), y + h + rng.normal(0, 3)])
            feats.append(ids[int(pid)] if pid > 0 else rng.normal(size=DIM))
        while len(boxes) < DETS:
            x, y = rng.uniform(0, 1800), rng.uniform(0, 900)
            boxes.append([x, y, x + 50, y + 150])
            feats.append(rng.normal(size=DIM))
        feats = unit(np.array(feats) + rng.normal(scale=0.08, size=(len(feats), DIM)))
        gallery.append({"image": f"{frame}.jpg", "boxes": torch.tensor(np.array(boxes, dtype=np.float32)),
                        "scores": torch.tensor(rng.uniform(0.3, 1.0, len(boxes)).astype(np.float32)),
                        "features": torch.tensor(feats)})
    queries, context = [], []
    for line in lines:
        pid, x, y, w, h, frame = line.split()
        x, y, w, h = map(float, (x, y, w, h))
        box = [float(int(max(0.0, v))) for v in (x, y, x + w, y + h)]
        f = unit(ids[int(pid)] + rng.normal(scale=0.08, size=DIM))
        queries.append({"image": f"{frame}.jpg", "box": torch.tensor(box), "features": torch.tensor(f)})
        others = unit(rng.normal(size=(3, DIM)))
        context.append({"boxes": torch.tensor([box] + [[0.0, 0.0, 50.0, 150.0]] * 3),
                        "features": torch.tensor(np.vstack([f[None], others]))})
    torch.save({"format": "psearch-results/1", "gallery": gallery, "queries": queries,
                "query_detections": context}, path)


def run(results, root, out, *extra, threads=None):
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    proc = subprocess.run([str(BINARY), "eval-results", str(results), "--dataset", "prw", "--root", str(root),
                           "--out", str(out), *extra], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(proc.stderr)
    timing = re.search(r"time: .*", proc.stdout).group(0)
    return proc.stdout, wall, timing


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", help="keep the generated files here (default: a temporary folder)")
    parser.add_argument("--oracle", action="store_true", help="also check against the Python oracle")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the program")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(args.work or tmp)
        root, results = work / "prw", work / "results.pt"
        rng = np.random.default_rng(0)
        if not root.exists():
            t = time.perf_counter()
            frames, persons, lines = write_dataset(root, rng)
            write_results(results, rng, frames, persons, lines)
            print(f"generated in {time.perf_counter() - t:.0f} s: {results.stat().st_size / 1e6:.0f} MB results")
        for extra in ([], ["--cbgm"]):
            stdout, wall, timing = run(results, root, work / "out", *extra, threads=args.threads)
            print(f"eval-results {' '.join(extra) or '(plain)'}: wall {wall:.2f} s; {timing}")
        print(stdout)
        if args.oracle:
            sys.path.insert(0, str(REPO / "tests" / "python"))
            import json

            import eval_oracle

            split = eval_oracle.load_prw_test(root)
            data = torch.load(results)
            dets = {g["image"]: {k: g[k].numpy() for k in ("boxes", "scores", "features")} for g in data["gallery"]}
            qf = torch.stack([q["features"] for q in data["queries"]]).numpy()
            _, wall, _ = run(results, root, work / "out")
            metrics = json.loads((work / "out" / "metrics.json").read_text())
            t = time.perf_counter()
            m_ap, accs, _ = eval_oracle.evaluate_search(split, dets, qf)
            print(f"oracle {time.perf_counter() - t:.0f} s: |mAP diff| {abs(m_ap - metrics['search']['mAP']):.2e}, "
                  f"top-k diffs {[abs(a - metrics['search'][f'top{k}']) for k, a in zip((1, 5, 10), accs)]}")


if __name__ == "__main__":
    main()
