"""Oracle fixtures for the losses (src/psearch/modeling/losses), computed with numpy.

write(out_dir) saves out_dir/losses.pt: a flat dict {name: tensor} (scalars as 0-d
tensors, all float64 unless integer) read by tests/cpp/losses_test.cpp. Names are
"<topic>.<field>"; every case stores its parameters next to its inputs and outputs.

- oim.*: three training steps of the original OIM, written sample by sample as Xiao et al.
  describe it (no vectorisation, so it is independent of the C++ rounds): loss, gradient
  of the loss with respect to the features (analytic softmax gradient), and the lookup
  table, queue and queue pointer after each step. Step 1 wraps the queue, step 2 pushes
  more unlabeled persons than the queue holds and repeats an identity, step 3 has no
  labeled person at all.
- nae.*: Eq. 1-3 and 5 with BatchNorm1d(1) in training mode (batch statistics), the
  running statistics after that step and eval-mode logits with them. The gradient of the
  detection loss with respect to x comes from torch autograd over torch.nn.BatchNorm1d,
  the way the official NAE4PS head computes it.
- naeplus.*: per-pixel labels rasterised as NAE4PS's grid_wise_label_gen and resized with
  torch's F.interpolate (bilinear, align_corners=False), Eq. 6 and its gradient, the
  inference scores (mean probability over the image's maximum), and the pixel-wise head.

Run directly with: python tests/python/fixtures_losses.py <out_dir>
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

UNLABELED = -1
BACKGROUND = -2


def _unit_rows(rng, n, d):
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _bce_with_logits(z, y):
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


# ---------------------------------------------------------------------------------------
# OIM


def _oim_step(x, labels, lut, cq, header, momentum, scalar):
    """Loss, d loss / d x, and the memory after one OIM training step."""
    table = np.concatenate([lut, cq])
    logits = scalar * x @ table.T
    labeled = np.nonzero(labels >= 0)[0]
    grad = np.zeros_like(x)
    loss = 0.0
    if labeled.size:
        y = labels[labeled]
        log_p = _log_softmax(logits[labeled])
        loss = -log_p[np.arange(labeled.size), y].mean()
        d_logits = np.exp(log_p)
        d_logits[np.arange(labeled.size), y] -= 1.0
        grad[labeled] = scalar * (d_logits / labeled.size) @ table
    lut, cq = lut.copy(), cq.copy()
    for xi, yi in zip(x, labels):
        if yi >= 0:
            moved = momentum * lut[yi] + (1.0 - momentum) * xi
            lut[yi] = moved / np.linalg.norm(moved)
        elif yi == UNLABELED:
            cq[header] = xi
            header = (header + 1) % len(cq)
    return loss, grad, lut, cq, header


def _oim(rng, out):
    dim, num_pids, queue, momentum, scalar = 8, 6, 5, 0.7, 30.0
    lut = _unit_rows(rng, num_pids, dim)
    lut[[0, 5]] = 0.0  # never seen yet (the table starts at zeros)
    cq = _unit_rows(rng, queue, dim)
    cq[4] = 0.0
    header = 3
    u, b = UNLABELED, BACKGROUND
    steps = [
        # 3 x identity 2, 4 unlabeled from slot 3: slots 3, 4, 0, 1 (wraps); background ignored.
        np.array([2, u, 5, b, 2, u, 0, u, 2, u]),
        # 7 unlabeled into a 5-row queue; identities 1 (twice), 4, 3; a background row.
        np.array([u, 1, u, u, 4, u, b, 1, u, u, 3, u]),
        # nobody labeled: loss and gradient exactly 0, but the queue still moves.
        np.array([u, b, u]),
    ]
    out["oim.num_features"] = torch.tensor(dim)
    out["oim.num_pids"] = torch.tensor(num_pids)
    out["oim.num_cq_size"] = torch.tensor(queue)
    out["oim.momentum"] = torch.tensor(momentum, dtype=torch.float64)
    out["oim.scalar"] = torch.tensor(scalar, dtype=torch.float64)
    out["oim.lut0"], out["oim.cq0"] = torch.from_numpy(lut), torch.from_numpy(cq)
    out["oim.header0"] = torch.tensor(header)
    out["oim.steps"] = torch.tensor(len(steps))
    for s, labels in enumerate(steps, start=1):
        x = _unit_rows(rng, len(labels), dim)
        loss, grad, lut, cq, header = _oim_step(x, labels, lut, cq, header, momentum, scalar)
        key = f"oim.step{s}."
        out[key + "features"] = torch.from_numpy(x)
        out[key + "labels"] = torch.from_numpy(labels.astype(np.int64))
        out[key + "loss"] = torch.tensor(loss, dtype=torch.float64)
        out[key + "grad"] = torch.from_numpy(grad)
        out[key + "lut"], out[key + "cq"] = torch.from_numpy(lut), torch.from_numpy(cq)
        out[key + "header"] = torch.tensor(header)


# ---------------------------------------------------------------------------------------
# NAE


def _batch_norm_train(v, gamma, beta, eps=1e-5, momentum=0.1):
    """Normalised values and the running statistics (from 0 / 1) after one step."""
    mean, var = v.mean(), v.var()
    normed = (v - mean) / math.sqrt(var + eps) * gamma + beta
    running_mean = (1 - momentum) * 0.0 + momentum * mean
    running_var = (1 - momentum) * 1.0 + momentum * v.var(ddof=1)
    return normed, running_mean, running_var


def _nae(rng, out):
    n, dim, gamma, beta = 10, 6, 1.3, -0.2
    x = rng.standard_normal((n, dim)) * rng.uniform(0.2, 3.0, size=(n, 1))
    labels = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 1], dtype=np.float64)
    r = np.linalg.norm(x, axis=1)
    logits, running_mean, running_var = _batch_norm_train(r, gamma, beta)
    prob = _sigmoid(logits)
    angle = x / r[:, None]
    out["nae.x"], out["nae.labels"] = torch.from_numpy(x), torch.from_numpy(labels)
    out["nae.gamma"] = torch.tensor(gamma, dtype=torch.float64)
    out["nae.beta"] = torch.tensor(beta, dtype=torch.float64)
    out["nae.logits"], out["nae.prob"] = torch.from_numpy(logits), torch.from_numpy(prob)
    out["nae.angle"] = torch.from_numpy(angle)
    out["nae.embedding"] = torch.from_numpy(prob[:, None] * angle)
    out["nae.loss"] = torch.tensor(_bce_with_logits(logits, labels).mean(), dtype=torch.float64)
    out["nae.running_mean"] = torch.tensor(running_mean, dtype=torch.float64)
    out["nae.running_var"] = torch.tensor(running_var, dtype=torch.float64)
    eval_logits = (r - running_mean) / math.sqrt(running_var + 1e-5) * gamma + beta
    out["nae.eval_logits"] = torch.from_numpy(eval_logits)

    # Gradient through the BN batch statistics, with torch as the official head does it.
    bn = torch.nn.BatchNorm1d(1, affine=True).double()
    with torch.no_grad():
        bn.weight.fill_(gamma)
        bn.bias.fill_(beta)
    xt = torch.from_numpy(x).requires_grad_(True)
    z = bn(xt.norm(2, 1, keepdim=True)).squeeze(1)
    F.binary_cross_entropy_with_logits(z, torch.from_numpy(labels)).backward()
    out["nae.grad_x"] = xt.grad.detach().clone()


# ---------------------------------------------------------------------------------------
# NAE+


def _official_pixel_labels(proposals, gt, k):
    """NAE4PS grid_wise_label_gen, except that RoIs not overlapping their box get zeros."""
    labels = torch.zeros(len(proposals), 1, k, k, dtype=proposals.dtype)
    for i, (p, g) in enumerate(zip(proposals, gt)):
        width = int((p[2] - p[0]).ceil().item())
        height = int((p[3] - p[1]).ceil().item())
        if not (width > 0 and height > 0):
            continue
        if not (torch.min(p[2], g[2]) > torch.max(p[0], g[0])
                and torch.min(p[3], g[3]) > torch.max(p[1], g[1])):
            continue  # the official slices would wrap around here
        mask = torch.zeros(1, 1, height, width, dtype=proposals.dtype)
        x1 = int((torch.max(p[0], g[0]) - p[0]).floor().item())
        y1 = int((torch.max(p[1], g[1]) - p[1]).floor().item())
        x2 = int((torch.min(p[2], g[2]) - p[0]).ceil().item())
        y2 = int((torch.min(p[3], g[3]) - p[1]).ceil().item())
        mask[0, 0, y1:y2 + 1, x1:x2 + 1] = 1.0
        labels[i] = F.interpolate(mask, size=(k, k), mode="bilinear", align_corners=False)
    return labels


def _pixel_label_boxes(g):
    """Proposal / ground-truth pairs: jittered overlaps, nesting, sub-pixel and odd sizes."""
    n = 40
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 300
    wh = 2 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 150
    gt = torch.cat([xy, xy + wh], 1)
    jitter = (torch.rand(n, 4, generator=g, dtype=torch.float64) - 0.5) * wh.repeat(1, 2) * 0.8
    proposals = gt + jitter
    proposals[:, 2:] = torch.maximum(proposals[:, 2:], proposals[:, :2] + 0.3)
    fixed = torch.tensor([
        [[10.0, 20.0, 60.0, 140.0], [0.0, 0.0, 500.0, 500.0]],    # RoI inside its box: all 1
        [[0.0, 0.0, 100.0, 100.0], [30.0, 40.0, 50.0, 60.0]],     # box inside the RoI
        [[5.0, 5.0, 5.6, 9.0], [0.0, 0.0, 100.0, 100.0]],         # 0.6 px wide RoI
        [[0.0, 0.0, 3.0, 3.0], [1.0, 1.0, 2.0, 2.0]],             # smaller than k: upsampling
        [[0.0, 0.0, 70.0, 70.0], [69.5, 0.0, 90.0, 70.0]],        # half-pixel sliver
        [[100.0, 100.0, 150.0, 200.0], [0.0, 0.0, 50.0, 50.0]],   # disjoint: zeros
        [[0.0, 0.0, 7.0, 14.0], [0.0, 0.0, 7.0, 14.0]],           # exact, integer
    ], dtype=torch.float64)
    proposals = torch.cat([proposals, fixed[:, 0]])
    gt = torch.cat([gt, fixed[:, 1]])
    return proposals.float(), gt.float()


def _naeplus(rng, g, out):
    k = 7
    proposals, gt = _pixel_label_boxes(g)
    labels = _official_pixel_labels(proposals, gt, k)
    out["naeplus.k"] = torch.tensor(k)
    out["naeplus.proposals"], out["naeplus.gt"] = proposals, gt
    out["naeplus.labels"] = labels

    # Eq. 6 on soft labels, and its gradient d loss / d logits.
    y = labels[:6].double().numpy()
    z = rng.standard_normal(y.shape) * 2.0
    out["naeplus.loss_logits"] = torch.from_numpy(z)
    out["naeplus.loss_labels"] = labels[:6].double()
    out["naeplus.loss"] = torch.tensor(_bce_with_logits(z, y).mean(), dtype=torch.float64)
    out["naeplus.loss_grad"] = torch.from_numpy((_sigmoid(z) - y) / y.size)

    # Inference: mean pixel probability over the maximum of its image.
    counts = [3, 4]
    z = rng.standard_normal((sum(counts), 1, k, k)) * 2.0
    mean_prob = _sigmoid(z).mean(axis=(1, 2, 3))
    blocks = np.split(mean_prob, np.cumsum(counts)[:-1])
    scores = np.concatenate([blk / blk.max() for blk in blocks])
    pooled = rng.standard_normal((sum(counts), 5))
    out["naeplus.score_logits"] = torch.from_numpy(z)
    out["naeplus.score_counts"] = torch.tensor(counts)
    out["naeplus.scores"] = torch.from_numpy(scores)
    out["naeplus.score_pooled"] = torch.from_numpy(pooled)
    out["naeplus.score_embedding"] = torch.from_numpy(
        pooled / np.linalg.norm(pooled, axis=1, keepdims=True) * scores[:, None])

    # The pixel-wise head: per-pixel norms through BatchNorm2d(1), attention-weighted pool.
    gamma, beta = 0.8, 0.3
    x = rng.standard_normal((4, 5, 3, 3)) * rng.uniform(0.3, 2.0, size=(4, 1, 3, 3))
    r = np.linalg.norm(x, axis=1, keepdims=True)
    logits, running_mean, running_var = _batch_norm_train(r, gamma, beta)
    prob = _sigmoid(logits)
    out["naeplus.head_x"] = torch.from_numpy(x)
    out["naeplus.head_gamma"] = torch.tensor(gamma, dtype=torch.float64)
    out["naeplus.head_beta"] = torch.tensor(beta, dtype=torch.float64)
    out["naeplus.head_logits"] = torch.from_numpy(logits)
    out["naeplus.head_prob"] = torch.from_numpy(prob)
    out["naeplus.head_pooled"] = torch.from_numpy((x / r * prob).mean(axis=(2, 3)))
    out["naeplus.head_running_mean"] = torch.tensor(running_mean, dtype=torch.float64)
    out["naeplus.head_running_var"] = torch.tensor(running_var, dtype=torch.float64)


def write(out_dir):
    rng = np.random.default_rng(20200601)
    g = torch.Generator().manual_seed(1234)
    out = {}
    _oim(rng, out)
    _nae(rng, out)
    _naeplus(rng, g, out)
    torch.save(out, os.path.join(out_dir, "losses.pt"))


if __name__ == "__main__":
    os.makedirs(sys.argv[1], exist_ok=True)
    write(sys.argv[1])
