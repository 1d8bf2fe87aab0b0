// `psearch config`: the complete config a file (with its bases and overrides) resolves to,
// as YAML, or the documentation table of every key (docs/config.md's "Keys" section is
// this command's output, so the docs come from the same key list as the parser).
//   psearch config --config configs/nae_prw.yaml train.lr=0.001
//   psearch config --keys-markdown
#include <iostream>
#include <memory>

#include "commands.h"
#include "psearch/config/config.h"

namespace psearch::cli {
namespace {

struct ConfigArgs {
  std::string config;
  std::vector<std::string> overrides;
  bool keys_markdown = false;
};

/// One "### `section`: doc" heading and table per section, keys in file order.
void print_keys_markdown() {
  bool open_table = false;
  auto heading = [&](const std::string& path, const std::string& doc) {
    std::cout << (open_table ? "\n" : "") << "### `" << path << "`: " << doc << "\n\n"
              << "| key | default | meaning |\n|---|---|---|\n";
    open_table = true;
  };
  for (const auto& key : config::describe_keys()) {
    if (key.is_section) {
      heading(key.path, key.doc);
      continue;
    }
    if (!open_table) heading("(top level)", "file layout");
    std::cout << "| `" << key.path << "` | `" << key.default_value << "` | " << key.doc << " |\n";
  }
}

void run_config(const ConfigArgs& args) {
  if (args.keys_markdown) {
    print_keys_markdown();
    return;
  }
  if (args.config.empty()) throw CLI::ValidationError("--config", "is required unless --keys-markdown is given");
  std::cout << config::to_yaml(config::load_config(args.config, args.overrides));
}

void add_config_command(CLI::App& app) {
  auto args = std::make_shared<ConfigArgs>();
  auto* cmd = app.add_subcommand("config", "Print the complete config a YAML file resolves to, or the table of all keys");
  cmd->add_option("--config", args->config, "YAML config, e.g. configs/nae_prw.yaml")->check(CLI::ExistingFile);
  cmd->add_option("overrides", args->overrides, "KEY=VALUE config overrides");
  cmd->add_flag("--keys-markdown", args->keys_markdown, "Print every key with its default and meaning (docs/config.md)");
  cmd->callback([args] { run_config(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(33, add_config_command);

}  // namespace psearch::cli
