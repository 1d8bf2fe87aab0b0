#!/usr/bin/env python3
"""CPU benchmark of the psearch detection ops against torchvision.ops, in one process.

    python bench/bench_ops.py [--lib path/to/libpsearch_ops.so] [--threads N] [--repeat R]

Each row times both implementations on the same inputs (alternating calls, after a
warm-up call each), prints the medians, the speed ratio torchvision / psearch (> 1 means
psearch is faster) and how far the outputs are apart: the max abs difference for float
results, 'equal' / 'DIFFERENT' for index results.
"""
import argparse
import os
import pathlib
import statistics
import time

import torch
import torchvision

REPO = pathlib.Path(__file__).resolve().parents[1]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", default=os.environ.get(
        "PSEARCH_OPS_LIB", str(REPO / "build" / "src" / "libpsearch_ops.so")),
        help="libpsearch_ops.so to load (default: $PSEARCH_OPS_LIB or build/src)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="intra-op threads for both implementations (default: all cores)")
    p.add_argument("--repeat", type=int, default=5, help="timed calls per implementation")
    return p.parse_args()


def median_ms(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def time_pair(tv_fn, ps_fn, repeat):
    """Warm-up call of each, then alternating timed calls so that load changes on the
    machine affect both sides alike. Returns medians (ms) and the last outputs."""
    tv_out, ps_out = tv_fn(), ps_fn()
    tv_times, ps_times = [], []
    for _ in range(repeat):
        tv_times.append(median_ms(tv_fn, 1))
        ps_times.append(median_ms(ps_fn, 1))
    return statistics.median(tv_times), statistics.median(ps_times), tv_out, ps_out


def compare(a, b):
    if isinstance(a, (tuple, list)):
        return max(float(compare(x, y)) for x, y in zip(a, b))
    if not a.is_floating_point():
        return "equal" if torch.equal(a, b) else "DIFFERENT"
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def random_boxes(n, g, extent=(1333.0, 800.0), max_size=300.0):
    xy = torch.rand(n, 2, generator=g) * torch.tensor(extent)
    wh = 8 + torch.rand(n, 2, generator=g) * max_size
    return torch.cat([xy, xy + wh], 1)


def nms_rows(g):
    ps = torch.ops.psearch
    for n in (2000, 12000):
        boxes, scores = random_boxes(n, g), torch.rand(n, generator=g)
        yield ("nms", f"{n} boxes, iou 0.7",
               lambda b=boxes, s=scores: torchvision.ops.nms(b, s, 0.7),
               lambda b=boxes, s=scores: ps.nms(b, s, 0.7))
    for n, classes in ((800, 5), (5000, 80)):
        boxes, scores = random_boxes(n, g), torch.rand(n, generator=g)
        idxs = torch.randint(0, classes, (n,), generator=g)
        yield ("batched_nms", f"{n} boxes, {classes} classes, iou 0.5",
               lambda b=boxes, s=scores, i=idxs: torchvision.ops.batched_nms(b, s, i, 0.5),
               lambda b=boxes, s=scores, i=idxs: ps.batched_nms(b, s, i, 0.5))


def roi_align_rows(g):
    # Faster R-CNN C4 head: stride-16 res4 features of two ~800x1200 images, 512 RoIs.
    b, c, h, w, k = 2, 1024, 50, 75, 512
    x = torch.randn(b, c, h, w, generator=g)
    boxes = random_boxes(k, g, extent=(w * 16.0, h * 16.0))
    rois = torch.cat([torch.randint(0, b, (k, 1), generator=g).float(), boxes], 1)
    args = (1 / 16, 14, 14, 0, False)
    size = f"[{b},{c},{h},{w}], {k} rois -> 14x14, sr 0"
    yield ("roi_align fwd", size,
           lambda: torchvision.ops.roi_align(x, rois, (14, 14), 1 / 16, 0, False),
           lambda: torch.ops.psearch.roi_align(x, rois, *args))
    grad = torch.randn(k, c, 14, 14, generator=g)
    bwd_args = (rois, 1 / 16, 14, 14, b, c, h, w, 0, False)
    yield ("roi_align bwd", size,
           lambda: torch.ops.torchvision._roi_align_backward(grad, *bwd_args),
           lambda: torch.ops.psearch._roi_align_backward(grad, *bwd_args))


def has_psearch_deform_conv_cpu():
    try:
        x = torch.zeros(1, 1, 3, 3)
        torch.ops.psearch.deform_conv2d(x, torch.zeros(1, 1, 1, 1), torch.zeros(1, 2, 3, 3),
                                        torch.zeros(1, 1, 3, 3), torch.zeros(1),
                                        1, 1, 0, 0, 1, 1, 1, 1, True)
        return True
    except (RuntimeError, NotImplementedError, AttributeError):
        return False


def deform_conv_rows(g):
    if not has_psearch_deform_conv_cpu():
        print("deform_conv2d: psearch has no CPU kernel here, row skipped")
        return
    b, c, h, w = 2, 256, 50, 75
    x = torch.randn(b, c, h, w, generator=g)
    weight = torch.randn(c, c, 3, 3, generator=g) * 0.02
    offset = torch.randn(b, 18, h, w, generator=g) * 2
    mask = torch.rand(b, 9, h, w, generator=g)
    bias = torch.randn(c, generator=g)
    grad = torch.randn(b, c, h, w, generator=g)

    def fwd_bwd(fn):
        leaves = [t.clone().requires_grad_() for t in (x, weight, offset, mask, bias)]
        out = fn(*leaves)
        out.backward(grad)
        return [out.detach()] + [t.grad for t in leaves]

    def tv(xi, wi, oi, mi, bi):
        return torchvision.ops.deform_conv2d(xi, oi, wi, bi, padding=(1, 1), mask=mi)

    def ps(xi, wi, oi, mi, bi):
        return torch.ops.psearch.deform_conv2d(xi, wi, oi, mi, bi, 1, 1, 1, 1, 1, 1, 1, 1, True)

    yield ("deform_conv2d fwd+bwd", f"[{b},{c},{h},{w}], 3x3, mask",
           lambda: fwd_bwd(tv), lambda: fwd_bwd(ps))


def main():
    args = parse_args()
    torch.ops.load_library(args.lib)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} threads, {args.repeat} timed calls per cell")
    header = f"{'op':<22} {'size':<40} {'tv ms':>10} {'psearch ms':>11} {'ratio':>7}  max abs diff"
    print(header)
    print("-" * len(header))
    for rows in (nms_rows(g), roi_align_rows(g), deform_conv_rows(g)):
        for op, size, tv_fn, ps_fn in rows:
            tv_ms, ps_ms, tv_out, ps_out = time_pair(tv_fn, ps_fn, args.repeat)
            diff = compare(tv_out, ps_out)
            diff = diff if isinstance(diff, str) else f"{diff:.2e}"
            print(f"{op:<22} {size:<40} {tv_ms:>10.2f} {ps_ms:>11.2f} {tv_ms / ps_ms:>7.2f}  {diff}",
                  flush=True)


if __name__ == "__main__":
    main()
