"""Shared setup of the Python op tests: loads libpsearch_ops once and offers fixtures.

The library comes from $PSEARCH_OPS_LIB (set by ctest), else from <repo>/build/src.
Loading it runs its TORCH_LIBRARY registrations, after which the ops are reachable as
torch.ops.psearch.<name>, next to torchvision.ops which serves as the oracle.
"""
import os
import pathlib

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
OPS_LIB = pathlib.Path(
    os.environ.get("PSEARCH_OPS_LIB", REPO / "build" / "src" / "libpsearch_ops.so"))


def _load_ops_library():
    # Test modules may also load it themselves; dlopen of the same file is a no-op, and
    # the check below avoids even that when the namespace is already populated.
    if not hasattr(torch.ops.psearch, "nms"):
        if not OPS_LIB.is_file():
            raise RuntimeError(f"psearch ops library not found at {OPS_LIB}; build the "
                               "psearch_ops target or set PSEARCH_OPS_LIB")
        torch.ops.load_library(str(OPS_LIB))


_load_ops_library()


@pytest.fixture(scope="session")
def ops():
    """The psearch operator namespace (torch.ops.psearch)."""
    return torch.ops.psearch


@pytest.fixture
def generator():
    """A CPU generator with a fixed seed, so every test sees the same data on every run."""
    return torch.Generator().manual_seed(0)


def random_boxes(n, generator, dtype=torch.float32, extent=(640.0, 480.0),
                 min_size=1.0, max_size=200.0):
    """[n, 4] boxes (x1, y1, x2, y2) with corners inside `extent` (width, height) and
    sides in [min_size, max_size], the clustered overlaps NMS is meant for."""
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    xy = xy * torch.tensor(extent, dtype=torch.float64)
    wh = min_size + torch.rand(n, 2, generator=generator, dtype=torch.float64) * (
        max_size - min_size)
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def random_rois(n, batch_size, generator, dtype=torch.float32, extent=(640.0, 480.0),
                margin=0.0, max_size=200.0):
    """[n, 5] RoIs (batch_index, x1, y1, x2, y2) for images of `extent` (width, height).
    A positive `margin` lets boxes stick out of the image by up to that many pixels."""
    lo = -margin
    span = torch.tensor(extent, dtype=torch.float64) + 2 * margin
    xy = lo + torch.rand(n, 2, generator=generator, dtype=torch.float64) * span
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * max_size
    batch = torch.randint(0, batch_size, (n, 1), generator=generator).to(torch.float64)
    return torch.cat([batch, xy, xy + wh], dim=1).to(dtype)


@pytest.fixture
def make_boxes(generator):
    """random_boxes bound to the test's generator: make_boxes(n, dtype=..., ...)."""
    return lambda n, **kw: random_boxes(n, generator, **kw)


@pytest.fixture
def make_rois(generator):
    """random_rois bound to the test's generator: make_rois(n, batch_size, dtype=..., ...)."""
    return lambda n, batch_size, **kw: random_rois(n, batch_size, generator, **kw)


def max_abs_diff(a, b):
    """Largest absolute difference of two tensors as a float (0 for empty ones)."""
    if a.numel() == 0 and b.numel() == 0:
        return 0.0
    return (a.double() - b.double()).abs().max().item()


@pytest.fixture(scope="session")
def abs_diff():
    """max_abs_diff as a fixture, for tests that should not import conftest."""
    return max_abs_diff
