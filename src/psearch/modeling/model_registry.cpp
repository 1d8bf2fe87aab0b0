#include "psearch/modeling/model_registry.h"

#include <algorithm>
#include <stdexcept>

namespace psearch::modeling {
namespace {

/// Constructed on first use, so registrations from any translation unit's static
/// initialisers find it ready.
std::vector<ModelType>& registry() {
  static std::vector<ModelType> types;
  return types;
}

}  // namespace

void register_model_type(ModelType type) {
  for (const auto& t : registry())
    if (t.name == type.name) throw std::logic_error("model type '" + type.name + "' registered twice");
  // Sorted by name: static initialisation order across files is unspecified, and listings
  // (psearch models, error messages, docs) should not depend on link order.
  auto& types = registry();
  const auto at = std::find_if(types.begin(), types.end(), [&](const ModelType& t) { return t.name > type.name; });
  types.insert(at, std::move(type));
}

const ModelType& model_type(const std::string& name) {
  for (const auto& t : registry())
    if (t.name == name) return t;
  std::string known;
  for (const auto& t : registry()) known += (known.empty() ? "" : ", ") + t.name;
  throw std::invalid_argument("unknown model type '" + name + "' (known: " + known + ")");
}

const std::vector<ModelType>& model_types() { return registry(); }

std::vector<std::string> model_type_names() {
  std::vector<std::string> names;
  for (const auto& t : registry()) names.push_back(t.name);
  return names;
}

}  // namespace psearch::modeling
