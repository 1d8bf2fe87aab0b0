#pragma once
/// The interface every person-search model implements (two-stage OIM-base / NAE / NAE+,
/// one-stage PCNet ...): training forward with named losses, batched gallery detection,
/// batched query embedding, and the hooks the trainer and checkpoint loading need. The
/// trainer, `psearch eval`, and indexing use models only through this interface and the
/// registry (model_registry.h).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "psearch/checkpoint/torch_file.h"
#include "psearch/modeling/detections.h"
#include "psearch/modeling/input/training_target.h"
#include "psearch/modeling/model_registry.h"
#include "psearch/modeling/search_model.h"

namespace psearch::modeling {

class PersonSearchModelImpl : public torch::nn::Module {
 public:
  /// model.type of this model, e.g. "nae" (a registered type).
  virtual std::string type() const = 0;
  /// D of the embeddings detect() and embed() return.
  virtual int64_t embedding_dim() const = 0;
  /// Identities of the OIM lookup table the model was built with (checkpoints record it
  /// so that a model is rebuilt with the same shapes).
  virtual int64_t num_pids() const = 0;
  /// The loss terms forward_train returns besides "loss", in log order (equal to the
  /// registry's ModelType::loss_names).
  virtual std::vector<std::string> loss_names() const = 0;

  /// Training step forward (call train() first). images[i]: [3, H_i, W_i] RGB in [0, 1]
  /// (augmented already); targets[i]: its ground truth. Returns every loss_names() term,
  /// unweighted, and "loss" = their sum weighted by train.loss_weights. Side effects such
  /// as OIM memory updates happen here.
  virtual std::map<std::string, at::Tensor> forward_train(const std::vector<at::Tensor>& images,
                                                          const std::vector<TrainingTarget>& targets) = 0;

  /// Gallery path (call eval() first): every person in each image ([3, H_i, W_i] RGB in
  /// [0, 1], any sizes) with its embedding, in that image's pixels.
  virtual std::vector<Detections> detect(const std::vector<at::Tensor>& images) = 0;

  /// Query path (call eval() first): boxes[i] [K_i, 4] in images[i]'s pixels -> [K_i, D]
  /// embeddings with unit norm (a query is known to be a person).
  virtual std::vector<at::Tensor> embed(const std::vector<at::Tensor>& images,
                                        const std::vector<at::Tensor>& boxes) = 0;

  /// Loads pretrained trunk weights (model.backbone.weights, e.g. torchvision's ImageNet
  /// ResNet file) into a freshly built model. Throws std::runtime_error naming the file
  /// when it is not such a file or does not fit.
  virtual void load_backbone_weights(const std::string& path) = 0;

  /// Initialises the whole model from the state of a trained checkpoint holding a model
  /// of `source_type` (train.init_from). The default accepts the same type only, loaded
  /// strictly; families override it to convert (NAE -> NAE+). Throws std::runtime_error
  /// naming `path` otherwise.
  virtual void init_from(const std::string& source_type, checkpoint::TensorMap state, const std::string& path);
};

/// sum_k weights[k] * losses[k] over `names` (a name without a weight weighs 1): the
/// "loss" entry of forward_train.
at::Tensor weighted_total(const std::map<std::string, at::Tensor>& losses, const std::vector<std::string>& names,
                          const std::map<std::string, double>& weights);

/// SearchModel adapter (evaluation, indexing): runs a trained model in eval mode on the
/// device of its parameters, without gradients; inputs and outputs are on the CPU.
class PersonSearchAdapter : public SearchModel {
 public:
  explicit PersonSearchAdapter(PersonSearchModel model);

  std::string name() const override { return model_->type(); }
  bool has_detector() const override { return true; }
  Detections detect(const at::Tensor& image) override;
  std::vector<Detections> detect_batch(const std::vector<at::Tensor>& images) override;
  at::Tensor embed(const at::Tensor& image, const at::Tensor& boxes) override;

  const PersonSearchModel& model() const { return model_; }

 private:
  PersonSearchModel model_;
  c10::Device device_;
};

}  // namespace psearch::modeling
