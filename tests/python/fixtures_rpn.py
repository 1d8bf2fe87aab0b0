"""Oracle fixtures for the C++ region proposal network (src/psearch/modeling/two_stage/rpn.h),
computed with torchvision.models.detection.rpn.RegionProposalNetwork (torchvision 0.26).

write(out_dir) saves out_dir/rpn.pt, a flat dict {name: tensor} read by
tests/cpp/rpn_test.cpp. Two networks with random weights (biases randomised too, so that
loading them is tested):
  "c4":  one ResNet-C4-like map [2, 1024, 20, 30] with the NAE anchors (5 sizes x 3 ratios);
  "fpn": two maps [2, 256, 16, 24] and [2, 256, 8, 12], to cover per-map top-n and NMS.
Per network "<net>.": state.* (the state_dict), features.<l>, batch_size (H, W of the padded
batch), image_sizes [B, 2], the options (pre/post NMS top-n, thresholds, ...), anchors,
eval.* (flattened head outputs, decoded proposals, final boxes.<i> and scores.<i>) and
training cases <case>.*: gt.<i>, seed, batch_size_per_image, boxes.<i>, loss_objectness,
loss_rpn_box_reg.

Sampling: the RPN losses average over a random sample of anchors (randperm on the default
CPU generator). The C++ sampler draws the same permutations in the same order, so each case
stores the seed set with torch.manual_seed right before forward; the C++ test calls
at::manual_seed with it and must get the same sample. Case "all" also sets
batch_size_per_image so large that every labelled anchor is taken, which makes its losses
independent of the random stream altogether.

Run directly with: python tests/python/fixtures_rpn.py <out_dir>
"""

import os
import sys

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers

NETS = {
    "c4": dict(
        channels=1024,
        map_sizes=[(20, 30)],
        batch_size=(320, 480),
        image_sizes=[(320, 480), (301, 417)],
        anchor_sizes=[[32.0, 64.0, 128.0, 256.0, 512.0]],
        aspect_ratios=[[0.5, 1.0, 2.0]],
        pre_nms_top_n=dict(training=12000, testing=6000),  # NAE's values (configs/base.yaml)
        post_nms_top_n=dict(training=2000, testing=300),
        gt=[
            [[50.0, 40.0, 110.0, 200.0], [200.0, 100.0, 260.0, 300.0], [300.0, 20.0, 380.0, 180.0]],
            [[10.0, 10.0, 70.0, 150.0], [250.0, 120.0, 330.0, 290.0]],
        ],
    ),
    "fpn": dict(
        channels=256,
        map_sizes=[(16, 24), (8, 12)],
        batch_size=(128, 192),
        image_sizes=[(128, 192), (120, 170)],
        anchor_sizes=[[16.0, 32.0], [64.0, 128.0]],
        aspect_ratios=[[0.5, 1.0, 2.0], [0.5, 1.0, 2.0]],
        pre_nms_top_n=dict(training=600, testing=300),  # small, so the per-map top-n matters
        post_nms_top_n=dict(training=400, testing=200),
        gt=[
            [[20.0, 10.0, 50.0, 90.0], [100.0, 30.0, 140.0, 120.0]],
            [[60.0, 20.0, 90.0, 100.0]],
        ],
    ),
}
FG_IOU, BG_IOU, BATCH_PER_IMAGE, POSITIVE_FRACTION, NMS, SCORE = 0.7, 0.3, 256, 0.5, 0.7, 0.0


def _build(spec, gen):
    anchors = AnchorGenerator(tuple(map(tuple, spec["anchor_sizes"])), tuple(map(tuple, spec["aspect_ratios"])))
    head = RPNHead(spec["channels"], anchors.num_anchors_per_location()[0])
    with torch.no_grad():
        for name, p in head.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:  # wider than torchvision's N(0, 0.01) so that boxes move off their anchors
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return RegionProposalNetwork(anchors, head, FG_IOU, BG_IOU, BATCH_PER_IMAGE, POSITIVE_FRACTION,
                                 spec["pre_nms_top_n"], spec["post_nms_top_n"], NMS, score_thresh=SCORE)


def _inputs(spec, gen):
    b = len(spec["image_sizes"])
    features = {str(l): torch.randn(b, spec["channels"], h, w, generator=gen) for l, (h, w) in enumerate(spec["map_sizes"])}
    images = ImageList(torch.zeros(b, 3, *spec["batch_size"]), [tuple(s) for s in spec["image_sizes"]])
    return images, features


