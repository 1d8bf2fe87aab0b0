#!/usr/bin/env python3
"""ONNX from a `psearch export` TorchScript file (docs/export.md).

    python scripts/export_onnx.py MODEL.pt OUT.onnx [--check FRAME.jpg]

The TorchScript file already holds the whole traced model; this script hands its graph to
PyTorch's TorchScript-based ONNX exporter (opset 19) and tells it how psearch's own operators
map onto ONNX:
  psearch::nms          -> NonMaxSuppression (one class; column 2 of its output)
  psearch::batched_nms  -> NonMaxSuppression on boxes shifted apart per class, the same
                           trick psearch's batched_nms uses, so classes never suppress each other
  psearch::roi_align    -> RoiAlign (opset 16+: half_pixel for aligned=True)
  psearch::deform_conv2d-> DeformConv (opset 19; onnxruntime 1.32's CPU kernel runs it)
Two graphs are written: OUT.onnx (forward: image -> boxes, scores, features) and
OUT.embed.onnx (embed: image, boxes -> features). With --check, both run in onnxruntime on
the frame (resized to the exported size) and are compared with the TorchScript file; the
largest differences are printed.
"""
import argparse
import json
import os
import pathlib
import sys
import warnings

import torch
from torch.onnx import symbolic_helper

OPSET = 19
REPO = pathlib.Path(__file__).resolve().parents[1]


def load_ops_library():
    path = pathlib.Path(os.environ.get("PSEARCH_OPS_LIB", REPO / "build" / "src" / "libpsearch_ops.so"))
    if not path.is_file():
        sys.exit(f"export_onnx: {path}: psearch operator library not found (build psearch or set PSEARCH_OPS_LIB)")
    torch.ops.load_library(str(path))


def _selected(g, boxes, scores, iou_threshold):
    """Indices kept by ONNX NonMaxSuppression for one class, best score first ([K] int64)."""
    max_out = g.op("Constant", value_t=torch.tensor([sys.maxsize], dtype=torch.long))
    iou = g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float))
    batched_boxes = symbolic_helper._unsqueeze_helper(g, boxes, [0])
    batched_scores = symbolic_helper._unsqueeze_helper(g, symbolic_helper._unsqueeze_helper(g, scores, [0]), [0])
    selected = g.op("NonMaxSuppression", batched_boxes, batched_scores, max_out, iou)
    column = g.op("Gather", selected, g.op("Constant", value_t=torch.tensor([2], dtype=torch.long)), axis_i=1)
    return symbolic_helper._squeeze_helper(g, column, [1])


@symbolic_helper.parse_args("v", "v", "f")
def nms(g, boxes, scores, iou_threshold):
    return _selected(g, boxes, scores, iou_threshold)


@symbolic_helper.parse_args("v", "v", "v", "f")
def batched_nms(g, boxes, scores, classes, iou_threshold):
    # Shift each class's boxes by class * (largest coordinate + 1), then one plain NMS.
    largest = g.op("ReduceMax", boxes, keepdims_i=0)
    one = g.op("Constant", value_t=torch.tensor(1.0, dtype=torch.float))
    step = g.op("Add", g.op("Cast", largest, to_i=1), one)
    shift = g.op("Mul", g.op("Cast", classes, to_i=1), step)
    shifted = g.op("Add", g.op("Cast", boxes, to_i=1), symbolic_helper._unsqueeze_helper(g, shift, [1]))
    return _selected(g, shifted, g.op("Cast", scores, to_i=1), iou_threshold)


