"""A checkpoint in the official NAE4PS layout (github.com/DeanChan/NAE4PS: key names of
lib/model/faster_rcnn_norm_aware.py and resnet_backbone.py, file layout of
lib/utils/serialization.py), with random values. The trunk is torchvision's ResNet-18 instead
of ResNet-50 to keep the file small; the key names are the same. The official code itself
(Python 2.7, PyTorch 1.2) cannot run here, so the names and shapes are written from its
module structure (see docs/checkpoints.md)."""
import collections
import pathlib

import torch
import torchvision

NUM_PIDS, QUEUE, DIM = 7, 50, 256


def _bn(prefix, n, sd, gen):
    sd[prefix + "weight"] = torch.rand(n, generator=gen) + 0.5
    sd[prefix + "bias"] = torch.randn(n, generator=gen) * 0.1
    sd[prefix + "running_mean"] = torch.randn(n, generator=gen) * 0.1
    sd[prefix + "running_var"] = torch.rand(n, generator=gen) + 0.5
    sd[prefix + "num_batches_tracked"] = torch.tensor(1000)


def official_state_dict():
    gen = torch.Generator().manual_seed(11)
    resnet = torchvision.models.resnet18(weights=None).state_dict()
    sd = collections.OrderedDict()
    for key, value in resnet.items():
        value = torch.randn(value.shape, generator=gen) * 0.05 if value.is_floating_point() else value
        if key.startswith("fc."):
            continue
        if key.startswith("layer4."):
            sd["roi_heads.box_head." + key] = value
        else:
            sd["backbone." + key] = value
    c4, c5, anchors = 256, 512, 15
    sd["rpn.head.conv.weight"] = torch.randn(c4, c4, 3, 3, generator=gen) * 0.01
    sd["rpn.head.conv.bias"] = torch.randn(c4, generator=gen) * 0.01
    sd["rpn.head.cls_logits.weight"] = torch.randn(anchors, c4, 1, 1, generator=gen) * 0.01
    sd["rpn.head.cls_logits.bias"] = torch.randn(anchors, generator=gen) * 0.01
    sd["rpn.head.bbox_pred.weight"] = torch.randn(4 * anchors, c4, 1, 1, generator=gen) * 0.01
    sd["rpn.head.bbox_pred.bias"] = torch.randn(4 * anchors, generator=gen) * 0.01
    p = "roi_heads.box_predictor."
    sd[p + "bbox_pred.0.weight"] = torch.randn(8, c5, generator=gen) * 0.01
    sd[p + "bbox_pred.0.bias"] = torch.randn(8, generator=gen) * 0.01
    _bn(p + "bbox_pred.1.", 8, sd, gen)
    sd[p + "cls_score.weight"] = torch.randn(2, c5, generator=gen)
    sd[p + "cls_score.bias"] = torch.randn(2, generator=gen)
    e = "roi_heads.embedding_head."
    for branch, channels in (("feat_res4", c4), ("feat_res5", c5)):
        sd[e + f"projectors.{branch}.0.weight"] = torch.randn(DIM // 2, channels, generator=gen) * 0.01
        sd[e + f"projectors.{branch}.0.bias"] = torch.randn(DIM // 2, generator=gen) * 0.01
        _bn(e + f"projectors.{branch}.1.", DIM // 2, sd, gen)
    _bn(e + "rescaler.", 1, sd, gen)
    sd["roi_heads.reid_loss.lut"] = torch.nn.functional.normalize(torch.randn(NUM_PIDS, DIM, generator=gen), dim=1)
    sd["roi_heads.reid_loss.cq"] = torch.nn.functional.normalize(torch.randn(QUEUE, DIM, generator=gen), dim=1)
    return sd


def write(out: pathlib.Path) -> None:
    sd = official_state_dict()
    checkpoint = {"epoch": 21, "model": sd,
                  "optimizer": {"state": {}, "param_groups": [{"lr": 0.003, "momentum": 0.9, "params": [0, 1]}]},
                  "lr_scheduler": {"milestones": {16: 1}, "last_epoch": 21}}
    torch.save(checkpoint, out / "nae4ps_checkpoint.pth")
