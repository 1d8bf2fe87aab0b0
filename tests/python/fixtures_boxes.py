"""Oracle fixtures for the C++ box utilities (src/psearch/boxes), computed with torchvision.

write(out_dir) saves out_dir/boxes.pt: a flat dict {name: tensor} (scalars as 0-d
tensors) read by tests/cpp/boxes_test.cpp. Names are "<utility>.<case>.<field>"; every
case stores its parameters next to its inputs and outputs, so the C++ side needs no
copy of the configurations below.

Run directly with: python tests/python/fixtures_boxes.py <out_dir>
"""

import math
import os
import sys

import torch
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_area, box_iou, clip_boxes_to_image, remove_small_boxes


def _random_boxes(g, n, dtype=torch.float32, max_xy=200.0, max_wh=80.0, min_wh=0.5):
    """[n, 4] valid xyxy boxes with positive width and height."""
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * max_xy
    wh = min_wh + torch.rand(n, 2, generator=g, dtype=torch.float64) * (max_wh - min_wh)
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def _box_ops(g, out):
    # Pairwise IoU, including duplicated, disjoint, nested and integer-valued boxes.
    for case, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        b1 = _random_boxes(g, 37, dtype)
        b2 = _random_boxes(g, 53, dtype)
        b2[:5] = b1[:5]  # identical pairs: IoU exactly 1
        b2[5] = torch.tensor([1000.0, 1000.0, 1010.0, 1010.0], dtype=dtype)  # disjoint from all
        b2[6] = b1[6] + torch.tensor([2.0, 2.0, -2.0, -2.0], dtype=dtype)  # nested (may invert)
        out[f"iou.{case}.boxes1"] = b1
        out[f"iou.{case}.boxes2"] = b2
        out[f"iou.{case}.iou"] = box_iou(b1, b2)
        out[f"area.{case}.area"] = box_area(b1)
    bi1 = torch.randint(0, 100, (9, 2), generator=g)
    bi1 = torch.cat([bi1, bi1 + torch.randint(1, 50, (9, 2), generator=g)], 1)
    bi2 = torch.randint(0, 100, (11, 2), generator=g)
    bi2 = torch.cat([bi2, bi2 + torch.randint(1, 50, (11, 2), generator=g)], 1)
    out["iou.i64.boxes1"], out["iou.i64.boxes2"], out["iou.i64.iou"] = bi1, bi2, box_iou(bi1, bi2)

    # Clipping and small-box removal on boxes that stick out of a 100 x 120 (h x w) image.
    b = _random_boxes(g, 40, max_xy=160.0) - 30.0
    out["clip.boxes"] = b
    out["clip.image_size"] = torch.tensor([100, 120])
    out["clip.clipped"] = clip_boxes_to_image(b, (100, 120))
    bb = b.view(5, 8, 4)  # batched [..., 4] input
    out["clip.batched_clipped"] = clip_boxes_to_image(bb, (100, 120))
    small = _random_boxes(g, 50, max_wh=6.0, min_wh=0.0)
    small[0] = torch.tensor([0.0, 0.0, 2.0, 5.0])  # exactly min_size wide: kept
    out["small.boxes"] = small
    out["small.min_size"] = torch.tensor(2.0, dtype=torch.float64)
    out["small.keep"] = remove_small_boxes(small, 2.0)


