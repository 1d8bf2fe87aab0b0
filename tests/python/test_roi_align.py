"""psearch::roi_align (CPU kernel + autograd) against torchvision.ops.roi_align.

Forward values and input gradients are compared with torchvision; gradcheck and
gradgradcheck check our backward (and its adjoint, the double backward) in float64.
"""
import pytest
import torch
import torchvision

DTYPES = [torch.float32, torch.float64]
# float32 results are sums of a few products of O(1) values: a few ulp of O(1).
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def ours(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    return torch.ops.psearch.roi_align(input, rois, spatial_scale, output_size[0],
                                       output_size[1], sampling_ratio, aligned)


def ref(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    return torchvision.ops.roi_align(input, rois, output_size, spatial_scale, sampling_ratio,
                                     aligned)


def max_abs_diff(a, b):
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def assert_close(a, b, dtype, what, scale=1.0):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs torchvision {tuple(b.shape)}"
    err = max_abs_diff(a, b)
    tol = TOL[dtype] * scale
    assert err <= tol, f"{what}: max abs error {err:.3e} > {tol:.1e}"
    return err


def feature_map(generator, dtype, shape=(3, 4, 24, 32)):
    return torch.randn(*shape, generator=generator, dtype=dtype)


def mixed_rois(make_rois, dtype, n, batch_size, scale):
    """RoIs in image coordinates (feature map size / scale): mostly inside, some sticking
    out by up to a third of the image, a few entirely outside or degenerate."""
    w, h = 32 / scale, 24 / scale
    rois = make_rois(n, batch_size, dtype=dtype, extent=(w, h), margin=w / 3, max_size=w / 2)
    extra = torch.tensor([
        [batch_size - 1, -3 * w, -3 * h, -2 * w, -2 * h],  # far outside, top left
        [batch_size - 1, 2 * w, 2 * h, 3 * w, 3 * h],  # far outside, bottom right
        [0, w / 4, h / 4, w / 4, h / 4],  # zero size
        [0, w / 2, h / 2, w / 4, h / 4],  # inverted
        [batch_size - 1, -w, h / 4, 2 * w, h / 2],  # wider than the map
        [0, 0, 0, w, h],  # the whole image
    ], dtype=dtype)
    return torch.cat([rois, extra])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 3])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 1 / 16])