def _eval_case(rpn, images, features, prefix, out):
    """Runs forward in eval mode and, step by step, torchvision's own internals, so that the
    C++ side can compare each step (head outputs, decoding, filtering) separately."""
    rpn.eval()
    with torch.no_grad():
        boxes = rpn(images, features)[0]
        feats = list(features.values())
        logits, deltas = rpn.head(feats)
        anchors = rpn.anchor_generator(images, feats)
        per_map = [o[0].numel() for o in logits]
        objectness, flat_deltas = concat_box_prediction_layers(logits, deltas)
        b = len(anchors)
        proposals = rpn.box_coder.decode(flat_deltas, anchors).view(b, -1, 4)
        f_boxes, f_scores = rpn.filter_proposals(proposals, objectness, images.image_sizes, per_map)
    for i in range(b):
        assert torch.equal(boxes[i], f_boxes[i])
        out[f"{prefix}.eval.boxes.{i}"] = boxes[i]
        out[f"{prefix}.eval.scores.{i}"] = f_scores[i]
    out[f"{prefix}.anchors"] = anchors[0]
    out[f"{prefix}.eval.objectness"] = objectness.view(b, -1)
    out[f"{prefix}.eval.deltas"] = flat_deltas.view(b, -1, 4)
    out[f"{prefix}.eval.proposals"] = proposals


def _train_case(rpn, images, features, gt, seed, batch_per_image, prefix, out):
    rpn.train()
    rpn.fg_bg_sampler.batch_size_per_image = batch_per_image
    targets = [{"boxes": torch.tensor(g, dtype=torch.float32).reshape(-1, 4)} for g in gt]
    torch.manual_seed(seed)  # the sampler's randperm calls follow; C++ seeds the same way
    boxes, losses = rpn(images, features, targets)
    rpn.fg_bg_sampler.batch_size_per_image = BATCH_PER_IMAGE
    for i, t in enumerate(targets):
        out[f"{prefix}.gt.{i}"] = t["boxes"]
        out[f"{prefix}.boxes.{i}"] = boxes[i].detach()
    out[f"{prefix}.seed"] = torch.tensor(seed)
    out[f"{prefix}.batch_size_per_image"] = torch.tensor(batch_per_image)
    for k, v in losses.items():
        out[f"{prefix}.{k}"] = v.detach()


def _network(name, spec, gen, out):
    torch.manual_seed(0)
    rpn = _build(spec, gen)
    images, features = _inputs(spec, gen)
    for k, v in rpn.state_dict().items():
        out[f"{name}.state.{k}"] = v
    for l, f in enumerate(features.values()):
        out[f"{name}.features.{l}"] = f
    out[f"{name}.batch_size"] = torch.tensor(spec["batch_size"])
    out[f"{name}.image_sizes"] = torch.tensor(spec["image_sizes"])
    out[f"{name}.anchor_sizes"] = torch.tensor(spec["anchor_sizes"], dtype=torch.float64)
    out[f"{name}.aspect_ratios"] = torch.tensor(spec["aspect_ratios"], dtype=torch.float64)
    for phase, key in (("training", "train"), ("testing", "test")):
        out[f"{name}.pre_nms_top_n_{key}"] = torch.tensor(spec["pre_nms_top_n"][phase])
        out[f"{name}.post_nms_top_n_{key}"] = torch.tensor(spec["post_nms_top_n"][phase])

    _eval_case(rpn, images, features, name, out)
    gt, no_gt = spec["gt"], [[] for _ in spec["gt"]]
    _train_case(rpn, images, features, gt, 123, BATCH_PER_IMAGE, f"{name}.sampled", out)
    _train_case(rpn, images, features, gt, 7, 10**9, f"{name}.all", out)
    _train_case(rpn, images, features, [gt[0]] + no_gt[1:], 11, BATCH_PER_IMAGE, f"{name}.one_empty", out)
    _train_case(rpn, images, features, no_gt, 5, BATCH_PER_IMAGE, f"{name}.no_gt", out)


def write(out_dir):
    gen = torch.Generator().manual_seed(2024)
    out = {
        "fg_iou_thresh": torch.tensor(FG_IOU, dtype=torch.float64),
        "bg_iou_thresh": torch.tensor(BG_IOU, dtype=torch.float64),
        "batch_size_per_image": torch.tensor(BATCH_PER_IMAGE),
        "positive_fraction": torch.tensor(POSITIVE_FRACTION, dtype=torch.float64),
        "nms_thresh": torch.tensor(NMS, dtype=torch.float64),
        "score_thresh": torch.tensor(SCORE, dtype=torch.float64),
    }
    for name, spec in NETS.items():
        _network(name, spec, gen, out)
    torch.save(out, os.path.join(str(out_dir), "rpn.pt"))


if __name__ == "__main__":
    write(sys.argv[1])
