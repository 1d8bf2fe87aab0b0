// The psearch program: one binary, one subcommand per job.
#include <iostream>
#include <string>

#include "commands.h"
#include "psearch/util/version.h"

namespace {

constexpr int kUsageError = 2;
constexpr int kRuntimeError = 1;

/// Help and --version go to stdout with exit 0; every other parse problem becomes one
/// line on stderr and exit 2, so scripts can tell a typo from a failed job.
int report_parse_error(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
  std::string message = e.what();
  // CLI11 reports an unknown subcommand as "arguments were not expected"; name it plainly.
  if (argc > 1 && argv[1][0] != '-' && app.get_subcommands({}).size() > 0) {
    bool known = false;
    for (const auto* sub : app.get_subcommands({})) known |= sub->check_name(argv[1]);
    if (!known) message = "unknown command '" + std::string(argv[1]) + "'";
  }
  std::cerr << "psearch: error: " << message << " (see psearch --help)" << std::endl;
  return kUsageError;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"psearch: person search (detection + re-identification) in C++ with LibTorch", "psearch"};
  app.set_version_flag("--version", psearch::build_info());
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::simple);
  for (const auto& add_command : psearch::cli::registered_commands()) add_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return report_parse_error(app, e, argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "psearch: error: " << e.what() << std::endl;
    return kRuntimeError;
  }
  return 0;
}
