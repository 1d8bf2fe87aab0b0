"""CUDA kernels of the psearch ops against torchvision.ops on CUDA and our CPU kernels.

Every test needs a GPU and is skipped without one (the whole module is marked). The
library itself is loaded by conftest.py. Oracles:
  * torchvision.ops on the same CUDA tensors (the reference semantics);
  * our CPU kernels on copies of the inputs (same semantics, independent code);
  * torch.autograd.gradcheck in float64 for the backward kernels.
"""
import pytest
import torch
import torch.nn.functional as F
import torchvision


def _cuda_kernels_registered():
    # A library configured with PSEARCH_CUDA=OFF has only CPU kernels.
    return all(torch._C._dispatch_has_kernel_for_dispatch_key(f"psearch::{op}", "CUDA")
               for op in ("nms", "roi_align", "_roi_align_backward", "deform_conv2d",
                          "_deform_conv2d_backward"))


pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(torch.cuda.is_available() and not _cuda_kernels_registered(),
                       reason="libpsearch_ops was built without CUDA kernels"),
]

DTYPES = [torch.float32, torch.float64]
# Relative to max(1, max |expected|): float32 sums of a few dozen products, different
# summation orders (cuBLAS vs CPU GEMM, atomics) on either side.
TOL = {torch.float32: 1e-4, torch.float64: 1e-10}
CUDA = torch.device("cuda")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def assert_close(actual, expected, tol, what):
    assert actual.shape == expected.shape, (
        f"{what}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}")
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} vs {expected.dtype}"
    if actual.numel() == 0:
        return
    a, e = actual.detach().cpu().double(), expected.detach().cpu().double()
    err = (a - e).abs().max().item()
    scale = max(1.0, e.abs().max().item())
    assert err <= tol * scale, f"{what}: max abs error {err:.3e} > {tol:.0e} * {scale:.3g}"


# --------------------------------------------------------------------------- nms

def unique_scores(n, dtype, seed=1):
    # A permutation: no ties, so the kept order is fully determined by the scores.
    return (torch.randperm(n, generator=gen(seed)).to(torch.float64) / max(n, 1)).to(dtype)


