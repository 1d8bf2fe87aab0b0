"""torchvision ResNets with random weights (BatchNorm statistics randomised too, so
frozen BN is not an identity) and their stage outputs C2..C5 in eval mode."""
import pathlib

import torch
import torchvision


def _randomise_batchnorm(model: torch.nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.randn(n, generator=gen) * 0.1
            m.running_mean = torch.randn(n, generator=gen) * 0.1
            m.running_var = torch.rand(n, generator=gen) + 0.5


def _stage_outputs(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    outs = {}
    for name, layer in [("C2", model.layer1), ("C3", model.layer2), ("C4", model.layer3), ("C5", model.layer4)]:
        x = layer(x)
        outs[name] = x
    return outs


def write(out: pathlib.Path) -> None:
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for arch in ("resnet18", "resnet34", "resnet50"):
        model = getattr(torchvision.models, arch)(weights=None)
        _randomise_batchnorm(model, gen)
        model.eval()
        torch.save(model.state_dict(), out / f"{arch}.pth")
        # Two images of a non-square size: batch and aspect ratio both matter.
        x = torch.randn(2, 3, 96, 128, generator=gen)
        with torch.no_grad():
            outs = _stage_outputs(model, x)
        torch.save({"input": x, **outs}, out / f"{arch}_io.pt")
