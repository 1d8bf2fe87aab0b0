"""Compares the host-run CUDA element functions (libharness.so, see harness.cu) with
torchvision's CPU ops: nms, roi_align forward/backward, deform_conv2d forward and all
gradients (through a Python transliteration of the host code of
deform_conv2d_kernel.cu, chunking included). Usage: run.sh."""
import ctypes
import itertools
import sys

import torch
import torchvision

lib = ctypes.CDLL(sys.argv[1])
P = ctypes.c_void_p; I = ctypes.c_int64; D = ctypes.c_double; B_ = ctypes.c_bool
for T in ('float', 'double'):
    getattr(lib, f'nms_host_{T}').argtypes = [P, I, D, P]; getattr(lib, f'nms_host_{T}').restype = I
    getattr(lib, f'roi_fwd_{T}').argtypes = [P, P, D, I, I, I, I, I, I, I, I, B_, P]
    getattr(lib, f'roi_bwd_{T}').argtypes = [P, P, D, I, I, I, I, I, I, I, I, B_, P]
    getattr(lib, f'im2col_{T}').argtypes = [P, P, P, P, P]
    getattr(lib, f'col2im_{T}').argtypes = [P, P, P, P, P]
    getattr(lib, f'offgrad_{T}').argtypes = [P, P, P, P, P, P, P]
def tn(t): return 'double' if t.dtype == torch.float64 else 'float'
def ptr(t): return None if t is None else t.data_ptr()

def nms_h(boxes, scores, thr):
    order = torch.sort(scores, stable=True, descending=True)[1]
    b = boxes[order].contiguous()
    keep = torch.empty(len(b), dtype=torch.int64)
    k = getattr(lib, f'nms_host_{tn(b)}')(ptr(b), len(b), thr, ptr(keep))
    return order[keep[:k]]

def nms_ref(boxes, scores, thr):
    order = torch.sort(scores, stable=True, descending=True)[1]
    b = boxes[order].double()
    iou = torchvision.ops.box_iou(b, b)
    removed = torch.zeros(len(b), dtype=torch.bool); keep = []
    for i in range(len(b)):
        if removed[i]: continue
        keep.append(i); removed |= iou[i] > thr
    return order[torch.tensor(keep, dtype=torch.long)]

torch.manual_seed(0)
for n in [1, 2, 63, 64, 65, 200, 1000, 3000]:
    for dt in [torch.float32, torch.float64]:
        xy = torch.rand(n, 2) * 100; wh = torch.rand(n, 2) * 40
        boxes = torch.cat([xy, xy + wh], 1).to(dt)
        scores = torch.randperm(n).to(dt)
        for thr in [0.3, 0.5, 0.7]:
            a = nms_h(boxes, scores, thr); b = torchvision.ops.nms(boxes, scores, thr)
            assert torch.equal(a, b), (n, dt, thr)
    # ties and integer boxes
    xy = torch.randint(0, 50, (n, 2)).float(); wh = torch.randint(1, 30, (n, 2)).float()
    boxes = torch.cat([xy, xy + wh], 1); scores = torch.randint(0, 5, (n,)).float()
    a = nms_h(boxes, scores, 0.5); r = nms_ref(boxes, scores, 0.5)
    assert torch.equal(a, r), n
# duplicates / degenerate
boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0], [0, 0, 0, 0], [5, 5, 15, 15.]])
scores = torch.tensor([1., 1., 2., 2., 0.5])
assert torch.equal(nms_h(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))
print('nms ok')

def roi_fwd(x, rois, scale, PH, PW, sr, aligned):
    B, C, H, W = x.shape; K = rois.shape[0]
    out = torch.zeros(K, C, PH, PW, dtype=x.dtype)
    getattr(lib, f'roi_fwd_{tn(x)}')(ptr(x), ptr(rois), scale, B, C, H, W, K, PH, PW, sr, aligned, ptr(out))
    return out
def roi_bwd(g, rois, scale, B, C, H, W, sr, aligned):
    K, _, PH, PW = g.shape
    gin = torch.zeros(B, C, H, W, dtype=g.dtype)
    getattr(lib, f'roi_bwd_{tn(g)}')(ptr(g), ptr(rois), scale, B, C, H, W, K, PH, PW, sr, aligned, ptr(gin))
    return gin
