// `psearch import-nae4ps`: turns an official NAE4PS checkpoint into a psearch checkpoint
// that `psearch eval --checkpoint` (and fine-tuning via train.init_from) can use.
//   psearch import-nae4ps --checkpoint checkpoint.pth --config configs/official/nae4ps_prw.yaml --out nae_prw.pt
#include <iostream>
#include <memory>

#include "commands.h"
#include "psearch/config/config.h"
#include "psearch/engine/nae4ps_import.h"
#include "psearch/engine/training_checkpoint.h"
#include "psearch/engine/model_builder.h"
#include "psearch/modeling/two_stage/two_stage_model.h"
#include "psearch/util/file_status.h"

namespace psearch::cli {
namespace {

struct ImportArgs {
  std::string checkpoint, config, out;
  std::vector<std::string> overrides;
  bool overwrite = false;
};

void run_import(const ImportArgs& args) {
  if (util::is_regular_file(args.out) && !args.overwrite)
    throw std::runtime_error(args.out + ": exists; choose another --out or replace it with --overwrite");
  const config::Config config = config::load_config(args.config, args.overrides);
  if (config.model.type != "nae" && config.model.type != "nae_plus")
    throw std::runtime_error(args.config + ": NAE4PS checkpoints hold NAE or NAE+ models, not model.type " +
                             config.model.type);
  const int64_t num_pids = engine::nae4ps_num_pids(args.checkpoint);
  const auto model = std::dynamic_pointer_cast<modeling::TwoStageModelImpl>(engine::build_model(config, num_pids));
  engine::load_nae4ps_checkpoint(*model, args.checkpoint);
  engine::CheckpointContents contents;
  contents.model_type = config.model.type;
  contents.config_yaml = config::to_yaml(config);
  contents.num_pids = num_pids;
  contents.state = engine::model_state(*model);
  engine::save_checkpoint(args.out, contents, nullptr);
  std::cout << "imported " << config.model.type << " (" << num_pids << " identities) from " << args.checkpoint
            << " into " << args.out << "\n";
}

void add_import_command(CLI::App& app) {
  auto args = std::make_shared<ImportArgs>();
  auto* cmd = app.add_subcommand("import-nae4ps", "Convert an official NAE4PS checkpoint into a psearch checkpoint");
  cmd->add_option("--checkpoint", args->checkpoint, "Official checkpoint.pth (zip format; see docs/checkpoints.md)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--config", args->config, "Config of the model, e.g. configs/official/nae4ps_prw.yaml")->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "psearch checkpoint to write")->required();
  cmd->add_option("overrides", args->overrides, "KEY=VALUE config overrides");
  cmd->add_flag("--overwrite", args->overwrite, "Replace an existing --out file");
  cmd->callback([args] { run_import(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(45, add_import_command);

}  // namespace psearch::cli
