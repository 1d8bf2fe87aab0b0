#include "psearch/deploy/torchscript_export.h"

#include <ATen/TensorOperators.h>
#include <ATen/core/ivalue.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/tracer.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "psearch/util/atomic_file.h"
#include "psearch/util/strings.h"

namespace psearch::deploy {
namespace {

using torch::jit::Stack;

/// TorchScript attribute names cannot hold dots: "backbone.body.conv1.weight" ->
/// "backbone__body__conv1__weight" (unambiguous: our module names have no "__").
std::string attribute_name(const std::string& path) {
  std::string out;
  for (char c : path) out += c == '.' ? std::string("__") : std::string(1, c);
  return out;
}

/// A script module whose attributes are the model's own parameter and buffer tensors
/// (shared, not copied): the tracer recognises them by identity and records reads of
/// them as attribute reads instead of baking them into the graph as constants.
torch::jit::Module holder_of(modeling::PersonSearchModelImpl& model) {
  torch::jit::Module module(c10::QualifiedName("__torch__.psearch.ExportedPersonSearch"));
  for (const auto& p : model.named_parameters(true)) module.register_parameter(attribute_name(p.key()), p.value(), false);
  for (const auto& b : model.named_buffers(true))
    if (b.value().defined()) module.register_buffer(attribute_name(b.key()), b.value());
  return module;
}

/// Traces `run` on `inputs` and adds the graph to `module` as method `name`.
void add_traced_method(torch::jit::Module& module, const std::string& name, Stack inputs,
                       const std::function<Stack(Stack)>& run) {
  auto no_names = [](const at::Tensor&) { return std::string(); };
  std::shared_ptr<torch::jit::tracer::TracingState> state;
  try {
    state = torch::jit::tracer::trace(std::move(inputs), run, no_names, /*strict=*/false, /*force_outplace=*/false,
                                      &module)
                .first;
  } catch (const std::exception& e) {
    torch::jit::tracer::abandon();
    throw std::runtime_error("tracing " + name + " failed: " + util::first_line(e.what()));
  }
  auto function = module._ivalue()->compilation_unit()->create_function(
      c10::QualifiedName(*module.type()->name(), name), state->graph);
  module.type()->addMethod(function);
}

Stack detections_stack(const modeling::Detections& d) {
  return {c10::ivalue::Tuple::create({d.boxes, d.scores, d.features})};
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return a.numel() == 0 ? 0.0 : (a - b).abs().max().item<double>();
}

/// Throws when `traced` and `eager` differ in shape or by more than `tolerance`;
/// returns their largest difference.
double compare(const at::Tensor& traced, const at::Tensor& eager, const std::string& what, double tolerance) {
  if (!traced.sizes().equals(eager.sizes())) {
    std::ostringstream message;
    message << "the traced model gives " << what << " of shape " << traced.sizes() << ", the model " << eager.sizes()
            << ": its inference depends on a count the tracer cannot follow";
    throw std::runtime_error(message.str());
  }
  const double diff = max_abs_diff(traced, eager);
  if (diff > tolerance) {
    std::ostringstream message;
    message << "the traced model's " << what << " differ from the model's by " << diff << " (tolerance " << tolerance
            << ")";
    throw std::runtime_error(message.str());
  }
  return diff;
}

/// Traced vs eager on one frame: detections, then the query embeddings of its detections
/// (a box count of its own). Returns the largest difference; counts the detections.
double compare_on(torch::jit::Module& module, modeling::PersonSearchModelImpl& model, const at::Tensor& image,
                  const std::string& which, double tolerance, int64_t& count) {
  const modeling::Detections eager = model.detect({image}).at(0);
  const auto traced = module.forward({image}).toTuple()->elements();
  count = eager.boxes.size(0);
  double diff = compare(traced.at(0).toTensor(), eager.boxes, "boxes on " + which, tolerance);
  diff = std::max(diff, compare(traced.at(1).toTensor(), eager.scores, "scores on " + which, tolerance));
  diff = std::max(diff, compare(traced.at(2).toTensor(), eager.features, "features on " + which, tolerance));
  const at::Tensor queries = module.get_method("embed")({image, eager.boxes}).toTensor();
  return std::max(diff, compare(queries, model.embed({image}, {eager.boxes}).at(0), "query features on " + which,
                                tolerance));
}

std::string metadata(modeling::PersonSearchModelImpl& model, const at::Tensor& example) {
  nlohmann::json info = {{"format", "psearch-torchscript/1"},
                         {"model_type", model.type()},
                         {"embedding_dim", model.embedding_dim()},
                         {"input_size", {example.size(1), example.size(2)}},
                         {"psearch_version", PSEARCH_VERSION},
                         {"methods",
                          {{"forward", "image [3,H,W] float32 RGB in [0,1] -> (boxes [N,4], scores [N], features [N,D])"},
                           {"embed", "(image [3,H,W], boxes [K,4]) -> features [K,D]"}}}};
  return info.dump(2) + "\n";
}

}  // namespace

ExportReport export_torchscript(modeling::PersonSearchModel model, const std::vector<at::Tensor>& frames,
                                const std::string& path, double tolerance) {
  if (frames.empty() || frames[0].dim() != 3 || frames[0].size(0) != 3)
    throw std::runtime_error("export needs [3, H, W] frames");
  const at::Tensor& example = frames[0];
  for (const auto& frame : frames)
    if (!frame.sizes().equals(example.sizes())) throw std::runtime_error("export needs frames of one size");
  model->to(at::kCPU);
  model->eval();
  at::NoGradGuard no_grad;
  torch::jit::Module module = holder_of(*model);

  add_traced_method(module, "forward", {example}, [&](Stack in) {
    return detections_stack(model->detect({in.at(0).toTensor()}).at(0));
  });
  // The query path is traced on the example's own detections (or one central box when it
  // has none); the checks below then run it with other box counts.
  at::Tensor query_boxes = model->detect({example}).at(0).boxes;
  if (query_boxes.size(0) == 0) {
    const double h = static_cast<double>(example.size(1)), w = static_cast<double>(example.size(2));
    query_boxes = at::tensor({w * 0.4, h * 0.25, w * 0.6, h * 0.75}, at::kFloat).view({1, 4});
  }
  add_traced_method(module, "embed", {example, query_boxes}, [&](Stack in) {
    return Stack{model->embed({in.at(0).toTensor()}, {in.at(1).toTensor()}).at(0)};
  });

  ExportReport report;
  for (size_t i = 0; i < frames.size(); ++i) {
    int64_t count = 0;
    const std::string which = i == 0 ? "the example frame" : "check frame " + std::to_string(i);
    report.max_abs_diff = std::max(report.max_abs_diff, compare_on(module, *model, frames[i], which, tolerance, count));
    report.detections.push_back(count);
  }
  torch::jit::ExtraFilesMap extra{{"psearch.json", metadata(*model, example)}};
  util::write_file_atomically(path, [&](std::ostream& out) { module.save(out, extra); });
  return report;
}

}  // namespace psearch::deploy
