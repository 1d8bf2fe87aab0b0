#pragma once
/// Export of a person-search model as one self-contained TorchScript file, for deployment
/// without psearch (docs/export.md).
///
/// The model's C++ forward is traced by LibTorch's tracer at one frame size, the way
/// torch.jit.trace records a Python model: every operator, ours (psearch::nms,
/// psearch::roi_align, psearch::deform_conv2d) included, goes into the graph and the
/// weights become the module's parameters. Shape arithmetic done in C++ is fixed at the
/// traced size, so a file serves frames of exactly that height and width (the way a
/// fixed-shape TensorRT engine does); data-dependent counts (detections per frame) stay
/// dynamic because they come from operators (nonzero, nms, topk over a fixed candidate
/// list; util/traceable.h keeps inference code that way). export_torchscript checks both
/// before it writes: the traced file must reproduce the model, detections and query
/// embeddings, on the example frame and on other frames with other detection counts.
///
/// The file holds two methods:
///   forward(image) -> (boxes, scores, features)
///     image    [3, H, W] float32 RGB in [0, 1], H x W = the exported size
///     boxes    [N, 4] float32 (x1, y1, x2, y2) in the image's pixels
///     scores   [N] float32 detection confidence
///     features [N, D] float32 unit-norm embeddings (similarity = dot product)
///   embed(image, boxes) -> features
///     boxes    [K, 4] float32 query boxes in the image's pixels; features [K, D]
/// and an extra file "psearch.json" (model type, embedding dimension, input size, version).
/// Loading it needs LibTorch and the psearch operator library (libpsearch_ops.so, which
/// registers the psearch:: operators), nothing else.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "psearch/modeling/person_search_model.h"

namespace psearch::deploy {

struct ExportReport {
  double max_abs_diff = 0;          ///< traced vs model over every checked frame and output
  std::vector<int64_t> detections;  ///< per checked frame (the example first)
};

/// Traces `model` on `frames[0]` ([3, H, W] RGB in [0, 1]) on the CPU in fp32, checks
/// the trace against the model on every frame of `frames` (same size; frames with other
/// detection counts than the first prove that the count is not frozen): detections, and
/// the query embeddings of each frame's detections. Writes `path` atomically. Throws
/// std::runtime_error (one line) when the model cannot be traced or the trace disagrees
/// with the model by more than `tolerance` (boxes in pixels, scores, features).
ExportReport export_torchscript(modeling::PersonSearchModel model, const std::vector<at::Tensor>& frames,
                                const std::string& path, double tolerance = 1e-3);

}  // namespace psearch::deploy
