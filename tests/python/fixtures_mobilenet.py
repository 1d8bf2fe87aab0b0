"""Oracle fixtures for the C++ MobileNetV2 (src/psearch/modeling/backbone/mobilenet_v2.h),
computed with torchvision 0.26's mobilenet_v2.

write(out_dir) saves
  out_dir/mobilenet_v2_random.pth  the model's full state_dict (classifier included), as a
                                   user's torchvision file would be: torchvision's random
                                   initialisation with BN statistics and affines randomised
  out_dir/mobilenet_v2.pt          a flat dict read by tests/cpp/mobilenet_v2_test.cpp:
    image                       the input [1, 3, 97, 130] in [0, 1] (odd sizes: the stride-2
                                layers see odd inputs)
    features.<i>                the output of features[i] (eval mode), i in TAPS
    imagenet.features.<i>       the same with the ImageNet weights that
                                scripts/convert_weights.py writes to
                                $PSEARCH_WEIGHTS_DIR/mobilenet_v2_imagenet.pth; only when that
                                file exists (make_fixtures reruns this module when the file's
                                sidecar appears or changes: WEIGHTS below)
    fpn.<l>                     P3 .. P7 (l = 0 .. 4) of torchvision's BackboneWithFPN on the
                                random model's features, tapped after features.6, 13, 18
                                (32, 96, 1280 ch) with LastLevelP6P7(256, 256) (P6 from P5),
                                the trunk PCNet uses with model.backbone.arch mobilenet_v2
  out_dir/mobilenet_v2_fpn.pth     that BackboneWithFPN's state_dict under psearch's names
                                   (body.features.<i>.*, fpn.*; no BN counters)
"""

import os
import pathlib
import sys

import torch
from torchvision.models import mobilenet_v2

TAPS = (3, 6, 13, 17, 18)
IMAGE_SIZE = (97, 130)
WEIGHTS = ["mobilenet_v2_imagenet.pth"]


def weights_dir():
    return pathlib.Path(os.environ.get("PSEARCH_WEIGHTS_DIR") or pathlib.Path.home() / ".cache/psearch/weights")


def _atomic_save(obj, path):
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _randomise_bn(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def _taps(features, image):
    out = {}
    x = image
    with torch.no_grad():
        for i, block in enumerate(features):
            x = block(x)
            if i in TAPS:
                out[f"features.{i}"] = x.clone()
    return out


def write(out):
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    model = mobilenet_v2(weights=None)
    _randomise_bn(model, gen)
    model.eval()
    _atomic_save(model.state_dict(), out / "mobilenet_v2_random.pth")

    image = torch.rand(1, 3, *IMAGE_SIZE, generator=gen)
    fx = {"image": image}
    fx.update(_taps(model.features, image))
    imagenet = weights_dir() / "mobilenet_v2_imagenet.pth"
    if imagenet.is_file():
        real = mobilenet_v2(weights=None).features
        state = torch.load(imagenet, map_location="cpu", weights_only=True)
        result = real.load_state_dict({k[len("features."):]: v for k, v in state.items()}, strict=False)
        if result.unexpected_keys or any(not k.endswith("num_batches_tracked") for k in result.missing_keys):
            raise RuntimeError(f"{imagenet} is not a torchvision mobilenet_v2 features state_dict: {result}")
        real.eval()
        fx.update({f"imagenet.{k}": v for k, v in _taps(real, image).items()})
    else:
        print(f"fixtures_mobilenet: {imagenet} not converted (scripts/setup.sh), imagenet.* fixtures skipped")
    fx.update(_fpn(model, image, out, gen))
    _atomic_save(fx, out / "mobilenet_v2.pt")


def _fpn(model, image, out, gen):
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7
    torch.manual_seed(12)
    trunk = BackboneWithFPN(model.features, return_layers={"6": "0", "13": "1", "18": "2"},
                            in_channels_list=[32, 96, 1280], out_channels=256,
                            extra_blocks=LastLevelP6P7(256, 256)).eval()
    with torch.no_grad():
        for name, p in trunk.fpn.named_parameters():  # non-zero biases, so that they are checked
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        levels = list(trunk(image).values())
    state = {}
    for key, value in trunk.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        state["body.features." + key[len("body."):] if key.startswith("body.") else key] = value
    _atomic_save(state, out / "mobilenet_v2_fpn.pth")
    return {f"fpn.{l}": level.clone() for l, level in enumerate(levels)}


if __name__ == "__main__":
    write(pathlib.Path(sys.argv[1]))
