// The psearch program: one binary, one subcommand per job.
#include <c10/util/Exception.h>

#include <iostream>
#include <string>

#include "commands.h"
#include "psearch/util/strings.h"
#include "psearch/util/version.h"

namespace {

constexpr int kUsageError = 2;
constexpr int kRuntimeError = 1;

/// Help and --version go to stdout with exit 0; every other parse problem becomes one
/// line on stderr and exit 2, so scripts can tell a typo from a failed job.
int report_parse_error(const CLI::App& app, const CLI::ParseError& e) {
  if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
  std::cerr << "psearch: error: " << e.what() << " (see psearch --help)" << std::endl;
  return kUsageError;
}

/// The first argument when it names no command (a typo such as `psearch tarin --help`,
/// which CLI11 would answer with the top-level help and exit 0); empty otherwise.
std::string unknown_command(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return {};
  for (const auto* sub : app.get_subcommands({})) {
    if (sub->check_name(argv[1])) return {};
  }
  return argv[1];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"psearch: person search (detection + re-identification) in C++ with LibTorch", "psearch"};
  app.set_version_flag("--version", psearch::build_info());
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::simple);
  for (const auto& add_command : psearch::cli::registered_commands()) add_command(app);
  if (const std::string typo = unknown_command(app, argc, argv); !typo.empty()) {
    std::cerr << "psearch: error: unknown command '" << typo << "' (see psearch --help)" << std::endl;
    return kUsageError;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return report_parse_error(app, e);
  } catch (const c10::Error& e) {
    // A LibTorch check (a shape, a dtype) that the input reached: its message, without the
    // C++ backtrace that what() carries.
    std::cerr << "psearch: error: " << psearch::util::first_line(e.what_without_backtrace()) << std::endl;
    return kRuntimeError;
  } catch (const std::exception& e) {
    std::cerr << "psearch: error: " << e.what() << std::endl;
    return kRuntimeError;
  }
  return 0;
}
