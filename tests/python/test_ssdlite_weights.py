"""scripts/convert_weights.py's ssdlite_person.pth against the TF graph it came from.

A plain torch SSDLite written from the converted file's names alone (the layout the C++
model uses: backbone.features.* as torchvision's mobilenet_v2, extras.*, box_head.*,
class_head.*, meta.*) must give the raw outputs that ssdlite_reference.py's interpreter of
the frozen graph gives, at the graph's 300x300 and at a larger non-square input. Skipped
when the converted file or the graph package is missing.
"""
import os
import pathlib
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ssdlite_reference as ref  # noqa: E402

WEIGHTS = pathlib.Path(os.environ.get("PSEARCH_WEIGHTS_DIR") or pathlib.Path.home() / ".cache/psearch/weights")
# (expansion, output channels, repeats, first stride) of MobileNetV2's blocks 1 .. 17
SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _same_pad(x, k, s):
    top, bottom = ref.same_padding(x.shape[2], k, s)
    left, right = ref.same_padding(x.shape[3], k, s)
    return F.pad(x, (left, right, top, bottom))


class ConvertedSSD:
    def __init__(self, sd):
        self.sd, self.eps = sd, float(sd["meta.bn_eps"])

    def cbr(self, x, conv, bn, stride=1, depthwise=False, relu=True):
        w = self.sd[conv]
        x = F.conv2d(_same_pad(x, w.shape[2], stride), w, stride=stride, groups=x.shape[1] if depthwise else 1)
        x = F.batch_norm(x, self.sd[bn + ".running_mean"], self.sd[bn + ".running_var"], self.sd[bn + ".weight"],
                         self.sd[bn + ".bias"], False, 0.0, self.eps)
        return x.clamp(0, 6) if relu else x

    def forward(self, x):
        p = "backbone.features."
        x = self.cbr(x, p + "0.0.weight", p + "0.1", stride=2)
        levels, block = [], 1
        for t, _, n, s in SETTING:
            for r in range(n):
                stride, c = (s if r == 0 else 1), f"{p}{block}.conv."
                y = x
                if t != 1:
                    y = self.cbr(y, c + "0.0.weight", c + "0.1")
                    if block == 14:
                        levels.append(y)  # level 0: block 14's expansion (576 channels)
                    c_dw, c_pw, c_bn = c + "1.0.weight", c + "2.weight", c + "3"
                    y = self.cbr(y, c_dw, c + "1.1", stride=stride, depthwise=True)
                else:
                    y = self.cbr(y, c + "0.0.weight", c + "0.1", stride=stride, depthwise=True)
                    c_pw, c_bn = c + "1.weight", c + "2"
                y = self.cbr(y, c_pw, c_bn, relu=False)
                x = x + y if stride == 1 and y.shape == x.shape else y
                block += 1
        x = self.cbr(x, p + "18.0.weight", p + "18.1")
        levels.append(x)
        for k in range(4):
            e = f"extras.{k}."
            x = self.cbr(x, e + "0.0.weight", e + "0.1")
            x = self.cbr(x, e + "1.0.weight", e + "1.1", stride=2, depthwise=True)
            x = self.cbr(x, e + "2.0.weight", e + "2.1")
            levels.append(x)
        boxes, logits = [], []
        for l, f in enumerate(levels):
            for head, out, k in (("box_head", boxes, 4), ("class_head", logits, int(self.sd["meta.num_classes"]))):
                h = self.cbr(f, f"{head}.{l}.0.0.weight", f"{head}.{l}.0.1", depthwise=True)
                h = F.conv2d(h, self.sd[f"{head}.{l}.1.weight"], self.sd[f"{head}.{l}.1.bias"])
                out.append(h.permute(0, 2, 3, 1).reshape(-1, k))  # (y, x, anchor) order
        return torch.cat(boxes), torch.cat(logits)


@pytest.fixture(scope="module")
def converted():
    path = WEIGHTS / "ssdlite_person.pth"
    if not path.is_file():
        pytest.skip(f"{path} not converted (scripts/setup.sh)")
    try:
        graph = ref.load()
    except ref.OracleError as e:
        pytest.skip(str(e))
    return ConvertedSSD(torch.load(path, map_location="cpu", weights_only=True)), graph


@pytest.mark.parametrize("size", [(300, 300), (384, 512)])
def test_converted_weights_reproduce_the_graph(converted, size):
    model, graph = converted
    frame = (torch.rand(250, 340, 3, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)
    _, _, raw = ref.detect(frame, size, graph)
    with torch.no_grad():
        box, logits = model.forward(raw["input"])
    for ours, theirs, what in ((box, raw["box_encodings"], "box encodings"), (logits, raw["class_logits"], "logits")):
        assert ours.shape == theirs.shape, what
        err = (ours - theirs).abs().max().item() / theirs.abs().max().item()
        assert err < 1e-4, f"{what} at {size}: max relative error {err}"


def test_meta_matches_the_graph(converted):
    model, graph = converted
    sd, c = model.sd, ref.postprocess_constants(graph)
    assert sd["meta.box_scales"].tolist() == c["box_scales"]
    assert sd["meta.nms_iou_threshold"].item() == pytest.approx(c["iou_threshold"])
    assert int(sd["meta.max_total_detections"]) == c["max_total"]
    anchors = ref.generate_anchors(graph, [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)], (300, 300))
    assert anchors.shape[0] == sum(n * g * g for n, g in zip(sd["meta.anchors_per_level"].tolist(), (19, 10, 5, 3, 2, 1)))
    for l, (scales, ratios) in enumerate(ref.anchor_parameters(graph)):
        assert sd[f"meta.anchor_scales.{l}"].tolist() == scales.tolist()
        assert sd[f"meta.anchor_aspect_ratios.{l}"].tolist() == ratios.tolist()
