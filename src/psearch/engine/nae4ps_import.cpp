#include "psearch/engine/nae4ps_import.h"

#include <ATen/ops/scalar_tensor.h>

#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "psearch/checkpoint/state_dict.h"
#include "psearch/util/strings.h"

namespace psearch::engine {
namespace {

using util::ends_with;
using util::starts_with;

/// Prefix renames, first match wins; an empty target drops the key.
const std::vector<std::pair<std::string, std::string>>& renames() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"backbone.", "backbone."},
      {"rpn.head.conv.", "rpn.head.conv.0.0."},
      {"rpn.head.cls_logits.", "rpn.head.cls_logits."},
      {"rpn.head.bbox_pred.", "rpn.head.bbox_pred."},
      {"roi_heads.box_head.layer4.", "roi_heads.head."},
      {"roi_heads.box_predictor.bbox_pred.0.", "roi_heads.bbox_pred."},
      {"roi_heads.box_predictor.bbox_pred.1.", "roi_heads.bbox_bn."},
      {"roi_heads.box_predictor.bbox_pred.", "roi_heads.bbox_pred."},  // without RCNN_bbox_bn
      {"roi_heads.box_predictor.cls_score.", ""},
      {"roi_heads.embedding_head.projectors.feat_res4.", "embedding_head.proj_res4."},
      {"roi_heads.embedding_head.projectors.feat_res5.", "embedding_head.proj_res5."},
      {"roi_heads.embedding_head.rescaler.", "nae.rescaler."},
      {"roi_heads.reid_loss.lut", "reid_loss.lut"},
      {"roi_heads.reid_loss.cq_omega", ""},
      {"roi_heads.reid_loss.cq", "reid_loss.cq"},
  };
  return table;
}

/// The official state_dict inside a checkpoint: the "model." entries, or the whole map
/// when the file is a bare state_dict.
checkpoint::TensorMap model_entries(const checkpoint::TensorMap& file) {
  checkpoint::TensorMap inner;
  for (const auto& [key, tensor] : file)
    if (starts_with(key, "model.")) inner[key.substr(6)] = tensor;
  return inner.empty() ? file : inner;
}

}  // namespace

checkpoint::TensorMap map_nae4ps_state(const checkpoint::TensorMap& official, modeling::TwoStageModelImpl& model,
                                       const std::string& source) {
  std::set<std::string> target;
  for (const auto& item : model.named_parameters()) target.insert(item.key());
  for (const auto& item : model.named_buffers()) target.insert(item.key());

  checkpoint::TensorMap out;
  for (const auto& [key, tensor] : model_entries(official)) {
    const std::pair<std::string, std::string>* rule = nullptr;
    for (const auto& r : renames())
      if (starts_with(key, r.first)) {
        rule = &r;
        break;
      }
    if (!rule) throw std::runtime_error(source + ": unknown NAE4PS checkpoint key '" + key + "'");
    if (rule->second.empty()) continue;
    const std::string name = rule->second + key.substr(rule->first.size());
    // Frozen BatchNorm has no step counter; the official backbone trains nn.BatchNorm2d.
    if (ends_with(name, ".num_batches_tracked") && !target.count(name)) continue;
    out[name] = tensor;
  }
  // The queue position is a plain attribute in the official OIM: start at row 0.
  if (!out.count("reid_loss.header_cq") && target.count("reid_loss.header_cq"))
    out["reid_loss.header_cq"] = at::scalar_tensor(0, at::kLong);
  return out;
}

void load_nae4ps_checkpoint(modeling::TwoStageModelImpl& model, const std::string& path) {
  const checkpoint::TensorMap mapped = map_nae4ps_state(checkpoint::load_tensors(path), model, path);
  checkpoint::load_state_dict(model, mapped, checkpoint::Strictness::kStrict, path);
}

int64_t nae4ps_num_pids(const std::string& path) {
  const checkpoint::TensorMap state = model_entries(checkpoint::load_tensors(path));
  auto it = state.find("roi_heads.reid_loss.lut");
  if (it == state.end() || it->second.dim() != 2)
    throw std::runtime_error(path + ": no OIM lookup table (roi_heads.reid_loss.lut): not a NAE4PS checkpoint");
  return it->second.size(0);
}

}  // namespace psearch::engine
