"""Oracle fixtures for the C++ RetinaNet (src/psearch/modeling/one_stage/retinanet.h),
computed with torchvision 0.26's retinanet_resnet50_fpn.

write(out_dir) saves
  out_dir/retinanet_resnet50_fpn.pth  the model's state_dict, as a user's file would be
                                      (random weights, BN statistics and biases randomised)
  out_dir/retinanet.pt                a flat dict read by tests/cpp/retinanet_test.cpp:
    image.<i>                  the input images [3, H_i, W_i] in [0, 1]
    min_size, max_size, num_classes
    features.<l>               the FPN outputs P3 .. P7 of the transformed batch
    cls_logits, bbox_regression  the flattened head outputs [B, T, K] / [B, T, 4]
    anchors                    the anchors of one image [T, 4]
    det.<i>.boxes/scores/labels  torchvision's detections in the input image's pixels
    train.gt.<i>.boxes/labels, train.loss_cls, train.loss_box_reg  losses in training mode
                               (BatchNorm kept in eval mode, as our frozen BN computes)

Weights: torchvision's initialisation except that the class logits' weights are scaled so
that logits vary by about 1 across locations, their biases are N(-2, 0.5) (instead of the
prior -4.6) and the box predictor's weights are scaled to deltas of about 0.2, so that scores vary across locations, thousands of
anchors pass the 0.05 score threshold and boxes move off their anchors (the top-k,
decoding and NMS are then all exercised).
"""

import sys

import torch
from torchvision.models.detection import retinanet_resnet50_fpn

MIN_SIZE, MAX_SIZE, NUM_CLASSES = 160, 256, 91
IMAGE_SIZES = [(150, 200), (130, 170)]
GT = [
    ([[20.0, 30.0, 60.0, 140.0], [100.0, 20.0, 150.0, 120.0]], [1, 1]),
    ([[10.0, 10.0, 90.0, 120.0]], [3]),
]


def _randomise(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        for name, p in model.named_parameters():
            if name.startswith("backbone.fpn") and name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        head = model.head
        # Class logits that vary across locations by about 1 (torchvision's N(0, 0.01) makes
        # them the bias everywhere, and the top-k a choice among float32 ties): the weights
        # are rescaled on a probe run of the same images.
        probe = [torch.rand(3, h, w, generator=torch.Generator().manual_seed(1)) for h, w in IMAGE_SIZES]
        model.eval()
        batch, _ = model.transform(probe)
        features = list(model.backbone(batch.tensors).values())
        spread = model.head.classification_head(features)[0].std(0).mean()
        head.classification_head.cls_logits.weight.mul_(1.0 / float(spread))
        head.classification_head.cls_logits.bias.copy_(
            torch.randn(head.classification_head.cls_logits.bias.shape, generator=gen) * 0.5 - 2.0)
        # Box deltas of about 0.2: boxes move off their anchors but mostly stay in the image.
        spread = model.head.regression_head(features)[0].std()
        head.regression_head.bbox_reg.weight.mul_(0.2 / float(spread))


def write(out):
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=NUM_CLASSES,
                                   min_size=MIN_SIZE, max_size=MAX_SIZE)
    _randomise(model, gen)
    model.eval()
    torch.save(model.state_dict(), out / "retinanet_resnet50_fpn.pth")

    images = [torch.rand(3, h, w, generator=gen) for h, w in IMAGE_SIZES]
    fx = {"min_size": torch.tensor(MIN_SIZE), "max_size": torch.tensor(MAX_SIZE),
          "num_classes": torch.tensor(NUM_CLASSES)}
    for i, im in enumerate(images):
        fx[f"image.{i}"] = im
    with torch.no_grad():
        dets = model(images)
        batch, _ = model.transform(images)
        feats = list(model.backbone(batch.tensors).values())
        head = model.head(feats)
        anchors = model.anchor_generator(batch, feats)
    for l, f in enumerate(feats):
        fx[f"features.{l}"] = f
    fx["cls_logits"] = head["cls_logits"]
    fx["bbox_regression"] = head["bbox_regression"]
    fx["anchors"] = anchors[0]
    for i, d in enumerate(dets):
        for k in ("boxes", "scores", "labels"):
            fx[f"det.{i}.{k}"] = d[k]

    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    targets = []
    for i, (boxes, labels) in enumerate(GT):
        t = {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels, dtype=torch.int64)}
        targets.append(t)
        fx[f"train.gt.{i}.boxes"] = t["boxes"]
        fx[f"train.gt.{i}.labels"] = t["labels"]
    losses = model(images, targets)
    fx["train.loss_cls"] = losses["classification"].detach()
    fx["train.loss_box_reg"] = losses["bbox_regression"].detach()
    torch.save(fx, out / "retinanet.pt")


if __name__ == "__main__":
    import pathlib
    write(pathlib.Path(sys.argv[1]))
