// `psearch inspect FILE`: the tensors of a torch.save checkpoint, without Python.
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "psearch/checkpoint/torch_file.h"
#include "psearch/engine/training_checkpoint.h"

namespace psearch::cli {
namespace {

struct InspectArgs {
  std::string path;
  std::string prefix;
};

/// The tensors of the file: a torch.save file's own, or a psearch checkpoint's model state
/// (after a line that says what the checkpoint is and which commands take it).
checkpoint::TensorMap read_tensors(const std::string& path) {
  if (checkpoint::file_kind(path) != checkpoint::FileKind::kLibTorchArchive) return checkpoint::load_tensors(path);
  engine::CheckpointContents c = engine::load_checkpoint(path);
  std::cout << path << ": psearch training checkpoint, model " << c.model_type << ", iteration " << c.iteration
            << ", " << c.num_pids << " identities (for psearch eval --checkpoint, train --resume, train.init_from)\n";
  return std::move(c.state);
}

void run_inspect(const InspectArgs& args) {
  const auto tensors = read_tensors(args.path);
  int64_t total = 0;
  size_t shown = 0;
  for (const auto& [key, t] : tensors) {
    if (key.rfind(args.prefix, 0) != 0) continue;
    std::ostringstream shape;
    shape << t.sizes();
    std::cout << std::left << std::setw(56) << key << std::setw(10) << c10::toString(t.scalar_type()) << shape.str()
              << "\n";
    total += t.numel();
    ++shown;
  }
  std::cout << shown << " tensors, " << total << " elements\n";
}

void add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "List the tensors of a torch.save checkpoint (key, dtype, shape)");
  cmd->add_option("checkpoint", args->path, "A .pth/.pt file written by torch.save, or a psearch checkpoint")->required();
  cmd->add_option("--prefix", args->prefix, "Only keys starting with this prefix");
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(80, add_inspect_command);

}  // namespace psearch::cli