def _box_coder(g, out):
    cases = [
        ("rpn", (1.0, 1.0, 1.0, 1.0), math.log(1000.0 / 16), torch.float32, 1),
        ("roi", (10.0, 10.0, 5.0, 5.0), math.log(1000.0 / 16), torch.float32, 3),
        ("odd", (2.5, 3.0, 0.7, 1.3), 2.0, torch.float32, 2),
        ("f64", (10.0, 10.0, 5.0, 5.0), math.log(1000.0 / 16), torch.float64, 2),
    ]
    for name, weights, clip, dtype, k in cases:
        coder = BoxCoder(weights, bbox_xform_clip=clip)
        n = 64
        proposals = _random_boxes(g, n, dtype)
        gt = _random_boxes(g, n, dtype)
        encoded = coder.encode_single(gt, proposals)
        # Codes: the true targets for class 0, random ones for the other classes, and
        # in every case some dw/dh far past the clip so that the clamp is exercised.
        codes = torch.randn(n, 4 * k, generator=g, dtype=torch.float64).to(dtype) * 2.0
        codes[:, 0:4] = encoded
        big = torch.tensor(weights[2:], dtype=dtype) * (clip + 3.0)
        codes[n - 8:, 2:4] = big  # dw/dh = clip + 3 after dividing by the weights
        codes[n - 4:, 2:4] = -big  # very negative: not clamped, tiny boxes
        p = f"coder.{name}."
        out[p + "weights"] = torch.tensor(weights, dtype=torch.float64)
        out[p + "clip"] = torch.tensor(clip, dtype=torch.float64)
        out[p + "proposals"] = proposals
        out[p + "gt"] = gt
        out[p + "encoded"] = encoded
        out[p + "codes"] = codes
        out[p + "decoded"] = coder.decode_single(codes, proposals)
        # The list API: two images, codes of shape [sum N_i, 4K] -> [sum N_i, K, 4].
        out[p + "decoded_batched"] = coder.decode(codes, [proposals[:20], proposals[20:]])
        enc_list = coder.encode([gt[:20], gt[20:]], [proposals[:20], proposals[20:]])
        out[p + "encoded_list0"], out[p + "encoded_list1"] = enc_list


def _anchors(out):
    fpn_sizes = ((32,), (64,), (128,))
    fpn_ratios = ((0.5, 1.0, 2.0),) * 3
    c4_sizes = ((32, 64, 128, 256, 512),)
    c4_ratios = ((0.5, 1.0, 2.0),)
    image = (100, 120)
    cases = [
        # Maps of a ResNet on a 100 x 120 image (ceil of image / stride): torchvision's
        # floor-division strides are then 7 x 8, 14 x 15, 25 x 30, not 8, 16, 32.
        ("fpn_ceil", fpn_sizes, fpn_ratios, [(13, 15), (7, 8), (4, 4)], torch.float32),
        ("fpn_floor", fpn_sizes, fpn_ratios, [(12, 15), (6, 7), (3, 3)], torch.float32),
        ("fpn_f64", fpn_sizes, fpn_ratios, [(13, 15), (7, 8), (4, 4)], torch.float64),
        ("c4", c4_sizes, c4_ratios, [(7, 8)], torch.float32),
        ("c4_floor", c4_sizes, c4_ratios, [(6, 7)], torch.float32),
        # Sizes that are not integers and more ratios (RetinaNet style octave scales).
        ("retina", ((32.0, 40.3, 50.8),), ((0.5, 1.0, 2.0, 3.0),), [(13, 15)], torch.float32),
    ]
    for name, sizes, ratios, fsizes, dtype in cases:
        gen = AnchorGenerator(sizes, ratios)
        images = ImageList(torch.zeros(2, 3, *image, dtype=dtype), [image, image])
        feats = [torch.zeros(2, 4, h, w, dtype=dtype) for h, w in fsizes]
        anchors = gen(images, feats)
        assert torch.equal(anchors[0], anchors[1])
        p = f"anchors.{name}."
        out[p + "num_maps"] = torch.tensor(len(sizes))
        for i, (s, r) in enumerate(zip(sizes, ratios)):
            out[p + f"sizes{i}"] = torch.tensor(s, dtype=torch.float64)
            out[p + f"ratios{i}"] = torch.tensor(r, dtype=torch.float64)
            out[p + f"cell{i}"] = gen.cell_anchors[i]
        out[p + "image_size"] = torch.tensor(image)
        out[p + "feature_sizes"] = torch.tensor(fsizes)
        out[p + "anchors"] = anchors[0]


