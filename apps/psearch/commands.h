#pragma once
// Each subcommand of the psearch program registers itself on the top-level CLI::App.
// A command's callback throws std::exception on failure; main() turns that into a
// one-line "psearch: error: ..." and exit code 1.
#include <CLI/CLI.hpp>

namespace psearch::cli {

void add_info_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_backbone_command(CLI::App& app);
void add_demo_command(CLI::App& app);

}  // namespace psearch::cli