def random_boxes(n, dtype, seed=0, extent=640.0, max_size=120.0):
    g = gen(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * extent
    wh = 1.0 + torch.rand(n, 2, generator=g, dtype=torch.float64) * max_size
    return torch.cat([xy, xy + wh], 1).to(dtype)


def reference_nms(boxes, scores, threshold):
    """Greedy NMS over a stable descending sort (ties: lower index first). IoUs are
    computed in the boxes' dtype and compared in double, the rule of the kernels."""
    order = torch.sort(scores.cpu(), stable=True, descending=True)[1]
    sorted_boxes = boxes.cpu()[order]
    iou = torchvision.ops.box_iou(sorted_boxes, sorted_boxes).double()
    removed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if not removed[i]:
            keep.append(i)
            removed |= iou[i] > threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def assert_same_keep(ours, expected, what):
    assert ours.dtype == torch.int64 and ours.dim() == 1, f"{what}: {ours.dtype} {ours.shape}"
    assert torch.equal(ours.cpu(), expected.cpu()), (
        f"{what}: kept {ours.numel()} vs {expected.numel()}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 17, 64, 65, 1000])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_matches_torchvision_and_cpu(dtype, n, threshold):
    boxes, scores = random_boxes(n, dtype), unique_scores(n, dtype)
    ours = torch.ops.psearch.nms(boxes.to(CUDA), scores.to(CUDA), threshold)
    assert ours.device.type == "cuda"
    assert_same_keep(ours, torch.ops.psearch.nms(boxes, scores, threshold), "vs our CPU")
    assert_same_keep(ours, torchvision.ops.nms(boxes.to(CUDA), scores.to(CUDA), threshold),
                     "vs torchvision CUDA")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_many_boxes(dtype):
    # 5000 boxes: 79 mask words per row, several thousand thread blocks.
    boxes, scores = random_boxes(5000, dtype, seed=3), unique_scores(5000, dtype, seed=4)
    for threshold in (0.2, 0.5, 0.8):
        ours = torch.ops.psearch.nms(boxes.to(CUDA), scores.to(CUDA), threshold)
        assert_same_keep(ours, torch.ops.psearch.nms(boxes, scores, threshold), "vs our CPU")
        assert_same_keep(ours, torchvision.ops.nms(boxes.to(CUDA), scores.to(CUDA), threshold),
                         "vs torchvision CUDA")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_many_boxes_with_ties(dtype):
    # Integer boxes in a small area (heavy overlap, exact IoUs) and only 20 distinct
    # scores: the tie order decides what survives. Ties keep the input order (stable
    # sort), on CUDA as on CPU.
    g = gen(7)
    xy = torch.randint(0, 200, (5000, 2), generator=g)
    wh = torch.randint(1, 60, (5000, 2), generator=g)
    boxes = torch.cat([xy, xy + wh], 1).to(dtype)
    scores = torch.randint(0, 20, (5000,), generator=g).to(dtype)
    for threshold in (0.3, 0.5, 0.7):
        ours = torch.ops.psearch.nms(boxes.to(CUDA), scores.to(CUDA), threshold)
        assert_same_keep(ours, reference_nms(boxes, scores, threshold), "vs reference")
        assert_same_keep(ours, torch.ops.psearch.nms(boxes, scores, threshold), "vs our CPU")
        kept_scores = scores[ours.cpu()]
        assert (kept_scores[1:] <= kept_scores[:-1]).all(), "not sorted by decreasing score"


def test_nms_identical_boxes_and_equal_scores():
    boxes = torch.tensor([[0, 0, 10, 10.]] * 300, device=CUDA)
    scores = torch.ones(300, device=CUDA)
    assert torch.ops.psearch.nms(boxes, scores, 0.5).tolist() == [0]
    boxes = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], [1, 1, 11, 11], [100, 0, 110, 5.]],
                         device=CUDA)
    assert torch.ops.psearch.nms(boxes, torch.ones(4, device=CUDA), 0.5).tolist() == [0, 1, 3]


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_threshold_compared_in_double(dtype):
    # IoU = 1/10 exactly; float32(0.1) > 0.1, so in float32 the second box is
    # suppressed, in float64 (IoU == threshold) it is kept. Same rule as the CPU kernel.
    boxes = torch.tensor([[0, 0, 10, 1], [0, 0, 1, 1]], dtype=dtype)
    scores = torch.tensor([1.0, 0.5], dtype=dtype)
    ours = torch.ops.psearch.nms(boxes.to(CUDA), scores.to(CUDA), 0.1)
    assert ours.tolist() == ([0] if dtype == torch.float32 else [0, 1])
    assert_same_keep(ours, torch.ops.psearch.nms(boxes, scores, 0.1), "vs our CPU")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_degenerate_boxes(dtype):
    # Zero-area and inverted boxes: IoU may be 0/0 = NaN, which must not suppress.
    g = gen(2)
    boxes = torch.randint(0, 6, (300, 4), generator=g).to(dtype)
    scores = unique_scores(300, dtype)
    ours = torch.ops.psearch.nms(boxes.to(CUDA), scores.to(CUDA), 0.4)
    assert_same_keep(ours, torch.ops.psearch.nms(boxes, scores, 0.4), "vs our CPU")
    assert_same_keep(ours, torchvision.ops.nms(boxes.to(CUDA), scores.to(CUDA), 0.4),
                     "vs torchvision CUDA")


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16])
def test_nms_half(low):
    # Half / bfloat16 boxes are widened to float inside the kernel: same decisions as
    # float32 on the same (representable) values.
    boxes, scores = random_boxes(2000, low, seed=5), unique_scores(2000, low)
    ours = torch.ops.psearch.nms(boxes.to(CUDA), scores.to(CUDA), 0.5)
    expected = torch.ops.psearch.nms(boxes.float().to(CUDA), scores.float().to(CUDA), 0.5)
    assert_same_keep(ours, expected, f"{low} vs float32")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_empty(dtype):
    keep = torch.ops.psearch.nms(torch.zeros(0, 4, dtype=dtype, device=CUDA),
                                 torch.zeros(0, dtype=dtype, device=CUDA), 0.5)
    assert keep.dtype == torch.int64 and keep.shape == (0,) and keep.device.type == "cuda"


