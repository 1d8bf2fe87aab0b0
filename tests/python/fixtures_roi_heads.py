"""Oracle fixtures for the C++ Faster R-CNN box head (src/psearch/modeling/two_stage/roi_box_head.h),
computed with torchvision.models.detection.roi_heads (torchvision 0.26).

write(out_dir) saves out_dir/roi_heads.pt, a flat dict {name: tensor} read by
tests/cpp/roi_box_head_test.cpp:
  options: fg_iou_thresh, bg_iou_thresh (0.5 / 0.4 so that some proposals are ignored),
    batch_size_per_image, positive_fraction, score_thresh, nms_thresh, detections_per_img;
  sample cases <case>. ("sampled", "one_empty", "no_gt"): proposals.<i>, gt.<i>, seed (set with
    torch.manual_seed right before select_training_samples; the C++ sampler draws the same
    randperm stream), out.proposals.<i>, out.matched_idxs.<i>, out.labels.<i>,
    out.regression_targets.<i>, and fastrcnn_loss on random logits: class_logits,
    box_regression, loss_classifier, loss_box_reg;
  post.: class_logits, box_regression, proposals.<i>, image_sizes, and per detections_per_img
    setting <k> ("all": 1000, more than survive; "top5": 5): detections_per_img, boxes.<i>,
    scores.<i>, labels.<i>;
  head.: features (C4-like [2, 64, 20, 30] for a 320x480 batch), proposals.<i>, image_sizes,
    state.* (a small conv "conv5 head" head.0 + FastRCNNPredictor cls_score / bbox_pred),
    pooled, box_features, class_logits, box_regression.

Run directly with: python tests/python/fixtures_roi_heads.py <out_dir>
"""

import os
import sys

import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import MultiScaleRoIAlign

FG, BG, BATCH, POS_FRAC, SCORE, NMS = 0.5, 0.4, 32, 0.25, 0.05, 0.5
IMAGE_SIZES = [(320, 480), (301, 417)]
GT = [
    [[50.0, 40.0, 110.0, 200.0], [200.0, 100.0, 260.0, 300.0], [300.0, 20.0, 380.0, 180.0]],
    [[10.0, 10.0, 70.0, 150.0], [250.0, 120.0, 330.0, 290.0]],
]


def _roi_heads(dets=100):
    return RoIHeads(None, None, None, FG, BG, BATCH, POS_FRAC, None, SCORE, NMS, dets)


def _proposals(gen, gt, size, n_jitter=40, n_random=60):
    """Jittered copies of the gt boxes (positives and ignored ones) plus random boxes."""
    h, w = size
    out = []
    g = torch.tensor(gt).reshape(-1, 4)
    if len(g):
        idx = torch.randint(len(g), (n_jitter,), generator=gen)
        wh = (g[idx, 2:] - g[idx, :2]).repeat(1, 2)
        out.append(g[idx] + torch.randn(n_jitter, 4, generator=gen) * 0.25 * wh)
    xy = torch.rand(n_random, 2, generator=gen) * torch.tensor([w * 0.8, h * 0.8])
    bwh = 8 + torch.rand(n_random, 2, generator=gen) * torch.tensor([w * 0.3, h * 0.5])
    out.append(torch.cat([xy, xy + bwh], 1))
    p = torch.cat(out)
    p[:, 0::2] = p[:, 0::2].clamp(0, w)
    p[:, 1::2] = p[:, 1::2].clamp(0, h)
    return p