for dt, tol in [(torch.float64, 1e-10), (torch.float32, 1e-4)]:
    for aligned, sr, scale, (PH, PW) in itertools.product([False, True], [-1, 0, 1, 2, 3], [1.0, 0.5, 0.25], [(7, 7), (3, 5), (1, 1)]):
        B, C, H, W = 2, 3, 11, 13
        x = torch.randn(B, C, H, W, dtype=dt)
        K = 9
        b = torch.rand(K, 4, dtype=dt) * 60 - 10
        b[:, 2:] = b[:, :2] + torch.rand(K, 2, dtype=dt) * 40
        # Inverted box; with aligned=True and adaptive sampling torchvision's CPU kernel
        # fails on it (negative grid), so a zero-size box stands in there.
        b[0] = torch.tensor([5, 5, 4, 3] if not (aligned and sr <= 0) else [5, 5, 5, 5])
        b[1] = torch.tensor([-30, -30, -20, -20])  # outside
        b[2] = torch.tensor([0, 0, 2 * W / scale, 2 * H / scale])  # covers beyond
        rois = torch.cat([torch.randint(0, B, (K, 1)).to(dt), b], 1).contiguous()
        a = roi_fwd(x, rois, scale, PH, PW, sr, aligned)
        r = torchvision.ops.roi_align(x, rois, (PH, PW), scale, sr, aligned)
        assert torch.allclose(a, r, atol=tol, rtol=tol), (dt, aligned, sr, scale, (a - r).abs().max())
        g = torch.randn(K, C, PH, PW, dtype=dt)
        ga = roi_bwd(g, rois, scale, B, C, H, W, sr, aligned)
        gr = torch.ops.torchvision._roi_align_backward(g, rois, scale, PH, PW, B, C, H, W, sr, aligned)
        assert torch.allclose(ga, gr, atol=tol, rtol=tol), (dt, aligned, sr, scale, (ga - gr).abs().max())
print('roi ok')

def geo(C, H, W, kh, kw, s, p, d, og, oh, ow, n):
    return torch.tensor([C, H, W, kh, kw, s[0], s[1], p[0], p[1], d[0], d[1], og, oh, ow, n], dtype=torch.int64)

