#pragma once
/// The separate person-search pipeline (model.type "separate"): detection and
/// re-identification by two pretrained networks instead of one joint model, usable on real
/// footage without any training.
///
///   frame -> SSDLite-MobileNetV2 person detector (detector/ssdlite_person.h) -> boxes, scores
///   each box -> RoIAlign crop of the ImageNet-normalised frame to crop_size (256 x 128)
///            -> MobileNetV2 features.0 .. 18 (ImageNet weights) -> global average pool
///            -> L2 normalisation: a 1280-d embedding
///
/// The query path embeds given boxes the same way, so embed() on ground-truth boxes is the
/// "ImageNet trunk on ground-truth boxes" re-identification baseline. Parameter names:
/// detector.* (as ssdlite_person.pth), embedder.features.* (torchvision's). The weights come
/// from set-up (scripts/convert_weights.py), or the files model.separate names.
#include <torch/nn/pimpl.h>

#include "psearch/config/config.h"
#include "psearch/modeling/backbone/mobilenet_v2.h"
#include "psearch/modeling/detector/ssdlite_person.h"
#include "psearch/modeling/person_search_model.h"

namespace psearch::modeling {

class SeparatePipelineImpl : public PersonSearchModelImpl {
 public:
  /// Builds both networks and loads their weight files (model.separate); throws
  /// std::runtime_error naming a missing or wrong file and the package that provides it.
  explicit SeparatePipelineImpl(const config::Config& config);

  std::string type() const override { return "separate"; }
  int64_t embedding_dim() const override { return MobileNetV2Impl::channels(18); }
  int64_t num_pids() const override { return 0; }
  std::vector<std::string> loss_names() const override { return {}; }

  /// Throws: both networks are pretrained and this model has nothing to train.
  std::map<std::string, at::Tensor> forward_train(const std::vector<at::Tensor>& images,
                                                  const std::vector<TrainingTarget>& targets) override;
  std::vector<Detections> detect(const std::vector<at::Tensor>& images) override;
  std::vector<at::Tensor> embed(const std::vector<at::Tensor>& images,
                                const std::vector<at::Tensor>& boxes) override;
  /// A MobileNetV2 file (torchvision names) replaces the embedder's weights.
  void load_backbone_weights(const std::string& path) override;

  SSDLitePerson detector() const { return detector_; }
  MobileNetV2 embedder() const { return embedder_; }

 private:
  /// One image's boxes [K, 4] -> [K, 1280] unit-norm embeddings.
  at::Tensor embed_boxes(const at::Tensor& image, const at::Tensor& boxes);

  config::SeparateConfig options_;
  std::vector<double> mean_, std_;
  SSDLitePerson detector_{nullptr};
  MobileNetV2 embedder_{nullptr};
};
TORCH_MODULE(SeparatePipeline);

}  // namespace psearch::modeling