def _matcher(g, out):
    # IoU between ground truth and anchors, with duplicated anchors so that a ground
    # truth's best IoU is attained by several anchors (ties for the low-quality rule),
    # and a duplicated ground truth (ties in the per-anchor max: first index wins).
    gt = _random_boxes(g, 7)
    gt[6] = gt[2]
    anchors = _random_boxes(g, 300)
    anchors[100:110] = anchors[:10]
    iou = box_iou(gt, anchors)
    best = iou.argmax(dim=1)
    anchors[200:207] = anchors[best]  # every gt's best anchor appears twice
    iou = box_iou(gt, anchors)
    # Hand-placed values on the thresholds (in float32, as the matcher compares).
    hand = torch.tensor(
        [
            [0.7, 0.3, 0.2999, 0.5, 0.1, 0.1],
            [0.1, 0.69, 0.3, 0.4, 0.4, 0.05],
            [0.1, 0.1, 0.1, 0.5, 0.4, 0.05],
        ]
    )
    for mname, matrix in (("iou", iou), ("hand", hand)):
        out[f"matcher.{mname}.matrix"] = matrix
        for cname, hi, lo, allow in (
            ("rpn", 0.7, 0.3, True),
            ("rpn_strict", 0.7, 0.3, False),
            ("roi", 0.5, 0.5, False),
            ("retina", 0.5, 0.4, True),
        ):
            p = f"matcher.{mname}.{cname}."
            out[p + "params"] = torch.tensor([hi, lo, float(allow)], dtype=torch.float64)
            out[p + "matches"] = Matcher(hi, lo, allow_low_quality_matches=allow)(matrix)


def _sampler(g, out):
    cases = [
        # name, batch, fraction, label tensors per image, seed
        ("rpn", 256, 0.5, [(3000, 0.02), (2500, 0.1)], torch.float32, 1234),
        ("roi", 512, 0.25, [(2000, 0.3), (700, 0.01)], torch.int64, 99),
        # Fewer negatives than wanted and fewer positives than wanted.
        ("few", 64, 0.5, [(40, 0.2), (10, 0.9)], torch.int64, 7),
        # An image with no candidates at all (all ignored) and an empty image.
        ("empty", 16, 0.5, [(30, 0.0), (0, 0.0)], torch.int64, 3),
    ]
    for name, batch, frac, images, dtype, seed in cases:
        labels = []
        for n, pos_rate in images:
            u = torch.rand(n, generator=g)
            lab = torch.zeros(n, dtype=torch.int64)
            lab[u < 0.3] = -1  # ignored
            lab[(u >= 0.3) & (u < 0.35)] = -2  # between thresholds
            is_pos = torch.rand(n, generator=g) < pos_rate
            lab[is_pos] = torch.randint(1, 5, (int(is_pos.sum()),), generator=g)
            if name == "empty":
                lab[:] = -1
            labels.append(lab.to(dtype))
        torch.manual_seed(seed)
        pos, neg = BalancedPositiveNegativeSampler(batch, frac)(labels)
        p = f"sampler.{name}."
        out[p + "params"] = torch.tensor([batch, frac], dtype=torch.float64)
        out[p + "seed"] = torch.tensor(seed)
        out[p + "num_images"] = torch.tensor(len(labels))
        for i, (lab, pm, nm) in enumerate(zip(labels, pos, neg)):
            out[p + f"labels{i}"] = lab
            out[p + f"pos{i}"] = pm
            out[p + f"neg{i}"] = nm


def write(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    g = torch.Generator().manual_seed(20261121)
    out = {}
    _box_ops(g, out)
    _box_coder(g, out)
    _anchors(out)
    _matcher(g, out)
    _sampler(g, out)
    for k, v in out.items():
        assert isinstance(v, torch.Tensor), k
        out[k] = v.clone().contiguous()  # own storage each: no views sharing one buffer
    torch.save(out, os.path.join(out_dir, "boxes.pt"))
    return out


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "build/fixtures")
