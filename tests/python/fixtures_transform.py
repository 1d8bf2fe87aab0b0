"""Oracle fixtures for the C++ detector input transform
(src/psearch/modeling/input/image_transform.h), computed with torchvision 0.26's
torchvision.models.detection.transform.GeneralizedRCNNTransform in evaluation mode.

write(out_dir) saves out_dir/transform.pt, a flat dict {name: tensor} read by
tests/cpp/image_transform_test.cpp. Per case "<case>.": min_size, max_size, mean, std,
size_divisible, image.<i> (RGB in [0, 1], [3, H_i, W_i]), boxes.<i> ([K_i, 4] in the input
image), and torchvision's outputs: batch (the padded batch), image_sizes [B, 2],
original_sizes [B, 2], resized_boxes.<i>, detections.<i> (random boxes in the resized
image) and postprocessed.<i> (those mapped back by postprocess).

Cases:
  "small": min 120 / max 200 on four images: an upscale, one where max_size clamps the
           scale, one whose exact scale puts side * scale just below an integer (55 * (120 / 55)
           floors to 119, as F.interpolate's recompute_scale_factor does), a downscale;
  "nae":   NAE's 900 / 1500 (Sec. 4.2) on one image, where 95 * (900 / 95) floors to 899;
           padded to 1248 x 928.

Run directly with: python tests/python/fixtures_transform.py <out_dir>
"""

import os
import sys

import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

CASES = {
    "small": dict(min_size=120, max_size=200, sizes=[(90, 130), (150, 70), (61, 55), (400, 250)]),
    "nae": dict(min_size=900, max_size=1500, sizes=[(130, 95)]),
}


def _boxes(h, w, k, gen):
    x = torch.rand(k, 2, generator=gen) * w
    y = torch.rand(k, 2, generator=gen) * h
    return torch.stack([x.min(1).values, y.min(1).values, x.max(1).values, y.max(1).values], 1)


def _case(name, spec, gen, out):
    t = GeneralizedRCNNTransform(spec["min_size"], spec["max_size"], MEAN, STD, size_divisible=32)
    t.eval()
    images = [torch.rand(3, h, w, generator=gen) for h, w in spec["sizes"]]
    boxes = [_boxes(h, w, 3 + i, gen) for i, (h, w) in enumerate(spec["sizes"])]
    targets = [{"boxes": b.clone()} for b in boxes]
    with torch.no_grad():
        image_list, targets_out = t(images, targets)
    detections = [_boxes(h, w, 4, gen) for h, w in image_list.image_sizes]
    post = t.postprocess([{"boxes": d.clone()} for d in detections], image_list.image_sizes,
                         [tuple(img.shape[-2:]) for img in images])

    p = f"{name}."
    out[p + "min_size"] = torch.tensor(spec["min_size"])
    out[p + "max_size"] = torch.tensor(spec["max_size"])
    out[p + "mean"] = torch.tensor(MEAN, dtype=torch.float64)
    out[p + "std"] = torch.tensor(STD, dtype=torch.float64)
    out[p + "size_divisible"] = torch.tensor(32)
    out[p + "batch"] = image_list.tensors
    out[p + "image_sizes"] = torch.tensor([list(s) for s in image_list.image_sizes])
    out[p + "original_sizes"] = torch.tensor([list(img.shape[-2:]) for img in images])
    for i in range(len(images)):
        out[f"{p}image.{i}"] = images[i]
        out[f"{p}boxes.{i}"] = boxes[i]
        out[f"{p}resized_boxes.{i}"] = targets_out[i]["boxes"]
        out[f"{p}detections.{i}"] = detections[i]
        out[f"{p}postprocessed.{i}"] = post[i]["boxes"]


def write(out_dir):
    gen = torch.Generator().manual_seed(77)
    out = {}
    for name, spec in CASES.items():
        _case(name, spec, gen, out)
    torch.save(out, os.path.join(str(out_dir), "transform.pt"))


if __name__ == "__main__":
    write(sys.argv[1])
