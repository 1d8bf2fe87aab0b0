"""The TF semantics that ssdlite_reference.py (the SSD oracle) implements, on hand-worked cases."""
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ssdlite_reference as ref  # noqa: E402


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (300, 3, 2, (0, 1)),   # even input, stride 2: the extra pixel goes after
    (75, 3, 2, (1, 1)),
    (19, 3, 1, (1, 1)),
    (10, 1, 1, (0, 0)),
    (2, 3, 2, (0, 1)),
    (1, 3, 2, (1, 1)),
])
def test_same_padding(size, kernel, stride, expected):
    assert ref.same_padding(size, kernel, stride) == expected


def _row(values, out_w):
    x = torch.tensor(values, dtype=torch.float32).view(1, 1, -1, 1)
    return ref.resize_bilinear(x, (1, out_w)).flatten().tolist()


def test_legacy_resize_bilinear():
    # source x = dst * in / out (no half-pixel shift), neighbours floor and floor + 1 clamped
    assert _row([0, 1, 2, 3], 2) == [0, 2]
    assert _row([0, 1, 2, 3], 3) == pytest.approx([0, 4 / 3, 8 / 3])
    assert _row([0, 10], 4) == [0, 5, 10, 10]
    x = torch.rand(1, 5, 7, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ref.resize_bilinear(x, (5, 7)), x)


def test_decode_of_zero_encodings_gives_the_anchors():
    anchors = torch.tensor([[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0]])
    assert torch.allclose(ref.decode(torch.zeros(2, 4), anchors, [10, 10, 5, 5]), anchors)
    # ty = 10 moves the centre down by one anchor height; th = 5 * ln 2 doubles the height
    box = ref.decode(torch.tensor([[10.0, 0.0, 5 * 0.6931472, 0.0]]), anchors[:1], [10, 10, 5, 5])
    assert box[0].tolist() == pytest.approx([0.3, 0.2, 1.1, 0.4], abs=1e-6)


def test_anchor_generator_reproduces_the_graph():
    try:
        graph = ref.load()  # load() itself compares generate_anchors with the graph's subgraph
    except ref.OracleError as e:
        pytest.skip(str(e))
    anchors = ref.generate_anchors(graph, [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2), (1, 1)], (384, 512))
    assert anchors.shape == (3846, 4)
    # an aspect-ratio-1 anchor is square in input pixels: width 384/512 of its height
    h, w = anchors[0, 2] - anchors[0, 0], anchors[0, 3] - anchors[0, 1]
    assert (w / h).item() == pytest.approx(384 / 512, rel=1e-5)
