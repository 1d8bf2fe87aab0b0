"""psearch::nms and psearch::batched_nms (CPU) against torchvision.ops.

NMS returns indices, so the comparison is exact: same boxes kept, same order.
"""
import pytest
import torch
import torchvision

DTYPES = [torch.float32, torch.float64]


def assert_same_keep(ours, ref, what):
    assert ours.dtype == torch.int64, f"{what}: dtype {ours.dtype}, expected int64"
    assert ours.dim() == 1, f"{what}: shape {tuple(ours.shape)}, expected 1-D"
    assert torch.equal(ours, ref), (
        f"{what}: kept {ours.numel()} boxes, torchvision kept {ref.numel()}; "
        f"first differences at {(ours[:min(len(ours), len(ref))] != ref[:min(len(ours), len(ref))]).nonzero()[:5].flatten().tolist()}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 17, 600, 3000])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_matches_torchvision(ops, make_boxes, generator, dtype, n, threshold):
    boxes = make_boxes(n, dtype=dtype)
    scores = torch.rand(n, generator=generator, dtype=dtype)
    ref = torchvision.ops.nms(boxes, scores, threshold)
    assert_same_keep(ops.nms(boxes, scores, threshold), ref, f"n={n} thr={threshold} {dtype}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_heavy_suppression(ops, generator, dtype):
    # Jittered copies of a few boxes: most candidates are suppressed, which exercises
    # the compaction of the candidate list.
    centres = torch.tensor([[10, 10, 60, 60], [100, 20, 180, 90], [30, 200, 90, 300]],
                           dtype=dtype)
    pick = torch.randint(0, 3, (4000,), generator=generator)
    boxes = centres[pick] + torch.randn(4000, 4, generator=generator, dtype=dtype) * 3
    scores = torch.rand(4000, generator=generator, dtype=dtype)
    for threshold in (0.3, 0.6, 0.9):
        ref = torchvision.ops.nms(boxes, scores, threshold)
        assert_same_keep(ops.nms(boxes, scores, threshold), ref, f"thr={threshold} {dtype}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_threshold_compared_in_double(ops, dtype):
    # IoU = 1/10 exactly in float32 arithmetic; float32(0.1) > 0.1, so the box is
    # suppressed only when the comparison is made against the double threshold, as
    # torchvision does (in float64 the IoU equals the threshold and the box stays).
    boxes = torch.tensor([[0, 0, 10, 1], [0, 0, 1, 1]], dtype=dtype)
    scores = torch.tensor([1.0, 0.5], dtype=dtype)
    ref = torchvision.ops.nms(boxes, scores, 0.1)
    assert_same_keep(ops.nms(boxes, scores, 0.1), ref, f"{dtype}")
    expected = [0] if dtype == torch.float32 else [0, 1]
    assert ref.tolist() == expected


def test_nms_equal_scores_keep_input_order(ops):
    boxes = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], [1, 1, 11, 11], [100, 0, 110, 5.]])
    scores = torch.ones(4)
    ours = ops.nms(boxes, scores, 0.5)
    assert ours.tolist() == [0, 1, 3]
    assert_same_keep(ours, torchvision.ops.nms(boxes, scores, 0.5), "ties")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_degenerate_boxes(ops, generator, dtype):
    # Zero-area and inverted boxes: IoU can be 0/0 = NaN, which must not suppress.
    boxes = torch.randint(0, 6, (300, 4), generator=generator).to(dtype)
    scores = torch.rand(300, generator=generator, dtype=dtype)
    ref = torchvision.ops.nms(boxes, scores, 0.4)
    assert_same_keep(ops.nms(boxes, scores, 0.4), ref, f"degenerate {dtype}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_empty(ops, dtype):
    keep = ops.nms(torch.zeros(0, 4, dtype=dtype), torch.zeros(0, dtype=dtype), 0.5)
    assert keep.dtype == torch.int64 and keep.shape == (0,)


def test_nms_non_contiguous(ops, make_boxes, generator):
    boxes = make_boxes(800)
    scores = torch.rand(1600, generator=generator)
    boxes_t = boxes.t().contiguous().t()  # column-major view
    scores_s = scores[::2]  # strided view
    assert not boxes_t.is_contiguous() and not scores_s.is_contiguous()
    ref = torchvision.ops.nms(boxes, scores_s.contiguous(), 0.5)
    assert_same_keep(ops.nms(boxes_t, scores_s, 0.5), ref, "non-contiguous")


def test_nms_bad_inputs(ops):
    with pytest.raises(RuntimeError, match=r"dets must have shape \[N, 4\].*\[5, 3\]"):
        ops.nms(torch.zeros(5, 3), torch.zeros(5), 0.5)
    with pytest.raises(RuntimeError, match=r"same number of boxes.*5 boxes and 4 scores"):
        ops.nms(torch.zeros(5, 4), torch.zeros(4), 0.5)
    with pytest.raises(RuntimeError, match="same dtype"):
        ops.nms(torch.zeros(5, 4), torch.zeros(5, dtype=torch.float64), 0.5)
    with pytest.raises(RuntimeError, match=r"scores must have shape \[N\]"):
        ops.nms(torch.zeros(5, 4), torch.zeros(5, 1), 0.5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 40, 900, 2500])  # <= 1000 boxes: offset trick; above: per class
@pytest.mark.parametrize("num_classes", [1, 3, 20])
def test_batched_nms_matches_torchvision(ops, make_boxes, generator, dtype, n, num_classes):
    boxes = make_boxes(n, dtype=dtype)
    scores = torch.rand(n, generator=generator, dtype=dtype)
    idxs = torch.randint(0, num_classes, (n,), generator=generator)
    for threshold in (0.3, 0.7):
        ref = torchvision.ops.batched_nms(boxes, scores, idxs, threshold)
        ours = ops.batched_nms(boxes, scores, idxs, threshold)
        assert_same_keep(ours, ref, f"n={n} classes={num_classes} thr={threshold} {dtype}")


def test_batched_nms_classes_do_not_suppress_each_other(ops):
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert ops.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert ops.batched_nms(boxes, scores, torch.tensor([2, 1, 0]), 0.5).tolist() == [0, 1, 2]


def test_batched_nms_negative_coordinates(ops):
    # torchvision's offset idx * (max + 1) is negative here and moves box 1 of class 1
    # onto box 0 (IoU 1/16 after the shift); our offset uses the full span instead.
    boxes = torch.tensor([[-10, -10, -6, -6], [-6, -6, -5, -5.]])
    scores = torch.tensor([0.9, 0.8])
    assert ops.batched_nms(boxes, scores, torch.tensor([0, 1]), 0.05).tolist() == [0, 1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_nms_empty(ops, dtype):
    keep = ops.batched_nms(torch.zeros(0, 4, dtype=dtype), torch.zeros(0, dtype=dtype),
                           torch.zeros(0, dtype=torch.int64), 0.5)
    assert keep.dtype == torch.int64 and keep.shape == (0,)


def test_batched_nms_bad_inputs(ops):
    with pytest.raises(RuntimeError, match=r"idxs must have shape \[N\] with N = 5"):
        ops.batched_nms(torch.zeros(5, 4), torch.zeros(5), torch.zeros(4, dtype=torch.int64), 0.5)
    with pytest.raises(RuntimeError, match=r"boxes must have shape \[N, 4\]"):
        ops.batched_nms(torch.zeros(5, 5), torch.zeros(5), torch.zeros(5, dtype=torch.int64), 0.5)