def _sample_case(name, gts, seed, gen, out):
    heads = _roi_heads()
    proposals = [_proposals(gen, g, s) for g, s in zip(gts, IMAGE_SIZES)]
    targets = [{"boxes": torch.tensor(g, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.ones(len(g), dtype=torch.int64)} for g in gts]
    for i, (p, t) in enumerate(zip(proposals, targets)):
        out[f"{name}.proposals.{i}"] = p.clone()
        out[f"{name}.gt.{i}"] = t["boxes"]
    out[f"{name}.seed"] = torch.tensor(seed)
    torch.manual_seed(seed)
    props, matched, labels, targets_reg = heads.select_training_samples([p.clone() for p in proposals], targets)
    for i in range(len(props)):
        out[f"{name}.out.proposals.{i}"] = props[i]
        out[f"{name}.out.matched_idxs.{i}"] = matched[i]
        out[f"{name}.out.labels.{i}"] = labels[i]
        out[f"{name}.out.regression_targets.{i}"] = targets_reg[i]
    s = sum(len(p) for p in props)
    logits = torch.randn(s, 2, generator=gen)
    box_reg = torch.randn(s, 8, generator=gen) * 0.5
    cls, box = fastrcnn_loss(logits, box_reg, labels, targets_reg)
    out[f"{name}.class_logits"] = logits
    out[f"{name}.box_regression"] = box_reg
    out[f"{name}.loss_classifier"] = cls
    out[f"{name}.loss_box_reg"] = box


def _post_case(gen, out):
    proposals = [_proposals(gen, g, s, 60, 140) for g, s in zip(GT, IMAGE_SIZES)]
    n = sum(len(p) for p in proposals)
    logits = torch.randn(n, 2, generator=gen) * 2
    box_reg = torch.randn(n, 8, generator=gen) * 0.5
    out["post.class_logits"] = logits
    out["post.box_regression"] = box_reg
    out["post.image_sizes"] = torch.tensor(IMAGE_SIZES)
    for i, p in enumerate(proposals):
        out[f"post.proposals.{i}"] = p
    for key, dets in (("all", 1000), ("top5", 5)):
        out[f"post.{key}.detections_per_img"] = torch.tensor(dets)
        boxes, scores, labels = _roi_heads(dets).postprocess_detections(logits, box_reg, proposals, IMAGE_SIZES)
        for i in range(len(boxes)):
            out[f"post.{key}.boxes.{i}"] = boxes[i]
            out[f"post.{key}.scores.{i}"] = scores[i]
            out[f"post.{key}.labels.{i}"] = labels[i]


def _head_case(gen, out):
    features = torch.randn(2, 64, 20, 30, generator=gen)
    proposals = [_proposals(gen, g, s, 10, 20) for g, s in zip(GT, IMAGE_SIZES)]
    pool = MultiScaleRoIAlign(["0"], 14, 0)
    head = nn.Sequential(nn.Conv2d(64, 96, 3, stride=2, padding=1), nn.ReLU())
    predictor = FastRCNNPredictor(96, 2)
    with torch.no_grad():
        for p in list(head.parameters()) + list(predictor.parameters()):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        pooled = pool({"0": features}, proposals, IMAGE_SIZES)
        x = head(pooled).mean((2, 3))
        cls, box = predictor(x)
    out["head.features"] = features
    out["head.image_sizes"] = torch.tensor(IMAGE_SIZES)
    for i, p in enumerate(proposals):
        out[f"head.proposals.{i}"] = p
    for k, v in head.state_dict().items():
        out[f"head.state.head.{k}"] = v
    for k, v in predictor.state_dict().items():
        out[f"head.state.{k}"] = v
    out["head.pooled"] = pooled
    out["head.box_features"] = x
    out["head.class_logits"] = cls
    out["head.box_regression"] = box


def write(out_dir):
    gen = torch.Generator().manual_seed(77)
    out = {
        "fg_iou_thresh": torch.tensor(FG, dtype=torch.float64),
        "bg_iou_thresh": torch.tensor(BG, dtype=torch.float64),
        "batch_size_per_image": torch.tensor(BATCH),
        "positive_fraction": torch.tensor(POS_FRAC, dtype=torch.float64),
        "score_thresh": torch.tensor(SCORE, dtype=torch.float64),
        "nms_thresh": torch.tensor(NMS, dtype=torch.float64),
    }
    _sample_case("sampled", GT, 123, gen, out)
    _sample_case("one_empty", [GT[0], []], 11, gen, out)
    _sample_case("no_gt", [[], []], 5, gen, out)
    _post_case(gen, out)
    _head_case(gen, out)
    torch.save(out, os.path.join(str(out_dir), "roi_heads.pt"))


if __name__ == "__main__":
    write(sys.argv[1])
