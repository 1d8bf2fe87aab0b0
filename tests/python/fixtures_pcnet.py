"""Oracle fixtures for PCNet's Cross Scale Aggregation and side losses
(src/psearch/modeling/one_stage/cross_scale_aggregation.h, src/psearch/modeling/losses/pcnet_losses.h),
computed independently with numpy loops over boxes, cells and pairs, straight from the paper's
equations (PCNet Eq. 6, 8-11) and the official code's triplet variant.

write(out_dir) saves out_dir/pcnet.pt, a flat dict read by tests/cpp/pcnet_test.cpp:
  csa.*       cell features per level (csa.cells.<l> [1, D, H_l, W_l]), strides, boxes [N, 4],
              f' [N, D], query/key Linear weights and biases, level scales, clamp, expected f
              (csa.expected) and attention (csa.attention [N, C], cells level-major, row-major)
  dist.*      offsets [N, 18], strides [N], heights [N], expected sums for M = 3 and M = 2
  tri.*       L2-normalised csa / point features [N, D], pids [N] (-1 unlabeled), margin,
              expected sums for the paper and the official variant and the anchor count
"""

import sys

import numpy as np
import torch


def _csa(rng):
    d, strides, size = 8, [8, 16, 32], (64, 96)
    cells = [rng.standard_normal((1, d, -(-size[0] // s), -(-size[1] // s))) for s in strides]
    boxes = np.array([[4.0, 6.0, 40.0, 60.0], [30.0, 0.0, 95.0, 63.0], [50.0, 20.0, 52.0, 22.0], [0.0, 0.0, 96.0, 64.0]])
    point = rng.standard_normal((len(boxes), d))
    qw, qb, kw, kb = (rng.standard_normal(s) * 0.3 for s in [(d, d), (d,), (d, d), (d,)])
    scales = np.array([1.0, 0.5, 2.0])
    clamp = 3.0
    # Candidate list: every cell of every level with its centre and feature.
    centres, feats, levels = [], [], []
    for l, (c, s) in enumerate(zip(cells, strides)):
        for y in range(c.shape[2]):
            for x in range(c.shape[3]):
                centres.append((x * s + s // 2, y * s + s // 2))
                feats.append(c[0, :, y, x])
                levels.append(l)
    expected = np.zeros_like(point)
    attention = np.zeros((len(boxes), len(centres)))
    for n, (x1, y1, x2, y2) in enumerate(boxes):
        q = qw @ point[n] + qb
        members = [i for i, (cx, cy) in enumerate(centres) if x1 < cx < x2 and y1 < cy < y2]
        logits = []
        for i in members:
            k = kw @ (scales[levels[i]] * feats[i]) + kb
            logits.append(min(max(float(k @ q), -clamp), clamp))
        if members:
            w = np.exp(np.array(logits) - max(logits))
            w /= w.sum()
            for wi, i in zip(w, members):
                attention[n, i] = wi
        expected[n] = point[n] + sum((attention[n, i] * feats[i] for i in members), np.zeros(d))
    out = {f"csa.cells.{l}": c for l, c in enumerate(cells)}
    out.update({"csa.strides": np.array(strides), "csa.boxes": boxes, "csa.point": point, "csa.query.weight": qw,
                "csa.query.bias": qb, "csa.key.weight": kw, "csa.key.bias": kb, "csa.level_scales": scales,
                "csa.clamp": np.array(clamp), "csa.expected": expected, "csa.attention": attention})
    return out


def _distance(rng):
    n = 5
    offsets = rng.standard_normal((n, 18)) * 2
    strides = np.array([8, 16, 32, 64, 8])
    heights = np.array([60.0, 120.0, 200.0, 300.0, 45.0])
    out = {"dist.offsets": offsets, "dist.strides": strides, "dist.heights": heights}
    for m in (3, 2):
        per = 9 // m
        total = 0.0
        for k in range(n):
            ys = [((t // 3) - 1 + offsets[k, 2 * t]) * strides[k] for t in range(9)]
            sets = [ys[i * per:(i + 1) * per] if i + 1 < m else ys[i * per:] for i in range(m)]
            centres = [np.mean(s) for s in sets]
            total += sum(((centres[i + 1] - centres[i]) - heights[k] / m) ** 2 for i in range(m - 1)) / heights[k]
        out[f"dist.expected.{m}"] = np.array(total)
    return out


def _triplet(rng):
    n, d, margin = 7, 6, 0.5
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    csa, point = unit(rng.standard_normal((n, d))), unit(rng.standard_normal((n, d)))
    pids = np.array([0, 0, 1, -1, 2, 1, -1])
    paper = official = 0.0
    count = 0
    for k in range(n):
        negatives = [j for j in range(n) if pids[j] != pids[k]]
        if not negatives:
            continue
        count += 1
        pos = np.sum((csa[k] - point[k]) ** 2)
        neg = min(np.sum((csa[k] - point[j]) ** 2) for j in negatives)
        paper += max(margin + pos - neg, 0.0)
        official += max(margin + max(csa[k] @ csa[j] for j in negatives) - csa[k] @ point[k], 0.0)
    return {"tri.csa": csa, "tri.point": point, "tri.pids": pids, "tri.margin": np.array(margin),
            "tri.expected.paper": np.array(paper), "tri.expected.official": np.array(official),
            "tri.count": np.array(count)}


def write(out):
    rng = np.random.default_rng(3)
    fx = {}
    for part in (_csa, _distance, _triplet):
        fx.update(part(rng))
    tensors = {}
    for k, v in fx.items():
        t = torch.from_numpy(np.asarray(v))
        tensors[k] = t.long() if t.dtype in (torch.int32, torch.int64) else t.double()
    torch.save(tensors, out / "pcnet.pt")


if __name__ == "__main__":
    import pathlib
    write(pathlib.Path(sys.argv[1]))