# Python mirror of the host orchestration in deform_conv2d_kernel.cu
def dfwd(inp, weight, offset, mask, bias, s, p, d, groups, og, use_mask, chunk):
    Bn, C, H, W = inp.shape; Cout, _, kh, kw = weight.shape
    oh = (H + 2 * p[0] - (d[0] * (kh - 1) + 1)) // s[0] + 1
    ow = (W + 2 * p[1] - (d[1] * (kw - 1) + 1)) // s[1] + 1
    out = torch.zeros(Bn, Cout, oh, ow, dtype=inp.dtype)
    inp_c, off_c = inp.contiguous(), offset.contiguous(); mask_c = mask.contiguous() if use_mask else None
    wg = weight.contiguous().view(groups, Cout // groups, -1)
    for first in range(0, Bn, chunk):
        n = min(chunk, Bn - first); area = oh * ow; cols = n * area
        columns = torch.empty(C * kh * kw, cols, dtype=inp.dtype)
        g_ = geo(C, H, W, kh, kw, s, p, d, og, oh, ow, n)
        getattr(lib, f'im2col_{tn(inp)}')(ptr(inp_c[first]), ptr(off_c[first]), ptr(mask_c[first]) if use_mask else None,
                                          ptr(g_), ptr(columns))
        out_g = torch.bmm(wg, columns.view(groups, -1, cols))
        out.narrow(0, first, n).view(n, Cout, area).copy_(out_g.view(Cout, n, area).transpose(0, 1))
    return out.add_(bias.reshape(1, Cout, 1, 1))

def dbwd(grad, inp, weight, offset, mask, bias, s, p, d, groups, og, use_mask, chunk):
    Bn, C, H, W = inp.shape; Cout, _, kh, kw = weight.shape
    oh, ow = grad.shape[2:]
    gmask = torch.zeros(mask.shape, dtype=mask.dtype) if use_mask else torch.zeros_like(mask)
    goff = torch.zeros(offset.shape, dtype=offset.dtype)
    gbias = grad.sum((0, 2, 3)).view_as(bias)
    grad_c, inp_c, off_c = grad.contiguous(), inp.contiguous(), offset.contiguous()
    mask_c = mask.contiguous() if use_mask else None
    wg = weight.contiguous().view(groups, Cout // groups, -1)
    gin = torch.zeros(inp.shape, dtype=inp.dtype); gw = torch.zeros(wg.shape, dtype=inp.dtype)
    for first in range(0, Bn, chunk):
        n = min(chunk, Bn - first); area = oh * ow; cols = n * area
        gg = grad_c.narrow(0, first, n).view(n, Cout, area).transpose(0, 1).contiguous().view(groups, Cout // groups, cols)
        gcol = torch.bmm(wg.transpose(1, 2), gg)
        g_ = geo(C, H, W, kh, kw, s, p, d, og, oh, ow, n)
        mp = ptr(mask_c[first]) if use_mask else None
        getattr(lib, f'col2im_{tn(inp)}')(ptr(gcol), ptr(off_c[first]), mp, ptr(g_), ptr(gin[first]))
        getattr(lib, f'offgrad_{tn(inp)}')(ptr(gcol), ptr(inp_c[first]), ptr(off_c[first]), mp, ptr(g_),
                                           ptr(goff[first]), ptr(gmask[first]) if use_mask else None)
        columns = torch.empty(C * kh * kw, cols, dtype=inp.dtype)
        getattr(lib, f'im2col_{tn(inp)}')(ptr(inp_c[first]), ptr(off_c[first]), mp, ptr(g_), ptr(columns))
        gw.add_(torch.bmm(gg, columns.view(groups, -1, cols).transpose(1, 2)))
    return gin, gw.view(weight.shape), goff, gmask, gbias

cases = 0
for dt, tol in [(torch.float64, 1e-9), (torch.float32, 2e-4)]:
    for (Bn, C, Cout, H, W, kh, kw, s, p, d, groups, og, use_mask, chunk, offscale) in [
        (3, 4, 6, 9, 8, 3, 3, (1, 1), (1, 1), (1, 1), 1, 1, True, 2, 2.0),
        (3, 4, 6, 9, 8, 3, 3, (1, 1), (1, 1), (1, 1), 1, 1, False, 2, 2.0),
        (2, 6, 4, 10, 7, 3, 2, (2, 1), (0, 2), (1, 2), 2, 3, True, 1, 3.0),
        (2, 6, 4, 10, 7, 3, 2, (2, 1), (0, 2), (1, 2), 2, 3, False, 5, 3.0),
        (4, 4, 8, 6, 6, 1, 1, (1, 1), (0, 0), (1, 1), 4, 2, True, 3, 5.0),
        (1, 2, 2, 5, 5, 5, 5, (1, 1), (2, 2), (1, 1), 1, 2, True, 1, 1.0),
        (2, 3, 3, 7, 9, 2, 3, (3, 2), (1, 0), (2, 1), 3, 1, True, 2, 10.0),
    ]:
        torch.manual_seed(cases); cases += 1
        x = torch.randn(Bn, C, H, W, dtype=dt)
        w = torch.randn(Cout, C // groups, kh, kw, dtype=dt)
        oh = (H + 2 * p[0] - (d[0] * (kh - 1) + 1)) // s[0] + 1
        ow = (W + 2 * p[1] - (d[1] * (kw - 1) + 1)) // s[1] + 1
        off = torch.randn(Bn, 2 * og * kh * kw, oh, ow, dtype=dt) * offscale
        m = torch.rand(Bn, og * kh * kw, oh, ow, dtype=dt) if use_mask else torch.zeros(0, dtype=dt)
        bias = torch.randn(Cout, dtype=dt)
        a = dfwd(x, w, off, m, bias, s, p, d, groups, og, use_mask, chunk)
        r = torchvision.ops.deform_conv2d(x, off, w, bias, s, p, d, m if use_mask else None)
        assert torch.allclose(a, r, atol=tol, rtol=tol), (cases, (a - r).abs().max())
        g = torch.randn_like(a)
        ga = dbwd(g, x, w, off, m, bias, s, p, d, groups, og, use_mask, chunk)
        gr = torch.ops.torchvision._deform_conv2d_backward(g, x, w, off, m if use_mask else torch.zeros(Bn, 1, dtype=dt), bias, *s, *p, *d, groups, og, use_mask)
        for name, u, v in zip(['input', 'weight', 'offset', 'mask', 'bias'], ga, gr):
            if name == "mask" and not use_mask: assert u.shape == m.shape and not u.any(); continue
            assert u.shape == v.shape, (name, u.shape, v.shape)
            assert torch.allclose(u, v, atol=tol * 10, rtol=tol * 10), (cases, name, (u - v).abs().max())
print('deform ok', cases)
for dt, exp in [(torch.float32, [0]), (torch.float64, [0, 1])]:
    boxes = torch.tensor([[0, 0, 10, 1], [0, 0, 1, 1]], dtype=dt); scores = torch.tensor([1.0, 0.5], dtype=dt)
    assert nms_h(boxes, scores, 0.1).tolist() == exp, dt
print('threshold edge ok')
# save a big float case for a comparison against our CPU kernel in another process
torch.manual_seed(5)
res = {}
for dt in [torch.float32, torch.float64]:
    for thr in [0.1, 0.3, 0.5, 0.7, 0.9]:
        xy = torch.rand(4000, 2) * 300; wh = torch.rand(4000, 2) * 80
        boxes = torch.cat([xy, xy + wh], 1).to(dt); scores = torch.rand(4000).to(dt)
        res[(str(dt), thr)] = (boxes, scores, nms_h(boxes, scores, thr))
if len(sys.argv) > 2:
    torch.save(res, sys.argv[2])  # for a comparison with our CPU kernel (run.sh)
