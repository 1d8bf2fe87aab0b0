// psearch::batched_nms: NMS done independently per category, written with tensor ops on
// top of psearch::nms so that it runs on every device that has an nms kernel. The
// kernel is CompositeImplicitAutograd: it is a composition, never a backend kernel.
#include <ATen/core/Tensor.h>
#include <ATen/ops/_unique.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "psearch/ops/ops.h"

namespace psearch::ops {
namespace {

void check_batched_nms_inputs(const at::Tensor& boxes, const at::Tensor& scores,
                              const at::Tensor& idxs) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4,
              "psearch::batched_nms: boxes must have shape [N, 4], got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0),
              "psearch::batched_nms: scores must have shape [N] with N = ", boxes.size(0),
              ", got ", scores.sizes());
  TORCH_CHECK(idxs.dim() == 1 && idxs.size(0) == boxes.size(0),
              "psearch::batched_nms: idxs must have shape [N] with N = ", boxes.size(0), ", got ",
              idxs.sizes());
  TORCH_CHECK(boxes.device() == scores.device() && boxes.device() == idxs.device(),
              "psearch::batched_nms: boxes, scores and idxs must be on the same device, got ",
              boxes.device(), ", ", scores.device(), " and ", idxs.device());
}

/// One nms call on shifted boxes: every category is moved by its own offset so that
/// boxes of different categories cannot overlap. The arithmetic is torchvision's
/// (offset = idx * (max + 1)), so the shifted coordinates and thus every IoU decision
/// are identical. torchvision's offset only separates categories when no coordinate is
/// negative; when some are, the span max - min + 1 is used instead.
at::Tensor nms_with_offsets(const at::Tensor& boxes, const at::Tensor& scores,
                            const at::Tensor& idxs, double iou_threshold) {
  const at::Tensor max_coordinate = boxes.max();
  const at::Tensor min_coordinate = boxes.min();
  at::Tensor span = max_coordinate.add(1);
  span = at::where(min_coordinate.lt(0), span.sub(min_coordinate), span);
  const at::Tensor offsets = idxs.to(boxes.scalar_type()).mul(span);
  return nms(boxes.add(offsets.unsqueeze(1)), scores, iou_threshold);
}

/// One nms call per category on the unshifted boxes. Shifting by large offsets rounds
/// the coordinates (in float32 an offset of 1e4 leaves a 1e-3 grid), so for large inputs
/// this exact path is used, as torchvision does, at the price of a loop over categories.
at::Tensor nms_per_category(const at::Tensor& boxes, const at::Tensor& scores,
                            const at::Tensor& idxs, double iou_threshold) {
  const at::Tensor categories = std::get<0>(at::_unique(idxs, /*sorted=*/true));
  at::Tensor keep_mask = at::zeros({boxes.size(0)}, scores.options().dtype(at::kBool));
  for (int64_t k = 0; k < categories.size(0); ++k) {
    const at::Tensor members = idxs.eq(categories[k]).nonzero().squeeze(1);
    const at::Tensor kept =
        nms(boxes.index_select(0, members), scores.index_select(0, members), iou_threshold);
    keep_mask.index_fill_(0, members.index_select(0, kept), true);
  }
  const at::Tensor keep = keep_mask.nonzero().squeeze(1);
  // nms returns indices by decreasing score; restore that order across categories.
  // A stable sort keeps equal scores in input order, as a single nms call would.
  const at::Tensor order = std::get<1>(
      scores.index_select(0, keep).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  return keep.index_select(0, order);
}

at::Tensor batched_nms_composite(const at::Tensor& boxes, const at::Tensor& scores,
                                 const at::Tensor& idxs, double iou_threshold) {
  check_batched_nms_inputs(boxes, scores, idxs);
  if (boxes.numel() == 0) {
    return at::empty({0}, boxes.options().dtype(at::kLong));
  }
  // torchvision's switch point between the two strategies (benchmarked there); using
  // the same one keeps our results equal to torchvision.ops.batched_nms.
  const int64_t per_category_above = boxes.is_cpu() ? 4000 : 100000;
  if (boxes.numel() > per_category_above) {
    return nms_per_category(boxes, scores, idxs, iou_threshold);
  }
  return nms_with_offsets(boxes, scores, idxs, iou_threshold);
}

}  // namespace

TORCH_LIBRARY_IMPL(psearch, CompositeImplicitAutograd, m) {
  m.impl("batched_nms", &batched_nms_composite);
}

}  // namespace psearch::ops