def test_forward_matches_torchvision(make_rois, generator, dtype, aligned, sampling_ratio,
                                     spatial_scale):
    x = feature_map(generator, dtype)
    rois = mixed_rois(make_rois, dtype, 40, x.shape[0], spatial_scale)
    assert (rois[:, 0] > 0).any(), "need RoIs of batch items > 0"
    for size in [(7, 7), (5, 3)]:
        args = (size, spatial_scale, sampling_ratio, aligned)
        assert_close(ours(x, rois, *args), ref(x, rois, *args), dtype,
                     f"forward size={size} scale={spatial_scale} sr={sampling_ratio} "
                     f"aligned={aligned} {dtype}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_backward_matches_torchvision(make_rois, generator, dtype, aligned, sampling_ratio):
    x = feature_map(generator, dtype)
    rois = mixed_rois(make_rois, dtype, 60, x.shape[0], 0.25)
    args = ((6, 4), 0.25, sampling_ratio, aligned)
    grad_out = torch.randn(rois.shape[0], x.shape[1], 6, 4, generator=generator, dtype=dtype)
    grads = []
    for fn in (ours, ref):
        xi = x.clone().requires_grad_()
        fn(xi, rois, *args).backward(grad_out)
        grads.append(xi.grad)
    # Each cell sums contributions of many bins; allow for its magnitude.
    scale = max(1.0, grads[1].abs().max().item())
    assert_close(grads[0], grads[1], dtype, f"backward sr={sampling_ratio} aligned={aligned} "
                 f"{dtype}", scale)


@pytest.mark.parametrize("aligned", [False, True])
def test_backward_op_with_expanded_grad(make_rois, generator, aligned):
    # out.sum().backward() hands the backward an expanded (stride 0) gradient.
    x = feature_map(generator, torch.float64)
    rois = mixed_rois(make_rois, torch.float64, 30, x.shape[0], 0.5)
    grads = []
    for fn in (ours, ref):
        xi = x.clone().requires_grad_()
        fn(xi, rois, (7, 7), 0.5, 0, aligned).sum().backward()
        grads.append(xi.grad)
    assert_close(grads[0], grads[1], torch.float64, f"expanded grad aligned={aligned}")
    # The op itself, called directly with a non-contiguous gradient.
    g = torch.randn(x.shape[1], rois.shape[0], 7, 7, generator=generator,
                    dtype=torch.float64).transpose(0, 1)
    b, c, h, w = x.shape
    direct = torch.ops.psearch._roi_align_backward(g, rois, 0.5, 7, 7, b, c, h, w, 0, aligned)
    tv = torch.ops.torchvision._roi_align_backward(g, rois, 0.5, 7, 7, b, c, h, w, 0, aligned)
    assert_close(direct, tv, torch.float64, f"_roi_align_backward aligned={aligned}")


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_gradcheck(make_rois, generator, aligned, sampling_ratio):
    x = torch.randn(2, 2, 6, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    rois = make_rois(6, 2, dtype=torch.float64, extent=(14.0, 12.0), margin=3.0, max_size=9.0)

    def fn(inp):
        return ours(inp, rois, (3, 2), 0.5, sampling_ratio, aligned)

    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_rois(generator, dtype):
    x = feature_map(generator, dtype).requires_grad_()
    rois = torch.zeros(0, 5, dtype=dtype)
    out = ours(x, rois, (7, 7), 0.5, 0, True)
    assert out.shape == (0, x.shape[1], 7, 7)
    out.sum().backward()
    assert x.grad.shape == x.shape and not x.grad.any()


def test_empty_feature_map():
    x = torch.zeros(1, 3, 0, 5)
    rois = torch.tensor([[0, 0, 0, 4, 4.]])
    out = ours(x, rois, (2, 2), 1.0, 2, False)
    assert out.shape == (1, 3, 2, 2) and not out.any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(make_rois, generator, dtype):
    x = feature_map(generator, dtype)
    rois = mixed_rois(make_rois, dtype, 20, x.shape[0], 1.0)
    x_cl = x.to(memory_format=torch.channels_last)
    x_t = x.transpose(2, 3).contiguous().transpose(2, 3)
    rois_t = rois.t().contiguous().t()
    assert not x_cl.is_contiguous() and not x_t.is_contiguous() and not rois_t.is_contiguous()
    expected = ref(x, rois, (4, 4), 1.0, 2, True)
    for xi in (x_cl, x_t):
        assert_close(ours(xi, rois_t, (4, 4), 1.0, 2, True), expected, dtype, "non-contiguous")


def test_single_item_rois_on_later_batch_item(generator):
    # Only batch item 2 is referenced: the others must not leak into the result.
    x = torch.randn(3, 2, 8, 8, generator=generator)
    rois = torch.tensor([[2, 1, 1, 6, 5.], [2, 0, 0, 8, 8]])
    assert_close(ours(x, rois, (2, 2), 1.0, 2, False), ref(x, rois, (2, 2), 1.0, 2, False),
                 torch.float32, "batch 2")


def test_bad_inputs():
    x = torch.zeros(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match=r"rois must have shape \[K, 5\].*\[4, 4\]"):
        ours(x, torch.zeros(4, 4), (2, 2))
    with pytest.raises(RuntimeError, match=r"input must have shape \[B, C, H, W\].*\[3, 8, 8\]"):
        ours(torch.zeros(3, 8, 8), torch.zeros(1, 5), (2, 2))
    with pytest.raises(RuntimeError, match="same dtype"):
        ours(x, torch.zeros(1, 5, dtype=torch.float64), (2, 2))
    with pytest.raises(RuntimeError, match=r"batch index 2 outside \[0, 2\)"):
        ours(x, torch.tensor([[2, 0, 0, 4, 4.]]), (2, 2))
    with pytest.raises(RuntimeError, match=r"batch index nan"):
        ours(x, torch.tensor([[float("nan"), 0, 0, 4, 4.]]), (2, 2))
    with pytest.raises(RuntimeError, match=r"more than 2\^20 samples per bin"):
        ours(x, torch.tensor([[0, 0, 0, 1e12, 4.]]), (2, 2), 1.0, 0)
    with pytest.raises(RuntimeError, match="output size must be positive"):
        ours(x, torch.zeros(1, 5), (0, 2))