def test_nms_non_contiguous():
    boxes, scores = random_boxes(800, torch.float32), unique_scores(1600, torch.float32)
    boxes_t = boxes.to(CUDA).t().contiguous().t()  # column-major
    scores_s = scores.to(CUDA)[::2]  # strided
    assert not boxes_t.is_contiguous() and not scores_s.is_contiguous()
    ours = torch.ops.psearch.nms(boxes_t, scores_s, 0.5)
    assert_same_keep(ours, torchvision.ops.nms(boxes.to(CUDA), scores_s.contiguous(), 0.5),
                     "vs torchvision CUDA")


def test_nms_bad_inputs():
    with pytest.raises(RuntimeError, match=r"dets must have shape \[N, 4\]"):
        torch.ops.psearch.nms(torch.zeros(5, 3, device=CUDA), torch.zeros(5, device=CUDA), 0.5)
    with pytest.raises(RuntimeError, match="same number of boxes"):
        torch.ops.psearch.nms(torch.zeros(5, 4, device=CUDA), torch.zeros(4, device=CUDA), 0.5)
    with pytest.raises(RuntimeError, match="same device|CUDA tensor"):
        torch.ops.psearch.nms(torch.zeros(5, 4, device=CUDA), torch.zeros(5), 0.5)


# --------------------------------------------------------------------------- roi_align

def random_rois(n, batch_size, dtype, seed=0, extent=(96.0, 80.0), margin=16.0,
                max_size=60.0):
    """RoIs (batch, x1, y1, x2, y2) in image coordinates, some sticking out by `margin`."""
    g = gen(seed)
    span = torch.tensor(extent, dtype=torch.float64) + 2 * margin
    xy = -margin + torch.rand(n, 2, generator=g, dtype=torch.float64) * span
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * max_size
    batch = torch.randint(0, batch_size, (n, 1), generator=g).to(torch.float64)
    return torch.cat([batch, xy, xy + wh], 1).to(dtype)


def feature_map(dtype, shape=(2, 3, 20, 24), seed=0):
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def roi_align_ours(x, rois, output_size, spatial_scale, sampling_ratio, aligned):
    return torch.ops.psearch.roi_align(x, rois, spatial_scale, output_size[0], output_size[1],
                                       sampling_ratio, aligned)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 2])
