// `psearch models`: the registered model types (the values of model.type), their family
// (the config section they read) and their loss names (the keys of train.loss_weights).
#include <iostream>

#include "commands.h"
#include "psearch/modeling/model_registry.h"

namespace psearch::cli {
namespace {

void print_models() {
  for (const auto& type : modeling::model_types()) {
    std::cout << type.name << "  (model." << type.family << ")  " << type.description << "\n  losses:";
    for (const auto& loss : type.loss_names) std::cout << " " << loss;
    std::cout << "\n";
  }
}

void add_models_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("models", "List the model types (model.type), their config section and loss names");
  cmd->callback(print_models);
}

}  // namespace

PSEARCH_REGISTER_COMMAND(34, add_models_command);

}  // namespace psearch::cli
