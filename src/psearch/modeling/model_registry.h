#pragma once
/// The person-search model types. Each family registers its types from its own source file
/// (as the CLI's commands register themselves), so a new family is added, not wired in:
/// `model.type` of a config names a registered type, and the trainer, checkpoint loading,
/// evaluation and indexing build models only through here.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace psearch::config {
struct Config;
}

namespace psearch::modeling {

class PersonSearchModelImpl;
/// Models are used through the interface (person_search_model.h); shared ownership as
/// LibTorch's module holders have it.
using PersonSearchModel = std::shared_ptr<PersonSearchModelImpl>;

struct ModelType {
  std::string name;         ///< model.type, e.g. "nae"
  std::string family;       ///< its config section under model., e.g. "two_stage"
  std::string description;  ///< one line for `psearch models`
  /// The unweighted terms forward_train returns besides "loss", in log order; the keys
  /// train.loss_weights accepts.
  std::vector<std::string> loss_names;
  /// A randomly initialised model as `config` says (seed the generator first). num_pids:
  /// identities of the OIM lookup table when the config's model.oim.num_pids is 0.
  std::function<PersonSearchModel(const config::Config& config, int64_t num_pids)> build;
};

/// Adds a type. Registering a name twice throws std::logic_error (a programming error).
void register_model_type(ModelType type);

/// The type called `name`. Throws std::invalid_argument naming the known types otherwise.
const ModelType& model_type(const std::string& name);

/// Every registered type, sorted by name.
const std::vector<ModelType>& model_types();
std::vector<std::string> model_type_names();

/// Registers the types `make()` returns during static initialisation of the library:
///   PSEARCH_REGISTER_MODEL_TYPES(two_stage_types);  // std::vector<ModelType> two_stage_types()
#define PSEARCH_REGISTER_MODEL_TYPES(make)                              \
  namespace {                                                           \
  const bool psearch_model_types_registered_##make = [] {               \
    for (auto& type : make()) ::psearch::modeling::register_model_type(std::move(type)); \
    return true;                                                        \
  }();                                                                  \
  }

}  // namespace psearch::modeling