@pytest.mark.parametrize("spatial_scale,output_size", [(0.25, (7, 7)), (1.0, (3, 5))])
def test_roi_align_forward(dtype, aligned, sampling_ratio, spatial_scale, output_size):
    x, rois = feature_map(dtype), random_rois(40, 2, dtype)
    args = (output_size, spatial_scale, sampling_ratio, aligned)
    ours = roi_align_ours(x.to(CUDA), rois.to(CUDA), *args)
    assert ours.device.type == "cuda"
    assert_close(ours, roi_align_ours(x, rois, *args), TOL[dtype], "vs our CPU")
    assert_close(ours, torchvision.ops.roi_align(x.to(CUDA), rois.to(CUDA), *args), TOL[dtype],
                 "vs torchvision CUDA")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_backward(dtype, aligned, sampling_ratio):
    x, rois = feature_map(dtype), random_rois(40, 2, dtype, seed=1)
    args = ((5, 4), 0.5, sampling_ratio, aligned)
    grad_out = torch.randn(40, 3, 5, 4, generator=gen(2), dtype=dtype)

    def input_grad(fn, device):
        xi = x.detach().to(device).requires_grad_()
        return torch.autograd.grad(fn(xi, rois.to(device), *args), xi, grad_out.to(device))[0]

    ours = input_grad(roi_align_ours, CUDA)
    assert_close(ours, input_grad(roi_align_ours, "cpu"), TOL[dtype], "grad vs our CPU")
    assert_close(ours, input_grad(torchvision.ops.roi_align, CUDA), TOL[dtype],
                 "grad vs torchvision CUDA")

    # The backward op directly, with an expanded (stride 0) upstream gradient.
    g = torch.ones(1, 1, 1, 1, dtype=dtype, device=CUDA).expand(40, 3, 5, 4)
    direct = torch.ops.psearch._roi_align_backward(g, rois.to(CUDA), 0.5, 5, 4, 2, 3, 20, 24,
                                                   sampling_ratio, aligned)
    reference = torch.ops.torchvision._roi_align_backward(
        g.contiguous(), rois.to(CUDA), 0.5, 5, 4, 2, 3, 20, 24, sampling_ratio, aligned)
    assert_close(direct, reference, TOL[dtype], "_roi_align_backward vs torchvision")


# (dtype, tolerance against float32 for O(1) values): a few units of the last place,
# 2^-11 for half and 2^-8 for bfloat16.
LOW_PRECISION = [(torch.float16, 4e-3), (torch.bfloat16, 3e-2)]


@pytest.mark.parametrize("low,tol", LOW_PRECISION)
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_half(aligned, low, tol):
    # Half / bfloat16 in and out, arithmetic in float: the result is the float32 result
    # on the same low-precision inputs, rounded.
    x, rois = feature_map(low), random_rois(40, 2, low, seed=3)
    args = ((7, 7), 0.25, -1, aligned)
    ours = roi_align_ours(x.to(CUDA), rois.to(CUDA), *args)
    assert ours.dtype == low
    exact = roi_align_ours(x.float().to(CUDA), rois.float().to(CUDA), *args)
    assert_close(ours.float(), exact, tol, f"{low} vs float32")
    if low == torch.float16:  # torchvision's CUDA roi_align has no bfloat16 kernel
        # torchvision may round intermediate coordinates to half as well: loose.
        tv = torchvision.ops.roi_align(x.to(CUDA), rois.to(CUDA), *args)
        assert_close(ours.float(), tv.float(), 5e-2, "half vs torchvision half")

    xi = x.to(CUDA).requires_grad_()
    grad_half = torch.autograd.grad(roi_align_ours(xi, rois.to(CUDA), *args).sum(), xi)[0]
    xf = x.float().to(CUDA).requires_grad_()
    grad_float = torch.autograd.grad(
        roi_align_ours(xf, rois.float().to(CUDA), *args).sum(), xf)[0]
    assert grad_half.dtype == low
    assert_close(grad_half.float(), grad_float, tol, f"{low} grad vs float32")


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradcheck(aligned, sampling_ratio):
    x = feature_map(torch.float64, shape=(2, 2, 6, 7), seed=4).to(CUDA).requires_grad_()
    rois = random_rois(4, 2, torch.float64, seed=5, extent=(7.0, 6.0), margin=2.0,
                       max_size=5.0).to(CUDA)

    def fn(x):
        return roi_align_ours(x, rois, (3, 2), 1.0, sampling_ratio, aligned)

    # Atomic additions in a different order give run-to-run differences of an ulp.
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-8, nondet_tol=1e-12)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-8, nondet_tol=1e-12)


