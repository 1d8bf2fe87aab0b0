#pragma once
// Each subcommand lives in its own cmd_*.cpp and registers itself at start-up with
// PSEARCH_REGISTER_COMMAND, so adding a command touches no shared file. A command's
// callback throws std::exception on failure; main() turns that into a one-line
// "psearch: error: ..." and exit code 1.
#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace psearch::cli {

using CommandAdder = std::function<void(CLI::App&)>;

/// Commands in the order `psearch --help` lists them (by `rank`, then registration).
std::vector<CommandAdder> registered_commands();

struct CommandRegistrar {
  CommandRegistrar(int rank, CommandAdder add);
};

}  // namespace psearch::cli

/// Registers `adder` (a void(CLI::App&) function) as a subcommand; `rank` orders --help.
#define PSEARCH_REGISTER_COMMAND(rank, adder) \
  static const ::psearch::cli::CommandRegistrar psearch_command_registrar_##adder(rank, adder)
