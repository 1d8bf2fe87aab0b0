#pragma once
/// Copying a flat tensor map (a state_dict) into a torch::nn::Module by parameter and
/// buffer name, with a report of every key that did not fit.
#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "psearch/checkpoint/torch_file.h"

namespace psearch::checkpoint {

/// What did not line up between a checkpoint and a model.
struct LoadReport {
  std::vector<std::string> missing;     ///< in the model, not in the checkpoint
  std::vector<std::string> unexpected;  ///< in the checkpoint, not in the model
  std::vector<std::string> mismatched;  ///< in both, different shapes ("key: checkpoint [..] vs model [..]")
  size_t loaded = 0;                    ///< tensors copied

  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  /// One line per offending key, e.g. "  missing: layer1.0.conv1.weight".
  std::string describe() const;
};

/// Whether a checkpoint must cover the model exactly. Non-strict loading copies what
/// matches and is only ever chosen explicitly by the caller.
enum class Strictness { kStrict, kNonStrict };

/// Copies `state` into `module`'s parameters and buffers (recursive names as in
/// Python's state_dict). Mis-shaped tensors are never copied. Values are converted to
/// the module's dtype. With kStrict, any offending key throws std::runtime_error whose
/// message starts with `source` and lists every offending key on its own line.
LoadReport load_state_dict(torch::nn::Module& module, const TensorMap& state, Strictness strictness,
                           const std::string& source);

}  // namespace psearch::checkpoint