@symbolic_helper.parse_args("v", "v", "f", "i", "i", "i", "i")
def roi_align(g, features, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    index = g.op("Constant", value_t=torch.tensor([0], dtype=torch.long))
    batch = g.op("Cast", symbolic_helper._squeeze_helper(g, g.op("Gather", rois, index, axis_i=1), [1]), to_i=7)
    coords = g.op("Gather", rois, g.op("Constant", value_t=torch.tensor([1, 2, 3, 4], dtype=torch.long)), axis_i=1)
    return g.op("RoiAlign", features, coords, batch, spatial_scale_f=spatial_scale, output_height_i=pooled_height,
                output_width_i=pooled_width, sampling_ratio_i=max(0, sampling_ratio), mode_s="avg",
                coordinate_transformation_mode_s="half_pixel" if aligned else "output_half_pixel")


@symbolic_helper.parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b")
def deform_conv2d(g, x, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                  offset_groups, use_mask):
    inputs = [x, weight, offset, bias] + ([mask] if use_mask else [])
    return g.op("DeformConv", *inputs, strides_i=[stride_h, stride_w], pads_i=[pad_h, pad_w, pad_h, pad_w],
                dilations_i=[dil_h, dil_w], group_i=groups, offset_group_i=offset_groups)


def register_symbolics():
    for name, fn in [("nms", nms), ("batched_nms", batched_nms), ("roi_align", roi_align),
                     ("deform_conv2d", deform_conv2d)]:
        torch.onnx.register_custom_op_symbolic(f"psearch::{name}", fn, OPSET)


class Embed(torch.nn.Module):
    """The file's embed method as a module's forward (scripted, so the exporter reads it)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.module.embed(image, boxes)


def export(module, args, path, input_names, output_names, dynamic_axes):
    # The TorchScript-based exporter is the one that takes a ScriptModule; its deprecation
    # and tracer warnings say nothing about this model.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET, input_names=input_names,
                      output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)


def read_frame(path, size):
    import cv2
    import numpy as np
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"export_onnx: {path}: not an image OpenCV can read")
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float().div(255.0)
    return torch.nn.functional.interpolate(rgb[None], size=size, mode="bilinear", align_corners=False)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=pathlib.Path, help="file written by psearch export")
    parser.add_argument("out", type=pathlib.Path, help="ONNX file to write (and OUT.embed.onnx)")
    parser.add_argument("--check", type=pathlib.Path, help="frame to compare onnxruntime with TorchScript on")
    args = parser.parse_args()
    load_ops_library()
    register_symbolics()
    extra = {"psearch.json": ""}
    try:
        module = torch.jit.load(str(args.model), _extra_files=extra).eval()
        info = json.loads(extra["psearch.json"])
    except Exception as e:  # torch's messages run over many lines
        sys.exit(f"export_onnx: {args.model}: not a psearch export file ({str(e).splitlines()[0]})")
    height, width = info["input_size"]
    image = read_frame(args.check, (height, width)) if args.check else torch.rand(3, height, width)
    with torch.no_grad():
        boxes = module(image)[0]
    query = boxes[:1] if boxes.shape[0] else torch.tensor([[width * 0.4, height * 0.25, width * 0.6, height * 0.75]])
    embed_path = args.out.with_suffix(".embed.onnx")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(module, (image,), args.out, ["image"], ["boxes", "scores", "features"],
           {"boxes": {0: "detections"}, "scores": {0: "detections"}, "features": {0: "detections"}})
    export(torch.jit.script(Embed(module)), (image, query), embed_path, ["image", "boxes"], ["features"],
           {"boxes": {0: "queries"}, "features": {0: "queries"}})
    print(f"wrote {args.out} and {embed_path} ({info['model_type']}, {height}x{width}, opset {OPSET})")
    if args.check:
        check(module, args.out, embed_path, image, query)


def check(module, path, embed_path, image, query):
    import onnxruntime
    with torch.no_grad():
        want = module(image)
        want_query = module.embed(image, query)
    got = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"image": image.numpy()})
    got_query = onnxruntime.InferenceSession(str(embed_path), providers=["CPUExecutionProvider"]).run(
        None, {"image": image.numpy(), "boxes": query.numpy()})[0]
    # Detections are paired by box (largest coordinate difference below 0.01 pixel), not by
    # rank: near-equal scores (an untrained model has many) may be ordered differently by
    # another library's sigmoid and NMS.
    got_boxes, got_scores, got_features = (torch.from_numpy(g) for g in got)
    want_boxes, want_scores, want_features = want
    pairs = []
    if got_boxes.shape[0] and want_boxes.shape[0]:
        distance = (got_boxes[:, None, :] - want_boxes[None, :, :]).abs().amax(2)
        best, index = distance.min(1)
        pairs = [(i, int(index[i])) for i in range(got_boxes.shape[0]) if best[i] < 0.01]
    g_idx = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    w_idx = torch.tensor([p[1] for p in pairs], dtype=torch.long)

    def worst(a, b):
        return float((a - b).abs().max()) if a.numel() else 0.0

    diffs = [worst(got_boxes[g_idx], want_boxes[w_idx]), worst(got_scores[g_idx], want_scores[w_idx]),
             worst(got_features[g_idx], want_features[w_idx]), worst(torch.from_numpy(got_query), want_query)]
    print(f"onnxruntime vs TorchScript: {got_boxes.shape[0]} vs {want_boxes.shape[0]} detections, {len(pairs)} "
          f"paired; max |difference| boxes {diffs[0]:.2e}, scores {diffs[1]:.2e}, features {diffs[2]:.2e}, "
          f"query features {diffs[3]:.2e}")


if __name__ == "__main__":
    main()