def test_roi_align_empty():
    x = feature_map(torch.float32).to(CUDA).requires_grad_()
    rois = torch.zeros(0, 5, device=CUDA)
    out = roi_align_ours(x, rois, (7, 7), 1.0, -1, True)
    assert out.shape == (0, 3, 7, 7) and out.device.type == "cuda"
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.shape == x.shape and not grad.any()
    # No channels.
    out = roi_align_ours(torch.zeros(2, 0, 8, 8, device=CUDA),
                         random_rois(3, 2, torch.float32).to(CUDA), (2, 2), 1.0, -1, False)
    assert out.shape == (3, 0, 2, 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_roi_align_non_contiguous(dtype):
    x, rois = feature_map(dtype), random_rois(30, 2, dtype, seed=6)
    x_nc = x.to(CUDA).to(memory_format=torch.channels_last)
    rois_big = torch.zeros(30, 10, dtype=dtype, device=CUDA)
    rois_big[:, ::2] = rois.to(CUDA)
    rois_nc = rois_big[:, ::2]
    assert not x_nc.is_contiguous() and not rois_nc.is_contiguous()
    args = ((4, 4), 0.5, 2, True)
    assert_close(roi_align_ours(x_nc, rois_nc, *args),
                 torchvision.ops.roi_align(x.to(CUDA), rois.to(CUDA), *args), TOL[dtype],
                 "non-contiguous vs torchvision CUDA")


def test_roi_align_degenerate_aligned_box_is_zero():
    # aligned=True keeps negative sizes, so an inverted box gets a negative adaptive
    # sampling grid: no samples, zero output (and zero gradient).
    x = feature_map(torch.float32).to(CUDA).requires_grad_()
    rois = torch.tensor([[0, 12, 12, 8, 9.]], device=CUDA)
    out = roi_align_ours(x, rois, (2, 2), 1.0, -1, True)
    assert not out.any()
    assert not torch.autograd.grad(out.sum(), x)[0].any()


def test_roi_align_out_of_range_batch_index_samples_nothing():
    # The CPU kernel rejects such RoIs; checking on the device would need a sync per
    # call, so the CUDA kernel reads nothing for them (no out-of-bounds access).
    x = feature_map(torch.float32).to(CUDA)
    rois = torch.tensor([[5, 0, 0, 10, 10], [-1, 0, 0, 10, 10.]], device=CUDA)
    assert not roi_align_ours(x, rois, (2, 2), 1.0, -1, False).any()


# --------------------------------------------------------------------------- deform_conv2d

def out_size(n, k, s, p, d):
    return (n + 2 * p - (d * (k - 1) + 1)) // s + 1


def deform_case(B, C, H, W, Cout, kh, kw, stride, padding, dilation, groups, offset_groups,
                use_mask, dtype, offset_scale=4.0, seed=0):
    g = gen(seed)
    Ho = out_size(H, kh, stride[0], padding[0], dilation[0])
    Wo = out_size(W, kw, stride[1], padding[1], dilation[1])
    x = torch.randn(B, C, H, W, generator=g, dtype=dtype)
    w = torch.randn(Cout, C // groups, kh, kw, generator=g, dtype=dtype)
    # Large offsets: many samples land partly or fully outside the image.
    off = torch.randn(B, 2 * offset_groups * kh * kw, Ho, Wo, generator=g, dtype=dtype)
    off = off * offset_scale
    mask = (torch.rand(B, offset_groups * kh * kw, Ho, Wo, generator=g, dtype=dtype)
            if use_mask else None)
    bias = torch.randn(Cout, generator=g, dtype=dtype)
    return x, w, off, mask, bias


def deform_ours(x, w, off, mask, bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                groups=1, offset_groups=None):
    """Dispatcher op with torchvision-like arguments; no mask = empty placeholder."""
    if offset_groups is None:
        offset_groups = off.shape[1] // (2 * w.shape[2] * w.shape[3])
    use_mask = mask is not None
    if mask is None:
        mask = torch.zeros(0, dtype=x.dtype, device=x.device)
    return torch.ops.psearch.deform_conv2d(x, w, off, mask, bias, stride[0], stride[1],
                                           padding[0], padding[1], dilation[0], dilation[1],
                                           groups, offset_groups, use_mask)


def deform_tv(x, w, off, mask, bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
              groups=1, offset_groups=None):
    # torchvision infers groups and offset groups from the shapes.
    return torchvision.ops.deform_conv2d(x, off, w, bias, stride=stride, padding=padding,
                                         dilation=dilation, mask=mask)


# (B, C, H, W, Cout, kh, kw, stride, padding, dilation, groups, offset_groups)
DEFORM_CONFIGS = {
    "basic": (2, 4, 8, 8, 6, 3, 3, (1, 1), (1, 1), (1, 1), 1, 1),
    "groups2_offgroups2": (2, 4, 7, 9, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2, 2),
    "stride2_pad_dil2": (2, 4, 11, 10, 4, 3, 3, (2, 2), (2, 1), (2, 2), 1, 2),
    "kernel3x1_offgroups4": (1, 4, 6, 7, 2, 3, 1, (1, 2), (1, 0), (1, 1), 1, 4),
    "kernel1x3_groups4": (3, 8, 5, 9, 4, 1, 3, (2, 1), (0, 1), (1, 3), 4, 2),
}


def deform_grads(fn, tensors, device, grad_out, **conv):
    """Output and gradients of fn w.r.t. tensors = [x, w, off, bias(, mask)] on device."""
    # detach(): fresh leaves; .to() keeps a non-contiguous layout when already on device.
    ins = [t.detach().to(device).requires_grad_() for t in tensors]
    x, w, off, bias = ins[:4]
    mask = ins[4] if len(ins) == 5 else None
    out = fn(x, w, off, mask, bias, **conv)
    return out, torch.autograd.grad(out, ins, grad_out.to(device))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_mask", [False, True], ids=["v1", "v2mask"])
@pytest.mark.parametrize("name", list(DEFORM_CONFIGS))
def test_deform_conv2d_forward_and_grads(name, use_mask, dtype):
    B, C, H, W, Cout, kh, kw, stride, padding, dilation, groups, og = DEFORM_CONFIGS[name]
    x, w, off, mask, bias = deform_case(B, C, H, W, Cout, kh, kw, stride, padding, dilation,
                                        groups, og, use_mask, dtype)
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                offset_groups=og)
    tensors = [x, w, off, bias] + ([mask] if use_mask else [])
    names = ["input", "weight", "offset", "bias"] + (["mask"] if use_mask else [])
    Ho, Wo = out_size(H, kh, stride[0], padding[0], dilation[0]), out_size(
        W, kw, stride[1], padding[1], dilation[1])
    grad_out = torch.randn(B, Cout, Ho, Wo, generator=gen(1), dtype=dtype)

    out, grads = deform_grads(deform_ours, tensors, CUDA, grad_out, **conv)
    assert out.device.type == "cuda"
    for oracle, fn, device in (("our CPU", deform_ours, "cpu"),
                               ("torchvision CUDA", deform_tv, CUDA)):
        ref_out, ref_grads = deform_grads(fn, tensors, device, grad_out, **conv)
        assert_close(out, ref_out, TOL[dtype], f"{name} forward vs {oracle}")
        for n, a, e in zip(names, grads, ref_grads):
            assert_close(a, e, TOL[dtype], f"{name} grad {n} vs {oracle}")


@pytest.mark.parametrize("use_mask", [False, True], ids=["v1", "v2mask"])
def test_deform_conv2d_backward_op(use_mask):
    dtype = torch.float64
    x, w, off, mask, bias = deform_case(2, 4, 7, 9, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2, 2,
                                        use_mask, dtype, seed=2)
    grad = torch.randn(2, 6, 7, 9, generator=gen(3), dtype=dtype)
    ours_mask = mask if use_mask else torch.zeros(0, dtype=dtype)
    # torchvision's Python wrapper passes a [B, 1] placeholder when there is no mask.
    tv_mask = mask if use_mask else torch.zeros(2, 1, dtype=dtype)
    args = (1, 1, 1, 1, 1, 1, 2, 2, use_mask)
    ours = torch.ops.psearch._deform_conv2d_backward(
        *(t.to(CUDA) for t in (grad, x, w, off, ours_mask, bias)), *args)
    ref = torch.ops.torchvision._deform_conv2d_backward(
        *(t.to(CUDA) for t in (grad, x, w, off, tv_mask, bias)), *args)
    for i, n in enumerate(["input", "weight", "offset", "mask", "bias"]):
        if n == "mask" and not use_mask:
            assert ours[i].shape == (0,), "grad of the mask placeholder keeps its shape"
            continue
        assert_close(ours[i], ref[i], TOL[dtype], f"grad {n}")


def test_deform_conv2d_large_batch_is_chunked():
    # More images than one GEMM chunk (32), and not a multiple of it.
    dtype = torch.float32
    x, w, off, mask, bias = deform_case(37, 3, 6, 5, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1, 1,
                                        True, dtype, seed=4)
    grad_out = torch.randn(37, 4, 6, 5, generator=gen(5), dtype=dtype)
    tensors = [x, w, off, bias, mask]
    out, grads = deform_grads(deform_ours, tensors, CUDA, grad_out, padding=(1, 1))
    ref_out, ref_grads = deform_grads(deform_tv, tensors, CUDA, grad_out, padding=(1, 1))
    assert_close(out, ref_out, TOL[dtype], "forward")
    for n, a, e in zip(["input", "weight", "offset", "bias", "mask"], grads, ref_grads):
        assert_close(a, e, TOL[dtype], f"grad {n}")


def test_deform_conv2d_zero_offsets_is_conv2d():
    # With zero offsets and no mask the op is an ordinary (grouped, strided, dilated)
    # convolution: an oracle independent of any deformable implementation.
    dtype = torch.float64
    x, w, off, _, bias = deform_case(2, 6, 9, 8, 4, 3, 2, (2, 1), (1, 2), (2, 1), 2, 3, False,
                                     dtype)
    x, w, bias = x.to(CUDA), w.to(CUDA), bias.to(CUDA)
    off = torch.zeros_like(off).to(CUDA)
    ours = deform_ours(x, w, off, None, bias, stride=(2, 1), padding=(1, 2), dilation=(2, 1),
                       groups=2)
    ref = F.conv2d(x, w, bias, stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2)
    assert_close(ours, ref, TOL[dtype], "zero offsets vs conv2d")


@pytest.mark.parametrize("low,tol", [(torch.float16, 1e-2), (torch.bfloat16, 8e-2)])
def test_deform_conv2d_half_forward(low, tol):
    x, w, off, mask, bias = deform_case(2, 4, 8, 8, 6, 3, 3, (1, 1), (1, 1), (1, 1), 1, 2, True,
                                        low, offset_scale=2.0)
    ins = [t.to(CUDA) for t in (x, w, off, mask, bias)]
    ours = deform_ours(ins[0], ins[1], ins[2], ins[3], ins[4], padding=(1, 1))
    assert ours.dtype == low
    ref = deform_ours(*(t.float() for t in ins), padding=(1, 1))
    # Sums of 36 products of O(1) values rounded to half / bfloat16: a few ulps of O(10).
    assert_close(ours.float(), ref, tol, f"{low} vs float32")


@pytest.mark.parametrize("use_mask", [False, True], ids=["v1", "v2mask"])
@pytest.mark.parametrize("groups,offset_groups,stride,padding,dilation,kernel", [
    (1, 1, (1, 1), (1, 1), (1, 1), (3, 3)),
    (2, 2, (2, 1), (1, 0), (1, 2), (3, 2)),
])
def test_deform_conv2d_gradcheck(use_mask, groups, offset_groups, stride, padding, dilation,
                                 kernel):
    kh, kw = kernel
    x, w, off, mask, bias = deform_case(2, 2, 5, 5, 2, kh, kw, stride, padding, dilation, groups,
                                        offset_groups, use_mask, torch.float64,
                                        offset_scale=1.5, seed=6)
    tensors = [t.to(CUDA).requires_grad_()
               for t in [x, w, off, bias] + ([mask] if use_mask else [])]

    def fn(x, w, off, bias, mask=None):
        return deform_ours(x, w, off, mask, bias, stride, padding, dilation, groups,
                           offset_groups)

    assert torch.autograd.gradcheck(fn, tensors, eps=1e-6, atol=1e-7, rtol=1e-5,
                                    nondet_tol=1e-12)


def test_deform_conv2d_batch_size_zero():
    for use_mask in (False, True):
        x = torch.randn(0, 4, 6, 7, device=CUDA, requires_grad=True)
        w = torch.randn(6, 2, 3, 3, device=CUDA, requires_grad=True)
        off = torch.randn(0, 2 * 2 * 9, 3, 4, device=CUDA, requires_grad=True)
        mask = (torch.rand(0, 2 * 9, 3, 4, device=CUDA, requires_grad=True)
                if use_mask else None)
        bias = torch.randn(6, device=CUDA, requires_grad=True)
        out = deform_ours(x, w, off, mask, bias, stride=(2, 2), padding=(1, 1), groups=2,
                          offset_groups=2)
        assert out.shape == (0, 6, 3, 4) and out.device.type == "cuda"
        ins = [x, w, off, bias] + ([mask] if use_mask else [])
        for t, gt in zip(ins, torch.autograd.grad(out.sum(), ins)):
            assert gt.shape == t.shape and not gt.any()


def test_deform_conv2d_non_contiguous():
    dtype = torch.float64
    x, w, off, mask, bias = (t.to(CUDA) for t in deform_case(
        2, 4, 7, 8, 4, 3, 3, (1, 1), (1, 1), (1, 1), 2, 2, True, dtype))
    x_nc = x.to(memory_format=torch.channels_last)
    w_nc = w.transpose(2, 3).contiguous().transpose(2, 3)
    off_nc = off.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    mask_nc = torch.zeros(*mask.shape[:3], 2 * mask.shape[3], dtype=dtype, device=CUDA)
    mask_nc[..., ::2] = mask
    mask_nc = mask_nc[..., ::2]
    bias_nc = torch.stack([bias, bias], 1)[:, 0]
    for t in (x_nc, w_nc, off_nc, mask_nc, bias_nc):
        assert not t.is_contiguous()
    conv = dict(padding=(1, 1), groups=2, offset_groups=2)
    grad_out = torch.randn(2, 4, 7, 8, dtype=dtype).to(CUDA).transpose(2, 3).contiguous()
    grad_out = grad_out.transpose(2, 3)  # non-contiguous upstream gradient too
    out, grads = deform_grads(deform_ours, [x_nc, w_nc, off_nc, bias_nc, mask_nc], CUDA,
                              grad_out, **conv)
    ref_out, ref_grads = deform_grads(deform_tv, [x, w, off, bias, mask], CUDA, grad_out, **conv)
    assert_close(out, ref_out, TOL[dtype], "forward")
    for n, a, e in zip(["input", "weight", "offset", "bias", "mask"], grads, ref_grads):
        assert_close(a, e, TOL[dtype], f"grad {n}")


def test_deform_conv2d_bad_inputs():
    x, w, off, mask, bias = (t.to(CUDA) for t in deform_case(
        1, 4, 6, 6, 2, 3, 3, (1, 1), (1, 1), (1, 1), 1, 1, True, torch.float32))
    with pytest.raises(RuntimeError, match="offset must have 2 \\* offset_groups"):
        deform_ours(x, w, off[:, :10], mask, bias, padding=(1, 1), offset_groups=1)
    with pytest.raises(RuntimeError, match="mask must have offset_groups"):
        deform_ours(x, w, off, mask[:, :4], bias, padding=(1, 1))
    with pytest.raises(RuntimeError, match="same device|CUDA tensor"):
        deform_ours(x, w, off.cpu(), mask, bias, padding=(1, 1))
